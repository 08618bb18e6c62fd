//! HTTP/1.1 from clients: plain requests are answered by Portcullis's own
//! loop and the rest by hyper, on the same connection, in order.

use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::*;

fn routes(backend: &Backend) -> String {
    route_toml("app", &["app.test"], &[&backend.upstream()], "")
}

/// A raw TLS connection to `app.test` offering one ALPN protocol.
async fn tls_to(
    server: &Server,
    pki: &Pki,
    alpn: &[u8],
) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(server.websecure).await?;
    let connector = tokio_rustls::TlsConnector::from(pki.client_config(&[alpn], None));
    let name = rustls_pki_types::ServerName::try_from("app.test").unwrap();
    connector.connect(name, tcp).await
}

/// Everything the server sends until it closes the connection cleanly;
/// `why` says why it should close within the time allowed.
async fn until_closed(tls: &mut tokio_rustls::client::TlsStream<TcpStream>, why: &str) -> String {
    let mut seen = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), tls.read_to_end(&mut seen))
        .await
        .expect(why)
        .expect("a clean TLS close");
    String::from_utf8_lossy(&seen).into_owned()
}

#[tokio::test]
async fn plain_requests_and_requests_with_bodies_share_one_connection() {
    let pki = Pki::new("Test CA");
    let backend = Backend::start("app").await;
    let server = https_server(&pki, &routes(&backend), &["app.test"]).await;
    let mut conn = Conn::https(
        server.websecure,
        "app.test",
        pki.client_config(&[b"http/1.1"], None),
    )
    .await
    .unwrap();
    assert!(!conn.is_h2());

    let first = conn.get("app.test", "/first").await.unwrap();
    assert_eq!(first.status, 200);
    assert_eq!(first.json()["path"], "/first");
    assert!(first.headers.contains_key("date"));
    // A body: from here on hyper serves the connection.
    let posted = conn
        .send(
            "POST",
            "app.test",
            "/upload",
            &[],
            Bytes::from_static(b"ping"),
        )
        .await
        .unwrap();
    assert_eq!(posted.status, 200);
    assert_eq!(posted.json()["body"], "ping");
    let last = conn.get("app.test", "/last").await.unwrap();
    assert_eq!(last.json()["path"], "/last");
    assert_eq!(backend.hits.load(Ordering::SeqCst), 3);
    assert_eq!(
        backend.connections.load(Ordering::SeqCst),
        1,
        "one upstream connection, reused whichever server read the request"
    );
}

#[tokio::test]
async fn pipelined_requests_over_tls_are_answered_in_order() {
    let pki = Pki::new("Test CA");
    let backend = Backend::start("app").await;
    let server = https_server(&pki, &routes(&backend), &["app.test"]).await;
    let mut tls = tls_to(&server, &pki, b"http/1.1").await.unwrap();
    tls.write_all(
        b"GET /one HTTP/1.1\r\nhost: app.test\r\n\r\n\
          HEAD /two HTTP/1.1\r\nhost: app.test\r\n\r\n\
          GET /three HTTP/1.1\r\nhost: app.test\r\nconnection: close\r\n\r\n",
    )
    .await
    .unwrap();
    let seen = until_closed(&mut tls, "the connection closes after the third answer").await;
    assert_eq!(seen.matches("HTTP/1.1 200 OK\r\n").count(), 3, "{seen}");
    let one = seen.find("\"/one\"").expect("first answer");
    let three = seen.find("\"/three\"").expect("third answer");
    assert!(one < three, "{seen}");
    assert!(!seen.contains("\"/two\""), "HEAD has no body: {seen}");
    assert!(seen.ends_with('}') || seen.ends_with("}\n"), "{seen}");
}

/// `curl --http1.0` offers ALPN `http/1.0` and nothing else; refusing it
/// (the TLS `no_application_protocol` alert) would lock such clients out, as
/// nginx and haproxy do not.
#[tokio::test]
async fn a_client_offering_only_http_1_0_by_alpn_is_served() {
    let pki = Pki::new("Test CA");
    let backend = Backend::start("app").await;
    let server = https_server(&pki, &routes(&backend), &["app.test"]).await;
    let mut tls = tls_to(&server, &pki, b"http/1.0")
        .await
        .expect("the handshake accepts ALPN http/1.0");
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"http/1.0"[..]));
    tls.write_all(b"GET /old HTTP/1.0\r\nhost: app.test\r\n\r\n")
        .await
        .unwrap();
    let seen = until_closed(
        &mut tls,
        "an HTTP/1.0 request without keep-alive ends its connection",
    )
    .await;
    assert!(seen.starts_with("HTTP/1.0 200 OK\r\n"), "{seen}");
    assert!(seen.contains("\"/old\""), "{seen}");
    assert_eq!(backend.hits.load(Ordering::SeqCst), 1);
}
