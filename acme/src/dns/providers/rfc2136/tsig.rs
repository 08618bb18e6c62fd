//! TSIG (RFC 8945): signing a request with HMAC-SHA256/512 and checking
//! the signed answer.
//!
//! The TSIG RR is built and read here on raw wire bytes rather than through
//! hickory-proto: its MAC covers the exact bytes of the message, and
//! hickory 0.24 only reads TSIG records with its `dnssec` features (which
//! bring their own crypto backends).

use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::{Sha256, Sha512};
use zeroize::Zeroizing;

/// RR type of TSIG (RFC 8945 §4.2).
const TYPE_TSIG: u16 = 250;
/// TSIG records are class ANY and TTL 0 (RFC 8945 §4.2).
const CLASS_ANY: u16 = 255;
/// RFC 8945 §10: 300 s is the recommended fudge.
pub(super) const FUDGE: u16 = 300;

/// TSIG error codes (RFC 8945 §4.2, the TSIG RR's Error field).
pub(super) const BADSIG: u16 = 16;
pub(super) const BADKEY: u16 = 17;
pub(super) const BADTIME: u16 = 18;
pub(super) const BADTRUNC: u16 = 22;

/// The MAC algorithms accepted (RFC 8945 §6: HMAC-SHA256 is mandatory).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Algorithm {
    HmacSha256,
    HmacSha512,
}

impl Algorithm {
    /// Parses `hmac-sha256` / `hmac-sha512` (any case, trailing dot allowed).
    pub(super) fn parse(name: &str) -> Option<Self> {
        match name
            .trim()
            .trim_end_matches('.')
            .to_ascii_lowercase()
            .as_str()
        {
            "hmac-sha256" => Some(Self::HmacSha256),
            "hmac-sha512" => Some(Self::HmacSha512),
            _ => None,
        }
    }

    /// The algorithm's name as written in configs and the TSIG RR.
    pub(super) fn name(self) -> &'static str {
        match self {
            Self::HmacSha256 => "hmac-sha256",
            Self::HmacSha512 => "hmac-sha512",
        }
    }

    fn mac(self, key: &[u8], data: &[u8]) -> Vec<u8> {
        // HMAC takes keys of any length: `new_from_slice` cannot fail.
        match self {
            Self::HmacSha256 => match Hmac::<Sha256>::new_from_slice(key) {
                Ok(mut mac) => {
                    mac.update(data);
                    mac.finalize().into_bytes().to_vec()
                }
                Err(_) => Vec::new(),
            },
            Self::HmacSha512 => match Hmac::<Sha512>::new_from_slice(key) {
                Ok(mut mac) => {
                    mac.update(data);
                    mac.finalize().into_bytes().to_vec()
                }
                Err(_) => Vec::new(),
            },
        }
    }

    /// Constant-time check of a full-length MAC.
    fn verify(self, key: &[u8], data: &[u8], tag: &[u8]) -> bool {
        match self {
            Self::HmacSha256 => Hmac::<Sha256>::new_from_slice(key)
                .map(|mut mac| {
                    mac.update(data);
                    mac.verify_slice(tag).is_ok()
                })
                .unwrap_or(false),
            Self::HmacSha512 => Hmac::<Sha512>::new_from_slice(key)
                .map(|mut mac| {
                    mac.update(data);
                    mac.verify_slice(tag).is_ok()
                })
                .unwrap_or(false),
        }
    }
}

/// A TSIG key: name, algorithm and the shared secret (zeroed on drop).
pub(super) struct Key {
    /// Lower-case, no trailing dot.
    pub(super) name: String,
    pub(super) algorithm: Algorithm,
    wire_name: Vec<u8>,
    secret: Zeroizing<Vec<u8>>,
}

impl Key {
    /// A key from its name and base64 secret (as `keymgr -t` and
    /// `tsig-keygen` print it). The error names the field (`key_name` or
    /// `key_secret`) and what is wrong, never the secret.
    pub(super) fn new(
        name: &str,
        algorithm: Algorithm,
        secret_base64: &str,
    ) -> Result<Self, (&'static str, String)> {
        let name = name.trim().trim_end_matches('.').to_ascii_lowercase();
        let wire_name = encode_name(&name).map_err(|e| ("key_name", e))?;
        let compact: String = secret_base64.split_whitespace().collect();
        let secret = base64::engine::general_purpose::STANDARD
            .decode(&compact)
            .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(&compact))
            .map_err(|_| {
                (
                    "key_secret",
                    "is not base64 (paste the `secret:` value keymgr prints)".to_owned(),
                )
            })?;
        if secret.is_empty() {
            return Err(("key_secret", "is empty".into()));
        }
        Ok(Self {
            name,
            algorithm,
            wire_name,
            secret: Zeroizing::new(secret),
        })
    }
}

/// A signed request and the MAC its answer's MAC will cover.
pub(super) struct Signed {
    pub(super) wire: Vec<u8>,
    pub(super) mac: Vec<u8>,
}

/// Appends a TSIG RR to `message` (a complete DNS message without one) and
/// raises ARCOUNT. RFC 8945 §4.3.3: the MAC covers the message as sent plus
/// the TSIG variables.
pub(super) fn sign(key: &Key, message: &[u8], time_signed: u64) -> Result<Signed, String> {
    if message.len() < 12 {
        return Err("message shorter than a DNS header".into());
    }
    let original_id = u16::from_be_bytes([message[0], message[1]]);
    let vars = Variables {
        time_signed,
        fudge: FUDGE,
        error: 0,
        other: &[],
    };
    let mut digest = message.to_vec();
    vars.append(key, &mut digest);
    let mac = key.algorithm.mac(&key.secret, &digest);

    let mut wire = message.to_vec();
    let arcount = u16::from_be_bytes([wire[10], wire[11]])
        .checked_add(1)
        .ok_or("too many additional records")?;
    wire[10..12].copy_from_slice(&arcount.to_be_bytes());
    wire.extend_from_slice(&key.wire_name);
    wire.extend_from_slice(&TYPE_TSIG.to_be_bytes());
    wire.extend_from_slice(&CLASS_ANY.to_be_bytes());
    wire.extend_from_slice(&0u32.to_be_bytes());
    let algorithm = encode_name(key.algorithm.name())?;
    let rdlen = algorithm.len() + 6 + 2 + 2 + mac.len() + 2 + 2 + 2;
    let rdlen = u16::try_from(rdlen).map_err(|_| "TSIG RR too long")?;
    wire.extend_from_slice(&rdlen.to_be_bytes());
    wire.extend_from_slice(&algorithm);
    wire.extend_from_slice(&time_signed.to_be_bytes()[2..]);
    wire.extend_from_slice(&FUDGE.to_be_bytes());
    let mac_len = u16::try_from(mac.len()).map_err(|_| "MAC too long")?;
    wire.extend_from_slice(&mac_len.to_be_bytes());
    wire.extend_from_slice(&mac);
    wire.extend_from_slice(&original_id.to_be_bytes());
    wire.extend_from_slice(&0u16.to_be_bytes()); // error
    wire.extend_from_slice(&0u16.to_be_bytes()); // other len
    Ok(Signed { wire, mac })
}

/// The TSIG RR of an answer.
#[derive(Debug)]
pub(super) struct Tsig {
    /// Key name, lower-case, no trailing dot.
    pub(super) key_name: String,
    /// Algorithm name, lower-case, no trailing dot.
    pub(super) algorithm: String,
    pub(super) time_signed: u64,
    pub(super) fudge: u16,
    pub(super) mac: Vec<u8>,
    pub(super) error: u16,
    pub(super) other: Vec<u8>,
}

/// Splits an answer into the message without its TSIG RR (ARCOUNT lowered,
/// ID set back to the original ID: RFC 8945 §4.3.1) and the TSIG RR, if the
/// last additional record is one.
pub(super) fn split(answer: &[u8]) -> Result<(Vec<u8>, Option<Tsig>), String> {
    let header = answer.get(..12).ok_or("answer shorter than a DNS header")?;
    let count = |i: usize| usize::from(u16::from_be_bytes([header[i], header[i + 1]]));
    let (qd, an, ns, ar) = (count(4), count(6), count(8), count(10));
    if ar == 0 {
        return Ok((answer.to_vec(), None));
    }
    let mut pos = 12;
    for _ in 0..qd {
        pos = skip_name(answer, pos)? + 4;
    }
    let mut last = pos;
    for _ in 0..(an + ns + ar) {
        last = pos;
        pos = skip_record(answer, pos)?;
    }
    if pos > answer.len() {
        return Err("answer ends inside a record".into());
    }
    let (key_name, after_name) = read_name(answer, last)?;
    let fixed = answer
        .get(after_name..after_name + 10)
        .ok_or("answer ends inside a record")?;
    if u16::from_be_bytes([fixed[0], fixed[1]]) != TYPE_TSIG {
        return Ok((answer.to_vec(), None));
    }
    let rdata = &answer[after_name + 10..pos];
    let (algorithm, mut at) = read_name(rdata, 0)?;
    let field = |at: usize, len: usize| -> Result<&[u8], String> {
        rdata
            .get(at..at + len)
            .ok_or_else(|| "TSIG RDATA too short".to_owned())
    };
    let u16_at = |at: usize| -> Result<u16, String> {
        field(at, 2).map(|b| u16::from_be_bytes([b[0], b[1]]))
    };
    let time = field(at, 6)?;
    let time_signed = time.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
    at += 6;
    let fudge = u16_at(at)?;
    let mac_len = usize::from(u16_at(at + 2)?);
    at += 4;
    let mac = field(at, mac_len)?.to_vec();
    at += mac_len;
    let original_id = u16_at(at)?;
    let error = u16_at(at + 2)?;
    let other_len = usize::from(u16_at(at + 4)?);
    let other = field(at + 6, other_len)?.to_vec();

    let mut message = answer[..last].to_vec();
    message[0..2].copy_from_slice(&original_id.to_be_bytes());
    let arcount = u16::try_from(ar - 1).map_err(|_| "ARCOUNT out of range")?;
    message[10..12].copy_from_slice(&arcount.to_be_bytes());
    Ok((
        message,
        Some(Tsig {
            key_name,
            algorithm,
            time_signed,
            fudge,
            mac,
            error,
            other,
        }),
    ))
}

/// Checks the MAC of a signed answer (RFC 8945 §5.3): the digest is the
/// request's MAC (length-prefixed), the answer without its TSIG RR, and the
/// answer's TSIG variables.
pub(super) fn verify_answer(key: &Key, request_mac: &[u8], message: &[u8], tsig: &Tsig) -> bool {
    if tsig.key_name != key.name || Algorithm::parse(&tsig.algorithm) != Some(key.algorithm) {
        return false;
    }
    let Ok(request_mac_len) = u16::try_from(request_mac.len()) else {
        return false;
    };
    let mut digest = Vec::with_capacity(2 + request_mac.len() + message.len() + 64);
    digest.extend_from_slice(&request_mac_len.to_be_bytes());
    digest.extend_from_slice(request_mac);
    digest.extend_from_slice(message);
    Variables {
        time_signed: tsig.time_signed,
        fudge: tsig.fudge,
        error: tsig.error,
        other: &tsig.other,
    }
    .append(key, &mut digest);
    key.algorithm.verify(&key.secret, &digest, &tsig.mac)
}

/// The TSIG variables of RFC 8945 §4.3.3, appended to a MAC's input.
struct Variables<'a> {
    time_signed: u64,
    fudge: u16,
    error: u16,
    other: &'a [u8],
}

impl Variables<'_> {
    fn append(&self, key: &Key, digest: &mut Vec<u8>) {
        digest.extend_from_slice(&key.wire_name);
        digest.extend_from_slice(&CLASS_ANY.to_be_bytes());
        digest.extend_from_slice(&0u32.to_be_bytes());
        // Algorithm names are plain ASCII: `encode_name` cannot fail on them.
        digest.extend_from_slice(&encode_name(key.algorithm.name()).unwrap_or_default());
        digest.extend_from_slice(&self.time_signed.to_be_bytes()[2..]);
        digest.extend_from_slice(&self.fudge.to_be_bytes());
        digest.extend_from_slice(&self.error.to_be_bytes());
        let other_len = u16::try_from(self.other.len()).unwrap_or(u16::MAX);
        digest.extend_from_slice(&other_len.to_be_bytes());
        digest.extend_from_slice(self.other);
    }
}

/// The canonical wire form of a name (lower-case, uncompressed; RFC 4034
/// §6.2), from text without a trailing dot.
fn encode_name(name: &str) -> Result<Vec<u8>, String> {
    let mut wire = Vec::with_capacity(name.len() + 2);
    for label in name.split('.').filter(|l| !l.is_empty()) {
        let len = u8::try_from(label.len())
            .ok()
            .filter(|l| *l <= 63)
            .ok_or_else(|| format!("label \"{label}\" is longer than 63 bytes"))?;
        wire.push(len);
        wire.extend(label.bytes().map(|b| b.to_ascii_lowercase()));
    }
    wire.push(0);
    if wire.len() > 255 {
        return Err("name is longer than 255 bytes".into());
    }
    Ok(wire)
}

/// Reads a (possibly compressed) name at `pos`: lower-case text without the
/// trailing dot, and the position after the name.
fn read_name(buf: &[u8], mut pos: usize) -> Result<(String, usize), String> {
    let mut labels: Vec<String> = Vec::new();
    let mut end = None;
    for _ in 0..128 {
        let len = *buf.get(pos).ok_or("name runs past the message")?;
        match len {
            0 => {
                return Ok((labels.join("."), end.unwrap_or(pos + 1)));
            }
            l if l & 0xc0 == 0xc0 => {
                let low = *buf.get(pos + 1).ok_or("name runs past the message")?;
                end.get_or_insert(pos + 2);
                pos = (usize::from(l & 0x3f) << 8) | usize::from(low);
            }
            l if l & 0xc0 == 0 => {
                let label = buf
                    .get(pos + 1..pos + 1 + usize::from(l))
                    .ok_or("name runs past the message")?;
                labels.push(String::from_utf8_lossy(label).to_ascii_lowercase());
                pos += 1 + usize::from(l);
            }
            _ => return Err("unknown label type".into()),
        }
    }
    Err("name has too many labels or a compression loop".into())
}

fn skip_name(buf: &[u8], pos: usize) -> Result<usize, String> {
    read_name(buf, pos).map(|(_, next)| next)
}

fn skip_record(buf: &[u8], pos: usize) -> Result<usize, String> {
    let at = skip_name(buf, pos)?;
    let fixed = buf.get(at..at + 10).ok_or("answer ends inside a record")?;
    let rdlen = usize::from(u16::from_be_bytes([fixed[8], fixed[9]]));
    Ok(at + 10 + rdlen)
}

#[cfg(test)]
mod tests;
