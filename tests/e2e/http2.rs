//! HTTP/2 from clients, served by Portcullis's own server: curl (nghttp2),
//! a client Portcullis shares no code with, over TLS; and cleartext HTTP/2
//! with prior knowledge on `web`.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;

use crate::support::*;

/// Runs curl over HTTP/2 against `app.test` on `server`, trusting `pki`;
/// returns what `--write-out` printed after the body.
async fn curl(server: &Server, pki: &Pki, args: &[&str]) -> (String, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, &pki.ca_pem).unwrap();
    let port = server.websecure.port();
    let mut command = std::process::Command::new("curl");
    command
        .args(["--silent", "--show-error", "--http2", "--max-time", "30"])
        .arg("--cacert")
        .arg(&ca)
        .arg("--resolve")
        .arg(format!("app.test:{port}:127.0.0.1"))
        .args(["--write-out", "\n%{http_version} %{http_code}"])
        .args(args);
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .unwrap()
        .expect("curl runs (scripts/test-all installs it)");
    assert!(
        output.status.success(),
        "curl failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let mut body = output.stdout;
    let split = body.iter().rposition(|&b| b == b'\n').unwrap();
    let written = String::from_utf8(body.split_off(split + 1)).unwrap();
    body.pop();
    (written, body)
}

#[tokio::test]
async fn curl_gets_and_uploads_over_http2() {
    let pki = Pki::new("Test CA");
    let backend = Backend::start("app").await;
    let routes = route_toml("app", &["app.test"], &[&backend.upstream()], "");
    let server = https_server(&pki, &routes, &["app.test"]).await;
    let url = format!("https://app.test:{}", server.websecure.port());

    let (written, body) = curl(&server, &pki, &[&format!("{url}/x?y=1")]).await;
    assert_eq!(written, "2 200");
    let seen: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(seen["path"], "/x");
    assert_eq!(seen["method"], "GET");

    // An upload past the stream's and the connection's windows (1 MiB each).
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("upload");
    let upload: Vec<u8> = (0..3 << 20).map(|i| b'a' + (i % 26) as u8).collect();
    std::fs::write(&file, &upload).unwrap();
    let data = format!("@{}", file.display());
    let (written, body) = curl(
        &server,
        &pki,
        &["--data-binary", &data, &format!("{url}/upload")],
    )
    .await;
    assert_eq!(written, "2 200");
    let seen: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(seen["method"], "POST");
    let received = seen["body"].as_str().unwrap().as_bytes();
    assert_eq!(received.len(), upload.len());
    assert!(
        received == upload,
        "the upstream receives the upload as sent"
    );
}

#[tokio::test]
async fn cleartext_http2_with_prior_knowledge_is_served_on_web() {
    let backend = Backend::start("app").await;
    let routes = route_toml(
        "app",
        &["app.test"],
        &[&backend.upstream()],
        "entrypoint = \"web\"\n",
    );
    let server = Server::start("");
    server.write_dynamic("site.toml", &routes);
    server.wait_for_log("routers=1", Duration::from_secs(10));

    let tcp = TcpStream::connect(server.web).await.unwrap();
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .unwrap();
    tokio::spawn(connection);
    for path in ["/one", "/two"] {
        let request = http::Request::get(format!("http://app.test{path}"))
            .body(Full::new(Bytes::new()))
            .unwrap();
        let response = sender.send_request(request).await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.version(), http::Version::HTTP_2);
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let seen: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(seen["path"], path);
    }
}
