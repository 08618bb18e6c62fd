//! Client certificates enforced per route.

use std::time::Duration;

use crate::support::*;

#[tokio::test]
async fn required_and_optional_client_certificates() {
    let server_pki = Pki::new("Server CA");
    let client_pki = Pki::new("Client CA");
    let stranger_pki = Pki::new("Stranger CA");
    let backend = Backend::start("app").await;
    let server = Server::start("");
    let dir = server.dynamic_dir();
    server_pki.write_server(&dir, "site", &["app.test"]);
    std::fs::write(dir.join("clients.pem"), &client_pki.ca_pem).unwrap();
    let config = format!(
        r#"
[services.app]
upstreams = ["{up}"]

[routers.public]
hosts = ["app.test"]
service = "app"

[routers.internal]
hosts = ["app.test"]
path_prefix = "/internal"
service = "app"
mtls = "required"
client_ca = "clients.pem"

[routers.worker]
hosts = ["app.test"]
path_prefix = "/worker"
service = "app"
mtls = "optional"
client_ca = "clients.pem"
{cert}"#,
        up = backend.upstream(),
        cert = cert_toml("site")
    );
    server.write_dynamic("site.toml", &config);
    server.wait_for_log("routers=3", Duration::from_secs(10));

    let identity = client_pki.client("worker-7");
    let with_cert = server_pki.client_config(&[b"http/1.1"], Some(&identity));
    let without = server_pki.client_config(&[b"http/1.1"], None);

    // Without a certificate: public and optional routes pass, required is refused.
    let mut anon = Conn::https(server.websecure, "app.test", without)
        .await
        .unwrap();
    assert_eq!(anon.get("app.test", "/").await.unwrap().status, 200);
    let reply = anon.get("app.test", "/worker/x").await.unwrap();
    assert_eq!(reply.status, 200);
    assert!(reply.json()["headers"]
        .get("x-portcullis-client-subject")
        .is_none());
    assert_eq!(
        anon.get("app.test", "/internal/x").await.unwrap().status,
        403
    );

    // With a certificate from the router's CA: both pass, and the subject goes upstream.
    let mut authed = Conn::https(server.websecure, "app.test", with_cert)
        .await
        .unwrap();
    let reply = authed.get("app.test", "/internal/x").await.unwrap();
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.json()["headers"]["x-portcullis-client-subject"],
        "CN=worker-7"
    );
    let reply = authed.get("app.test", "/worker/x").await.unwrap();
    assert_eq!(
        reply.json()["headers"]["x-portcullis-client-subject"],
        "CN=worker-7"
    );

    // A certificate from an unknown CA does not get through the handshake.
    let stranger = stranger_pki.client("intruder");
    let config = server_pki.client_config(&[b"http/1.1"], Some(&stranger));
    let outcome = async {
        let mut conn = Conn::https(server.websecure, "app.test", config).await?;
        conn.get("app.test", "/internal/x").await
    }
    .await;
    match outcome {
        Err(_) => {}
        Ok(reply) => panic!("a stranger's certificate was accepted: {}", reply.status),
    }
}
