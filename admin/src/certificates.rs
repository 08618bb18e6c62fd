//! `/api/v1/acme/certificates`: request, list, show, renew, revoke.

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use portcullis_acme::{CertRequest, Manager};
use portcullis_config::model::CertificateRecord;
use serde::Serialize;

use crate::api_error::ApiError;
use crate::json;

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

/// 202 while issuance runs in the background, 200 when an existing certificate is reused.
pub(crate) async fn create(
    manager: &Manager,
    body: Incoming,
    owner: &str,
) -> Result<Response<Full<Bytes>>, ApiError> {
    let request: CertRequest = json::read(body).await?;
    let record = manager.request(&request, owner).await?;
    let status = if record.status == portcullis_config::model::CertStatus::Valid {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    Ok(json::ok(status, &CertificateView::new(&record, false)))
}

pub(crate) async fn renew(manager: &Manager, id: &str) -> Result<Response<Full<Bytes>>, ApiError> {
    let record = manager.renew(id).await?;
    Ok(json::ok(
        StatusCode::ACCEPTED,
        &CertificateView::new(&record, false),
    ))
}

pub(crate) async fn revoke(manager: &Manager, id: &str) -> Result<Response<Full<Bytes>>, ApiError> {
    let record = manager.revoke(id).await?;
    Ok(json::ok(
        StatusCode::OK,
        &CertificateView::new(&record, false),
    ))
}
