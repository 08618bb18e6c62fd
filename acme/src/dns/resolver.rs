//! Looking at DNS for DNS-01: which zone holds a name, where its
//! `_acme-challenge` CNAMEs lead, and whether every nameserver already
//! shows a TXT value (the propagation check).
//!
//! Lookups go through hickory-resolver to the configured nameservers
//! (`acme.dns_resolvers`) or, when none are configured, the system's
//! (`/etc/resolv.conf`). Answers are not cached: each step sees the zone as
//! it is now.

mod error;
mod propagation;

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hickory_resolver::config::{
    LookupIpStrategy, NameServerConfig, NameServerConfigGroup, Protocol, ResolverConfig,
    ResolverOpts,
};
use hickory_resolver::error::{ResolveError as HickoryError, ResolveErrorKind};
use hickory_resolver::proto::error::ProtoErrorKind;
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::rr::{Name, RData, RecordType};
use hickory_resolver::TokioAsyncResolver;

pub use self::error::{LookupFailure, PropagationTimeout, ResolveError, ServerReport};

/// How long one query may take before it is retried or given up.
pub const DEFAULT_QUERY_TIMEOUT: Duration = Duration::from_secs(3);
/// How many CNAMEs [`Resolver::resolve_cname_chain`] follows.
pub const MAX_CNAMES: usize = 8;
/// The port authoritative nameservers are asked on.
pub const DNS_PORT: u16 = 53;

/// A zone: its apex and its authoritative nameservers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Zone {
    /// The apex, lower-case, no trailing dot.
    pub name: String,
    /// Each NS host (lower-case, no trailing dot) with its addresses (A and
    /// AAAA; empty when it has none).
    pub nameservers: Vec<(String, Vec<IpAddr>)>,
}

/// Which servers the propagation check asks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PropagationCheck {
    /// Every address of every NS host of the zone, directly (no recursion),
    /// on `port` ([`DNS_PORT`] outside tests).
    Authoritative {
        /// The port to ask on.
        port: u16,
    },
    /// The configured nameservers (recursion desired): for split-horizon
    /// setups where the public nameservers are not reachable.
    Nameservers,
}

/// Zone detection, CNAME following and the propagation check.
pub struct Resolver {
    lookup: TokioAsyncResolver,
    nameservers: Vec<SocketAddr>,
    /// The servers asked, for messages: `10.0.0.2:53, 10.0.0.3:53`.
    servers_label: String,
    propagation: PropagationCheck,
    query_timeout: Duration,
}

// === impl Resolver ===

impl Resolver {
    /// A resolver asking `nameservers` (UDP, TCP for truncated answers), or
    /// the system's when the list is empty. The propagation check then asks
    /// the explicit nameservers, or the zone's own nameservers otherwise
    /// (see [`Resolver::with_propagation`]).
    pub fn new(nameservers: &[SocketAddr]) -> Result<Self, ResolveError> {
        let (config, options) = if nameservers.is_empty() {
            hickory_resolver::system_conf::read_system_conf().map_err(|e| {
                ResolveError::SystemConfig {
                    message: e.to_string(),
                }
            })?
        } else {
            (
                ResolverConfig::from_parts(None, Vec::new(), server_group(nameservers)),
                ResolverOpts::default(),
            )
        };
        let mut addresses: Vec<SocketAddr> = config
            .name_servers()
            .iter()
            .map(|ns| ns.socket_addr)
            .collect();
        addresses.dedup();
        let propagation = if nameservers.is_empty() {
            PropagationCheck::Authoritative { port: DNS_PORT }
        } else {
            PropagationCheck::Nameservers
        };
        Ok(Self {
            lookup: TokioAsyncResolver::tokio(
                config,
                lookup_options(options, DEFAULT_QUERY_TIMEOUT),
            ),
            nameservers: nameservers.to_vec(),
            servers_label: label(&addresses),
            propagation,
            query_timeout: DEFAULT_QUERY_TIMEOUT,
        })
    }

    /// Chooses which servers [`Resolver::wait_for_txt`] asks.
    pub fn with_propagation(mut self, check: PropagationCheck) -> Self {
        self.propagation = check;
        self
    }

    /// The explicit nameservers (empty: the system's).
    pub fn nameservers(&self) -> &[SocketAddr] {
        &self.nameservers
    }

    /// The A and AAAA addresses of `name` (after CNAMEs), for diagnostics;
    /// empty when it has none.
    pub async fn addresses(&self, name: &str) -> Result<Vec<std::net::IpAddr>, ResolveError> {
        let domain = normalize(name);
        dns_name(&domain)?;
        match self.lookup.lookup_ip(format!("{domain}.")).await {
            Ok(found) => Ok(found.iter().collect()),
            Err(error) if is_negative(&error) => Ok(Vec::new()),
            Err(error) => Err(ResolveError::Cname {
                name: domain.clone(),
                at: domain,
                source: self.failure(&error),
            }),
        }
    }

    /// The zone holding `name`: SOA lookups at `name`, then each parent
    /// (`_acme-challenge.a.b.example.com`, `a.b.example.com`, ...), down to
    /// the top-level label; the first with an SOA record of its own is the
    /// apex. Its NS hosts are resolved to addresses.
    pub async fn find_zone(&self, name: &str) -> Result<Zone, ResolveError> {
        let domain = normalize(name);
        dns_name(&domain)?;
        let labels: Vec<&str> = domain.split('.').collect();
        for start in 0..labels.len() {
            let candidate = labels[start..].join(".");
            let apex = dns_name(&candidate)?;
            match self.lookup.lookup(apex.clone(), RecordType::SOA).await {
                Ok(answer) => {
                    let own_soa = answer
                        .record_iter()
                        .any(|r| r.record_type() == RecordType::SOA && r.name() == &apex);
                    if own_soa {
                        return self.zone_at(candidate, &domain).await;
                    }
                }
                Err(e) if is_negative(&e) => {}
                Err(e) => {
                    return Err(ResolveError::ZoneNotFound {
                        domain,
                        source: self.failure(&e),
                    })
                }
            }
        }
        Err(ResolveError::ZoneNotFound {
            domain,
            source: LookupFailure::NoSoa {
                servers: self.servers_label.clone(),
            },
        })
    }

    /// Follows CNAMEs from `fqdn` (at most [`MAX_CNAMES`]) and returns the
    /// last name: where a TXT for `fqdn` must be written when
    /// `_acme-challenge.NAME` is delegated by CNAME (a TXT next to a CNAME
    /// is ignored). Returns `fqdn` itself when it has no CNAME.
    pub async fn resolve_cname_chain(&self, fqdn: &str) -> Result<String, ResolveError> {
        let start = normalize(fqdn);
        let mut chain = vec![start.clone()];
        let mut current = start.clone();
        for _ in 0..=MAX_CNAMES {
            let name = dns_name(&current)?;
            let target = match self.lookup.lookup(name.clone(), RecordType::CNAME).await {
                Ok(answer) => answer.record_iter().find_map(|r| match r.data() {
                    Some(RData::CNAME(cname)) if r.name() == &name => {
                        Some(normalize(&cname.0.to_ascii()))
                    }
                    _ => None,
                }),
                Err(e) if is_negative(&e) => None,
                Err(e) => {
                    return Err(ResolveError::Cname {
                        name: start,
                        at: current,
                        source: self.failure(&e),
                    })
                }
            };
            let Some(target) = target else {
                return Ok(current);
            };
            let looped = chain.contains(&target);
            chain.push(target.clone());
            if looped {
                return Err(ResolveError::CnameChain {
                    name: start,
                    problem: "loops".into(),
                    chain,
                });
            }
            current = target;
        }
        Err(ResolveError::CnameChain {
            name: start,
            problem: format!("is longer than {MAX_CNAMES} CNAMEs"),
            chain,
        })
    }

    /// The zone at `apex`, with its NS hosts and their addresses.
    async fn zone_at(&self, apex: String, domain: &str) -> Result<Zone, ResolveError> {
        let name = dns_name(&apex)?;
        let ns = match self.lookup.lookup(name.clone(), RecordType::NS).await {
            Ok(answer) => answer
                .record_iter()
                .filter(|r| r.name() == &name)
                .filter_map(|r| match r.data() {
                    Some(RData::NS(ns)) => Some(normalize(&ns.0.to_ascii())),
                    _ => None,
                })
                .collect::<Vec<_>>(),
            Err(e) if is_negative(&e) => Vec::new(),
            Err(e) => {
                return Err(ResolveError::Nameservers {
                    zone: apex,
                    domain: domain.to_owned(),
                    source: self.failure(&e),
                })
            }
        };
        let mut nameservers = Vec::with_capacity(ns.len());
        for host in ns {
            // A host that does not resolve is kept with no address: the
            // propagation check skips it and says so if none is left.
            let addresses = match dns_name(&host) {
                Ok(name) => self
                    .lookup
                    .lookup_ip(name)
                    .await
                    .map(|ips| ips.iter().collect())
                    .unwrap_or_default(),
                Err(_) => Vec::new(),
            };
            nameservers.push((host, addresses));
        }
        Ok(Zone {
            name: apex,
            nameservers,
        })
    }

    /// A hickory error as what the servers answered.
    fn failure(&self, error: &HickoryError) -> LookupFailure {
        failure(error, &self.servers_label, self.query_timeout)
    }
}

impl std::fmt::Debug for Resolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resolver")
            .field("servers", &self.servers_label)
            .field("propagation", &self.propagation)
            .finish_non_exhaustive()
    }
}

/// UDP and TCP entries for each address.
fn server_group(servers: &[SocketAddr]) -> NameServerConfigGroup {
    let mut group = Vec::with_capacity(servers.len() * 2);
    for server in servers {
        for protocol in [Protocol::Udp, Protocol::Tcp] {
            group.push(NameServerConfig::new(*server, protocol));
        }
    }
    NameServerConfigGroup::from(group)
}

/// Options for DNS-01 lookups: no cache, no hosts file, both address
/// families, bounded time.
fn lookup_options(mut options: ResolverOpts, timeout: Duration) -> ResolverOpts {
    options.cache_size = 0;
    options.use_hosts_file = false;
    options.ip_strategy = LookupIpStrategy::Ipv4AndIpv6;
    options.timeout = timeout;
    options.attempts = 1;
    options
}

fn label(servers: &[SocketAddr]) -> String {
    if servers.is_empty() {
        return "the system resolver (no nameserver configured)".into();
    }
    servers
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// NXDOMAIN and NODATA: the name or type is not there, which is an answer.
fn is_negative(error: &HickoryError) -> bool {
    matches!(
        error.kind(),
        ResolveErrorKind::NoRecordsFound { response_code, .. }
            if matches!(response_code, ResponseCode::NoError | ResponseCode::NXDomain)
    )
}

fn failure(error: &HickoryError, servers: &str, timeout: Duration) -> LookupFailure {
    let servers = servers.to_owned();
    match error.kind() {
        ResolveErrorKind::NoRecordsFound { response_code, .. } => LookupFailure::Rcode {
            rcode: rcode_name(*response_code),
            servers,
        },
        ResolveErrorKind::Timeout => LookupFailure::Timeout { servers, timeout },
        ResolveErrorKind::Proto(proto) if matches!(proto.kind(), ProtoErrorKind::Timeout) => {
            LookupFailure::Timeout { servers, timeout }
        }
        ResolveErrorKind::Proto(proto) => LookupFailure::Other {
            message: proto.to_string(),
            servers,
        },
        ResolveErrorKind::Io(io) => LookupFailure::Other {
            message: io.to_string(),
            servers,
        },
        ResolveErrorKind::NoConnections => LookupFailure::Other {
            message: "no nameserver could be reached".into(),
            servers,
        },
        other => LookupFailure::Other {
            message: other.to_string(),
            servers,
        },
    }
}

/// An RCODE as DNS people write it (RFC 1035 §4.1.1, RFC 2136 §2.2).
fn rcode_name(code: ResponseCode) -> String {
    let name = match code {
        ResponseCode::NoError => "NOERROR",
        ResponseCode::FormErr => "FORMERR",
        ResponseCode::ServFail => "SERVFAIL",
        ResponseCode::NXDomain => "NXDOMAIN",
        ResponseCode::NotImp => "NOTIMP",
        ResponseCode::Refused => "REFUSED",
        ResponseCode::YXDomain => "YXDOMAIN",
        ResponseCode::YXRRSet => "YXRRSET",
        ResponseCode::NXRRSet => "NXRRSET",
        ResponseCode::NotAuth => "NOTAUTH",
        ResponseCode::NotZone => "NOTZONE",
        other => return format!("RCODE {}", u16::from(other)),
    };
    name.to_owned()
}

/// Lower-case, trimmed, without the trailing dot.
fn normalize(name: &str) -> String {
    name.trim().trim_end_matches('.').to_ascii_lowercase()
}

/// The fully-qualified name (so no search domain is ever appended).
fn dns_name(name: &str) -> Result<Name, ResolveError> {
    if name.is_empty() {
        return Err(ResolveError::InvalidName {
            name: name.to_owned(),
            message: "is empty".into(),
        });
    }
    Name::from_ascii(format!("{name}.")).map_err(|e| ResolveError::InvalidName {
        name: name.to_owned(),
        message: e.to_string(),
    })
}
