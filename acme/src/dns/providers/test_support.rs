//! What the provider tests share: a local HTTP server that hands each
//! request, read whole, to a fake API's handler, and (in [`scenarios`])
//! the scenarios every provider must get through, written once.
//!
//! Each fake keeps its own contract (authentication, routes, bodies,
//! signatures) in its handler; nothing here accepts or refuses a request.

mod scenarios;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, Uri};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::dns::http::{Answer, HttpApi};
use crate::dns::provider::Fields;

pub(super) use scenarios::*;

/// One request, read whole.
pub(super) struct Req {
    pub(super) method: Method,
    pub(super) uri: Uri,
    /// The path as received (still percent-encoded).
    pub(super) path: String,
    /// Path and query exactly as received.
    pub(super) target: String,
    /// The query's pairs, percent-decoded.
    pub(super) query: Vec<(String, String)>,
    pub(super) headers: HeaderMap,
    pub(super) body: Bytes,
    /// The address the fake listens on.
    pub(super) local: SocketAddr,
}

impl Req {
    /// A header's value, when it is text.
    pub(super) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The first value of query parameter `key`.
    pub(super) fn param(&self, key: &str) -> Option<&str> {
        param(&self.query, key)
    }
}

/// An answer from a fake.
pub(super) type Reply = Response<Full<Bytes>>;

/// An answer with a status, a content type and a body.
pub(super) fn reply(status: u16, content_type: &str, body: impl Into<Bytes>) -> Reply {
    Response::builder()
        .status(status)
        .header("content-type", content_type)
        .body(Full::new(body.into()))
        .unwrap()
}

/// A fake API on 127.0.0.1:0 holding `S`; stops when dropped.
pub(super) struct Fake<S> {
    pub(super) addr: SocketAddr,
    pub(super) state: Arc<Mutex<S>>,
    task: JoinHandle<()>,
}

impl<S> Drop for Fake<S> {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl<S: Send + 'static> Fake<S> {
    /// Serves every request, one connection a task, with `handler`.
    pub(super) async fn serve<H>(state: S, handler: H) -> Self
    where
        H: Fn(&Mutex<S>, &Req) -> Reply + Send + Sync + 'static,
    {
        let state = Arc::new(Mutex::new(state));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = state.clone();
        let handler = Arc::new(handler);
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (state, handler) = (shared.clone(), handler.clone());
                tokio::spawn(async move {
                    let service = service_fn(move |req: Request<Incoming>| {
                        let (state, handler) = (state.clone(), handler.clone());
                        async move {
                            let req = read(req, addr).await?;
                            Ok::<_, hyper::Error>(handler(&state, &req))
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self { addr, state, task }
    }

    /// Serves JSON: `handler` gives the status and the body (`None`:
    /// an empty one), sent as `content_type`.
    pub(super) async fn serve_json<H, B>(state: S, content_type: &'static str, handler: H) -> Self
    where
        H: Fn(&Mutex<S>, &Req) -> (u16, B) + Send + Sync + 'static,
        B: Into<Option<Value>>,
    {
        Self::serve(state, move |state, req| {
            let (status, body) = handler(state, req);
            let body = body.into().map_or_else(String::new, |b| b.to_string());
            reply(status, content_type, body)
        })
        .await
    }

    /// `http://` and the address.
    pub(super) fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

async fn read(req: Request<Incoming>, local: SocketAddr) -> Result<Req, hyper::Error> {
    let (parts, body) = req.into_parts();
    let body = body.collect().await?.to_bytes();
    Ok(Req {
        path: parts.uri.path().to_owned(),
        target: parts
            .uri
            .path_and_query()
            .map(ToString::to_string)
            .unwrap_or_default(),
        query: parse_query(parts.uri.query().unwrap_or("")),
        method: parts.method,
        uri: parts.uri,
        headers: parts.headers,
        body,
        local,
    })
}

/// `k=v&...` pairs, percent-decoded (`+` stays `+`).
pub(super) fn parse_query(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(k), decode(v))
        })
        .collect()
}

/// Percent-decodes; a fake's test panics on text that does not decode.
fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap();
            out.push(u8::from_str_radix(hex, 16).unwrap());
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

/// The first value of `key` among decoded pairs.
pub(super) fn param<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// `values`, sorted.
pub(super) fn sorted(values: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut values: Vec<String> = values.into_iter().collect();
    values.sort();
    values
}

/// A credential's fields: `secrets` and `config` as (name, value).
pub(super) fn fields(secrets: &[(&str, &str)], config: &[(&str, &str)]) -> Fields {
    let mut fields = Fields::default();
    for (name, value) in secrets {
        fields.secrets.insert((*name).into(), (*value).into());
    }
    for (name, value) in config {
        fields.config.insert((*name).into(), (*value).into());
    }
    fields
}

/// The status `api` answers `method path` with, sent with `headers` and
/// JSON `body`.
pub(super) async fn status_of(
    api: &HttpApi,
    method: Method,
    path: &str,
    headers: &[(HeaderName, HeaderValue)],
    body: Option<&Value>,
) -> u16 {
    api.json(method, path, headers, body).await.unwrap().status
}

/// The answer to `POST path` of `body`, sent with `headers` and labelled
/// `application/json` whether it is or not.
pub(super) async fn post_as_json(
    api: &HttpApi,
    path: &str,
    headers: &[(HeaderName, HeaderValue)],
    body: &'static [u8],
) -> Answer {
    let mut headers = headers.to_vec();
    headers.push((
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    ));
    api.send(Method::POST, path, &headers, Bytes::from_static(body))
        .await
        .unwrap()
}
