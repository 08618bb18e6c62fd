//! `/api/v1/tenants/{tenant}/portal-domain`: show, request, refresh, remove.
//!
//! Needs `domains.manage`; a token limited to one tenant sees only that
//! tenant (others answer 404, as if they did not exist).

use std::sync::Arc;

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use portcullis_config::model::HostPattern;
use portcullis_config::settings::tenants::TenantSettings;
use portcullis_config::store::Expect;
use serde::{Deserialize, Serialize};

use super::{render, workflow, DomainStatus, TenantDomain, Verification};
use crate::api_error::{ApiError, ErrorBody};
use crate::expose::FieldError;
use crate::server::AdminState;
use crate::tokens::TokenRecord;
use crate::{audit, json};

/// The body of a PUT.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PutDomain {
    /// The vanity domain, e.g. `portal.customer.com`.
    domain: String,
}

/// The row plus what the tenant needs to know next.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct View<'a> {
    #[serde(flatten)]
    row: &'a TenantDomain,
    /// The record to create at the tenant's DNS host.
    dns_record: String,
    /// What may be done now.
    allowed_actions: Vec<&'static str>,
    /// In words.
    guidance: String,
}

fn view(row: &TenantDomain) -> View<'_> {
    let allowed_actions = match row.status {
        DomainStatus::DnsFailed | DomainStatus::CertificateFailed | DomainStatus::Disabled => {
            vec!["put", "delete"]
        }
        DomainStatus::Active => vec!["refresh", "delete"],
        _ => vec!["refresh", "delete"],
    };
    let guidance = match row.status {
        DomainStatus::PendingDns | DomainStatus::VerifyingDns => format!(
            "Create a CNAME record {} → {} at your DNS host; it is checked automatically.",
            row.domain, row.canonical_host
        ),
        DomainStatus::Active => format!("{} is live.", row.domain),
        DomainStatus::Disabled => "Removed. Request it again with PUT.".into(),
        _ => row.status_message.clone().unwrap_or_default(),
    };
    View {
        row,
        dns_record: format!("{}. CNAME {}.", row.domain, row.canonical_host),
        allowed_actions,
        guidance,
    }
}

fn settings(state: &AdminState) -> Result<Arc<TenantSettings>, ApiError> {
    state.config.tenants.clone().ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "tenant domains are not configured; set tenants.canonical_base and tenants.portal_upstreams",
        )
    })
}

/// The settings, and the tenant's row with its revision, when this token may see it.
async fn existing(
    state: &AdminState,
    token: &TokenRecord,
    tenant: &str,
) -> Result<(Arc<TenantSettings>, TenantDomain, u64), ApiError> {
    let settings = settings(state)?;
    visible(token, tenant)?;
    let (row, revision) = super::load(state.store.as_ref(), tenant)
        .await?
        .ok_or_else(|| ApiError::not_found("portal domain"))?;
    Ok((settings, row, revision))
}

fn concurrent() -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "conflict",
        "changed concurrently; retry",
    )
}

fn visible(token: &TokenRecord, tenant: &str) -> Result<(), ApiError> {
    match &token.tenant {
        Some(own) if own != tenant => Err(ApiError::not_found("tenant")),
        _ => Ok(()),
    }
}

#[utoipa::path(
    get,
    path = "/api/v1/tenants/{tenant}/portal-domain",
    operation_id = "show_tenant_domain",
    tag = "tenants",
    params(("tenant" = String, Path, description = "Tenant id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The row with the DNS record to create, allowed actions and guidance", body = View),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "The token lacks `domains.manage`", body = ErrorBody),
        (status = 404, description = "Tenant domains are not configured, the tenant is not visible to this token, or it has no domain", body = ErrorBody),
        (status = 500, description = "Internal error; see the server log", body = ErrorBody),
    )
)]
pub(crate) async fn show(
    state: &AdminState,
    token: &TokenRecord,
    tenant: &str,
) -> Result<Response<Full<Bytes>>, ApiError> {
    settings(state)?;
    visible(token, tenant)?;
    audit::record(
        state.store.as_ref(),
        &token.name,
        "tenant_domain.read",
        tenant,
        "ok",
        None,
    )
    .await;
    let (row, _) = super::load(state.store.as_ref(), tenant)
        .await?
        .ok_or_else(|| ApiError::not_found("portal domain"))?;
    Ok(json::ok(StatusCode::OK, &view(&row)))
}

/// Validates a vanity domain: ASCII LDH labels, lower-cased, three labels or
/// more (an apex cannot hold a CNAME), not under the canonical base.
pub(crate) fn validate_domain(text: &str, settings: &TenantSettings) -> Result<String, String> {
    let text = text.trim();
    if text.ends_with('.') {
        return Err(format!("\"{text}\" ends with a dot; write it without"));
    }
    if text.parse::<std::net::IpAddr>().is_ok() {
        return Err(format!("\"{text}\" is an IP address; give a host name"));
    }
    let name = match HostPattern::parse(text)? {
        HostPattern::Exact(name) if !name.contains('_') => name,
        _ => {
            return Err(format!(
                "\"{text}\" is not a host name of letters, digits and '-'"
            ))
        }
    };
    if name.split('.').count() < 3 {
        return Err(format!(
            "\"{name}\" is an apex domain, which cannot hold a CNAME; use a subdomain such as portal.{name}"
        ));
    }
    let base = &settings.canonical_base;
    if name == *base || name.ends_with(&format!(".{base}")) {
        return Err(format!(
            "\"{name}\" is under {base}, which Portcullis already serves"
        ));
    }
    Ok(name)
}

#[utoipa::path(
    put,
    path = "/api/v1/tenants/{tenant}/portal-domain",
    operation_id = "put_tenant_domain",
    tag = "tenants",
    params(("tenant" = String, Path, description = "Tenant id")),
    request_body = PutDomain,
    security(("bearer" = [])),
    responses(
        (status = 202, description = "Recorded as pending_dns; the workflow runs", body = View),
        (status = 409, description = "The tenant has a domain in progress or active, or the domain is claimed", body = ErrorBody),
        (status = 413, description = "Body over 64 KiB", body = ErrorBody),
        (status = 422, description = "Bad tenant id or domain (apex, IP, non-LDH, under the canonical base)", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "The token lacks `domains.manage`", body = ErrorBody),
        (status = 404, description = "Tenant domains are not configured, the tenant is not visible to this token, or it has no domain", body = ErrorBody),
        (status = 500, description = "Internal error; see the server log", body = ErrorBody),
    )
)]
pub(crate) async fn put(
    state: &AdminState,
    token: &TokenRecord,
    tenant: &str,
    body: Incoming,
) -> Result<Response<Full<Bytes>>, ApiError> {
    let settings = settings(state)?;
    visible(token, tenant)?;
    let request: PutDomain = json::read(body).await?;
    let valid_tenant = !tenant.is_empty()
        && tenant.len() <= 63
        && tenant
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !tenant.starts_with('-')
        && !tenant.ends_with('-');
    if !valid_tenant {
        return Err(ApiError::invalid_fields(vec![FieldError {
            field: "tenant".into(),
            message:
                "tenant ids are 1-63 lower-case letters, digits and '-' (they become a host label)"
                    .into(),
        }]));
    }
    let domain = validate_domain(&request.domain, &settings).map_err(|message| {
        ApiError::invalid_fields(vec![FieldError {
            field: "domain".into(),
            message,
        }])
    })?;
    let rows = super::all(state.store.as_ref()).await?;
    if let Some(other) = rows
        .iter()
        .find(|r| r.domain == domain && r.tenant_id != tenant && r.status != DomainStatus::Disabled)
    {
        audit::record(
            state.store.as_ref(),
            &token.name,
            "tenant_domain.put",
            tenant,
            "refused",
            Some(format!("{domain} claimed")),
        )
        .await;
        let _ = other;
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            format!("{domain} is already claimed by another tenant"),
        ));
    }
    let existing = super::load(state.store.as_ref(), tenant).await?;
    let now = portcullis_acme::unix_now();
    let canonical_host = format!("{tenant}.{}", settings.canonical_base);
    let (row, expect) = match existing {
        Some((row, _))
            if !matches!(
                row.status,
                DomainStatus::Disabled | DomainStatus::DnsFailed | DomainStatus::CertificateFailed
            ) =>
        {
            audit::record(
                state.store.as_ref(),
                &token.name,
                "tenant_domain.put",
                tenant,
                "refused",
                Some(row.domain.clone()),
            )
            .await;
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "conflict",
                format!(
                    "tenant {tenant} already has {} ({}); DELETE it first",
                    row.domain,
                    row.status.as_str()
                ),
            ));
        }
        Some((mut row, revision)) => {
            row.domain = domain;
            row.canonical_host = canonical_host.clone();
            row.certificate_id = None;
            row.drift_since = None;
            row.requested_at = now;
            row.verification_details = Verification {
                expected_cname: canonical_host,
                ..Verification::default()
            };
            row.advance(
                DomainStatus::PendingDns,
                Some("waiting for the CNAME".into()),
            );
            (row, Expect::Revision(revision))
        }
        None => (
            TenantDomain {
                id: crate::plans_api::new_id(),
                tenant_id: tenant.to_owned(),
                domain,
                canonical_host: canonical_host.clone(),
                status: DomainStatus::PendingDns,
                status_message: Some("waiting for the CNAME".into()),
                last_checked_at: None,
                verification_method: "cname".into(),
                verification_details: Verification {
                    expected_cname: canonical_host,
                    ..Verification::default()
                },
                certificate_id: None,
                drift_since: None,
                requested_at: now,
                created_at: now,
                updated_at: now,
            },
            Expect::Absent,
        ),
    };
    super::save(state.store.as_ref(), &row, expect)
        .await
        .map_err(|_| concurrent())?;
    audit::record(
        state.store.as_ref(),
        &token.name,
        "tenant_domain.put",
        tenant,
        "ok",
        Some(row.domain.clone()),
    )
    .await;
    if let Err(error) = render::reconcile(state, &settings).await {
        tracing::error!(%error, "tenant reconcile failed");
    }
    workflow::spawn(state, &settings, tenant);
    Ok(json::ok(StatusCode::ACCEPTED, &view(&row)))
}

#[utoipa::path(
    post,
    path = "/api/v1/tenants/{tenant}/portal-domain/refresh",
    operation_id = "refresh_tenant_domain",
    tag = "tenants",
    params(("tenant" = String, Path, description = "Tenant id")),
    security(("bearer" = [])),
    responses(
        (status = 202, description = "Re-checked now", body = View),
        (status = 409, description = "Changed concurrently", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "The token lacks `domains.manage`", body = ErrorBody),
        (status = 404, description = "Tenant domains are not configured, the tenant is not visible to this token, or it has no domain", body = ErrorBody),
        (status = 500, description = "Internal error; see the server log", body = ErrorBody),
    )
)]
pub(crate) async fn refresh(
    state: &AdminState,
    token: &TokenRecord,
    tenant: &str,
) -> Result<Response<Full<Bytes>>, ApiError> {
    let (settings, mut row, revision) = existing(state, token, tenant).await?;
    if row.status == DomainStatus::DnsFailed {
        row.advance(
            DomainStatus::PendingDns,
            Some("re-checking the CNAME".into()),
        );
        row.verification_details.consecutive_matches = 0;
        super::save(state.store.as_ref(), &row, Expect::Revision(revision))
            .await
            .map_err(|_| concurrent())?;
    }
    audit::record(
        state.store.as_ref(),
        &token.name,
        "tenant_domain.refresh",
        tenant,
        "ok",
        None,
    )
    .await;
    workflow::spawn(state, &settings, tenant);
    Ok(json::ok(StatusCode::ACCEPTED, &view(&row)))
}

#[utoipa::path(
    delete,
    path = "/api/v1/tenants/{tenant}/portal-domain",
    operation_id = "delete_tenant_domain",
    tag = "tenants",
    params(("tenant" = String, Path, description = "Tenant id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Disabled; routes pruned, certificate revoked", body = View),
        (status = 409, description = "Changed concurrently", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "The token lacks `domains.manage`", body = ErrorBody),
        (status = 404, description = "Tenant domains are not configured, the tenant is not visible to this token, or it has no domain", body = ErrorBody),
        (status = 500, description = "Internal error; see the server log", body = ErrorBody),
    )
)]
pub(crate) async fn delete(
    state: &AdminState,
    token: &TokenRecord,
    tenant: &str,
) -> Result<Response<Full<Bytes>>, ApiError> {
    let (settings, mut row, revision) = existing(state, token, tenant).await?;
    if row.status != DomainStatus::Disabled {
        row.advance(DomainStatus::Disabled, Some("removed".into()));
        super::save(state.store.as_ref(), &row, Expect::Revision(revision))
            .await
            .map_err(|_| concurrent())?;
    }
    render::reconcile(state, &settings)
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e))?;
    if let Some(id) = &row.certificate_id {
        // The routes are gone; the certificate is revoked so it can never
        // serve anyone's traffic again.
        match state.certificates.get(id).await {
            Ok(record)
                if record
                    .status
                    .can_become(portcullis_config::model::CertStatus::Revoked) =>
            {
                if let Err(error) = state.certificates.revoke(id).await {
                    tracing::warn!(%error, "could not revoke the tenant's certificate; it is no longer renewed");
                }
            }
            _ => {}
        }
    }
    audit::record(
        state.store.as_ref(),
        &token.name,
        "tenant_domain.delete",
        tenant,
        "ok",
        Some(row.domain.clone()),
    )
    .await;
    Ok(json::ok(StatusCode::OK, &view(&row)))
}
