//! What a connection's client certificate was found to be worth, per route CA.
//!
//! A client's chain is checked against a route's own CA when a request
//! arrives (see [`crate::client_auth`]), because the handshake cannot know
//! the route. Building and verifying the chain costs tens of microseconds of
//! signature checks, and the chain cannot change within a connection, so the
//! verdict is kept with the connection instead of being redone per request.
//! A verdict is redone after [`RECHECK_AFTER`], so that a certificate that
//! expires while a long-lived connection is open stops being accepted.

use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use http::HeaderValue;

/// How long a verdict stands before the chain is verified again.
pub(crate) const RECHECK_AFTER: Duration = Duration::from_secs(60);
/// Verdicts one connection keeps: it reaches few mTLS routes (its Host must
/// match its SNI), and the bound keeps a client that walks through many
/// path-routed CAs from growing the list without end.
const MAX_VERDICTS: usize = 8;

/// The verdicts of one connection, keyed by the route verifier that gave
/// them. `K` is the verifier type; the key is the verifier's allocation, and
/// a verdict holds it, so a new route table (with new verifiers) is checked
/// afresh and an address is never mistaken for a freed one.
///
/// Read without a lock, like the route table: a new verdict replaces the
/// list whole (rare: once per route CA and connection, then once a minute).
/// Empty until the first one, so a connection that never reaches an mTLS
/// route allocates nothing.
#[derive(Debug)]
pub(crate) struct ClientVerdicts<K: ?Sized> {
    verdicts: ArcSwapOption<Vec<Verdict<K>>>,
}

#[derive(Debug)]
struct Verdict<K: ?Sized> {
    verifier: Arc<K>,
    /// The subject to pass on when the chain verified; `None` when it did not.
    subject: Option<HeaderValue>,
    checked: Instant,
}

// By hand: a derive would ask for `K: Clone`, which a verifier trait object is not.
impl<K: ?Sized> Clone for Verdict<K> {
    fn clone(&self) -> Self {
        Self {
            verifier: Arc::clone(&self.verifier),
            subject: self.subject.clone(),
            checked: self.checked,
        }
    }
}

impl<K: ?Sized> Default for ClientVerdicts<K> {
    fn default() -> Self {
        Self {
            verdicts: ArcSwapOption::empty(),
        }
    }
}

impl<K: ?Sized> ClientVerdicts<K> {
    /// The verdict of `verifier` on this connection's chain: a kept one when
    /// it is recent, else `verify()`'s, which is then kept.
    ///
    /// HTTP/2 streams of one connection do not wait for one another's
    /// signature checks: two first requests may both verify, and reach the
    /// same verdict.
    pub(crate) fn subject(
        &self,
        verifier: &Arc<K>,
        verify: impl FnOnce() -> Option<HeaderValue>,
    ) -> Option<HeaderValue> {
        self.subject_at(Instant::now(), verifier, verify)
    }

    fn subject_at(
        &self,
        now: Instant,
        verifier: &Arc<K>,
        verify: impl FnOnce() -> Option<HeaderValue>,
    ) -> Option<HeaderValue> {
        if let Some(verdicts) = self.verdicts.load().as_deref() {
            let kept = verdicts.iter().find(|v| Arc::ptr_eq(&v.verifier, verifier));
            if let Some(verdict) = kept.filter(|v| now.duration_since(v.checked) < RECHECK_AFTER) {
                return verdict.subject.clone();
            }
        }
        let subject = verify();
        let verdict = Verdict {
            verifier: Arc::clone(verifier),
            subject: subject.clone(),
            checked: now,
        };
        self.verdicts.rcu(|current| {
            let mut next: Vec<Verdict<K>> = current
                .as_deref()
                .map(|kept| {
                    kept.iter()
                        .filter(|v| !Arc::ptr_eq(&v.verifier, verifier))
                        .cloned()
                        .collect()
                })
                .unwrap_or_default();
            if next.len() >= MAX_VERDICTS {
                next.remove(0);
            }
            next.push(verdict.clone());
            Some(Arc::new(next))
        });
        subject
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.verdicts.load().as_deref().map_or(0, Vec::len)
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;

    #[test]
    fn a_verifier_checks_a_connection_once_and_each_verifier_has_its_own_verdict() {
        let verdicts = ClientVerdicts::<str>::default();
        let a: Arc<str> = Arc::from("ca-a");
        let b: Arc<str> = Arc::from("ca-a");
        let calls = Cell::new(0);
        let verify = |subject: Option<&'static str>| {
            calls.set(calls.get() + 1);
            subject.map(HeaderValue::from_static)
        };
        for _ in 0..3 {
            assert_eq!(
                verdicts.subject(&a, || verify(Some("CN=client"))),
                Some(HeaderValue::from_static("CN=client"))
            );
        }
        assert_eq!(calls.get(), 1, "verified once for three requests");
        // Equal contents, another verifier (a new route table): checked anew,
        // and a failed check is kept as such.
        assert_eq!(verdicts.subject(&b, || verify(None)), None);
        assert_eq!(verdicts.subject(&b, || verify(Some("CN=x"))), None);
        assert_eq!(calls.get(), 2);
    }

    #[test]
    fn a_verdict_is_redone_once_it_is_old() {
        let verdicts = ClientVerdicts::<str>::default();
        let verifier: Arc<str> = Arc::from("ca");
        let start = Instant::now();
        let ok = || Some(HeaderValue::from_static("CN=client"));
        verdicts.subject_at(start, &verifier, ok);
        let later = start + RECHECK_AFTER - Duration::from_secs(1);
        assert!(verdicts.subject_at(later, &verifier, || None).is_some());
        // The certificate has since expired: the new check fails, and stands.
        let expired = start + RECHECK_AFTER;
        assert_eq!(verdicts.subject_at(expired, &verifier, || None), None);
        assert_eq!(verdicts.subject_at(expired, &verifier, ok), None);
    }

    #[test]
    fn the_list_is_bounded_and_the_oldest_verdict_goes_first() {
        let verdicts = ClientVerdicts::<u32>::default();
        let verifiers: Vec<Arc<u32>> = (0..=MAX_VERDICTS as u32).map(Arc::new).collect();
        for verifier in &verifiers {
            verdicts.subject(verifier, || None);
        }
        assert_eq!(verdicts.len(), MAX_VERDICTS);
        let checked_again = Cell::new(false);
        verdicts.subject(&verifiers[0], || {
            checked_again.set(true);
            None
        });
        assert!(checked_again.get(), "the first verdict was dropped");
    }
}
