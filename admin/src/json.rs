//! JSON bodies in and out.

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::api_error::ApiError;

/// Request bodies larger than this are refused.
pub(crate) const MAX_BODY: usize = 64 * 1024;

pub(crate) fn response(status: StatusCode, body: Vec<u8>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

pub(crate) fn ok<T: Serialize>(status: StatusCode, value: &T) -> Response<Full<Bytes>> {
    response(status, serde_json::to_vec(value).unwrap_or_default())
}

/// Reads and parses a JSON body; errors name what is wrong.
pub(crate) async fn read<T: DeserializeOwned>(body: Incoming) -> Result<T, ApiError> {
    let bytes = Limited::new(body, MAX_BODY)
        .collect()
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                format!("request body over {MAX_BODY} bytes"),
            )
        })?
        .to_bytes();
    serde_json::from_slice(&bytes).map_err(|e| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
            format!("request body: {e}"),
        )
    })
}
