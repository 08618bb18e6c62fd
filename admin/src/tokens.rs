//! Bearer tokens for the admin API, stored hashed.
//!
//! A token is 32 random bytes shown once (written to a 0600 file for the
//! embedded default); the store keeps only its SHA-256, so a copy of the
//! database does not grant access.

use std::io::Write;
use std::path::Path;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use portcullis_config::store::{space, Expect};
use portcullis_config::Store;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::Error;

/// Read routes and plans.
pub const INGRESS_READ: &str = "ingress.read";
/// Expose services, compose tables.
pub const INGRESS_MANAGE: &str = "ingress.manage";
/// Approve or reject plans.
pub const PLANS_APPROVE: &str = "plans.approve";
/// Manage tenant domains.
pub const DOMAINS_MANAGE: &str = "domains.manage";
/// Read the audit log.
pub const AUDIT_READ: &str = "audit.read";
/// Read certificates.
pub const ACME_READ: &str = "acme.read";
/// Request, renew and revoke certificates.
pub const ACME_MANAGE: &str = "acme.manage";
/// Every permission the API knows, held by the first admin token.
pub const ALL_PERMISSIONS: &[&str] = &[
    INGRESS_READ,
    INGRESS_MANAGE,
    ACME_READ,
    ACME_MANAGE,
    PLANS_APPROVE,
    DOMAINS_MANAGE,
    AUDIT_READ,
];
/// Name of the token created on first start.
pub const ADMIN_TOKEN_NAME: &str = "admin";
/// Prefix that makes a leaked token easy to recognise in secret scanners.
const TOKEN_PREFIX: &str = "pcs_";

/// A stored token: who it is and what it may do.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRecord {
    /// Shown in the audit log.
    pub name: String,
    /// Lower-case hex SHA-256 of the token.
    pub sha256: String,
    /// Permissions held.
    pub permissions: Vec<String>,
    /// Unix seconds.
    pub created_at: i64,
    /// When set, the token sees only this tenant's domain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
}

impl TokenRecord {
    /// Whether this token holds `permission`.
    pub fn allows(&self, permission: &str) -> bool {
        self.permissions.iter().any(|p| p == permission)
    }

    /// Whether this token may create, see or revoke a token with
    /// `permissions` limited to `tenant`: only one it could be itself, so
    /// that no token leads to more power than it has.
    pub fn reaches<'a>(
        &self,
        permissions: &'a [String],
        tenant: Option<&str>,
    ) -> Result<(), Beyond<'a>> {
        if let Some(own) = self.tenant.as_deref() {
            if tenant != Some(own) {
                return Err(Beyond::Tenant);
            }
        }
        match permissions.iter().find(|p| !self.allows(p)) {
            Some(missing) => Err(Beyond::Permission(missing)),
            None => Ok(()),
        }
    }
}

/// Why a token may not act on another.
#[derive(Debug, PartialEq, Eq)]
pub enum Beyond<'a> {
    /// The other token holds this permission and the caller does not.
    Permission(&'a str),
    /// The caller is limited to a tenant, and the other token is not
    /// limited to the same one.
    Tenant,
}

/// SHA-256 of a presented token, hex.
pub fn hash(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A new random token.
pub fn generate() -> String {
    format!(
        "{TOKEN_PREFIX}{}",
        URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
    )
}

/// Makes sure the admin token exists: on first start it is generated,
/// written to `path` (mode 0600) and its hash stored. Logs the path, never
/// the token.
pub async fn ensure_admin_token(store: &dyn Store, path: &Path) -> Result<(), Error> {
    let token = match std::fs::read_to_string(path) {
        Ok(text) => text.trim().to_owned(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let token = generate();
            write_private(path, &token)?;
            tracing::info!(path = %path.display(), "admin token written");
            token
        }
        Err(e) => {
            return Err(Error::Token(format!(
                "could not read {}: {e}",
                path.display()
            )))
        }
    };
    let record = TokenRecord {
        name: ADMIN_TOKEN_NAME.to_owned(),
        sha256: hash(&token),
        permissions: ALL_PERMISSIONS.iter().map(|p| (*p).to_owned()).collect(),
        created_at: portcullis_acme::unix_now(),
        tenant: None,
    };
    let current = store.get(space::TOKENS, ADMIN_TOKEN_NAME).await?;
    let unchanged = current
        .as_ref()
        .and_then(|e| serde_json::from_slice::<TokenRecord>(&e.value).ok())
        .is_some_and(|r| r.sha256 == record.sha256 && r.permissions == record.permissions);
    if !unchanged {
        store
            .put(
                space::TOKENS,
                ADMIN_TOKEN_NAME,
                serde_json::to_vec(&record).unwrap_or_default(),
                Expect::Any,
            )
            .await?;
    }
    Ok(())
}

fn write_private(path: &Path, token: &str) -> Result<(), Error> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| Error::Token(format!("could not create {}: {e}", path.display())))?;
    writeln!(file, "{token}")
        .map_err(|e| Error::Token(format!("could not write {}: {e}", path.display())))
}

/// The token whose hash matches `presented`, if any.
pub async fn lookup(store: &dyn Store, presented: &str) -> Result<Option<TokenRecord>, Error> {
    let wanted = hash(presented);
    for entry in store.list(space::TOKENS).await? {
        if let Ok(record) = serde_json::from_slice::<TokenRecord>(&entry.value) {
            if constant_time_eq(record.sha256.as_bytes(), wanted.as_bytes()) {
                return Ok(Some(record));
            }
        }
    }
    Ok(None)
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
