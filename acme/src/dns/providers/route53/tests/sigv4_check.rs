//! SigV4 as a server checks it: every request's signature recomputed from
//! what arrived on the socket, with this file's own canonicalization
//! written from the AWS IAM User Guide ("Create a signed AWS API request"),
//! independent of the provider's signer.

use sha2::{Digest, Sha256};

use super::fake::Account;
use crate::dns::providers::test_support::Req;

const SIGNATURE_MISMATCH: &str = "The request signature we calculated does not match the signature you provided. \
     Check your AWS Secret Access Key and signing method. Consult the service documentation for details.";

/// Checks the signature; on refusal, the error `Code` and `Message`
/// (always HTTP 403).
pub(super) fn authenticate(req: &Req, accounts: &[Account]) -> Result<(), (&'static str, String)> {
    let forbidden = |code: &'static str, message: &str| (code, message.to_owned());
    let header = |name: &str| req.header(name);
    let Some(authorization) = header("authorization") else {
        return Err(forbidden(
            "MissingAuthenticationToken",
            "Missing Authentication Token",
        ));
    };
    let Some(amz_date) = header("x-amz-date").filter(|d| d.len() == 16 && d.ends_with('Z')) else {
        return Err(forbidden(
            "IncompleteSignature",
            "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.",
        ));
    };
    let Some(fields) = authorization.strip_prefix("AWS4-HMAC-SHA256 ") else {
        return Err(forbidden(
            "IncompleteSignature",
            "Unsupported authorization type",
        ));
    };
    let mut credential = None;
    let mut signed_headers = None;
    let mut signature = None;
    for field in fields.split(", ") {
        match field.split_once('=') {
            Some(("Credential", v)) => credential = Some(v),
            Some(("SignedHeaders", v)) => signed_headers = Some(v),
            Some(("Signature", v)) => signature = Some(v),
            _ => {
                return Err(forbidden(
                    "IncompleteSignature",
                    &format!("Authorization header is malformed near '{field}'"),
                ))
            }
        }
    }
    let (Some(credential), Some(signed_headers), Some(signature)) =
        (credential, signed_headers, signature)
    else {
        return Err(forbidden(
            "IncompleteSignature",
            "Authorization header requires 'Credential', 'SignedHeaders' and 'Signature'.",
        ));
    };
    let scope: Vec<&str> = credential.split('/').collect();
    let [key_id, date, region, service, "aws4_request"] = scope.as_slice() else {
        return Err(forbidden(
            "IncompleteSignature",
            "Credential must have exactly 5 slash-delimited elements",
        ));
    };
    let Some(account) = accounts.iter().find(|a| a.access_key_id == *key_id) else {
        return Err(forbidden(
            "InvalidClientTokenId",
            "The security token included in the request is invalid.",
        ));
    };
    if *region != "us-east-1" {
        return Err(forbidden(
            "SignatureDoesNotMatch",
            &format!("Credential should be scoped to a valid region, not '{region}'."),
        ));
    }
    if *service != "route53" {
        return Err(forbidden(
            "SignatureDoesNotMatch",
            "Credential should be scoped to correct service: 'route53'.",
        ));
    }
    if !amz_date.starts_with(date) {
        return Err(forbidden("SignatureDoesNotMatch", "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP."));
    }
    let skew = (unix_from_amz(amz_date) - now()).abs();
    if skew > 300 {
        return Err(forbidden(
            "SignatureDoesNotMatch",
            "Signature expired: the request time is more than 5 minutes from the current time.",
        ));
    }
    let names: Vec<&str> = signed_headers.split(';').collect();
    let mut required = vec!["host", "x-amz-date"];
    if req.headers.contains_key("x-amz-security-token") {
        required.push("x-amz-security-token");
    }
    if let Some(missing) = required.iter().find(|r| !names.contains(r)) {
        return Err(forbidden(
            "SignatureDoesNotMatch",
            &format!("'{missing}' must be a signed header."),
        ));
    }
    if account.session_token.is_some() && header("x-amz-security-token") != account.session_token {
        return Err(forbidden(
            "InvalidClientTokenId",
            "The security token included in the request is invalid.",
        ));
    }
    // The canonical request, rebuilt from the request as received.
    let mut canonical_headers = String::new();
    for name in &names {
        let values: Vec<String> = req
            .headers
            .get_all(*name)
            .iter()
            .map(|v| {
                v.to_str()
                    .unwrap_or("")
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect();
        canonical_headers += &format!("{name}:{}\n", values.join(","));
    }
    let path = req.path.as_str();
    let canonical_path = if path.is_empty() {
        "/".to_owned()
    } else {
        path.split('/')
            .map(aws_encode)
            .collect::<Vec<_>>()
            .join("/")
    };
    let mut pairs: Vec<(String, String)> = req
        .query
        .iter()
        .map(|(k, v)| (aws_encode(k), aws_encode(v)))
        .collect();
    pairs.sort();
    let canonical_query: Vec<String> = pairs.into_iter().map(|(k, v)| k + "=" + &v).collect();
    let canonical = [
        req.method.as_str().to_owned(),
        canonical_path,
        canonical_query.join("&"),
        canonical_headers,
        signed_headers.to_owned(),
        hex(&Sha256::digest(&req.body)),
    ]
    .join("\n");
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{date}/{region}/{service}/aws4_request\n{}",
        hex(&Sha256::digest(canonical.as_bytes()))
    );
    let mut key = format!("AWS4{}", account.secret_access_key).into_bytes();
    for part in [*date, *region, *service, "aws4_request"] {
        key = hmac_sha256(&key, part.as_bytes());
    }
    if hex(&hmac_sha256(&key, string_to_sign.as_bytes())) != signature {
        return Err(forbidden("SignatureDoesNotMatch", SIGNATURE_MISMATCH));
    }
    Ok(())
}

fn hmac_sha256(key: &[u8], data: &[u8]) -> Vec<u8> {
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, key);
    aws_lc_rs::hmac::sign(&key, data).as_ref().to_vec()
}

fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .fold(String::new(), |out, b| out + &format!("{b:02x}"))
}

/// UriEncode() from the guide: unreserved characters stay, the rest is
/// `%XX` per UTF-8 byte with upper-case hex.
fn aws_encode(s: &str) -> String {
    let unreserved = |c: char| c.is_ascii_alphanumeric() || "-_.~".contains(c);
    s.chars()
        .map(|c| {
            if unreserved(c) {
                c.to_string()
            } else {
                let mut buf = [0u8; 4];
                c.encode_utf8(&mut buf)
                    .bytes()
                    .map(|b| format!("%{b:02X}"))
                    .collect()
            }
        })
        .collect()
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn unix_from_amz(amz: &str) -> i64 {
    let n = |r: std::ops::Range<usize>| amz[r].parse::<i64>().unwrap_or(0);
    let (y, m, d) = (n(0..4), n(4..6), n(6..8));
    // Days from civil (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((m + 9) % 12) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146097 + doe - 719468;
    days * 86400 + n(9..11) * 3600 + n(11..13) * 60 + n(13..15)
}
