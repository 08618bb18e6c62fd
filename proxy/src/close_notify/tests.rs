use std::time::Duration;

use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::client::TlsStream as ClientTls;

use super::*;
use http::header;

fn request(version: Version, connection: &[&[u8]]) -> Request<()> {
    let mut builder = Request::builder().version(version);
    for value in connection {
        builder = builder.header(header::CONNECTION, *value);
    }
    builder.body(()).expect("valid request")
}

#[test]
fn only_requests_hyper_answers_last_close_the_connection() {
    assert!(!closes_connection(&request(Version::HTTP_11, &[])));
    assert!(closes_connection(&request(Version::HTTP_11, &[b"close"])));
    assert!(closes_connection(&request(
        Version::HTTP_11,
        &[b"TE, Close"]
    )));
    assert!(closes_connection(&request(
        Version::HTTP_11,
        &[b"keep-alive", b"close"]
    )));
    assert!(!closes_connection(&request(Version::HTTP_11, &[b"closed"])));
    assert!(closes_connection(&request(Version::HTTP_10, &[])));
    assert!(!closes_connection(&request(
        Version::HTTP_10,
        &[b"Keep-Alive"]
    )));
    assert!(closes_connection(&request(
        Version::HTTP_10,
        &[b"keep-alive", b"close"]
    )));
    // hyper reads no token from a value that is not visible ASCII.
    assert!(!closes_connection(&request(
        Version::HTTP_11,
        &[b"close, \xff"]
    )));
    assert!(!closes_connection(&request(Version::HTTP_2, &[])));
}

/// A TLS connection over loopback: the server side as the listener makes it.
async fn connection(ending: &Arc<Ending>) -> (EndingTls, ClientTls<TcpStream>) {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let issued = rcgen::generate_simple_self_signed(vec!["a.test".to_owned()]).unwrap();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(issued.key_pair.serialize_der()));
    let server = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![issued.cert.der().clone()], key)
        .unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(issued.cert.der().clone()).unwrap();
    let client = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();

    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let connect = async {
        let tcp = TcpStream::connect(address).await.unwrap();
        let name = ServerName::try_from("a.test").unwrap();
        tokio_rustls::TlsConnector::from(Arc::new(client))
            .connect(name, tcp)
            .await
            .unwrap()
    };
    let accept = async {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut tls = tokio_rustls::TlsAcceptor::from(Arc::new(server))
            .accept(LateTickets::new(tcp))
            .await
            .unwrap();
        tls.get_mut().0.handshake_done();
        EndingTls::new(tls, Some(Arc::clone(ending)))
    };
    let (client, server) = tokio::join!(connect, accept);
    (server, client)
}

/// What the client reads within a short while: bytes, then whether the
/// server closed cleanly (`close_notify`).
async fn received(client: &mut ClientTls<TcpStream>) -> (Vec<u8>, bool) {
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    while let Ok(read) =
        tokio::time::timeout(Duration::from_millis(200), client.read(&mut buf)).await
    {
        match read.unwrap() {
            0 => return (got, true),
            n => got.extend_from_slice(&buf[..n]),
        }
    }
    (got, false)
}

const RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 2\r\n\r\nok";

#[tokio::test]
async fn the_last_answer_leaves_with_close_notify_and_the_fin() {
    let ending = Arc::new(Ending::default());
    let (mut server, mut client) = connection(&ending).await;
    // The answer's body is done: its guard goes with the body.
    drop(LastAnswer::new(Arc::clone(&ending)));
    server.write_all(RESPONSE).await.unwrap();
    assert_eq!(
        received(&mut client).await,
        (Vec::new(), false),
        "nothing leaves before the flush"
    );
    server.flush().await.unwrap();
    // On Linux the kernel holds the flush's one segment for the FIN.
    #[cfg(target_os = "linux")]
    {
        assert_eq!(
            received(&mut client).await,
            (Vec::new(), false),
            "the last answer left before the shutdown's FIN"
        );
        server.shutdown().await.unwrap();
    }
    // The close_notify came with the flush, in the same write.
    assert_eq!(received(&mut client).await, (RESPONSE.to_vec(), true));
    #[cfg(not(target_os = "linux"))]
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn other_answers_leave_as_written_and_keep_the_connection_open() {
    let ending = Arc::new(Ending::default());
    let (mut server, mut client) = connection(&ending).await;
    // An answer that does not end the connection: its guard never dropped.
    let _kept = LastAnswer::new(Arc::clone(&ending));
    server.write_all(RESPONSE).await.unwrap();
    assert_eq!(received(&mut client).await, (RESPONSE.to_vec(), false));
    server.flush().await.unwrap();
    assert_eq!(received(&mut client).await, (Vec::new(), false));
    // The connection still carries answers, and closes cleanly when shut.
    server.write_all(RESPONSE).await.unwrap();
    server.shutdown().await.unwrap();
    assert_eq!(received(&mut client).await, (RESPONSE.to_vec(), true));
}
