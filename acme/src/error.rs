use portcullis_config::model::IllegalTransition;

/// Errors from certificate issuance and the secret store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The request is not acceptable; nothing was created.
    #[error("invalid request: {field}: {message}")]
    InvalidRequest {
        /// The offending field, as named in the API.
        field: &'static str,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// No certificate with this id.
    #[error("certificate {id} does not exist")]
    NotFound {
        /// The id asked for.
        id: String,
    },
    /// The operation does not fit the record's current status.
    #[error("certificate {id}: {source}")]
    Lifecycle {
        /// The record.
        id: String,
        /// The refused move.
        #[source]
        source: IllegalTransition,
    },
    /// The configured weekly limit for a registered domain is reached.
    #[error("rate limit: {count} certificates for {domain} from {issuer} in the last 7 days (limit {limit}); the next one is possible after {retry_after_unix} (unix time)")]
    RateLimited {
        /// The issuer.
        issuer: String,
        /// The registered domain.
        domain: String,
        /// Certificates counted.
        count: u32,
        /// The limit.
        limit: u32,
        /// When the oldest counted issuance leaves the window.
        retry_after_unix: i64,
    },
    /// The ACME server refused or failed; the message is the server's problem document.
    #[error("{0}")]
    Acme(String),
    /// The issuer is misconfigured or unreachable.
    #[error("issuer {issuer}: {message}")]
    Issuer {
        /// The issuer.
        issuer: String,
        /// What went wrong.
        message: String,
    },
    /// Secret material could not be sealed, opened or found. Never contains the secret.
    #[error("secret store: {0}")]
    Secret(String),
    /// Certificate material could not be generated or parsed.
    #[error("certificate material: {0}")]
    Material(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] portcullis_config::Error),
}

impl From<instant_acme::Error> for Error {
    fn from(error: instant_acme::Error) -> Self {
        match error {
            // RFC 8555 §6.7: keep the server's problem type and detail verbatim.
            instant_acme::Error::Api(problem) => Self::Acme(problem_text(&problem)),
            other => Self::Acme(other.to_string()),
        }
    }
}

/// `type: detail` of an ACME problem document, as the server wrote them.
pub(crate) fn problem_text(problem: &instant_acme::Problem) -> String {
    match (&problem.r#type, &problem.detail) {
        (Some(kind), Some(detail)) => format!("{kind}: {detail}"),
        (Some(kind), None) => kind.clone(),
        (None, Some(detail)) => detail.clone(),
        (None, None) => "the ACME server returned an empty problem document".to_owned(),
    }
}
