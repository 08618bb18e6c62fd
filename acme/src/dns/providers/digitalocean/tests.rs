//! DigitalOcean against the contract server in [`contract`]: the scenarios
//! the provider must get through.

mod contract;

use bytes::Bytes;
use http::Method;
use serde_json::json;

use crate::dns::http::HttpApi;
use crate::dns::provider::DnsError;
use contract::Server;

const TOKEN: &str = "dop_v1_0123456789abcdef0123456789abcdef0123456789abcdef0123456789ab";
const WRONG_TOKEN: &str = "dop_v1_ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff";

// === the scenarios ===

#[tokio::test]
async fn validate_lists_the_domains_the_token_sees() {
    let server = Server::start(&["example.com", "example.org"]).await;
    let zones = server.provider(TOKEN).validate().await.unwrap();
    assert_eq!(
        zones,
        vec!["example.com".to_owned(), "example.org".to_owned()]
    );
}

#[tokio::test]
async fn validate_follows_every_page() {
    let names: Vec<String> = (0..450).map(|i| format!("zone{i}.example")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let server = Server::start(&refs).await;
    assert_eq!(server.provider(TOKEN).validate().await.unwrap(), names);
}

#[tokio::test]
async fn a_refused_token_is_an_auth_error_in_digitaloceans_words() {
    let server = Server::start(&["example.com"]).await;
    let provider = server.provider(WRONG_TOKEN);
    for err in [
        provider.validate().await.unwrap_err(),
        provider
            .present("example.com", "_acme-challenge.example.com", "v")
            .await
            .unwrap_err(),
    ] {
        match &err {
            DnsError::Auth { provider, message } => {
                assert_eq!(*provider, "digitalocean");
                assert!(message.contains("Unable to authenticate you"), "{message}");
            }
            other => panic!("expected Auth, got {other:?}"),
        }
        assert!(!err.to_string().contains(WRONG_TOKEN), "{err}");
        assert!(!format!("{err:?}").contains(WRONG_TOKEN));
    }
}

#[tokio::test]
async fn two_values_at_one_name_coexist_and_cleanup_removes_only_its_own() {
    let server = Server::start(&["example.com"]).await;
    let provider = server.provider(TOKEN);
    let name = "_acme-challenge.example.com";

    provider
        .present("example.com", name, "value-for-wildcard")
        .await
        .unwrap();
    provider
        .present("example.com", name, "value-for-apex")
        .await
        .unwrap();
    assert_eq!(
        server.txt_at(name),
        vec!["value-for-apex", "value-for-wildcard"]
    );
    provider
        .present("example.com", name, "value-for-apex")
        .await
        .unwrap();
    assert_eq!(server.records().len(), 2);

    provider
        .cleanup("example.com", name, "value-for-wildcard")
        .await
        .unwrap();
    assert_eq!(server.txt_at(name), vec!["value-for-apex"]);
    provider
        .cleanup("example.com", name, "value-for-wildcard")
        .await
        .unwrap();
    provider
        .cleanup("example.com", name, "never-presented")
        .await
        .unwrap();
    assert_eq!(server.txt_at(name), vec!["value-for-apex"]);
}

#[tokio::test]
async fn names_are_relative_to_the_domain_with_at_for_the_apex() {
    let server = Server::start(&["example.com"]).await;
    let provider = server.provider(TOKEN);
    provider
        .present("example.com", "example.com", "at-the-apex")
        .await
        .unwrap();
    provider
        .present("example.com", "_acme-challenge.www.example.com", "below")
        .await
        .unwrap();
    let records = server.records();
    assert_eq!(records.len(), 2);
    assert_eq!(
        (records[0].name.as_str(), records[0].data.as_str()),
        ("@", "at-the-apex")
    );
    assert_eq!(
        (records[1].name.as_str(), records[1].data.as_str()),
        ("_acme-challenge.www", "below")
    );
    assert_eq!(records[1].full_name(), "_acme-challenge.www.example.com");
    assert!(records
        .iter()
        .all(|r| r.kind == "TXT" && r.ttl == 60 && r.domain == "example.com"));

    provider
        .cleanup("example.com", "example.com", "at-the-apex")
        .await
        .unwrap();
    assert_eq!(
        server.txt_at("_acme-challenge.www.example.com"),
        vec!["below"]
    );
    assert!(server.txt_at("example.com").is_empty());
}

#[tokio::test]
async fn a_domain_the_token_cannot_see_is_zone_not_found() {
    let server = Server::start(&["example.com"]).await;
    let err = server
        .provider(TOKEN)
        .present("example.org", "_acme-challenge.example.org", "v")
        .await
        .unwrap_err();
    assert!(
        matches!(err, DnsError::ZoneNotFound { ref zone, .. } if zone == "example.org"),
        "{err:?}"
    );
}

#[tokio::test]
async fn the_contract_refuses_what_the_documentation_does_not_allow() {
    let server = Server::start(&["example.com"]).await;
    let api = HttpApi::new("digitalocean", &server.base_url()).unwrap();
    let auth = [(
        http::header::AUTHORIZATION,
        http::HeaderValue::from_str(&format!("Bearer {TOKEN}")).unwrap(),
    )];
    let records = "/v2/domains/example.com/records";

    assert_eq!(
        api.json(Method::GET, "/v2/domains", &[], None)
            .await
            .unwrap()
            .status,
        401
    );
    assert_eq!(
        api.json(Method::GET, "/v2/domain", &auth, None)
            .await
            .unwrap()
            .status,
        404
    );
    assert_eq!(
        api.json(Method::PATCH, "/v2/domains", &auth, None)
            .await
            .unwrap()
            .status,
        405
    );
    assert_eq!(
        api.json(Method::GET, "/v2/domains?limit=5", &auth, None)
            .await
            .unwrap()
            .status,
        400
    );
    let json_type = (
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    let broken = api
        .send(
            Method::POST,
            records,
            &[auth[0].clone(), json_type],
            Bytes::from_static(b"{\"type\":"),
        )
        .await
        .unwrap();
    assert_eq!(broken.status, 400);
    let short_ttl = json!({ "type": "TXT", "name": "x", "data": "v", "ttl": 5 });
    assert_eq!(
        api.json(Method::POST, records, &auth, Some(&short_ttl))
            .await
            .unwrap()
            .status,
        422
    );
    let absolute = json!({ "type": "TXT", "name": "x.example.com.", "data": "v" });
    assert_eq!(
        api.json(Method::POST, records, &auth, Some(&absolute))
            .await
            .unwrap()
            .status,
        422
    );
    assert!(server.records().is_empty());
}
