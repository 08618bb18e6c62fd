//! OVH against the contract server in [`contract`]: the scenarios
//! the provider must get through.

mod contract;

use bytes::Bytes;
use http::Method;
use sha1::{Digest, Sha1};

use crate::dns::http::HttpApi;
use crate::dns::providers::test_support::{
    assert_refused_everywhere, assert_zone_not_found, cleanup_at_the_apex,
    present_at_the_apex_and_below, two_values_coexist, Step, Words,
};
use contract::{now, Server};

const AK: &str = "7kbG7Bk7S9Nt7ZSV";
const AS: &str = "EXEgWIz07P0HYwtQDs7cNIqCiQaWSuHF";
const CK: &str = "MtSwSrPpNjqfVSmJhLbPyr2i45lSwPU1";
const WRONG_AS: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const WRONG_CK: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
const SKEW: i64 = 3 * 3600;

// === the scenarios ===

#[tokio::test]
async fn validate_lists_the_zones_with_a_clock_three_hours_off() {
    let server = Server::start(&["example.com", "Example.ORG"]).await;
    let provider = server.provider();
    assert_eq!(
        provider.validate().await.unwrap(),
        vec!["example.com".to_owned(), "example.org".to_owned()]
    );
    provider.validate().await.unwrap();
    assert_eq!(
        server.state.lock().unwrap().time_calls,
        1,
        "the offset is learned once"
    );
}

#[tokio::test]
async fn refused_keys_are_an_auth_error_in_ovhs_words() {
    let server = Server::start(&["example.com"]).await;
    for (secret, consumer, words) in [
        (WRONG_AS, CK, "Invalid signature"),
        (AS, WRONG_CK, "This credential is not valid"),
    ] {
        let provider = server.provider_with(secret, consumer);
        let secrets = [secret, consumer, AK, "$1$"];
        assert_refused_everywhere(&*provider, "ovh", Words::Containing(words), &secrets).await;
    }
}

#[tokio::test]
async fn a_clock_that_moves_is_learned_again() {
    let server = Server::start(&["example.com"]).await;
    let provider = server.provider();
    provider.validate().await.unwrap();
    server.state.lock().unwrap().skew = -2 * 3600;
    provider.validate().await.unwrap();
    assert_eq!(server.state.lock().unwrap().time_calls, 2);
}

#[tokio::test]
async fn two_values_at_one_name_coexist_and_cleanup_removes_only_its_own() {
    let server = Server::start(&["example.com"]).await;
    let mut refreshes = 0;
    two_values_coexist(
        &*server.provider(),
        || server.txt_at("_acme-challenge"),
        || server.txt_at("_acme-challenge").len(),
        |step| match step {
            Step::Presented => assert!(server.published(), "present refreshes the zone"),
            Step::CleanedUp => {
                assert!(server.published(), "cleanup refreshes the zone");
                refreshes = server.state.lock().unwrap().refreshes;
            }
            Step::CleanedUpAgain => assert_eq!(
                server.state.lock().unwrap().refreshes,
                refreshes,
                "nothing to publish"
            ),
        },
    )
    .await;
}

#[tokio::test]
async fn sub_domains_are_relative_and_empty_for_the_apex() {
    let server = Server::start(&["example.com"]).await;
    let provider = server.provider();
    let below = "_acme-challenge.www";
    present_at_the_apex_and_below(&*provider, || server.stored(), "", below).await;
    assert!(server
        .state
        .lock()
        .unwrap()
        .records
        .iter()
        .all(|r| r.zone == "example.com" && r.field_type == "TXT" && r.ttl == 60));
    cleanup_at_the_apex(&*provider, || server.stored(), below).await;
    assert!(server.published());
}

#[tokio::test]
async fn a_zone_the_keys_cannot_see_is_zone_not_found() {
    let server = Server::start(&["example.com"]).await;
    assert_zone_not_found(&*server.provider(), "example.org").await;
}

#[tokio::test]
async fn the_contract_refuses_what_the_documentation_does_not_allow() {
    let server = Server::start(&["example.com"]).await;
    let api = HttpApi::new("ovh", &server.base_url()).unwrap();
    let unsigned = api
        .json(Method::GET, "/domain/zone", &[], None)
        .await
        .unwrap();
    assert_eq!(unsigned.status, 401);
    let sign = |method: &str, target: &str, body: &str, ts: i64| {
        let url = format!("{}{target}", server.base_url());
        let digest = Sha1::digest(format!("{AS}+{CK}+{method}+{url}+{body}+{ts}"));
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        format!("$1${hex}")
    };
    let headers = |signature: String, ts: i64| {
        vec![
            (
                http::HeaderName::from_static("x-ovh-application"),
                http::HeaderValue::from_static(AK),
            ),
            (
                http::HeaderName::from_static("x-ovh-consumer"),
                http::HeaderValue::from_static(CK),
            ),
            (
                http::HeaderName::from_static("x-ovh-timestamp"),
                http::HeaderValue::from(ts),
            ),
            (
                http::HeaderName::from_static("x-ovh-signature"),
                http::HeaderValue::from_str(&signature).unwrap(),
            ),
            (
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("application/json"),
            ),
        ]
    };
    let ts = now() + SKEW;
    // Signed right: accepted.
    let ok = api
        .send(
            Method::GET,
            "/domain/zone",
            &headers(sign("GET", "/domain/zone", "", ts), ts),
            Bytes::new(),
        )
        .await
        .unwrap();
    assert_eq!(ok.status, 200);
    // Our clock instead of OVH's.
    let local = now();
    let stale = api
        .send(
            Method::GET,
            "/domain/zone",
            &headers(sign("GET", "/domain/zone", "", local), local),
            Bytes::new(),
        )
        .await
        .unwrap();
    assert_eq!(
        (stale.status, stale.json()["errorCode"].as_str()),
        (400, Some("QUERY_TIME_OUT"))
    );
    // The body is signed too: a different body breaks the signature.
    let path = "/domain/zone/example.com/record";
    let signed_body = r#"{"fieldType":"TXT","subDomain":"x","target":"v","ttl":60}"#;
    let other_body = r#"{"fieldType":"TXT","subDomain":"y","target":"v","ttl":60}"#;
    let tampered = api
        .send(
            Method::POST,
            path,
            &headers(sign("POST", path, signed_body, ts), ts),
            Bytes::from(other_body),
        )
        .await
        .unwrap();
    assert_eq!(
        (tampered.status, tampered.json()["errorCode"].as_str()),
        (400, Some("INVALID_SIGNATURE"))
    );
    // So is the query.
    let query = format!("{path}?fieldType=TXT");
    let unsigned_query = api
        .send(
            Method::GET,
            &query,
            &headers(sign("GET", path, "", ts), ts),
            Bytes::new(),
        )
        .await
        .unwrap();
    assert_eq!(unsigned_query.status, 400);
    // Well signed but malformed: refused on its merits.
    for body in [
        r#"{"fieldType":"TXT","target":"v","ttl":5}"#,
        r#"{"fieldType":"TXT","sub":"x","target":"v"}"#,
        "{",
    ] {
        let answer = api
            .send(
                Method::POST,
                path,
                &headers(sign("POST", path, body, ts), ts),
                Bytes::from(body),
            )
            .await
            .unwrap();
        assert_eq!(answer.status, 400, "{body}");
    }
    let unknown = "/domain/zones";
    let answer = api
        .send(
            Method::GET,
            unknown,
            &headers(sign("GET", unknown, "", ts), ts),
            Bytes::new(),
        )
        .await
        .unwrap();
    assert_eq!(answer.status, 404);
    assert!(server.state.lock().unwrap().records.is_empty());
}
