//! Hetzner against the contract server in [`contract`]: the scenarios
//! the provider must get through.

mod contract;

use http::{HeaderName, HeaderValue, Method};
use serde_json::{json, Value};

use super::MAX_POLLS;
use crate::dns::http::HttpApi;
use crate::dns::provider::DnsError;
use crate::dns::providers::test_support::{
    apex_keeps_its_other_values, assert_refused_everywhere, assert_zone_not_found,
    cleanup_at_the_apex, post_as_json, present_at_the_apex_and_below, two_values_coexist,
    two_values_share_one_set, zone_names, First, Words, CHALLENGE, ZONE,
};
use contract::Server;

const TOKEN: &str = "LRK9DAWQ1ZAEFSrCNEEzLCUwhYX1U3g7wMg4dTlkkDC96fyDuyJ39nVbVjCKSDfj";
const WRONG_TOKEN: &str = "84BFPidGvvNgeX9kdbs4ErmyMp05BI9p7xQd2WmZcLr3TnYs6KfHuEaVoJgN1tBy";

// === the scenarios ===

#[tokio::test]
async fn validate_lists_the_zones_the_token_sees() {
    let server = Server::start(&["example.com", "example.org"]).await;
    let zones = server.provider(TOKEN).validate().await.unwrap();
    assert_eq!(zones, ["example.com", "example.org"]);
}

#[tokio::test]
async fn validate_follows_every_page() {
    // Five pages of at most 50 zones.
    let names = zone_names(230);
    let server = Server::start(&names).await;
    assert_eq!(server.provider(TOKEN).validate().await.unwrap(), names);
    assert_eq!(server.requests("GET /v1/zones?"), 5);
}

#[tokio::test]
async fn a_refused_token_is_an_auth_error_in_hetzners_words() {
    let server = Server::start(&["example.com"]).await;
    let words = Words::Exactly("unable to authenticate (unauthorized)");
    let provider = server.provider(WRONG_TOKEN);
    assert_refused_everywhere(&*provider, "hetzner", words, &[WRONG_TOKEN]).await;
}

#[tokio::test]
async fn two_values_at_one_name_coexist_and_cleanup_removes_only_its_own() {
    let server = Server::start(&["example.com"]).await;
    two_values_coexist(
        &*server.provider(TOKEN),
        || server.txt_at("_acme-challenge"),
        || server.stored().len(),
        |_| {},
    )
    .await;
    // Both values went into the one RRSet at the name.
    assert_eq!(server.txt().len(), 1);
}

#[tokio::test]
async fn two_values_share_one_rrset_which_goes_with_the_last() {
    let server = Server::start(&["example.com"]).await;
    two_values_share_one_set(
        &*server.provider(TOKEN),
        60,
        || server.set(CHALLENGE),
        || false,
        || server.requests("POST "),
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
        .all(|r| r.zone == zone_id && r.ttl == Some(60)));
    // TXT values are sent as quoted character-strings.
    assert_eq!(server.set(ZONE).unwrap().1, ["\"at-the-apex\""]);
    cleanup_at_the_apex(&*provider, || server.stored(), below).await;
}

#[tokio::test]
async fn an_existing_rrset_keeps_its_ttl_and_other_values() {
    for first in [First::Apex, First::SubName] {
        let server = Server::start(&["example.com"]).await;
        server.seed(ZONE, "@", "TXT", 300, &["\"v=spf1 -all\""]);
        server.seed(ZONE, "www", "A", 300, &["192.0.2.1"]);
        let provider = server.provider(TOKEN);
        apex_keeps_its_other_values(&*provider, first, |fqdn| server.set(fqdn), || {}).await;
        assert_eq!(server.state.lock().unwrap().rrsets.len(), 2);
    }
}

#[tokio::test]
async fn removing_the_last_value_deletes_the_rrset_and_a_new_one_starts_afresh() {
    let server = Server::start(&["example.com"]).await;
    let provider = server.provider(TOKEN);
    provider.present(ZONE, CHALLENGE, "only").await.unwrap();
    provider.cleanup(ZONE, CHALLENGE, "only").await.unwrap();
    assert!(server.txt().is_empty());
    assert_eq!(server.set(CHALLENGE), None);

    // Cleaning up again asks nothing to change; presenting again creates
    // the RRSet anew, with this provider's TTL.
    let posts = server.requests("POST ");
    provider.cleanup(ZONE, CHALLENGE, "only").await.unwrap();
    assert_eq!(server.requests("POST "), posts);
    provider.present(ZONE, CHALLENGE, "again").await.unwrap();
    assert_eq!(
        server.set(CHALLENGE),
        Some((60, vec!["\"again\"".to_owned()]))
    );
}

#[tokio::test]
async fn an_action_still_running_is_polled_until_it_succeeds() {
    let server = Server::start(&["example.com"]).await;
    server.state.lock().unwrap().running_polls = 2;
    let provider = server.provider(TOKEN);
    provider.present(ZONE, CHALLENGE, "v").await.unwrap();
    // Running when started and at the first two polls; done at the third.
    assert_eq!(server.requests("GET /v1/actions/"), 3);
    assert_eq!(server.txt_at("_acme-challenge"), ["v"]);

    provider.cleanup(ZONE, CHALLENGE, "v").await.unwrap();
    assert_eq!(server.requests("GET /v1/actions/"), 6);
    assert!(server.txt().is_empty());
}

#[tokio::test]
async fn an_action_that_never_ends_is_given_up_on() {
    let server = Server::start(&["example.com"]).await;
    server.state.lock().unwrap().running_polls = u32::MAX;
    let err = server
        .provider(TOKEN)
        .present(ZONE, CHALLENGE, "v")
        .await
        .unwrap_err();
    match err {
        DnsError::Api { message, .. } => {
            assert!(message.contains("still running"), "{message}");
            assert!(message.contains("add_rrset_records"), "{message}");
        }
        other => panic!("expected Api, got {other:?}"),
    }
    let polls = usize::try_from(MAX_POLLS).unwrap();
    assert_eq!(server.requests("GET /v1/actions/"), polls);
}

#[tokio::test]
async fn an_action_that_fails_is_an_error_in_hetzners_words() {
    let server = Server::start(&["example.com"]).await;
    let provider = server.provider(TOKEN);
    for running_polls in [0, 1] {
        {
            let mut s = server.state.lock().unwrap();
            s.running_polls = running_polls;
            s.fail_next = Some("zone is currently locked by another change".into());
        }
        match provider.present(ZONE, CHALLENGE, "v").await.unwrap_err() {
            DnsError::Api { message, .. } => assert_eq!(
                message,
                "zone is currently locked by another change (action_failed)"
            ),
            other => panic!("expected Api, got {other:?}"),
        }
        assert!(server.txt().is_empty());
    }
}

#[tokio::test]
async fn a_zone_the_token_cannot_see_is_zone_not_found() {
    let server = Server::start(&["example.com"]).await;
    assert_zone_not_found(&*server.provider(TOKEN), "example.org").await;
}

#[tokio::test]
async fn a_token_that_sees_no_zones_finds_no_zone() {
    let none: [&str; 0] = [];
    let server = Server::start(&none).await;
    let provider = server.provider(TOKEN);
    assert!(provider.validate().await.unwrap().is_empty());
    assert_zone_not_found(&*provider, ZONE).await;
    let err = provider.cleanup(ZONE, CHALLENGE, "v").await.unwrap_err();
    assert!(
        matches!(&err, DnsError::ZoneNotFound { zone, .. } if zone == ZONE),
        "{err:?}"
    );
    assert_eq!(server.requests("POST "), 0);
}

// === the contract itself ===

/// The error code of an answer.
async fn code(
    api: &HttpApi,
    method: Method,
    path: &str,
    headers: &[(HeaderName, HeaderValue)],
    body: Option<&Value>,
) -> (u16, String) {
    let answer = api.json(method, path, headers, body).await.unwrap();
    let code = answer.json()["error"]["code"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    (answer.status, code)
}

#[tokio::test]
async fn the_contract_refuses_what_the_documentation_does_not_allow() {
    let server = Server::start(&["example.com"]).await;
    let zone_id = server.zone_id("example.com");
    server.seed(ZONE, "_acme-challenge", "TXT", 300, &["\"old\""]);
    let api = HttpApi::new("hetzner", &server.base_url()).unwrap();
    let bearer = |token: &str| {
        [(
            http::header::AUTHORIZATION,
            HeaderValue::from_str(token).unwrap(),
        )]
    };
    let auth = bearer(&format!("Bearer {TOKEN}"));
    let unauthorized = (401, "unauthorized".to_owned());

    // Authentication: none, another scheme, another token.
    assert_eq!(
        code(&api, Method::GET, "/zones", &[], None).await,
        unauthorized
    );
    let other_scheme = bearer(&format!("Token {TOKEN}"));
    assert_eq!(
        code(&api, Method::GET, "/zones", &other_scheme, None).await,
        unauthorized
    );
    let wrong = bearer(&format!("Bearer {WRONG_TOKEN}"));
    assert_eq!(
        code(&api, Method::GET, "/zones", &wrong, None).await,
        unauthorized
    );

    // Routes, methods, query parameters.
    let get = |path: &'static str| code(&api, Method::GET, path, &auth, None);
    assert_eq!(get("/zone").await, (404, "not_found".into()));
    assert_eq!(
        code(&api, Method::PUT, "/zones", &auth, None).await,
        (405, "method_not_allowed".into())
    );
    assert_eq!(
        get("/zones?per_page=51").await,
        (422, "invalid_input".into())
    );
    assert_eq!(get("/zones?page=0").await, (422, "invalid_input".into()));
    assert_eq!(
        get("/zones?page_size=10").await,
        (422, "invalid_input".into())
    );
    assert_eq!(get("/zones/example.org/rrsets/x/TXT").await.0, 404);
    assert_eq!(get("/zones/example.com/rrsets/x/TXT").await.0, 404);
    assert_eq!(get("/zones/example.com/rrsets/x/SPF").await.0, 422);
    assert_eq!(get("/actions/1").await.0, 404);
    let found = code(
        &api,
        Method::GET,
        &format!("/zones/{zone_id}/rrsets/_acme-challenge/TXT"),
        &auth,
        None,
    )
    .await;
    assert_eq!(found.0, 200);

    // Bodies.
    let add = format!("/zones/{zone_id}/rrsets/_acme-challenge/TXT/actions/add_records");
    let refused = |body: Value| {
        let (api, auth, add) = (&api, &auth, &add);
        async move { code(api, Method::POST, add, auth, Some(&body)).await }
    };
    let broken = post_as_json(&api, &add, &auth, b"records=").await;
    assert_eq!(broken.status, 400);
    assert_eq!(broken.json()["error"]["code"], "json_error");
    let invalid = (422, "invalid_input".to_owned());
    for body in [
        json!({ "records": [{ "value": "\"v\"" }], "zone_id": zone_id }),
        json!({ "records": [{ "value": "\"v\"", "type": "TXT" }] }),
        json!({ "records": [{ "value": "unquoted" }] }),
        json!({ "records": [{ "value": format!("\"{}\"", "x".repeat(256)) }] }),
        json!({ "records": [] }),
        json!({ "records": [{ "value": "\"v\"" }, { "value": "\"v\"" }] }),
        json!({ "records": [{ "value": "\"v\"" }], "ttl": 30 }),
        json!({ "records": [{ "value": "\"v\"" }], "ttl": "60" }),
        // The RRSet exists with TTL 300.
        json!({ "records": [{ "value": "\"v\"" }], "ttl": 60 }),
        json!({ "records": [{ "value": "\"old\"" }] }),
        json!({ "records": "\"v\"" }),
    ] {
        assert_eq!(refused(body.clone()).await, invalid, "{body}");
    }
    for path in [
        "_ACME-challenge",
        "_acme-challenge.",
        "_acme-challenge.example.com",
    ] {
        let add = format!("/zones/{zone_id}/rrsets/{path}/TXT/actions/add_records");
        let body = json!({ "records": [{ "value": "\"v\"" }] });
        assert_eq!(
            code(&api, Method::POST, &add, &auth, Some(&body)).await,
            invalid,
            "{path}"
        );
    }
    let remove = format!("/zones/{zone_id}/rrsets/_acme-challenge/TXT/actions/remove_records");
    let gone = json!({ "records": [{ "value": "\"never-there\"" }] });
    assert_eq!(
        code(&api, Method::POST, &remove, &auth, Some(&gone)).await,
        invalid
    );
    assert_eq!(
        server.set(CHALLENGE),
        Some((300, vec!["\"old\"".to_owned()]))
    );

    // What it allows: a value split in two quoted strings, with a comment.
    let split = format!("\"{}\" \"tail\"", "x".repeat(255));
    let body = json!({ "records": [{ "value": split, "comment": "long" }], "ttl": 300 });
    assert_eq!(refused(body).await.0, 201);
}
