//! `server.header_read_timeout`: an HTTP/1 client that trickles its request
//! head, or idles between requests, is disconnected; one that keeps up is
//! served. An HTTP/2 connection with no request in flight for as long is
//! closed with GOAWAY.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::*;

/// Reads until the server closes the connection; what it sent on the way
/// (perhaps a 408) is returned.
async fn until_closed(stream: &mut (impl AsyncRead + Unpin)) -> Vec<u8> {
    let mut seen = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return seen,
            Ok(n) => seen.extend_from_slice(&buf[..n]),
        }
    }
}

/// Sends one whole request on `stream` and reads its answer's status line.
async fn request(stream: &mut (impl AsyncRead + AsyncWrite + Unpin)) -> String {
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: nobody.test\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 4096];
    let n = stream.read(&mut buf).await.unwrap();
    assert!(n > 0, "closed instead of answering");
    String::from_utf8_lossy(&buf[..n])
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn a_client_that_trickles_its_head_or_idles_is_disconnected() {
    let server = Server::start("[server]\nheader_read_timeout = \"1s\"\n");
    let deadline = Duration::from_secs(10);

    // A head that never ends, on `web`.
    let mut trickling = TcpStream::connect(server.web).await.unwrap();
    trickling
        .write_all(b"GET / HTTP/1.1\r\nHost: nobody.test\r\n")
        .await
        .unwrap();
    let answered = tokio::time::timeout(deadline, until_closed(&mut trickling))
        .await
        .expect("a client that never finishes its head is disconnected");
    let answered = String::from_utf8_lossy(&answered);
    assert!(
        answered.is_empty() || answered.starts_with("HTTP/1.1 408"),
        "{answered}"
    );

    // Over TLS on `websecure`: requests within the timeout keep the
    // connection; idling past it ends it.
    let tcp = TcpStream::connect(server.websecure).await.unwrap();
    let connector =
        tokio_rustls::TlsConnector::from(crate::support::pki::insecure_client_config(&[
            b"http/1.1",
        ]));
    let name = rustls_pki_types::ServerName::try_from("nobody.test").unwrap();
    let mut tls = connector.connect(name, tcp).await.unwrap();
    for _ in 0..3 {
        let status = request(&mut tls).await;
        assert!(status.starts_with("HTTP/1.1 "), "{status}");
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    tokio::time::timeout(deadline, until_closed(&mut tls))
        .await
        .expect("an idle keep-alive connection is closed");
}

/// The types of the HTTP/2 frames in `bytes` (RFC 9113 §4.1), after the
/// server's preface.
fn frame_types(mut bytes: &[u8]) -> Vec<u8> {
    let mut types = Vec::new();
    while bytes.len() >= 9 {
        let length = u32::from_be_bytes([0, bytes[0], bytes[1], bytes[2]]) as usize;
        types.push(bytes[3]);
        bytes = &bytes[(9 + length).min(bytes.len())..];
    }
    types
}

#[tokio::test]
async fn an_idle_http2_connection_is_closed_with_goaway() {
    let server = Server::start("[server]\nheader_read_timeout = \"1s\"\n");
    let deadline = Duration::from_secs(10);
    let connector =
        tokio_rustls::TlsConnector::from(crate::support::pki::insecure_client_config(&[b"h2"]));
    let name = rustls_pki_types::ServerName::try_from("nobody.test").unwrap();

    // A client that never sends its preface.
    let tcp = TcpStream::connect(server.websecure).await.unwrap();
    let mut silent = connector.connect(name.clone(), tcp).await.unwrap();
    tokio::time::timeout(deadline, until_closed(&mut silent))
        .await
        .expect("a client that never starts HTTP/2 is disconnected");

    // A client that starts, then sends nothing more.
    let tcp = TcpStream::connect(server.websecure).await.unwrap();
    let mut idle = connector.connect(name, tcp).await.unwrap();
    idle.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0")
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let seen = tokio::time::timeout(deadline, until_closed(&mut idle))
        .await
        .expect("an idle HTTP/2 connection is closed");
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "not before the timeout"
    );
    let types = frame_types(&seen);
    // SETTINGS first (RFC 9113 §3.4), GOAWAY (0x7) last.
    assert_eq!(types.first(), Some(&0x4), "{types:?}");
    assert_eq!(types.last(), Some(&0x7), "{types:?}");
}
