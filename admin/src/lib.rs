//! The Portcullis control plane: the admin HTTP API.
//!
//! This first cut serves the health endpoints that orchestrators and load
//! balancers probe; the API proper grows on the same listener.

mod error;
mod health;
mod server;

pub use error::Error;
pub use server::{AdminServer, AdminState};
