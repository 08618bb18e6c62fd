//! Upstream servers for the proxy to forward to, on ephemeral loopback ports.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

pub struct Backend {
    pub addr: SocketAddr,
    pub name: String,
    pub hits: Arc<AtomicUsize>,
    /// TCP connections accepted (keep-alive reuse shows as fewer than hits).
    pub connections: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

type Body = http_body_util::Either<
    Full<Bytes>,
    StreamBody<futures_util::stream::BoxStream<'static, Result<Frame<Bytes>, Infallible>>>,
>;

impl Backend {
    /// An HTTP/1.1 server answering JSON describing the request it saw.
    ///
    /// `/slow?ms=N` waits N ms first; `/stream` sends 5 chunks 50 ms (or
    /// `?ms=N`) apart;
    /// `/echo` returns the request body.
    pub async fn start(name: &str) -> Self {
        Self::start_with_idle_close(name, None).await
    }

    /// Like [`Backend::start`]; with `idle_close`, each connection is closed
    /// by the backend once it has been idle that long after a response
    /// (as nginx's `keepalive_timeout` does), without announcing it.
    pub async fn start_with_idle_close(name: &str, idle_close: Option<Duration>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let hits = Arc::new(AtomicUsize::new(0));
        let connections = Arc::new(AtomicUsize::new(0));
        let name_owned = name.to_owned();
        let counter = Arc::clone(&hits);
        let accepted = Arc::clone(&connections);
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                accepted.fetch_add(1, Ordering::Relaxed);
                let name = name_owned.clone();
                let counter = Arc::clone(&counter);
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        counter.fetch_add(1, Ordering::Relaxed);
                        answer(name.clone(), req)
                    });
                    let mut builder =
                        hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                    if let Some(idle) = idle_close {
                        // Waiting for the next request head counts as idle.
                        builder
                            .http1()
                            .timer(hyper_util::rt::TokioTimer::new())
                            .header_read_timeout(idle);
                    }
                    let _ = builder
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self {
            addr,
            name: name.to_owned(),
            hits,
            connections,
            task,
        }
    }

    /// A WebSocket server that echoes every message back, prefixed with its name.
    pub async fn websocket_echo(name: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let hits = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&hits);
        let prefix = name.to_owned();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                counter.fetch_add(1, Ordering::Relaxed);
                let prefix = prefix.clone();
                tokio::spawn(async move {
                    let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else {
                        return;
                    };
                    while let Some(Ok(message)) = ws.next().await {
                        if message.is_text() {
                            let reply = format!("{prefix}:{}", message.to_text().unwrap());
                            if ws.send(message_text(reply)).await.is_err() {
                                break;
                            }
                        }
                    }
                });
            }
        });
        Self {
            addr,
            name: name.to_owned(),
            hits,
            connections: Arc::new(AtomicUsize::new(0)),
            task,
        }
    }

    pub fn upstream(&self) -> String {
        self.addr.to_string()
    }
}

fn message_text(text: String) -> tokio_tungstenite::tungstenite::Message {
    tokio_tungstenite::tungstenite::Message::Text(text)
}

async fn answer(name: String, req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    let path = req.uri().path().to_owned();
    let ms: Option<u64> = req
        .uri()
        .query()
        .and_then(|q| q.strip_prefix("ms="))
        .and_then(|v| v.parse().ok());
    if path == "/slow" {
        tokio::time::sleep(Duration::from_millis(ms.unwrap_or(1000))).await;
    }
    if path == "/stream" {
        let gap = Duration::from_millis(ms.unwrap_or(50));
        let chunks = futures_util::stream::unfold(0u32, move |i| async move {
            if i == 5 {
                return None;
            }
            tokio::time::sleep(gap).await;
            Some((Ok(Frame::data(Bytes::from(format!("chunk{i}\n")))), i + 1))
        });
        return Ok(Response::new(http_body_util::Either::Right(
            StreamBody::new(chunks.boxed()),
        )));
    }
    let headers: serde_json::Map<String, serde_json::Value> = req
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").into()))
        .collect();
    let method = req.method().to_string();
    let version = format!("{:?}", req.version());
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let json = serde_json::json!({
        "backend": name,
        "method": method,
        "path": path,
        "version": version,
        "headers": headers,
        "body": String::from_utf8_lossy(&body),
    });
    Ok(Response::new(http_body_util::Either::Left(Full::new(
        Bytes::from(json.to_string()),
    ))))
}
