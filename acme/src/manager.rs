//! The certificate manager: requests, issuance, renewal, revocation.

mod issue;
mod renewal;

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};

use portcullis_config::histogram::{label, Histogram};
use portcullis_config::model::{
    CertStatus, CertificateRecord, DesiredState, Entrypoint, HostPattern,
};
use portcullis_config::settings::AcmeSettings;
use portcullis_config::store::{space, Expect};
use portcullis_config::Store;
use tokio::sync::{watch, OnceCell};
use zeroize::Zeroizing;

use crate::account::Accounts;
use crate::challenge::ChallengeResponder;
use crate::dns::credentials::Credentials;
use crate::internal_ca::InternalCa;
use crate::request::CertRequest;
use crate::secrets::Secrets;
use crate::window::is_due;
use crate::{ledger, unix_now, Error};

/// A certificate the data plane should serve now.
pub struct ServingCertificate {
    /// The record's id.
    pub id: String,
    /// PEM chain, leaf first.
    pub chain_pem: String,
    /// PKCS#8 DER private key, zeroed when dropped.
    pub key_der: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for ServingCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServingCertificate")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// Issues, renews and revokes certificates. Cheap to clone.
#[derive(Clone)]
pub struct Manager {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Manager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Manager(..)")
    }
}

struct Inner {
    settings: AcmeSettings,
    store: Arc<dyn Store>,
    secrets: Secrets,
    credentials: Credentials,
    responder: Arc<dyn ChallengeResponder>,
    internal_ca: OnceCell<InternalCa>,
    accounts: Accounts,
    /// Records with an issuance task running in this process.
    running: Mutex<HashSet<String>>,
    /// Bumped whenever the set of certificates to serve changes.
    changed: watch::Sender<u64>,
    /// Time from order start to a valid certificate.
    issuance_seconds: Histogram,
    /// Failed issuances by the issuer asked.
    failures: Mutex<BTreeMap<String, u64>>,
}

impl Manager {
    /// A manager over the store; call [`Manager::resume`] once at start.
    pub fn new(
        settings: AcmeSettings,
        store: Arc<dyn Store>,
        secrets: Secrets,
        responder: Arc<dyn ChallengeResponder>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                credentials: Credentials::new(Arc::clone(&store), secrets.clone()),
                settings,
                store,
                secrets,
                responder,
                internal_ca: OnceCell::new(),
                accounts: Accounts::default(),
                running: Mutex::new(HashSet::new()),
                changed: watch::channel(0).0,
                issuance_seconds: Histogram::default(),
                failures: Mutex::new(BTreeMap::new()),
            }),
        }
    }

    /// DNS provider credentials for dns-01.
    pub fn credentials(&self) -> &Credentials {
        &self.inner.credentials
    }

    /// The settings this manager runs with.
    pub fn settings(&self) -> &AcmeSettings {
        &self.inner.settings
    }

    /// Appends issuance metrics and per-certificate expiry in Prometheus text format.
    pub async fn render_metrics(&self, out: &mut String) {
        use std::fmt::Write;
        out.push_str(
            "# HELP portcullis_certificate_issuance_seconds Time to a valid certificate.\n",
        );
        out.push_str("# TYPE portcullis_certificate_issuance_seconds histogram\n");
        self.inner
            .issuance_seconds
            .render(out, "portcullis_certificate_issuance_seconds", "");
        out.push_str(
            "# HELP portcullis_certificate_issuance_failures_total Failed issuances by issuer.\n",
        );
        out.push_str("# TYPE portcullis_certificate_issuance_failures_total counter\n");
        let failures = self
            .inner
            .failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        for (issuer, count) in failures {
            let _ = writeln!(
                out,
                "portcullis_certificate_issuance_failures_total{{issuer=\"{}\"}} {count}",
                label(&issuer)
            );
        }
        let Ok(records) = self.list().await else {
            return;
        };
        let now = unix_now();
        out.push_str("# HELP portcullis_certificate_expiry_seconds Seconds until each certificate expires.\n");
        out.push_str("# TYPE portcullis_certificate_expiry_seconds gauge\n");
        let mut by_status: BTreeMap<&str, u64> = BTreeMap::new();
        for record in &records {
            *by_status.entry(record.status.as_str()).or_default() += 1;
            if let (Some(not_after), CertStatus::Valid | CertStatus::Renewing) =
                (record.not_after, record.status)
            {
                let _ = writeln!(
                    out,
                    "portcullis_certificate_expiry_seconds{{id=\"{}\",common_name=\"{}\"}} {}",
                    record.id,
                    label(&record.common_name),
                    not_after - now
                );
            }
        }
        out.push_str("# HELP portcullis_certificates Certificate records by status.\n");
        out.push_str("# TYPE portcullis_certificates gauge\n");
        for status in CertStatus::ALL {
            let _ = writeln!(
                out,
                "portcullis_certificates{{status=\"{status}\"}} {}",
                by_status.get(status.as_str()).unwrap_or(&0)
            );
        }
    }

    fn record_failure(&self, issuer: &str) {
        *self
            .inner
            .failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(issuer.to_owned())
            .or_default() += 1;
    }

    /// Notified whenever the certificates to serve change.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.inner.changed.subscribe()
    }

    /// The internal CA, created on first use.
    pub async fn internal_ca(&self) -> Result<&InternalCa, Error> {
        self.inner
            .internal_ca
            .get_or_try_init(|| {
                InternalCa::load_or_create(&self.inner.secrets, self.inner.store.as_ref())
            })
            .await
    }

    /// Every certificate record, oldest first.
    pub async fn list(&self) -> Result<Vec<CertificateRecord>, Error> {
        let mut records: Vec<CertificateRecord> = self
            .inner
            .store
            .list(space::CERTIFICATES)
            .await?
            .iter()
            .filter_map(|e| serde_json::from_slice(&e.value).ok())
            .collect();
        records.sort_by(|a, b| {
            a.created_at
                .cmp(&b.created_at)
                .then_with(|| a.id.cmp(&b.id))
        });
        Ok(records)
    }

    /// One record.
    pub async fn get(&self, id: &str) -> Result<CertificateRecord, Error> {
        let entry = self
            .inner
            .store
            .get(space::CERTIFICATES, id)
            .await?
            .ok_or_else(|| Error::NotFound { id: id.to_owned() })?;
        serde_json::from_slice(&entry.value)
            .map_err(|e| Error::Material(format!("record {id}: {e}")))
    }

    /// Asks for a certificate.
    ///
    /// Returns at once: either a valid certificate that already covers the
    /// names (no ACME round trip), an order already under way for the same
    /// names, or a new `pending` record whose issuance runs in the background.
    pub async fn request(
        &self,
        request: &CertRequest,
        owner: &str,
    ) -> Result<CertificateRecord, Error> {
        let validated = request.validate(&self.inner.settings)?;
        let now = unix_now();
        let records = self.list().await?;
        let renew_before = self.renew_before();
        if let Some(existing) = records.iter().find(|r| {
            r.issuer == validated.issuer
                && r.status == CertStatus::Valid
                && covers(r, &validated.names)
                && !r
                    .not_after
                    .zip(r.not_before)
                    .is_some_and(|(after, before)| {
                        is_due(now, before, after, renew_before, r.ari_window_start)
                    })
        }) {
            return Ok(existing.clone());
        }
        if let Some(running) = records.iter().find(|r| {
            r.issuer == validated.issuer
                && matches!(r.status, CertStatus::Pending | CertStatus::Issuing)
                && r.names() == validated.names
        }) {
            return Ok(running.clone());
        }
        let issuer = self
            .inner
            .settings
            .issuer(&validated.issuer)
            .ok_or_else(|| Error::InvalidRequest {
                field: "issuer",
                message: format!("\"{}\" is not configured", validated.issuer),
            })?;
        if let Some(limit) = issuer.weekly_limit {
            ledger::reserve(
                self.inner.store.as_ref(),
                &issuer.name,
                limit,
                &validated.names,
                now,
            )
            .await?;
        }
        let mut names = validated.names.into_iter();
        let common_name = names.next().unwrap_or_default();
        let record = CertificateRecord {
            id: new_id(),
            common_name,
            sans: names.collect(),
            issuer: validated.issuer,
            issued_by: None,
            challenge_type: validated.challenge_type,
            acme_email: validated.acme_email,
            dns_credential_id: validated.dns_credential_id,
            status: CertStatus::Pending,
            status_message: None,
            not_before: None,
            not_after: None,
            serial: None,
            fingerprint_sha256: None,
            chain_pem: None,
            key_label: None,
            owner: owner.to_owned(),
            auto_renew: true,
            failures: 0,
            retry_after: None,
            ari_window_start: None,
            created_at: now,
            updated_at: now,
        };
        self.save(&record, Expect::Absent).await?;
        tracing::info!(id = %record.id, names = ?record.names(), issuer = %record.issuer, "certificate requested");
        self.spawn(record.id.clone());
        Ok(record)
    }

    /// Renews now, whatever the window says. The old certificate keeps serving.
    pub async fn renew(&self, id: &str) -> Result<CertificateRecord, Error> {
        let mut record = self.get(id).await?;
        match record.status {
            CertStatus::Renewing => return Ok(record),
            CertStatus::Failed => {
                record.status = self.step(&record, CertStatus::Pending)?;
                record.retry_after = None;
            }
            _ => record.status = self.step(&record, CertStatus::Renewing)?,
        }
        record.updated_at = unix_now();
        self.save(&record, Expect::Any).await?;
        self.spawn(record.id.clone());
        Ok(record)
    }

    /// Revokes at the issuer and stops serving at once. Irreversible.
    pub async fn revoke(&self, id: &str) -> Result<CertificateRecord, Error> {
        let mut record = self.get(id).await?;
        let status = self.step(&record, CertStatus::Revoked)?;
        self.revoke_at_issuer(&record).await?;
        record.status = status;
        record.status_message = Some("revoked on request".into());
        record.auto_renew = false;
        record.updated_at = unix_now();
        self.save(&record, Expect::Any).await?;
        if let Some(label) = &record.key_label {
            self.inner.secrets.delete(label).await?;
        }
        self.notify();
        tracing::info!(id = %record.id, "certificate revoked");
        Ok(record)
    }

    /// Turns automatic renewal of a certificate on or off (it keeps serving
    /// until it expires either way).
    pub async fn set_auto_renew(&self, id: &str, auto_renew: bool) -> Result<(), Error> {
        let mut record = self.get(id).await?;
        if record.auto_renew != auto_renew {
            record.auto_renew = auto_renew;
            record.updated_at = unix_now();
            self.save(&record, Expect::Any).await?;
        }
        Ok(())
    }

    /// Deletes a record and its key, for an operation that created it and
    /// then failed (nothing half-done is left behind). Refused while an
    /// order for it runs.
    pub async fn remove(&self, id: &str) -> Result<(), Error> {
        let record = self.get(id).await?;
        if record.status.is_in_progress() {
            return Err(Error::Lifecycle {
                id: id.to_owned(),
                source: portcullis_config::model::IllegalTransition {
                    from: record.status,
                    to: CertStatus::Failed,
                },
            });
        }
        self.inner
            .store
            .delete(space::CERTIFICATES, id, Expect::Any)
            .await?;
        if let Some(label) = &record.key_label {
            self.inner.secrets.delete(label).await?;
        }
        self.notify();
        tracing::info!(%id, "certificate record removed");
        Ok(())
    }

    /// Restarts orders a previous process left unfinished (after a crash or
    /// kill): the same record is driven again, so one request never yields
    /// two records.
    pub async fn resume(&self) -> Result<usize, Error> {
        match crate::dns::solver::clean_up_leftovers(
            &self.inner.credentials,
            self.inner.store.as_ref(),
        )
        .await
        {
            Ok(0) => {}
            Ok(removed) => tracing::info!(removed, "removed DNS-01 records left by an earlier run"),
            Err(error) => tracing::warn!(%error, "could not clean up leftover DNS-01 records"),
        }
        let mut resumed = 0;
        for record in self.list().await? {
            if record.status.is_in_progress() {
                tracing::info!(id = %record.id, status = %record.status, "resuming unfinished issuance");
                self.spawn(record.id.clone());
                resumed += 1;
            }
        }
        Ok(resumed)
    }

    /// Certificates to serve now: valid (or renewing, whose old certificate
    /// still serves) and not expired, with their keys opened.
    pub async fn serving_certificates(&self) -> Result<Vec<ServingCertificate>, Error> {
        let now = unix_now();
        let mut serving = Vec::new();
        for record in self.list().await? {
            if !matches!(record.status, CertStatus::Valid | CertStatus::Renewing)
                || record.not_after.is_some_and(|t| t <= now)
            {
                continue;
            }
            let (Some(chain_pem), Some(label)) = (record.chain_pem, record.key_label) else {
                continue;
            };
            match self.inner.secrets.get(&label).await {
                Ok(Some(key_der)) => serving.push(ServingCertificate {
                    id: record.id,
                    chain_pem,
                    key_der,
                }),
                Ok(None) => {
                    tracing::error!(id = %record.id, "certificate key is missing from the secret store")
                }
                Err(error) => {
                    tracing::error!(id = %record.id, %error, "certificate key cannot be opened")
                }
            }
        }
        Ok(serving)
    }

    /// Keeps one certificate per router that names a `tls_issuer`, and stops
    /// renewing those whose router is gone or changed.
    pub async fn ensure_router_certificates(&self, state: &DesiredState) -> Result<(), Error> {
        let records = self.list().await?;
        let mut wanted = HashSet::new();
        for router in state.routers.values() {
            let Some(issuer) = &router.tls_issuer else {
                continue;
            };
            if router.entrypoint != Entrypoint::Websecure {
                continue;
            }
            let owner = format!("router:{}", router.name);
            wanted.insert(owner.clone());
            let mut hosts = router.hosts.iter();
            let request = CertRequest {
                common_name: hosts.next().cloned().unwrap_or_default(),
                sans: hosts.cloned().collect(),
                issuer: Some(issuer.clone()),
                challenge_type: router.challenge.clone(),
                ..CertRequest::default()
            };
            let names = match request.validate(&self.inner.settings) {
                Ok(v) => v.names,
                Err(error) => {
                    tracing::error!(router = %router.name, %error, "cannot get a certificate for this router");
                    continue;
                }
            };
            let owned = records.iter().find(|r| {
                r.owner == owner
                    && r.status != CertStatus::Revoked
                    && r.issuer == *issuer
                    && r.names() == names
            });
            match owned {
                Some(record) if !record.auto_renew => {
                    let mut record = record.clone();
                    record.auto_renew = true;
                    self.save(&record, Expect::Any).await?;
                }
                Some(_) => {}
                None => {
                    if let Err(error) = self.request(&request, &owner).await {
                        tracing::error!(router = %router.name, %error, "certificate request for router refused");
                    }
                }
            }
        }
        for record in records {
            let stale = record.owner.starts_with("router:")
                && record.auto_renew
                && (!wanted.contains(&record.owner) || !self.matches_router(&record, state));
            if stale {
                let mut record = record;
                record.auto_renew = false;
                record.updated_at = unix_now();
                self.save(&record, Expect::Any).await?;
                tracing::info!(id = %record.id, owner = %record.owner, "router gone or changed: certificate no longer renewed");
            }
        }
        Ok(())
    }

    fn matches_router(&self, record: &CertificateRecord, state: &DesiredState) -> bool {
        let Some(name) = record.owner.strip_prefix("router:") else {
            return false;
        };
        state.routers.get(name).is_some_and(|router| {
            router.tls_issuer.as_deref() == Some(record.issuer.as_str())
                && router.hosts.iter().all(|h| record.names().contains(h))
        })
    }

    // === internals ===

    fn renew_before(&self) -> i64 {
        i64::try_from(self.inner.settings.renew_before.as_secs()).unwrap_or(i64::MAX)
    }

    fn step(&self, record: &CertificateRecord, to: CertStatus) -> Result<CertStatus, Error> {
        record
            .status
            .transition(to)
            .map_err(|source| Error::Lifecycle {
                id: record.id.clone(),
                source,
            })
    }

    async fn save(&self, record: &CertificateRecord, expect: Expect) -> Result<(), Error> {
        let value = serde_json::to_vec(record).map_err(|e| Error::Material(e.to_string()))?;
        self.inner
            .store
            .put(space::CERTIFICATES, &record.id, value, expect)
            .await?;
        Ok(())
    }

    fn notify(&self) {
        self.inner.changed.send_modify(|n| *n += 1);
    }

    /// Runs the record's issuance in the background unless it already runs here.
    fn spawn(&self, id: String) {
        {
            let mut running = self.inner.running.lock().unwrap_or_else(|p| p.into_inner());
            if !running.insert(id.clone()) {
                return;
            }
        }
        let manager = self.clone();
        tokio::spawn(async move {
            if let Err(error) = manager.drive(&id).await {
                tracing::error!(%id, %error, "issuance task failed");
            }
            manager
                .inner
                .running
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&id);
        });
    }
}

/// True when the record's names cover every requested name.
fn covers(record: &CertificateRecord, names: &[String]) -> bool {
    let patterns: Vec<HostPattern> = record
        .names()
        .iter()
        .filter_map(|n| HostPattern::parse(n).ok())
        .collect();
    names.iter().all(|name| {
        patterns.iter().any(|p| match p {
            HostPattern::Exact(exact) => exact == name,
            HostPattern::Wildcard(_) => p.to_string() == *name || p.matches(name),
        })
    })
}

/// 128 random bits in hex: unguessable, so ids in URLs leak nothing.
fn new_id() -> String {
    crate::material::hex(&rand::random::<[u8; 16]>())
}
