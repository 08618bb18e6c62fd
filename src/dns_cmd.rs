//! `portcullis dns-credentials …` and `portcullis doctor dns NAME`.

use anyhow::{bail, Context as _};
use clap::Subcommand;
use serde_json::{json, Map, Value};

use crate::client::Target;

const BASE: &str = "/api/v1/acme/dns-credentials";

#[derive(Debug, Subcommand)]
pub(crate) enum CredentialsCommand {
    /// Store a credential and validate it.
    Add {
        /// Name for it.
        #[arg(long)]
        name: String,
        /// cloudflare, route53, gcloud, digitalocean, hetzner, porkbun, ovh, rfc2136.
        #[arg(long)]
        provider: String,
        /// A plain setting, KEY=VALUE (repeat), e.g. base_url=…, server=…, key_name=….
        #[arg(long = "config", value_name = "KEY=VALUE")]
        config: Vec<String>,
        /// A secret read from an environment variable, KEY=ENV_VAR (repeat):
        /// keeps it out of shell history and the process list.
        #[arg(long = "secret-env", value_name = "KEY=ENV_VAR")]
        secret_env: Vec<String>,
        /// A secret given inline, KEY=VALUE (repeat; visible in the process list).
        #[arg(long = "secret", value_name = "KEY=VALUE")]
        secret: Vec<String>,
    },
    /// List credentials and their status.
    List,
    /// Test a credential against its provider now.
    Validate {
        /// Credential id.
        id: String,
    },
    /// Remove a credential and its secrets.
    Remove {
        /// Credential id.
        id: String,
    },
}

fn pairs(entries: &[String], what: &str) -> anyhow::Result<Map<String, Value>> {
    let mut map = Map::new();
    for entry in entries {
        let (key, value) = entry
            .split_once('=')
            .with_context(|| format!("{what} \"{entry}\" is not KEY=VALUE"))?;
        map.insert(key.to_owned(), Value::String(value.to_owned()));
    }
    Ok(map)
}

pub(crate) async fn credentials(
    command: CredentialsCommand,
    target: &Target,
) -> anyhow::Result<()> {
    let client = target.connect()?;
    match command {
        CredentialsCommand::Add {
            name,
            provider,
            config,
            secret_env,
            secret,
        } => {
            let mut secrets = pairs(&secret, "--secret")?;
            for entry in &secret_env {
                let (key, var) = entry
                    .split_once('=')
                    .with_context(|| format!("--secret-env \"{entry}\" is not KEY=ENV_VAR"))?;
                let value = std::env::var(var)
                    .with_context(|| format!("--secret-env {key}: ${var} is not set"))?;
                secrets.insert(key.to_owned(), Value::String(value));
            }
            let body = json!({"name": name, "provider": provider, "config": pairs(&config, "--config")?, "secrets": secrets});
            let record = client.post(BASE, Some(body)).await?;
            print_credential(&record);
            if record["status"] != "valid" {
                bail!(
                    "stored, but the provider refused it: {}",
                    record["status_message"].as_str().unwrap_or("no message")
                );
            }
        }
        CredentialsCommand::List => {
            let list = client.get(BASE).await?;
            println!(
                "{:<24}  {:<20}  {:<12}  {:<11}  ZONES",
                "ID", "NAME", "PROVIDER", "STATUS"
            );
            for record in list["credentials"]
                .as_array()
                .map_or(&[][..], Vec::as_slice)
            {
                print_credential(record);
            }
        }
        CredentialsCommand::Validate { id } => {
            let record = client.post(&format!("{BASE}/{id}/validate"), None).await?;
            print_credential(&record);
            if record["status"] != "valid" {
                bail!("{}", record["status_message"].as_str().unwrap_or("invalid"));
            }
        }
        CredentialsCommand::Remove { id } => {
            client.delete(&format!("{BASE}/{id}")).await?;
            println!("{id} removed");
        }
    }
    Ok(())
}

fn print_credential(record: &Value) {
    let zones: Vec<&str> = record["zones"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    println!(
        "{:<24}  {:<20}  {:<12}  {:<11}  {}",
        record["id"].as_str().unwrap_or_default(),
        record["name"].as_str().unwrap_or_default(),
        record["provider"].as_str().unwrap_or_default(),
        record["status"].as_str().unwrap_or_default(),
        zones.join(",")
    );
    if let Some(message) = record["status_message"].as_str() {
        println!("  {message}");
    }
}
