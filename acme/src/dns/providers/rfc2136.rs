//! The `rfc2136` DNS provider: DNS UPDATE (RFC 2136) signed with TSIG
//! (RFC 8945), sent to the zone's primary server (BIND, Knot, PowerDNS...).
//!
//! Credential fields:
//! - `server` (required): `host:port` of the primary, e.g. `ns1.example.com:53`
//!   (a bare host means port 53).
//! - `key_name` (required): the TSIG key's name as the server knows it.
//! - `key_secret` (secret): the key's base64 secret, as `keymgr -t` or
//!   `tsig-keygen` prints it.
//! - `algorithm`: `hmac-sha256` ([`DEFAULT_ALGORITHM`]) or `hmac-sha512`.
//! - `transport`: `tcp` ([`DEFAULT_TRANSPORT`]) or `udp`.
//! - `zones`: comma-separated zones the key may update; `validate` checks
//!   each of them.

mod message;
mod transport;
mod tsig;

use std::time::Duration;

use async_trait::async_trait;
use hickory_proto::op::{Message, MessageType};
use hickory_proto::rr::{Name, RecordType};

use self::message::{apex_in_use, cleanup_message, present_message, rcode, soa_query};
use self::transport::Transport;
use self::tsig::{Algorithm, Key};
use crate::dns::provider::{DnsError, DnsProvider, Fields, ProviderSpec};

const PROVIDER: &str = "rfc2136";

/// Fields of a `rfc2136` credential.
pub(crate) const SPEC: ProviderSpec = ProviderSpec {
    name: PROVIDER,
    secrets: &["key_secret"],
    optional_secrets: &[],
    required: &["server", "key_name"],
    optional: &["algorithm", "transport", "zones"],
};

/// The TSIG algorithm when `algorithm` is not set (RFC 8945 §6: the one
/// every implementation must support).
pub(crate) const DEFAULT_ALGORITHM: &str = "hmac-sha256";
/// The transport when `transport` is not set: TCP, so that an answer is
/// never truncated and a lost datagram never leaves the outcome unknown.
pub(crate) const DEFAULT_TRANSPORT: &str = "tcp";
/// TTL of the `_acme-challenge` TXT records written.
pub(crate) const TXT_TTL: u32 = 60;
/// How long one exchange with the server may take.
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(10);

/// Builds the provider from a credential.
pub(crate) fn build(fields: &Fields) -> Result<Box<dyn DnsProvider>, DnsError> {
    Ok(Box::new(Rfc2136::from_fields(fields)?))
}

fn config_error(field: &str, message: impl Into<String>) -> DnsError {
    DnsError::Config {
        provider: PROVIDER,
        field: field.to_owned(),
        message: message.into(),
    }
}

/// A configured RFC 2136 client. Its `Debug` never shows the secret.
struct Rfc2136 {
    server: String,
    transport: Transport,
    key: Key,
    zones: Vec<String>,
}

// === impl Rfc2136 ===

impl Rfc2136 {
    fn from_fields(fields: &Fields) -> Result<Self, DnsError> {
        let server = server_address(fields.config(PROVIDER, "server")?)?;
        let key_name = fields.config(PROVIDER, "key_name")?;
        let algorithm_text = fields.config_or("algorithm", DEFAULT_ALGORITHM);
        let algorithm = Algorithm::parse(algorithm_text).ok_or_else(|| {
            config_error(
                "algorithm",
                format!("\"{algorithm_text}\" is not supported; use hmac-sha256 or hmac-sha512"),
            )
        })?;
        let transport_text = fields.config_or("transport", DEFAULT_TRANSPORT);
        let transport = Transport::parse(transport_text).ok_or_else(|| {
            config_error(
                "transport",
                format!("\"{transport_text}\" is not tcp or udp"),
            )
        })?;
        let secret = fields.secret(PROVIDER, "key_secret")?;
        let key =
            Key::new(key_name, algorithm, secret).map_err(|(field, m)| config_error(field, m))?;
        let zones = fields
            .config
            .get("zones")
            .map(|z| {
                z.split(',')
                    .map(normalize)
                    .filter(|z| !z.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        Ok(Self {
            server,
            transport,
            key,
            zones,
        })
    }

    /// Signs `message`, sends it, and checks the answer's TSIG (RFC 8945
    /// §5.3). TSIG errors (BADSIG, BADKEY, BADTIME) become
    /// [`DnsError::Auth`]; an unsigned answer is returned as such for the
    /// caller to judge (servers send errors unsigned).
    async fn exchange(&self, mut message: Message) -> Result<Answer, DnsError> {
        let id: u16 = rand::random();
        message.set_id(id);
        let wire = message
            .to_vec()
            .map_err(|e| self.transport_error(format!("cannot encode the request: {e}")))?;
        let now = unix_time();
        let signed = tsig::sign(&self.key, &wire, now)
            .map_err(|e| self.transport_error(format!("cannot sign: {e}")))?;
        let raw = transport::exchange(&self.server, self.transport, &signed.wire, EXCHANGE_TIMEOUT)
            .await
            .map_err(|e| self.transport_error(e))?;
        let (unsigned, tsig) = tsig::split(&raw).map_err(|e| self.malformed(&e))?;
        let parsed = Message::from_vec(&unsigned).map_err(|e| self.malformed(&e.to_string()))?;
        if parsed.id() != id || parsed.message_type() != MessageType::Response {
            return Err(self.malformed("the answer does not match the request"));
        }
        let rcode = u16::from(raw[3] & 0x0f);
        let Some(tsig) = tsig else {
            return Ok(Answer {
                rcode,
                message: parsed,
                signed: false,
            });
        };
        if tsig.error != 0 {
            return Err(self.tsig_error(rcode, tsig.error));
        }
        if !tsig::verify_answer(&self.key, &signed.mac, &unsigned, &tsig) {
            return Err(self.auth(format!(
                "the answer from {} carries a TSIG that does not verify with key \"{}\" ({}); \
                 it was discarded (RFC 8945 §5.3)",
                self.server,
                self.key.name,
                self.key.algorithm.name()
            )));
        }
        // RFC 8945 §5.4.3: the answer's time must be within its fudge.
        if unix_time().abs_diff(tsig.time_signed) > u64::from(tsig.fudge) {
            return Err(self.auth(format!(
                "the answer from {} was signed at {} but this machine's clock says {} \
                 (more than {} s apart, BADTIME): fix the clock of one of them",
                self.server,
                tsig.time_signed,
                unix_time(),
                tsig.fudge
            )));
        }
        Ok(Answer {
            rcode,
            message: parsed,
            signed: true,
        })
    }

    /// Sends an UPDATE and maps its outcome.
    async fn update(
        &self,
        message: Message,
        zone: &str,
        fqdn: &str,
        what: &str,
    ) -> Result<(), DnsError> {
        let answer = self.exchange(message).await?;
        match answer.rcode {
            rcode::NOERROR if answer.signed => Ok(()),
            rcode::NOERROR => Err(self.unsigned()),
            rcode::YXRRSET => Err(DnsError::Api {
                provider: PROVIDER,
                status: rcode::YXRRSET,
                message: format!(
                    "YXRRSET: \"{fqdn}\" holds a CNAME, so a TXT record there would be ignored; \
                     write the TXT at the CNAME's target"
                ),
            }),
            other => Err(self.rcode_error(other, zone, fqdn, what)),
        }
    }

    fn rcode_error(&self, rcode: u16, zone: &str, fqdn: &str, what: &str) -> DnsError {
        match rcode {
            // Knot and BIND answer NOTAUTH for a zone they do not serve.
            rcode::NOTAUTH => DnsError::ZoneNotFound {
                provider: PROVIDER,
                zone: zone.to_owned(),
            },
            rcode::REFUSED => self.auth(format!(
                "{} answered REFUSED to {what}: its update policy does not let key \"{}\" change zone \"{zone}\"",
                self.server, self.key.name
            )),
            rcode::NOTZONE => DnsError::Api {
                provider: PROVIDER,
                status: rcode,
                message: format!(
                    "NOTZONE: {} says \"{fqdn}\" is not inside zone \"{zone}\"",
                    self.server
                ),
            },
            other => DnsError::Api {
                provider: PROVIDER,
                status: other,
                message: format!("{} answered {} to {what}", self.server, rcode::name(other)),
            },
        }
    }

    fn tsig_error(&self, rcode: u16, error: u16) -> DnsError {
        let header = format!(
            "{} answered {} with TSIG error {}",
            self.server,
            rcode::name(rcode),
            rcode::name(error)
        );
        let why = match error {
            tsig::BADSIG => format!(
                "key_secret does not match the secret of key \"{}\" on the server",
                self.key.name
            ),
            tsig::BADKEY => format!(
                "the server does not know key \"{}\" with algorithm {}, or the zone's ACL does not allow it",
                self.key.name,
                self.key.algorithm.name()
            ),
            tsig::BADTIME => format!(
                "this machine's clock and the server's differ by more than {} s",
                tsig::FUDGE
            ),
            tsig::BADTRUNC => "the server refused a truncated MAC".to_owned(),
            _ => "the server refused the signature".to_owned(),
        };
        self.auth(format!("{header}: {why}"))
    }

    fn auth(&self, message: String) -> DnsError {
        DnsError::Auth {
            provider: PROVIDER,
            message,
        }
    }

    fn unsigned(&self) -> DnsError {
        self.auth(format!(
            "{} answered without a TSIG signature; an unsigned answer to a signed request is \
             discarded (RFC 8945 §5.3)",
            self.server
        ))
    }

    fn transport_error(&self, message: String) -> DnsError {
        DnsError::Transport {
            provider: PROVIDER,
            message,
        }
    }

    fn malformed(&self, what: &str) -> DnsError {
        self.transport_error(format!("malformed answer from {}: {what}", self.server))
    }

    /// Checks one zone: a signed SOA query (the server serves the zone and
    /// accepts the key), then an UPDATE with only a prerequisite (RFC 2136
    /// §2.4.4 "name is in use" on the apex), which changes nothing but
    /// proves the key may update the zone.
    async fn validate_zone(&self, zone: &str) -> Result<(), DnsError> {
        let apex = dns_name(zone)?;
        let answer = self.exchange(soa_query(apex.clone())).await?;
        let is_apex = answer
            .message
            .answers()
            .iter()
            .any(|r| r.record_type() == RecordType::SOA && r.name() == &apex);
        match answer.rcode {
            rcode::NOERROR if !answer.signed => return Err(self.unsigned()),
            rcode::NOERROR if is_apex => {}
            rcode::NOERROR | rcode::NXDOMAIN | rcode::NOTAUTH | rcode::REFUSED => {
                return Err(DnsError::ZoneNotFound {
                    provider: PROVIDER,
                    zone: zone.to_owned(),
                })
            }
            other => return Err(self.rcode_error(other, zone, zone, "the SOA query")),
        }
        self.update(
            apex_in_use(&apex),
            zone,
            zone,
            "an UPDATE with only a prerequisite",
        )
        .await
    }
}

#[async_trait]
impl DnsProvider for Rfc2136 {
    fn name(&self) -> &'static str {
        PROVIDER
    }

    /// RFC 2136 §2.5.1 "Add To An RRset", with the §2.4.3 prerequisite that
    /// `fqdn` holds no CNAME: a server ignores a TXT added next to a CNAME
    /// and still answers NOERROR.
    async fn present(&self, zone: &str, fqdn: &str, value: &str) -> Result<(), DnsError> {
        let (zone, fqdn) = (normalize(zone), normalize(fqdn));
        let message = present_message(&dns_name(&zone)?, dns_name(&fqdn)?, value);
        self.update(message, &zone, &fqdn, "the UPDATE adding the TXT record")
            .await
    }

    /// RFC 2136 §2.5.4 "Delete An RR From An RRset": class NONE, TTL 0, the
    /// exact RDATA. A record already gone is silently ignored by the server.
    async fn cleanup(&self, zone: &str, fqdn: &str, value: &str) -> Result<(), DnsError> {
        let (zone, fqdn) = (normalize(zone), normalize(fqdn));
        let message = cleanup_message(&dns_name(&zone)?, dns_name(&fqdn)?, value);
        self.update(message, &zone, &fqdn, "the UPDATE deleting the TXT record")
            .await
    }

    /// With `zones`: checks each (see `validate_zone`) and returns them.
    /// Without: a signed SOA query for the root proves the key when the
    /// server signs its answer; servers that refuse unsigned (Knot, for a
    /// zone it does not serve) leave nothing to check, so `zones` is asked
    /// for.
    async fn validate(&self) -> Result<Vec<String>, DnsError> {
        if self.zones.is_empty() {
            let answer = self.exchange(soa_query(Name::root())).await?;
            if answer.signed {
                return Ok(Vec::new());
            }
            return Err(config_error(
                "zones",
                format!(
                    "{} answered {} without a signature to a signed query for \".\", so the key \
                     cannot be checked without a zone: list the zones key \"{}\" may update",
                    self.server,
                    rcode::name(answer.rcode),
                    self.key.name
                ),
            ));
        }
        for zone in &self.zones {
            self.validate_zone(zone).await?;
        }
        Ok(self.zones.clone())
    }
}

impl std::fmt::Debug for Rfc2136 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rfc2136")
            .field("server", &self.server)
            .field("transport", &self.transport)
            .field("key_name", &self.key.name)
            .field("algorithm", &self.key.algorithm.name())
            .field("zones", &self.zones)
            .finish_non_exhaustive()
    }
}

/// An answer whose TSIG, if any, verified.
struct Answer {
    /// The header's RCODE (no EDNS is sent, so 4 bits).
    rcode: u16,
    message: Message,
    /// Whether it carried a TSIG (which then verified).
    signed: bool,
}

/// `host:port`, `[v6]:port`, or a bare host / IP meaning port 53.
fn server_address(text: &str) -> Result<String, DnsError> {
    let text = text.trim();
    if text.parse::<std::net::SocketAddr>().is_ok() {
        return Ok(text.to_owned());
    }
    if let Ok(ip) = text.parse::<std::net::IpAddr>() {
        return Ok(std::net::SocketAddr::new(ip, 53).to_string());
    }
    match text.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && !host.contains(':') => {
            port.parse::<u16>().map_err(|_| {
                config_error("server", format!("\"{text}\": the port is not a number"))
            })?;
            Ok(text.to_owned())
        }
        Some(_) => Err(config_error(
            "server",
            format!("\"{text}\" is not host:port (write IPv6 as [addr]:port)"),
        )),
        None if !text.is_empty() => Ok(format!("{text}:53")),
        None => Err(config_error("server", "is required")),
    }
}

/// Lower-case, trimmed, without the trailing dot.
fn normalize(name: &str) -> String {
    name.trim().trim_end_matches('.').to_ascii_lowercase()
}

fn dns_name(name: &str) -> Result<Name, DnsError> {
    Name::from_ascii(format!("{name}.")).map_err(|e| DnsError::Api {
        provider: PROVIDER,
        status: 0,
        message: format!("\"{name}\" is not a valid DNS name: {e}"),
    })
}

fn unix_time() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests;
