//! A service's upstreams at run time: pooled HTTP/1.1 clients and round-robin.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use http::uri::Authority;
use portcullis_config::model::Service;

use crate::pool::Pool;

/// The running form of a [`Service`]: what forwarding needs, built once per
/// definition and kept across table swaps so connection pools survive.
#[derive(Debug)]
pub struct Upstreams {
    definition: Service,
    name: Arc<str>,
    /// Parsed once so each request only clones a reference-counted buffer.
    authorities: Vec<Authority>,
    next: AtomicUsize,
    /// Idle connections by worker slot (see [`crate::worker`]), then by
    /// address: a worker only reuses the connections it opened, whose tasks
    /// run on its own thread.
    pools: Box<[Box<[Arc<Pool>]>]>,
}

impl Upstreams {
    /// Builds the address list for a validated service, with pools for
    /// `workers` data-plane workers (and slot 0 for other threads).
    pub fn new(definition: Service, workers: usize) -> Self {
        // Validated as host:port by the config crate; an address that still
        // fails to parse is dropped rather than served.
        let authorities: Vec<Authority> = definition
            .upstreams
            .iter()
            .filter_map(|u| u.parse::<Authority>().ok())
            .collect();
        let pools = (0..=workers)
            .map(|_| authorities.iter().map(|_| Arc::default()).collect())
            .collect();
        Self {
            name: Arc::from(definition.name.as_str()),
            definition,
            authorities,
            next: AtomicUsize::new(0),
            pools,
        }
    }

    /// The definition this was built from.
    pub fn definition(&self) -> &Service {
        &self.definition
    }

    /// The service name.
    pub fn name(&self) -> &Arc<str> {
        &self.name
    }

    /// The next upstream address, round-robin, with its index.
    pub(crate) fn pick(&self) -> Option<(usize, &Authority)> {
        let count = self.authorities.len();
        let index = match count {
            0 => return None,
            // No shared counter to bump (and bounce between cores).
            1 => 0,
            _ => self.next.fetch_add(1, Ordering::Relaxed) % count,
        };
        self.authority(index).map(|a| (index, a))
    }

    /// The address at `index`, as [`Self::pick`] gave it.
    pub(crate) fn authority(&self, index: usize) -> Option<&Authority> {
        self.authorities.get(index)
    }

    /// The current worker's pool for the address at `index`.
    pub(crate) fn pool(&self, index: usize) -> Option<&Arc<Pool>> {
        // A worker beyond the slots (a table built for fewer workers) shares
        // slot 0 rather than failing the request.
        let slot = crate::worker::slot();
        self.pools
            .get(slot)
            .or_else(|| self.pools.first())?
            .get(index)
    }

    /// Time allowed for connecting to an upstream.
    pub fn connect_timeout(&self) -> Duration {
        self.definition.connect_timeout
    }

    /// Time allowed for the response head.
    pub fn response_timeout(&self) -> Duration {
        self.definition.response_timeout
    }
}
