//! Pending ACME challenges that the listeners answer.
//!
//! The ACME engine publishes a challenge here before telling the CA it is
//! ready, and removes it when the authorization ends. Reads happen on the
//! request path and in the TLS handshake, writes a few times per issuance,
//! so each map is an immutable snapshot swapped whole.

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::sign::CertifiedKey;

/// HTTP-01 key authorizations by token, TLS-ALPN-01 certificates by name.
#[derive(Debug, Default)]
pub struct ChallengeStore {
    http01: ArcSwap<HashMap<Box<str>, Arc<str>>>,
    tls_alpn01: ArcSwap<HashMap<Box<str>, Arc<CertifiedKey>>>,
}

impl ChallengeStore {
    /// Serves `key_authorization` at `/.well-known/acme-challenge/{token}` on `web`.
    pub fn publish_http01(&self, token: &str, key_authorization: &str) {
        let key_authorization: Arc<str> = Arc::from(key_authorization);
        self.http01.rcu(|map| {
            let mut map = HashMap::clone(map);
            map.insert(token.into(), Arc::clone(&key_authorization));
            map
        });
    }

    /// Stops serving an HTTP-01 token.
    pub fn remove_http01(&self, token: &str) {
        self.http01.rcu(|map| {
            let mut map = HashMap::clone(map);
            map.remove(token);
            map
        });
    }

    /// The key authorization for a token, if published.
    pub fn http01(&self, token: &str) -> Option<Arc<str>> {
        self.http01.load().get(token).cloned()
    }

    /// Presents `certificate` to `acme-tls/1` handshakes for `name` (RFC 8737).
    pub fn publish_tls_alpn01(&self, name: &str, certificate: Arc<CertifiedKey>) {
        let name = name.to_ascii_lowercase();
        self.tls_alpn01.rcu(|map| {
            let mut map = HashMap::clone(map);
            map.insert(name.as_str().into(), Arc::clone(&certificate));
            map
        });
    }

    /// Stops presenting the TLS-ALPN-01 certificate for `name`.
    pub fn remove_tls_alpn01(&self, name: &str) {
        let name = name.to_ascii_lowercase();
        self.tls_alpn01.rcu(|map| {
            let mut map = HashMap::clone(map);
            map.remove(name.as_str());
            map
        });
    }

    /// The TLS-ALPN-01 certificate for a lower-case name, if published.
    pub fn tls_alpn01(&self, name: &str) -> Option<Arc<CertifiedKey>> {
        self.tls_alpn01.load().get(name).cloned()
    }
}

// === impl ChallengeResponder ===

impl portcullis_acme::ChallengeResponder for ChallengeStore {
    fn publish_http01(&self, token: &str, key_authorization: &str) {
        ChallengeStore::publish_http01(self, token, key_authorization);
    }

    fn remove_http01(&self, token: &str) {
        ChallengeStore::remove_http01(self, token);
    }

    fn publish_tls_alpn01(
        &self,
        name: &str,
        certificate: rustls_pki_types::CertificateDer<'static>,
        key: rustls_pki_types::PrivateKeyDer<'static>,
    ) -> Result<(), portcullis_acme::Error> {
        // Built with `CertifiedKey::new`: the parsing constructors refuse the
        // critical acmeIdentifier extension RFC 8737 requires.
        let signing_key = crate::default_crypto_provider()
            .key_provider
            .load_private_key(key)
            .map_err(|e| portcullis_acme::Error::Material(format!("challenge key: {e}")))?;
        let certified = CertifiedKey::new(vec![certificate], signing_key);
        ChallengeStore::publish_tls_alpn01(self, name, Arc::new(certified));
        Ok(())
    }

    fn remove_tls_alpn01(&self, name: &str) {
        ChallengeStore::remove_tls_alpn01(self, name);
    }
}
