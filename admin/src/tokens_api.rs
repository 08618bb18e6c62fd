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
use utoipa::ToSchema;

use crate::api_error::{ApiError, ErrorBody};
use crate::server::AdminState;
use crate::tokens::{self, Beyond, TokenRecord, ALL_PERMISSIONS};
use crate::{audit, json};

/// The request body of `POST /api/v1/tokens`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct CreateToken {
    /// 1-64 letters, digits, `-`, `_` or `.`; shown in the audit log.
    #[schema(pattern = "^[A-Za-z0-9._-]{1,64}$", example = "deploy-bot")]
    name: String,
    /// At least one; only permissions the calling token holds.
    #[schema(value_type = Vec<crate::openapi::PermissionName>, min_items = 1)]
    permissions: Vec<String>,
    /// Limit the token to one tenant's domain.
    #[serde(default)]
    tenant: Option<String>,
}

/// A new token.
#[derive(Serialize, ToSchema)]
#[schema(as = CreatedToken)]
struct Created<'a> {
    /// Its name.
    name: &'a str,
    /// What it may do.
    permissions: &'a [String],
    /// Shown once; only its hash is kept.
    token: &'a str,
}

/// A token, without its secret.
#[derive(Serialize, ToSchema)]
#[schema(as = Token)]
struct Listed<'a> {
    /// Its name.
    name: &'a str,
    /// What it may do.
    permissions: &'a [String],
    /// Unix seconds.
    created_at: i64,
}

/// The tokens within the caller's reach.
#[derive(Serialize, ToSchema)]
struct TokenList<'a> {
    /// The tokens.
    tokens: Vec<Listed<'a>>,
}

/// A token was revoked.
#[derive(Serialize, ToSchema)]
struct Revoked<'a> {
    /// Its name.
    revoked: &'a str,
}

/// Create a token; the answer is the only place its secret appears.
#[utoipa::path(
    post,
    path = "/api/v1/tokens",
    operation_id = "create_token",
    tag = "tokens",
    request_body = CreateToken,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Created; `token` is shown once", body = Created),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "The calling token lacks a permission it tried to hand out, or is limited to a tenant the new token would not be", body = ErrorBody),
        (status = 409, description = "A token with that name exists", body = ErrorBody),
        (status = 413, description = "Body over 64 KiB", body = ErrorBody),
        (status = 422, description = "Malformed body, or every rejected field listed in `fields`", body = ErrorBody),
        (status = 500, description = "Internal error; see the server log", body = ErrorBody),
    )
)]
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
    if let Err(beyond) = caller.reaches(&request.permissions, request.tenant.as_deref()) {
        audit::record(
            state.store.as_ref(),
            &caller.name,
            "token.create",
            &request.name,
            "denied",
            None,
        )
        .await;
        return Err(match beyond {
            Beyond::Permission(missing) => ApiError::forbidden(missing),
            Beyond::Tenant => tenant_limited(caller),
        });
    }
    let token = tokens::generate();
    let record = TokenRecord {
        name: request.name.clone(),
        sha256: tokens::hash(&token),
        permissions: request.permissions.clone(),
        created_at: portcullis_acme::unix_now(),
        tenant: request.tenant.clone(),
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

/// 403 for a tenant-limited caller that tried to create a token beyond its
/// tenant.
fn tenant_limited(caller: &TokenRecord) -> ApiError {
    let tenant = caller.tenant.as_deref().unwrap_or_default();
    ApiError::new(
        StatusCode::FORBIDDEN,
        "forbidden",
        format!(
            "this token is limited to tenant `{tenant}` and can only create tokens limited to it; \
             set \"tenant\": \"{tenant}\""
        ),
    )
}

/// List the tokens the caller could have created or could revoke: those
/// whose every permission it holds, within its tenant if it is limited to
/// one (never their secrets).
#[utoipa::path(
    get,
    path = "/api/v1/tokens",
    operation_id = "list_tokens",
    tag = "tokens",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The tokens within the caller's reach", body = TokenList),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 500, description = "Internal error; see the server log", body = ErrorBody),
    )
)]
pub(crate) async fn list(
    state: &AdminState,
    caller: &TokenRecord,
) -> Result<Response<Full<Bytes>>, ApiError> {
    let records: Vec<TokenRecord> = state
        .store
        .list(space::TOKENS)
        .await?
        .iter()
        .filter_map(|e| serde_json::from_slice::<TokenRecord>(&e.value).ok())
        .filter(|r| caller.reaches(&r.permissions, r.tenant.as_deref()).is_ok())
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

/// Revoke a token; only a caller holding every permission of that token
/// may, and a tenant-limited caller only tokens limited to its tenant.
#[utoipa::path(
    delete,
    path = "/api/v1/tokens/{name}",
    operation_id = "revoke_token",
    tag = "tokens",
    params(("name" = String, Path, description = "Token name")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Revoked", body = Revoked),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "The calling token lacks a permission the revoked token holds", body = ErrorBody),
        (status = 404, description = "No such token (or, for a tenant-limited caller, none in its tenant)", body = ErrorBody),
        (status = 500, description = "Internal error; see the server log", body = ErrorBody),
    )
)]
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
    let reach = caller.reaches(&record.permissions, record.tenant.as_deref());
    if let Err(beyond) = reach {
        audit::record(
            state.store.as_ref(),
            &caller.name,
            "token.revoke",
            name,
            "denied",
            None,
        )
        .await;
        return Err(match beyond {
            Beyond::Permission(missing) => ApiError::forbidden(missing),
            // Outside the caller's tenant, a token is not there at all, as
            // with the tenants' domains.
            Beyond::Tenant => ApiError::not_found("token"),
        });
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
    Ok(json::ok(StatusCode::OK, &Revoked { revoked: name }))
}

/// Audit entries, newest first.
#[derive(Serialize, ToSchema)]
struct AuditList {
    /// The entries.
    entries: Vec<audit::AuditEntry>,
}

/// Entries `GET /api/v1/audit` returns when the query names no `limit`.
const DEFAULT_AUDIT_LIMIT: usize = 100;
/// The most entries one `GET /api/v1/audit` returns.
const MAX_AUDIT_LIMIT: usize = 10_000;

/// The newest entries of the audit log.
#[utoipa::path(
    get,
    path = "/api/v1/audit",
    operation_id = "list_audit",
    tag = "tokens",
    params(
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 10000, description = "How many entries, newest first; 100 when absent"),
    ),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The newest entries, newest first", body = AuditList),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "The token lacks `audit.read`", body = ErrorBody),
        (status = 422, description = "`limit` is not a whole number in 1-10000", body = ErrorBody),
        (status = 500, description = "Internal error; see the server log", body = ErrorBody),
    )
)]
pub(crate) async fn audit_log(
    state: &AdminState,
    query: Option<&str>,
) -> Result<Response<Full<Bytes>>, ApiError> {
    let limit = match query.and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("limit="))) {
        None => DEFAULT_AUDIT_LIMIT,
        Some(text) => text
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_AUDIT_LIMIT).contains(n))
            .ok_or_else(|| {
                ApiError::invalid_fields(vec![crate::expose::FieldError {
                    field: "limit".into(),
                    message: format!("\"{text}\" is not a whole number in 1-{MAX_AUDIT_LIMIT}"),
                }])
            })?,
    };
    let entries = audit::list(state.store.as_ref(), limit).await?;
    Ok(json::ok(StatusCode::OK, &AuditList { entries }))
}
