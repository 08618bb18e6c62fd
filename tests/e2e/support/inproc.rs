//! The data plane run inside the test process, for tests that drive swaps themselves.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use portcullis_proxy::{DataPlane, DataPlaneOptions, Listeners};

pub struct InProcess {
    pub plane: Arc<DataPlane>,
    pub web: SocketAddr,
    pub websecure: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl InProcess {
    pub async fn start() -> Self {
        let plane = DataPlane::new(DataPlaneOptions {
            access_log: false,
            https_port: 443,
            fallback: None,
            unknown_host_status: http::StatusCode::NOT_FOUND,
            workers: 2,
            header_read_timeout: std::time::Duration::from_secs(30),
        })
        .unwrap();
        let listeners = Listeners::bind(
            "127.0.0.1:0".parse().unwrap(),
            "127.0.0.1:0".parse().unwrap(),
        )
        .await
        .unwrap();
        let (web, websecure) = (listeners.web_addr(), listeners.websecure_addr());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn({
            let plane = Arc::clone(&plane);
            async move {
                listeners
                    .serve(
                        plane,
                        async {
                            let _ = stopped.await;
                        },
                        Duration::from_secs(5),
                    )
                    .await
                    .unwrap();
            }
        });
        Self {
            plane,
            web,
            websecure,
            stop: Some(stop),
            task,
        }
    }

    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.task).await;
    }
}
