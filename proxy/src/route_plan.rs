//! Which routers are live, decided in one place.
//!
//! The route table is built from this plan, and the admin API's routes
//! monitor reads the same plan from the same applied state, so what the
//! monitor shows cannot drift from what the proxy serves.

use std::collections::HashSet;

use portcullis_config::model::{DesiredState, Router};

/// A router and whether it is served.
#[derive(Debug, Clone, Copy)]
pub struct PlannedRoute<'a> {
    /// The router as configured.
    pub router: &'a Router,
    /// False while the certificate the router depends on is not being served.
    pub live: bool,
}

/// Every router of `state`; one that names a certificate is live only while
/// that certificate is among `serving` (valid, or renewing with the old one
/// still good).
pub fn plan<'a>(state: &'a DesiredState, serving: &HashSet<String>) -> Vec<PlannedRoute<'a>> {
    state
        .routers
        .values()
        .map(|router| PlannedRoute {
            router,
            live: router
                .certificate_id
                .as_ref()
                .is_none_or(|id| serving.contains(id)),
        })
        .collect()
}
