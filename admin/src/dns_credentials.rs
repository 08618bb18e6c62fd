//! `/api/v1/acme/dns-credentials`: store, list, validate, remove.
//!
//! Secret fields go in, never out: no answer, error or log line carries them.

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use portcullis_acme::dns::credentials::{Credentials, DnsCredential, NewCredential};
use serde::Serialize;
use utoipa::ToSchema;

use crate::api_error::{ApiError, ErrorBody};
use crate::json;
use crate::server::AdminState;
use crate::tokens::TokenRecord;

/// Every DNS credential, oldest first, without secrets.
#[derive(Serialize, ToSchema)]
#[schema(as = DnsCredentialList)]
struct CredentialList<'a> {
    /// The credentials.
    credentials: &'a [DnsCredential],
}

/// A credential was removed.
#[derive(Serialize, ToSchema)]
#[schema(as = RemovedDnsCredential)]
struct Removed<'a> {
    /// Its id.
    removed: &'a str,
}

fn credentials(state: &AdminState) -> &Credentials {
    state.certificates.credentials()
}

/// 201 with the record; its status says whether the provider accepted it.
#[utoipa::path(
    post,
    path = "/api/v1/acme/dns-credentials",
    operation_id = "create_dns_credential",
    tag = "dns",
    request_body = NewCredential,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Stored and validated with the provider; `status` says whether it works", body = DnsCredential),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "The token lacks `acme.manage`", body = ErrorBody),
        (status = 413, description = "Body over 64 KiB", body = ErrorBody),
        (status = 422, description = "Malformed body; an unknown provider, a missing or unknown field, a name in use", body = ErrorBody),
        (status = 500, description = "Internal error; see the server log", body = ErrorBody),
    )
)]
pub(crate) async fn create(
    state: &AdminState,
    token: &TokenRecord,
    body: Incoming,
) -> Result<Response<Full<Bytes>>, ApiError> {
    let new: NewCredential = json::read(body).await?;
    let name = new.name.clone();
    let record = credentials(state).create(new).await?;
    crate::audit::record(
        state.store.as_ref(),
        &token.name,
        "dns_credential.create",
        &record.id,
        "ok",
        Some(format!("{name} ({}): {:?}", record.provider, record.status)),
    )
    .await;
    Ok(json::ok(StatusCode::CREATED, &record))
}

/// List DNS credentials (never their secrets).
#[utoipa::path(
    get,
    path = "/api/v1/acme/dns-credentials",
    operation_id = "list_dns_credentials",
    tag = "dns",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Every credential, oldest first", body = CredentialList),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "The token lacks `acme.read`", body = ErrorBody),
        (status = 500, description = "Internal error; see the server log", body = ErrorBody),
    )
)]
pub(crate) async fn list(state: &AdminState) -> Result<Response<Full<Bytes>>, ApiError> {
    let all = credentials(state).list().await?;
    Ok(json::ok(
        StatusCode::OK,
        &CredentialList { credentials: &all },
    ))
}

/// One DNS credential (never its secrets).
#[utoipa::path(
    get,
    path = "/api/v1/acme/dns-credentials/{id}",
    operation_id = "show_dns_credential",
    tag = "dns",
    params(("id" = String, Path, description = "Credential id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The credential", body = DnsCredential),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "The token lacks `acme.read`", body = ErrorBody),
        (status = 404, description = "No such credential", body = ErrorBody),
        (status = 500, description = "Internal error; see the server log", body = ErrorBody),
    )
)]
pub(crate) async fn show(state: &AdminState, id: &str) -> Result<Response<Full<Bytes>>, ApiError> {
    Ok(json::ok(StatusCode::OK, &credentials(state).get(id).await?))
}

/// Ask the provider whether the credential works; the outcome is recorded.
#[utoipa::path(
    post,
    path = "/api/v1/acme/dns-credentials/{id}/validate",
    operation_id = "validate_dns_credential",
    tag = "dns",
    params(("id" = String, Path, description = "Credential id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Validated; `status` and `status_message` give the provider's answer", body = DnsCredential),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "The token lacks `acme.manage`", body = ErrorBody),
        (status = 404, description = "No such credential", body = ErrorBody),
        (status = 500, description = "Internal error; see the server log", body = ErrorBody),
    )
)]
pub(crate) async fn validate(
    state: &AdminState,
    id: &str,
) -> Result<Response<Full<Bytes>>, ApiError> {
    Ok(json::ok(
        StatusCode::OK,
        &credentials(state).validate(id).await?,
    ))
}

/// Remove a credential and its secrets.
#[utoipa::path(
    delete,
    path = "/api/v1/acme/dns-credentials/{id}",
    operation_id = "remove_dns_credential",
    tag = "dns",
    params(("id" = String, Path, description = "Credential id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Removed", body = Removed),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "The token lacks `acme.manage`", body = ErrorBody),
        (status = 404, description = "No such credential", body = ErrorBody),
        (status = 500, description = "Internal error; see the server log", body = ErrorBody),
    )
)]
pub(crate) async fn remove(
    state: &AdminState,
    token: &TokenRecord,
    id: &str,
) -> Result<Response<Full<Bytes>>, ApiError> {
    credentials(state).remove(id).await?;
    crate::audit::record(
        state.store.as_ref(),
        &token.name,
        "dns_credential.remove",
        id,
        "ok",
        None,
    )
    .await;
    Ok(json::ok(StatusCode::OK, &Removed { removed: id }))
}
