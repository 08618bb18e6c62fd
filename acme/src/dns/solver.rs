//! Solving DNS-01 challenges for one order: write the TXT records, wait
//! until the authoritative servers show them, remove them afterwards.
//!
//! Every record is written to a journal in the store *before* it is created
//! at the provider and removed from it only after the provider confirms the
//! deletion, so records left behind by a crash are removed at the next
//! start ([`clean_up_leftovers`]).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use portcullis_config::store::{space, Expect};
use portcullis_config::Store;
use serde::{Deserialize, Serialize};

use super::credentials::{Credentials, DnsCredential};
use super::provider::DnsProvider;
use super::resolver::{Resolver, Zone};
use crate::Error;

/// Poll interval of the propagation check.
const PROPAGATION_INTERVAL: Duration = Duration::from_millis(250);

/// One TXT record this process wrote, as kept in the journal.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Written {
    credential_id: String,
    zone: String,
    fqdn: String,
    value: String,
    created_at: i64,
}

/// A record written for this order.
pub(crate) struct Presented {
    journal_key: String,
    record: Written,
    zone: Zone,
    provider: Arc<dyn DnsProvider>,
}

/// DNS-01 for one order.
pub(crate) struct Dns01 {
    pub(crate) credentials: Credentials,
    pub(crate) credential_id: String,
    pub(crate) store: Arc<dyn Store>,
    pub(crate) resolvers: Vec<SocketAddr>,
    pub(crate) check_propagation: bool,
    pub(crate) propagation_timeout: Duration,
}

impl Dns01 {
    /// The credential and provider to use, validated (again if stale) before
    /// any ACME order exists.
    pub(crate) async fn check_credential(&self) -> Result<DnsCredential, Error> {
        self.credentials
            .usable(&self.credential_id)
            .await
            .map(|(record, _)| record)
    }

    /// Writes the TXT `value` for identifier `name` (`*.` stripped), at the
    /// target of a `_acme-challenge` CNAME when there is one (delegated validation).
    pub(crate) async fn present(&self, name: &str, value: &str) -> Result<Presented, Error> {
        let resolver = Resolver::new(&self.resolvers).map_err(|e| Error::Acme(e.to_string()))?;
        let base = name.trim_start_matches("*.");
        let challenge = format!("_acme-challenge.{base}");
        let fqdn = resolver
            .resolve_cname_chain(&challenge)
            .await
            .map_err(|e| Error::Acme(e.to_string()))?;
        if fqdn != challenge {
            tracing::info!(name, target = %fqdn, "_acme-challenge is delegated by CNAME; writing at the target");
        }
        let zone = resolver
            .find_zone(&fqdn)
            .await
            .map_err(|e| Error::Acme(e.to_string()))?;
        let (credential, provider) = self.provider_for(&zone.name).await?;
        let record = Written {
            credential_id: credential.id.clone(),
            zone: zone.name.clone(),
            fqdn: fqdn.clone(),
            value: value.to_owned(),
            created_at: crate::unix_now(),
        };
        let journal_key = crate::material::hex(&rand::random::<[u8; 12]>());
        self.store
            .put(
                space::DNS_CLEANUP,
                &journal_key,
                serde_json::to_vec(&record).unwrap_or_default(),
                Expect::Absent,
            )
            .await?;
        let provider: Arc<dyn DnsProvider> = Arc::from(provider);
        if let Err(error) = provider.present(&zone.name, &fqdn, value).await {
            let _ = self
                .store
                .delete(space::DNS_CLEANUP, &journal_key, Expect::Any)
                .await;
            return Err(Error::Acme(format!(
                "could not write the TXT record at {fqdn}: {error}"
            )));
        }
        tracing::info!(%fqdn, zone = %zone.name, provider = provider.name(), "DNS-01 TXT record written");
        Ok(Presented {
            journal_key,
            record,
            zone,
            provider,
        })
    }

    /// Waits until every record is visible on its zone's authoritative
    /// servers (or the configured resolvers), unless the check is disabled.
    pub(crate) async fn wait(&self, presented: &[Presented]) -> Result<(), Error> {
        if !self.check_propagation {
            return Ok(());
        }
        let resolver = Resolver::new(&self.resolvers).map_err(|e| Error::Acme(e.to_string()))?;
        for item in presented {
            resolver
                .wait_for_txt(
                    &item.zone,
                    &item.record.fqdn,
                    &item.record.value,
                    self.propagation_timeout,
                    PROPAGATION_INTERVAL,
                )
                .await
                .map_err(|e| Error::Acme(format!("propagation check: {e}")))?;
        }
        Ok(())
    }

    /// Removes the records (best effort: failures stay in the journal and
    /// are retried at the next start).
    pub(crate) async fn cleanup(&self, presented: Vec<Presented>) {
        for item in presented {
            match item
                .provider
                .cleanup(&item.record.zone, &item.record.fqdn, &item.record.value)
                .await
            {
                Ok(()) => {
                    let _ = self
                        .store
                        .delete(space::DNS_CLEANUP, &item.journal_key, Expect::Any)
                        .await;
                }
                Err(error) => {
                    tracing::warn!(fqdn = %item.record.fqdn, %error, "could not remove a DNS-01 TXT record; will retry at the next start")
                }
            }
        }
    }

    /// The primary credential when it can see `zone` (or lists no zones),
    /// else another valid credential that can.
    async fn provider_for(
        &self,
        zone: &str,
    ) -> Result<(DnsCredential, Box<dyn DnsProvider>), Error> {
        let (primary, provider) = self.credentials.usable(&self.credential_id).await?;
        if primary.zones.is_empty() || primary.zones.iter().any(|z| z == zone) {
            return Ok((primary, provider));
        }
        for other in self.credentials.list().await? {
            if other.id != primary.id && other.zones.iter().any(|z| z == zone) {
                if let Ok(found) = self.credentials.usable(&other.id).await {
                    return Ok(found);
                }
            }
        }
        Err(Error::InvalidRequest {
            field: "dns_credential_id",
            message: format!(
                "no DNS credential can write zone \"{zone}\" (\"{}\" sees: {}); add a credential for that zone",
                primary.name,
                primary.zones.join(", ")
            ),
        })
    }
}

/// Removes TXT records a previous process wrote and did not remove.
pub(crate) async fn clean_up_leftovers(
    credentials: &Credentials,
    store: &dyn Store,
) -> Result<usize, Error> {
    let mut removed = 0;
    for entry in store.list(space::DNS_CLEANUP).await? {
        let Ok(record) = serde_json::from_slice::<Written>(&entry.value) else {
            let _ = store
                .delete(space::DNS_CLEANUP, &entry.key, Expect::Any)
                .await;
            continue;
        };
        let provider = match credentials.usable(&record.credential_id).await {
            Ok((_, provider)) => provider,
            Err(error) => {
                tracing::warn!(fqdn = %record.fqdn, %error, "cannot clean up a leftover DNS-01 record yet");
                continue;
            }
        };
        match provider
            .cleanup(&record.zone, &record.fqdn, &record.value)
            .await
        {
            Ok(()) => {
                store
                    .delete(space::DNS_CLEANUP, &entry.key, Expect::Any)
                    .await?;
                tracing::info!(fqdn = %record.fqdn, "removed a DNS-01 record left by an earlier run");
                removed += 1;
            }
            Err(error) => {
                tracing::warn!(fqdn = %record.fqdn, %error, "leftover DNS-01 record not removed yet")
            }
        }
    }
    Ok(removed)
}
