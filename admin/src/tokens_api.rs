//! `/api/v1/tokens`: create (shown once), list, revoke.
//!
//! A token can only hand out permissions it holds itself, and only revoke a
//! token whose permissions it holds: no path to more power than one has.

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use portcullis_config::store::{space, Expect};
use serde::{Deserialize, Serialize};

use crate::api_error::ApiError;
use crate::server::AdminState;
use crate::tokens::{self, TokenRecord, ALL_PERMISSIONS};
use crate::{audit, json};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateToken {
    name: String,
    permissions: Vec<String>,
}

#[derive(Serialize)]
struct Created<'a> {
    name: &'a str,
    permissions: &'a [String],
    /// Shown once; only its hash is kept.
    token: &'a str,
}

#[derive(Serialize)]
struct Listed<'a> {
    name: &'a str,
    permissions: &'a [String],
    created_at: i64,
}

#[derive(Serialize)]
struct TokenList<'a> {
    tokens: Vec<Listed<'a>>,
}

pub(crate) async fn create(
    state: &AdminState,
    caller: &TokenRecord,
    body: Incoming,
) -> Result<Response<Full<Bytes>>, ApiError> {
    let request: CreateToken = json::read(body).await?;
    let mut fields = Vec::new();
    let valid_name = !request.name.is_empty()
        && request.name.len() <= 64
        && request
            .name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if !valid_name {
        fields.push(crate::expose::FieldError {
            field: "name".into(),
            message: "1-64 letters, digits, '-', '_' or '.'".into(),
        });
    }
    if request.permissions.is_empty() {
        fields.push(crate::expose::FieldError {
            field: "permissions".into(),
            message: format!("name at least one of: {}", ALL_PERMISSIONS.join(", ")),
        });
    }
    for permission in &request.permissions {
        if !ALL_PERMISSIONS.contains(&permission.as_str()) {
            fields.push(crate::expose::FieldError {
                field: "permissions".into(),
                message: format!(
                    "\"{permission}\" is not a permission; use: {}",
                    ALL_PERMISSIONS.join(", ")
                ),
            });
        }
    }
    if !fields.is_empty() {
        return Err(ApiError::invalid_fields(fields));
    }
    if let Some(missing) = request.permissions.iter().find(|p| !caller.allows(p)) {
        audit::record(
            state.store.as_ref(),
            &caller.name,
            "token.create",
            &request.name,
            "denied",
            None,
        )
        .await;
        return Err(ApiError::forbidden(missing));
    }
    let token = tokens::generate();
    let record = TokenRecord {
        name: request.name.clone(),
        sha256: tokens::hash(&token),
        permissions: request.permissions.clone(),
        created_at: portcullis_acme::unix_now(),
    };
    let value = serde_json::to_vec(&record).unwrap_or_default();
    if state
        .store
        .put(space::TOKENS, &record.name, value, Expect::Absent)
        .await
        .is_err()
    {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            format!(
                "a token named \"{}\" exists; revoke it first or pick another name",
                record.name
            ),
        ));
    }
    audit::record(
        state.store.as_ref(),
        &caller.name,
        "token.create",
        &record.name,
        "ok",
        Some(record.permissions.join(",")),
    )
    .await;
    Ok(json::ok(
        StatusCode::CREATED,
        &Created {
            name: &record.name,
            permissions: &record.permissions,
            token: &token,
        },
    ))
}

pub(crate) async fn list(state: &AdminState) -> Result<Response<Full<Bytes>>, ApiError> {
    let records: Vec<TokenRecord> = state
        .store
        .list(space::TOKENS)
        .await?
        .iter()
        .filter_map(|e| serde_json::from_slice(&e.value).ok())
        .collect();
    let tokens = records
        .iter()
        .map(|r| Listed {
            name: &r.name,
            permissions: &r.permissions,
            created_at: r.created_at,
        })
        .collect();
    Ok(json::ok(StatusCode::OK, &TokenList { tokens }))
}

pub(crate) async fn revoke(
    state: &AdminState,
    caller: &TokenRecord,
    name: &str,
) -> Result<Response<Full<Bytes>>, ApiError> {
    let entry = state
        .store
        .get(space::TOKENS, name)
        .await?
        .ok_or_else(|| ApiError::not_found("token"))?;
    let record: TokenRecord = serde_json::from_slice(&entry.value).map_err(|_| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "unreadable token record",
        )
    })?;
    if let Some(missing) = record.permissions.iter().find(|p| !caller.allows(p)) {
        audit::record(
            state.store.as_ref(),
            &caller.name,
            "token.revoke",
            name,
            "denied",
            None,
        )
        .await;
        return Err(ApiError::forbidden(missing));
    }
    state
        .store
        .delete(space::TOKENS, name, Expect::Revision(entry.revision))
        .await?;
    audit::record(
        state.store.as_ref(),
        &caller.name,
        "token.revoke",
        name,
        "ok",
        None,
    )
    .await;
    Ok(json::ok(
        StatusCode::OK,
        &serde_json::json!({ "revoked": name }),
    ))
}

#[derive(Serialize)]
struct AuditList {
    entries: Vec<audit::AuditEntry>,
}

pub(crate) async fn audit_log(
    state: &AdminState,
    query: Option<&str>,
) -> Result<Response<Full<Bytes>>, ApiError> {
    let limit = query
        .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("limit=")))
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(100)
        .clamp(1, 10_000);
    let entries = audit::list(state.store.as_ref(), limit).await?;
    Ok(json::ok(StatusCode::OK, &AuditList { entries }))
}
