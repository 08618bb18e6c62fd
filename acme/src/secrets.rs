//! Secrets at rest: private keys of certificates, ACME accounts and the
//! internal CA.
//!
//! Each secret is sealed with XChaCha20-Poly1305 under one 256-bit key and
//! stored as an opaque entry in the store; its label is bound in as
//! associated data, so a ciphertext copied to another label does not open.
//! The key comes from a file created with mode 0600 on first start, or from
//! the environment (for fleets, where every node must hold the same key).
//! Nothing here formats secret bytes into an error or a log line.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use portcullis_config::store::{space, Expect};
use portcullis_config::Store;
use zeroize::Zeroizing;

use crate::Error;

/// Format byte in front of every sealed value, so the scheme can change later.
const FORMAT_V1: u8 = 1;
const NONCE_LEN: usize = 24;

/// The key that seals secrets. Zeroed when dropped.
pub struct SecretKey(Zeroizing<[u8; 32]>);

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey(..)")
    }
}

impl SecretKey {
    /// Reads the key file, or creates it (mode 0600, 32 random bytes in base64).
    pub fn load_or_create(path: &Path) -> Result<Self, Error> {
        match std::fs::read_to_string(path) {
            Ok(text) => {
                warn_if_readable_by_others(path);
                Self::from_base64(text.trim()).map_err(|_| {
                    Error::Secret(format!(
                        "{} does not hold a base64 32-byte key; restore it from backup (secrets sealed with another key cannot be opened)",
                        path.display()
                    ))
                })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Self::create(path),
            Err(e) => Err(Error::Secret(format!(
                "could not read {}: {e}",
                path.display()
            ))),
        }
    }

    /// Parses a base64 (standard alphabet) 32-byte key, as given in `PORTCULLIS_SECRET_KEY`.
    pub fn from_base64(text: &str) -> Result<Self, Error> {
        let bytes = Zeroizing::new(STANDARD.decode(text.trim()).map_err(|_| {
            Error::Secret(
                "the secret key is not base64; generate one with `openssl rand -base64 32`".into(),
            )
        })?);
        let array: [u8; 32] = bytes.as_slice().try_into().map_err(|_| {
            Error::Secret(
                "the secret key must be 32 bytes; generate one with `openssl rand -base64 32`"
                    .into(),
            )
        })?;
        Ok(Self(Zeroizing::new(array)))
    }

    fn create(path: &Path) -> Result<Self, Error> {
        use std::os::unix::fs::OpenOptionsExt;
        let key = XChaCha20Poly1305::generate_key(&mut OsRng);
        let mut array = Zeroizing::new([0u8; 32]);
        array.copy_from_slice(&key);
        let encoded = Zeroizing::new(STANDARD.encode(array.as_slice()));
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| Error::Secret(format!("could not create {}: {e}", path.display())))?;
        file.write_all(encoded.as_bytes())
            .and_then(|()| file.write_all(b"\n"))
            .and_then(|()| file.sync_all())
            .map_err(|e| Error::Secret(format!("could not write {}: {e}", path.display())))?;
        tracing::info!(path = %path.display(), "created the secret-store key; back it up: without it no stored private key can be read");
        Ok(Self(array))
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new(self.0.as_slice().into())
    }
}

fn warn_if_readable_by_others(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(path) {
        if meta.permissions().mode() & 0o077 != 0 {
            tracing::warn!(path = %path.display(), "the secret key file is readable by other users; run chmod 600 on it");
        }
    }
}

/// Sealed secrets in the store, by label.
#[derive(Clone)]
pub struct Secrets {
    key: Arc<SecretKey>,
    store: Arc<dyn Store>,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secrets(..)")
    }
}

impl Secrets {
    /// Secrets sealed with `key`, kept in `store`.
    pub fn new(key: SecretKey, store: Arc<dyn Store>) -> Self {
        Self {
            key: Arc::new(key),
            store,
        }
    }

    /// Encrypts `plaintext` for `label`: format byte, nonce, ciphertext and tag.
    pub fn seal(&self, label: &str, plaintext: &[u8]) -> Result<Vec<u8>, Error> {
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let sealed = self
            .key
            .cipher()
            .encrypt(
                &nonce,
                Payload {
                    msg: plaintext,
                    aad: label.as_bytes(),
                },
            )
            .map_err(|_| Error::Secret(format!("could not seal {label}")))?;
        let mut out = Vec::with_capacity(1 + NONCE_LEN + sealed.len());
        out.push(FORMAT_V1);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    /// Decrypts what [`Secrets::seal`] produced for the same label.
    pub fn open(&self, label: &str, sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, Error> {
        let refused = || {
            Error::Secret(format!(
                "{label} cannot be opened: it was sealed with another key or is damaged"
            ))
        };
        let (format, rest) = sealed.split_first().ok_or_else(refused)?;
        if *format != FORMAT_V1 || rest.len() < NONCE_LEN {
            return Err(refused());
        }
        let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
        self.key
            .cipher()
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: label.as_bytes(),
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| refused())
    }

    /// Seals and stores a secret.
    pub async fn put(&self, label: &str, plaintext: &[u8]) -> Result<(), Error> {
        let sealed = self.seal(label, plaintext)?;
        self.store
            .put(space::SECRETS, label, sealed, Expect::Any)
            .await?;
        Ok(())
    }

    /// Loads and opens a secret; `None` when no secret has this label.
    pub async fn get(&self, label: &str) -> Result<Option<Zeroizing<Vec<u8>>>, Error> {
        match self.store.get(space::SECRETS, label).await? {
            Some(entry) => self.open(label, &entry.value).map(Some),
            None => Ok(None),
        }
    }

    /// Removes a secret; a missing one is not an error.
    pub async fn delete(&self, label: &str) -> Result<(), Error> {
        match self.store.delete(space::SECRETS, label, Expect::Any).await {
            Ok(_) | Err(portcullis_config::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use portcullis_config::SqliteStore;

    fn secrets() -> (Secrets, Arc<dyn Store>) {
        let store: Arc<dyn Store> = Arc::new(SqliteStore::in_memory().unwrap());
        let key = SecretKey::from_base64(&STANDARD.encode([7u8; 32])).unwrap();
        (Secrets::new(key, Arc::clone(&store)), store)
    }

    #[tokio::test]
    async fn sealed_at_rest_and_bound_to_the_label() {
        let (secrets, store) = secrets();
        secrets
            .put("cert/1", b"-----BEGIN PRIVATE KEY----- hush")
            .await
            .unwrap();
        let raw = store
            .get(space::SECRETS, "cert/1")
            .await
            .unwrap()
            .unwrap()
            .value;
        assert!(!raw.windows(4).any(|w| w == b"hush"), "stored in clear");
        assert_eq!(
            secrets.get("cert/1").await.unwrap().unwrap().as_slice(),
            b"-----BEGIN PRIVATE KEY----- hush"
        );
        // Moved to another label, it no longer opens.
        store
            .put(space::SECRETS, "cert/2", raw, Expect::Any)
            .await
            .unwrap();
        let err = secrets.get("cert/2").await.unwrap_err().to_string();
        assert!(!err.contains("hush"));
        assert!(secrets.get("missing").await.unwrap().is_none());
        secrets.delete("cert/1").await.unwrap();
        secrets.delete("cert/1").await.unwrap();
    }

    #[tokio::test]
    async fn another_key_cannot_open() {
        let (secrets, store) = secrets();
        secrets.put("k", b"secret").await.unwrap();
        let other = Secrets::new(
            SecretKey::from_base64(&STANDARD.encode([8u8; 32])).unwrap(),
            store,
        );
        assert!(other.get("k").await.is_err());
    }

    #[test]
    fn key_file_is_created_0600_and_reloaded() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret.key");
        let first = SecretKey::load_or_create(&path).unwrap();
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let again = SecretKey::load_or_create(&path).unwrap();
        assert_eq!(first.0.as_slice(), again.0.as_slice());
        assert!(SecretKey::from_base64("c2hvcnQ=").is_err());
    }
}
