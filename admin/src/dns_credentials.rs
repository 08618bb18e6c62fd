//! `/api/v1/acme/dns-credentials`: store, list, validate, remove.
//!
//! Secret fields go in, never out: no answer, error or log line carries them.

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use portcullis_acme::dns::credentials::{Credentials, DnsCredential, NewCredential};
use serde::Serialize;

use crate::api_error::ApiError;
use crate::json;
use crate::server::AdminState;
use crate::tokens::TokenRecord;

#[derive(Serialize)]
struct CredentialList<'a> {
    credentials: &'a [DnsCredential],
}

fn credentials(state: &AdminState) -> &Credentials {
    state.certificates.credentials()
}

/// 201 with the record; its status says whether the provider accepted it.
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

pub(crate) async fn list(state: &AdminState) -> Result<Response<Full<Bytes>>, ApiError> {
    let all = credentials(state).list().await?;
    Ok(json::ok(
        StatusCode::OK,
        &CredentialList { credentials: &all },
    ))
}

pub(crate) async fn show(state: &AdminState, id: &str) -> Result<Response<Full<Bytes>>, ApiError> {
    Ok(json::ok(StatusCode::OK, &credentials(state).get(id).await?))
}

pub(crate) async fn validate(
    state: &AdminState,
    id: &str,
) -> Result<Response<Full<Bytes>>, ApiError> {
    Ok(json::ok(
        StatusCode::OK,
        &credentials(state).validate(id).await?,
    ))
}

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
    Ok(json::ok(
        StatusCode::OK,
        &serde_json::json!({ "removed": id }),
    ))
}
