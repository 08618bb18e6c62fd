//! A listener on another loopback address that holds connections without
//! answering until told to forward them to Portcullis: it keeps an ACME
//! validation in flight for as long as a test needs.

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

/// A listener on another loopback address for the `web` port: it holds
/// connections without answering until told to forward them to Portcullis.
pub struct Tarpit {
    forward: Arc<std::sync::atomic::AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Tarpit {
    pub async fn start(ip: Ipv4Addr, port: u16) -> Self {
        let listener = tokio::net::TcpListener::bind((ip, port)).await.unwrap();
        let forward = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = Arc::clone(&forward);
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    continue;
                };
                let flag = Arc::clone(&flag);
                tokio::spawn(async move {
                    while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    if let Ok(mut upstream) =
                        tokio::net::TcpStream::connect(("127.0.0.1", port)).await
                    {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                    }
                });
            }
        });
        Self { forward, task }
    }

    pub fn open(&self) {
        self.forward
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

impl Drop for Tarpit {
    fn drop(&mut self) {
        self.task.abort();
    }
}
