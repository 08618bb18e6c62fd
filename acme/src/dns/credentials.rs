//! DNS provider credentials: stored once, validated, used for DNS-01.
//!
//! The record (provider, plain settings, status, the zones it can see) is
//! public; the secret fields go only to the secret store, sealed, under
//! `dns-credential/<id>`. A credential validated more than a day ago is
//! validated again before it solves a challenge, so a revoked API token
//! fails the issuance up front with the provider's own message instead of
//! half-way through an order.

use std::collections::BTreeMap;

use portcullis_config::store::{space, Expect};
use portcullis_config::Store;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::provider::{DnsProvider, Fields};
use super::providers;
use crate::secrets::Secrets;
use crate::{unix_now, Error};

/// A credential older than this is validated again before use.
pub const REVALIDATE_AFTER_SECONDS: i64 = 24 * 3600;

/// Where a credential stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum CredentialStatus {
    /// Never checked.
    Unvalidated,
    /// The provider accepted it.
    Valid,
    /// The provider refused it; `status_message` says why.
    Invalid,
}

/// A stored credential, without its secrets.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DnsCredential {
    /// Stable id.
    pub id: String,
    /// Operator's name for it.
    pub name: String,
    /// Provider name.
    pub provider: String,
    /// Whether it works.
    pub status: CredentialStatus,
    /// Last validation, Unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_validated_at: Option<i64>,
    /// The provider's message from the last failed validation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_message: Option<String>,
    /// Plain settings (base URL, server, project...).
    #[serde(default)]
    pub config: BTreeMap<String, String>,
    /// Zones the credential could see at the last validation.
    #[serde(default)]
    pub zones: Vec<String>,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds.
    pub updated_at: i64,
}

/// A request to store a credential.
#[derive(Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCredential {
    /// Operator's name for it.
    pub name: String,
    /// Provider name.
    pub provider: String,
    /// Plain settings.
    #[serde(default)]
    pub config: BTreeMap<String, String>,
    /// Secret fields.
    #[serde(default)]
    pub secrets: BTreeMap<String, String>,
}

impl std::fmt::Debug for NewCredential {
    /// Never prints secret values.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewCredential")
            .field("name", &self.name)
            .field("provider", &self.provider)
            .field("config", &self.config)
            .field("secrets", &self.secrets.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// Stored credentials.
#[derive(Clone)]
pub struct Credentials {
    store: std::sync::Arc<dyn Store>,
    secrets: Secrets,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Credentials(..)")
    }
}

fn label(id: &str) -> String {
    format!("dns-credential/{id}")
}

impl Credentials {
    /// Credentials in `store`, secrets sealed by `secrets`.
    pub fn new(store: std::sync::Arc<dyn Store>, secrets: Secrets) -> Self {
        Self { store, secrets }
    }

    /// Checks the fields against the provider, stores the credential, then
    /// validates it (the result is in the returned record's status).
    pub async fn create(&self, new: NewCredential) -> Result<DnsCredential, Error> {
        let invalid =
            |field: &'static str, message: String| Error::InvalidRequest { field, message };
        let name_ok = !new.name.is_empty()
            && new.name.len() <= 64
            && new
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        if !name_ok {
            return Err(invalid(
                "name",
                "1-64 letters, digits, '-', '_' or '.'".into(),
            ));
        }
        let spec = providers::spec(&new.provider).ok_or_else(|| {
            let known: Vec<&str> = providers::specs().map(|s| s.name).collect();
            invalid(
                "provider",
                format!(
                    "\"{}\" is not supported; use one of: {}",
                    new.provider,
                    known.join(", ")
                ),
            )
        })?;
        for field in spec.secrets {
            if new.secrets.get(*field).is_none_or(|v| v.is_empty()) {
                return Err(invalid(
                    "secrets",
                    format!("`{field}` is required for {}", spec.name),
                ));
            }
        }
        if let Some(extra) = new
            .secrets
            .keys()
            .find(|k| !spec.secrets.contains(&k.as_str()))
        {
            return Err(invalid(
                "secrets",
                format!(
                    "`{extra}` is not a {} secret; expected: {}",
                    spec.name,
                    spec.secrets.join(", ")
                ),
            ));
        }
        for field in spec.required {
            if new.config.get(*field).is_none_or(|v| v.is_empty()) {
                return Err(invalid(
                    "config",
                    format!("`{field}` is required for {}", spec.name),
                ));
            }
        }
        if let Some(extra) = new
            .config
            .keys()
            .find(|k| !spec.required.contains(&k.as_str()) && !spec.optional.contains(&k.as_str()))
        {
            let allowed: Vec<&str> = spec.required.iter().chain(spec.optional).copied().collect();
            return Err(invalid(
                "config",
                format!(
                    "`{extra}` is not a {} setting; allowed: {}",
                    spec.name,
                    allowed.join(", ")
                ),
            ));
        }
        if self.list().await?.iter().any(|c| c.name == new.name) {
            return Err(invalid(
                "name",
                format!("a credential named \"{}\" exists", new.name),
            ));
        }
        let now = unix_now();
        let record = DnsCredential {
            id: crate::material::hex(&rand::random::<[u8; 12]>()),
            name: new.name,
            provider: spec.name.to_owned(),
            status: CredentialStatus::Unvalidated,
            last_validated_at: None,
            status_message: None,
            config: new.config,
            zones: Vec::new(),
            created_at: now,
            updated_at: now,
        };
        let sealed = Zeroizing::new(
            serde_json::to_vec(&new.secrets).map_err(|e| Error::Secret(e.to_string()))?,
        );
        self.secrets.put(&label(&record.id), &sealed).await?;
        self.save(&record, Expect::Absent).await?;
        self.validate(&record.id).await
    }

    /// Every credential.
    pub async fn list(&self) -> Result<Vec<DnsCredential>, Error> {
        let mut all: Vec<DnsCredential> = self
            .store
            .list(space::DNS_CREDENTIALS)
            .await?
            .iter()
            .filter_map(|e| serde_json::from_slice(&e.value).ok())
            .collect();
        all.sort_by(|a, b| {
            a.created_at
                .cmp(&b.created_at)
                .then_with(|| a.id.cmp(&b.id))
        });
        Ok(all)
    }

    /// One credential.
    pub async fn get(&self, id: &str) -> Result<DnsCredential, Error> {
        let entry = self
            .store
            .get(space::DNS_CREDENTIALS, id)
            .await?
            .ok_or_else(|| Error::NotFound { id: id.to_owned() })?;
        serde_json::from_slice(&entry.value)
            .map_err(|e| Error::Material(format!("credential {id}: {e}")))
    }

    /// Asks the provider whether the credential works ("test connectivity")
    /// and records the outcome.
    pub async fn validate(&self, id: &str) -> Result<DnsCredential, Error> {
        let mut record = self.get(id).await?;
        let outcome = match self.provider(&record).await {
            Ok(provider) => provider.validate().await.map_err(|e| e.to_string()),
            Err(error) => Err(error.to_string()),
        };
        let now = unix_now();
        record.last_validated_at = Some(now);
        record.updated_at = now;
        match outcome {
            Ok(zones) => {
                record.status = CredentialStatus::Valid;
                record.status_message = None;
                record.zones = zones;
            }
            Err(message) => {
                record.status = CredentialStatus::Invalid;
                record.status_message = Some(message);
            }
        }
        self.save(&record, Expect::Any).await?;
        tracing::info!(id = %record.id, provider = %record.provider, status = ?record.status, "DNS credential validated");
        Ok(record)
    }

    /// Removes a credential and its secrets.
    pub async fn remove(&self, id: &str) -> Result<(), Error> {
        self.get(id).await?;
        self.store
            .delete(space::DNS_CREDENTIALS, id, Expect::Any)
            .await?;
        self.secrets.delete(&label(id)).await
    }

    /// A provider for solving a challenge: the credential is validated again
    /// when its last validation is over a day old, and refused when invalid.
    pub async fn usable(&self, id: &str) -> Result<(DnsCredential, Box<dyn DnsProvider>), Error> {
        let mut record = self.get(id).await?;
        let stale = record
            .last_validated_at
            .is_none_or(|t| unix_now() - t > REVALIDATE_AFTER_SECONDS);
        if stale || record.status != CredentialStatus::Valid {
            record = self.validate(id).await?;
        }
        if record.status != CredentialStatus::Valid {
            return Err(Error::InvalidRequest {
                field: "dns_credential_id",
                message: format!(
                    "DNS credential \"{}\" ({}) is invalid: {}; fix it and run validate",
                    record.name,
                    record.provider,
                    record.status_message.as_deref().unwrap_or("no message")
                ),
            });
        }
        let provider = self.provider(&record).await?;
        Ok((record, provider))
    }

    async fn provider(&self, record: &DnsCredential) -> Result<Box<dyn DnsProvider>, Error> {
        let sealed = self.secrets.get(&label(&record.id)).await?.ok_or_else(|| {
            Error::Secret(format!(
                "secrets of DNS credential {} are missing",
                record.id
            ))
        })?;
        let secrets: BTreeMap<String, String> = serde_json::from_slice(&sealed).map_err(|_| {
            Error::Secret(format!(
                "secrets of DNS credential {} are unreadable",
                record.id
            ))
        })?;
        let fields = Fields {
            config: record.config.clone(),
            secrets,
        };
        providers::build(&record.provider, &fields).map_err(|e| Error::Issuer {
            issuer: record.provider.clone(),
            message: e.to_string(),
        })
    }

    async fn save(&self, record: &DnsCredential, expect: Expect) -> Result<(), Error> {
        let value = serde_json::to_vec(record).map_err(|e| Error::Material(e.to_string()))?;
        self.store
            .put(space::DNS_CREDENTIALS, &record.id, value, expect)
            .await?;
        Ok(())
    }
}
