//! The provider against a local Route 53 that checks every signature.

mod fake;
mod sigv4_check;

use std::time::Duration;

use bytes::Bytes;
use fake::{set, Account, FakeRoute53};

use super::request::error_parts;
use super::*;
use crate::dns::providers::test_support::{
    apex_keeps_its_other_values, asked_again_until_it_gives_up, assert_refused_everywhere,
    assert_zone_not_found, two_values_share_one_set, First, Words, CHALLENGE,
};

const KEY_ID: &str = "AKIAIOSFODNN7EXAMPLE";
const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
const TEMP_KEY_ID: &str = "ASIAIOSFODNN7EXAMPLE";
const TEMP_SECRET: &str = "je7MtGbClwBF/2Zp9Utk/h3yCo8nvbEXAMPLEKEY";
const SESSION_TOKEN: &str = "FwoGZXIvYXdzEXAMPLE//////////wEaDEXAMPLETOKEN";

fn accounts() -> Vec<Account> {
    vec![
        Account {
            access_key_id: KEY_ID,
            secret_access_key: SECRET,
            session_token: None,
        },
        Account {
            access_key_id: TEMP_KEY_ID,
            secret_access_key: TEMP_SECRET,
            session_token: Some(SESSION_TOKEN),
        },
    ]
}

/// A fake with public `example.com` (Z1), a private `example.com` that
/// sorts first (Z0), public `example.net` and `example.org`, private
/// `corp.internal`.
async fn fake() -> FakeRoute53 {
    let fake = FakeRoute53::start(accounts(), 2).await;
    fake.add_zone("Z0PRIVATE", "example.com", true);
    fake.add_zone("Z1EXAMPLECOM", "example.com", false);
    fake.add_zone("Z2EXAMPLENET", "example.net", false);
    fake.add_zone("Z3CORP", "corp.internal", true);
    fake.add_zone("Z4EXAMPLEORG", "example.org", false);
    fake
}

fn provider_with(fake: &FakeRoute53, key_id: &str, secret: &str, token: Option<&str>) -> Route53 {
    let mut fields = Fields::default();
    fields.config.insert("base_url".into(), fake.url());
    if let Some(token) = token {
        fields.secrets.insert("session_token".into(), token.into());
    }
    fields.secrets.insert("access_key_id".into(), key_id.into());
    fields
        .secrets
        .insert("secret_access_key".into(), secret.into());
    let mut provider = Route53::new(&fields).unwrap();
    provider.retry_delay = Duration::from_millis(5);
    provider
}

fn provider(fake: &FakeRoute53) -> Route53 {
    provider_with(fake, KEY_ID, SECRET, None)
}

#[tokio::test]
async fn validate_lists_the_public_zones_across_pages() {
    let fake = fake().await;
    let zones = provider(&fake).validate().await.unwrap();
    assert_eq!(zones, ["example.com", "example.net", "example.org"]);
    let pages = fake
        .log()
        .iter()
        .filter(|l| l.starts_with("GET /2013-04-01/hostedzone?"))
        .count();
    assert_eq!(pages, 3, "{:?}", fake.log());
}

#[tokio::test]
async fn a_wrong_secret_is_refused_with_route53s_words_and_no_secret() {
    let fake = fake().await;
    let wrong = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYWRONGKEYXX";
    let words = Words::StartingWith("SignatureDoesNotMatch: The request signature we calculated");
    let r53 = provider_with(&fake, KEY_ID, wrong, None);
    assert_refused_everywhere(&r53, NAME, words, &[wrong, KEY_ID]).await;
    assert!(
        fake.log().is_empty(),
        "the fake let a bad signature through"
    );
}

#[tokio::test]
async fn an_unknown_key_is_refused() {
    let fake = fake().await;
    let words = "InvalidClientTokenId: The security token included in the request is invalid.";
    let r53 = provider_with(&fake, "AKIAUNKNOWNKEY000000", SECRET, None);
    assert_refused_everywhere(&r53, NAME, Words::Exactly(words), &[]).await;
}

#[tokio::test]
async fn temporary_credentials_sign_the_session_token() {
    let fake = fake().await;
    let without = provider_with(&fake, TEMP_KEY_ID, TEMP_SECRET, None)
        .validate()
        .await
        .unwrap_err();
    assert!(matches!(without, DnsError::Auth { .. }), "{without:?}");
    let with = provider_with(&fake, TEMP_KEY_ID, TEMP_SECRET, Some(SESSION_TOKEN));
    assert_eq!(with.validate().await.unwrap().len(), 3);
    with.present("example.com", CHALLENGE, "tok").await.unwrap();
    let wrong = provider_with(&fake, TEMP_KEY_ID, TEMP_SECRET, Some("FwoGZXIvYXdzWRONG"));
    let err = wrong.validate().await.unwrap_err();
    assert!(
        matches!(err, DnsError::Auth { .. }) && !err.to_string().contains("FwoGZXIvYXdzWRONG"),
        "{err:?}"
    );
}

#[tokio::test]
async fn two_values_share_one_record_set_and_leave_one_by_one() {
    let fake = fake().await;
    two_values_share_one_set(
        &provider(&fake),
        u64::from(TTL),
        || {
            fake.get("Z1EXAMPLECOM", CHALLENGE, "TXT")
                .map(|set| (u64::from(set.ttl), set.values))
        },
        || fake.get("Z0PRIVATE", CHALLENGE, "TXT").is_some(),
        || fake.log().iter().filter(|l| l.starts_with("POST")).count(),
    )
    .await;
}

#[tokio::test]
async fn the_apex_keeps_its_other_records_and_sub_names_stay_apart() {
    let fake = fake().await;
    fake.put(
        "Z1EXAMPLECOM",
        set("example.com.", "TXT", 300, &["\"v=spf1 -all\""]),
    );
    fake.put(
        "Z1EXAMPLECOM",
        set("www.example.com.", "A", 300, &["192.0.2.1"]),
    );
    // Nothing at the sub-name at first: the listing starts at the next
    // name, which must not be taken for ours.
    apex_keeps_its_other_values(
        &provider(&fake),
        First::SubName,
        |name| {
            fake.get("Z1EXAMPLECOM", name, "TXT")
                .map(|set| (u64::from(set.ttl), set.values))
        },
        || {
            let ns = fake.get("Z1EXAMPLECOM", "example.com", "NS").unwrap();
            assert_eq!(ns.values.len(), 1);
        },
    )
    .await;
    assert!(fake.get("Z1EXAMPLECOM", "www.example.com", "A").is_some());
}

#[tokio::test]
async fn the_last_value_is_deleted_with_the_sets_own_ttl() {
    let fake = fake().await;
    fake.put(
        "Z2EXAMPLENET",
        set("_acme-challenge.example.net.", "TXT", 3600, &["\"old\""]),
    );
    let r53 = provider(&fake);
    r53.present("example.net", "_acme-challenge.example.net", "new")
        .await
        .unwrap();
    assert_eq!(
        fake.get("Z2EXAMPLENET", "_acme-challenge.example.net", "TXT")
            .unwrap()
            .ttl,
        3600
    );
    r53.cleanup("example.net", "_acme-challenge.example.net", "old")
        .await
        .unwrap();
    r53.cleanup("example.net", "_acme-challenge.example.net", "new")
        .await
        .unwrap();
    assert!(fake
        .get("Z2EXAMPLENET", "_acme-challenge.example.net", "TXT")
        .is_none());
}

#[tokio::test]
async fn zones_it_cannot_see_are_not_found() {
    let fake = fake().await;
    let r53 = provider(&fake);
    for zone in ["corp.internal", "missing.example", "zzz.test"] {
        assert_zone_not_found(&r53, zone).await;
    }
    let err = r53
        .present("example.com", "_acme-challenge.example.org", "v")
        .await
        .unwrap_err();
    assert!(matches!(err, DnsError::Config { .. }), "{err:?}");
}

#[tokio::test]
async fn a_busy_route53_is_asked_again() {
    let fake = fake().await;
    let (status, message) = asked_again_until_it_gives_up(
        &provider(&fake),
        "example.com",
        ATTEMPTS,
        |n| fake.busy(n),
        || {
            fake.get("Z1EXAMPLECOM", CHALLENGE, "TXT")
                .map(|set| set.values)
        },
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        message.starts_with("PriorRequestNotComplete: "),
        "{message}"
    );
}

#[tokio::test]
async fn a_zone_removed_behind_our_back_is_not_found() {
    let fake = fake().await;
    let r53 = provider(&fake);
    r53.present("example.com", CHALLENGE, "v").await.unwrap();
    r53.zones
        .lock()
        .unwrap()
        .insert("example.com".into(), "ZGONE".into());
    let err = r53
        .present("example.com", CHALLENGE, "w")
        .await
        .unwrap_err();
    assert!(matches!(err, DnsError::ZoneNotFound { .. }), "{err:?}");
    // The stale id was dropped: the next call looks the zone up again.
    r53.present("example.com", CHALLENGE, "w").await.unwrap();
}

#[tokio::test]
async fn a_private_twin_on_an_earlier_page_is_skipped() {
    let fake = FakeRoute53::start(accounts(), 1).await;
    fake.add_zone("Z0PRIVATE", "example.com", true);
    fake.add_zone("Z1EXAMPLECOM", "example.com", false);
    let r53 = provider(&fake);
    r53.present("example.com", CHALLENGE, "v").await.unwrap();
    assert!(fake.get("Z1EXAMPLECOM", CHALLENGE, "TXT").is_some());
    let lookups: Vec<String> = fake
        .log()
        .into_iter()
        .filter(|l| l.contains("hostedzonesbyname"))
        .collect();
    assert_eq!(lookups.len(), 2, "{lookups:?}");
    assert!(
        lookups[1].contains("hostedzoneid=Z1EXAMPLECOM"),
        "{lookups:?}"
    );
}

#[tokio::test]
async fn the_fake_checks_what_was_signed() {
    let fake = fake().await;
    let r53 = provider(&fake);
    let api = HttpApi::new(NAME, &fake.url()).unwrap();
    let zones = "/2013-04-01/hostedzone";
    let refused = (403, "SignatureDoesNotMatch".to_owned());
    // Signed for one query, sent with another.
    let headers = r53.signed_headers("GET", zones, "maxitems=1", b"").unwrap();
    let target = format!("{zones}?maxitems=2");
    assert_eq!(
        sent(&api, Method::GET, &target, &headers, b"").await,
        refused
    );
    // Signed for one body, sent with another.
    let path = "/2013-04-01/hostedzone/Z1EXAMPLECOM/rrset";
    let headers = r53.signed_headers("POST", path, "", b"<a/>").unwrap();
    assert_eq!(
        sent(&api, Method::POST, path, &headers, b"<b/>").await,
        refused
    );
    // Signed as it is sent: accepted.
    let headers = r53.signed_headers("GET", zones, "maxitems=1", b"").unwrap();
    let target = format!("{zones}?maxitems=1");
    assert_eq!(sent(&api, Method::GET, &target, &headers, b"").await.0, 200);
    // Unsigned: refused.
    let (_, code) = sent(&api, Method::GET, zones, &[], b"").await;
    assert_eq!(code, "MissingAuthenticationToken");
}

/// Sends a request as it is given: the status and the error `Code`.
async fn sent(
    api: &HttpApi,
    method: Method,
    target: &str,
    headers: &[(http::HeaderName, http::HeaderValue)],
    body: &'static [u8],
) -> (u16, String) {
    let answer = api
        .send(method, target, headers, Bytes::from_static(body))
        .await
        .unwrap();
    let (code, _) = error_parts(&String::from_utf8_lossy(&answer.body));
    (answer.status, code)
}

#[test]
fn errors_lose_echoed_canonical_requests_and_secrets() {
    let mut fields = Fields::default();
    fields
        .secrets
        .insert("session_token".into(), SESSION_TOKEN.into());
    fields.secrets.insert("access_key_id".into(), KEY_ID.into());
    fields
        .secrets
        .insert("secret_access_key".into(), SECRET.into());
    let r53 = Route53::new(&fields).unwrap();
    let echoed = format!(
        "Signature mismatch for {KEY_ID} using {SECRET}\n\nThe Canonical String for this request should have been\n\
         'GET\n/\n\nx-amz-security-token:{SESSION_TOKEN}\n'"
    );
    let err = r53.error(403, "SignatureDoesNotMatch", &echoed, None);
    let shown = err.to_string();
    assert_eq!(shown, "route53: credential refused: SignatureDoesNotMatch: Signature mismatch for [redacted] using [redacted]");
}

#[test]
fn the_spec_names_the_documented_fields() {
    assert_eq!(SPEC.secrets, ["access_key_id", "secret_access_key"]);
    assert!(SPEC.optional_secrets.contains(&"session_token") && SPEC.optional.contains(&"region"));
    let err = build(&Fields::default()).err().unwrap();
    assert!(
        matches!(err, DnsError::Config { ref field, .. } if field == "access_key_id"),
        "{err:?}"
    );
}
