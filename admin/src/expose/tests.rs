use super::*;

fn context_parts() -> (
    AcmeSettings,
    BTreeMap<String, RouterTemplate>,
    BTreeMap<String, Service>,
) {
    let acme = portcullis_config::Settings::embedded().acme;
    let templates = portcullis_config::model::template::built_in();
    let mut services = BTreeMap::new();
    services.insert(
        "existing".to_owned(),
        Service::new("existing", vec!["10.0.0.1:80".into()]),
    );
    (acme, templates, services)
}

fn validate(request: ExposeRequest) -> Result<ExposeSpec, Vec<FieldError>> {
    let (acme, templates, services) = context_parts();
    request.validate(&Context {
        acme: &acme,
        templates: &templates,
        services: &services,
        has_mtls_ca: false,
    })
}

fn good() -> ExposeRequest {
    ExposeRequest {
        service_hostname: Some("App.Example.com".into()),
        service_protocol: Some("https".into()),
        backend_port: Some(8080),
        target_host: Some("10.0.0.5".into()),
        ..ExposeRequest::default()
    }
}

fn fields(result: Result<ExposeSpec, Vec<FieldError>>) -> Vec<String> {
    result.unwrap_err().into_iter().map(|e| e.field).collect()
}

#[test]
fn a_good_request_is_normalized_with_defaults() {
    let spec = validate(good()).unwrap();
    assert_eq!(spec.hostname, "app.example.com");
    assert_eq!(spec.issuer, "letsencrypt-prod");
    assert_eq!(spec.challenge_type, ChallengeType::Http01);
    assert_eq!(spec.template, "single");
    assert_eq!(spec.service_name(), "expose-app.example.com");
    assert_eq!(spec.service().unwrap().upstreams, vec!["10.0.0.5:8080"]);
}

#[test]
fn every_bad_field_is_listed_at_once() {
    let request = ExposeRequest {
        service_hostname: Some("10.0.0.1".into()),
        service_protocol: Some("ftp".into()),
        backend_port: Some(70000),
        tls_issuer: Some("nope".into()),
        router_template: Some("nope".into()),
        ..ExposeRequest::default()
    };
    let listed = fields(validate(request));
    for field in [
        "service_hostname",
        "service_protocol",
        "backend_port",
        "target_host",
        "tls_issuer",
        "router_template",
    ] {
        assert!(
            listed.iter().any(|f| f == field),
            "{field} missing from {listed:?}"
        );
    }
}

#[test]
fn hostname_rules() {
    for bad in [
        "app.example.com.",
        "app",
        "*.example.com",
        "a_b.example.com",
        "-a.example.com",
        "::1",
    ] {
        let mut request = good();
        request.service_hostname = Some(bad.into());
        assert_eq!(fields(validate(request)), vec!["service_hostname"], "{bad}");
    }
}

#[test]
fn target_host_and_service_are_exclusive() {
    let mut both = good();
    both.target_service = Some("existing".into());
    assert_eq!(
        fields(validate(both)),
        vec!["target_host", "target_service"]
    );
    let mut neither = good();
    neither.target_host = None;
    assert_eq!(fields(validate(neither)), vec!["target_host"]);
    let mut missing = good();
    missing.target_host = None;
    missing.target_service = Some("ghost".into());
    assert_eq!(fields(validate(missing)), vec!["target_service"]);
    let mut existing = good();
    existing.target_host = None;
    existing.target_service = Some("existing".into());
    assert_eq!(validate(existing).unwrap().service_name(), "existing");
    let mut with_port = good();
    with_port.target_host = Some("backend:8080".into());
    assert_eq!(fields(validate(with_port)), vec!["target_host"]);
}

#[test]
fn dns01_needs_a_credential_up_front() {
    let mut request = good();
    request.challenge_type = Some("dns-01".into());
    assert_eq!(fields(validate(request)), vec!["dns_credential_id"]);
}

#[test]
fn platform_template_needs_a_client_ca_and_has_nine_routers() {
    let mut request = good();
    request.router_template = Some("platform".into());
    assert_eq!(fields(validate(request.clone())), vec!["router_template"]);
    let (acme, templates, services) = context_parts();
    let spec = request
        .validate(&Context {
            acme: &acme,
            templates: &templates,
            services: &services,
            has_mtls_ca: true,
        })
        .unwrap();
    let routers = spec.routers(&templates["platform"], Some("c1"), Some("PEM"));
    assert_eq!(routers.len(), 9);
    let mtls: Vec<&str> = routers
        .iter()
        .filter(|r| r.mtls == Mtls::Required)
        .map(|r| r.path_prefix.as_str())
        .collect();
    assert_eq!(mtls, vec!["/internal", "/worker", "/federation", "/node"]);
    assert!(routers
        .iter()
        .all(|r| r.certificate_id.as_deref() == Some("c1")));
}

#[test]
fn extra_hosts_join_the_match() {
    let mut request = good();
    request.extra_hosts = vec![
        "www.example.com".into(),
        "bad host".into(),
        "app.example.com".into(),
    ];
    assert_eq!(
        fields(validate(request)),
        vec!["extra_hosts[1]", "extra_hosts[2]"]
    );
    let mut request = good();
    request.extra_hosts = vec!["WWW.example.com".into()];
    assert_eq!(
        validate(request).unwrap().hosts,
        vec!["app.example.com", "www.example.com"]
    );
}
