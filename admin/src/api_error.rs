//! The one place API errors become HTTP responses.

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::Full;
use serde::Serialize;
use utoipa::ToSchema;

use crate::expose::FieldError;

/// An error answer: a status and a JSON body `{ "error": { "code", "message", "fields"? } }`.
#[derive(Debug)]
pub(crate) struct ApiError {
    pub(crate) status: StatusCode,
    pub(crate) code: &'static str,
    pub(crate) message: String,
    pub(crate) fields: Vec<FieldError>,
    /// The `Allow` header of a 405.
    pub(crate) allow: Option<&'static str>,
}

/// The body of every error answer, as the OpenAPI document names it.
pub(crate) type ErrorBody = Body<'static>;

/// The body of every error answer.
#[derive(Serialize, ToSchema)]
#[schema(as = ErrorBody)]
pub(crate) struct Body<'a> {
    error: Inner<'a>,
}

/// What went wrong.
#[derive(Serialize, ToSchema)]
#[schema(as = ErrorDetail)]
struct Inner<'a> {
    /// Stable, machine-readable: `unauthorized`, `forbidden`, `not_found`,
    /// `method_not_allowed`, `conflict`, `invalid_request`, `too_large`,
    /// `rate_limited`, `issuer_error`, `internal`.
    code: &'a str,
    /// For people: what is wrong and how to fix it.
    message: &'a str,
    /// Every rejected field (422 only).
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    fields: &'a [FieldError],
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            fields: Vec::new(),
            allow: None,
        }
    }

    /// 422 listing every rejected field.
    pub(crate) fn invalid_fields(fields: Vec<FieldError>) -> Self {
        let message = fields
            .iter()
            .map(|f| format!("{}: {}", f.field, f.message))
            .collect::<Vec<_>>()
            .join("; ");
        Self {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            code: "invalid_request",
            message,
            fields,
            allow: None,
        }
    }

    pub(crate) fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "send a valid token as `Authorization: Bearer TOKEN`",
        )
    }

    pub(crate) fn forbidden(permission: &str) -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!(
                "this token lacks the permission `{permission}`; request a token that holds it"
            ),
        )
    }

    /// 405 for a path that is served, but not with `method`; `allow` lists
    /// the methods it is served with (RFC 9110 §15.5.6).
    pub(crate) fn method_not_allowed(method: &http::Method, allow: &'static str) -> Self {
        Self {
            allow: Some(allow),
            ..Self::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                format!("{method} is not served at this path; use {allow}"),
            )
        }
    }

    pub(crate) fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{what} not found"),
        )
    }

    pub(crate) fn into_response(self) -> Response<Full<Bytes>> {
        let body = serde_json::to_vec(&Body {
            error: Inner {
                code: self.code,
                message: &self.message,
                fields: &self.fields,
            },
        })
        .unwrap_or_default();
        let mut response = crate::json::response(self.status, body);
        if let Some(allow) = self.allow {
            response
                .headers_mut()
                .insert(http::header::ALLOW, http::HeaderValue::from_static(allow));
        }
        response
    }
}

impl From<portcullis_acme::Error> for ApiError {
    fn from(error: portcullis_acme::Error) -> Self {
        use portcullis_acme::Error as E;
        let status = match &error {
            E::InvalidRequest { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            E::NotFound { .. } => StatusCode::NOT_FOUND,
            E::Lifecycle { .. } => StatusCode::CONFLICT,
            E::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            E::Acme(_) | E::Issuer { .. } => StatusCode::BAD_GATEWAY,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let code = match status {
            StatusCode::UNPROCESSABLE_ENTITY => "invalid_request",
            StatusCode::NOT_FOUND => "not_found",
            StatusCode::CONFLICT => "conflict",
            StatusCode::TOO_MANY_REQUESTS => "rate_limited",
            StatusCode::BAD_GATEWAY => "issuer_error",
            _ => "internal",
        };
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!(%error, "admin API request failed");
        }
        Self::new(status, code, error.to_string())
    }
}

impl From<portcullis_config::Error> for ApiError {
    fn from(error: portcullis_config::Error) -> Self {
        tracing::error!(%error, "admin API store access failed");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error; see the server log",
        )
    }
}

impl From<crate::Error> for ApiError {
    fn from(error: crate::Error) -> Self {
        tracing::error!(%error, "admin API request failed");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error; see the server log",
        )
    }
}
