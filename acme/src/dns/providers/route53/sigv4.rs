//! AWS Signature Version 4 (header form), as Route 53 requires.
//!
//! Following the AWS IAM User Guide, "Create a signed AWS API request":
//! 1. a canonical request: method, canonical URI (each path segment
//!    URI-encoded again, as every service but S3 expects), canonical query
//!    string (names and values URI-encoded, sorted), canonical headers
//!    (lower-case names, trimmed values with inner runs of spaces folded,
//!    sorted, one `name:value\n` each), the signed header names joined by
//!    `;`, and the hex SHA-256 of the payload;
//! 2. a string to sign: `AWS4-HMAC-SHA256`, the `x-amz-date` timestamp,
//!    the credential scope `date/region/service/aws4_request` and the hex
//!    SHA-256 of the canonical request, one per line;
//! 3. a signing key: HMAC-SHA256 chained over `"AWS4" + secret`, the date,
//!    the region, the service and `aws4_request`; the signature is the
//!    hex HMAC of the string to sign under that key.

use aws_lc_rs::{digest, hmac};
use zeroize::Zeroizing;

/// The algorithm name in the string to sign and the `Authorization` header.
pub(crate) const ALGORITHM: &str = "AWS4-HMAC-SHA256";

/// Who signs and for what: the key pair and the credential scope.
pub(crate) struct Signer<'a> {
    /// The access key id (`AKIA...`), named in the `Credential=` part.
    pub(crate) access_key_id: &'a str,
    /// The secret access key; only ever an HMAC key.
    pub(crate) secret_access_key: &'a str,
    /// Signing region, `us-east-1` for Route 53's global endpoint.
    pub(crate) region: &'a str,
    /// Signing service, `route53`.
    pub(crate) service: &'a str,
}

/// One request as it goes on the wire.
pub(crate) struct Request<'a> {
    /// `GET`, `POST`...
    pub(crate) method: &'a str,
    /// The path as sent (already percent-encoded).
    pub(crate) path: &'a str,
    /// The query as sent, without `?` (may be empty).
    pub(crate) query: &'a str,
    /// The headers to sign, `host` and `x-amz-date` among them.
    pub(crate) headers: &'a [(&'a str, &'a str)],
    /// The body.
    pub(crate) payload: &'a [u8],
}

/// The `x-amz-date` value (`YYYYMMDD'T'HHMMSS'Z'`) for a UNIX time.
pub(crate) fn amz_date(unix_seconds: i64) -> String {
    match time::OffsetDateTime::from_unix_timestamp(unix_seconds) {
        Ok(t) => format!(
            "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        ),
        // Outside time's range (years beyond ±9999): not a clock we run on.
        Err(_) => "19700101T000000Z".to_owned(),
    }
}

impl Signer<'_> {
    /// The `Authorization` header value for `request` at `amz_date`.
    pub(crate) fn authorization(&self, request: &Request<'_>, amz_date: &str) -> String {
        let (canonical, signed_headers) = canonical_request(request);
        let date = amz_date.get(..8).unwrap_or(amz_date);
        let scope = format!("{date}/{}/{}/aws4_request", self.region, self.service);
        let string_to_sign = format!(
            "{ALGORITHM}\n{amz_date}\n{scope}\n{}",
            sha256_hex(canonical.as_bytes())
        );
        let key = hmac::Key::new(hmac::HMAC_SHA256, &self.signing_key(date));
        let signature = hex(hmac::sign(&key, string_to_sign.as_bytes()).as_ref());
        format!(
            "{ALGORITHM} Credential={}/{scope}, SignedHeaders={signed_headers}, Signature={signature}",
            self.access_key_id
        )
    }

    /// The derived key: HMAC-SHA256 chained over the scope's parts.
    fn signing_key(&self, date: &str) -> Zeroizing<Vec<u8>> {
        let mut key = Zeroizing::new(format!("AWS4{}", self.secret_access_key).into_bytes());
        for part in [date, self.region, self.service, "aws4_request"] {
            let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, &key), part.as_bytes());
            key = Zeroizing::new(tag.as_ref().to_vec());
        }
        key
    }
}

/// The canonical request and the signed-headers list.
pub(crate) fn canonical_request(request: &Request<'_>) -> (String, String) {
    let mut headers: Vec<(String, String)> = request
        .headers
        .iter()
        .map(|(name, value)| {
            (
                name.to_ascii_lowercase(),
                value.split_whitespace().collect::<Vec<_>>().join(" "),
            )
        })
        .collect();
    headers.sort();
    // Repeated headers become one line with their values comma-joined.
    let mut merged: Vec<(String, String)> = Vec::with_capacity(headers.len());
    for (name, value) in headers {
        match merged.last_mut() {
            Some((last, joined)) if *last == name => {
                joined.push(',');
                joined.push_str(&value);
            }
            _ => merged.push((name, value)),
        }
    }
    let canonical_headers: String = merged.iter().map(|(n, v)| format!("{n}:{v}\n")).collect();
    let signed_headers = merged
        .iter()
        .map(|(n, _)| n.as_str())
        .collect::<Vec<_>>()
        .join(";");
    let canonical = format!(
        "{}\n{}\n{}\n{canonical_headers}\n{signed_headers}\n{}",
        request.method,
        canonical_uri(request.path),
        canonical_query(request.query),
        sha256_hex(request.payload)
    );
    (canonical, signed_headers)
}

/// Each segment of the (already encoded) path encoded once more; `/` when
/// empty.
fn canonical_uri(path: &str) -> String {
    if path.is_empty() {
        return "/".to_owned();
    }
    path.split('/')
        .map(uri_encode)
        .collect::<Vec<_>>()
        .join("/")
}

/// Parameters decoded, re-encoded, sorted by name then value.
fn canonical_query(query: &str) -> String {
    let mut pairs: Vec<(String, String)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (
                uri_encode(&percent_decode(name)),
                uri_encode(&percent_decode(value)),
            )
        })
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(n, v)| format!("{n}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// The guide's `UriEncode()`: every byte but the unreserved
/// `A-Z a-z 0-9 - . _ ~` as `%XX` with upper-case hex, `/` included.
pub(super) use super::super::support::encode as uri_encode;

fn percent_decode(input: &str) -> String {
    let bytes = input.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Lower-case hex SHA-256.
pub(crate) fn sha256_hex(data: &[u8]) -> String {
    hex(digest::digest(&digest::SHA256, data).as_ref())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

    fn signer(service: &'static str) -> Signer<'static> {
        Signer {
            access_key_id: "AKIDEXAMPLE",
            secret_access_key: SECRET,
            region: "us-east-1",
            service,
        }
    }

    /// The worked example of the AWS IAM User Guide ("Signature Version 4
    /// signing process" / "Request signature examples"): IAM ListUsers.
    #[test]
    fn signs_the_iam_list_users_example() {
        let request = Request {
            method: "GET",
            path: "/",
            query: "Action=ListUsers&Version=2010-05-08",
            headers: &[
                (
                    "Content-Type",
                    "application/x-www-form-urlencoded; charset=utf-8",
                ),
                ("Host", "iam.amazonaws.com"),
                ("X-Amz-Date", "20150830T123600Z"),
            ],
            payload: b"",
        };
        let (canonical, _) = canonical_request(&request);
        assert_eq!(
            sha256_hex(canonical.as_bytes()),
            "f536975d06c0309214f805bb90ccff089219ecd68b2577efef23edd43b7e1a59"
        );
        assert_eq!(
            signer("iam").authorization(&request, "20150830T123600Z"),
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/iam/aws4_request, \
             SignedHeaders=content-type;host;x-amz-date, \
             Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7"
        );
        assert_eq!(
            hex(&signer("iam").signing_key("20150830")),
            "c4afb1cc5771d871763a393e44b703571b55cc28424d1a5e86da6ed3c154a4b9"
        );
    }

    /// The AWS SigV4 test suite's `get-vanilla` and
    /// `get-vanilla-query-order-key-case` cases.
    #[test]
    fn signs_the_test_suite_vanilla_cases() {
        let headers = [
            ("Host", "example.amazonaws.com"),
            ("X-Amz-Date", "20150830T123600Z"),
        ];
        for (query, signature) in [
            (
                "",
                "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
            ),
            (
                "Param2=value2&Param1=value1",
                "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500",
            ),
        ] {
            let request = Request {
                method: "GET",
                path: "/",
                query,
                headers: &headers,
                payload: b"",
            };
            let authorization = signer("service").authorization(&request, "20150830T123600Z");
            assert!(
                authorization.ends_with(&format!("Signature={signature}")),
                "{authorization}"
            );
        }
    }

    #[test]
    fn canonicalizes_paths_queries_and_headers() {
        assert_eq!(canonical_uri(""), "/");
        assert_eq!(
            canonical_uri("/2013-04-01/hostedzone/Z1/rrset"),
            "/2013-04-01/hostedzone/Z1/rrset"
        );
        assert_eq!(canonical_uri("/a%20b"), "/a%2520b");
        assert_eq!(
            canonical_query("b=2&a=&A=0&c=x%2Ay*z+"),
            "A=0&a=&b=2&c=x%2Ay%2Az%2B"
        );
        let request = Request {
            method: "GET",
            path: "/",
            query: "",
            headers: &[("X-B", "  two   words "), ("x-a", "1"), ("X-A", "2")],
            payload: b"",
        };
        let (canonical, signed) = canonical_request(&request);
        assert_eq!(signed, "x-a;x-b");
        assert!(
            canonical.contains("x-a:1,2\nx-b:two words\n\nx-a;x-b\n"),
            "{canonical}"
        );
    }

    #[test]
    fn formats_amz_dates() {
        assert_eq!(amz_date(1_440_938_160), "20150830T123600Z");
        assert_eq!(amz_date(0), "19700101T000000Z");
    }
}
