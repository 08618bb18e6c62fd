//! The provider against a local Google that verifies the JWT it is sent
//! and the bearer token on every DNS call.

mod fake;

use std::sync::OnceLock;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::{KeyPair, KeySize};
use aws_lc_rs::signature::KeyPair as _;
use base64::engine::general_purpose::STANDARD;
use fake::{rrset, FakeGoogle};

use super::*;
use crate::dns::providers::test_support::{
    apex_keeps_its_other_values, asked_again_until_it_gives_up, assert_refused,
    assert_zone_not_found, two_values_share_one_set, First, Words, CHALLENGE,
};

const EMAIL: &str = "portcullis-dns@my-project.iam.gserviceaccount.com";
const PROJECT: &str = "my-project";

/// A test RSA key: its PKCS#8 PEM and its RSAPublicKey DER.
struct TestKey {
    pem: String,
    public: Vec<u8>,
}

fn key(which: usize) -> &'static TestKey {
    static KEYS: OnceLock<[TestKey; 2]> = OnceLock::new();
    let make = || {
        let pair = KeyPair::generate(KeySize::Rsa2048).unwrap();
        let der = AsDer::<aws_lc_rs::encoding::Pkcs8V1Der>::as_der(&pair).unwrap();
        let body = base64::Engine::encode(&STANDARD, der.as_ref());
        let lines: Vec<&str> = body
            .as_bytes()
            .chunks(64)
            .map(|l| std::str::from_utf8(l).unwrap())
            .collect();
        TestKey {
            pem: format!(
                "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
                lines.join("\n")
            ),
            public: pair.public_key().as_ref().to_vec(),
        }
    };
    &KEYS.get_or_init(|| [make(), make()])[which]
}

/// A key file as Google issues it, for `email` with key `which`.
fn key_file(email: &str, which: usize, token_uri: &str) -> String {
    json!({
        "type": "service_account",
        "project_id": PROJECT,
        "private_key_id": "0123456789abcdef0123456789abcdef01234567",
        "private_key": key(which).pem,
        "client_email": email,
        "client_id": "123456789012345678901",
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": token_uri,
        "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
        "client_x509_cert_url": "https://www.googleapis.com/robot/v1/metadata/x509/portcullis-dns",
        "universe_domain": "googleapis.com",
    })
    .to_string()
}

/// A fake with public `example-com` and `example-net`, `example-org`, a
/// private `example-com-internal` with the same DNS name, and a private
/// `corp`.
async fn fake() -> FakeGoogle {
    let fake = FakeGoogle::start(EMAIL, &key(0).public, PROJECT).await;
    fake.add_zone("example-com-internal", "example.com", true);
    fake.add_zone("example-com", "example.com", false);
    fake.add_zone("example-net", "example.net", false);
    fake.add_zone("corp", "corp.internal", true);
    fake.add_zone("example-org", "example.org", false);
    fake
}

fn fields(fake: &FakeGoogle, json: String) -> Fields {
    let mut fields = Fields::default();
    fields.config.insert("base_url".into(), fake.url());
    fields.secrets.insert("service_account_json".into(), json);
    fields
}

fn provider(fake: &FakeGoogle) -> CloudDns {
    CloudDns::new(&fields(
        fake,
        key_file(EMAIL, 0, &format!("{}/token", fake.url())),
    ))
    .unwrap()
}

#[tokio::test]
async fn validate_lists_the_public_zones_with_one_token() {
    let fake = fake().await;
    let dns = provider(&fake);
    assert_eq!(
        dns.validate().await.unwrap(),
        ["example.com", "example.net", "example.org"]
    );
    assert_eq!(dns.validate().await.unwrap().len(), 3);
    assert_eq!(fake.exchanges(), 1);
    assert_eq!(fake.log().len(), 6, "three pages, twice: {:?}", fake.log());
}

#[tokio::test]
async fn a_key_google_does_not_know_is_refused_with_its_words() {
    let fake = fake().await;
    let json = key_file(EMAIL, 1, &format!("{}/token", fake.url()));
    let err = CloudDns::new(&fields(&fake, json))
        .unwrap()
        .validate()
        .await
        .unwrap_err();
    let pem_body = key(1).pem.lines().nth(1).unwrap();
    assert_refused(
        &err,
        NAME,
        Words::StartingWith("invalid_grant: Invalid JWT Signature."),
        &[pem_body, "eyJ", "ya29"],
    );
    assert!(fake.log().is_empty());

    let json = key_file(
        "someone-else@my-project.iam.gserviceaccount.com",
        0,
        &format!("{}/token", fake.url()),
    );
    let err = CloudDns::new(&fields(&fake, json))
        .unwrap()
        .validate()
        .await
        .unwrap_err();
    assert!(
        matches!(&err, DnsError::Auth { message, .. } if message.contains("account not found")),
        "{err:?}"
    );
}

#[tokio::test]
async fn the_token_uri_setting_is_the_audience() {
    let fake = fake().await;
    let mut fields = fields(
        &fake,
        key_file(EMAIL, 0, "https://oauth2.googleapis.com/token"),
    );
    fields
        .config
        .insert("token_uri".into(), format!("{}/token", fake.url()));
    CloudDns::new(&fields).unwrap().validate().await.unwrap();
    assert_eq!(fake.exchanges(), 1);
}

#[tokio::test]
async fn dns_calls_need_the_bearer_token() {
    let fake = fake().await;
    let api = HttpApi::new(NAME, &fake.url()).unwrap();
    let path = format!("/dns/v1/projects/{PROJECT}/managedZones");
    for header in [
        None,
        Some("Bearer ya29.made-up"),
        Some("Basic dXNlcjpwYXNz"),
    ] {
        let headers: Vec<_> = header
            .map(|h| (http::header::AUTHORIZATION, HeaderValue::from_static(h)))
            .into_iter()
            .collect();
        let answer = api.json(Method::GET, &path, &headers, None).await.unwrap();
        assert_eq!(answer.status, 401);
        assert_eq!(answer.json()["error"]["status"], "UNAUTHENTICATED");
    }
}

#[tokio::test]
async fn tokens_are_kept_until_shortly_before_they_expire() {
    let fake = fake().await;
    let dns = provider(&fake);
    dns.present("example.com", CHALLENGE, "a").await.unwrap();
    dns.cleanup("example.com", CHALLENGE, "a").await.unwrap();
    assert_eq!(fake.exchanges(), 1);
    // A token that ends within the refresh margin serves one call only:
    // each of the three list pages gets its own.
    dns.auth.invalidate().await;
    fake.token_lifetime(30);
    dns.validate().await.unwrap();
    assert_eq!(fake.exchanges(), 4);
}

#[tokio::test]
async fn a_revoked_token_is_replaced_once() {
    let fake = fake().await;
    let dns = provider(&fake);
    dns.validate().await.unwrap();
    fake.revoke_tokens();
    dns.validate().await.unwrap();
    assert_eq!(fake.exchanges(), 2);
}

#[tokio::test]
async fn two_values_share_one_record_set_and_leave_one_by_one() {
    let fake = fake().await;
    two_values_share_one_set(
        &provider(&fake),
        TTL,
        || {
            fake.get("example-com", CHALLENGE, "TXT")
                .map(|set| (set.ttl, set.rrdatas))
        },
        || fake.get("example-com-internal", CHALLENGE, "TXT").is_some(),
        || fake.log().iter().filter(|l| l.starts_with("POST")).count(),
    )
    .await;
}

#[tokio::test]
async fn the_apex_keeps_its_other_records_and_sub_names_stay_apart() {
    let fake = fake().await;
    fake.put(
        "example-com",
        rrset("example.com.", "TXT", 300, &["\"v=spf1 -all\""]),
    );
    apex_keeps_its_other_values(
        &provider(&fake),
        First::Apex,
        |name| {
            fake.get("example-com", name, "TXT")
                .map(|set| (set.ttl, set.rrdatas))
        },
        || {},
    )
    .await;
    assert!(fake.get("example-com", "example.com", "SOA").is_some());
}

#[tokio::test]
async fn a_change_that_lost_a_race_is_made_again_from_a_fresh_read() {
    let fake = fake().await;
    let answer = asked_again_until_it_gives_up(
        &provider(&fake),
        "example.net",
        ATTEMPTS,
        |n| fake.conflicts(n),
        || {
            fake.get("example-net", "_acme-challenge.example.net", "TXT")
                .map(|set| set.rrdatas)
        },
    )
    .await;
    assert_eq!(
        answer,
        (
            412,
            "FAILED_PRECONDITION: Precondition not met for 'entity.change.deletions[0]'".into()
        )
    );
}

#[tokio::test]
async fn zones_and_projects_it_cannot_see() {
    let fake = fake().await;
    let dns = provider(&fake);
    for zone in ["corp.internal", "missing.example"] {
        assert_zone_not_found(&dns, zone).await;
    }
    // A managed zone deleted after it was found.
    dns.zones
        .lock()
        .unwrap()
        .insert("example.org".into(), "deleted-zone".into());
    let err = dns
        .present("example.org", "_acme-challenge.example.org", "v")
        .await
        .unwrap_err();
    assert!(matches!(err, DnsError::ZoneNotFound { .. }), "{err:?}");
    dns.present("example.org", "_acme-challenge.example.org", "v")
        .await
        .unwrap();

    let mut other = fields(&fake, key_file(EMAIL, 0, &format!("{}/token", fake.url())));
    other
        .config
        .insert("project".into(), "someone-elses".into());
    let err = CloudDns::new(&other).unwrap().validate().await.unwrap_err();
    assert!(
        matches!(&err, DnsError::Auth { message, .. } if message == "PERMISSION_DENIED: Forbidden"),
        "{err:?}"
    );
}

#[test]
fn key_files_are_checked_without_being_quoted() {
    let fake_url = "http://127.0.0.1:9/token";
    let build_with = |json: String| {
        let mut fields = Fields::default();
        fields.secrets.insert("service_account_json".into(), json);
        CloudDns::new(&fields).err()
    };
    let err =
        build_with("{\"private_key\": \"-----BEGIN PRIVATE KEY-----\\nnot json".into()).unwrap();
    assert!(
        matches!(&err, DnsError::Config { field, .. } if field == "service_account_json"),
        "{err:?}"
    );
    assert!(!err.to_string().contains("BEGIN"), "{err}");
    let mut broken: Value = serde_json::from_str(&key_file(EMAIL, 0, fake_url)).unwrap();
    broken["private_key"] = json!("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n");
    let err = build_with(broken.to_string()).unwrap();
    assert!(
        err.to_string().contains("`private_key` was refused"),
        "{err}"
    );
    let mut no_project: Value = serde_json::from_str(&key_file(EMAIL, 0, fake_url)).unwrap();
    no_project.as_object_mut().unwrap().remove("project_id");
    let err = build_with(no_project.to_string()).unwrap();
    assert!(
        matches!(&err, DnsError::Config { field, .. } if field == "project"),
        "{err:?}"
    );
    assert!(build_with(key_file(EMAIL, 0, fake_url)).is_none());
    assert!(matches!(
        build(&Fields::default()),
        Err(DnsError::Config { .. })
    ));
}

#[test]
fn the_assertion_carries_the_documented_claims() {
    let account = auth::ServiceAccount::from_json(
        &key_file(EMAIL, 0, "https://oauth2.googleapis.com/token"),
        None,
    )
    .unwrap();
    let jwt = account.assertion(1_700_000_000).unwrap();
    let parts: Vec<&str> = jwt.split('.').collect();
    let decode = |s: &str| -> Value {
        serde_json::from_slice(
            &base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, s).unwrap(),
        )
        .unwrap()
    };
    let header = decode(parts[0]);
    assert_eq!(
        (header["alg"].as_str(), header["typ"].as_str()),
        (Some("RS256"), Some("JWT"))
    );
    assert_eq!(header["kid"], "0123456789abcdef0123456789abcdef01234567");
    assert_eq!(
        decode(parts[1]),
        json!({ "iss": EMAIL, "scope": auth::SCOPE, "aud": "https://oauth2.googleapis.com/token",
                "iat": 1_700_000_000u64, "exp": 1_700_003_600u64 })
    );
}
