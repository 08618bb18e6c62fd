//! Graceful shutdown on SIGTERM.

use std::time::Duration;

use crate::support::*;

#[tokio::test]
async fn sigterm_finishes_in_flight_requests_then_exits_zero() {
    drains_on("TERM").await;
}

#[tokio::test]
async fn ctrl_c_drains_the_same_way() {
    drains_on("INT").await;
}

async fn drains_on(signal: &str) {
    let backend = Backend::start("slow").await;
    let mut server = Server::start("[server]\ndrain_timeout = \"10s\"");
    server.write_dynamic(
        "app.toml",
        &route_toml(
            "app",
            &["app.test"],
            &[&backend.upstream()],
            "entrypoint = \"web\"",
        ),
    );
    server.wait_for_log("routers=1", Duration::from_secs(10));
    let web = server.web;
    let in_flight = tokio::spawn(async move {
        let mut conn = Conn::http(web).await.unwrap();
        conn.get("app.test", "/slow?ms=1500").await
    });
    // Let the request reach the backend before the signal.
    assert!(
        eventually(Duration::from_secs(5), || async {
            backend.hits.load(std::sync::atomic::Ordering::Relaxed) == 1
        })
        .await
    );
    server.signal(signal);
    server.wait_for_log("stopped accepting", Duration::from_secs(5));
    assert!(
        tokio::net::TcpStream::connect(web).await.is_err(),
        "new connections must be refused while draining"
    );
    let reply = in_flight
        .await
        .unwrap()
        .expect("in-flight request was cut off");
    assert_eq!(reply.status, 200);
    let status = server.wait_exit(Duration::from_secs(10));
    assert!(status.success(), "exit status {status}");
}
