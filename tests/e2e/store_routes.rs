//! Routes written to the store reach the data plane, and merge with file routes.

use std::sync::Arc;
use std::time::Duration;

use portcullis_config::model::{Router, Service};
use portcullis_config::{SqliteStore, Store};
use portcullis_proxy::Reconciler;

use crate::support::inproc::InProcess;
use crate::support::*;

#[tokio::test]
async fn store_changes_are_served_and_clashes_with_files_are_refused() {
    let a = Backend::start("a").await;
    let b = Backend::start("b").await;
    let dir = tempfile::tempdir().unwrap();
    let dynamic = dir.path().join("dynamic");
    std::fs::create_dir_all(&dynamic).unwrap();
    let store = Arc::new(SqliteStore::open(&dir.path().join("p.db")).unwrap());
    let proxy = InProcess::start().await;
    let reconcile = Reconciler::new(
        Arc::clone(&proxy.plane),
        store.clone() as Arc<dyn Store>,
        dynamic.clone(),
    )
    .start(true)
    .await
    .unwrap();

    let mut router = Router::new("app", vec!["app.test".into()], "svc");
    router.entrypoint = portcullis_config::model::Entrypoint::Web;
    store
        .put_service(Service::new("svc", vec![a.upstream()]))
        .await
        .unwrap();
    store.put_router(router.clone()).await.unwrap();
    let get = |host: &'static str| async move {
        let mut conn = Conn::http(proxy.web).await.ok()?;
        conn.get(host, "/").await.ok()
    };
    assert!(
        eventually(Duration::from_secs(5), || async {
            get("app.test")
                .await
                .is_some_and(|r| r.status == 200 && r.backend() == "a")
        })
        .await
    );

    // Update: the service moves to another upstream.
    store
        .put_service(Service::new("svc", vec![b.upstream()]))
        .await
        .unwrap();
    assert!(
        eventually(Duration::from_secs(5), || async {
            get("app.test").await.is_some_and(|r| r.backend() == "b")
        })
        .await
    );

    // A file defining the same service name is refused; the store's version keeps serving.
    let generation = proxy.plane.generation();
    write_atomic_toml(
        &dynamic.join("clash.toml"),
        &route_toml(
            "svc",
            &["clash.test"],
            &[&a.upstream()],
            "entrypoint = \"web\"",
        ),
    );
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        proxy.plane.generation(),
        generation,
        "a clashing state must not be applied"
    );
    assert_eq!(get("app.test").await.unwrap().backend(), "b");
    assert_eq!(get("clash.test").await.unwrap().status, 404);
    std::fs::remove_file(dynamic.join("clash.toml")).unwrap();

    // Delete: the route disappears.
    store.delete_router("app").await.unwrap();
    assert!(
        eventually(Duration::from_secs(5), || async {
            get("app.test").await.is_some_and(|r| r.status == 404)
        })
        .await
    );

    reconcile.abort();
    proxy.stop().await;
}

fn write_atomic_toml(path: &std::path::Path, contents: &str) {
    crate::support::server::write_atomic(path, contents);
}
