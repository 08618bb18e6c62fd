//! The admin API: expose plans with approval, rollback, the routes monitor,
//! tokens and permissions, audit log, metrics, templates, allowlist.

use std::time::Duration;

use serde_json::{json, Value};

use crate::support::lab::{trusting, Lab, CERTS};
use crate::support::pebble::free_port;
use crate::support::*;

const EXPOSE: &str = "/api/v1/ingress/expose";
const PLAN_TIMEOUT: Duration = Duration::from_secs(60);

async fn wait_plan(server: &Server, id: &str) -> Value {
    server.wait_plan(id, PLAN_TIMEOUT).await
}

/// Requests an expose plan and approves it; returns the finished plan.
async fn expose_and_approve(server: &Server, body: Value) -> Value {
    let (status, plan) = server.api("POST", EXPOSE, Some(body)).await;
    assert_eq!(status, 202, "{plan}");
    let id = plan["id"].as_str().unwrap().to_owned();
    if plan["status"] == "awaiting_approval" {
        let (status, approved) = server
            .api("POST", &format!("/api/v1/plans/{id}/approve"), None)
            .await;
        assert_eq!(status, 202, "{approved}");
    }
    wait_plan(server, &id).await
}

fn step<'a>(plan: &'a Value, name: &str) -> &'a Value {
    plan["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap()
}

async fn internal_root(server: &Server) -> String {
    let output = std::process::Command::new(server::binary())
        .args(["ca", "export", "--config"])
        .arg(server.config_path())
        .output()
        .unwrap();
    assert!(output.status.success());
    String::from_utf8(output.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expose_https_with_internal_ca_waits_for_approval_then_serves() {
    let backend = Backend::start("svc").await;
    let server = Server::start_requiring_approval("", 0, 0);
    let body = json!({
        "service_hostname": "App.Internal.test",
        "service_protocol": "https",
        "backend_port": backend.addr.port(),
        "target_host": "127.0.0.1",
        "tls_issuer": "internal-ca",
    });
    let (status, plan) = server.api("POST", EXPOSE, Some(body.clone())).await;
    assert_eq!(status, 202, "{plan}");
    assert_eq!(plan["status"], "awaiting_approval");
    let names: Vec<&str> = plan["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        vec!["service", "routers", "certificate", "table_swap"]
    );

    // Nothing on the public surface until approval.
    let insecure = crate::support::pki::insecure_client_config(&[b"http/1.1"]);
    let reply = client::https_get(
        server.websecure,
        "app.internal.test",
        insecure.clone(),
        "app.internal.test",
        "/",
    )
    .await
    .unwrap();
    assert_eq!(reply.status, 404);
    let (_, certs) = server.api("GET", CERTS, None).await;
    assert_eq!(certs["certificates"].as_array().unwrap().len(), 0);

    let id = plan["id"].as_str().unwrap();
    let (status, _) = server
        .api("POST", &format!("/api/v1/plans/{id}/approve"), None)
        .await;
    assert_eq!(status, 202);
    let done = wait_plan(&server, id).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(
        step(&done, "service")["produced"][0],
        "expose-app.internal.test"
    );
    let certificate = step(&done, "certificate")["produced"][0]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(done["certificate_id"], certificate.as_str());

    // curl --resolve: the backend answers, over the new certificate.
    let client = trusting(&internal_root(&server).await, &[b"h2", b"http/1.1"]);
    let reply = client::https_get(
        server.websecure,
        "app.internal.test",
        client,
        "app.internal.test",
        "/hello",
    )
    .await
    .unwrap();
    assert_eq!(reply.status, 200);
    assert_eq!(reply.backend(), "svc");
    assert_eq!(reply.json()["path"], "/hello");

    // A second approval of the same plan is refused.
    let (status, _) = server
        .api("POST", &format!("/api/v1/plans/{id}/approve"), None)
        .await;
    assert_eq!(status, 409);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expose_with_pebble_http01_and_a_rerun_reuses_service_and_certificate() {
    let backend = Backend::start("svc").await;
    let lab = Lab::start_with("", |_| {}, true).await;
    let body = json!({
        "service_hostname": "shop.example.test",
        "service_protocol": "https",
        "backend_port": backend.addr.port(),
        "target_host": "127.0.0.1",
        "tls_issuer": "pebble",
        "extra_hosts": ["www.shop.example.test"],
    });
    let first = expose_and_approve(&lab.server, body.clone()).await;
    assert_eq!(first["status"], "succeeded", "{first}");
    assert_eq!(step(&first, "service")["reused"], false);
    assert_eq!(step(&first, "certificate")["reused"], false);
    let client = lab.client(&[b"http/1.1"]).await;
    for name in ["shop.example.test", "www.shop.example.test"] {
        let reply = client::https_get(lab.server.websecure, name, client.clone(), name, "/")
            .await
            .unwrap();
        assert_eq!(reply.backend(), "svc", "{name}");
    }

    let again = expose_and_approve(&lab.server, body).await;
    assert_eq!(again["status"], "succeeded", "{again}");
    assert_eq!(step(&again, "service")["reused"], true);
    assert_eq!(step(&again, "routers")["reused"], true);
    assert_eq!(step(&again, "certificate")["reused"], true);
    assert_eq!(again["certificate_id"], first["certificate_id"]);
    let (_, certs) = lab.server.api("GET", CERTS, None).await;
    assert_eq!(
        certs["certificates"].as_array().unwrap().len(),
        1,
        "{certs}"
    );
    let (_, routes) = lab.server.api("GET", "/api/v1/ingress/routes", None).await;
    let rows = routes["routes"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{routes}");
    assert_eq!(
        rows[0]["host_rule"],
        "Host(`shop.example.test`) || Host(`www.shop.example.test`)"
    );
    assert_eq!(rows[0]["status"], "valid");
    assert_eq!(rows[0]["certificate_served"], true, "{routes}");
    assert_eq!(rows[0]["issuer"], "pebble");
    assert_eq!(rows[0]["router_count"], 1);
}

#[tokio::test]
async fn expose_http_serves_on_web_without_a_certificate() {
    let backend = Backend::start("plain").await;
    let server = Server::start("");
    let plan = expose_and_approve(
        &server,
        json!({"service_hostname": "plain.example.test", "service_protocol": "http", "backend_port": backend.addr.port(), "target_host": "127.0.0.1"}),
    )
    .await;
    assert_eq!(plan["status"], "succeeded", "{plan}");
    assert_eq!(step(&plan, "certificate")["status"], "skipped");
    let mut conn = Conn::http(server.web).await.unwrap();
    let reply = conn.get("plain.example.test", "/").await.unwrap();
    assert_eq!(reply.backend(), "plain");
    let (_, certs) = server.api("GET", CERTS, None).await;
    assert!(certs["certificates"].as_array().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_certificate_leaves_no_service_router_or_certificate() {
    let backend = Backend::start("svc").await;
    let closed = free_port();
    let server = Server::start(&format!(
        "[acme.issuers.unreachable]\ndirectory = \"https://127.0.0.1:{closed}/dir\"\n"
    ));
    let plan = expose_and_approve(
        &server,
        json!({"service_hostname": "doomed.example.test", "service_protocol": "https", "backend_port": backend.addr.port(), "target_host": "127.0.0.1", "tls_issuer": "unreachable"}),
    )
    .await;
    assert_eq!(plan["status"], "failed", "{plan}");
    assert!(
        plan["error"].as_str().unwrap().starts_with("certificate:"),
        "{plan}"
    );
    assert_eq!(step(&plan, "certificate")["status"], "failed");
    assert_eq!(step(&plan, "table_swap")["status"], "pending");
    let (_, certs) = server.api("GET", CERTS, None).await;
    assert!(
        certs["certificates"].as_array().unwrap().is_empty(),
        "{certs}"
    );
    let (_, routes) = server.api("GET", "/api/v1/ingress/routes", None).await;
    assert!(routes["routes"].as_array().unwrap().is_empty(), "{routes}");
    let insecure = crate::support::pki::insecure_client_config(&[b"http/1.1"]);
    let reply = client::https_get(
        server.websecure,
        "doomed.example.test",
        insecure,
        "doomed.example.test",
        "/",
    )
    .await
    .unwrap();
    assert_eq!(reply.status, 404);
}

#[tokio::test]
async fn every_validation_rule_is_reported_and_nothing_is_created() {
    let server = Server::start("");
    let cases: Vec<(Value, Vec<&str>)> = vec![
        (
            json!({}),
            vec![
                "service_hostname",
                "service_protocol",
                "backend_port",
                "target_host",
            ],
        ),
        (
            json!({"service_hostname": "10.1.2.3", "service_protocol": "https", "backend_port": 80, "target_host": "h"}),
            vec!["service_hostname"],
        ),
        (
            json!({"service_hostname": "a.example.test.", "service_protocol": "https", "backend_port": 80, "target_host": "h"}),
            vec!["service_hostname"],
        ),
        (
            json!({"service_hostname": "bad_host.example.test", "service_protocol": "https", "backend_port": 80, "target_host": "h"}),
            vec!["service_hostname"],
        ),
        (
            json!({"service_hostname": "a.example.test", "service_protocol": "ftp", "backend_port": 0, "target_host": "h"}),
            vec!["service_protocol", "backend_port"],
        ),
        (
            json!({"service_hostname": "a.example.test", "service_protocol": "https", "backend_port": 80, "target_host": "h", "target_service": "s"}),
            vec!["target_host", "target_service"],
        ),
        (
            json!({"service_hostname": "a.example.test", "service_protocol": "https", "backend_port": 80, "target_service": "ghost"}),
            vec!["target_service"],
        ),
        (
            json!({"service_hostname": "a.example.test", "service_protocol": "https", "backend_port": 80, "target_host": "h", "tls_issuer": "nope"}),
            vec!["tls_issuer"],
        ),
        (
            json!({"service_hostname": "a.example.test", "service_protocol": "https", "backend_port": 80, "target_host": "h", "challenge_type": "dns-01"}),
            vec!["dns_credential_id"],
        ),
        (
            json!({"service_hostname": "a.example.test", "service_protocol": "https", "backend_port": 80, "target_host": "h", "router_template": "platform"}),
            vec!["router_template"],
        ),
        (
            json!({"service_hostname": "a.example.test", "service_protocol": "https", "backend_port": 80, "target_host": "h", "extra_hosts": ["ok.example.test", "not ok"]}),
            vec!["extra_hosts[1]"],
        ),
    ];
    for (body, expected) in cases {
        let (status, answer) = server.api("POST", EXPOSE, Some(body.clone())).await;
        assert_eq!(status, 422, "{body}: {answer}");
        let fields: Vec<&str> = answer["error"]["fields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["field"].as_str().unwrap())
            .collect();
        assert_eq!(fields, expected, "{body}");
    }
    let (status, answer) = server
        .api("POST", EXPOSE, Some(json!({"service_hostname": 5})))
        .await;
    assert_eq!(status, 422, "{answer}");
    let (_, plans) = server.api("GET", "/api/v1/plans", None).await;
    assert!(plans["plans"].as_array().unwrap().is_empty());
    let (_, routes) = server.api("GET", "/api/v1/ingress/routes", None).await;
    assert!(routes["routes"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn tokens_permissions_reject_and_audit() {
    let backend = Backend::start("svc").await;
    let server = Server::start_requiring_approval("", 0, 0);
    // No token, bad token.
    let (status, _) = server.api_as("", "GET", "/api/v1/plans", None).await;
    assert_eq!(status, 401);
    let (status, _) = server
        .api_as("pcs_nope", "POST", EXPOSE, Some(json!({})))
        .await;
    assert_eq!(status, 401);

    // A token that may expose but not approve.
    let (status, created) = server
        .api(
            "POST",
            "/api/v1/tokens",
            Some(json!({"name": "deployer", "permissions": ["ingress.manage", "ingress.read"]})),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let deployer = created["token"].as_str().unwrap().to_owned();
    assert!(
        !server.logs().contains(&deployer),
        "a token reached the log"
    );
    let body = json!({"service_hostname": "r.example.test", "service_protocol": "http", "backend_port": backend.addr.port(), "target_host": "127.0.0.1"});
    let (status, plan) = server.api_as(&deployer, "POST", EXPOSE, Some(body)).await;
    assert_eq!(status, 202, "{plan}");
    let id = plan["id"].as_str().unwrap();
    let (status, denied) = server
        .api_as(
            &deployer,
            "POST",
            &format!("/api/v1/plans/{id}/approve"),
            None,
        )
        .await;
    assert_eq!(status, 403);
    assert!(
        denied["error"]["message"]
            .as_str()
            .unwrap()
            .contains("plans.approve"),
        "{denied}"
    );
    let (status, _) = server.api_as(&deployer, "GET", CERTS, None).await;
    assert_eq!(status, 403);
    // It cannot hand out what it does not hold.
    let (status, _) = server
        .api_as(
            &deployer,
            "POST",
            "/api/v1/tokens",
            Some(json!({"name": "x", "permissions": ["plans.approve"]})),
        )
        .await;
    assert_eq!(status, 403);
    // Nor list the tokens that hold more than it does, such as the admin's.
    let (status, listed) = server
        .api_as(&deployer, "GET", "/api/v1/tokens", None)
        .await;
    assert_eq!(status, 200, "{listed}");
    let names: Vec<&str> = listed["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["deployer"]);

    // Reject: nothing happens, and a rejected plan cannot be approved.
    let (status, rejected) = server
        .api("POST", &format!("/api/v1/plans/{id}/reject"), None)
        .await;
    assert_eq!(status, 202, "{rejected}");
    assert_eq!(rejected["status"], "rejected");
    let (status, _) = server
        .api("POST", &format!("/api/v1/plans/{id}/approve"), None)
        .await;
    assert_eq!(status, 409);
    let mut conn = Conn::http(server.web).await.unwrap();
    assert_eq!(conn.get("r.example.test", "/").await.unwrap().status, 404);

    // Revoked tokens stop working.
    let (status, _) = server.api("DELETE", "/api/v1/tokens/deployer", None).await;
    assert_eq!(status, 200);
    let (status, _) = server.api_as(&deployer, "GET", "/api/v1/plans", None).await;
    assert_eq!(status, 401);

    // The audit log has it all, with the actor's name.
    let (status, audit) = server.api("GET", "/api/v1/audit", None).await;
    assert_eq!(status, 200);
    let entries = audit["entries"].as_array().unwrap();
    let has = |actor: &str, action: &str, outcome: &str| {
        entries
            .iter()
            .any(|e| e["actor"] == actor && e["action"] == action && e["outcome"] == outcome)
    };
    assert!(has("admin", "token.create", "ok"), "{audit}");
    assert!(has("deployer", "plan.create", "ok"), "{audit}");
    assert!(has("admin", "plan.reject", "ok"), "{audit}");
    assert!(has("admin", "plan.approve", "refused"), "{audit}");
    assert!(has("deployer", "token.create", "denied"), "{audit}");
    assert!(has("admin", "token.revoke", "ok"), "{audit}");
    assert!(!audit.to_string().contains(&deployer));
}

#[tokio::test]
async fn the_monitor_matches_what_is_served() {
    let backend = Backend::start("svc").await;
    let client_ca = Pki::new("Clients");
    let dir = tempfile::tempdir().unwrap();
    let ca_path = dir.path().join("clients.pem");
    std::fs::write(&ca_path, &client_ca.ca_pem).unwrap();
    let server =
        Server::start_with_admin_extra(&format!("mtls_client_ca = \"{}\"\n", ca_path.display()));
    let plan = expose_and_approve(
        &server,
        json!({"service_hostname": "platform.example.test", "service_protocol": "https", "backend_port": backend.addr.port(), "target_host": "127.0.0.1", "tls_issuer": "internal-ca", "router_template": "platform"}),
    )
    .await;
    assert_eq!(plan["status"], "succeeded", "{plan}");
    server.write_dynamic(
        "file.toml",
        &route_toml(
            "file",
            &["file.example.test"],
            &[&backend.upstream()],
            "entrypoint = \"web\"",
        ),
    );
    server.wait_for_log("routers=10", Duration::from_secs(10));

    let (_, monitor) = server.api("GET", "/api/v1/ingress/routes", None).await;
    let rows = monitor["routes"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "{monitor}");
    let platform = rows
        .iter()
        .find(|r| !r["certificate_id"].is_null())
        .unwrap();
    assert_eq!(platform["router_count"], 9);
    assert_eq!(platform["status"], "valid");
    let root = internal_root(&server).await;
    let identity = client_ca.client("node-1");
    let anonymous = trusting(&root, &[b"http/1.1"]);
    let authed = {
        let mut config = (*client_ca_config(&root, &identity)).clone();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        std::sync::Arc::new(config)
    };
    // Every router the monitor lists as live answers at its URL; mTLS ones only with a client certificate.
    for row in rows {
        for router in row["routers"].as_array().unwrap() {
            assert_eq!(router["live"], true);
            let prefix = router["path_prefix"].as_str().unwrap();
            let path = format!(
                "{}probe",
                if prefix.ends_with('/') {
                    prefix.to_owned()
                } else {
                    format!("{prefix}/")
                }
            );
            if router["entrypoint"] == "web" {
                let mut conn = Conn::http(server.web).await.unwrap();
                assert_eq!(
                    conn.get("file.example.test", &path)
                        .await
                        .unwrap()
                        .backend(),
                    "svc"
                );
                continue;
            }
            let reply = client::https_get(
                server.websecure,
                "platform.example.test",
                anonymous.clone(),
                "platform.example.test",
                &path,
            )
            .await
            .unwrap();
            let reply = if router["mtls"] == "required" {
                assert_eq!(reply.status, 403, "{router}");
                let reply = client::https_get(
                    server.websecure,
                    "platform.example.test",
                    authed.clone(),
                    "platform.example.test",
                    &path,
                )
                .await
                .unwrap();
                assert_eq!(reply.status, 200, "{router}");
                assert_eq!(
                    reply.json()["headers"]["x-portcullis-client-subject"],
                    "CN=node-1"
                );
                reply
            } else {
                assert_eq!(reply.status, 200, "{router}: {}", reply.body);
                reply
            };
            assert_eq!(reply.json()["path"], path);
        }
        for url in row["public_urls"].as_array().unwrap() {
            let url = url.as_str().unwrap();
            assert!(
                url.starts_with("https://platform.example.test:")
                    || url.starts_with("http://file.example.test/"),
                "{url}"
            );
        }
    }
}

fn client_ca_config(
    root_pem: &str,
    identity: &crate::support::pki::Issued,
) -> std::sync::Arc<rustls::ClientConfig> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(root_pem.as_bytes()).unwrap())
        .unwrap();
    let mut config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_client_auth_cert(
        CertificateDer::pem_slice_iter(identity.cert_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .unwrap(),
        PrivateKeyDer::from_pem_slice(identity.key_pem.as_bytes()).unwrap(),
    )
    .unwrap();
    config.resumption = rustls::client::Resumption::disabled();
    std::sync::Arc::new(config)
}

#[tokio::test]
async fn metrics_allowlist_and_compose() {
    let backend = Backend::start("svc").await;
    let server = Server::start("[server]\nunknown_host_status = 403\n");
    let plan = expose_and_approve(
        &server,
        json!({"service_hostname": "m.example.test", "service_protocol": "https", "backend_port": backend.addr.port(), "target_host": "127.0.0.1", "tls_issuer": "internal-ca"}),
    )
    .await;
    assert_eq!(plan["status"], "succeeded", "{plan}");
    let client = trusting(&internal_root(&server).await, &[b"http/1.1"]);
    for _ in 0..3 {
        let reply = client::https_get(
            server.websecure,
            "m.example.test",
            client.clone(),
            "m.example.test",
            "/",
        )
        .await
        .unwrap();
        assert_eq!(reply.status, 200);
    }
    // Host allowlist: an unknown Host never reaches a backend.
    let hits = backend.hits.load(std::sync::atomic::Ordering::Relaxed);
    let mut conn = Conn::http(server.web).await.unwrap();
    assert_eq!(
        conn.get("stranger.example.test", "/").await.unwrap().status,
        403
    );
    assert_eq!(
        backend.hits.load(std::sync::atomic::Ordering::Relaxed),
        hits
    );

    let (status, metrics) = raw_get(server.admin, "/metrics").await;
    assert_eq!(status, 200);
    let router = "expose-m.example.test-main";
    assert!(
        metrics.contains(&format!(
            "portcullis_requests_total{{router=\"{router}\",status=\"2xx\"}} 3"
        )),
        "{metrics}"
    );
    assert!(
        metrics.contains("portcullis_requests_total{router=\"\",status=\"4xx\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains(&format!(
            "portcullis_upstream_duration_seconds_count{{router=\"{router}\"}} 3"
        )),
        "{metrics}"
    );
    assert!(
        metrics.contains("portcullis_tls_handshakes_total{outcome=\"ok\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("portcullis_certificate_expiry_seconds{id=\""),
        "{metrics}"
    );
    assert!(
        metrics.contains("portcullis_certificate_issuance_seconds_count 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("portcullis_plans{status=\"succeeded\"} 1"),
        "{metrics}"
    );

    // Compose: a valid certificate rebuilds the table; another one is refused.
    let certificate = plan["certificate_id"].as_str().unwrap();
    let (status, composed) = server
        .api(
            "POST",
            "/api/v1/proxy/compose",
            Some(json!({"certificate_id": certificate})),
        )
        .await;
    assert_eq!(status, 200, "{composed}");
    let (status, _) = server
        .api("POST", &format!("{CERTS}/{certificate}/revoke"), None)
        .await;
    assert_eq!(status, 200);
    let (status, refused) = server
        .api(
            "POST",
            "/api/v1/proxy/compose",
            Some(json!({"certificate_id": certificate})),
        )
        .await;
    assert_eq!(status, 409, "{refused}");
    // Its routes are no longer live.
    let (_, monitor) = server.api("GET", "/api/v1/ingress/routes", None).await;
    assert_eq!(monitor["routes"][0]["live"], false, "{monitor}");
    assert_eq!(monitor["routes"][0]["status"], "revoked");
}

async fn raw_get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    let mut conn = Conn::http(addr).await.unwrap();
    let reply = conn.get("admin", path).await.unwrap();
    (reply.status.as_u16(), reply.body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_exposes_approves_and_shows_routes() {
    let backend = Backend::start("svc").await;
    let server = Server::start_requiring_approval("", 0, 0);
    let cli = |args: &[&str]| {
        let output = std::process::Command::new(server::binary())
            .args(args)
            .env("PORTCULLIS_ADMIN_URL", format!("http://{}", server.admin))
            .env("PORTCULLIS_TOKEN", server.token())
            .output()
            .unwrap();
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    let port = backend.addr.port().to_string();
    let (ok, out, err) = cli(&[
        "expose",
        "cli.example.test",
        "--port",
        &port,
        "--target-host",
        "127.0.0.1",
        "--issuer",
        "internal-ca",
    ]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("awaits approval"), "{out}");
    let id = out
        .lines()
        .next()
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .to_owned();
    let (ok, out, _) = cli(&["plans", "list"]);
    assert!(
        ok && out.contains(&id) && out.contains("awaiting_approval"),
        "{out}"
    );
    let (ok, out, err) = cli(&["plans", "approve", &id]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("succeeded"));
    assert!(err.contains("table_swap"), "progress is shown: {err}");
    let (ok, out, _) = cli(&["routes"]);
    assert!(
        ok && out.contains("Host(`cli.example.test`)") && out.contains("valid"),
        "{out}"
    );
    let row = out
        .lines()
        .find(|l| l.starts_with("Host(`cli.example.test`)"))
        .unwrap();
    assert_eq!(
        row.split_whitespace().nth(2),
        Some("yes"),
        "the plan succeeded once the certificate was served: {out}"
    );
    let (ok, out, err) = cli(&[
        "expose",
        "cli2.example.test",
        "--port",
        &port,
        "--target-host",
        "127.0.0.1",
        "--issuer",
        "internal-ca",
        "--approve",
    ]);
    assert!(ok, "{out}{err}");
    let (ok, _, err) = cli(&[
        "expose",
        "bad_name",
        "--port",
        &port,
        "--target-host",
        "127.0.0.1",
    ]);
    assert!(!ok && err.contains("service_hostname"), "{err}");
    let (ok, token, err) = cli(&[
        "token",
        "create",
        "--name",
        "reader",
        "--permission",
        "ingress.read",
    ]);
    assert!(ok, "{err}");
    assert!(token.trim().starts_with("pcs_"));
    let (ok, _, _) = cli(&["token", "revoke", "reader"]);
    assert!(ok);
}
