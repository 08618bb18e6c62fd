//! Issuance counts per registered domain, to stay under a CA's rate limits.
//!
//! Let's Encrypt allows 50 new certificates per registered domain per week.
//! Hitting the limit locks a domain out for days, so the ledger refuses the
//! request before any call to the CA. A request reserves its slot when it is
//! accepted (not when it succeeds): concurrent requests cannot both take the
//! last slot, and failures count, which errs on the safe side.

use std::collections::BTreeSet;

use portcullis_config::store::{space, Expect};
use portcullis_config::Store;
use serde::{Deserialize, Serialize};

use crate::Error;

/// The window the limit applies to.
pub(crate) const WINDOW_SECONDS: i64 = 7 * 86_400;

/// The registered domain (public suffix + one label) of a DNS name, per the
/// public suffix list; the name itself when the list does not know its TLD.
pub fn registered_domain(name: &str) -> String {
    let name = name
        .trim_start_matches("*.")
        .trim_end_matches('.')
        .to_ascii_lowercase();
    psl::domain_str(&name).map_or(name.clone(), str::to_owned)
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Counts {
    /// Unix seconds of each reservation still inside the window.
    issued: Vec<i64>,
}

/// Checks and reserves a slot for each registered domain of `names` at `issuer`.
///
/// All-or-nothing: when any domain is at its limit, nothing is reserved.
pub(crate) async fn reserve(
    store: &dyn Store,
    issuer: &str,
    limit: u32,
    names: &[String],
    now: i64,
) -> Result<(), Error> {
    let domains: BTreeSet<String> = names.iter().map(|n| registered_domain(n)).collect();
    // A few retries absorb concurrent reservations for the same domain.
    for _ in 0..8 {
        let mut changes = Vec::new();
        for domain in &domains {
            let key = format!("{issuer}/{domain}");
            let entry = store.get(space::LEDGER, &key).await?;
            let (mut counts, expect) = match &entry {
                Some(e) => (
                    serde_json::from_slice::<Counts>(&e.value).unwrap_or_default(),
                    Expect::Revision(e.revision),
                ),
                None => (Counts::default(), Expect::Absent),
            };
            counts.issued.retain(|t| *t > now - WINDOW_SECONDS);
            let count = u32::try_from(counts.issued.len()).unwrap_or(u32::MAX);
            if count >= limit {
                let oldest = counts.issued.iter().min().copied().unwrap_or(now);
                return Err(Error::RateLimited {
                    issuer: issuer.to_owned(),
                    domain: domain.clone(),
                    count,
                    limit,
                    retry_after_unix: oldest + WINDOW_SECONDS,
                });
            }
            counts.issued.push(now);
            changes.push(portcullis_config::store::Change::PutEntry {
                space: space::LEDGER,
                key,
                value: serde_json::to_vec(&counts).unwrap_or_default(),
                expect,
            });
        }
        match store.apply(changes, None).await {
            Ok(_) => return Ok(()),
            Err(portcullis_config::Error::EntryConflict { .. }) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(Error::Issuer {
        issuer: issuer.to_owned(),
        message: "rate-limit ledger is too contended; retry".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use portcullis_config::SqliteStore;

    #[test]
    fn registered_domains_follow_the_public_suffix_list() {
        assert_eq!(registered_domain("a.b.example.com"), "example.com");
        assert_eq!(registered_domain("*.shop.example.co.uk"), "example.co.uk");
        assert_eq!(registered_domain("x.user.github.io"), "user.github.io");
        assert_eq!(registered_domain("a.example.test"), "example.test");
    }

    #[tokio::test]
    async fn the_request_past_the_limit_is_refused_per_domain() {
        let store = SqliteStore::in_memory().unwrap();
        let now = 1_000_000;
        for i in 0..50 {
            reserve(&store, "le", 50, &[format!("n{i}.example.com")], now + i)
                .await
                .unwrap();
        }
        let err = reserve(&store, "le", 50, &["n51.example.com".into()], now + 60)
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                Error::RateLimited {
                    count: 50,
                    limit: 50,
                    ..
                }
            ),
            "{err}"
        );
        // Another domain and another issuer are unaffected.
        reserve(&store, "le", 50, &["a.example.org".into()], now)
            .await
            .unwrap();
        reserve(&store, "other", 50, &["n51.example.com".into()], now)
            .await
            .unwrap();
        // A week later the window has moved on.
        reserve(
            &store,
            "le",
            50,
            &["n51.example.com".into()],
            now + WINDOW_SECONDS + 1,
        )
        .await
        .unwrap();
    }

    #[tokio::test]
    async fn refusal_reserves_nothing_for_other_domains() {
        let store = SqliteStore::in_memory().unwrap();
        reserve(&store, "le", 1, &["a.full.test".into()], 10)
            .await
            .unwrap();
        let names = vec!["b.free.test".to_owned(), "b.full.test".to_owned()];
        assert!(reserve(&store, "le", 1, &names, 11).await.is_err());
        reserve(&store, "le", 1, &["c.free.test".into()], 12)
            .await
            .unwrap();
    }
}
