//! The admin API's OpenAPI document: served without a token, lists every
//! route, and holds up against schemathesis fuzzing the running server.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::support::*;

/// Every route `admin/src/server.rs` dispatches.
const ROUTES: &[(&str, &str)] = &[
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/metrics"),
    ("get", "/api/v1/openapi.json"),
    ("get", "/api/v1/acme/certificates"),
    ("post", "/api/v1/acme/certificates"),
    ("get", "/api/v1/acme/certificates/{id}"),
    ("post", "/api/v1/acme/certificates/{id}/renew"),
    ("post", "/api/v1/acme/certificates/{id}/revoke"),
    ("get", "/api/v1/acme/dns-credentials"),
    ("post", "/api/v1/acme/dns-credentials"),
    ("get", "/api/v1/acme/dns-credentials/{id}"),
    ("delete", "/api/v1/acme/dns-credentials/{id}"),
    ("post", "/api/v1/acme/dns-credentials/{id}/validate"),
    ("post", "/api/v1/ingress/expose"),
    ("get", "/api/v1/ingress/routes"),
    ("post", "/api/v1/proxy/compose"),
    ("get", "/api/v1/plans"),
    ("get", "/api/v1/plans/{id}"),
    ("post", "/api/v1/plans/{id}/approve"),
    ("post", "/api/v1/plans/{id}/reject"),
    ("get", "/api/v1/tokens"),
    ("post", "/api/v1/tokens"),
    ("delete", "/api/v1/tokens/{name}"),
    ("get", "/api/v1/audit"),
    ("get", "/api/v1/tenants/{tenant}/portal-domain"),
    ("put", "/api/v1/tenants/{tenant}/portal-domain"),
    ("delete", "/api/v1/tenants/{tenant}/portal-domain"),
    ("post", "/api/v1/tenants/{tenant}/portal-domain/refresh"),
];

/// The version `scripts/test-all` installs.
const SCHEMATHESIS_VERSION: &str = "4.32.5";

/// Test cases per operation and phase; about 15 s on two idle cores.
const MAX_EXAMPLES: &str = "50";

/// Fixed, so a failure reproduces with the same command.
const SEED: &str = "20261122";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_document_is_served_without_a_token_and_lists_every_route() {
    let server = Server::start("");
    let (status, doc) = server.api_as("", "GET", "/api/v1/openapi.json", None).await;
    assert_eq!(status, 200, "{doc}");

    let version = doc["openapi"].as_str().unwrap_or_default();
    assert!(
        version.starts_with("3.") && version.split('.').count() == 3,
        "not an OpenAPI 3 document: openapi = {:?}",
        doc["openapi"]
    );
    assert!(doc["info"]["title"].is_string() && doc["info"]["version"].is_string());
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    let error = &doc["components"]["schemas"]["ErrorDetail"]["properties"];
    for field in ["code", "message", "fields"] {
        assert!(error[field].is_object(), "ErrorDetail has no {field}");
    }

    for (method, path) in ROUTES {
        let operation = &doc["paths"][path][method];
        assert!(
            operation.is_object(),
            "{} {path} is not in the document",
            method.to_uppercase()
        );
        let public = !path.starts_with("/api/v1/") || *path == "/api/v1/openapi.json";
        if !public {
            assert_eq!(
                operation["security"],
                serde_json::json!([{ "bearer": [] }]),
                "{method} {path}"
            );
            for status in ["200", "401"] {
                let documented = operation["responses"]
                    .as_object()
                    .unwrap()
                    .keys()
                    .any(|s| s == status || (status == "200" && s.starts_with('2')));
                assert!(documented, "{method} {path} does not document {status}");
            }
        }
    }

    // Every reference points at a component the document defines.
    let mut refs = Vec::new();
    collect_refs(&doc, &mut refs);
    assert!(!refs.is_empty());
    for reference in refs {
        let name = reference
            .strip_prefix("#/components/schemas/")
            .unwrap_or_else(|| panic!("unexpected $ref {reference}"));
        assert!(
            doc["components"]["schemas"][name].is_object(),
            "$ref {reference} does not resolve"
        );
    }

    // The rest of /api/v1 still wants a token.
    let (status, body) = server.api_as("", "GET", "/api/v1/plans", None).await;
    assert_eq!(status, 401, "{body}");
    // A known path with a method it does not serve: 405, after the token check.
    let (status, body) = server.api("PUT", "/api/v1/plans", None).await;
    assert_eq!(status, 405, "{body}");
    assert_eq!(body["error"]["code"], "method_not_allowed");
    let (status, body) = server.api_as("", "DELETE", "/healthz", None).await;
    assert_eq!(status, 405, "{body}");
    let (status, _) = server.api("GET", "/api/v1/no-such-thing", None).await;
    assert_eq!(status, 404);
}

fn collect_refs(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, value) in map {
                match (key.as_str(), value) {
                    ("$ref", Value::String(reference)) => out.push(reference.clone()),
                    _ => collect_refs(value, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect_refs(v, out)),
        _ => {}
    }
}

/// Fuzzes every documented operation of a fresh server with every
/// schemathesis check: no 5xx, only documented status codes and content
/// types, bodies that match their schemas, schema-invalid input refused,
/// 405 with `Allow` for undocumented methods, auth enforced. The fuzzer
/// really acts (plans, tokens, internal-CA certificates in a temp dir);
/// `schemathesis/hooks.py` keeps it off public CAs and off its own token,
/// and `schemathesis/schemathesis.toml` keeps it from storing or validating
/// DNS credentials, which calls the DNS provider's API.
#[test]
fn schemathesis_finds_no_failure() {
    let schemathesis = schemathesis_command();
    let server = Server::start("[acme]\ndefault_issuer = \"internal-ca\"\n");
    let here = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/e2e/schemathesis");
    let started = std::time::Instant::now();
    let output = Command::new("timeout")
        .args(["--kill-after=10", "110"])
        .arg(schemathesis.get_program())
        .args(schemathesis.get_args())
        .arg("--config-file")
        .arg(here.join("schemathesis.toml"))
        .args(["--no-color", "run"])
        .arg(format!("http://{}/api/v1/openapi.json", server.admin))
        .arg("--header")
        .arg(format!("Authorization: Bearer {}", server.token()))
        .args(["--checks", "all"])
        .args(["--max-examples", MAX_EXAMPLES])
        .args(["--seed", SEED])
        .args(["--request-timeout", "30"])
        .args(["--workers", "1"])
        .env("SCHEMATHESIS_HOOKS", here.join("hooks.py"))
        // Its caches (.hypothesis, .schemathesis) go in the temp dir.
        .current_dir(server.dir.path())
        .output()
        .expect("run timeout(1)");
    let report = format!(
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success(),
        "schemathesis failed ({}, after {:?}; 124 means it ran out of time):\n{report}\n--- server log ---\n{}",
        output.status,
        started.elapsed(),
        server.logs()
    );
    // A fuzzer that lost its token tests nothing but the 401 path.
    assert!(!report.contains("Authentication failed"), "{report}");
    // Nothing was sent towards a public CA.
    assert_eq!(
        server.log_count("letsencrypt"),
        0,
        "a request reached a Let's Encrypt issuer:\n{}",
        server.logs()
    );
}

/// `python3 -m schemathesis.cli` (where `scripts/test-all` installs it), else
/// `schemathesis` on PATH. Fails, rather than skips, when neither runs.
fn schemathesis_command() -> Command {
    let candidates: [(&str, &[&str]); 3] = [
        ("python3", &["-m", "schemathesis.cli"]),
        ("schemathesis", &[]),
        ("st", &[]),
    ];
    let mut tried = Vec::new();
    for (program, args) in candidates {
        let version = Command::new(program).args(args).arg("--version").output();
        match version {
            Ok(out) if out.status.success() => {
                let text = String::from_utf8_lossy(&out.stdout).into_owned();
                if text.to_ascii_lowercase().contains("schemathesis") {
                    if !text.contains(SCHEMATHESIS_VERSION) {
                        eprintln!(
                            "note: {} is not the pinned schemathesis {SCHEMATHESIS_VERSION}",
                            text.trim()
                        );
                    }
                    let mut command = Command::new(program);
                    command.args(args);
                    return command;
                }
                tried.push(format!("{program} {}: {}", args.join(" "), text.trim()));
            }
            Ok(out) => tried.push(format!(
                "{program} {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            )),
            Err(e) => tried.push(format!("{program}: {e}")),
        }
    }
    panic!(
        "schemathesis is not installed; run scripts/test-all, which installs \
         schemathesis=={SCHEMATHESIS_VERSION} with `python3 -m pip`.\ntried:\n{}",
        tried.join("\n")
    );
}
