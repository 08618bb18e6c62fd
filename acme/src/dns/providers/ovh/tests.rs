//! OVH against the contract server in [`contract`]: the scenarios
//! the provider must get through.

mod contract;

use bytes::Bytes;
use http::{HeaderValue, Method};
use sha1::{Digest, Sha1};

use crate::dns::http::{Answer, HttpApi};
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
    let ts = now() + SKEW;
    let zones = "/domain/zone";
    // Signed right: accepted.
    let ok = sent(&server, Method::GET, (zones, ""), (zones, ""), ts).await;
    assert_eq!(ok.status, 200);
    // Our clock instead of OVH's.
    let stale = sent(&server, Method::GET, (zones, ""), (zones, ""), now()).await;
    assert_eq!(
        (stale.status, stale.json()["errorCode"].as_str()),
        (400, Some("QUERY_TIME_OUT"))
    );
    // The body is signed too: a different body breaks the signature.
    let path = "/domain/zone/example.com/record";
    let signed_body = r#"{"fieldType":"TXT","subDomain":"x","target":"v","ttl":60}"#;
    let other_body = r#"{"fieldType":"TXT","subDomain":"y","target":"v","ttl":60}"#;
    let tampered = sent(
        &server,
        Method::POST,
        (path, other_body),
        (path, signed_body),
        ts,
    )
    .await;
    assert_eq!(
        (tampered.status, tampered.json()["errorCode"].as_str()),
        (400, Some("INVALID_SIGNATURE"))
    );
    // So is the query.
    let query = format!("{path}?fieldType=TXT");
    let unsigned_query = sent(&server, Method::GET, (&query, ""), (path, ""), ts).await;
    assert_eq!(unsigned_query.status, 400);
    // Well signed but malformed: refused on its merits.
    for body in [
        r#"{"fieldType":"TXT","target":"v","ttl":5}"#,
        r#"{"fieldType":"TXT","sub":"x","target":"v"}"#,
        "{",
    ] {
        let answer = sent(&server, Method::POST, (path, body), (path, body), ts).await;
        assert_eq!(answer.status, 400, "{body}");
    }
    let unknown = "/domain/zones";
    let answer = sent(&server, Method::GET, (unknown, ""), (unknown, ""), ts).await;
    assert_eq!(answer.status, 404);
    assert!(server.state.lock().unwrap().records.is_empty());
}

/// Sends `method target` with `body` and the right keys, signed at `ts`
/// the way OVH wants, but over `signed` (target, body).
async fn sent(
    server: &Server,
    method: Method,
    (target, body): (&str, &'static str),
    signed: (&str, &str),
    ts: i64,
) -> Answer {
    let url = format!("{}{}", server.base_url(), signed.0);
    let digest = Sha1::digest(format!("{AS}+{CK}+{method}+{url}+{}+{ts}", signed.1));
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    let header = |name| http::HeaderName::from_static(name);
    let headers = [
        (header("x-ovh-application"), HeaderValue::from_static(AK)),
        (header("x-ovh-consumer"), HeaderValue::from_static(CK)),
        (header("x-ovh-timestamp"), HeaderValue::from(ts)),
        (
            header("x-ovh-signature"),
            HeaderValue::from_str(&format!("$1${hex}")).unwrap(),
        ),
        (
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        ),
    ];
    let api = HttpApi::new("ovh", &server.base_url()).unwrap();
    api.send(method, target, &headers, Bytes::from(body))
        .await
        .unwrap()
}
