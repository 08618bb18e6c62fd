//! A local Google: the OAuth token endpoint (JWT bearer grant) and the
//! Cloud DNS v1 calls the provider makes. The token endpoint verifies the
//! assertion's RS256 signature with the service account's public key and
//! checks its claims; the DNS calls require `Authorization: Bearer` with a
//! token it issued and not yet expired, answering Google's error JSON
//! otherwise.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use aws_lc_rs::signature::{UnparsedPublicKey, RSA_PKCS1_2048_8192_SHA256};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use http::StatusCode;
use serde_json::{json, Value};

use crate::dns::providers::test_support::{param, reply, Fake, Reply, Req};

const SCOPE: &str = "https://www.googleapis.com/auth/ndev.clouddns.readwrite";
const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/// A resource record set.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct RrSet {
    pub(super) name: String,
    pub(super) kind: String,
    pub(super) ttl: u64,
    pub(super) rrdatas: Vec<String>,
}

struct Zone {
    name: String,
    dns_name: String,
    private: bool,
    rrsets: Vec<RrSet>,
}

pub(super) struct State {
    client_email: String,
    /// RSAPublicKey DER of the service account's key.
    public_key: Vec<u8>,
    project: String,
    token_uri: String,
    token_lifetime: u64,
    tokens: Vec<(String, Instant)>,
    exchanges: u32,
    zones: Vec<Zone>,
    page_size: usize,
    /// `METHOD path?query` of every authorized DNS call.
    log: Vec<String>,
    /// Answer 412 to this many coming changes.
    conflicts: u32,
}

/// The running fake; stops when dropped.
pub(super) type FakeGoogle = Fake<State>;

impl FakeGoogle {
    /// Starts on 127.0.0.1:0 for one service account of `project`; the
    /// token endpoint is `{url}/token`.
    pub(super) async fn start(client_email: &str, public_key: &[u8], project: &str) -> Self {
        let fake = Fake::serve(
            State {
                client_email: client_email.to_owned(),
                public_key: public_key.to_vec(),
                project: project.to_owned(),
                token_uri: String::new(),
                token_lifetime: 3599,
                tokens: Vec::new(),
                exchanges: 0,
                zones: Vec::new(),
                page_size: 2,
                log: Vec::new(),
                conflicts: 0,
            },
            handle,
        )
        .await;
        fake.state.lock().unwrap().token_uri = format!("{}/token", fake.url());
        fake
    }

    /// Adds a managed zone holding an SOA and NS at its apex.
    pub(super) fn add_zone(&self, name: &str, dns_name: &str, private: bool) {
        let apex = format!("{dns_name}.");
        let rrsets = vec![
            rrset(&apex, "NS", 21600, &["ns-cloud-a1.googledomains.com."]),
            rrset(&apex, "SOA", 21600, &["ns-cloud-a1.googledomains.com. cloud-dns-hostmaster.google.com. 1 21600 3600 259200 300"]),
        ];
        self.state.lock().unwrap().zones.push(Zone {
            name: name.to_owned(),
            dns_name: apex,
            private,
            rrsets,
        });
    }

    /// Puts a record set straight into managed zone `zone`.
    pub(super) fn put(&self, zone: &str, new: RrSet) {
        let mut state = self.state.lock().unwrap();
        let zone = state.zones.iter_mut().find(|z| z.name == zone).unwrap();
        zone.rrsets
            .retain(|s| !(s.name == new.name && s.kind == new.kind));
        zone.rrsets.push(new);
    }

    /// The set `name` (no dot) of type `kind` in managed zone `zone`.
    pub(super) fn get(&self, zone: &str, name: &str, kind: &str) -> Option<RrSet> {
        let state = self.state.lock().unwrap();
        let zone = state.zones.iter().find(|z| z.name == zone)?;
        zone.rrsets
            .iter()
            .find(|s| s.name == format!("{name}.") && s.kind == kind)
            .cloned()
    }

    /// Token exchanges so far.
    pub(super) fn exchanges(&self) -> u32 {
        self.state.lock().unwrap().exchanges
    }

    /// Authorized DNS calls so far.
    pub(super) fn log(&self) -> Vec<String> {
        self.state.lock().unwrap().log.clone()
    }

    /// `expires_in` of the tokens issued from now on.
    pub(super) fn token_lifetime(&self, seconds: u64) {
        self.state.lock().unwrap().token_lifetime = seconds;
    }

    /// Revokes every issued token.
    pub(super) fn revoke_tokens(&self) {
        self.state.lock().unwrap().tokens.clear();
    }

    /// The next `n` changes fail with 412, as if someone changed the set.
    pub(super) fn conflicts(&self, n: u32) {
        self.state.lock().unwrap().conflicts = n;
    }
}

/// A record set value.
pub(super) fn rrset(name: &str, kind: &str, ttl: u64, rrdatas: &[&str]) -> RrSet {
    RrSet {
        name: name.to_owned(),
        kind: kind.to_owned(),
        ttl,
        rrdatas: rrdatas.iter().map(|r| (*r).to_owned()).collect(),
    }
}

type Answer = Reply;

fn json_answer(status: StatusCode, body: &Value) -> Answer {
    reply(
        status.as_u16(),
        "application/json; charset=UTF-8",
        body.to_string(),
    )
}

/// Google's API error document.
fn google_error(status: StatusCode, code: &str, reason: &str, message: &str) -> Answer {
    json_answer(
        status,
        &json!({ "error": {
            "code": status.as_u16(),
            "message": message,
            "errors": [{ "message": message, "domain": "global", "reason": reason }],
            "status": code,
        }}),
    )
}

/// RFC 6749 §5.2 error from the token endpoint.
fn oauth_error(error: &str, description: &str) -> Answer {
    json_answer(
        StatusCode::BAD_REQUEST,
        &json!({ "error": error, "error_description": description }),
    )
}

fn handle(state: &Mutex<State>, req: &Req) -> Answer {
    let mut state = state.lock().unwrap();
    if req.path == "/token" {
        return token(&mut state, req);
    }
    let bearer = req
        .header("authorization")
        .and_then(|v| v.strip_prefix("Bearer "));
    let now = Instant::now();
    if !bearer.is_some_and(|b| state.tokens.iter().any(|(t, until)| t == b && now < *until)) {
        return google_error(
            StatusCode::UNAUTHORIZED,
            "UNAUTHENTICATED",
            "authError",
            "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other \
             valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project.",
        );
    }
    state.log.push(format!("{} {}", req.method, req.uri));
    let query = parse_form(req.uri.query().unwrap_or(""));
    let segments: Vec<&str> = req.path.trim_start_matches('/').split('/').collect();
    let ["dns", "v1", "projects", project, rest @ ..] = segments.as_slice() else {
        return google_error(StatusCode::NOT_FOUND, "NOT_FOUND", "notFound", "Not Found");
    };
    if *project != state.project {
        return google_error(
            StatusCode::FORBIDDEN,
            "PERMISSION_DENIED",
            "forbidden",
            "Forbidden",
        );
    }
    match (req.method.as_str(), rest) {
        ("GET", ["managedZones"]) => list_zones(&state, &query),
        ("GET", ["managedZones", zone, "rrsets"]) => list_rrsets(&state, zone, &query),
        ("POST", ["managedZones", zone, "changes"]) => {
            let zone = (*zone).to_owned();
            change(&mut state, &zone, req)
        }
        _ => google_error(StatusCode::NOT_FOUND, "NOT_FOUND", "notFound", "Not Found"),
    }
}

fn parse_form(form: &str) -> Vec<(String, String)> {
    let decode = |s: &str| {
        let bytes = s.replace('+', " ").into_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'%' && i + 2 < bytes.len() {
                out.push(
                    u8::from_str_radix(std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap(), 16)
                        .unwrap(),
                );
                i += 3;
            } else {
                out.push(bytes[i]);
                i += 1;
            }
        }
        String::from_utf8(out).unwrap()
    };
    form.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect()
}

// === the token endpoint ===

fn token(state: &mut State, req: &Req) -> Answer {
    let form_type = req.header("content-type").unwrap_or("");
    if req.method != http::Method::POST
        || !form_type.starts_with("application/x-www-form-urlencoded")
    {
        return oauth_error("invalid_request", "Expected a form-encoded POST");
    }
    let form = parse_form(std::str::from_utf8(&req.body).unwrap_or(""));
    if param(&form, "grant_type") != Some(JWT_BEARER) {
        return oauth_error("unsupported_grant_type", "Invalid grant_type");
    }
    let Some(assertion) = param(&form, "assertion") else {
        return oauth_error("invalid_request", "Missing required parameter: assertion");
    };
    let parts: Vec<&str> = assertion.split('.').collect();
    let [header, claims, signature] = parts.as_slice() else {
        return oauth_error("invalid_grant", "Invalid JWT: not three segments");
    };
    let decode = |s: &str| URL_SAFE_NO_PAD.decode(s).ok();
    let header: Value = decode(header)
        .and_then(|h| serde_json::from_slice(&h).ok())
        .unwrap_or(Value::Null);
    if header["alg"] != "RS256" || header["typ"] != "JWT" {
        return oauth_error(
            "invalid_grant",
            "Invalid JWT: the header must be {\"alg\":\"RS256\",\"typ\":\"JWT\"}",
        );
    }
    let signed = format!("{}.{}", parts[0], parts[1]);
    let key = UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, &state.public_key);
    let verified = decode(signature).is_some_and(|sig| key.verify(signed.as_bytes(), &sig).is_ok());
    if !verified {
        return oauth_error("invalid_grant", "Invalid JWT Signature.");
    }
    let claims: Value = decode(claims)
        .and_then(|c| serde_json::from_slice(&c).ok())
        .unwrap_or(Value::Null);
    if claims["iss"] != state.client_email.as_str() {
        return oauth_error("invalid_grant", "Invalid grant: account not found");
    }
    if claims["aud"] != state.token_uri.as_str() {
        return oauth_error("invalid_grant", "Invalid JWT: Failed audience check.");
    }
    let scopes = claims["scope"].as_str().unwrap_or("");
    if !scopes.split(' ').any(|s| s == SCOPE) {
        return oauth_error(
            "invalid_scope",
            "The Cloud DNS read-write scope was not requested.",
        );
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let (Some(iat), Some(exp)) = (claims["iat"].as_i64(), claims["exp"].as_i64()) else {
        return oauth_error("invalid_grant", "Invalid JWT: iat and exp are required.");
    };
    if exp <= now || iat > now + 60 || exp - iat > 3600 {
        return oauth_error(
            "invalid_grant",
            "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. \
             Check your iat and exp values in the JWT claim.",
        );
    }
    state.exchanges += 1;
    let token = format!("ya29.fake-token-{}", state.exchanges);
    let lifetime = state.token_lifetime;
    state.tokens.push((
        token.clone(),
        Instant::now() + Duration::from_secs(lifetime),
    ));
    json_answer(
        StatusCode::OK,
        &json!({ "access_token": token, "expires_in": lifetime, "token_type": "Bearer" }),
    )
}

// === Cloud DNS ===

fn zone_json(zone: &Zone) -> Value {
    json!({
        "kind": "dns#managedZone",
        "name": zone.name,
        "dnsName": zone.dns_name,
        "id": "1234567890",
        "visibility": if zone.private { "private" } else { "public" },
        "nameServers": ["ns-cloud-a1.googledomains.com."],
    })
}

fn rrset_json(set: &RrSet) -> Value {
    json!({ "kind": "dns#resourceRecordSet", "name": set.name, "type": set.kind, "ttl": set.ttl, "rrdatas": set.rrdatas })
}

fn list_zones(state: &State, query: &[(String, String)]) -> Answer {
    let dns_name = param(query, "dnsName");
    if dns_name.is_some_and(|n| !n.ends_with('.')) {
        return google_error(
            StatusCode::BAD_REQUEST,
            "INVALID_ARGUMENT",
            "invalid",
            "Invalid value for 'dnsName'",
        );
    }
    let matching: Vec<&Zone> = state
        .zones
        .iter()
        .filter(|z| dns_name.is_none_or(|n| z.dns_name == n))
        .collect();
    let start: usize = param(query, "pageToken")
        .and_then(|t| t.strip_prefix("page-"))
        .and_then(|t| t.parse().ok())
        .unwrap_or(0);
    let page: Vec<Value> = matching
        .iter()
        .skip(start)
        .take(state.page_size)
        .map(|z| zone_json(z))
        .collect();
    let mut body = json!({ "kind": "dns#managedZonesListResponse", "managedZones": page });
    if matching.len() > start + state.page_size {
        body["nextPageToken"] = json!(format!("page-{}", start + state.page_size));
    }
    json_answer(StatusCode::OK, &body)
}

fn no_zone(zone: &str) -> Answer {
    google_error(
        StatusCode::NOT_FOUND,
        "NOT_FOUND",
        "notFound",
        &format!("The 'parameters.managedZone' resource named '{zone}' does not exist."),
    )
}

fn list_rrsets(state: &State, zone: &str, query: &[(String, String)]) -> Answer {
    let Some(zone) = state.zones.iter().find(|z| z.name == zone) else {
        return no_zone(zone);
    };
    let (name, kind) = (param(query, "name"), param(query, "type"));
    if kind.is_some() && name.is_none() {
        return google_error(
            StatusCode::BAD_REQUEST,
            "INVALID_ARGUMENT",
            "required",
            "Required parameter: name",
        );
    }
    let sets: Vec<Value> = zone
        .rrsets
        .iter()
        .filter(|s| name.is_none_or(|n| s.name == n) && kind.is_none_or(|k| s.kind == k))
        .map(rrset_json)
        .collect();
    json_answer(
        StatusCode::OK,
        &json!({ "kind": "dns#resourceRecordSetsListResponse", "rrsets": sets }),
    )
}

/// A TXT rrdata must be one or more quoted strings.
fn quoted(rrdata: &str) -> bool {
    let rrdata = rrdata.trim();
    rrdata.len() >= 2 && rrdata.starts_with('"') && rrdata.ends_with('"')
}

fn read_rrset(value: &Value, zone: &Zone, what: &str) -> Result<RrSet, String> {
    let name = value["name"]
        .as_str()
        .ok_or(format!("{what}.name is required"))?;
    let kind = value["type"]
        .as_str()
        .ok_or(format!("{what}.type is required"))?;
    let ttl = value["ttl"]
        .as_u64()
        .ok_or(format!("{what}.ttl is required"))?;
    let rrdatas: Vec<String> = value["rrdatas"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_owned)
        .collect();
    if !name.ends_with('.') {
        return Err(format!("Invalid value for '{what}.name': '{name}'"));
    }
    if !(name == zone.dns_name || name.ends_with(&format!(".{}", zone.dns_name))) {
        return Err(format!(
            "The resource record set '{what}' is invalid because the DNS name '{name}' is not within the zone '{}'",
            zone.dns_name
        ));
    }
    if rrdatas.is_empty() || (kind == "TXT" && !rrdatas.iter().all(|r| quoted(r))) {
        return Err(format!("Invalid value for '{what}.rrdata'"));
    }
    Ok(RrSet {
        name: name.to_owned(),
        kind: kind.to_owned(),
        ttl,
        rrdatas,
    })
}

fn change(state: &mut State, zone_name: &str, req: &Req) -> Answer {
    let json_type = req.header("content-type").unwrap_or("");
    if !json_type.starts_with("application/json") {
        return google_error(
            StatusCode::BAD_REQUEST,
            "INVALID_ARGUMENT",
            "parseError",
            "Expected a JSON body",
        );
    }
    let Ok(change) = serde_json::from_slice::<Value>(&req.body) else {
        return google_error(
            StatusCode::BAD_REQUEST,
            "INVALID_ARGUMENT",
            "parseError",
            "Parse Error",
        );
    };
    if state.conflicts > 0 {
        state.conflicts -= 1;
        return google_error(
            StatusCode::PRECONDITION_FAILED,
            "FAILED_PRECONDITION",
            "conditionNotMet",
            "Precondition not met for 'entity.change.deletions[0]'",
        );
    }
    let Some(zone) = state.zones.iter_mut().find(|z| z.name == zone_name) else {
        return no_zone(zone_name);
    };
    let list = |key: &str| change[key].as_array().cloned().unwrap_or_default();
    let (deletions, additions) = (list("deletions"), list("additions"));
    if deletions.is_empty() && additions.is_empty() {
        return google_error(
            StatusCode::BAD_REQUEST,
            "INVALID_ARGUMENT",
            "required",
            "The 'entity.change' is empty",
        );
    }
    let invalid = |message: &str| {
        google_error(
            StatusCode::BAD_REQUEST,
            "INVALID_ARGUMENT",
            "invalid",
            message,
        )
    };
    let mut rrsets = zone.rrsets.clone();
    for (i, deletion) in deletions.iter().enumerate() {
        let what = format!("entity.change.deletions[{i}]");
        let set = match read_rrset(deletion, zone, &what) {
            Ok(set) => set,
            Err(message) => return invalid(&message),
        };
        match rrsets.iter().position(|s| *s == set) {
            Some(at) => {
                rrsets.remove(at);
            }
            None if rrsets
                .iter()
                .any(|s| s.name == set.name && s.kind == set.kind) =>
            {
                return google_error(
                    StatusCode::PRECONDITION_FAILED,
                    "FAILED_PRECONDITION",
                    "conditionNotMet",
                    &format!("Precondition not met for '{what}'"),
                )
            }
            None => {
                return google_error(
                    StatusCode::NOT_FOUND,
                    "NOT_FOUND",
                    "notFound",
                    &format!(
                    "The 'entity.change.deletions[{i}]' resource named '{} ({})' does not exist.",
                    set.name, set.kind
                ),
                )
            }
        }
    }
    for (i, addition) in additions.iter().enumerate() {
        let what = format!("entity.change.additions[{i}]");
        let set = match read_rrset(addition, zone, &what) {
            Ok(set) => set,
            Err(message) => return invalid(&message),
        };
        if rrsets
            .iter()
            .any(|s| s.name == set.name && s.kind == set.kind)
        {
            return google_error(
                StatusCode::CONFLICT,
                "ALREADY_EXISTS",
                "alreadyExists",
                &format!(
                    "The resource '{what}' named '{} ({})' already exists",
                    set.name, set.kind
                ),
            );
        }
        rrsets.push(set);
    }
    zone.rrsets = rrsets;
    json_answer(
        StatusCode::OK,
        &json!({ "kind": "dns#change", "id": "7", "status": "pending", "startTime": "2024-01-01T00:00:00.000Z",
                 "additions": additions, "deletions": deletions }),
    )
}
