use super::*;

fn service(name: &str, port: u16) -> Service {
    Service::new(name, vec![format!("127.0.0.1:{port}")])
}

fn router(name: &str, host: &str, service: &str) -> Router {
    Router::new(name, vec![host.into()], service)
}

#[tokio::test]
async fn create_update_delete() {
    let store = SqliteStore::in_memory().unwrap();
    assert_eq!(store.snapshot().await.unwrap().revision, 0);
    store.put_service(service("svc", 1)).await.unwrap();
    store
        .put_router(router("r", "A.example.com", "svc"))
        .await
        .unwrap();
    let snap = store.snapshot().await.unwrap();
    assert_eq!(snap.revision, 2);
    assert_eq!(
        snap.routers["r"].hosts,
        vec!["a.example.com"],
        "hosts are normalized"
    );

    store.put_service(service("svc", 2)).await.unwrap();
    let snap = store.snapshot().await.unwrap();
    assert_eq!(snap.services["svc"].upstreams, vec!["127.0.0.1:2"]);

    store.delete_router("r").await.unwrap();
    store.delete_service("svc").await.unwrap();
    let snap = store.snapshot().await.unwrap();
    assert!(snap.services.is_empty() && snap.routers.is_empty());
    assert_eq!(snap.revision, 5);
}

#[tokio::test]
async fn refused_batch_writes_nothing() {
    let store = SqliteStore::in_memory().unwrap();
    // The second change is dangling: the first must not be kept either.
    let err = store
        .apply(
            vec![
                Change::PutService(service("svc", 1)),
                Change::PutRouter(router("r", "a.example.com", "other")),
            ],
            None,
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("other"), "{err}");
    let snap = store.snapshot().await.unwrap();
    assert!(snap.services.is_empty());
    assert_eq!(snap.revision, 0);
}

#[tokio::test]
async fn service_in_use_cannot_be_deleted() {
    let store = SqliteStore::in_memory().unwrap();
    store
        .apply(
            vec![
                Change::PutService(service("svc", 1)),
                Change::PutRouter(router("r", "a.example.com", "svc")),
            ],
            None,
        )
        .await
        .unwrap();
    let err = store.delete_service("svc").await.unwrap_err().to_string();
    assert!(err.contains("\"r\""), "{err}");
    assert!(store.delete_service("nope").await.is_err());
}

#[tokio::test]
async fn compare_and_swap_refuses_stale_writers() {
    let store = SqliteStore::in_memory().unwrap();
    let rev = store.put_service(service("a", 1)).await.unwrap();
    store
        .apply(vec![Change::PutService(service("b", 1))], Some(rev))
        .await
        .unwrap();
    let err = store
        .apply(vec![Change::PutService(service("c", 1))], Some(rev))
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        Error::RevisionMismatch {
            expected: 1,
            actual: 2
        }
    ));
}

#[tokio::test]
async fn invalid_objects_are_refused_before_writing() {
    let store = SqliteStore::in_memory().unwrap();
    assert!(store.put_service(Service::new("s", vec![])).await.is_err());
    store.put_service(service("svc", 1)).await.unwrap();
    assert!(store
        .put_router(router("r", "not a host", "svc"))
        .await
        .is_err());
    assert_eq!(store.snapshot().await.unwrap().revision, 1);
}

#[tokio::test]
async fn watchers_see_commits_and_state_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.db");
    {
        let store = SqliteStore::open(&path).unwrap();
        let mut watch = store.watch();
        store.put_service(service("svc", 7)).await.unwrap();
        watch.changed().await.unwrap();
        assert_eq!(*watch.borrow(), 1);
    }
    let store = SqliteStore::open(&path).unwrap();
    let snap = store.snapshot().await.unwrap();
    assert_eq!(snap.revision, 1);
    assert_eq!(snap.services["svc"].upstreams, vec!["127.0.0.1:7"]);
}

#[tokio::test]
async fn entries_support_create_compare_and_swap_and_delete() {
    use crate::store::{space, Expect};
    let store = SqliteStore::in_memory().unwrap();
    let rev = store
        .put(space::CERTIFICATES, "c1", b"one".to_vec(), Expect::Absent)
        .await
        .unwrap();
    assert!(
        store
            .put(space::CERTIFICATES, "c1", b"again".to_vec(), Expect::Absent)
            .await
            .is_err(),
        "create refuses an existing key"
    );
    let entry = store.get(space::CERTIFICATES, "c1").await.unwrap().unwrap();
    assert_eq!((entry.value.as_slice(), entry.revision), (&b"one"[..], rev));

    let next = store
        .put(
            space::CERTIFICATES,
            "c1",
            b"two".to_vec(),
            Expect::Revision(rev),
        )
        .await
        .unwrap();
    let err = store
        .put(
            space::CERTIFICATES,
            "c1",
            b"stale".to_vec(),
            Expect::Revision(rev),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::EntryConflict { .. }), "{err}");
    assert_eq!(
        store
            .get(space::CERTIFICATES, "c1")
            .await
            .unwrap()
            .unwrap()
            .value,
        b"two"
    );

    store
        .put(space::ACCOUNTS, "a", b"x".to_vec(), Expect::Any)
        .await
        .unwrap();
    let listed = store.list(space::CERTIFICATES).await.unwrap();
    assert_eq!(listed.len(), 1, "spaces are separate");

    store
        .delete(space::CERTIFICATES, "c1", Expect::Revision(next))
        .await
        .unwrap();
    assert!(store
        .get(space::CERTIFICATES, "c1")
        .await
        .unwrap()
        .is_none());
    assert!(store
        .delete(space::CERTIFICATES, "c1", Expect::Any)
        .await
        .is_err());
}
