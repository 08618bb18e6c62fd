//! The set of certificates served on `websecure`, keyed by name.
//!
//! A `CertStore` is immutable: it is built whole off the request path and
//! swapped in through `ArcSwap`, so the resolver reads it without a lock.

use std::collections::HashMap;
use std::sync::Arc;

use rustls::sign::CertifiedKey;

use crate::certificate::LoadedCertificate;

/// Names to certificates, hashed with foldhash (seeded per process): the
/// SNI of every handshake is hashed once or twice, where SipHash costs more
/// than the probe.
type NameMap<V> = HashMap<Box<str>, V, foldhash::fast::RandomState>;

/// Certificates by exact name and by wildcard parent, plus the fallback.
#[derive(Debug)]
pub struct CertStore {
    exact: NameMap<Arc<CertifiedKey>>,
    /// `*.example.com` is stored under `example.com`.
    wildcard: NameMap<Arc<CertifiedKey>>,
    fallback: Arc<CertifiedKey>,
}

impl CertStore {
    /// A store that serves only the fallback certificate.
    pub fn empty(fallback: Arc<CertifiedKey>) -> Self {
        Self {
            exact: NameMap::default(),
            wildcard: NameMap::default(),
            fallback,
        }
    }

    /// Indexes certificates by every name they cover. Where two cover the same
    /// name, the one expiring last wins, so a renewed certificate replaces the
    /// old one without the old one being removed first.
    pub fn build<'a>(
        certificates: impl IntoIterator<Item = &'a LoadedCertificate>,
        fallback: Arc<CertifiedKey>,
    ) -> Self {
        let mut exact: NameMap<(i64, Arc<CertifiedKey>)> = NameMap::default();
        let mut wildcard: NameMap<(i64, Arc<CertifiedKey>)> = NameMap::default();
        for cert in certificates {
            for name in &cert.names {
                let (map, key) = match name.strip_prefix("*.") {
                    Some(parent) => (&mut wildcard, parent),
                    None => (&mut exact, name.as_str()),
                };
                let entry = (cert.not_after, Arc::clone(&cert.key));
                match map.get(key) {
                    Some((existing, _)) if *existing >= cert.not_after => {}
                    _ => {
                        map.insert(key.into(), entry);
                    }
                }
            }
        }
        let strip = |map: NameMap<(i64, Arc<CertifiedKey>)>| {
            map.into_iter().map(|(k, (_, v))| (k, v)).collect()
        };
        Self {
            exact: strip(exact),
            wildcard: strip(wildcard),
            fallback,
        }
    }

    /// The certificate for a lower-case SNI name, if one is loaded: exact
    /// first, then a wildcard for its parent.
    pub fn find(&self, name: &str) -> Option<&Arc<CertifiedKey>> {
        self.exact.get(name).or_else(|| {
            let (_, parent) = name.split_once('.')?;
            self.wildcard.get(parent)
        })
    }

    /// The certificate to present for an SNI name (or none): a loaded one, else the fallback.
    pub fn resolve(&self, sni: Option<&str>) -> &Arc<CertifiedKey> {
        sni.and_then(|name| self.find(name))
            .unwrap_or(&self.fallback)
    }

    /// The fallback certificate.
    pub fn fallback(&self) -> &Arc<CertifiedKey> {
        &self.fallback
    }

    /// Number of names indexed (exact plus wildcard).
    pub fn len(&self) -> usize {
        self.exact.len() + self.wildcard.len()
    }

    /// True when only the fallback is served.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests;
