//! Hetzner against the contract server in [`contract`]: the scenarios
//! the provider must get through.

mod contract;

use http::Method;
use serde_json::json;

use crate::dns::http::HttpApi;
use crate::dns::providers::test_support::{
    assert_refused_everywhere, assert_zone_not_found, cleanup_at_the_apex, post_as_json,
    present_at_the_apex_and_below, status_of, two_values_coexist, zone_names, Words,
};
use contract::{Record, Server};

const TOKEN: &str = "LlGoDUQ39S6akqoav5meAsv5OIpeywhj";
const WRONG_TOKEN: &str = "84BFPidGvvNgeX9kdbs4ErmyMp05BI9p";

// === the scenarios ===

#[tokio::test]
async fn validate_lists_the_zones_the_token_sees() {
    let server = Server::start(&["example.com", "example.org"]).await;
    let zones = server.provider(TOKEN).validate().await.unwrap();
    assert_eq!(zones, ["example.com", "example.org"]);
}

#[tokio::test]
async fn validate_follows_every_page() {
    let names = zone_names(230);
    let server = Server::start(&names).await;
    assert_eq!(server.provider(TOKEN).validate().await.unwrap(), names);
}

#[tokio::test]
async fn a_refused_token_is_an_auth_error_in_hetzners_words() {
    let server = Server::start(&["example.com"]).await;
    let words = Words::Exactly("Invalid authentication credentials");
    let provider = server.provider(WRONG_TOKEN);
    assert_refused_everywhere(&*provider, "hetzner", words, &[WRONG_TOKEN]).await;
}

#[tokio::test]
async fn two_values_at_one_name_coexist_and_cleanup_removes_only_its_own() {
    let server = Server::start(&["example.com"]).await;
    two_values_coexist(
        &*server.provider(TOKEN),
        || server.txt_at("_acme-challenge"),
        || server.txt().len(),
        |_| {},
    )
    .await;
}

#[tokio::test]
async fn names_are_relative_with_at_for_the_apex() {
    let server = Server::start(&["example.net", "example.com"]).await;
    let provider = server.provider(TOKEN);
    let below = "_acme-challenge.www";
    present_at_the_apex_and_below(&*provider, || server.stored(), "@", below).await;
    let zone_id = server.zone_id("example.com");
    assert!(server
        .txt()
        .iter()
        .all(|r| r.zone_id == zone_id && r.ttl == Some(60)));
    cleanup_at_the_apex(&*provider, || server.stored(), below).await;
}

#[tokio::test]
async fn a_busy_zone_is_read_page_by_page() {
    let server = Server::start(&["example.com"]).await;
    let zone_id = server.zone_id("example.com");
    {
        let mut s = server.state.lock().unwrap();
        for i in 0..250 {
            s.records.push(Record {
                id: format!("seed{i}"),
                zone_id: zone_id.clone(),
                kind: "A".into(),
                name: format!("host{i}"),
                value: "192.0.2.1".into(),
                ttl: None,
            });
        }
        s.records.push(Record {
            id: "seed-txt".into(),
            zone_id: zone_id.clone(),
            kind: "TXT".into(),
            name: "_acme-challenge".into(),
            value: "\"quoted-by-the-console\"".into(),
            ttl: Some(60),
        });
    }
    let provider = server.provider(TOKEN);
    // The value on page three is found: presenting it again adds nothing.
    provider
        .present(
            "example.com",
            "_acme-challenge.example.com",
            "quoted-by-the-console",
        )
        .await
        .unwrap();
    assert_eq!(server.txt().len(), 1);
    provider
        .cleanup(
            "example.com",
            "_acme-challenge.example.com",
            "quoted-by-the-console",
        )
        .await
        .unwrap();
    assert!(server.txt().is_empty());
    assert_eq!(server.state.lock().unwrap().records.len(), 250);
}

#[tokio::test]
async fn a_zone_the_token_cannot_see_is_zone_not_found() {
    let server = Server::start(&["example.com"]).await;
    assert_zone_not_found(&*server.provider(TOKEN), "example.org").await;
}

#[tokio::test]
async fn the_contract_refuses_what_the_documentation_does_not_allow() {
    let server = Server::start(&["example.com"]).await;
    let zone_id = server.zone_id("example.com");
    let api = HttpApi::new("hetzner", &server.base_url()).unwrap();
    let auth = [(
        http::HeaderName::from_static("auth-api-token"),
        http::HeaderValue::from_static(TOKEN),
    )];

    let anonymous = api.json(Method::GET, "/zones", &[], None).await.unwrap();
    assert_eq!(
        (anonymous.status, anonymous.json()["message"].as_str()),
        (401, Some("No API key found in request"))
    );
    assert_eq!(
        status_of(&api, Method::GET, "/zone", &auth, None).await,
        404
    );
    assert_eq!(
        status_of(&api, Method::PUT, "/records", &auth, None).await,
        404
    );
    assert_eq!(
        status_of(&api, Method::GET, "/zones?per_page=1000", &auth, None).await,
        400
    );
    let broken = post_as_json(&api, "/records", &auth, b"zone_id=").await;
    assert_eq!(broken.status, 400);
    let short_ttl =
        json!({ "zone_id": zone_id, "type": "TXT", "name": "x", "value": "v", "ttl": 1 });
    let answer = api
        .json(Method::POST, "/records", &auth, Some(&short_ttl))
        .await
        .unwrap();
    assert_eq!(answer.status, 422);
    assert!(answer.json()["error"]["message"]
        .as_str()
        .unwrap()
        .starts_with("422"));
    let no_zone = json!({ "type": "TXT", "name": "x", "value": "v" });
    assert_eq!(
        status_of(&api, Method::POST, "/records", &auth, Some(&no_zone)).await,
        422
    );
    assert!(server.txt().is_empty());
}
