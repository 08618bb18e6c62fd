//! The background renewal sweep.

use std::time::Duration;

use portcullis_config::model::CertStatus;
use portcullis_config::store::Expect;

use super::Manager;
use crate::window::is_due;
use crate::{unix_now, Error};

impl Manager {
    /// One sweep: starts renewal of every due certificate and retries failed
    /// ones whose backoff has passed. Returns how many it started.
    pub async fn renew_due(&self) -> Result<usize, Error> {
        let now = unix_now();
        let renew_before = self.renew_before();
        let mut started = 0;
        for mut record in self.list().await? {
            if !record.auto_renew || record.retry_after.is_some_and(|t| t > now) {
                continue;
            }
            if record.status == CertStatus::Valid {
                self.refresh_renewal_window(&mut record).await;
            }
            let next = match (record.status, record.not_before, record.not_after) {
                (CertStatus::Valid, Some(before), Some(after))
                    if is_due(now, before, after, renew_before, record.ari_window_start) =>
                {
                    CertStatus::Renewing
                }
                (CertStatus::Failed, _, _) => CertStatus::Pending,
                _ => continue,
            };
            record.status = self.step(&record, next)?;
            record.updated_at = now;
            self.save(&record, Expect::Any).await?;
            tracing::info!(id = %record.id, status = %record.status, "renewal started");
            self.spawn(record.id.clone());
            started += 1;
        }
        Ok(started)
    }

    /// Sweeps every `acme.renew_interval` (±10 % jitter, so a fleet does not
    /// renew in lockstep) until the task is dropped.
    pub fn spawn_renewal(&self) -> tokio::task::JoinHandle<()> {
        let manager = self.clone();
        tokio::spawn(async move {
            loop {
                if let Err(error) = manager.renew_due().await {
                    tracing::error!(%error, "renewal sweep failed");
                }
                let interval = manager.inner.settings.renew_interval;
                let jitter = rand::random::<f64>() * 0.2 - 0.1;
                tokio::time::sleep(
                    interval
                        .mul_f64(1.0 + jitter)
                        .max(Duration::from_millis(100)),
                )
                .await;
            }
        })
    }
}

impl Manager {
    /// RFC 9773: asks the CA for its suggested renewal window and records a
    /// uniformly random point inside it. Silent when the CA has no ARI
    /// (instant-acme answers `Unsupported` without a request).
    async fn refresh_renewal_window(
        &self,
        record: &mut portcullis_config::model::CertificateRecord,
    ) {
        let Some(issuer_name) = record.issued_by.as_deref() else {
            return;
        };
        let Some(issuer) = self.inner.settings.issuer(issuer_name) else {
            return;
        };
        if !matches!(
            issuer.kind,
            portcullis_config::settings::IssuerKind::Acme { .. }
        ) {
            return;
        }
        let Some(identifier) = record
            .chain_pem
            .as_deref()
            .and_then(crate::material::ari_identifier)
        else {
            return;
        };
        let account = match self
            .inner
            .accounts
            .get(
                issuer,
                record.acme_email.as_deref(),
                &self.inner.secrets,
                self.inner.store.as_ref(),
            )
            .await
        {
            Ok(account) => account,
            Err(error) => {
                tracing::debug!(id = %record.id, %error, "no account for renewal information");
                return;
            }
        };
        match account.renewal_info(&identifier).await {
            Ok((info, _retry_after)) => {
                let start = info.suggested_window.start.unix_timestamp();
                let end = info.suggested_window.end.unix_timestamp().max(start);
                let chosen = start + ((end - start) as f64 * rand::random::<f64>()) as i64;
                if record.ari_window_start.is_none_or(|t| t < start || t > end) {
                    record.ari_window_start = Some(chosen);
                    if let Err(error) = self.save(record, Expect::Any).await {
                        tracing::warn!(id = %record.id, %error, "could not store the renewal window");
                    }
                }
            }
            Err(instant_acme::Error::Unsupported(_)) => {}
            Err(error) => {
                tracing::debug!(id = %record.id, %error, "renewal information unavailable")
            }
        }
    }
}
