//! The OpenAPI 3 document of the admin API, generated from the handlers'
//! `#[utoipa::path]` annotations and the request and response types, and
//! served without a token at `GET /api/v1/openapi.json`.
//!
//! The string enums below exist only for the document: the API writes these
//! values as plain strings (from `as_str` of types in other crates), and the
//! document names the values a client can receive or send.

use std::sync::OnceLock;

use bytes::Bytes;
use http::{header, HeaderValue, Response};
use http_body_util::Full;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

use crate::{certificates, dns_credentials, health, ingress, metrics, plans_api, tokens_api};

/// Name of the bearer-token security scheme in the document (the paths
/// name it as the literal `"bearer"`, which the macro requires).
pub(crate) const BEARER: &str = "bearer";

/// The admin API's OpenAPI document.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Portcullis admin API",
        description = "Certificates, expose plans, the routes monitor, tokens and the audit log. \
            Every `/api/v1` route except this document takes `Authorization: Bearer TOKEN`: \
            401 without a valid token, 403 naming the permission the token lacks. A known path \
            called with a method it does not serve answers 405 with an `Allow` header. Errors \
            are `{\"error\": {\"code\", \"message\", \"fields\"?}}`."
    ),
    paths(
        health::healthz,
        health::readyz,
        metrics::render,
        openapi_json,
        certificates::list,
        certificates::create,
        certificates::show,
        certificates::renew,
        certificates::revoke,
        dns_credentials::list,
        dns_credentials::create,
        dns_credentials::show,
        dns_credentials::validate,
        dns_credentials::remove,
        ingress::expose,
        ingress::routes,
        ingress::compose,
        plans_api::list,
        plans_api::show,
        plans_api::approve,
        plans_api::reject,
        tokens_api::list,
        tokens_api::create,
        tokens_api::revoke,
        tokens_api::audit_log,
        crate::tenants::api::show,
        crate::tenants::api::put,
        crate::tenants::api::refresh,
        crate::tenants::api::delete,
    ),
    modifiers(&BearerScheme),
    tags(
        (name = "health", description = "Liveness, readiness, metrics and this document; no token"),
        (name = "certificates", description = "ACME and internal-CA certificates"),
        (name = "dns", description = "DNS provider credentials for DNS-01; secrets go in, never out"),
        (name = "ingress", description = "Exposing services and the routes monitor"),
        (name = "plans", description = "Changes that wait for approval"),
        (name = "tokens", description = "API tokens and the audit log"),
        (name = "tenants", description = "Tenant custom domains, verified by CNAME"),
    )
)]
pub(crate) struct ApiDoc;

/// Adds the bearer security scheme the `/api/v1` routes name.
struct BearerScheme;

impl Modify for BearerScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let mut scheme = Http::new(HttpAuthScheme::Bearer);
        scheme.description = Some(
            "An admin token: `<data_dir>/admin.token` on first start, or one made with \
             `POST /api/v1/tokens`."
                .into(),
        );
        components.add_security_scheme(BEARER, SecurityScheme::Http(scheme));
    }
}

/// The document as JSON, built once.
pub(crate) fn document() -> &'static Bytes {
    static DOCUMENT: OnceLock<Bytes> = OnceLock::new();
    DOCUMENT.get_or_init(|| {
        // Serializing a document made of maps, strings and numbers cannot fail.
        Bytes::from(serde_json::to_vec(&ApiDoc::openapi()).unwrap_or_default())
    })
}

/// This document.
#[utoipa::path(
    get,
    path = "/api/v1/openapi.json",
    operation_id = "openapi",
    tag = "health",
    responses(
        (status = 200, description = "The OpenAPI 3 document of this API", content_type = "application/json", body = Object),
    )
)]
pub(crate) fn openapi_json() -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(document().clone()));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

// === Value sets written as strings ===

/// A certificate's lifecycle status.
#[derive(ToSchema)]
#[schema(as = CertificateStatus)]
#[allow(dead_code)]
pub(crate) enum CertificateStatusName {
    /// Requested; no order placed yet.
    #[schema(rename = "pending")]
    Pending,
    /// An order is under way for a certificate that was never valid.
    #[schema(rename = "issuing")]
    Issuing,
    /// Issued and served.
    #[schema(rename = "valid")]
    Valid,
    /// Being replaced; the old certificate keeps serving.
    #[schema(rename = "renewing")]
    Renewing,
    /// Revoked at the issuer (final).
    #[schema(rename = "revoked")]
    Revoked,
    /// Issuance failed; `status_message` says why.
    #[schema(rename = "failed")]
    Failed,
}

/// How the issuer checks control of the names.
#[derive(ToSchema)]
#[schema(as = ChallengeType)]
#[allow(dead_code)]
pub(crate) enum ChallengeTypeName {
    /// RFC 8555 §8.3.
    #[schema(rename = "http-01")]
    Http01,
    /// RFC 8737.
    #[schema(rename = "tls-alpn-01")]
    TlsAlpn01,
    /// RFC 8555 §8.4.
    #[schema(rename = "dns-01")]
    Dns01,
}

/// A listener.
#[derive(ToSchema)]
#[schema(as = Entrypoint)]
#[allow(dead_code)]
pub(crate) enum EntrypointName {
    /// Plain HTTP.
    #[schema(rename = "web")]
    Web,
    /// HTTPS.
    #[schema(rename = "websecure")]
    Websecure,
}

/// A router's client-certificate policy.
#[derive(ToSchema)]
#[schema(as = Mtls)]
#[allow(dead_code)]
pub(crate) enum MtlsName {
    /// No client certificate is looked at.
    #[schema(rename = "off")]
    Off,
    /// Verified when presented.
    #[schema(rename = "optional")]
    Optional,
    /// Required.
    #[schema(rename = "required")]
    Required,
}

/// A permission a token can hold (see `tokens::ALL_PERMISSIONS`).
#[derive(ToSchema)]
#[schema(as = Permission)]
#[allow(dead_code)]
pub(crate) enum PermissionName {
    /// Read routes and plans.
    #[schema(rename = "ingress.read")]
    IngressRead,
    /// Expose services, compose tables.
    #[schema(rename = "ingress.manage")]
    IngressManage,
    /// Read certificates.
    #[schema(rename = "acme.read")]
    AcmeRead,
    /// Request, renew and revoke certificates.
    #[schema(rename = "acme.manage")]
    AcmeManage,
    /// Approve or reject plans.
    #[schema(rename = "plans.approve")]
    PlansApprove,
    /// Manage tenant domains.
    #[schema(rename = "domains.manage")]
    DomainsManage,
    /// Read the audit log.
    #[schema(rename = "audit.read")]
    AuditRead,
}

/// The protocol an exposed service is published on.
#[derive(ToSchema)]
#[schema(as = ServiceProtocol)]
#[allow(dead_code)]
pub(crate) enum ServiceProtocolName {
    /// Plain HTTP on `web`.
    #[schema(rename = "http")]
    Http,
    /// HTTPS on `websecure`, with a certificate.
    #[schema(rename = "https")]
    Https,
}

#[cfg(test)]
mod tests;
