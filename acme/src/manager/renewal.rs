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
