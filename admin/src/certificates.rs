//! `/api/v1/acme/certificates`: request, list, show, renew, revoke.

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use portcullis_acme::{CertRequest, Manager};
use portcullis_config::model::{CertStatus, CertificateRecord};
use serde::Serialize;

use crate::api_error::ApiError;
use crate::plans::{self, CertRequestSpec, PlanKind, PlanStatus, Step};
use crate::server::AdminState;
use crate::tokens::TokenRecord;
use crate::{json, plans_api};

/// A certificate as the API shows it: the record minus internals, plus
/// what operators ask first (every name, days left).
#[derive(Serialize)]
pub(crate) struct CertificateView<'a> {
    id: &'a str,
    common_name: &'a str,
    sans: &'a [String],
    names: Vec<String>,
    issuer: &'a str,
    issued_by: Option<&'a str>,
    challenge_type: &'a str,
    acme_email: Option<&'a str>,
    status: &'a str,
    status_message: Option<&'a str>,
    not_before: Option<i64>,
    not_after: Option<i64>,
    days_until_expiry: Option<i64>,
    serial: Option<&'a str>,
    fingerprint_sha256: Option<&'a str>,
    owner: &'a str,
    auto_renew: bool,
    created_at: i64,
    updated_at: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    chain_pem: Option<&'a str>,
}

impl<'a> CertificateView<'a> {
    pub(crate) fn new(record: &'a CertificateRecord, with_chain: bool) -> Self {
        let now = portcullis_acme::unix_now();
        Self {
            id: &record.id,
            common_name: &record.common_name,
            sans: &record.sans,
            names: record.names(),
            issuer: &record.issuer,
            issued_by: record.issued_by.as_deref(),
            challenge_type: record.challenge_type.as_str(),
            acme_email: record.acme_email.as_deref(),
            status: record.status.as_str(),
            status_message: record.status_message.as_deref(),
            not_before: record.not_before,
            not_after: record.not_after,
            days_until_expiry: record.not_after.map(|t| (t - now).div_euclid(86_400)),
            serial: record.serial.as_deref(),
            fingerprint_sha256: record.fingerprint_sha256.as_deref(),
            owner: &record.owner,
            auto_renew: record.auto_renew,
            created_at: record.created_at,
            updated_at: record.updated_at,
            chain_pem: if with_chain {
                record.chain_pem.as_deref()
            } else {
                None
            },
        }
    }
}

#[derive(Serialize)]
struct List<'a> {
    certificates: Vec<CertificateView<'a>>,
}

pub(crate) async fn list(manager: &Manager) -> Result<Response<Full<Bytes>>, ApiError> {
    let records = manager.list().await?;
    let certificates = records
        .iter()
        .map(|r| CertificateView::new(r, false))
        .collect();
    Ok(json::ok(StatusCode::OK, &List { certificates }))
}

pub(crate) async fn show(manager: &Manager, id: &str) -> Result<Response<Full<Bytes>>, ApiError> {
    let record = manager.get(id).await?;
    Ok(json::ok(
        StatusCode::OK,
        &CertificateView::new(&record, true),
    ))
}

/// A certificate request becomes a plan; validated first (422 names the
/// field). Without approval it runs at once and the answer carries the
/// certificate it follows.
pub(crate) async fn create(
    state: &AdminState,
    token: &TokenRecord,
    body: Incoming,
) -> Result<Response<Full<Bytes>>, ApiError> {
    let request: CertRequest = json::read(body).await?;
    request.check(state.certificates.settings())?;
    let names: Vec<String> = std::iter::once(&request.common_name)
        .chain(&request.sans)
        .cloned()
        .collect();
    let spec = CertRequestSpec {
        common_name: request.common_name.clone(),
        sans: request.sans.clone(),
        issuer: request.issuer.clone(),
        challenge_type: request.challenge_type.clone(),
        acme_email: request.acme_email.clone(),
    };
    let step = Step::new(
        "certificate",
        format!(
            "certificate for {} (a valid one is reused)",
            names.join(", ")
        ),
    );
    let id = plans_api::new_id();
    if !state.config.require_approval {
        // Placed now, under the plan's name, so that refusals (rate limit,
        // bad issuer) come back as their own status; the plan then follows it.
        state
            .certificates
            .request(&request, &format!("plan:{id}"))
            .await?;
    }
    let kind = PlanKind::Certificate { request: spec };
    let mut plan = plans_api::create_with_id(state, token, id, kind, vec![step]).await?;
    // Wait briefly for the request to be accepted, so the answer names the certificate.
    let mut certificate = None;
    if plan.status == PlanStatus::Running {
        for _ in 0..250 {
            if let Some((current, _)) = plans::load(state.store.as_ref(), &plan.id).await? {
                plan = current;
            }
            if let Some(id) = &plan.certificate_id {
                certificate = state.certificates.get(id).await.ok();
                break;
            }
            if plan.error.is_some() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
    if let (Some(error), None) = (&plan.error, &certificate) {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
            error.clone(),
        ));
    }
    let status = match &certificate {
        Some(record) if record.status == CertStatus::Valid => StatusCode::OK,
        _ => StatusCode::ACCEPTED,
    };
    Ok(json::ok(
        status,
        &PlanAndCertificate {
            plan: &plan,
            certificate: certificate.as_ref().map(|r| CertificateView::new(r, false)),
        },
    ))
}

/// A plan, with the certificate it concerns once known.
#[derive(Serialize)]
struct PlanAndCertificate<'a> {
    plan: &'a plans::Plan,
    certificate: Option<CertificateView<'a>>,
}

pub(crate) async fn renew(manager: &Manager, id: &str) -> Result<Response<Full<Bytes>>, ApiError> {
    let record = manager.renew(id).await?;
    Ok(json::ok(
        StatusCode::ACCEPTED,
        &CertificateView::new(&record, false),
    ))
}

/// Revocation is irreversible, so it is a plan; refused up front (409) when
/// the certificate cannot be revoked.
pub(crate) async fn revoke(
    state: &AdminState,
    token: &TokenRecord,
    id: &str,
) -> Result<Response<Full<Bytes>>, ApiError> {
    let record = state.certificates.get(id).await?;
    if let Err(source) = record.status.transition(CertStatus::Revoked) {
        return Err(portcullis_acme::Error::Lifecycle {
            id: id.to_owned(),
            source,
        }
        .into());
    }
    let step = Step::new(
        "revoke",
        format!(
            "revoke certificate {id} ({}) at {}",
            record.names().join(", "),
            record.issued_by.as_deref().unwrap_or(&record.issuer)
        ),
    );
    let kind = PlanKind::Revoke {
        certificate: id.to_owned(),
    };
    let mut plan = plans_api::create(state, token, kind, vec![step]).await?;
    if plan.status == PlanStatus::Running {
        // Revocation is one call: wait for it so the answer is final.
        for _ in 0..500 {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            if let Some((current, _)) = plans::load(state.store.as_ref(), &plan.id).await? {
                plan = current;
            }
            if plan.status != PlanStatus::Running {
                break;
            }
        }
    }
    let certificate = state.certificates.get(id).await?;
    let status = if plan.status == PlanStatus::Failed {
        StatusCode::BAD_GATEWAY
    } else {
        StatusCode::OK
    };
    Ok(json::ok(
        status,
        &PlanAndCertificate {
            plan: &plan,
            certificate: Some(CertificateView::new(&certificate, false)),
        },
    ))
}
