//! The scenarios every provider must get through, each against the
//! provider's own fake: the fake is read back through closures, so each
//! test still says what its provider's records look like.

use crate::dns::provider::{DnsError, DnsProvider};

/// The zone the scenarios work in.
pub(in crate::dns::providers) const ZONE: &str = "example.com";

/// The name the scenarios put their values at.
pub(in crate::dns::providers) const CHALLENGE: &str = "_acme-challenge.example.com";

/// `count` zone names, `zone0.example` on: enough to make a fake page.
pub(in crate::dns::providers) fn zone_names(count: usize) -> Vec<String> {
    (0..count).map(|i| format!("zone{i}.example")).collect()
}

/// `values` each in double quotes, as record-set APIs store TXT data.
pub(in crate::dns::providers) fn quoted(values: &[&str]) -> Vec<String> {
    values.iter().map(|v| format!("\"{v}\"")).collect()
}

/// What a refusal's message must be.
#[derive(Clone, Copy, Debug)]
pub(in crate::dns::providers) enum Words<'a> {
    /// These words and nothing else.
    Exactly(&'a str),
    /// These words somewhere.
    Containing(&'a str),
    /// These words first.
    StartingWith(&'a str),
}

/// `err` is `Auth` from `provider`, in the provider's own `words`, and
/// neither its `Display` nor its `Debug` shows any of `secrets`.
pub(in crate::dns::providers) fn assert_refused(
    err: &DnsError,
    provider: &str,
    words: Words<'_>,
    secrets: &[&str],
) {
    match err {
        DnsError::Auth {
            provider: name,
            message,
        } => {
            assert_eq!(*name, provider);
            match words {
                Words::Exactly(words) => assert_eq!(message, words),
                Words::Containing(words) => assert!(message.contains(words), "{message}"),
                Words::StartingWith(words) => assert!(message.starts_with(words), "{message}"),
            }
        }
        other => panic!("expected Auth, got {other:?}"),
    }
    for secret in secrets {
        assert!(!err.to_string().contains(secret), "{err}");
        assert!(!format!("{err:?}").contains(secret), "{err:?}");
    }
}

/// With a refused credential, `validate`, `present` and `cleanup` each
/// fail as [`assert_refused`] says.
pub(in crate::dns::providers) async fn assert_refused_everywhere(
    provider: &dyn DnsProvider,
    name: &str,
    words: Words<'_>,
    secrets: &[&str],
) {
    let errors = [
        provider.validate().await.unwrap_err(),
        provider.present(ZONE, CHALLENGE, "v").await.unwrap_err(),
        provider.cleanup(ZONE, CHALLENGE, "v").await.unwrap_err(),
    ];
    for err in &errors {
        assert_refused(err, name, words, secrets);
    }
}

/// Presenting in `zone`, which the credential cannot see, is
/// `ZoneNotFound` naming it.
pub(in crate::dns::providers) async fn assert_zone_not_found(
    provider: &dyn DnsProvider,
    zone: &str,
) {
    let err = provider
        .present(zone, &format!("_acme-challenge.{zone}"), "v")
        .await
        .unwrap_err();
    assert!(
        matches!(&err, DnsError::ZoneNotFound { zone: z, .. } if z == zone),
        "{err:?}"
    );
}

/// A point in [`two_values_coexist`] where a provider's test checks more.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(in crate::dns::providers) enum Step {
    /// Both values were presented.
    Presented,
    /// One value was cleaned up.
    CleanedUp,
    /// A value already gone and one never presented were cleaned up.
    CleanedUpAgain,
}

/// Two values at [`CHALLENGE`] (a wildcard's and its apex's) coexist;
/// presenting one again adds nothing; cleanup removes only its own; a
/// value already gone or never presented cleans up fine and leaves the
/// other. `values` reads the fake's sorted values at the name, `count`
/// how many records it holds; `then` checks more at each [`Step`].
pub(in crate::dns::providers) async fn two_values_coexist(
    provider: &dyn DnsProvider,
    values: impl Fn() -> Vec<String>,
    count: impl Fn() -> usize,
    mut then: impl FnMut(Step),
) {
    let (wildcard, apex) = ("value-for-wildcard", "value-for-apex");
    let present = |value| provider.present(ZONE, CHALLENGE, value);
    let cleanup = |value| provider.cleanup(ZONE, CHALLENGE, value);
    present(wildcard).await.unwrap();
    present(apex).await.unwrap();
    assert_eq!(values(), [apex, wildcard]);
    then(Step::Presented);

    // Presenting again is a no-op, not a duplicate.
    present(apex).await.unwrap();
    assert_eq!(count(), 2);

    cleanup(wildcard).await.unwrap();
    assert_eq!(values(), [apex]);
    then(Step::CleanedUp);

    // Already gone: fine, and the other value stays.
    cleanup(wildcard).await.unwrap();
    cleanup("never-presented").await.unwrap();
    assert_eq!(values(), [apex]);
    then(Step::CleanedUpAgain);
}

/// Presents `at-the-apex` at the zone's apex and `below` at
/// `_acme-challenge.www`; `stored` reads the fake's records as (name as
/// the fake keeps it, value), in order: they must be `apex` and `below`.
pub(in crate::dns::providers) async fn present_at_the_apex_and_below(
    provider: &dyn DnsProvider,
    stored: impl Fn() -> Vec<(String, String)>,
    apex: &str,
    below: &str,
) {
    provider.present(ZONE, ZONE, "at-the-apex").await.unwrap();
    provider
        .present(ZONE, "_acme-challenge.www.example.com", "below")
        .await
        .unwrap();
    assert_eq!(
        stored(),
        [
            (apex.to_owned(), "at-the-apex".to_owned()),
            (below.to_owned(), "below".to_owned())
        ]
    );
}

/// Then cleans up the apex's value: only the value `below` stays.
pub(in crate::dns::providers) async fn cleanup_at_the_apex(
    provider: &dyn DnsProvider,
    stored: impl Fn() -> Vec<(String, String)>,
    below: &str,
) {
    provider.cleanup(ZONE, ZONE, "at-the-apex").await.unwrap();
    assert_eq!(stored(), [(below.to_owned(), "below".to_owned())]);
}

/// For APIs that keep a name's values in one record set: two values
/// share the set at [`CHALLENGE`] (with `ttl`), presenting one again
/// changes nothing, and cleanup takes them out one by one, the last with
/// the set. `set` reads the public zone's TXT set there as (TTL, data),
/// `private` whether the private zone of the same name got one, `posts`
/// how many changes the fake was sent.
pub(in crate::dns::providers) async fn two_values_share_one_set(
    provider: &dyn DnsProvider,
    ttl: u64,
    set: impl Fn() -> Option<(u64, Vec<String>)>,
    private: impl Fn() -> bool,
    posts: impl Fn() -> usize,
) {
    for value in ["value-one", "value-two", "value-two"] {
        provider.present(ZONE, CHALLENGE, value).await.unwrap();
    }
    assert_eq!(set(), Some((ttl, quoted(&["value-one", "value-two"]))));
    assert!(!private(), "wrote into the private zone");

    provider
        .cleanup(ZONE, CHALLENGE, "value-one")
        .await
        .unwrap();
    assert_eq!(set().map(|(_, data)| data), Some(quoted(&["value-two"])));
    provider
        .cleanup(ZONE, CHALLENGE, "value-two")
        .await
        .unwrap();
    assert!(set().is_none());
    let before = posts();
    provider
        .cleanup(ZONE, CHALLENGE, "value-two")
        .await
        .unwrap();
    assert_eq!(posts(), before, "cleaning a gone value changed something");
}

/// Which name [`apex_keeps_its_other_values`] presents at first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(in crate::dns::providers) enum First {
    /// The zone's apex.
    Apex,
    /// `_acme-challenge.www`, below it.
    SubName,
}

/// For APIs that keep a name's values in one record set, where the apex
/// already holds the TXT set `"v=spf1 -all"` with TTL 300: a value joins
/// that set (keeping its TTL) and leaves it as it was; a value at
/// `_acme-challenge.www` gets a set of its own and leaves with it. `set`
/// reads the TXT set at a name (no dot) as (TTL, data); `then` checks
/// more once both values are there.
pub(in crate::dns::providers) async fn apex_keeps_its_other_values(
    provider: &dyn DnsProvider,
    first: First,
    set: impl Fn(&str) -> Option<(u64, Vec<String>)>,
    then: impl FnOnce(),
) {
    let sub = "_acme-challenge.www.example.com";
    let mut values = [(ZONE, "apex"), (sub, "sub")];
    if first == First::SubName {
        values.reverse();
    }
    for (name, value) in values {
        provider.present(ZONE, name, value).await.unwrap();
    }
    let spf = "\"v=spf1 -all\"".to_owned();
    assert_eq!(
        set(ZONE),
        Some((300, vec![spf.clone(), "\"apex\"".to_owned()]))
    );
    assert_eq!(set(sub).map(|(_, data)| data), Some(quoted(&["sub"])));
    then();

    provider.cleanup(ZONE, ZONE, "apex").await.unwrap();
    assert_eq!(set(ZONE).map(|(_, data)| data), Some(vec![spf]));
    provider.cleanup(ZONE, sub, "sub").await.unwrap();
    assert!(set(sub).is_none());
}

/// For APIs that may turn a change away for now: turned away once
/// (`busy(1)`), a value at `_acme-challenge.{zone}` is still presented
/// (`data` reads the set there); turned away `busy(attempts)` times, its
/// cleanup gives up with the API's error, returned as (status, message).
pub(in crate::dns::providers) async fn asked_again_until_it_gives_up(
    provider: &dyn DnsProvider,
    zone: &str,
    attempts: u32,
    busy: impl Fn(u32),
    data: impl Fn() -> Option<Vec<String>>,
) -> (u16, String) {
    let name = format!("_acme-challenge.{zone}");
    busy(1);
    provider.present(zone, &name, "v").await.unwrap();
    assert_eq!(data(), Some(quoted(&["v"])));
    busy(attempts);
    match provider.cleanup(zone, &name, "v").await.unwrap_err() {
        DnsError::Api {
            status, message, ..
        } => (status, message),
        other => panic!("expected Api, got {other:?}"),
    }
}
