//! Forwarding: headers, balancing, upstream failures, streaming, upgrades, `web`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http_body_util::BodyExt;

use crate::support::*;

#[tokio::test]
async fn forwarded_headers_are_set_and_hop_by_hop_removed() {
    let pki = Pki::new("Test CA");
    let backend = Backend::start("app").await;
    let server = https_server(
        &pki,
        &route_toml("app", &["app.test"], &[&backend.upstream()], ""),
        &["app.test"],
    )
    .await;
    for alpn in [&b"h2"[..], &b"http/1.1"[..]] {
        let mut conn = Conn::https(
            server.websecure,
            "app.test",
            pki.client_config(&[alpn], None),
        )
        .await
        .unwrap();
        let h1 = !conn.is_h2();
        let mut headers = vec![("x-forwarded-for", "6.6.6.6"), ("x-custom", "kept")];
        if h1 {
            headers.extend([
                ("connection", "keep-alive, x-drop-me"),
                ("x-drop-me", "1"),
                ("keep-alive", "timeout=5"),
            ]);
        }
        let reply = conn
            .send("GET", "app.test", "/path?q=1", &headers, Bytes::new())
            .await
            .unwrap();
        assert_eq!(reply.status, 200);
        let seen = reply.json();
        let h = &seen["headers"];
        assert_eq!(
            h["x-forwarded-for"], "127.0.0.1",
            "client-sent XFF is replaced"
        );
        assert_eq!(h["x-forwarded-proto"], "https");
        assert_eq!(h["x-forwarded-host"], "app.test");
        assert_eq!(
            h["host"], "app.test",
            "the original Host reaches the upstream"
        );
        assert_eq!(h["x-custom"], "kept");
        assert_eq!(seen["path"], "/path");
        if h1 {
            assert!(
                h.get("x-drop-me").is_none(),
                "Connection-named header forwarded: {h}"
            );
            assert!(h.get("keep-alive").is_none());
        }
    }
}

#[tokio::test]
async fn upstreams_are_balanced_round_robin() {
    let pki = Pki::new("Test CA");
    let one = Backend::start("one").await;
    let two = Backend::start("two").await;
    let server = https_server(
        &pki,
        &route_toml(
            "app",
            &["app.test"],
            &[&one.upstream(), &two.upstream()],
            "",
        ),
        &["app.test"],
    )
    .await;
    let mut conn = Conn::https(
        server.websecure,
        "app.test",
        pki.client_config(&[b"h2"], None),
    )
    .await
    .unwrap();
    let mut seen = Vec::new();
    for _ in 0..10 {
        seen.push(conn.get("app.test", "/").await.unwrap().backend());
    }
    assert_eq!(seen.iter().filter(|b| *b == "one").count(), 5, "{seen:?}");
    assert_eq!(seen.iter().filter(|b| *b == "two").count(), 5, "{seen:?}");
}

#[tokio::test]
async fn upstream_connections_are_reused_and_idle_closes_cost_no_request() {
    let pki = Pki::new("Test CA");
    let pooled = Backend::start("pooled").await;
    let closing = Backend::start_with_idle_close("closing", Some(Duration::from_millis(200))).await;
    let mut routes = route_toml("pooled", &["pooled.test"], &[&pooled.upstream()], "");
    routes.push_str(&route_toml(
        "closing",
        &["closing.test"],
        &[&closing.upstream()],
        "",
    ));
    let server = https_server(&pki, &routes, &["pooled.test", "closing.test"]).await;

    // One client connection lives on one worker, which reuses one upstream
    // connection for all its requests, one after another.
    let mut conn = Conn::https(
        server.websecure,
        "pooled.test",
        pki.client_config(&[b"http/1.1"], None),
    )
    .await
    .unwrap();
    for _ in 0..20 {
        assert_eq!(conn.get("pooled.test", "/").await.unwrap().status, 200);
    }
    assert_eq!(pooled.hits.load(Ordering::Relaxed), 20);
    assert_eq!(
        pooled.connections.load(Ordering::Relaxed),
        1,
        "20 sequential requests should share one upstream connection"
    );

    // The backend closes its idle connection between requests: the proxy
    // notices and opens a new one instead of answering 502.
    let mut conn = Conn::https(
        server.websecure,
        "closing.test",
        pki.client_config(&[b"http/1.1"], None),
    )
    .await
    .unwrap();
    for round in 0..4 {
        let reply = conn.get("closing.test", "/").await.unwrap();
        assert_eq!(reply.status, 200, "round {round}: {}", reply.body);
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    assert_eq!(closing.connections.load(Ordering::Relaxed), 4);
}

#[tokio::test]
async fn refused_upstream_is_502_and_slow_upstream_is_504() {
    let pki = Pki::new("Test CA");
    let slow = Backend::start("slow").await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut routes = route_toml("down", &["down.test"], &[&closed.to_string()], "");
    routes.push_str(&route_toml("slow", &["slow.test"], &[&slow.upstream()], ""));
    routes = routes.replace(
        &format!("[services.slow]\nupstreams = [\"{}\"]", slow.upstream()),
        &format!(
            "[services.slow]\nupstreams = [\"{}\"]\nresponse_timeout = \"300ms\"",
            slow.upstream()
        ),
    );
    let server = https_server(&pki, &routes, &["down.test", "slow.test"]).await;
    let config = pki.client_config(&[b"http/1.1"], None);
    let reply = client::https_get(
        server.websecure,
        "down.test",
        config.clone(),
        "down.test",
        "/",
    )
    .await
    .unwrap();
    assert_eq!(reply.status, 502);
    let reply = client::https_get(
        server.websecure,
        "slow.test",
        config.clone(),
        "slow.test",
        "/slow?ms=3000",
    )
    .await
    .unwrap();
    assert_eq!(reply.status, 504);
    let reply = client::https_get(
        server.websecure,
        "slow.test",
        config,
        "slow.test",
        "/slow?ms=10",
    )
    .await
    .unwrap();
    assert_eq!(reply.status, 200, "fast enough requests still pass");
    let logs = server.logs();
    assert!(
        logs.contains("upstream request failed")
            && logs.contains("router=down")
            && logs.contains("502"),
        "{logs}"
    );
    assert!(
        logs.contains("router=slow") && logs.contains("504"),
        "{logs}"
    );
}

/// A response timeout of ten sweep intervals or more is kept by the
/// worker's sweep instead of a timer per request (on the plain HTTP/1.1
/// path): it still fires after the timeout and not before, counts from each
/// request's own start on a keep-alive connection, and lets a body stream
/// past it once the head has arrived.
#[tokio::test]
async fn a_long_response_timeout_is_kept_per_request_by_the_sweep() {
    let pki = Pki::new("Test CA");
    let slow = Backend::start("slow").await;
    // The sweep runs every 50 ms, fine enough to keep a 1 s timeout.
    let server = Server::start("[server]\nheader_read_timeout = \"200ms\"\n");
    pki.write_server(&server.dynamic_dir(), "site", &["slow.test"]);
    let mut config = route_toml("slow", &["slow.test"], &[&slow.upstream()], "").replace(
        "[routers.slow]",
        "response_timeout = \"1s\"\n\n[routers.slow]",
    );
    config.push_str(&cert_toml("site"));
    server.write_dynamic("site.toml", &config);
    server.wait_for_log("certificates=1", Duration::from_secs(10));
    let mut conn = Conn::https(
        server.websecure,
        "slow.test",
        pki.client_config(&[b"http/1.1"], None),
    )
    .await
    .unwrap();

    // Two 700 ms answers in a row: each within its own request's timeout,
    // though the second ends past one from the first request's start.
    for round in 0..2 {
        let reply = conn.get("slow.test", "/slow?ms=700").await.unwrap();
        assert_eq!(reply.status, 200, "round {round}: {}", reply.body);
    }
    let started = std::time::Instant::now();
    let reply = conn.get("slow.test", "/slow?ms=5000").await.unwrap();
    let waited = started.elapsed();
    assert_eq!(reply.status, 504, "{}", reply.body);
    assert!(
        waited >= Duration::from_secs(1) && waited < Duration::from_millis(2500),
        "answered after {waited:?}"
    );
    // The same connection goes on, and a body that streams for longer than
    // the timeout after its head is not cut.
    let reply = conn.get("slow.test", "/stream?ms=300").await.unwrap();
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body.lines().count(), 5, "{}", reply.body);
}

#[tokio::test]
async fn bodies_stream_both_ways() {
    let pki = Pki::new("Test CA");
    let backend = Backend::start("app").await;
    let server = https_server(
        &pki,
        &route_toml("app", &["app.test"], &[&backend.upstream()], ""),
        &["app.test"],
    )
    .await;

    let mut conn = Conn::https(
        server.websecure,
        "app.test",
        pki.client_config(&[b"h2"], None),
    )
    .await
    .unwrap();
    let payload = "x".repeat(256 * 1024);
    let reply = conn
        .send(
            "POST",
            "app.test",
            "/echo",
            &[],
            Bytes::from(payload.clone()),
        )
        .await
        .unwrap();
    assert_eq!(reply.json()["body"].as_str().unwrap().len(), payload.len());

    // The first chunk of a slow response arrives before the upstream has sent the rest.
    let tcp = tokio::net::TcpStream::connect(server.websecure)
        .await
        .unwrap();
    let tls = tokio_rustls::TlsConnector::from(pki.client_config(&[b"http/1.1"], None))
        .connect("app.test".try_into().unwrap(), tcp)
        .await
        .unwrap();
    let (mut sender, c) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(c);
    let request = http::Request::get("/stream")
        .header("host", "app.test")
        .body(http_body_util::Empty::<Bytes>::new())
        .unwrap();
    let mut body = sender.send_request(request).await.unwrap().into_body();
    let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
    assert_eq!(
        &first[..],
        b"chunk0\n",
        "the proxy must not wait for the whole body"
    );
    let rest = body.collect().await.unwrap().to_bytes();
    assert_eq!(&rest[..], b"chunk1\nchunk2\nchunk3\nchunk4\n");
}

#[tokio::test]
async fn websocket_is_tunnelled_both_ways() {
    let pki = Pki::new("Test CA");
    let ws = Backend::websocket_echo("ws").await;
    let server = https_server(
        &pki,
        &route_toml("ws", &["ws.test"], &[&ws.upstream()], ""),
        &["ws.test"],
    )
    .await;
    let tcp = tokio::net::TcpStream::connect(server.websecure)
        .await
        .unwrap();
    let tls = tokio_rustls::TlsConnector::from(pki.client_config(&[b"http/1.1"], None))
        .connect("ws.test".try_into().unwrap(), tcp)
        .await
        .unwrap();
    let (mut socket, response) = tokio_tungstenite::client_async("wss://ws.test/chat", tls)
        .await
        .unwrap();
    assert_eq!(response.status(), 101);
    for i in 0..3 {
        socket
            .send(tokio_tungstenite::tungstenite::Message::Text(format!(
                "hello {i}"
            )))
            .await
            .unwrap();
        let echoed = socket.next().await.unwrap().unwrap();
        assert_eq!(echoed.to_text().unwrap(), format!("ws:hello {i}"));
    }
    assert_eq!(ws.hits.load(Ordering::Relaxed), 1);
}

#[tokio::test]
async fn web_serves_plain_routes_redirects_secure_ones_and_keeps_acme_path() {
    let pki = Pki::new("Test CA");
    let backend = Backend::start("app").await;
    let mut routes = route_toml("secure", &["secure.test"], &[&backend.upstream()], "");
    routes.push_str(&route_toml(
        "plain",
        &["plain.test"],
        &[&backend.upstream()],
        "entrypoint = \"web\"",
    ));
    let server = https_server(&pki, &routes, &["secure.test"]).await;

    let mut conn = Conn::http(server.web).await.unwrap();
    let reply = conn.get("plain.test", "/hello").await.unwrap();
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json()["headers"]["x-forwarded-proto"], "http");

    let reply = conn.get("secure.test", "/a/b?c=d").await.unwrap();
    assert_eq!(reply.status, 308);
    let location = reply.headers["location"].to_str().unwrap();
    assert_eq!(
        location,
        format!("https://secure.test:{}/a/b?c=d", server.websecure.port())
    );

    let reply = conn
        .get("secure.test", "/.well-known/acme-challenge/some-token")
        .await
        .unwrap();
    assert_eq!(
        reply.status, 404,
        "challenge paths are answered locally, never redirected"
    );

    let reply = conn.get("nobody.test", "/").await.unwrap();
    assert_eq!(reply.status, 404);

    // A plain route is not reachable over TLS.
    let reply = client::https_get(
        server.websecure,
        "plain.test",
        crate::support::pki::insecure_client_config(&[b"http/1.1"]),
        "plain.test",
        "/",
    )
    .await
    .unwrap();
    assert_eq!(reply.status, 404);
}

/// A raw HTTP/1.1 upstream answering by path with exactly the bytes given,
/// so that framing the proxy must honour is under the test's control:
/// `/head` (any method) a head with `Content-Length: 42` and no body,
/// `/empty` a 204, `/close` a body delimited by closing the connection,
/// `/early` a 413 sent before the request body is read. It counts the TCP
/// connections it accepts.
async fn scripted_upstream() -> (String, Arc<AtomicUsize>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&accepted);
    tokio::spawn(async move {
        loop {
            let (mut stream, _) = listener.accept().await.unwrap();
            counter.fetch_add(1, Ordering::Relaxed);
            tokio::spawn(async move {
                let mut seen = Vec::new();
                loop {
                    let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") else {
                        let mut buf = [0u8; 4096];
                        match stream.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => seen.extend_from_slice(&buf[..n]),
                        }
                        continue;
                    };
                    let head = String::from_utf8_lossy(&seen[..end]).into_owned();
                    seen.drain(..end + 4);
                    let path = head.split(' ').nth(1).unwrap_or("/").to_owned();
                    let (reply, close): (&[u8], bool) = match path.as_str() {
                        "/head" => (b"HTTP/1.1 200 OK\r\ncontent-length: 42\r\nx-kind: head\r\n\r\n", false),
                        "/empty" => (b"HTTP/1.1 204 No Content\r\nx-kind: empty\r\n\r\n", false),
                        "/close" => (b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nuntil the end", true),
                        "/early" => (b"HTTP/1.1 413 Content Too Large\r\ncontent-length: 8\r\nconnection: close\r\n\r\ntoo long", true),
                        _ => (b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", false),
                    };
                    if stream.write_all(reply).await.is_err() {
                        return;
                    }
                    if close {
                        // A lingering close, as nginx does: closing with an
                        // unread upload would reset the connection instead.
                        let _ = stream.shutdown().await;
                        let drain = async {
                            let mut buf = [0u8; 65536];
                            while matches!(stream.read(&mut buf).await, Ok(n) if n > 0) {}
                        };
                        let _ = tokio::time::timeout(Duration::from_secs(5), drain).await;
                        return;
                    }
                }
            });
        }
    });
    (addr, accepted)
}

#[tokio::test]
async fn upstream_framing_is_honoured_and_early_answers_reach_the_client() {
    let pki = Pki::new("Test CA");
    let (upstream, accepted) = scripted_upstream().await;
    let server = https_server(
        &pki,
        &route_toml("raw", &["raw.test"], &[&upstream], ""),
        &["raw.test"],
    )
    .await;
    let mut conn = Conn::https(
        server.websecure,
        "raw.test",
        pki.client_config(&[b"http/1.1"], None),
    )
    .await
    .unwrap();

    // HEAD: the upstream's length is passed on, no body is waited for, and
    // the upstream connection serves the next requests.
    let reply = conn
        .send("HEAD", "raw.test", "/head", &[], Bytes::new())
        .await
        .unwrap();
    assert_eq!(reply.status, 200);
    assert_eq!(reply.headers["content-length"], "42");
    assert_eq!(reply.body, "");
    let reply = conn.get("raw.test", "/empty").await.unwrap();
    assert_eq!((reply.status.as_u16(), reply.body.as_str()), (204, ""));
    assert_eq!(reply.headers["x-kind"], "empty");
    let reply = conn.get("raw.test", "/chunked").await.unwrap();
    assert_eq!((reply.status.as_u16(), reply.body.as_str()), (200, "abc"));
    assert_eq!(
        accepted.load(Ordering::Relaxed),
        1,
        "one upstream connection so far"
    );

    // A body delimited by the upstream closing arrives whole, and the next
    // request goes on a new upstream connection.
    let reply = conn.get("raw.test", "/close").await.unwrap();
    assert_eq!(
        (reply.status.as_u16(), reply.body.as_str()),
        (200, "until the end")
    );
    assert!(
        !reply.headers.contains_key("connection"),
        "hop-by-hop header passed on"
    );
    let reply = conn.get("raw.test", "/chunked").await.unwrap();
    assert_eq!(reply.body, "abc");
    assert_eq!(accepted.load(Ordering::Relaxed), 2);

    // The upstream refuses a large upload before reading it: the client gets
    // the 413, not a 502 for the upload the upstream stopped reading.
    let mut conn = Conn::https(
        server.websecure,
        "raw.test",
        pki.client_config(&[b"h2"], None),
    )
    .await
    .unwrap();
    let upload = Bytes::from(vec![b'x'; 8 * 1024 * 1024]);
    let reply = conn
        .send("POST", "raw.test", "/early", &[], upload)
        .await
        .unwrap();
    assert_eq!(
        (reply.status.as_u16(), reply.body.as_str()),
        (413, "too long")
    );
}
