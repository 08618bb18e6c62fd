//! Built-in ACME, end to end against Pebble: issuance over HTTP-01 and
//! TLS-ALPN-01, serving, reuse, renewal, revocation, restarts, failures.

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use serde_json::{json, Value};

use crate::support::lab::{issuer_toml, trusting, Lab, CERTS, ISSUE_TIMEOUT, SERVE_TIMEOUT};
use crate::support::pebble::{free_port, Pebble, PebbleOptions};
use crate::support::tarpit::Tarpit;
use crate::support::*;

fn leaf_der(chain_pem: &str) -> CertificateDer<'static> {
    CertificateDer::pem_slice_iter(chain_pem.as_bytes())
        .next()
        .unwrap()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http01_multi_san_and_tls_alpn01_certificates_are_issued_and_served() {
    let lab = Lab::start("", |_| {}).await;
    let cert = lab
        .issue(json!({"common_name": "app.example.test", "sans": ["www.example.test"], "issuer": "pebble", "challenge_type": "http-01"}))
        .await;
    assert_eq!(cert["status"], "valid", "{cert}");
    assert_eq!(cert["issued_by"], "pebble");
    assert_eq!(cert["challenge_type"], "http-01");
    assert!(
        cert["serial"].as_str().is_some()
            && cert["fingerprint_sha256"].as_str().unwrap().len() == 64
    );

    let alpn = cert_over_alpn(&lab).await;
    assert_eq!(alpn["status"], "valid", "{alpn}");

    // Each SNI gets a chain that verifies to Pebble's root.
    let client = lab.client(&[b"http/1.1"]).await;
    for (name, id) in [
        ("app.example.test", &cert["id"]),
        ("www.example.test", &cert["id"]),
        ("alpn.example.test", &alpn["id"]),
    ] {
        let conn = Conn::https(lab.server.websecure, name, client.clone())
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let (_, full) = lab
            .server
            .api("GET", &format!("{CERTS}/{}", id.as_str().unwrap()), None)
            .await;
        assert_eq!(
            conn.peer_certificate.unwrap(),
            leaf_der(full["chain_pem"].as_str().unwrap()),
            "{name} is served its certificate"
        );
    }
    // The key never leaves the secret store.
    let (_, full) = lab
        .server
        .api(
            "GET",
            &format!("{CERTS}/{}", cert["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert!(!full.to_string().contains("PRIVATE KEY"));
    assert!(full.get("key_label").is_none());
}

/// SHA-256 of the leaf a connection was shown, as the API writes it.
fn fingerprint(conn: &Conn) -> String {
    portcullis_acme::fingerprint_sha256(conn.peer_certificate.as_ref().expect("a TLS connection"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn served_says_when_clients_get_the_records_current_certificate() {
    let lab = Lab::start("", |_| {}).await;
    let cert = lab
        .issue(json!({"common_name": "served.example.test", "issuer": "pebble"}))
        .await;
    assert_eq!(cert["served"], true, "{cert}");
    let id = cert["id"].as_str().unwrap().to_owned();
    let first = cert["fingerprint_sha256"].as_str().unwrap().to_owned();
    let client = lab.client(&[b"http/1.1"]).await;
    let addr = lab.server.websecure;
    let presented = || async {
        fingerprint(
            &Conn::https(addr, "served.example.test", client.clone())
                .await
                .unwrap(),
        )
    };
    assert_eq!(presented().await, first);

    // A renewal keeps the id and changes the certificate: once the record
    // holds the new one and says served, clients get the new one.
    let (status, renewing) = lab
        .server
        .api("POST", &format!("{CERTS}/{id}/renew"), None)
        .await;
    assert_eq!(status, 202, "{renewing}");
    assert_eq!(renewing["status"], "renewing");
    assert_eq!(
        renewing["served"], true,
        "the old certificate serves meanwhile"
    );
    let renewed = lab.server.wait_certificate(&id, ISSUE_TIMEOUT).await;
    assert_eq!(renewed["status"], "valid", "{renewed}");
    let second = renewed["fingerprint_sha256"].as_str().unwrap().to_owned();
    assert_ne!(second, first);
    let served = lab.server.wait_served(&id, SERVE_TIMEOUT).await;
    assert_eq!(served["fingerprint_sha256"], second.as_str());
    assert_eq!(
        presented().await,
        second,
        "served, so the new certificate is presented"
    );
    let (_, list) = lab.server.api("GET", CERTS, None).await;
    assert_eq!(list["certificates"][0]["served"], true, "{list}");
}

async fn cert_over_alpn(lab: &Lab) -> Value {
    lab.issue(json!({"common_name": "alpn.example.test", "issuer": "pebble", "challenge_type": "tls-alpn-01"}))
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_covered_request_reuses_the_certificate_without_an_order() {
    let lab = Lab::start("", |_| {}).await;
    let first = lab
        .issue(json!({"common_name": "reuse.example.test", "sans": ["b.example.test"], "issuer": "pebble"}))
        .await;
    let orders_before = lab.pebble.logs().matches("/order-plz").count();
    assert!(orders_before >= 1, "{}", lab.pebble.logs());
    let (status, again) = lab
        .server
        .api(
            "POST",
            CERTS,
            Some(json!({"common_name": "b.example.test", "issuer": "pebble"})),
        )
        .await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["certificate"]["id"], first["id"]);
    assert_eq!(
        lab.pebble.logs().matches("/order-plz").count(),
        orders_before,
        "no new order"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renewal_replaces_the_served_certificate_while_requests_succeed() {
    let backend = Backend::start("app").await;
    let lab = Lab::start("", |o| o.validity_seconds = Some(9)).await;
    // A router with tls_issuer gets its certificate with no other step.
    lab.server.write_dynamic(
        "app.toml",
        &route_toml(
            "app",
            &["renew.example.test"],
            &[&backend.upstream()],
            "tls_issuer = \"pebble\"",
        ),
    );
    let client = lab.client(&[b"http/1.1"]).await;
    let addr = lab.server.websecure;
    let served = || async {
        Conn::https(addr, "renew.example.test", client.clone())
            .await
            .ok()
            .and_then(|c| c.peer_certificate)
    };
    assert!(
        eventually(ISSUE_TIMEOUT, || async { served().await.is_some() }).await,
        "router certificate never served:\n{}",
        lab.server.logs()
    );
    let first = served().await.unwrap();

    // Traffic on one keep-alive connection and on fresh ones until the certificate changes.
    let mut keep = Conn::https(addr, "renew.example.test", client.clone())
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
    let mut requests = 0;
    let renewed = loop {
        let reply = keep.get("renew.example.test", "/").await.unwrap();
        assert_eq!(reply.status, 200);
        let fresh = https_get_checked(addr, client.clone()).await;
        assert_eq!(fresh.status, 200, "a request failed during renewal");
        requests += 2;
        if served().await.is_some_and(|c| c != first) {
            break true;
        }
        if tokio::time::Instant::now() > deadline {
            break false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        renewed,
        "certificate was not renewed:\n{}",
        lab.server.logs()
    );
    assert!(requests > 10);
    let (_, list) = lab.server.api("GET", CERTS, None).await;
    let certs = list["certificates"].as_array().unwrap();
    assert_eq!(certs.len(), 1, "renewal keeps one record: {list}");
    assert_eq!(certs[0]["owner"], "router:app");
    assert_eq!(certs[0]["auto_renew"], true);

    // Removing the router stops renewal.
    std::fs::remove_file(lab.server.dynamic_dir().join("app.toml")).unwrap();
    let id = certs[0]["id"].as_str().unwrap().to_owned();
    assert!(
        eventually(Duration::from_secs(10), || async {
            lab.server
                .api("GET", &format!("{CERTS}/{id}"), None)
                .await
                .1["auto_renew"]
                == false
        })
        .await,
        "renewal continued after the router was removed"
    );
}

async fn https_get_checked(addr: std::net::SocketAddr, client: Arc<rustls::ClientConfig>) -> Reply {
    client::https_get(
        addr,
        "renew.example.test",
        client,
        "renew.example.test",
        "/",
    )
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocation_stops_serving_and_the_ca_reports_it() {
    let lab = Lab::start("", |_| {}).await;
    let cert = lab
        .issue(json!({"common_name": "gone.example.test", "issuer": "pebble"}))
        .await;
    let id = cert["id"].as_str().unwrap();
    let serial = cert["serial"].as_str().unwrap();
    assert_eq!(lab.pebble.certificate_status(serial).await, "Valid");
    let client = lab.client(&[b"http/1.1"]).await;
    Conn::https(lab.server.websecure, "gone.example.test", client.clone())
        .await
        .unwrap();

    let (status, revoked) = lab
        .server
        .api("POST", &format!("{CERTS}/{id}/revoke"), None)
        .await;
    assert_eq!(status, 200, "{revoked}");
    assert_eq!(revoked["certificate"]["status"], "revoked");
    assert_eq!(revoked["plan"]["status"], "succeeded");
    assert_eq!(lab.pebble.certificate_status(serial).await, "Revoked");
    assert!(
        eventually(Duration::from_secs(5), || async {
            Conn::https(lab.server.websecure, "gone.example.test", client.clone())
                .await
                .is_err()
        })
        .await,
        "the revoked certificate is still served"
    );
    let (_, shown) = lab.server.api("GET", &format!("{CERTS}/{id}"), None).await;
    assert_eq!(shown["served"], false, "{shown}");
    // Irreversible: it cannot be renewed or revoked again.
    let (status, body) = lab
        .server
        .api("POST", &format!("{CERTS}/{id}/renew"), None)
        .await;
    assert_eq!(status, 409, "{body}");
    let (status, _) = lab
        .server
        .api("POST", &format!("{CERTS}/{id}/revoke"), None)
        .await;
    assert_eq!(status, 409);
    // A new request makes a new record.
    let again = lab
        .issue(json!({"common_name": "gone.example.test", "issuer": "pebble"}))
        .await;
    assert_ne!(again["id"], cert["id"]);
    assert_eq!(again["status"], "valid");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_keeps_the_account_and_the_certificates() {
    let lab = Lab::start("", |_| {}).await;
    let cert = lab
        .issue(json!({"common_name": "keep.example.test", "issuer": "pebble"}))
        .await;
    let lab = lab.restart();

    // Served at once from the store, no new order.
    let client = lab.client(&[b"http/1.1"]).await;
    let conn = Conn::https(lab.server.websecure, "keep.example.test", client)
        .await
        .unwrap();
    let (_, full) = lab
        .server
        .api(
            "GET",
            &format!("{CERTS}/{}", cert["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(
        conn.peer_certificate.unwrap(),
        leaf_der(full["chain_pem"].as_str().unwrap())
    );

    // A new issuance uses the same ACME account.
    let accounts_before = lab.pebble.logs().matches("/sign-me-up").count();
    assert!(
        accounts_before >= 1,
        "pebble logs no account creation:\n{}",
        lab.pebble.logs()
    );
    lab.issue(json!({"common_name": "more.example.test", "issuer": "pebble"}))
        .await;
    assert_eq!(
        lab.pebble.logs().matches("/sign-me-up").count(),
        accounts_before,
        "a second account was created"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_issuance_resumes_the_same_record() {
    let lab = Lab::start("", |o| o.env.push(("PEBBLE_AUTHZREUSE".into(), "0".into()))).await;
    // Validation of this name goes through a tarpit that holds the request,
    // so the order is certainly in flight when the kill comes.
    let tarpit_ip = Ipv4Addr::new(127, 0, 0, 3);
    let tarpit = Tarpit::start(tarpit_ip, lab.web_port).await;
    lab.pebble.add_a("crash.example.test", &[tarpit_ip]).await;
    let (status, cert) = lab
        .server
        .api(
            "POST",
            CERTS,
            Some(json!({"common_name": "crash.example.test", "issuer": "pebble"})),
        )
        .await;
    assert_eq!(status, 202, "{cert}");
    let id = cert["certificate"]["id"].as_str().unwrap().to_owned();
    assert!(
        eventually(Duration::from_secs(10), || async {
            lab.server
                .api("GET", &format!("{CERTS}/{id}"), None)
                .await
                .1["status"]
                == "issuing"
        })
        .await
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    lab.server.signal("KILL");

    let Lab { pebble, server, .. } = lab;
    let server = server.restart();
    tarpit.open();
    server.wait_for_log("resuming unfinished issuance", Duration::from_secs(10));
    let done = server.wait_certificate(&id, ISSUE_TIMEOUT).await;
    assert_eq!(done["status"], "valid", "{done}\n{}", server.logs());
    let (_, list) = server.api("GET", CERTS, None).await;
    assert_eq!(
        list["certificates"].as_array().unwrap().len(),
        1,
        "one record per request: {list}"
    );
    // "valid" is the stored record; the data plane takes the certificate
    // a moment later, and the API says when.
    let done = server.wait_served(&id, SERVE_TIMEOUT).await;
    let client = trusting(&pebble.roots_pem().await, &[b"http/1.1"]);
    let conn = Conn::https(server.websecure, "crash.example.test", client)
        .await
        .unwrap_or_else(|e| panic!("served, but the handshake failed: {e}\n{}", server.logs()));
    assert_eq!(
        fingerprint(&conn),
        done["fingerprint_sha256"].as_str().unwrap(),
        "the resumed record's certificate is the one served"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_carry_the_ca_problem_verbatim_and_fallback_takes_over() {
    let closed = free_port();
    let settings = format!(
        "[acme.issuers.down]\ndirectory = \"https://127.0.0.1:{closed}/dir\"\nfallback = [\"pebble\"]\n"
    );
    let lab = Lab::start(&settings, |_| {}).await;
    // Validation reaches an address where nothing listens.
    lab.pebble
        .add_a("refused.example.test", &[Ipv4Addr::new(127, 0, 0, 4)])
        .await;
    let failed = lab
        .issue(json!({"common_name": "refused.example.test", "issuer": "pebble"}))
        .await;
    assert_eq!(failed["status"], "failed", "{failed}");
    let message = failed["status_message"].as_str().unwrap();
    assert!(
        message.starts_with("urn:ietf:params:acme:error:connection"),
        "{message}"
    );

    // An unreachable issuer falls back, and the record says who signed.
    let cert = lab
        .issue(json!({"common_name": "fallback.example.test", "issuer": "down"}))
        .await;
    assert_eq!(cert["status"], "valid", "{cert}");
    assert_eq!(cert["issuer"], "down");
    assert_eq!(cert["issued_by"], "pebble");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rate_limit_ledger_refuses_the_51st_certificate_of_a_domain() {
    let lab = Lab::start("", |_| {}).await;
    let config = std::fs::read_to_string(lab.server.config_path()).unwrap();
    assert!(config.contains("[acme.issuers.pebble]"));
    // Same lab, but the pebble issuer limited like Let's Encrypt production.
    drop(lab.server);
    let settings = format!(
        "{}weekly_limit = 50\n",
        issuer_toml(&lab.pebble, "pebble", "").trim_end().to_owned() + "\n"
    );
    let server = Server::start_on(
        tempfile::tempdir().unwrap(),
        &format!("[acme]\nemail = \"ops@example.test\"\n{settings}"),
        lab.web_port,
        lab.websecure_port,
    );
    for i in 1..=50 {
        let (status, body) = server
            .api(
                "POST",
                CERTS,
                Some(json!({"common_name": format!("n{i}.limited.test"), "issuer": "pebble"})),
            )
            .await;
        // 202, or 200 when the certificate was already valid by the time
        // the answer was written (Pebble is quick): either way, not refused.
        assert!(
            status == 202 || status == 200,
            "request {i}: {status} {body}"
        );
    }
    let (status, body) = server
        .api(
            "POST",
            CERTS,
            Some(json!({"common_name": "n51.limited.test", "issuer": "pebble"})),
        )
        .await;
    assert_eq!(status, 429, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("limited.test") && message.contains("50"),
        "{message}"
    );
    let (_, list) = server.api("GET", CERTS, None).await;
    assert_eq!(
        list["certificates"].as_array().unwrap().len(),
        50,
        "nothing created for the refused request"
    );
    // Another registered domain is unaffected.
    let (status, _) = server
        .api(
            "POST",
            CERTS,
            Some(json!({"common_name": "a.other.test", "issuer": "pebble"})),
        )
        .await;
    assert_eq!(status, 202);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn external_account_binding_and_unknown_profiles() {
    // A base64url HMAC key, as a CA hands it out.
    let hmac = "zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W";
    let (web_port, websecure_port) = (free_port(), free_port());
    let mut options = PebbleOptions::new(web_port, websecure_port);
    options.eab_required = true;
    options.eab_keys = vec![("kid-1".into(), hmac.into())];
    let pebble = Pebble::start(options).await;
    let settings = format!(
        "[acme]\nemail = \"ops@example.test\"\n{}{}",
        issuer_toml(
            &pebble,
            "corp",
            &format!("eab_kid = \"kid-1\"\neab_hmac_key = \"{hmac}\"")
        ),
        issuer_toml(&pebble, "noeab", "")
    ) + &issuer_toml(
        &pebble,
        "shortlived",
        &format!("eab_kid = \"kid-1\"\neab_hmac_key = \"{hmac}\"\nprofile = \"shortlived\""),
    );
    let server = Server::start_on(
        tempfile::tempdir().unwrap(),
        &settings,
        web_port,
        websecure_port,
    );
    let lab = Lab {
        pebble,
        server,
        web_port,
        websecure_port,
    };

    let cert = lab
        .issue(json!({"common_name": "eab.example.test", "issuer": "corp"}))
        .await;
    assert_eq!(cert["status"], "valid", "{cert}");
    let refused = lab
        .issue(json!({"common_name": "noeab.example.test", "issuer": "noeab"}))
        .await;
    assert_eq!(refused["status"], "failed");
    assert!(
        refused["status_message"]
            .as_str()
            .unwrap()
            .contains("externalAccountRequired"),
        "{refused}"
    );
    let profile = lab
        .issue(json!({"common_name": "p.example.test", "issuer": "shortlived"}))
        .await;
    assert_eq!(profile["status"], "failed");
    assert!(
        profile["status_message"]
            .as_str()
            .unwrap()
            .contains("profile \"shortlived\" is not offered"),
        "{profile}"
    );
    assert!(
        !lab.server.logs().contains(hmac),
        "the EAB key reached the log"
    );
}

#[tokio::test]
async fn internal_ca_issues_offline_and_exports_its_root() {
    let server = Server::start("");
    let (status, cert) = server
        .api(
            "POST",
            CERTS,
            Some(json!({"common_name": "svc.internal.test", "sans": ["api.internal.test"]})),
        )
        .await;
    assert!(status == 202 || status == 200, "{cert}");
    let cert = server
        .wait_certificate(
            cert["certificate"]["id"].as_str().unwrap(),
            Duration::from_secs(10),
        )
        .await;
    assert_eq!(cert["status"], "valid");
    assert_eq!(cert["issuer"], "internal-ca");
    let output = std::process::Command::new(server::binary())
        .args(["ca", "export", "--config"])
        .arg(server.config_path())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let root = String::from_utf8(output.stdout).unwrap();
    assert!(root.starts_with("-----BEGIN CERTIFICATE-----"));
    let client = trusting(&root, &[b"http/1.1"]);
    for name in ["svc.internal.test", "api.internal.test"] {
        Conn::https(server.websecure, name, client.clone())
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

#[tokio::test]
async fn the_api_needs_a_token_and_refuses_bad_requests_before_creating_anything() {
    let server = Server::start("");
    let (status, body) = server.api_as("", "GET", CERTS, None).await;
    assert_eq!(status, 401, "{body}");
    let (status, _) = server.api_as("pcs_wrong", "GET", CERTS, None).await;
    assert_eq!(status, 401);
    let (status, body) = server
        .api("POST", CERTS, Some(json!({"common_name": "*.wild.test", "issuer": "letsencrypt-staging", "challenge_type": "http-01"})))
        .await;
    assert_eq!(status, 422, "{body}");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("dns-01"));
    let (status, body) = server
        .api(
            "POST",
            CERTS,
            Some(json!({"common_name": "a.test", "issuer": "nope"})),
        )
        .await;
    assert_eq!(status, 422);
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("issuer"));
    let (_, list) = server.api("GET", CERTS, None).await;
    assert_eq!(list["certificates"].as_array().unwrap().len(), 0);
    // The token is in a 0600 file and never in the log.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(server.data_dir().join("admin.token"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    assert!(!server.logs().contains(&server.token()));
    assert!(server.logs().contains("admin.token"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_issues_lists_renews_and_revokes() {
    let lab = Lab::start("", |_| {}).await;
    let cli = |args: &[&str]| {
        let output = std::process::Command::new(server::binary())
            .args(args)
            .env(
                "PORTCULLIS_ADMIN_URL",
                format!("http://{}", lab.server.admin),
            )
            .env("PORTCULLIS_TOKEN", lab.server.token())
            .output()
            .unwrap();
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    let (ok, out, err) = cli(&[
        "certs",
        "issue",
        "--name",
        "cli.example.test",
        "--san",
        "cli2.example.test",
        "--issuer",
        "pebble",
        "--challenge",
        "tls-alpn-01",
    ]);
    assert!(ok, "{out}{err}");
    assert!(
        out.contains("valid") && out.contains("cli.example.test,cli2.example.test"),
        "{out}"
    );
    // The command returns once the certificate is served: a client
    // connecting right after gets it.
    let row = out.lines().nth(1).unwrap();
    assert_eq!(row.split_whitespace().nth(2), Some("yes"), "SERVED: {out}");
    let client = lab.client(&[b"http/1.1"]).await;
    let presented = || async {
        fingerprint(
            &Conn::https(lab.server.websecure, "cli2.example.test", client.clone())
                .await
                .unwrap(),
        )
    };
    let server = &lab.server;
    let record = |id: String| async move {
        server.api("GET", &format!("{CERTS}/{id}"), None).await.1["fingerprint_sha256"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert!(
        err.contains("issuing") || err.contains("pending"),
        "progress is shown: {err}"
    );
    let id = out
        .lines()
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();
    let issued = record(id.clone()).await;
    assert_eq!(presented().await, issued);
    let (ok, out, _) = cli(&["certs", "list"]);
    assert!(ok && out.contains(&id));
    let (ok, out, err) = cli(&["certs", "renew", &id]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("valid"));
    let renewed = record(id.clone()).await;
    assert_ne!(renewed, issued);
    assert_eq!(
        presented().await,
        renewed,
        "renew returns once the new one is served"
    );
    let (ok, out, _) = cli(&["certs", "show", &id]);
    assert!(ok && out.contains("\"status\": \"valid\""), "{out}");
    let (ok, out, _) = cli(&["certs", "revoke", &id]);
    assert!(ok && out.contains("revoked"), "{out}");
    let (ok, _, err) = cli(&["certs", "renew", &id]);
    assert!(!ok && err.contains("revoked"), "{err}");
    let (ok, _, err) = cli(&[
        "certs",
        "issue",
        "--name",
        "x.example.test",
        "--issuer",
        "pebble",
    ]);
    assert!(ok, "{err}");
    let (ok, _, err) = std::process::Command::new(server::binary())
        .args(["certs", "list"])
        .env(
            "PORTCULLIS_ADMIN_URL",
            format!("http://{}", lab.server.admin),
        )
        .env("PORTCULLIS_TOKEN", "pcs_wrong")
        .output()
        .map(|o| {
            (
                o.status.success(),
                (),
                String::from_utf8_lossy(&o.stderr).into_owned(),
            )
        })
        .unwrap();
    assert!(!ok && err.contains("401"), "{err}");
}

#[test]
fn the_secret_key_can_come_from_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("p.toml");
    std::fs::write(
        &config,
        format!("data_dir = \"{}\"\n", dir.path().join("data").display()),
    )
    .unwrap();
    let export = |key: &str| {
        std::process::Command::new(server::binary())
            .args(["ca", "export", "--config"])
            .arg(&config)
            .env("PORTCULLIS_SECRET_KEY", key)
            .output()
            .unwrap()
    };
    let key = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="; // 32 bytes
    let first = export(key);
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    assert!(
        !dir.path().join("data/secret.key").exists(),
        "no key file when the key comes from the environment"
    );
    assert_eq!(
        export(key).stdout,
        first.stdout,
        "the same root is read back"
    );

    let other = export("ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA=");
    assert!(!other.status.success());
    let stderr = String::from_utf8_lossy(&other.stderr);
    assert!(stderr.contains("cannot be opened"), "{stderr}");
    let bad = export("not-a-key");
    assert!(String::from_utf8_lossy(&bad.stderr).contains("PORTCULLIS_SECRET_KEY"));
}
