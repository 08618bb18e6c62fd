//! `portcullis certs …` and `portcullis ca export`.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use anyhow::bail;
use clap::Subcommand;
use serde_json::{json, Value};

use crate::client::{AdminClient, Target};

const BASE: &str = "/api/v1/acme/certificates";
/// How long the CLI waits for an issuance before handing back the prompt.
const WAIT_LIMIT: Duration = Duration::from_secs(600);
/// How long a valid certificate may take to be served before the command
/// stops waiting; the data plane usually takes it within milliseconds.
const SERVE_WAIT: Duration = Duration::from_secs(30);

#[derive(Debug, Subcommand)]
pub(crate) enum CertsCommand {
    /// List certificates.
    List,
    /// Show one certificate.
    Show {
        /// Certificate id.
        id: String,
    },
    /// Request a certificate and wait until it is valid or failed.
    Issue {
        /// The first name (CN).
        #[arg(long)]
        name: String,
        /// More names.
        #[arg(long = "san")]
        sans: Vec<String>,
        /// Issuer (default: acme.default_issuer).
        #[arg(long)]
        issuer: Option<String>,
        /// http-01 (default), tls-alpn-01 or dns-01.
        #[arg(long)]
        challenge: Option<String>,
        /// ACME account contact.
        #[arg(long)]
        email: Option<String>,
        /// Return at once instead of waiting.
        #[arg(long)]
        no_wait: bool,
        /// Approve the plan too (needs `plans.approve`).
        #[arg(long)]
        approve: bool,
    },
    /// Renew now and wait for the new certificate.
    Renew {
        /// Certificate id.
        id: String,
        /// Return at once instead of waiting.
        #[arg(long)]
        no_wait: bool,
    },
    /// Revoke at the issuer and stop serving. Irreversible.
    Revoke {
        /// Certificate id.
        id: String,
        /// Approve the plan too (needs `plans.approve`).
        #[arg(long)]
        approve: bool,
    },
}

pub(crate) async fn run(command: CertsCommand, target: &Target) -> anyhow::Result<()> {
    let client = target.connect()?;
    match command {
        CertsCommand::List => {
            let list = client.get(BASE).await?;
            print_table(
                list["certificates"]
                    .as_array()
                    .map_or(&[][..], Vec::as_slice),
            );
        }
        CertsCommand::Show { id } => {
            let cert = client.get(&format!("{BASE}/{id}")).await?;
            println!("{}", serde_json::to_string_pretty(&cert)?);
        }
        CertsCommand::Issue {
            name,
            sans,
            issuer,
            challenge,
            email,
            no_wait,
            approve,
        } => {
            let body = json!({
                "common_name": name,
                "sans": sans,
                "issuer": issuer,
                "challenge_type": challenge,
                "acme_email": email,
            });
            let answer = client.post(BASE, Some(body)).await?;
            if let Some(cert) = crate::plans_cmd::settle(&client, &answer, approve).await? {
                finish(&client, cert, no_wait).await?;
            }
        }
        CertsCommand::Renew { id, no_wait } => {
            let cert = client.post(&format!("{BASE}/{id}/renew"), None).await?;
            finish(&client, cert, no_wait).await?;
        }
        CertsCommand::Revoke { id, approve } => {
            let answer = client.post(&format!("{BASE}/{id}/revoke"), None).await?;
            if crate::plans_cmd::settle(&client, &answer, approve)
                .await?
                .is_some()
            {
                let cert = client.get(&format!("{BASE}/{id}")).await?;
                println!("{id} {}", cert["status"].as_str().unwrap_or("unknown"));
                if cert["status"] != "revoked" {
                    bail!("{id} was not revoked");
                }
            }
        }
    }
    Ok(())
}

/// Waits for a record to leave pending/issuing/renewing, showing progress.
async fn finish(client: &AdminClient, mut cert: Value, no_wait: bool) -> anyhow::Result<()> {
    let id = cert["id"].as_str().unwrap_or_default().to_owned();
    let started = Instant::now();
    let tty = std::io::stderr().is_terminal();
    let mut last_status = String::new();
    let spinner = ['|', '/', '-', '\\'];
    let mut tick = 0usize;
    loop {
        let status = cert["status"].as_str().unwrap_or("unknown").to_owned();
        let in_progress = matches!(status.as_str(), "pending" | "issuing" | "renewing");
        if status != last_status {
            if tty && !last_status.is_empty() {
                eprintln!();
            }
            if !tty || !in_progress {
                eprintln!("{id}: {status} ({:.1}s)", started.elapsed().as_secs_f64());
            }
            last_status.clone_from(&status);
        }
        if !in_progress || no_wait {
            break;
        }
        if tty {
            eprint!(
                "\r{id}: {status} {} {:.1}s",
                spinner[tick % 4],
                started.elapsed().as_secs_f64()
            );
            let _ = std::io::stderr().flush();
            tick += 1;
        }
        if started.elapsed() > WAIT_LIMIT {
            bail!(
                "{id} is still {status} after {}s; follow it with `portcullis certs show {id}`",
                WAIT_LIMIT.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        cert = client.get(&format!("{BASE}/{id}")).await?;
    }
    if tty && !no_wait {
        eprintln!();
    }
    if !no_wait && cert["status"] == "valid" {
        cert = wait_served(client, &id, cert).await?;
    }
    match cert["status"].as_str() {
        Some("failed") => bail!(
            "{id} failed: {}",
            cert["status_message"].as_str().unwrap_or("no message")
        ),
        _ => {
            if let Some(message) = cert["status_message"].as_str() {
                eprintln!("note: {message}");
            }
            print_table(std::slice::from_ref(&cert));
            Ok(())
        }
    }
}

/// A valid record is served a moment later (the data plane loads it after
/// the record is saved): wait for that too, so that a client connecting
/// right after the command gets the new certificate.
async fn wait_served(client: &AdminClient, id: &str, mut cert: Value) -> anyhow::Result<Value> {
    let started = Instant::now();
    while cert["served"] != true {
        if started.elapsed() > SERVE_WAIT {
            eprintln!(
                "note: {id} is valid, but this node did not serve it within {}s; see its log",
                SERVE_WAIT.as_secs()
            );
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        cert = client.get(&format!("{BASE}/{id}")).await?;
    }
    Ok(cert)
}

fn print_table(certs: &[Value]) {
    println!(
        "{:<32}  {:<9}  {:<6}  {:<20}  {:>4}  NAMES",
        "ID", "STATUS", "SERVED", "ISSUER", "DAYS"
    );
    for cert in certs {
        let names: Vec<&str> = cert["names"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let days = cert["days_until_expiry"]
            .as_i64()
            .map_or("-".to_owned(), |d| d.to_string());
        println!(
            "{:<32}  {:<9}  {:<6}  {:<20}  {:>4}  {}",
            cert["id"].as_str().unwrap_or_default(),
            cert["status"].as_str().unwrap_or_default(),
            crate::client::yes_no(&cert["served"]),
            cert["issued_by"]
                .as_str()
                .or(cert["issuer"].as_str())
                .unwrap_or_default(),
            days,
            names.join(",")
        );
    }
}

/// `portcullis ca export`: prints the internal CA's root, creating it if needed.
pub(crate) async fn export_ca(target: &Target) -> anyhow::Result<()> {
    let settings = target.settings()?;
    crate::serve::create_private_dir(&settings.data_dir)?;
    let store = crate::serve::open_store(&settings)?;
    let secrets = portcullis_acme::Secrets::new(
        crate::serve::secret_key(&settings)?,
        std::sync::Arc::clone(&store),
    );
    let ca = portcullis_acme::InternalCa::load_or_create(&secrets, store.as_ref()).await?;
    print!("{}", ca.root_pem());
    Ok(())
}
