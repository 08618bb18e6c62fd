//! DNS-01 end to end: a real authoritative server (knot) updated over
//! RFC 2136, Pebble resolving through it, certificates served.

use std::time::Duration;

use serde_json::{json, Value};

use crate::support::knot::Knot;
use crate::support::lab::{issuer_toml, trusting, CERTS, ISSUE_TIMEOUT};
use crate::support::pebble::{free_port, Pebble, PebbleOptions};
use crate::support::*;

const CREDENTIALS: &str = "/api/v1/acme/dns-credentials";

const ZONE: &str = "$ORIGIN example.test.
$TTL 60
@ SOA ns1.example.test. hostmaster.example.test. 1 3600 600 86400 60
@ NS ns1.example.test.
ns1 A 127.0.0.1
portal A 127.0.0.1
*.portal A 127.0.0.1
shop A 127.0.0.1
_acme-challenge.shop CNAME _acme-challenge.delegated.example.test.
";

/// knot + Pebble resolving through it + Portcullis with the knot as resolver.
struct DnsLab {
    knot: Knot,
    pebble: Pebble,
    server: Server,
}

async fn dns_lab(extra_acme: &str) -> DnsLab {
    let knot = Knot::start(&[("example.test", ZONE)]).await;
    let mut last = String::new();
    // Pebble needs Portcullis's ports first; retry when another test took one meanwhile.
    for _ in 0..4 {
        let (web_port, websecure_port) = (free_port(), free_port());
        let mut options = PebbleOptions::new(web_port, websecure_port);
        options.dns_server = Some(knot.addr);
        let pebble = Pebble::start(options).await;
        let config = format!(
            "[acme]\nemail = \"ops@example.test\"\nrenew_interval = \"1h\"\npropagation_timeout = \"15s\"\ndns_resolvers = [\"{}\"]\n{extra_acme}\n{}",
            knot.addr,
            issuer_toml(&pebble, "pebble", "")
        );
        match Server::try_configure(
            tempfile::tempdir().unwrap(),
            &config,
            web_port,
            websecure_port,
            false,
        ) {
            Ok(server) => {
                return DnsLab {
                    knot,
                    pebble,
                    server,
                }
            }
            Err(logs) if logs.contains("could not listen") => last = logs,
            Err(logs) => panic!("{logs}"),
        }
    }
    panic!("no free ports after 4 attempts:\n{last}")
}

impl DnsLab {
    async fn credential(&self, name: &str, secret: &str) -> Value {
        let (status, record) = self
            .server
            .api(
                "POST",
                CREDENTIALS,
                Some(json!({
                    "name": name,
                    "provider": "rfc2136",
                    "config": {"server": self.knot.addr.to_string(), "key_name": self.knot.key_name, "zones": "example.test"},
                    "secrets": {"key_secret": secret},
                })),
            )
            .await;
        assert_eq!(status, 201, "{record}");
        record
    }

    async fn issue(&self, body: Value) -> Value {
        let (status, answer) = self.server.api("POST", CERTS, Some(body)).await;
        assert!(status == 200 || status == 202, "{status}: {answer}");
        self.server
            .wait_certificate(answer["certificate"]["id"].as_str().unwrap(), ISSUE_TIMEOUT)
            .await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wildcard_and_apex_in_one_certificate_over_rfc2136() {
    let lab = dns_lab("").await;
    let credential = lab.credential("knot", &lab.knot.key_secret_base64).await;
    assert_eq!(credential["status"], "valid", "{credential}");
    assert_eq!(credential["zones"], json!(["example.test"]));
    assert!(
        !credential.to_string().contains(&lab.knot.key_secret_base64),
        "the secret came back"
    );

    let cert = lab
        .issue(json!({
            "common_name": "portal.example.test",
            "sans": ["*.portal.example.test"],
            "issuer": "pebble",
            "challenge_type": "dns-01",
            "dns_credential_id": credential["id"],
        }))
        .await;
    assert_eq!(cert["status"], "valid", "{cert}\n{}", lab.server.logs());
    // Both TXT values shared one name; both are cleaned up.
    assert!(lab
        .knot
        .txt("_acme-challenge.portal.example.test")
        .await
        .is_empty());

    let client = trusting(&lab.pebble.roots_pem().await, &[b"http/1.1"]);
    for name in ["portal.example.test", "anything.portal.example.test"] {
        Conn::https(lab.server.websecure, name, client.clone())
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    let logs = lab.server.logs();
    assert!(
        !logs.contains(&lab.knot.key_secret_base64),
        "the TSIG secret reached the log"
    );
    let (_, list) = lab.server.api("GET", CREDENTIALS, None).await;
    assert!(!list.to_string().contains(&lab.knot.key_secret_base64));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delegated_acme_challenge_is_written_at_the_cname_target() {
    let lab = dns_lab("").await;
    let credential = lab.credential("knot", &lab.knot.key_secret_base64).await;
    let cert = lab
        .issue(json!({
            "common_name": "shop.example.test",
            "issuer": "pebble",
            "challenge_type": "dns-01",
            "dns_credential_id": credential["id"],
        }))
        .await;
    assert_eq!(cert["status"], "valid", "{cert}\n{}", lab.server.logs());
    assert!(
        lab.server
            .logs()
            .contains("_acme-challenge.delegated.example.test"),
        "{}",
        lab.server.logs()
    );
    assert!(
        lab.knot
            .txt("_acme-challenge.delegated.example.test")
            .await
            .is_empty(),
        "cleaned up"
    );
    assert_eq!(
        lab.knot
            .query("_acme-challenge.shop.example.test", "CNAME")
            .await,
        vec!["_acme-challenge.delegated.example.test."],
        "the tenant's delegation is left alone"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_credential_fails_before_any_order_and_stale_ones_are_revalidated() {
    let lab = dns_lab("").await;
    let bad = lab
        .credential("wrong", "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0MTI=")
        .await;
    assert_eq!(bad["status"], "invalid", "{bad}");
    assert!(
        bad["status_message"].as_str().unwrap().contains("BADSIG"),
        "{bad}"
    );
    let orders = lab.pebble.logs().matches("/order-plz").count();
    let failed = lab
        .issue(json!({"common_name": "portal.example.test", "issuer": "pebble", "challenge_type": "dns-01", "dns_credential_id": bad["id"]}))
        .await;
    assert_eq!(failed["status"], "failed");
    assert!(
        failed["status_message"]
            .as_str()
            .unwrap()
            .contains("invalid"),
        "{failed}"
    );
    assert_eq!(
        lab.pebble.logs().matches("/order-plz").count(),
        orders,
        "an order was placed with a bad credential"
    );

    // A credential validated over a day ago is validated again before use.
    let good = lab.credential("good", &lab.knot.key_secret_base64).await;
    let id = good["id"].as_str().unwrap();
    let first_validation = good["last_validated_at"].as_i64().unwrap();
    age_credential(&lab.server, id, 2 * 86_400).await;
    let cert = lab
        .issue(json!({"common_name": "portal.example.test", "issuer": "pebble", "challenge_type": "dns-01", "dns_credential_id": id}))
        .await;
    assert_eq!(cert["status"], "valid", "{cert}");
    let (_, after) = lab
        .server
        .api("GET", &format!("{CREDENTIALS}/{id}"), None)
        .await;
    assert!(
        after["last_validated_at"].as_i64().unwrap() >= first_validation,
        "{after}"
    );
    assert!(after["last_validated_at"].as_i64().unwrap() > first_validation - 2 * 86_400 + 10);

    // On demand, too.
    let (status, again) = lab
        .server
        .api("POST", &format!("{CREDENTIALS}/{id}/validate"), None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(again["status"], "valid");
}

/// Moves a credential's last validation into the past, straight in the store.
async fn age_credential(server: &Server, id: &str, seconds: i64) {
    use portcullis_config::store::{space, Expect};
    use portcullis_config::Store;
    let store =
        portcullis_config::SqliteStore::open(&server.data_dir().join("portcullis.db")).unwrap();
    let entry = store
        .get(space::DNS_CREDENTIALS, id)
        .await
        .unwrap()
        .unwrap();
    let mut record: Value = serde_json::from_slice(&entry.value).unwrap();
    let old = record["last_validated_at"].as_i64().unwrap() - seconds;
    record["last_validated_at"] = json!(old);
    store
        .put(
            space::DNS_CREDENTIALS,
            id,
            serde_json::to_vec(&record).unwrap(),
            Expect::Revision(entry.revision),
        )
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn propagation_timeout_says_what_was_seen_and_records_are_removed_even_after_a_crash() {
    // A second "resolver" that never answers: the record can never be seen there.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let silent_addr = silent.local_addr().unwrap();
    let lab = dns_lab("").await;
    let credential = lab.credential("knot", &lab.knot.key_secret_base64).await;
    // Restart with both resolvers and a short timeout.
    let config = std::fs::read_to_string(lab.server.config_path()).unwrap();
    let config = config
        .replace(
            &format!("dns_resolvers = [\"{}\"]", lab.knot.addr),
            &format!("dns_resolvers = [\"{}\", \"{silent_addr}\"]", lab.knot.addr),
        )
        .replace(
            "propagation_timeout = \"15s\"",
            "propagation_timeout = \"2s\"",
        );
    std::fs::write(lab.server.config_path(), config).unwrap();
    let server = lab.server.restart();
    // The certificate plan fails with what each resolver said, and removes
    // the failed certificate it created: nothing is left half-done.
    let (status, answer) = server
        .api("POST", CERTS, Some(json!({"common_name": "portal.example.test", "issuer": "pebble", "challenge_type": "dns-01", "dns_credential_id": credential["id"]})))
        .await;
    assert_eq!(status, 202, "{answer}");
    let plan = server
        .wait_plan(answer["plan"]["id"].as_str().unwrap(), ISSUE_TIMEOUT)
        .await;
    assert_eq!(plan["status"], "failed", "{plan}");
    let message = plan["error"].as_str().unwrap();
    assert!(
        message.contains("propagation") && message.contains(&silent_addr.to_string()),
        "{message}"
    );
    let certificate = answer["certificate"]["id"].as_str().unwrap();
    let (status, _) = server
        .api("GET", &format!("{CERTS}/{certificate}"), None)
        .await;
    assert_eq!(
        status, 404,
        "the failed certificate is removed with its plan"
    );
    assert!(
        lab.knot
            .txt("_acme-challenge.portal.example.test")
            .await
            .is_empty(),
        "TXT left behind after a failure"
    );

    // A crash between writing the record and removing it: the next start removes it.
    let config = std::fs::read_to_string(server.config_path()).unwrap();
    std::fs::write(
        server.config_path(),
        config.replace(
            "propagation_timeout = \"2s\"",
            "propagation_timeout = \"60s\"",
        ),
    )
    .unwrap();
    let server = server.restart();
    let (status, answer) = server
        .api("POST", CERTS, Some(json!({"common_name": "portal.example.test", "issuer": "pebble", "challenge_type": "dns-01", "dns_credential_id": credential["id"]})))
        .await;
    assert_eq!(status, 202, "{answer}");
    assert!(
        eventually(Duration::from_secs(15), || async {
            !lab.knot
                .txt("_acme-challenge.portal.example.test")
                .await
                .is_empty()
        })
        .await,
        "the record was never written"
    );
    let config = std::fs::read_to_string(server.config_path()).unwrap();
    std::fs::write(
        server.config_path(),
        config.replace(&format!(", \"{silent_addr}\""), ""),
    )
    .unwrap();
    let server = server.restart();
    server.wait_for_log(
        "removed a DNS-01 record left by an earlier run",
        Duration::from_secs(20),
    );
    // The interrupted order resumes and completes; nothing is left in the zone.
    let id = answer["certificate"]["id"].as_str().unwrap();
    let done = server.wait_certificate(id, ISSUE_TIMEOUT).await;
    assert_eq!(done["status"], "valid", "{done}");
    assert!(lab
        .knot
        .txt("_acme-challenge.portal.example.test")
        .await
        .is_empty());
    drop(silent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_and_the_credentials_cli() {
    let lab = dns_lab("").await;
    let admin_env = |command: &mut std::process::Command| {
        command
            .env(
                "PORTCULLIS_ADMIN_URL",
                format!("http://{}", lab.server.admin),
            )
            .env("PORTCULLIS_TOKEN", lab.server.token());
    };
    let mut add = std::process::Command::new(server::binary());
    add.args([
        "dns-credentials",
        "add",
        "--name",
        "knot-cli",
        "--provider",
        "rfc2136",
    ])
    .args(["--setting", &format!("server={}", lab.knot.addr)])
    .args(["--setting", &format!("key_name={}", lab.knot.key_name)])
    .args(["--setting", "zones=example.test"])
    .args(["--secret-env", "key_secret=KNOT_SECRET"])
    .env("KNOT_SECRET", &lab.knot.key_secret_base64);
    admin_env(&mut add);
    let output = add.output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("valid") && stdout.contains("example.test"),
        "{stdout}"
    );
    assert!(!stdout.contains(&lab.knot.key_secret_base64));
    let id = stdout.split_whitespace().next().unwrap().to_owned();

    // A TXT value at the delegated name, then the doctor's view of it.
    let (_, credential) = lab
        .server
        .api("GET", &format!("{CREDENTIALS}/{id}"), None)
        .await;
    assert_eq!(credential["status"], "valid");
    let provider = portcullis_acme::dns::providers::build(
        "rfc2136",
        &portcullis_acme::dns::Fields {
            config: [
                ("server".to_owned(), lab.knot.addr.to_string()),
                ("key_name".to_owned(), lab.knot.key_name.clone()),
            ]
            .into(),
            secrets: [("key_secret".to_owned(), lab.knot.key_secret_base64.clone())].into(),
        },
    )
    .unwrap();
    provider
        .present(
            "example.test",
            "_acme-challenge.delegated.example.test",
            "doctor-probe",
        )
        .await
        .unwrap();
    let output = std::process::Command::new(server::binary())
        .args(["doctor", "dns", "shop.example.test"])
        .env("PORTCULLIS_ACME_DNS_RESOLVERS", lab.knot.addr.to_string())
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{report}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for expected in [
        "zone:            example.test",
        "delegation:      _acme-challenge.shop.example.test CNAME -> _acme-challenge.delegated.example.test",
        "ns1.example.test (127.0.0.1)",
        "\"doctor-probe\"",
        "A/AAAA shop.example.test: 127.0.0.1",
    ] {
        assert!(report.contains(expected), "missing {expected:?} in:\n{report}");
    }
    provider
        .cleanup(
            "example.test",
            "_acme-challenge.delegated.example.test",
            "doctor-probe",
        )
        .await
        .unwrap();

    let mut remove = std::process::Command::new(server::binary());
    remove.args(["dns-credentials", "remove", &id]);
    admin_env(&mut remove);
    assert!(remove.output().unwrap().status.success());
    let (status, _) = lab
        .server
        .api("GET", &format!("{CREDENTIALS}/{id}"), None)
        .await;
    assert_eq!(status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expose_over_dns01() {
    let backend = Backend::start("svc").await;
    let lab = dns_lab("").await;
    let credential = lab.credential("knot", &lab.knot.key_secret_base64).await;
    let body = json!({
        "service_hostname": "portal.example.test",
        "service_protocol": "https",
        "backend_port": backend.addr.port(),
        "target_host": "127.0.0.1",
        "tls_issuer": "pebble",
        "challenge_type": "dns-01",
        "dns_credential_id": credential["id"],
    });
    let mut unknown = body.clone();
    unknown["dns_credential_id"] = json!("nope");
    let (status, refused) = lab
        .server
        .api("POST", "/api/v1/ingress/expose", Some(unknown))
        .await;
    assert_eq!(status, 422, "{refused}");
    assert_eq!(refused["error"]["fields"][0]["field"], "dns_credential_id");
    let (status, plan) = lab
        .server
        .api("POST", "/api/v1/ingress/expose", Some(body))
        .await;
    assert_eq!(status, 202, "{plan}");
    let id = plan["id"].as_str().unwrap();
    let deadline = tokio::time::Instant::now() + ISSUE_TIMEOUT;
    let plan = loop {
        let (_, plan) = lab
            .server
            .api("GET", &format!("/api/v1/plans/{id}"), None)
            .await;
        if plan["status"] != "running" {
            break plan;
        }
        assert!(tokio::time::Instant::now() < deadline, "{plan}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(plan["status"], "succeeded", "{plan}\n{}", lab.server.logs());
    let client = trusting(&lab.pebble.roots_pem().await, &[b"http/1.1"]);
    let reply = client::https_get(
        lab.server.websecure,
        "portal.example.test",
        client,
        "portal.example.test",
        "/",
    )
    .await
    .unwrap();
    assert_eq!(reply.backend(), "svc");
}
