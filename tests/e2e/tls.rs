//! Certificate selection by SNI, ALPN, and the Host/SNI check.

use std::time::Duration;

use crate::support::pki::{common_name, insecure_client_config};
use crate::support::*;

#[tokio::test]
async fn sni_picks_exact_then_wildcard_then_the_fallback() {
    let pki = Pki::new("Test CA");
    let backend = Backend::start("app").await;
    let server = Server::start("");
    let dir = server.dynamic_dir();
    pki.write_server(&dir, "api", &["api.example.test"]);
    pki.write_server(&dir, "wild", &["*.example.test"]);
    let mut config = route_toml(
        "app",
        &["api.example.test", "*.example.test"],
        &[&backend.upstream()],
        "",
    );
    config.push_str(&cert_toml("api"));
    config.push_str(&cert_toml("wild"));
    server.write_dynamic("app.toml", &config);
    server.wait_for_log("certificates=2", Duration::from_secs(10));

    // Each name's chain verifies against the CA for that SNI.
    let trusted = pki.client_config(&[b"http/1.1"], None);
    for (name, expected_cn) in [
        ("api.example.test", "api.example.test"),
        ("www.example.test", "*.example.test"),
    ] {
        let mut conn = Conn::https(server.websecure, name, trusted.clone())
            .await
            .unwrap();
        assert_eq!(
            common_name(conn.peer_certificate.as_ref().unwrap()),
            expected_cn,
            "{name}"
        );
        let reply = conn.get(name, "/").await.unwrap();
        assert_eq!(reply.status, 200);
        assert_eq!(reply.backend(), "app");
    }

    // A name nobody loaded gets the self-signed fallback, recognisable by its subject.
    let conn = Conn::https(
        server.websecure,
        "unknown.test",
        insecure_client_config(&[b"http/1.1"]),
    )
    .await
    .unwrap();
    assert_eq!(
        common_name(conn.peer_certificate.as_ref().unwrap()),
        "PORTCULLIS DEFAULT CERT"
    );
    assert!(
        Conn::https(server.websecure, "unknown.test", trusted)
            .await
            .is_err(),
        "the fallback must not verify for a real name"
    );
}

/// A server with one route, app.test, and its certificate from a test CA.
async fn app_server() -> (Pki, Backend, Server) {
    let pki = Pki::new("Test CA");
    let backend = Backend::start("app").await;
    let server = Server::start("");
    pki.write_server(&server.dynamic_dir(), "app", &["app.test"]);
    let mut config = route_toml("app", &["app.test"], &[&backend.upstream()], "");
    config.push_str(&cert_toml("app"));
    server.write_dynamic("app.toml", &config);
    server.wait_for_log("certificates=1", Duration::from_secs(10));
    (pki, backend, server)
}

#[tokio::test]
async fn alpn_negotiates_h2_and_http11() {
    let (pki, _backend, server) = app_server().await;

    let mut h2 = Conn::https(
        server.websecure,
        "app.test",
        pki.client_config(&[b"h2", b"http/1.1"], None),
    )
    .await
    .unwrap();
    assert_eq!(h2.alpn.as_deref(), Some(&b"h2"[..]));
    let reply = h2.get("app.test", "/x").await.unwrap();
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.json()["version"],
        "HTTP/1.1",
        "upstreams are spoken to in HTTP/1.1"
    );

    let mut h1 = Conn::https(
        server.websecure,
        "app.test",
        pki.client_config(&[b"http/1.1"], None),
    )
    .await
    .unwrap();
    assert_eq!(h1.alpn.as_deref(), Some(&b"http/1.1"[..]));
    assert_eq!(h1.get("app.test", "/").await.unwrap().status, 200);
}

#[tokio::test]
async fn host_not_covered_by_sni_is_misdirected() {
    let pki = Pki::new("Test CA");
    let a = Backend::start("a").await;
    let b = Backend::start("b").await;
    let server = Server::start("");
    pki.write_server(&server.dynamic_dir(), "both", &["a.test", "b.test"]);
    let mut config = route_toml("a", &["a.test"], &[&a.upstream()], "");
    config.push_str(&route_toml("b", &["b.test"], &[&b.upstream()], ""));
    config.push_str(&cert_toml("both"));
    server.write_dynamic("ab.toml", &config);
    server.wait_for_log("routers=2", Duration::from_secs(10));

    for alpn in [&b"h2"[..], &b"http/1.1"[..]] {
        let mut conn = Conn::https(server.websecure, "a.test", pki.client_config(&[alpn], None))
            .await
            .unwrap();
        assert_eq!(conn.get("a.test", "/").await.unwrap().backend(), "a");
        let reply = conn.get("b.test", "/").await.unwrap();
        assert_eq!(
            reply.status, 421,
            "a connection for a.test must not serve b.test"
        );
        assert_eq!(b.hits.load(std::sync::atomic::Ordering::Relaxed), 0);
    }
}

/// A client of one TLS version, speaking HTTP/1.1, trusting the test CA.
fn http11_client(
    pki: &Pki,
    version: &'static rustls::SupportedProtocolVersion,
) -> rustls::ClientConfig {
    let mut config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_protocol_versions(&[version])
    .unwrap()
    .with_root_certificates(pki.roots())
    .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config
}

#[tokio::test]
async fn tls12_and_tls13_are_accepted() {
    let (pki, _backend, server) = app_server().await;
    for version in [&rustls::version::TLS12, &rustls::version::TLS13] {
        let config = http11_client(&pki, version);
        let reply = client::https_get(
            server.websecure,
            "app.test",
            std::sync::Arc::new(config),
            "app.test",
            "/",
        )
        .await
        .unwrap();
        assert_eq!(reply.status, 200, "{version:?}");
    }
}

/// The cipher suite a client offering `suites` (in its order of preference)
/// gets from the server.
async fn negotiated(
    server: &Server,
    pki: &Pki,
    version: &'static rustls::SupportedProtocolVersion,
    suites: &[rustls::SupportedCipherSuite],
) -> rustls::CipherSuite {
    let mut provider = rustls::crypto::aws_lc_rs::default_provider();
    provider.cipher_suites = suites.to_vec();
    let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(provider))
        .with_protocol_versions(&[version])
        .unwrap()
        .with_root_certificates(pki.roots())
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(server.websecure)
        .await
        .unwrap();
    let name = rustls::pki_types::ServerName::try_from("app.test").unwrap();
    let tls = connector.connect(name, tcp).await.unwrap();
    tls.get_ref().1.negotiated_cipher_suite().unwrap().suite()
}

#[tokio::test]
async fn the_server_prefers_aes_128_gcm_whatever_the_client_lists_first() {
    use rustls::crypto::aws_lc_rs::cipher_suite as suite;
    use rustls::CipherSuite;
    let (pki, _backend, server) = app_server().await;

    // OpenSSL's order: AES-256 first. The server's SHA-256 suite wins.
    let tls13 = [
        suite::TLS13_AES_256_GCM_SHA384,
        suite::TLS13_CHACHA20_POLY1305_SHA256,
        suite::TLS13_AES_128_GCM_SHA256,
    ];
    assert_eq!(
        negotiated(&server, &pki, &rustls::version::TLS13, &tls13).await,
        CipherSuite::TLS13_AES_128_GCM_SHA256
    );
    let tls12 = [
        suite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        suite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    ];
    assert_eq!(
        negotiated(&server, &pki, &rustls::version::TLS12, &tls12).await,
        CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
    );
    // A client that offers only the others still gets one of them.
    assert_eq!(
        negotiated(&server, &pki, &rustls::version::TLS13, &tls13[..2]).await,
        CipherSuite::TLS13_CHACHA20_POLY1305_SHA256
    );
    assert_eq!(
        negotiated(&server, &pki, &rustls::version::TLS13, &tls13[..1]).await,
        CipherSuite::TLS13_AES_256_GCM_SHA384
    );
}

/// One `Connection: close` request over a fresh connection; how the
/// handshake went.
async fn one_request(
    server: &Server,
    config: &std::sync::Arc<rustls::ClientConfig>,
    pause_before_request: Duration,
) -> rustls::HandshakeKind {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::clone(config));
    let tcp = tokio::net::TcpStream::connect(server.websecure)
        .await
        .unwrap();
    let name = rustls::pki_types::ServerName::try_from("app.test").unwrap();
    let mut tls = connector.connect(name, tcp).await.unwrap();
    let kind = tls.get_ref().1.handshake_kind().unwrap();
    tokio::time::sleep(pause_before_request).await;
    tls.write_all(b"GET / HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut response = Vec::new();
    tls.read_to_end(&mut response).await.unwrap();
    assert!(
        response.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&response)
    );
    kind
}

#[tokio::test]
async fn clients_resume_by_ticket_and_by_session_id() {
    use rustls::client::{Resumption, Tls12Resumption};
    use rustls::HandshakeKind::{Full, Resumed};
    let (pki, _backend, server) = app_server().await;
    let cases = [
        // The ticket travels with the response, whether the request came
        // right behind the client's Finished or well after it.
        (&rustls::version::TLS13, Duration::ZERO),
        (&rustls::version::TLS13, Duration::from_millis(200)),
        (&rustls::version::TLS12, Duration::ZERO),
    ];
    for (version, pause) in cases {
        let mut config = http11_client(&pki, version);
        // TLS 1.2 by the server's session cache, not by ticket.
        config.resumption =
            Resumption::in_memory_sessions(8).tls12_resumption(Tls12Resumption::SessionIdOnly);
        let config = std::sync::Arc::new(config);
        let case = format!("{version:?}, request {pause:?} after the handshake");
        assert_eq!(one_request(&server, &config, pause).await, Full, "{case}");
        assert_eq!(
            one_request(&server, &config, pause).await,
            Resumed,
            "{case}"
        );
    }
}
