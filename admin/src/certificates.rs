//! `/api/v1/acme/certificates`: request, list, show, renew, revoke.

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use portcullis_acme::CertRequest;
use portcullis_config::model::{CertStatus, CertificateRecord};
use portcullis_proxy::DataPlane;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::api_error::{ApiError, ErrorBody};
use crate::plans::{self, CertRequestSpec, PlanKind, PlanStatus, Step};
use crate::server::AdminState;
use crate::tokens::TokenRecord;
use crate::{json, plans_api};

/// A certificate as the API shows it: the record minus internals, plus
/// what operators ask first (every name, days left).
#[derive(Serialize, ToSchema)]
#[schema(as = Certificate)]
pub(crate) struct CertificateView<'a> {
    /// Stable id.
    id: &'a str,
    /// First name and CN.
    common_name: &'a str,
    /// More names.
    sans: &'a [String],
    /// Every name: the common name, then the SANs.
    names: Vec<String>,
    /// Issuer asked for.
    issuer: &'a str,
    /// Issuer that signed it (differs from `issuer` after a fallback).
    issued_by: Option<&'a str>,
    /// Challenge used.
    #[schema(value_type = crate::openapi::ChallengeTypeName)]
    challenge_type: &'a str,
    /// ACME account contact.
    acme_email: Option<&'a str>,
    /// Lifecycle status.
    #[schema(value_type = crate::openapi::CertificateStatusName)]
    status: &'a str,
    /// Why it failed (the CA's problem document), or a note.
    status_message: Option<&'a str>,
    /// Unix seconds.
    not_before: Option<i64>,
    /// Unix seconds.
    not_after: Option<i64>,
    /// Whole days until `not_after`.
    days_until_expiry: Option<i64>,
    /// Serial number, hex.
    serial: Option<&'a str>,
    /// SHA-256 of the leaf, hex.
    fingerprint_sha256: Option<&'a str>,
    /// This node's data plane presents this certificate (the one with
    /// `fingerprint_sha256`) to TLS clients now. The status turns `valid`,
    /// and a renewal stores its new certificate, a moment before the data
    /// plane takes it: wait for `served` before connecting.
    served: bool,
    /// Who asked for it (a router, a plan, a token).
    owner: &'a str,
    /// Renewed automatically.
    auto_renew: bool,
    /// Unix seconds.
    created_at: i64,
    /// Unix seconds.
    updated_at: i64,
    /// PEM chain, leaf first; only when one certificate is shown.
    #[serde(skip_serializing_if = "Option::is_none")]
    chain_pem: Option<&'a str>,
}

impl<'a> CertificateView<'a> {
    pub(crate) fn new(record: &'a CertificateRecord, with_chain: bool, plane: &DataPlane) -> Self {
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
            served: plane.serves(record),
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

/// Every certificate, without chains.
#[derive(Serialize, ToSchema)]
#[schema(as = CertificateList)]
struct List<'a> {
    certificates: Vec<CertificateView<'a>>,
}

/// The request body of `POST /api/v1/acme/certificates`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CertificateRequest {
    /// First name and CN.
    #[schema(example = "app.internal.example")]
    common_name: String,
    /// More names.
    #[serde(default)]
    sans: Vec<String>,
    /// Issuer name; `acme.default_issuer` when absent.
    #[serde(default)]
    issuer: Option<String>,
    /// Challenge type; `http-01` when absent.
    #[serde(default)]
    #[schema(value_type = Option<crate::openapi::ChallengeTypeName>)]
    challenge_type: Option<String>,
    /// ACME account contact; `acme.email` when absent.
    #[serde(default)]
    acme_email: Option<String>,
    /// DNS credential for dns-01.
    #[serde(default)]
    dns_credential_id: Option<String>,
}

impl From<CertificateRequest> for CertRequest {
    fn from(request: CertificateRequest) -> Self {
        CertRequest {
            common_name: request.common_name,
            sans: request.sans,
            issuer: request.issuer,
            challenge_type: request.challenge_type,
            acme_email: request.acme_email,
            dns_credential_id: request.dns_credential_id,
        }
    }
}

/// List certificates.
#[utoipa::path(
    get,
    path = "/api/v1/acme/certificates",
    operation_id = "list_certificates",
    tag = "certificates",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Every certificate, without chains", body = List),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "The token lacks `acme.read`", body = ErrorBody),
        (status = 500, description = "Internal error; see the server log", body = ErrorBody),
    )
)]
pub(crate) async fn list(state: &AdminState) -> Result<Response<Full<Bytes>>, ApiError> {
    let records = state.certificates.list().await?;
    let certificates = records
        .iter()
        .map(|r| CertificateView::new(r, false, &state.plane))
        .collect();
    Ok(json::ok(StatusCode::OK, &List { certificates }))
}

/// One certificate, with its PEM chain.
#[utoipa::path(
    get,
    path = "/api/v1/acme/certificates/{id}",
    operation_id = "show_certificate",
    tag = "certificates",
    params(("id" = String, Path, description = "Certificate id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The certificate, with its chain", body = CertificateView),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "The token lacks `acme.read`", body = ErrorBody),
        (status = 404, description = "No such certificate", body = ErrorBody),
        (status = 500, description = "Internal error; see the server log", body = ErrorBody),
    )
)]
pub(crate) async fn show(state: &AdminState, id: &str) -> Result<Response<Full<Bytes>>, ApiError> {
    let record = state.certificates.get(id).await?;
    Ok(json::ok(
        StatusCode::OK,
        &CertificateView::new(&record, true, &state.plane),
    ))
}

/// A certificate request becomes a plan; validated first (422 names the
/// field). Without approval it runs at once and the answer carries the
/// certificate it follows.
#[utoipa::path(
    post,
    path = "/api/v1/acme/certificates",
    operation_id = "request_certificate",
    tag = "certificates",
    request_body = CertificateRequest,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A valid certificate already covers the names: reused", body = PlanAndCertificate),
        (status = 202, description = "Plan recorded: issuing, or awaiting approval", body = PlanAndCertificate),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "The token lacks `acme.manage`", body = ErrorBody),
        (status = 413, description = "Body over 64 KiB", body = ErrorBody),
        (status = 422, description = "Malformed body or a rejected field (named in the message); an issuer that is not configured", body = ErrorBody),
        (status = 429, description = "The issuer's weekly limit for the domain is reached", body = ErrorBody),
        (status = 502, description = "The issuer refused or could not be reached", body = ErrorBody),
        (status = 500, description = "Internal error; see the server log", body = ErrorBody),
    )
)]
pub(crate) async fn create(
    state: &AdminState,
    token: &TokenRecord,
    body: Incoming,
) -> Result<Response<Full<Bytes>>, ApiError> {
    let request: CertRequest = json::read::<CertificateRequest>(body).await?.into();
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
        dns_credential_id: request.dns_credential_id.clone(),
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
            certificate: certificate
                .as_ref()
                .map(|r| CertificateView::new(r, false, &state.plane)),
        },
    ))
}

/// A plan, with the certificate it concerns once known.
#[derive(Serialize, ToSchema)]
struct PlanAndCertificate<'a> {
    /// The plan.
    plan: &'a plans::Plan,
    /// The certificate, once the plan names one.
    certificate: Option<CertificateView<'a>>,
}

/// Renew now; the old certificate serves until the new one is valid.
#[utoipa::path(
    post,
    path = "/api/v1/acme/certificates/{id}/renew",
    operation_id = "renew_certificate",
    tag = "certificates",
    params(("id" = String, Path, description = "Certificate id")),
    security(("bearer" = [])),
    responses(
        (status = 202, description = "Renewal under way", body = CertificateView),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "The token lacks `acme.manage`", body = ErrorBody),
        (status = 404, description = "No such certificate", body = ErrorBody),
        (status = 409, description = "The certificate cannot be renewed in its status", body = ErrorBody),
        (status = 500, description = "Internal error; see the server log", body = ErrorBody),
    )
)]
pub(crate) async fn renew(state: &AdminState, id: &str) -> Result<Response<Full<Bytes>>, ApiError> {
    let record = state.certificates.renew(id).await?;
    Ok(json::ok(
        StatusCode::ACCEPTED,
        &CertificateView::new(&record, false, &state.plane),
    ))
}

/// Revocation is irreversible, so it is a plan; refused up front (409) when
/// the certificate cannot be revoked.
#[utoipa::path(
    post,
    path = "/api/v1/acme/certificates/{id}/revoke",
    operation_id = "revoke_certificate",
    tag = "certificates",
    params(("id" = String, Path, description = "Certificate id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Revoked; or the plan awaits approval, or still runs", body = PlanAndCertificate),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "The token lacks `acme.manage`", body = ErrorBody),
        (status = 404, description = "No such certificate", body = ErrorBody),
        (status = 409, description = "The certificate cannot be revoked in its status", body = ErrorBody),
        (status = 502, description = "The issuer refused the revocation; the plan says why", body = PlanAndCertificate),
        (status = 500, description = "Internal error; see the server log", body = ErrorBody),
    )
)]
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
            certificate: Some(CertificateView::new(&certificate, false, &state.plane)),
        },
    ))
}
