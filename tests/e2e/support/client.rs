//! A client speaking real TLS and HTTP/1.1 or HTTP/2 to the proxy.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::ClientConfig;
use tokio::net::TcpStream;

pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Reply {
    /// The backend's JSON description of the request it received.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| {
            panic!(
                "not JSON ({e}): status {} body {:?}",
                self.status, self.body
            )
        })
    }

    /// Which backend answered.
    pub fn backend(&self) -> String {
        self.json()["backend"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }
}

enum Sender {
    H1(http1::SendRequest<Full<Bytes>>),
    H2(http2::SendRequest<Full<Bytes>>),
}

/// One client connection, reusable for several requests (keep-alive).
pub struct Conn {
    sender: Sender,
    pub peer_certificate: Option<CertificateDer<'static>>,
    pub alpn: Option<Vec<u8>>,
    scheme: &'static str,
}

impl Conn {
    /// TLS to `addr` with SNI `sni`; HTTP/2 when the server picks `h2`.
    pub async fn https(
        addr: SocketAddr,
        sni: &str,
        config: Arc<ClientConfig>,
    ) -> anyhow::Result<Self> {
        let tcp = TcpStream::connect(addr).await?;
        tcp.set_nodelay(true)?;
        let connector = tokio_rustls::TlsConnector::from(config);
        let tls = connector
            .connect(ServerName::try_from(sni.to_owned())?, tcp)
            .await?;
        let (_, session) = tls.get_ref();
        let alpn = session.alpn_protocol().map(<[u8]>::to_vec);
        let peer_certificate = session
            .peer_certificates()
            .and_then(|c| c.first())
            .map(|c| c.clone().into_owned());
        let io = TokioIo::new(tls);
        let sender = if alpn.as_deref() == Some(b"h2") {
            let (sender, conn) = http2::handshake(TokioExecutor::new(), io).await?;
            tokio::spawn(conn);
            Sender::H2(sender)
        } else {
            let (sender, conn) = http1::handshake(io).await?;
            tokio::spawn(conn.with_upgrades());
            Sender::H1(sender)
        };
        Ok(Self {
            sender,
            peer_certificate,
            alpn,
            scheme: "https",
        })
    }

    /// Plain HTTP/1.1 to `addr`.
    pub async fn http(addr: SocketAddr) -> anyhow::Result<Self> {
        let tcp = TcpStream::connect(addr).await?;
        tcp.set_nodelay(true)?;
        let (sender, conn) = http1::handshake(TokioIo::new(tcp)).await?;
        tokio::spawn(conn);
        Ok(Self {
            sender: Sender::H1(sender),
            peer_certificate: None,
            alpn: None,
            scheme: "http",
        })
    }

    pub fn is_h2(&self) -> bool {
        matches!(self.sender, Sender::H2(_))
    }

    pub async fn get(&mut self, host: &str, path: &str) -> anyhow::Result<Reply> {
        self.send("GET", host, path, &[], Bytes::new()).await
    }

    pub async fn send(
        &mut self,
        method: &str,
        host: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Bytes,
    ) -> anyhow::Result<Reply> {
        let mut builder = Request::builder().method(method);
        builder = match &self.sender {
            // HTTP/2 carries the host in :authority.
            Sender::H2(_) => builder.uri(format!("{}://{host}{path}", self.scheme)),
            Sender::H1(_) => builder.uri(path).header("host", host),
        };
        for (k, v) in headers {
            builder = builder.header(*k, *v);
        }
        let request = builder.body(Full::new(body))?;
        let response = match &mut self.sender {
            Sender::H1(s) => {
                s.ready().await?;
                s.send_request(request).await?
            }
            Sender::H2(s) => {
                s.ready().await?;
                s.send_request(request).await?
            }
        };
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.into_body().collect().await?.to_bytes();
        Ok(Reply {
            status,
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        })
    }
}

/// One request on a fresh TLS connection.
pub async fn https_get(
    addr: SocketAddr,
    sni: &str,
    config: Arc<ClientConfig>,
    host: &str,
    path: &str,
) -> anyhow::Result<Reply> {
    Conn::https(addr, sni, config).await?.get(host, path).await
}
