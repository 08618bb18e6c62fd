//! Driving one record through issuance, with issuer fallback and retries.

use std::time::Instant;

use instant_acme::RevocationRequest;
use portcullis_config::model::{CertStatus, CertificateRecord};
use portcullis_config::settings::acme::IssuerKind;
use portcullis_config::settings::IssuerSettings;
use portcullis_config::store::Expect;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;

use super::Manager;
use crate::dns::solver::Dns01;
use crate::material::{ari_identifier, key_der, leaf_facts};
use crate::order::{self, Issued};
use crate::window::backoff_seconds;
use crate::{unix_now, Error};

/// Attempts per ACME issuer before falling back: absorbs badNonce bursts
/// (instant-acme retries a bad nonce only twice) and passing network faults.
const ATTEMPTS_PER_ISSUER: u32 = 3;

impl Manager {
    /// Moves a record from pending (or issuing/renewing after a restart) to
    /// valid or failed.
    pub(super) async fn drive(&self, id: &str) -> Result<(), Error> {
        let mut record = self.get(id).await?;
        match record.status {
            CertStatus::Pending => {
                record.status = self.step(&record, CertStatus::Issuing)?;
                record.updated_at = unix_now();
                self.save(&record, Expect::Any).await?;
            }
            CertStatus::Issuing | CertStatus::Renewing => {}
            _ => return Ok(()),
        }
        let started = Instant::now();
        match self.obtain(&record).await {
            Ok((issued, issuer)) => {
                self.inner.issuance_seconds.observe(started.elapsed());
                self.store_issued(record, issued, issuer, started).await
            }
            Err(error) => {
                self.record_failure(&record.issuer);
                self.store_failure(record, &error).await
            }
        }
    }

    /// Tries the record's issuer, then its fallbacks in order.
    async fn obtain(&self, record: &CertificateRecord) -> Result<(Issued, String), Error> {
        let first = self
            .inner
            .settings
            .issuer(&record.issuer)
            .ok_or_else(|| Error::Issuer {
                issuer: record.issuer.clone(),
                message: "no longer configured".into(),
            })?;
        let mut chain = vec![first];
        chain.extend(
            first
                .fallback
                .iter()
                .filter_map(|n| self.inner.settings.issuer(n)),
        );
        let mut failures = Vec::new();
        for issuer in chain {
            match self.obtain_from(issuer, record).await {
                Ok(issued) => return Ok((issued, issuer.name.clone())),
                Err(error) => {
                    tracing::warn!(id = %record.id, issuer = %issuer.name, %error, "issuance failed");
                    failures.push((issuer.name.clone(), error));
                }
            }
        }
        // One issuer: its message verbatim. Several: each, in order.
        if failures.len() == 1 {
            return Err(failures.remove(0).1);
        }
        Err(Error::Acme(
            failures
                .iter()
                .map(|(issuer, error)| format!("{issuer}: {error}"))
                .collect::<Vec<_>>()
                .join("; then "),
        ))
    }

    async fn obtain_from(
        &self,
        issuer: &IssuerSettings,
        record: &CertificateRecord,
    ) -> Result<Issued, Error> {
        let names = record.names();
        let IssuerKind::Acme { profile, .. } = &issuer.kind else {
            let (chain_pem, key) = self.internal_ca().await?.issue(&names)?;
            return Ok(Issued { chain_pem, key });
        };
        let email = record.acme_email.as_deref();
        let mut last = None;
        for attempt in 1..=ATTEMPTS_PER_ISSUER {
            let account = self
                .inner
                .accounts
                .get(
                    issuer,
                    email,
                    &self.inner.secrets,
                    self.inner.store.as_ref(),
                )
                .await;
            let outcome = match account {
                Ok(account) => {
                    if let Some(profile) = profile {
                        let offered: Vec<String> =
                            account.profiles().map(|p| p.name.to_owned()).collect();
                        if !offered.iter().any(|p| p == profile) {
                            return Err(Error::Issuer {
                                issuer: issuer.name.clone(),
                                message: format!(
                                    "profile \"{profile}\" is not offered by the directory (it offers: {}); change or remove `profile`",
                                    if offered.is_empty() { "none".to_owned() } else { offered.join(", ") }
                                ),
                            });
                        }
                    }
                    // Only a CA that gave us a renewal window speaks ARI.
                    let replaces = (record.status == CertStatus::Renewing
                        && record.ari_window_start.is_some())
                    .then(|| record.chain_pem.as_deref().and_then(ari_identifier))
                    .flatten();
                    let dns = self.dns01(record);
                    if let Some(dns) = &dns {
                        // An invalid credential fails here, before any order exists.
                        dns.check_credential().await?;
                    }
                    order::run(
                        &account,
                        &names,
                        record.challenge_type,
                        profile.as_deref(),
                        replaces,
                        self.inner.responder.as_ref(),
                        dns.as_ref(),
                    )
                    .await
                }
                Err(error) => Err(error),
            };
            match outcome {
                Ok(issued) => return Ok(issued),
                Err(Error::Acme(message)) if message.contains("accountDoesNotExist") => {
                    self.inner
                        .accounts
                        .forget(&issuer.name, email, &self.inner.secrets)
                        .await?;
                    last = Some(Error::Acme(message));
                }
                Err(error) if is_transient(&error) && attempt < ATTEMPTS_PER_ISSUER => {
                    tracing::debug!(id = %record.id, attempt, %error, "retrying order");
                    tokio::time::sleep(std::time::Duration::from_millis(200 * u64::from(attempt)))
                        .await;
                    last = Some(error);
                }
                Err(error) => return Err(error),
            }
        }
        Err(last.unwrap_or_else(|| Error::Acme("no attempt was made".into())))
    }

    fn dns01(&self, record: &CertificateRecord) -> Option<Dns01> {
        let credential_id = record.dns_credential_id.clone()?;
        (record.challenge_type == portcullis_config::model::ChallengeType::Dns01).then(|| Dns01 {
            credentials: self.inner.credentials.clone(),
            credential_id,
            store: std::sync::Arc::clone(&self.inner.store),
            resolvers: self.inner.settings.dns_resolvers.clone(),
            check_propagation: !self.inner.settings.disable_propagation_check,
            propagation_timeout: self.inner.settings.propagation_timeout,
        })
    }

    async fn store_issued(
        &self,
        mut record: CertificateRecord,
        issued: Issued,
        issuer: String,
        started: Instant,
    ) -> Result<(), Error> {
        let facts = leaf_facts(&issued.chain_pem)?;
        let label = format!("cert/{}/{}", record.id, &facts.fingerprint_sha256[..16]);
        self.inner
            .secrets
            .put(&label, &key_der(&issued.key))
            .await?;
        let old_label = record.key_label.replace(label.clone());
        record.status = self.step(&record, CertStatus::Valid)?;
        record.status_message =
            (issuer != record.issuer).then(|| format!("issued by fallback issuer {issuer}"));
        record.issued_by = Some(issuer);
        record.chain_pem = Some(issued.chain_pem);
        record.not_before = Some(facts.not_before);
        record.not_after = Some(facts.not_after);
        record.serial = Some(facts.serial);
        record.fingerprint_sha256 = Some(facts.fingerprint_sha256);
        record.failures = 0;
        record.retry_after = None;
        record.ari_window_start = None;
        record.updated_at = unix_now();
        self.save(&record, Expect::Any).await?;
        if let Some(old) = old_label.filter(|old| *old != label) {
            self.inner.secrets.delete(&old).await?;
        }
        self.notify();
        tracing::info!(
            id = %record.id,
            names = ?record.names(),
            issuer = record.issued_by.as_deref().unwrap_or_default(),
            seconds = started.elapsed().as_secs_f64(),
            "certificate valid"
        );
        Ok(())
    }

    async fn store_failure(
        &self,
        mut record: CertificateRecord,
        error: &Error,
    ) -> Result<(), Error> {
        let now = unix_now();
        let still_valid =
            record.status == CertStatus::Renewing && record.not_after.is_some_and(|t| t > now);
        record.failures = record.failures.saturating_add(1);
        let cap = i64::try_from(self.inner.settings.backoff_max.as_secs()).unwrap_or(i64::MAX);
        record.retry_after = Some(now + backoff_seconds(record.failures, cap));
        if still_valid {
            // The old certificate keeps serving; the sweep retries after the backoff.
            record.status = self.step(&record, CertStatus::Valid)?;
            record.status_message = Some(format!("renewal failed: {error}"));
        } else {
            record.status = self.step(&record, CertStatus::Failed)?;
            record.status_message = Some(error.to_string());
        }
        record.updated_at = now;
        self.save(&record, Expect::Any).await?;
        if record.status == CertStatus::Failed && record.key_label.is_some() {
            // An expired certificate must stop being served.
            self.notify();
        }
        Ok(())
    }

    /// Tells the issuer; the internal CA has no revocation list, so only the record changes.
    pub(super) async fn revoke_at_issuer(&self, record: &CertificateRecord) -> Result<(), Error> {
        let issuer_name = record.issued_by.as_deref().unwrap_or(&record.issuer);
        let Some(issuer) = self.inner.settings.issuer(issuer_name) else {
            return Err(Error::Issuer {
                issuer: issuer_name.to_owned(),
                message: "no longer configured; cannot revoke".into(),
            });
        };
        if !matches!(issuer.kind, IssuerKind::Acme { .. }) {
            return Ok(());
        }
        let chain = record.chain_pem.as_deref().unwrap_or_default();
        let leaf = CertificateDer::pem_slice_iter(chain.as_bytes())
            .next()
            .ok_or_else(|| Error::Material("no certificate to revoke".into()))?
            .map_err(|e| Error::Material(e.to_string()))?;
        let account = self
            .inner
            .accounts
            .get(
                issuer,
                record.acme_email.as_deref(),
                &self.inner.secrets,
                self.inner.store.as_ref(),
            )
            .await?;
        account
            .revoke(&RevocationRequest {
                certificate: &leaf,
                reason: None,
            })
            .await?;
        Ok(())
    }
}

/// Faults worth another attempt at the same issuer.
fn is_transient(error: &Error) -> bool {
    match error {
        Error::Acme(message) => {
            message.contains("badNonce")
                || message.contains("HTTP request failure")
                || message.contains("did not answer")
                || message.contains("timed out")
                || message.contains("serverInternal")
        }
        _ => false,
    }
}
