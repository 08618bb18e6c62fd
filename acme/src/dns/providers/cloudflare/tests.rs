//! Cloudflare against the contract server in [`contract`]: the scenarios
//! the provider must get through.

mod contract;

use bytes::Bytes;
use http::Method;
use serde_json::json;

use super::build;
use crate::dns::http::HttpApi;
use crate::dns::provider::{DnsError, DnsProvider, Fields};
use contract::Server;

const TOKEN: &str = "Sn3lZJTBX6kkg7OdcBUAxOO963GEIyGQqnFTOFYY";
const WRONG_TOKEN: &str = "YQSn-xWAQiiEh9qM58wZNnyQS7FUdoqGIUAbrh7T";

// === the scenarios ===

#[tokio::test]
async fn validate_lists_the_zones_the_token_sees() {
    let server = Server::start(&["example.com", "Example.ORG"]).await;
    let zones = server.provider(TOKEN).validate().await.unwrap();
    assert_eq!(
        zones,
        vec!["example.com".to_owned(), "example.org".to_owned()]
    );
}

#[tokio::test]
async fn validate_follows_every_page() {
    let names: Vec<String> = (0..73).map(|i| format!("zone{i}.example")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let server = Server::start(&refs).await;
    let zones = server.provider(TOKEN).validate().await.unwrap();
    assert_eq!(zones, names);
}

#[tokio::test]
async fn a_refused_token_is_an_auth_error_in_cloudflares_words() {
    let server = Server::start(&["example.com"]).await;
    let err = server.provider(WRONG_TOKEN).validate().await.unwrap_err();
    match &err {
        DnsError::Auth { provider, message } => {
            assert_eq!(*provider, "cloudflare");
            assert!(message.contains("Invalid access token"), "{message}");
        }
        other => panic!("expected Auth, got {other:?}"),
    }
    assert!(!err.to_string().contains(WRONG_TOKEN), "{err}");
    assert!(!format!("{err:?}").contains(WRONG_TOKEN));

    // A token an HTTP header cannot carry never leaves the process.
    let mut fields = Fields::default();
    fields
        .secrets
        .insert("api_token".into(), "bad\ntoken".into());
    fields.config.insert("base_url".into(), server.base_url());
    let err = build(&fields).err().unwrap();
    assert!(matches!(err, DnsError::Config { .. }), "{err:?}");
    assert!(!err.to_string().contains("bad\ntoken"));
}

#[tokio::test]
async fn a_malformed_authorization_header_is_an_auth_error() {
    // Cloudflare answers 400 + 6003/6111 to a header it cannot parse.
    let server = Server::start(&["example.com"]).await;
    let api = HttpApi::new("cloudflare", &server.base_url()).unwrap();
    let answer = api.json(Method::GET, "/zones", &[], None).await.unwrap();
    assert_eq!(answer.status, 400);
    let provider = super::Cloudflare {
        api,
        auth: http::HeaderValue::from_static("Bearer"),
        token: String::new(),
    };
    let err = provider.validate().await.unwrap_err();
    match err {
        DnsError::Auth { message, .. } => {
            assert!(
                message.contains("Invalid format for Authorization header"),
                "{message}"
            )
        }
        other => panic!("expected Auth, got {other:?}"),
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

    // Presenting again is a no-op, not a duplicate.
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

    // Already gone: fine, and the other value stays.
    provider
        .cleanup("example.com", name, "value-for-wildcard")
        .await
        .unwrap();
    provider
        .cleanup("example.com", name, "never-presented")
        .await
        .unwrap();
    assert_eq!(server.txt_at(name), vec!["value-for-apex"]);

    provider
        .cleanup("example.com", name, "value-for-apex")
        .await
        .unwrap();
    assert!(server.records().is_empty());
}

#[tokio::test]
async fn records_carry_full_names_for_the_apex_and_a_sub_name() {
    let server = Server::start(&["example.com", "example.net"]).await;
    let provider = server.provider(TOKEN);
    provider
        .present("example.com", "example.com", "at-the-apex")
        .await
        .unwrap();
    provider
        .present("example.com", "_acme-challenge.www.example.com", "below")
        .await
        .unwrap();
    let zone_id = server.state.lock().unwrap().zones[0].0.clone();
    let records = server.records();
    assert_eq!(records.len(), 2);
    assert_eq!(
        (records[0].name.as_str(), records[0].content.as_str()),
        ("example.com", "at-the-apex")
    );
    assert_eq!(
        (records[1].name.as_str(), records[1].content.as_str()),
        ("_acme-challenge.www.example.com", "below")
    );
    for record in &records {
        assert_eq!(record.zone_id, zone_id);
        assert_eq!(record.kind, "TXT");
        assert_eq!(record.ttl, 60);
    }
}

#[tokio::test]
async fn a_zone_the_token_cannot_see_is_zone_not_found() {
    let server = Server::start(&["example.com"]).await;
    let provider = server.provider(TOKEN);
    let err = provider
        .present("example.org", "_acme-challenge.example.org", "v")
        .await
        .unwrap_err();
    assert!(
        matches!(err, DnsError::ZoneNotFound { ref zone, .. } if zone == "example.org"),
        "{err:?}"
    );
    let err = provider
        .present("example.com", "_acme-challenge.example.org", "v")
        .await
        .unwrap_err();
    assert!(matches!(err, DnsError::Config { .. }), "{err:?}");
    assert!(server.records().is_empty());
}

#[tokio::test]
async fn the_contract_refuses_what_the_documentation_does_not_allow() {
    let server = Server::start(&["example.com"]).await;
    let zone_id = server.state.lock().unwrap().zones[0].0.clone();
    let api = HttpApi::new("cloudflare", &server.base_url()).unwrap();
    let auth = [(
        http::header::AUTHORIZATION,
        http::HeaderValue::from_str(&format!("Bearer {TOKEN}")).unwrap(),
    )];
    let records = format!("/zones/{zone_id}/dns_records");

    let wrong_path = api.json(Method::GET, "/zone", &auth, None).await.unwrap();
    assert_eq!(wrong_path.status, 404);
    let wrong_method = api.json(Method::PUT, "/zones", &auth, None).await.unwrap();
    assert_eq!(wrong_method.status, 405);
    let bad_query = api
        .json(Method::GET, "/zones?nam=example.com", &auth, None)
        .await
        .unwrap();
    assert_eq!(bad_query.status, 400);
    let not_json = api
        .send(
            Method::POST,
            &records,
            &[
                auth[0].clone(),
                (
                    http::header::CONTENT_TYPE,
                    http::HeaderValue::from_static("application/json"),
                ),
            ],
            Bytes::from_static(b"{type: TXT"),
        )
        .await
        .unwrap();
    assert_eq!(not_json.status, 400);
    assert_eq!(not_json.json()["errors"][0]["code"], 9207);
    let bad_ttl = json!({ "type": "TXT", "name": "x.example.com", "content": "v", "ttl": 10 });
    let answer = api
        .json(Method::POST, &records, &auth, Some(&bad_ttl))
        .await
        .unwrap();
    assert_eq!(answer.status, 400);
    assert_eq!(answer.json()["errors"][0]["code"], 9021);
    let no_content = json!({ "type": "TXT", "name": "x.example.com" });
    let answer = api
        .json(Method::POST, &records, &auth, Some(&no_content))
        .await
        .unwrap();
    assert_eq!(answer.status, 400);
    assert!(server.records().is_empty());
}
