//! The watched dynamic-configuration directory.

use std::time::Duration;

use crate::support::pki::common_name;
use crate::support::*;

const WAIT: Duration = Duration::from_secs(10);

#[tokio::test]
async fn changes_apply_and_bad_files_keep_the_last_good_state() {
    let pki = Pki::new("Test CA");
    let a = Backend::start("a").await;
    let b = Backend::start("b").await;
    let server = Server::start("");
    let dir = server.dynamic_dir();
    pki.write_server(&dir, "site", &["app.test"]);
    let config = |upstream: &str| {
        let mut c = route_toml("app", &["app.test"], &[upstream], "");
        c.push_str(&cert_toml("site"));
        c
    };
    server.write_dynamic("app.toml", &config(&a.upstream()));
    server.wait_for_log("routers=1", WAIT);
    let client = pki.client_config(&[b"http/1.1"], None);
    let get = || {
        client::https_get(
            server.websecure,
            "app.test",
            client.clone(),
            "app.test",
            "/",
        )
    };
    assert_eq!(get().await.unwrap().backend(), "a");

    // A syntax error is logged, and the last good state keeps serving.
    server.write_dynamic("app.toml", "[services.app\nupstreams = 1");
    server.wait_for_log("dynamic configuration refused", WAIT);
    assert!(
        server.logs().contains("app.toml"),
        "the error names the file"
    );
    assert_eq!(get().await.unwrap().backend(), "a");

    // A valid change applies.
    server.write_dynamic("app.toml", &config(&b.upstream()));
    assert!(
        eventually(WAIT, || async {
            get().await.map(|r| r.backend() == "b").unwrap_or(false)
        })
        .await
    );

    // The same router name in two files: refused, naming both files.
    server.write_dynamic(
        "other.toml",
        &route_toml("app", &["other.test"], &[&a.upstream()], ""),
    );
    server.wait_for_log("is defined twice", WAIT);
    let line = server
        .logs()
        .lines()
        .find(|l| l.contains("is defined twice"))
        .unwrap()
        .to_owned();
    assert!(
        line.contains("app.toml") && line.contains("other.toml"),
        "{line}"
    );
    assert_eq!(get().await.unwrap().backend(), "b");
    std::fs::remove_file(dir.join("other.toml")).unwrap();

    // Removing the file removes its routes.
    let applied = server.log_count("configuration applied");
    std::fs::remove_file(dir.join("app.toml")).unwrap();
    assert!(
        eventually(WAIT, || async {
            server.log_count("configuration applied") > applied
        })
        .await
    );
    let reply = client::https_get(
        server.websecure,
        "app.test",
        crate::support::pki::insecure_client_config(&[b"http/1.1"]),
        "app.test",
        "/",
    )
    .await
    .unwrap();
    assert_eq!(reply.status, 404);
}

#[tokio::test]
async fn replaced_certificate_is_served_to_new_connections() {
    let pki = Pki::new("Test CA");
    let backend = Backend::start("a").await;
    let server = Server::start("");
    let dir = server.dynamic_dir();
    pki.write_server(&dir, "site", &["app.test"]);
    let mut config = route_toml("app", &["app.test"], &[&backend.upstream()], "");
    config.push_str(&cert_toml("site"));
    server.write_dynamic("app.toml", &config);
    server.wait_for_log("certificates=1", WAIT);
    let client = pki.client_config(&[b"http/1.1"], None);
    let first = Conn::https(server.websecure, "app.test", client.clone())
        .await
        .unwrap();
    let first_der = first.peer_certificate.clone().unwrap();

    // Rotate: new cert + key written, then the config touched (as a deploy tool does).
    pki.write_server(&dir, "site", &["app.test", "www.app.test"]);
    server.write_dynamic("app.toml", &format!("{config}\n# rotated\n"));
    assert!(
        eventually(WAIT, || async {
            Conn::https(server.websecure, "app.test", client.clone())
                .await
                .map(|c| c.peer_certificate.unwrap() != first_der)
                .unwrap_or(false)
        })
        .await,
        "the new certificate was never served:\n{}",
        server.logs()
    );
    let conn = Conn::https(server.websecure, "www.app.test", client)
        .await
        .unwrap();
    assert_eq!(
        common_name(conn.peer_certificate.as_ref().unwrap()),
        "app.test"
    );
}
