use super::*;
use portcullis_config::model::{Layer, Service};

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

fn state(routers: Vec<Router>) -> DesiredState {
    let mut layer = Layer::new("test");
    for name in ["a", "b", "c"] {
        layer.services.insert(
            name.into(),
            Service::new(name, vec![format!("127.0.0.1:{}", name.as_bytes()[0])]),
        );
    }
    for router in routers {
        let router = router.normalize().unwrap();
        layer.routers.insert(router.name.clone(), router);
    }
    DesiredState::merge([&layer]).unwrap()
}

fn router(name: &str, hosts: &[&str], prefix: &str, service: &str) -> Router {
    let mut r = Router::new(
        name,
        hosts.iter().map(|h| (*h).to_owned()).collect(),
        service,
    );
    r.path_prefix = prefix.into();
    r
}

fn routed(table: &RouteTable, host: &str, path: &str) -> Option<String> {
    table
        .lookup(Entrypoint::Websecure, host, path)
        .map(|r| r.router.to_string())
}

#[test]
fn longest_prefix_wins() {
    let table = RouteTable::build_for_test(
        &state(vec![
            router("root", &["x.test"], "/", "a"),
            router("api", &["x.test"], "/api", "b"),
            router("api-v2", &["x.test"], "/api/v2", "c"),
        ]),
        None,
        &provider(),
    )
    .unwrap();
    assert_eq!(routed(&table, "x.test", "/").as_deref(), Some("root"));
    assert_eq!(
        routed(&table, "x.test", "/api/users").as_deref(),
        Some("api")
    );
    assert_eq!(
        routed(&table, "x.test", "/api/v2/x").as_deref(),
        Some("api-v2")
    );
    assert_eq!(routed(&table, "y.test", "/"), None);
}

#[test]
fn priority_breaks_ties_between_equal_prefixes() {
    let mut low = router("low", &["x.test"], "/", "a");
    low.priority = 1;
    let mut high = router("high", &["x.test"], "/", "b");
    high.priority = 10;
    let table = RouteTable::build_for_test(&state(vec![low, high]), None, &provider()).unwrap();
    assert_eq!(routed(&table, "x.test", "/").as_deref(), Some("high"));
}

#[test]
fn exact_host_beats_wildcard_and_falls_back_to_it() {
    let table = RouteTable::build_for_test(
        &state(vec![
            router("wild", &["*.example.com"], "/", "a"),
            router("exact", &["api.example.com"], "/v1", "b"),
        ]),
        None,
        &provider(),
    )
    .unwrap();
    assert_eq!(
        routed(&table, "api.example.com", "/v1/x").as_deref(),
        Some("exact")
    );
    assert_eq!(
        routed(&table, "api.example.com", "/other").as_deref(),
        Some("wild"),
        "no exact prefix matches, so the wildcard answers"
    );
    assert_eq!(
        routed(&table, "www.example.com", "/").as_deref(),
        Some("wild")
    );
    assert_eq!(routed(&table, "example.com", "/"), None);
    assert_eq!(routed(&table, "a.b.example.com", "/"), None);
}

#[test]
fn hosts_are_or_joined_and_entrypoints_are_separate() {
    let mut web = router("plain", &["p.test"], "/", "a");
    web.entrypoint = Entrypoint::Web;
    let table = RouteTable::build_for_test(
        &state(vec![
            router("multi", &["one.test", "two.test"], "/", "b"),
            web,
        ]),
        None,
        &provider(),
    )
    .unwrap();
    assert_eq!(routed(&table, "one.test", "/").as_deref(), Some("multi"));
    assert_eq!(routed(&table, "two.test", "/").as_deref(), Some("multi"));
    assert_eq!(routed(&table, "p.test", "/"), None);
    assert!(table.lookup(Entrypoint::Web, "p.test", "/").is_some());
    assert!(table.serves_host(Entrypoint::Websecure, "one.test"));
    assert!(!table.serves_host(Entrypoint::Web, "one.test"));
}

#[test]
fn unchanged_services_keep_their_pools_across_rebuilds() {
    let p = provider();
    let first =
        RouteTable::build_for_test(&state(vec![router("r", &["x.test"], "/", "a")]), None, &p)
            .unwrap();
    let second = RouteTable::build_for_test(
        &state(vec![router("r2", &["x.test"], "/", "a")]),
        Some(&first),
        &p,
    )
    .unwrap();
    let a1 = &first
        .lookup(Entrypoint::Websecure, "x.test", "/")
        .unwrap()
        .upstreams;
    let a2 = &second
        .lookup(Entrypoint::Websecure, "x.test", "/")
        .unwrap()
        .upstreams;
    assert!(Arc::ptr_eq(a1, a2));
}

impl RouteTable {
    fn build_for_test(
        state: &DesiredState,
        previous: Option<&RouteTable>,
        provider: &Arc<CryptoProvider>,
    ) -> Result<Self, Error> {
        Self::build(state, &HashSet::new(), previous, provider, 1)
    }
}

#[test]
fn a_router_waits_for_its_certificate() {
    let mut r = router("r", &["x.test"], "/", "a");
    r.certificate_id = Some("cert-1".into());
    let state = state(vec![r]);
    let p = provider();
    let waiting = RouteTable::build(&state, &HashSet::new(), None, &p, 1).unwrap();
    assert_eq!(routed(&waiting, "x.test", "/"), None);
    let serving: HashSet<String> = ["cert-1".to_owned()].into();
    let live = RouteTable::build(&state, &serving, None, &p, 1).unwrap();
    assert_eq!(routed(&live, "x.test", "/").as_deref(), Some("r"));
}
