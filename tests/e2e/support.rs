//! What every scenario needs: a PKI, backends, a client, the server.

#![allow(dead_code, unreachable_pub)]

pub mod backend;
pub mod client;
pub mod inproc;
pub mod knot;
pub mod lab;
pub mod pebble;
pub mod pki;
pub mod server;
pub mod tarpit;

pub use backend::Backend;
pub use client::{Conn, Reply};
pub use pki::Pki;
pub use server::Server;

/// Polls `check` every 50 ms until it returns true or `timeout` passes.
pub async fn eventually<F, Fut>(timeout: std::time::Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if check().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// A dynamic-config file with one service and one router.
pub fn route_toml(name: &str, hosts: &[&str], upstreams: &[&str], extra_router: &str) -> String {
    let hosts = hosts
        .iter()
        .map(|h| format!("{h:?}"))
        .collect::<Vec<_>>()
        .join(", ");
    let upstreams = upstreams
        .iter()
        .map(|u| format!("{u:?}"))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "[services.{name}]\nupstreams = [{upstreams}]\n\n[routers.{name}]\nhosts = [{hosts}]\nservice = \"{name}\"\n{extra_router}\n"
    )
}

/// A `[[certificates]]` entry for files next to the config.
pub fn cert_toml(stem: &str) -> String {
    format!("\n[[certificates]]\ncert_file = \"{stem}.pem\"\nkey_file = \"{stem}.key\"\n")
}

/// A server with `routes` and a certificate for `names` from `pki`, once
/// the certificate is loaded.
pub async fn https_server(pki: &Pki, routes: &str, names: &[&str]) -> Server {
    let server = Server::start("");
    pki.write_server(&server.dynamic_dir(), "site", names);
    let mut config = routes.to_owned();
    config.push_str(&cert_toml("site"));
    server.write_dynamic("site.toml", &config);
    server.wait_for_log("certificates=1", std::time::Duration::from_secs(10));
    server
}
