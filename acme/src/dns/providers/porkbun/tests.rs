//! Porkbun against the contract server in [`contract`]: the scenarios
//! the provider must get through.

mod contract;

use bytes::Bytes;
use http::Method;
use serde_json::{json, Value};

use crate::dns::http::HttpApi;
use crate::dns::provider::DnsError;
use crate::dns::providers::test_support::{
    assert_refused_everywhere, assert_zone_not_found, cleanup_at_the_apex,
    present_at_the_apex_and_below, two_values_coexist, zone_names, Words,
};
use contract::Server;

const API_KEY: &str = "pk1_5299b57125c8f3cdf347d2fe0e713311ee3a1e11f11a14942b26472593e35368";
const SECRET: &str = "sk1_7d119e3f656b00ae042980302e1425a04163c476efec1833e3cb0b54fc6f5022";
const WRONG_SECRET: &str = "sk1_0000000000000000000000000000000000000000000000000000000000000000";

// === the scenarios ===

#[tokio::test]
async fn validate_pings_and_lists_the_domains() {
    let server = Server::start(&[("example.com", true), ("Example.ORG", false)]).await;
    let zones = server.provider(SECRET).validate().await.unwrap();
    assert_eq!(zones, ["example.com", "example.org"]);
}

#[tokio::test]
async fn validate_follows_every_thousand() {
    let names = zone_names(2100);
    let domains: Vec<(&str, bool)> = names.iter().map(|n| (n.as_str(), true)).collect();
    let server = Server::start(&domains).await;
    assert_eq!(server.provider(SECRET).validate().await.unwrap(), names);
}

#[tokio::test]
async fn refused_keys_are_an_auth_error_in_porkbuns_words() {
    let server = Server::start(&[("example.com", true)]).await;
    let words = Words::Exactly("Invalid API key. (002)");
    let secrets = [WRONG_SECRET, API_KEY];
    assert_refused_everywhere(&*server.provider(WRONG_SECRET), "porkbun", words, &secrets).await;
}

#[tokio::test]
async fn a_domain_without_api_access_is_refused_in_porkbuns_words() {
    let server = Server::start(&[("example.com", false)]).await;
    let err = server
        .provider(SECRET)
        .present("example.com", "_acme-challenge.example.com", "v")
        .await
        .unwrap_err();
    assert!(
        matches!(&err, DnsError::Auth { message, .. } if message == "Domain is not opted in to API access."),
        "{err:?}"
    );
}

#[tokio::test]
async fn two_values_at_one_name_coexist_and_cleanup_removes_only_its_own() {
    let server = Server::start(&[("example.com", true)]).await;
    let name = "_acme-challenge.example.com";
    two_values_coexist(
        &*server.provider(SECRET),
        || server.txt_at(name),
        || server.records().len(),
        |_| {},
    )
    .await;
}

#[tokio::test]
async fn names_are_subdomains_empty_for_the_apex() {
    let server = Server::start(&[("example.com", true)]).await;
    let provider = server.provider(SECRET);
    let below = "_acme-challenge.www.example.com";
    present_at_the_apex_and_below(&*provider, || server.stored(), "example.com", below).await;
    assert!(server
        .records()
        .iter()
        .all(|r| r.kind == "TXT" && r.ttl == 600 && r.domain == "example.com"));
    cleanup_at_the_apex(&*provider, || server.stored(), below).await;
}

#[tokio::test]
async fn a_domain_outside_the_account_is_zone_not_found() {
    let server = Server::start(&[("example.com", true)]).await;
    assert_zone_not_found(&*server.provider(SECRET), "example.org").await;
}

#[tokio::test]
async fn the_contract_refuses_what_the_documentation_does_not_allow() {
    let server = Server::start(&[("example.com", true)]).await;
    let api = HttpApi::new("porkbun", &server.base_url()).unwrap();
    let keys = json!({ "apikey": API_KEY, "secretapikey": SECRET });

    assert_eq!(
        api.json(Method::GET, "/ping", &[], None)
            .await
            .unwrap()
            .status,
        405
    );
    assert_eq!(
        api.json(Method::POST, "/pong", &[], Some(&keys))
            .await
            .unwrap()
            .status,
        404
    );
    let no_keys = api
        .json(Method::POST, "/ping", &[], Some(&json!({})))
        .await
        .unwrap();
    assert_eq!(
        (no_keys.status, no_keys.json()["status"].as_str()),
        (400, Some("ERROR"))
    );
    let broken = api
        .send(
            Method::POST,
            "/ping",
            &[],
            Bytes::from_static(b"apikey=pk1"),
        )
        .await
        .unwrap();
    assert_eq!(broken.status, 400);
    let create = |extra: Value| {
        let mut body = keys.clone();
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        body
    };
    for bad in [
        json!({ "name": "x", "type": "TXT", "content": "v", "ttl": "60" }),
        json!({ "name": "x", "type": "SPF", "content": "v" }),
        json!({ "name": "x", "type": "TXT" }),
        json!({ "name": "x", "type": "TXT", "content": "v", "domain": "example.com" }),
    ] {
        let answer = api
            .json(
                Method::POST,
                "/dns/create/example.com",
                &[],
                Some(&create(bad)),
            )
            .await
            .unwrap();
        assert_eq!(
            (answer.status, answer.json()["status"].as_str()),
            (400, Some("ERROR"))
        );
    }
    assert!(server.records().is_empty());
}
