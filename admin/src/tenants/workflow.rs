//! The durable per-tenant workflow: verify the CNAME, get the certificate,
//! deploy, probe. Each step's result is saved before the next begins; a
//! restart resumes from the saved status.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use portcullis_acme::CertRequest;
use portcullis_config::model::CertStatus;
use portcullis_config::settings::tenants::TenantSettings;
use portcullis_config::store::Expect;
use tracing::Instrument;

use super::{render, DomainStatus, TenantDomain};
use crate::server::AdminState;

/// Matching checks in a row before the CNAME counts as verified.
const MATCHES_NEEDED: u32 = 2;
/// How long deploying waits for the data plane and the probe.
const DEPLOY_WAIT: Duration = Duration::from_secs(30);

/// Tenants whose workflow runs in this process.
#[derive(Debug, Default, Clone)]
pub(crate) struct Running(Arc<Mutex<HashSet<String>>>);

/// Starts (or wakes) the tenant's workflow unless it already runs here.
pub(crate) fn spawn(state: &AdminState, settings: &Arc<TenantSettings>, tenant: &str) {
    {
        let mut running = state
            .tenant_tasks
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if !running.insert(tenant.to_owned()) {
            return;
        }
    }
    let (state, settings, tenant) = (state.clone(), Arc::clone(settings), tenant.to_owned());
    tokio::spawn(async move {
        let span = tracing::info_span!("tenant_domain", tenant_id = %tenant);
        drive(&state, &settings, &tenant).instrument(span).await;
        state
            .tenant_tasks
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&tenant);
    });
}

/// Resumes every row a previous process left mid-way.
pub(crate) async fn resume(state: &AdminState, settings: &Arc<TenantSettings>) {
    render::ensure_canonical_certificate(state, settings).await;
    if let Err(error) = render::reconcile(state, settings).await {
        tracing::error!(%error, "tenant reconcile failed");
    }
    let Ok(rows) = super::all(state.store.as_ref()).await else {
        return;
    };
    for row in rows.iter().filter(|r| r.status.in_progress()) {
        tracing::info!(tenant = %row.tenant_id, status = row.status.as_str(), "resuming tenant domain workflow");
        spawn(state, settings, &row.tenant_id);
    }
}

async fn drive(state: &AdminState, settings: &TenantSettings, tenant: &str) {
    loop {
        let Ok(Some((mut row, mut revision))) = super::load(state.store.as_ref(), tenant).await
        else {
            return;
        };
        let stage = row.status.as_str();
        let span = tracing::info_span!("tenant_domain_step", tenant_id = %row.tenant_id, domain = %row.domain, stage);
        let next = async {
            match row.status {
                DomainStatus::PendingDns => {
                    let message = format!(
                        "checking that {} is a CNAME to {}",
                        row.domain, row.canonical_host
                    );
                    row.advance(DomainStatus::VerifyingDns, Some(message))
                }
                DomainStatus::VerifyingDns => {
                    verify(state, settings, &mut row, &mut revision).await
                }
                DomainStatus::PendingCertificate => {
                    request_certificate(state, settings, &mut row).await
                }
                DomainStatus::CertificateIssuing => await_certificate(state, &mut row).await,
                DomainStatus::Deploying => deploy(state, settings, &mut row).await,
                _ => false,
            }
        }
        .instrument(span)
        .await;
        if !next {
            return;
        }
        tracing::info!(domain = %row.domain, stage, status = row.status.as_str(), "tenant domain step");
        match row.status {
            DomainStatus::Active => state.tenant_metrics.activated(Duration::from_secs(
                u64::try_from(portcullis_acme::unix_now() - row.requested_at).unwrap_or(0),
            )),
            DomainStatus::DnsFailed => state.tenant_metrics.failure("dns"),
            DomainStatus::CertificateFailed => state.tenant_metrics.failure("certificate"),
            _ => {}
        }
        // A concurrent change (removal, retry) wins: the save is refused,
        // and the next round follows the row as it is now.
        let _ = super::save(state.store.as_ref(), &row, Expect::Revision(revision)).await;
    }
}

/// Checks the CNAME until it matches twice in a row, backing off between checks.
async fn verify(
    state: &AdminState,
    settings: &TenantSettings,
    row: &mut TenantDomain,
    revision: &mut u64,
) -> bool {
    let resolver = match portcullis_acme::dns::resolver::Resolver::new(
        &state.certificates.settings().dns_resolvers,
    ) {
        Ok(resolver) => resolver,
        Err(error) => {
            return row.advance(
                DomainStatus::DnsFailed,
                Some(format!("no resolver: {error}")),
            )
        }
    };
    let started = tokio::time::Instant::now();
    let mut interval = settings.verify_interval.min(Duration::from_secs(5));
    loop {
        let seen = match resolver.resolve_cname_chain(&row.domain).await {
            Ok(target) if target != row.domain => Some(target),
            Ok(_) => None,
            Err(error) => Some(format!("(lookup failed: {error})")),
        };
        let matches = seen.as_deref() == Some(row.canonical_host.as_str());
        row.verification_details.last_seen = seen;
        row.verification_details.consecutive_matches = if matches {
            row.verification_details.consecutive_matches + 1
        } else {
            0
        };
        row.last_checked_at = Some(portcullis_acme::unix_now());
        if row.verification_details.consecutive_matches >= MATCHES_NEEDED {
            return row.advance(
                DomainStatus::PendingCertificate,
                Some("CNAME verified; requesting a certificate".into()),
            );
        }
        if started.elapsed() >= settings.verify_timeout {
            let seen = row
                .verification_details
                .last_seen
                .clone()
                .unwrap_or_else(|| "no CNAME".into());
            let message = format!(
                "{} points at {seen}, not {}: create `{}. CNAME {}.` and retry once the old record's TTL has passed",
                row.domain, row.canonical_host, row.domain, row.canonical_host
            );
            return row.advance(DomainStatus::DnsFailed, Some(message));
        }
        // Persist each check so the API shows progress; a concurrent change stops us.
        match super::save(state.store.as_ref(), row, Expect::Revision(*revision)).await {
            Ok(next) => *revision = next,
            Err(_) => return false,
        }
        tokio::time::sleep(interval).await;
        interval = (interval * 2).min(settings.verify_interval);
    }
}

async fn request_certificate(
    state: &AdminState,
    settings: &TenantSettings,
    row: &mut TenantDomain,
) -> bool {
    let request = CertRequest {
        common_name: row.domain.clone(),
        issuer: Some(settings.domain_issuer.clone()),
        challenge_type: Some("http-01".into()),
        ..CertRequest::default()
    };
    match state
        .certificates
        .request(&request, &format!("tenant:{}", row.tenant_id))
        .await
    {
        Ok(record) => {
            row.certificate_id = Some(record.id);
            row.advance(
                DomainStatus::CertificateIssuing,
                Some("certificate order under way (HTTP-01)".into()),
            )
        }
        Err(error) => {
            row.advance(DomainStatus::CertificateIssuing, Some(error.to_string()))
                && row.advance(DomainStatus::CertificateFailed, Some(format!("{error}")))
        }
    }
}

async fn await_certificate(state: &AdminState, row: &mut TenantDomain) -> bool {
    let Some(id) = row.certificate_id.clone() else {
        return row.advance(
            DomainStatus::CertificateFailed,
            Some("no certificate was requested".into()),
        );
    };
    loop {
        match state.certificates.get(&id).await {
            Ok(record) if record.status == CertStatus::Valid => {
                return row.advance(
                    DomainStatus::Deploying,
                    Some("certificate valid; deploying routes".into()),
                );
            }
            Ok(record) if record.status.is_in_progress() => {
                tokio::time::sleep(Duration::from_millis(200)).await
            }
            Ok(record) => {
                let problem = record
                    .status_message
                    .unwrap_or_else(|| format!("certificate is {}", record.status));
                let message = format!("{problem}; is port 80 of {} reachable from the internet and routed to Portcullis?", row.domain);
                return row.advance(DomainStatus::CertificateFailed, Some(message));
            }
            Err(error) => {
                return row.advance(DomainStatus::CertificateFailed, Some(error.to_string()))
            }
        }
    }
}

async fn deploy(state: &AdminState, settings: &TenantSettings, row: &mut TenantDomain) -> bool {
    if let Err(error) = render::reconcile(state, settings).await {
        row.status_message = Some(format!("could not render routes: {error}"));
        return false;
    }
    let deadline = tokio::time::Instant::now() + DEPLOY_WAIT;
    let mut last = String::new();
    while tokio::time::Instant::now() < deadline {
        match probe(state, &row.domain).await {
            Ok(()) => return row.advance(DomainStatus::Active, None),
            Err(error) => last = error,
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let message = format!(
        "deployed, but a request for {} through Portcullis did not reach the portal: {last}",
        row.domain
    );
    row.advance(DomainStatus::CertificateFailed, Some(message))
}

/// An HTTPS request to the domain through our own `websecure` listener
/// (SNI = the domain); it must be answered by the portal, not by Portcullis.
async fn probe(state: &AdminState, domain: &str) -> Result<(), String> {
    use http_body_util::BodyExt;
    let address = state
        .config
        .websecure_addr
        .ok_or("no websecure address known")?;
    let tcp = tokio::net::TcpStream::connect(address)
        .await
        .map_err(|e| e.to_string())?;
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .dangerous()
    // We talk to ourselves: the certificate is checked by the CA, not here.
    .with_custom_certificate_verifier(Arc::new(super::probe_tls::AnyServer::new()))
    .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let name =
        rustls::pki_types::ServerName::try_from(domain.to_owned()).map_err(|e| e.to_string())?;
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .map_err(|e| e.to_string())?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
            .await
            .map_err(|e| e.to_string())?;
    tokio::spawn(connection);
    let request = http::Request::get("/")
        .header(http::header::HOST, domain)
        .header(http::header::USER_AGENT, "portcullis-activation-probe")
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .map_err(|e| e.to_string())?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| e.to_string())?;
    let local = response
        .headers()
        .contains_key(portcullis_proxy::LOCAL_ANSWER);
    let status = response.status();
    let _ = response.into_body().collect().await;
    if local {
        Err(format!("Portcullis answered {status} itself"))
    } else {
        Ok(())
    }
}
