//! Access logs, in text and JSON.

use std::time::Duration;

use crate::support::*;

#[tokio::test]
async fn json_access_log_has_one_line_per_request_with_router_status_and_bytes() {
    let backend = Backend::start("app").await;
    let server = Server::start("[log]\nformat = \"json\"");
    server.write_dynamic(
        "app.toml",
        &route_toml(
            "app",
            &["app.test"],
            &[&backend.upstream()],
            "entrypoint = \"web\"",
        ),
    );
    server.wait_for_log("\"routers\":1", Duration::from_secs(10));
    let mut conn = Conn::http(server.web).await.unwrap();
    let reply = conn.get("app.test", "/some/path").await.unwrap();
    assert_eq!(conn.get("nobody.test", "/").await.unwrap().status, 404);
    server.wait_for_log("nobody.test", Duration::from_secs(5));

    let lines: Vec<serde_json::Value> = server
        .logs()
        .lines()
        .filter(|l| l.contains("portcullis::access"))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert_eq!(lines.len(), 2, "{lines:#?}");
    let routed = &lines[0];
    assert_eq!(routed["router"], "app");
    assert_eq!(routed["service"], "app");
    assert_eq!(routed["status"], 200);
    assert_eq!(routed["path"], "/some/path");
    assert_eq!(routed["bytes"], reply.body.len());
    assert!(routed["duration_ms"].as_f64().unwrap() > 0.0);
    let unrouted = &lines[1];
    assert_eq!(unrouted["status"], 404);
    assert_eq!(unrouted["router"], "-");
}
