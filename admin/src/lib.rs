//! The Portcullis control plane: the admin HTTP API.
//!
//! Health endpoints for orchestrators, and the certificate API the CLI
//! drives, authenticated by bearer tokens stored hashed.

mod api_error;
mod certificates;
mod error;
mod health;
mod json;
mod server;
pub mod tokens;

pub use error::Error;
pub use server::{AdminServer, AdminState};
