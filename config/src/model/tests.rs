use super::*;

fn layer(source: &str, services: &[Service], routers: &[Router]) -> Layer {
    Layer {
        source: source.into(),
        services: services
            .iter()
            .map(|s| (s.name.clone(), s.clone()))
            .collect(),
        routers: routers
            .iter()
            .map(|r| (r.name.clone(), r.clone()))
            .collect(),
        certificates: Vec::new(),
    }
}

#[test]
fn host_patterns_parse_and_match() {
    let exact = HostPattern::parse("API.Example.com").unwrap();
    assert_eq!(exact, HostPattern::Exact("api.example.com".into()));
    assert!(exact.matches("api.example.com"));
    let wild = HostPattern::parse("*.example.com").unwrap();
    assert!(wild.matches("a.example.com"));
    assert!(!wild.matches("example.com"));
    assert!(
        !wild.matches("a.b.example.com"),
        "a wildcard covers exactly one label"
    );
    assert_eq!(wild.to_string(), "*.example.com");
}

#[test]
fn host_patterns_refuse_bad_names() {
    for bad in [
        "",
        "a..b",
        "-a.com",
        "a-.com",
        "exa mple.com",
        "1.2.3.4",
        "*.com",
        "a.*.com",
        "x.com.",
    ] {
        assert!(
            HostPattern::parse(bad).is_err(),
            "{bad:?} should be refused"
        );
    }
}

#[test]
fn request_hosts_are_normalized() {
    assert_eq!(
        normalize_host("Example.COM:8443").as_deref(),
        Some("example.com")
    );
    assert_eq!(
        normalize_host("example.com.").as_deref(),
        Some("example.com")
    );
    assert_eq!(normalize_host("[::1]:8443").as_deref(), Some("[::1]"));
    assert_eq!(normalize_host(""), None);
}

#[test]
fn router_validation_names_the_field() {
    let mut router = Router::new("r", vec!["a.example.com".into()], "svc");
    router.path_prefix = "api".into();
    let err = router.normalize().unwrap_err().to_string();
    assert!(err.contains("path_prefix"), "{err}");

    let mut router = Router::new("r", vec!["a.example.com".into()], "svc");
    router.mtls = Mtls::Required;
    let err = router.normalize().unwrap_err().to_string();
    assert!(err.contains("client_ca"), "{err}");

    let router = Router::new("r", vec![], "svc");
    assert!(router
        .normalize()
        .unwrap_err()
        .to_string()
        .contains("hosts"));
}

#[test]
fn service_validation_names_the_upstream() {
    let err = Service::new("s", vec!["http://x:80".into()])
        .validate()
        .unwrap_err()
        .to_string();
    assert!(err.contains("http://x:80"), "{err}");
    assert!(Service::new("s", vec![]).validate().is_err());
    assert!(Service::new("s", vec!["10.0.0.1:0".into()])
        .validate()
        .is_err());
    assert!(Service::new("s", vec!["backend.internal:8080".into()])
        .validate()
        .is_ok());
}

#[test]
fn merge_refuses_a_name_defined_twice_and_names_both_sources() {
    let svc = Service::new("svc", vec!["127.0.0.1:1".into()]);
    let a = layer("a.toml", std::slice::from_ref(&svc), &[]);
    let b = layer("store", &[svc], &[]);
    let err = DesiredState::merge([&a, &b]).unwrap_err().to_string();
    assert!(err.contains("a.toml") && err.contains("store"), "{err}");
}

#[test]
fn merge_refuses_dangling_service_reference() {
    let router = Router::new("r", vec!["a.example.com".into()], "missing");
    let a = layer("a.toml", &[], &[router]);
    let err = DesiredState::merge([&a]).unwrap_err().to_string();
    assert!(err.contains("missing"), "{err}");
}

#[test]
fn merge_joins_layers() {
    let svc = Service::new("svc", vec!["127.0.0.1:1".into()]);
    let a = layer("a.toml", &[svc], &[]);
    let b = layer(
        "store",
        &[],
        &[Router::new("r", vec!["a.example.com".into()], "svc")],
    );
    let state = DesiredState::merge([&a, &b]).unwrap();
    assert_eq!(state.services.len(), 1);
    assert_eq!(state.routers.len(), 1);
}
