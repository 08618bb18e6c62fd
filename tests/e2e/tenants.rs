//! Tenant custom domains end to end: CNAME verification against a real
//! authoritative server, HTTP-01 with Pebble resolving through it, routing
//! with the tenant header, scoped tokens, removal.

use std::time::Duration;

use serde_json::{json, Value};

use crate::support::knot::Knot;
use crate::support::lab::{issuer_toml, trusting, CERTS};
use crate::support::pebble::{free_port, Pebble, PebbleOptions};
use crate::support::*;

const ZONE: &str = "$ORIGIN test.
$TTL 60
@ SOA ns1.test. hostmaster.test. 1 3600 600 86400 60
@ NS ns1.test.
ns1 A 127.0.0.1
*.portal.example A 127.0.0.1
shop.customer CNAME acme1.portal.example.test.
wrong.customer CNAME elsewhere.example.test.
elsewhere.example A 127.0.0.1
";

struct TenantLab {
    knot: Knot,
    pebble: Pebble,
    server: Server,
    backend: Backend,
    web_port: u16,
}

async fn tenant_lab() -> TenantLab {
    let backend = Backend::start("portal").await;
    let knot = Knot::start(&[("test", ZONE)]).await;
    let mut last = String::new();
    for _ in 0..4 {
        let (web_port, websecure_port) = (free_port(), free_port());
        let mut options = PebbleOptions::new(web_port, websecure_port);
        options.dns_server = Some(knot.addr);
        let pebble = Pebble::start(options).await;
        let config = format!(
            "[acme]\ndns_resolvers = [\"{}\"]\n{}\n[tenants]\ncanonical_base = \"portal.example.test\"\nportal_upstreams = [\"{}\"]\ndomain_issuer = \"pebble\"\nverify_interval = \"200ms\"\nverify_timeout = \"3s\"\ndrift_interval = \"300ms\"\ndrift_grace = \"2s\"\nwildcard_issuer = \"pebble\"\nwildcard_dns_credential = \"knot\"\n",
            knot.addr,
            issuer_toml(&pebble, "pebble", ""),
            backend.upstream()
        );
        match Server::try_configure(
            tempfile::tempdir().unwrap(),
            &config,
            web_port,
            websecure_port,
            false,
        ) {
            Ok(server) => {
                return TenantLab {
                    knot,
                    pebble,
                    server,
                    backend,
                    web_port,
                }
            }
            Err(logs) if logs.contains("could not listen") => last = logs,
            Err(logs) => panic!("{logs}"),
        }
    }
    panic!("no free ports:\n{last}")
}

fn domain_path(tenant: &str) -> String {
    format!("/api/v1/tenants/{tenant}/portal-domain")
}

async fn wait_status(server: &Server, tenant: &str, wanted: &[&str]) -> Value {
    server
        .wait_until(&domain_path(tenant), Duration::from_secs(60), |row| {
            wanted.contains(&row["status"].as_str().unwrap_or_default())
        })
        .await
}

/// Changes a record with knsupdate, signed with the harness's key.
fn knsupdate(knot: &Knot, commands: &str) {
    use std::io::Write;
    let script = format!(
        "server {} {}\nkey {}:{} {}\nzone test.\n{commands}\nsend\n",
        knot.addr.ip(),
        knot.addr.port(),
        knot.key_algorithm,
        knot.key_name,
        knot.key_secret_base64
    );
    let mut child = std::process::Command::new("knsupdate")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vanity_domain_goes_from_request_to_active_and_reaches_the_portal_with_the_tenant_header()
{
    let lab = tenant_lab().await;
    let (status, row) = lab
        .server
        .api(
            "PUT",
            &domain_path("acme1"),
            Some(json!({"domain": "Shop.Customer.Test"})),
        )
        .await;
    assert_eq!(status, 202, "{row}");
    assert_eq!(row["domain"], "shop.customer.test", "lower-cased");
    assert_eq!(row["canonical_host"], "acme1.portal.example.test");
    assert_eq!(
        row["dns_record"],
        "shop.customer.test. CNAME acme1.portal.example.test."
    );

    let active = wait_status(
        &lab.server,
        "acme1",
        &["active", "dns_failed", "certificate_failed"],
    )
    .await;
    assert_eq!(
        active["status"],
        "active",
        "{active}\n{}",
        lab.server.logs()
    );
    assert_eq!(
        active["verification_details"]["last_seen"],
        "acme1.portal.example.test"
    );

    let client = trusting(&lab.pebble.roots_pem().await, &[b"http/1.1"]);
    let mut conn = Conn::https(lab.server.websecure, "shop.customer.test", client)
        .await
        .unwrap();
    let reply = conn
        .send(
            "GET",
            "shop.customer.test",
            "/",
            &[("x-portcullis-tenant", "evil")],
            bytes::Bytes::new(),
        )
        .await
        .unwrap();
    assert_eq!(reply.backend(), "portal");
    assert_eq!(
        reply.json()["headers"]["x-portcullis-tenant"],
        "acme1",
        "the client's value is replaced"
    );

    // The canonical host routes to the portal for the same tenant.
    let insecure = crate::support::pki::insecure_client_config(&[b"http/1.1"]);
    let reply = client::https_get(
        lab.server.websecure,
        "acme1.portal.example.test",
        insecure,
        "acme1.portal.example.test",
        "/",
    )
    .await
    .unwrap();
    assert_eq!(reply.json()["headers"]["x-portcullis-tenant"], "acme1");

    // A second PUT while active is refused.
    let (status, _) = lab
        .server
        .api(
            "PUT",
            &domain_path("acme1"),
            Some(json!({"domain": "other.customer.test"})),
        )
        .await;
    assert_eq!(status, 409);

    // Removal: routes pruned, certificate revoked.
    let certificate = active["certificate_id"].as_str().unwrap().to_owned();
    let (status, removed) = lab.server.api("DELETE", &domain_path("acme1"), None).await;
    assert_eq!(status, 200, "{removed}");
    assert_eq!(removed["status"], "disabled");
    let (_, cert) = lab
        .server
        .api("GET", &format!("{CERTS}/{certificate}"), None)
        .await;
    assert_eq!(cert["status"], "revoked", "{cert}");
    let insecure = crate::support::pki::insecure_client_config(&[b"http/1.1"]);
    let reply = client::https_get(
        lab.server.websecure,
        "shop.customer.test",
        insecure,
        "shop.customer.test",
        "/",
    )
    .await
    .unwrap();
    assert_eq!(reply.status, 404);
    let (_, routes) = lab.server.api("GET", "/api/v1/ingress/routes", None).await;
    assert!(
        !routes.to_string().contains("shop.customer.test"),
        "{routes}"
    );
    let _ = &lab.backend;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_cname_fails_with_what_was_seen_then_a_fix_and_refresh_activates() {
    let lab = tenant_lab().await;
    let (status, _) = lab
        .server
        .api(
            "PUT",
            &domain_path("acme2"),
            Some(json!({"domain": "wrong.customer.test"})),
        )
        .await;
    assert_eq!(status, 202);
    let failed = wait_status(&lab.server, "acme2", &["dns_failed", "active"]).await;
    assert_eq!(failed["status"], "dns_failed", "{failed}");
    let message = failed["status_message"].as_str().unwrap();
    assert!(
        message.contains("elsewhere.example.test") && message.contains("acme2.portal.example.test"),
        "{message}"
    );
    assert_eq!(
        failed["verification_details"]["last_seen"],
        "elsewhere.example.test"
    );

    knsupdate(
        &lab.knot,
        "update delete wrong.customer.test. CNAME\nupdate add wrong.customer.test. 60 CNAME acme2.portal.example.test.",
    );
    let (status, _) = lab
        .server
        .api("POST", &format!("{}/refresh", domain_path("acme2")), None)
        .await;
    assert_eq!(status, 202);
    let active = wait_status(
        &lab.server,
        "acme2",
        &["active", "dns_failed", "certificate_failed"],
    )
    .await;
    assert_eq!(
        active["status"],
        "active",
        "{active}\n{}",
        lab.server.logs()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_scoped_to_a_tenant_and_bad_domains_are_refused() {
    let lab = tenant_lab().await;
    let (status, created) = lab
        .server
        .api(
            "POST",
            "/api/v1/tokens",
            Some(
                json!({"name": "tenant-b", "permissions": ["domains.manage"], "tenant": "acme-b"}),
            ),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let token_b = created["token"].as_str().unwrap().to_owned();
    // A tenant's token reaches no further than its tenant: it cannot mint an
    // unlimited token or one for another tenant, but it can within its own.
    let domains_token = |name: &str, tenant: serde_json::Value| {
        Some(json!({"name": name, "permissions": ["domains.manage"], "tenant": tenant}))
    };
    for (name, tenant, expected) in [
        ("escape", json!(null), 403),
        ("escape", json!("acme1"), 403),
        ("tenant-b-ci", json!("acme-b"), 201),
    ] {
        let body = domains_token(name, tenant.clone());
        let (status, answer) = lab
            .server
            .api_as(&token_b, "POST", "/api/v1/tokens", body)
            .await;
        assert_eq!(status, expected, "tenant {tenant}: {answer}");
        if expected == 403 {
            let message = answer["error"]["message"].as_str().unwrap();
            assert!(message.contains("\"tenant\": \"acme-b\""), "{message}");
        }
    }
    let body = domains_token("tenant-a", json!("acme1"));
    let (status, _) = lab.server.api("POST", "/api/v1/tokens", body).await;
    assert_eq!(status, 201);
    // It sees only its tenant's tokens, and the others are not there for it.
    let (status, listed) = lab
        .server
        .api_as(&token_b, "GET", "/api/v1/tokens", None)
        .await;
    assert_eq!(status, 200, "{listed}");
    let mut names: Vec<&str> = listed["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    names.sort_unstable();
    assert_eq!(names, ["tenant-b", "tenant-b-ci"]);
    for other in ["tenant-a", "admin"] {
        let (status, answer) = lab
            .server
            .api_as(&token_b, "DELETE", &format!("/api/v1/tokens/{other}"), None)
            .await;
        assert_eq!(status, 404, "{other}: {answer}");
    }
    let (_, listed) = lab.server.api("GET", "/api/v1/tokens", None).await;
    for name in ["admin", "tenant-a", "tenant-b", "tenant-b-ci"] {
        assert!(
            listed["tokens"]
                .as_array()
                .unwrap()
                .iter()
                .any(|t| t["name"] == name),
            "the admin sees {name}: {listed}"
        );
    }
    let (status, _) = lab
        .server
        .api(
            "PUT",
            &domain_path("acme1"),
            Some(json!({"domain": "shop.customer.test"})),
        )
        .await;
    assert_eq!(status, 202);
    // Tenant b cannot see or change tenant a's domain.
    for (method, path, body) in [
        ("GET", domain_path("acme1"), None),
        (
            "PUT",
            domain_path("acme1"),
            Some(json!({"domain": "x.customer.test"})),
        ),
        ("DELETE", domain_path("acme1"), None),
        ("POST", format!("{}/refresh", domain_path("acme1")), None),
    ] {
        let (status, answer) = lab.server.api_as(&token_b, method, &path, body).await;
        assert_eq!(status, 404, "{method} {path}: {answer}");
    }
    // It cannot claim a's domain either.
    let (status, _) = lab
        .server
        .api_as(
            &token_b,
            "PUT",
            &domain_path("acme-b"),
            Some(json!({"domain": "shop.customer.test"})),
        )
        .await;
    assert_eq!(status, 409);

    for bad in [
        "customer.test",
        "10.0.0.1",
        "bad_name.customer.test",
        "x.acme1.portal.example.test",
        "shop.customer.test.",
    ] {
        let (status, answer) = lab
            .server
            .api_as(
                &token_b,
                "PUT",
                &domain_path("acme-b"),
                Some(json!({"domain": bad})),
            )
            .await;
        assert_eq!(status, 422, "{bad}: {answer}");
        assert_eq!(answer["error"]["fields"][0]["field"], "domain");
    }
    let (status, _) = lab
        .server
        .api_as(&token_b, "GET", &domain_path("acme-b"), None)
        .await;
    assert_eq!(status, 404, "nothing was created");
    // Every call is audited.
    let (_, audit) = lab.server.api("GET", "/api/v1/audit", None).await;
    assert!(audit.to_string().contains("tenant_domain.put"), "{audit}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cname_drift_warns_then_unroutes_after_the_grace_period() {
    let lab = tenant_lab().await;
    let (status, _) = lab
        .server
        .api(
            "PUT",
            &domain_path("acme1"),
            Some(json!({"domain": "shop.customer.test"})),
        )
        .await;
    assert_eq!(status, 202);
    let active = wait_status(
        &lab.server,
        "acme1",
        &["active", "dns_failed", "certificate_failed"],
    )
    .await;
    assert_eq!(active["status"], "active", "{active}");
    let certificate = active["certificate_id"].as_str().unwrap().to_owned();

    knsupdate(&lab.knot, "update delete shop.customer.test. CNAME\nupdate add shop.customer.test. 60 CNAME elsewhere.example.test.");
    // First a warning while still routed...
    let warned = {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let (_, row) = lab.server.api("GET", &domain_path("acme1"), None).await;
            if row["status_message"]
                .as_str()
                .is_some_and(|m| m.starts_with("warning"))
                || row["status"] != "active"
            {
                break row;
            }
            assert!(tokio::time::Instant::now() < deadline, "{row}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    assert_eq!(warned["status"], "active", "{warned}");
    assert!(
        warned["status_message"]
            .as_str()
            .unwrap()
            .contains("elsewhere.example.test"),
        "{warned}"
    );
    // ...then, after the grace period, unrouted.
    let failed = wait_status(&lab.server, "acme1", &["dns_failed"]).await;
    assert!(
        failed["status_message"]
            .as_str()
            .unwrap()
            .contains("now points at elsewhere.example.test"),
        "{failed}"
    );
    let insecure = crate::support::pki::insecure_client_config(&[b"http/1.1"]);
    assert!(
        eventually(Duration::from_secs(5), || async {
            client::https_get(
                lab.server.websecure,
                "shop.customer.test",
                insecure.clone(),
                "shop.customer.test",
                "/",
            )
            .await
            .is_ok_and(|r| r.status == 404)
        })
        .await
    );
    let (_, cert) = lab
        .server
        .api("GET", &format!("{CERTS}/{certificate}"), None)
        .await;
    assert_eq!(cert["auto_renew"], false, "{cert}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_is_deterministic_metrics_count_and_the_canonical_wildcard_is_issued() {
    let lab = tenant_lab().await;
    // The canonical certificate needs the DNS credential the config names.
    let (status, credential) = lab
        .server
        .api(
            "POST",
            "/api/v1/acme/dns-credentials",
            Some(json!({
                "name": "knot",
                "provider": "rfc2136",
                "config": {"server": lab.knot.addr.to_string(), "key_name": lab.knot.key_name, "zones": "test"},
                "secrets": {"key_secret": lab.knot.key_secret_base64},
            })),
        )
        .await;
    assert_eq!(status, 201, "{credential}");
    let (status, _) = lab
        .server
        .api(
            "PUT",
            &domain_path("acme1"),
            Some(json!({"domain": "shop.customer.test"})),
        )
        .await;
    assert_eq!(status, 202);
    let active = wait_status(
        &lab.server,
        "acme1",
        &["active", "dns_failed", "certificate_failed"],
    )
    .await;
    assert_eq!(active["status"], "active", "{active}");

    // *.portal.example.test + portal.example.test, over dns-01, serves the canonical hosts.
    let client = trusting(&lab.pebble.roots_pem().await, &[b"http/1.1"]);
    assert!(
        eventually(Duration::from_secs(30), || async {
            Conn::https(
                lab.server.websecure,
                "acme1.portal.example.test",
                client.clone(),
            )
            .await
            .is_ok()
        })
        .await,
        "no canonical wildcard certificate:\n{}",
        lab.server.logs()
    );
    let reply = client::https_get(
        lab.server.websecure,
        "acme1.portal.example.test",
        client,
        "acme1.portal.example.test",
        "/",
    )
    .await
    .unwrap();
    assert_eq!(reply.json()["headers"]["x-portcullis-tenant"], "acme1");

    // Export twice: byte-identical; --git commits once, naming the tenant.
    let dir = tempfile::tempdir().unwrap();
    let run = |git: bool| {
        let mut command = std::process::Command::new(server::binary());
        command
            .args(["export", "--dir"])
            .arg(dir.path())
            .args(["--config"])
            .arg(lab.server.config_path());
        if git {
            command.arg("--git");
        }
        let output = command.output().unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        std::fs::read(dir.path().join("acme1.json")).unwrap()
    };
    let first = run(true);
    let second = run(true);
    assert_eq!(first, second, "export is not deterministic");
    let text = String::from_utf8(first).unwrap();
    assert!(
        text.contains("\"domain\": \"shop.customer.test\"") && text.contains("x-portcullis-tenant"),
        "{text}"
    );
    assert!(
        !text.contains("last_checked_at") && !text.contains("secret"),
        "{text}"
    );
    let log = std::process::Command::new("git")
        .arg("-C")
        .arg(dir.path())
        .args(["log", "--format=%s"])
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&log.stdout);
    assert_eq!(
        log.lines().collect::<Vec<_>>(),
        vec!["portcullis export: acme1"],
        "{log}"
    );

    let mut conn = Conn::http(lab.server.admin).await.unwrap();
    let metrics = conn.get("admin", "/metrics").await.unwrap().body;
    assert!(
        metrics.contains("portcullis_tenant_domains{status=\"active\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("portcullis_tenant_domain_activation_seconds_count 1"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_certificate_issuing_resumes_to_active_with_one_certificate() {
    let lab = tenant_lab().await;
    // acme3's canonical host answers on a tarpit, so HTTP-01 hangs until we open it.
    let tarpit_ip = std::net::Ipv4Addr::new(127, 0, 0, 5);
    let tarpit = crate::support::tarpit::Tarpit::start(tarpit_ip, lab.web_port).await;
    knsupdate(
        &lab.knot,
        "update add acme3.portal.example.test. 60 A 127.0.0.5\nupdate add shop3.customer.test. 60 CNAME acme3.portal.example.test.",
    );
    let (status, _) = lab
        .server
        .api(
            "PUT",
            &domain_path("acme3"),
            Some(json!({"domain": "shop3.customer.test"})),
        )
        .await;
    assert_eq!(status, 202);
    let issuing = wait_status(
        &lab.server,
        "acme3",
        &[
            "certificate_issuing",
            "active",
            "certificate_failed",
            "dns_failed",
        ],
    )
    .await;
    assert_eq!(issuing["status"], "certificate_issuing", "{issuing}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let TenantLab {
        knot,
        pebble,
        server,
        backend,
        web_port,
    } = lab;
    let server = server.restart();
    tarpit.open();
    let active = wait_status(
        &server,
        "acme3",
        &["active", "certificate_failed", "dns_failed"],
    )
    .await;
    assert_eq!(active["status"], "active", "{active}\n{}", server.logs());
    let (_, certs) = server.api("GET", CERTS, None).await;
    let mine = certs["certificates"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["common_name"] == "shop3.customer.test")
        .count();
    assert_eq!(mine, 1, "{certs}");
    let _ = (knot, pebble, backend, web_port);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_issuance_failure_is_certificate_failed_with_the_problem_and_advice() {
    let lab = tenant_lab().await;
    // Validation for this canonical host reaches an address where nothing listens.
    knsupdate(
        &lab.knot,
        "update add acme4.portal.example.test. 60 A 127.0.0.6\nupdate add shop4.customer.test. 60 CNAME acme4.portal.example.test.",
    );
    let (status, _) = lab
        .server
        .api(
            "PUT",
            &domain_path("acme4"),
            Some(json!({"domain": "shop4.customer.test"})),
        )
        .await;
    assert_eq!(status, 202);
    let failed = wait_status(
        &lab.server,
        "acme4",
        &["certificate_failed", "active", "dns_failed"],
    )
    .await;
    assert_eq!(failed["status"], "certificate_failed", "{failed}");
    let message = failed["status_message"].as_str().unwrap();
    assert!(
        message.contains("urn:ietf:params:acme:error:connection"),
        "{message}"
    );
    assert!(message.contains("port 80"), "{message}");
    // Nothing is routed for it.
    let (_, routes) = lab.server.api("GET", "/api/v1/ingress/routes", None).await;
    assert!(
        !routes.to_string().contains("shop4.customer.test"),
        "{routes}"
    );
    // PUT retries a failed row.
    let (status, retried) = lab
        .server
        .api(
            "PUT",
            &domain_path("acme4"),
            Some(json!({"domain": "shop4.customer.test"})),
        )
        .await;
    assert_eq!(status, 202, "{retried}");
    assert_eq!(retried["status"], "pending_dns");
}
