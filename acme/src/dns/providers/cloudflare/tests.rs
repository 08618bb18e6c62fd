//! Cloudflare against the contract server in [`contract`]: the scenarios
//! the provider must get through.

mod contract;

use http::Method;
use serde_json::json;

use super::build;
use crate::dns::http::HttpApi;
use crate::dns::provider::{DnsError, DnsProvider};
use crate::dns::providers::support::TokenApi;
use crate::dns::providers::test_support::{
    assert_refused_everywhere, assert_zone_not_found, cleanup_at_the_apex, fields, post_as_json,
    present_at_the_apex_and_below, status_of, two_values_coexist, zone_names, Words,
};
use contract::Server;

const TOKEN: &str = "Sn3lZJTBX6kkg7OdcBUAxOO963GEIyGQqnFTOFYY";
const WRONG_TOKEN: &str = "YQSn-xWAQiiEh9qM58wZNnyQS7FUdoqGIUAbrh7T";

// === the scenarios ===

#[tokio::test]
async fn validate_lists_the_zones_the_token_sees() {
    let server = Server::start(&["example.com", "Example.ORG"]).await;
    let zones = server.provider(TOKEN).validate().await.unwrap();
    assert_eq!(zones, ["example.com", "example.org"]);
}

#[tokio::test]
async fn validate_follows_every_page() {
    let names = zone_names(73);
    let server = Server::start(&names).await;
    assert_eq!(server.provider(TOKEN).validate().await.unwrap(), names);
}

#[tokio::test]
async fn a_refused_token_is_an_auth_error_in_cloudflares_words() {
    let server = Server::start(&["example.com"]).await;
    let words = Words::Containing("Invalid access token");
    let provider = server.provider(WRONG_TOKEN);
    assert_refused_everywhere(&*provider, "cloudflare", words, &[WRONG_TOKEN]).await;

    // A token an HTTP header cannot carry never leaves the process.
    let fields = fields(
        &[("api_token", "bad\ntoken")],
        &[("base_url", &server.base_url())],
    );
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
        api: TokenApi {
            api,
            header: http::header::AUTHORIZATION,
            value: http::HeaderValue::from_static("Bearer"),
            token: String::new(),
        },
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
    two_values_coexist(
        &*provider,
        || server.txt_at(name),
        || server.records().len(),
        |_| {},
    )
    .await;

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
    let below = "_acme-challenge.www.example.com";
    present_at_the_apex_and_below(&*provider, || server.stored(), "example.com", below).await;
    let zone_id = server.state.lock().unwrap().zones[0].0.clone();
    for record in &server.records() {
        assert_eq!(record.zone_id, zone_id);
        assert_eq!(record.kind, "TXT");
        assert_eq!(record.ttl, 60);
    }
    cleanup_at_the_apex(&*provider, || server.stored(), below).await;
}

#[tokio::test]
async fn a_zone_the_token_cannot_see_is_zone_not_found() {
    let server = Server::start(&["example.com"]).await;
    let provider = server.provider(TOKEN);
    assert_zone_not_found(&*provider, "example.org").await;
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

    let wrong_path = status_of(&api, Method::GET, "/zone", &auth, None).await;
    assert_eq!(wrong_path, 404);
    let wrong_method = status_of(&api, Method::PUT, "/zones", &auth, None).await;
    assert_eq!(wrong_method, 405);
    let bad_query = status_of(&api, Method::GET, "/zones?nam=example.com", &auth, None).await;
    assert_eq!(bad_query, 400);
    let not_json = post_as_json(&api, &records, &auth, b"{type: TXT").await;
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
    let answer = status_of(&api, Method::POST, &records, &auth, Some(&no_content)).await;
    assert_eq!(answer, 400);
    assert!(server.records().is_empty());
}
