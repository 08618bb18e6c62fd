//! An idle proxy sleeps: with no traffic, its workers are not woken by
//! their own timers (see `accept_gate`, `idle_watch` and `pool`).

use std::time::Duration;

use crate::support::client::Conn;
use crate::support::server::Server;

/// Voluntary context switches (sleeps, and so wake-ups) of each worker
/// thread of process `pid`, by thread id.
fn worker_sleeps(pid: u32) -> Vec<(String, u64)> {
    let mut sleeps = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let task = task.unwrap().path();
        let Ok(name) = std::fs::read_to_string(task.join("comm")) else {
            continue;
        };
        // Thread names are cut to 15 bytes: "portcullis-worker-N".
        if !name.starts_with("portcullis-work") {
            continue;
        }
        let Ok(status) = std::fs::read_to_string(task.join("status")) else {
            continue;
        };
        let count = status
            .lines()
            .find_map(|line| line.strip_prefix("voluntary_ctxt_switches:"))
            .and_then(|count| count.trim().parse().ok())
            .expect("voluntary_ctxt_switches in /proc status");
        let id = task.file_name().unwrap().to_string_lossy().into_owned();
        sleeps.push((id, count));
    }
    sleeps.sort();
    sleeps
}

async fn one_request(server: &Server) {
    let mut conn = Conn::http(server.web).await.unwrap();
    let reply = conn.get("nobody.test", "/").await.unwrap();
    assert_eq!(reply.status, 404, "answered by the proxy itself");
}

/// Asserts that no worker thread of `server` woke more than 3 times in 3
/// seconds, starting 2.5 s after the last connection closed: within a sweep
/// interval (1 s at most) and a gate window every loop has seen it close and
/// rests. Before they rested, each worker woke about 55 times a second.
async fn assert_workers_sleep(server: &Server, workers: usize) {
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let before = worker_sleeps(server.pid());
    assert_eq!(before.len(), workers, "worker threads: {before:?}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = worker_sleeps(server.pid());
    for ((id, was), (_, now)) in before.iter().zip(&after) {
        assert!(
            now - was <= 3,
            "worker thread {id} woke {} times in 3 idle seconds",
            now - was
        );
    }
}

#[tokio::test]
async fn an_idle_proxy_does_not_wake_its_workers() {
    // Three workers, so that the accept gate steers on any machine.
    let server = Server::start("[server]\nworkers = 3\n");
    for _ in 0..3 {
        one_request(&server).await;
    }
    assert_workers_sleep(&server, 3).await;
    // Rested, it still serves, and rests again afterwards.
    one_request(&server).await;
    assert_workers_sleep(&server, 3).await;
}
