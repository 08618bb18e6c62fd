//! One request/answer exchange with the primary server, over TCP (RFC 7766:
//! a 2-byte length before each message) or UDP (falling back to TCP when
//! the answer is truncated).

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

/// How messages travel to the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Transport {
    Tcp,
    Udp,
}

impl Transport {
    /// `tcp` or `udp`.
    pub(super) fn name(self) -> &'static str {
        match self {
            Self::Tcp => "tcp",
            Self::Udp => "udp",
        }
    }

    /// Parses `tcp` / `udp` (any case).
    pub(super) fn parse(text: &str) -> Option<Self> {
        match text.trim().to_ascii_lowercase().as_str() {
            "tcp" => Some(Self::Tcp),
            "udp" => Some(Self::Udp),
            _ => None,
        }
    }
}

/// Sends `request` to `server` ("host:port") and returns the answer with
/// the same ID, within `timeout`. The error names the address and what
/// failed.
pub(super) async fn exchange(
    server: &str,
    transport: Transport,
    request: &[u8],
    timeout: Duration,
) -> Result<Vec<u8>, String> {
    let work = async {
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host(server)
            .await
            .map_err(|e| format!("cannot resolve {server}: {e}"))?
            .collect();
        let mut last = format!("{server} has no address");
        for addr in addrs {
            let result = match transport {
                Transport::Tcp => tcp(addr, request).await,
                Transport::Udp => match udp(addr, request).await {
                    Ok(answer) if truncated(&answer) => tcp(addr, request).await,
                    other => other,
                },
            };
            match result {
                Ok(answer) => return Ok(answer),
                Err(e) => last = format!("{addr} over {}: {e}", transport.name()),
            }
        }
        Err(last)
    };
    tokio::time::timeout(timeout, work)
        .await
        .map_err(|_| format!("no answer from {server} within {timeout:?}"))?
}

fn truncated(answer: &[u8]) -> bool {
    answer.get(2).is_some_and(|flags| flags & 0x02 != 0)
}

fn id(message: &[u8]) -> Option<[u8; 2]> {
    message.get(..2).map(|b| [b[0], b[1]])
}

async fn tcp(addr: SocketAddr, request: &[u8]) -> Result<Vec<u8>, String> {
    let len = u16::try_from(request.len()).map_err(|_| "request too long".to_owned())?;
    let mut stream = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    let mut framed = Vec::with_capacity(request.len() + 2);
    framed.extend_from_slice(&len.to_be_bytes());
    framed.extend_from_slice(request);
    stream
        .write_all(&framed)
        .await
        .map_err(|e| format!("send: {e}"))?;
    loop {
        let len = stream.read_u16().await.map_err(|e| format!("read: {e}"))?;
        let mut answer = vec![0u8; usize::from(len)];
        stream
            .read_exact(&mut answer)
            .await
            .map_err(|e| format!("read: {e}"))?;
        if id(&answer) == id(request) {
            return Ok(answer);
        }
    }
}

async fn udp(addr: SocketAddr, request: &[u8]) -> Result<Vec<u8>, String> {
    let local: SocketAddr = if addr.is_ipv4() {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let socket = UdpSocket::bind(local)
        .await
        .map_err(|e| format!("bind: {e}"))?;
    socket
        .connect(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    socket
        .send(request)
        .await
        .map_err(|e| format!("send: {e}"))?;
    let mut buf = vec![0u8; 65_535];
    loop {
        let n = socket
            .recv(&mut buf)
            .await
            .map_err(|e| format!("receive: {e}"))?;
        // A late answer to another request on a reused port is ignored.
        let answer = &buf[..n];
        if id(answer) == id(request) && answer.get(2).is_some_and(|f| f & 0x80 != 0) {
            return Ok(answer.to_vec());
        }
    }
}
