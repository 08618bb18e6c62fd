//! DigitalOcean against the contract server in [`contract`]: the scenarios
//! the provider must get through.

mod contract;

use http::Method;
use serde_json::json;

use crate::dns::http::HttpApi;
use crate::dns::providers::test_support::{
    assert_refused_everywhere, assert_zone_not_found, cleanup_at_the_apex, post_as_json,
    present_at_the_apex_and_below, status_of, two_values_coexist, zone_names, Words,
};
use contract::Server;

const TOKEN: &str = "dop_v1_0123456789abcdef0123456789abcdef0123456789abcdef0123456789ab";
const WRONG_TOKEN: &str = "dop_v1_ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff";

// === the scenarios ===

#[tokio::test]
async fn validate_lists_the_domains_the_token_sees() {
    let server = Server::start(&["example.com", "example.org"]).await;
    let zones = server.provider(TOKEN).validate().await.unwrap();
    assert_eq!(zones, ["example.com", "example.org"]);
}

#[tokio::test]
async fn validate_follows_every_page() {
    let names = zone_names(450);
    let server = Server::start(&names).await;
    assert_eq!(server.provider(TOKEN).validate().await.unwrap(), names);
}

#[tokio::test]
async fn a_refused_token_is_an_auth_error_in_digitaloceans_words() {
    let server = Server::start(&["example.com"]).await;
    let words = Words::Containing("Unable to authenticate you");
    let provider = server.provider(WRONG_TOKEN);
    assert_refused_everywhere(&*provider, "digitalocean", words, &[WRONG_TOKEN]).await;
}

#[tokio::test]
async fn two_values_at_one_name_coexist_and_cleanup_removes_only_its_own() {
    let server = Server::start(&["example.com"]).await;
    let name = "_acme-challenge.example.com";
    two_values_coexist(
        &*server.provider(TOKEN),
        || server.txt_at(name),
        || server.records().len(),
        |_| {},
    )
    .await;
}

#[tokio::test]
async fn names_are_relative_to_the_domain_with_at_for_the_apex() {
    let server = Server::start(&["example.com"]).await;
    let provider = server.provider(TOKEN);
    let below = "_acme-challenge.www";
    present_at_the_apex_and_below(&*provider, || server.stored(), "@", below).await;
    let records = server.records();
    assert_eq!(records[1].full_name(), "_acme-challenge.www.example.com");
    assert!(records
        .iter()
        .all(|r| r.kind == "TXT" && r.ttl == 60 && r.domain == "example.com"));
    cleanup_at_the_apex(&*provider, || server.stored(), below).await;
}

#[tokio::test]
async fn a_domain_the_token_cannot_see_is_zone_not_found() {
    let server = Server::start(&["example.com"]).await;
    assert_zone_not_found(&*server.provider(TOKEN), "example.org").await;
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
        status_of(&api, Method::GET, "/v2/domains", &[], None).await,
        401
    );
    assert_eq!(
        status_of(&api, Method::GET, "/v2/domain", &auth, None).await,
        404
    );
    assert_eq!(
        status_of(&api, Method::PATCH, "/v2/domains", &auth, None).await,
        405
    );
    assert_eq!(
        status_of(&api, Method::GET, "/v2/domains?limit=5", &auth, None).await,
        400
    );
    let broken = post_as_json(&api, records, &auth, b"{\"type\":").await;
    assert_eq!(broken.status, 400);
    let short_ttl = json!({ "type": "TXT", "name": "x", "data": "v", "ttl": 5 });
    assert_eq!(
        status_of(&api, Method::POST, records, &auth, Some(&short_ttl)).await,
        422
    );
    let absolute = json!({ "type": "TXT", "name": "x.example.com.", "data": "v" });
    assert_eq!(
        status_of(&api, Method::POST, records, &auth, Some(&absolute)).await,
        422
    );
    assert!(server.records().is_empty());
}
