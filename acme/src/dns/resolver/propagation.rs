//! The propagation check: asking nameservers one by one whether they show a
//! TXT value yet.

use std::net::SocketAddr;
use std::time::Duration;

use hickory_resolver::config::{
    NameServerConfig, NameServerConfigGroup, Protocol, ResolverConfig, ResolverOpts,
};
use hickory_resolver::TokioAsyncResolver;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::{
    dns_name, failure, is_negative, lookup_options, normalize, LookupFailure, PropagationCheck,
    PropagationTimeout, ResolveError, Resolver, ServerReport, Zone,
};

// === impl Resolver ===

impl Resolver {
    /// The TXT values at `fqdn` on `server`, asked directly without
    /// recursion (as an authoritative server answers). No record is an
    /// empty list; a TXT RR's strings are joined (RFC 7208 §3.3).
    pub async fn txt_at(
        &self,
        server: SocketAddr,
        fqdn: &str,
    ) -> Result<Vec<String>, ResolveError> {
        let name = normalize(fqdn);
        dns_name(&name)?;
        query_txt(server, name.clone(), false, self.query_timeout)
            .await
            .map_err(|source| ResolveError::Txt {
                server,
                name,
                source,
            })
    }

    /// Polls every `interval` until each server (see [`PropagationCheck`])
    /// returns `value` among the TXT values at `fqdn`. A server that showed
    /// it is not asked again. On timeout the error lists the servers that
    /// never showed it and what each last returned.
    ///
    /// With [`PropagationCheck::Authoritative`], NS hosts without an
    /// address are skipped; a zone with none left fails at once.
    pub async fn wait_for_txt(
        &self,
        zone: &Zone,
        fqdn: &str,
        value: &str,
        timeout: Duration,
        interval: Duration,
    ) -> Result<(), PropagationTimeout> {
        let name = normalize(fqdn);
        let (mut pending, recursion) = self.propagation_servers(zone);
        let started = Instant::now();
        let deadline = started + timeout;
        let give_up = |missing: Vec<ServerReport>| PropagationTimeout {
            zone: zone.name.clone(),
            fqdn: name.clone(),
            value: value.to_owned(),
            waited: started.elapsed(),
            missing,
        };
        if pending.is_empty() {
            return Err(give_up(Vec::new()));
        }
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            let query_timeout = self
                .query_timeout
                .min(remaining)
                .max(Duration::from_millis(100));
            let mut queries = JoinSet::new();
            for (index, (server, _)) in pending.iter().enumerate() {
                let (server, name) = (*server, name.clone());
                queries.spawn(async move {
                    (
                        index,
                        query_txt(server, name, recursion, query_timeout).await,
                    )
                });
            }
            let mut answers: Vec<Option<Result<Vec<String>, LookupFailure>>> =
                vec![None; pending.len()];
            while let Some(joined) = queries.join_next().await {
                if let Ok((index, answer)) = joined {
                    answers[index] = Some(answer);
                }
            }
            let mut missing = Vec::new();
            for ((server, host), answer) in pending.drain(..).zip(answers) {
                let answer = answer.unwrap_or_else(|| {
                    Err(LookupFailure::Other {
                        message: "the query task failed".into(),
                        servers: server.to_string(),
                    })
                });
                let shown = matches!(&answer, Ok(values) if values.iter().any(|v| v == value));
                if !shown {
                    missing.push(ServerReport {
                        server,
                        host,
                        answer,
                    });
                }
            }
            if missing.is_empty() {
                return Ok(());
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(give_up(missing));
            }
            pending = missing.into_iter().map(|r| (r.server, r.host)).collect();
            tokio::time::sleep(interval.min(deadline - now)).await;
        }
    }

    /// The servers to poll and whether to ask for recursion.
    fn propagation_servers(&self, zone: &Zone) -> (Vec<(SocketAddr, Option<String>)>, bool) {
        match self.propagation {
            PropagationCheck::Nameservers if !self.nameservers.is_empty() => {
                (self.nameservers.iter().map(|s| (*s, None)).collect(), true)
            }
            // No explicit nameservers to ask: ask the zone's own.
            PropagationCheck::Nameservers => Self::authoritative_servers(zone, super::DNS_PORT),
            PropagationCheck::Authoritative { port } => Self::authoritative_servers(zone, port),
        }
    }

    /// Every address of every NS host of `zone` on `port`, asked without
    /// recursion.
    fn authoritative_servers(zone: &Zone, port: u16) -> (Vec<(SocketAddr, Option<String>)>, bool) {
        let mut servers: Vec<(SocketAddr, Option<String>)> = Vec::new();
        for (host, addresses) in &zone.nameservers {
            for ip in addresses {
                let server = SocketAddr::new(*ip, port);
                if !servers.iter().any(|(s, _)| *s == server) {
                    servers.push((server, Some(host.clone())));
                }
            }
        }
        (servers, false)
    }
}

/// One TXT query to one server (UDP, TCP when truncated), no cache.
async fn query_txt(
    server: SocketAddr,
    name: String,
    recursion: bool,
    timeout: Duration,
) -> Result<Vec<String>, LookupFailure> {
    let group: NameServerConfigGroup = vec![
        NameServerConfig::new(server, Protocol::Udp),
        NameServerConfig::new(server, Protocol::Tcp),
    ]
    .into();
    let config = ResolverConfig::from_parts(None, Vec::new(), group);
    let mut options = lookup_options(ResolverOpts::default(), timeout);
    options.recursion_desired = recursion;
    let resolver = TokioAsyncResolver::tokio(config, options);
    let fqdn = dns_name(&name).map_err(|e| LookupFailure::Other {
        message: e.to_string(),
        servers: server.to_string(),
    })?;
    let lookup = tokio::time::timeout(timeout, resolver.txt_lookup(fqdn)).await;
    match lookup {
        Ok(Ok(txt)) => Ok(txt
            .iter()
            .map(|record| {
                let bytes: Vec<u8> = record
                    .txt_data()
                    .iter()
                    .flat_map(|s| s.iter().copied())
                    .collect();
                String::from_utf8_lossy(&bytes).into_owned()
            })
            .collect()),
        Ok(Err(e)) if is_negative(&e) => Ok(Vec::new()),
        Ok(Err(e)) => Err(failure(&e, &server.to_string(), timeout)),
        Err(_) => Err(LookupFailure::Timeout {
            servers: server.to_string(),
            timeout,
        }),
    }
}
