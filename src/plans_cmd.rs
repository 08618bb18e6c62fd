//! `portcullis expose`, `plans`, `routes` and `token`.

use std::time::{Duration, Instant};

use anyhow::bail;
use clap::{Args, Subcommand};
use serde_json::{json, Value};

use crate::client::{AdminClient, Target};

/// How long the CLI follows a plan before handing back the prompt.
const FOLLOW_LIMIT: Duration = Duration::from_secs(900);

#[derive(Debug, Args)]
pub(crate) struct ExposeArgs {
    /// Public hostname, e.g. app.example.com.
    hostname: String,
    /// Backend port.
    #[arg(long)]
    port: u16,
    /// Backend address or host name.
    #[arg(
        long,
        conflicts_with = "target_service",
        required_unless_present = "target_service"
    )]
    target_host: Option<String>,
    /// An existing service instead of a host.
    #[arg(long)]
    target_service: Option<String>,
    /// `https` (default) or `http`.
    #[arg(long, default_value = "https")]
    protocol: String,
    /// Issuer (default letsencrypt-prod).
    #[arg(long)]
    issuer: Option<String>,
    /// Challenge type (default http-01).
    #[arg(long)]
    challenge: Option<String>,
    /// More hostnames.
    #[arg(long = "extra-host")]
    extra_hosts: Vec<String>,
    /// Router template (default single).
    #[arg(long)]
    template: Option<String>,
    /// Approve the plan too (needs `plans.approve`).
    #[arg(long)]
    approve: bool,
}

#[derive(Debug, Subcommand)]
pub(crate) enum PlansCommand {
    /// List plans.
    List,
    /// Show one plan.
    Show {
        /// Plan id.
        id: String,
    },
    /// Approve and follow a plan.
    Approve {
        /// Plan id.
        id: String,
    },
    /// Reject a plan.
    Reject {
        /// Plan id.
        id: String,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum TokenCommand {
    /// Create a token; it is printed once.
    Create {
        /// Name shown in the audit log.
        #[arg(long)]
        name: String,
        /// Permissions (repeat): ingress.read, ingress.manage, acme.read, acme.manage, plans.approve, domains.manage, audit.read.
        #[arg(long = "permission", required = true)]
        permissions: Vec<String>,
    },
    /// Revoke a token by name.
    Revoke {
        /// Token name.
        name: String,
    },
    /// List token names and permissions.
    List,
}

pub(crate) async fn expose(args: ExposeArgs, target: &Target) -> anyhow::Result<()> {
    let client = target.connect()?;
    let body = json!({
        "service_hostname": args.hostname,
        "service_protocol": args.protocol,
        "backend_port": args.port,
        "target_host": args.target_host,
        "target_service": args.target_service,
        "tls_issuer": args.issuer,
        "challenge_type": args.challenge,
        "extra_hosts": args.extra_hosts,
        "router_template": args.template,
    });
    let plan = client.post("/api/v1/ingress/expose", Some(body)).await?;
    print_plan(&plan);
    let id = plan["id"].as_str().unwrap_or_default().to_owned();
    if plan["status"] == "awaiting_approval" {
        if !args.approve {
            println!("plan {id} awaits approval: portcullis plans approve {id}");
            return Ok(());
        }
        client
            .post(&format!("/api/v1/plans/{id}/approve"), None)
            .await?;
    }
    follow(&client, &id).await
}

pub(crate) async fn plans(command: PlansCommand, target: &Target) -> anyhow::Result<()> {
    let client = target.connect()?;
    match command {
        PlansCommand::List => {
            let list = client.get("/api/v1/plans").await?;
            println!("{:<24}  {:<18}  {:<12}  WHAT", "ID", "STATUS", "BY");
            for plan in list["plans"].as_array().map_or(&[][..], Vec::as_slice) {
                println!(
                    "{:<24}  {:<18}  {:<12}  {}",
                    plan["id"].as_str().unwrap_or_default(),
                    plan["status"].as_str().unwrap_or_default(),
                    plan["requested_by"].as_str().unwrap_or_default(),
                    summary(plan)
                );
            }
        }
        PlansCommand::Show { id } => {
            let plan = client.get(&format!("/api/v1/plans/{id}")).await?;
            println!("{}", serde_json::to_string_pretty(&plan)?);
        }
        PlansCommand::Approve { id } => {
            client
                .post(&format!("/api/v1/plans/{id}/approve"), None)
                .await?;
            follow(&client, &id).await?;
        }
        PlansCommand::Reject { id } => {
            let plan = client
                .post(&format!("/api/v1/plans/{id}/reject"), None)
                .await?;
            println!("{id} {}", plan["status"].as_str().unwrap_or_default());
        }
    }
    Ok(())
}

pub(crate) async fn routes(target: &Target) -> anyhow::Result<()> {
    let client = target.connect()?;
    let monitor = client.get("/api/v1/ingress/routes").await?;
    println!(
        "{:<48}  {:<9}  {:<6}  {:<18}  {:>4}  {:>7}  {:<5}  URLS",
        "HOST RULE", "STATUS", "SERVED", "ISSUER", "DAYS", "ROUTERS", "LIVE"
    );
    for row in monitor["routes"].as_array().map_or(&[][..], Vec::as_slice) {
        let urls: Vec<&str> = row["public_urls"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        println!(
            "{:<48}  {:<9}  {:<6}  {:<18}  {:>4}  {:>7}  {:<5}  {}",
            row["host_rule"].as_str().unwrap_or_default(),
            row["status"].as_str().unwrap_or("-"),
            crate::client::yes_no(&row["certificate_served"]),
            row["issuer"].as_str().unwrap_or("-"),
            row["days_until_expiry"]
                .as_i64()
                .map_or("-".to_owned(), |d| d.to_string()),
            row["router_count"].as_u64().unwrap_or(0),
            row["live"].as_bool().unwrap_or(false),
            urls.join(" ")
        );
    }
    Ok(())
}

pub(crate) async fn token(command: TokenCommand, target: &Target) -> anyhow::Result<()> {
    let client = target.connect()?;
    match command {
        TokenCommand::Create { name, permissions } => {
            let created = client
                .post(
                    "/api/v1/tokens",
                    Some(json!({ "name": name, "permissions": permissions })),
                )
                .await?;
            eprintln!("token {name} created; it is shown only now:");
            println!("{}", created["token"].as_str().unwrap_or_default());
        }
        TokenCommand::Revoke { name } => {
            client.delete(&format!("/api/v1/tokens/{name}")).await?;
            println!("{name} revoked");
        }
        TokenCommand::List => {
            let list = client.get("/api/v1/tokens").await?;
            for token in list["tokens"].as_array().map_or(&[][..], Vec::as_slice) {
                let permissions: Vec<&str> = token["permissions"]
                    .as_array()
                    .map(|a| a.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                println!(
                    "{:<24}  {}",
                    token["name"].as_str().unwrap_or_default(),
                    permissions.join(",")
                );
            }
        }
    }
    Ok(())
}

/// For an answer `{plan, certificate}`: the certificate to follow, after
/// approving the plan when asked to; `None` when the plan awaits approval.
pub(crate) async fn settle(
    client: &AdminClient,
    answer: &Value,
    approve: bool,
) -> anyhow::Result<Option<Value>> {
    if !answer["certificate"].is_null() && answer["plan"]["status"] != "awaiting_approval" {
        return Ok(Some(answer["certificate"].clone()));
    }
    let id = answer["plan"]["id"].as_str().unwrap_or_default().to_owned();
    if answer["plan"]["status"] == "awaiting_approval" && !approve {
        println!("plan {id} awaits approval: portcullis plans approve {id}");
        return Ok(None);
    }
    if answer["plan"]["status"] == "awaiting_approval" {
        client
            .post(&format!("/api/v1/plans/{id}/approve"), None)
            .await?;
    }
    let started = Instant::now();
    loop {
        let plan = client.get(&format!("/api/v1/plans/{id}")).await?;
        if let Some(certificate) = plan["certificate_id"].as_str() {
            return Ok(Some(
                client
                    .get(&format!("/api/v1/acme/certificates/{certificate}"))
                    .await?,
            ));
        }
        if matches!(
            plan["status"].as_str(),
            Some("failed" | "rejected" | "succeeded")
        ) {
            if plan["status"] == "failed" {
                bail!(
                    "plan {id} failed: {}",
                    plan["error"].as_str().unwrap_or("no message")
                );
            }
            return Ok(Some(Value::Null));
        }
        if started.elapsed() > FOLLOW_LIMIT {
            bail!(
                "plan {id} is still {}; follow it with `portcullis plans show {id}`",
                plan["status"]
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Follows a plan to its end, printing each step as it changes.
async fn follow(client: &AdminClient, id: &str) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut seen: Vec<String> = Vec::new();
    loop {
        let plan = client.get(&format!("/api/v1/plans/{id}")).await?;
        for step in plan["steps"].as_array().map_or(&[][..], Vec::as_slice) {
            let line = format!(
                "  {:<12} {:<11} {}",
                step["name"].as_str().unwrap_or_default(),
                step["status"].as_str().unwrap_or_default(),
                step["message"].as_str().unwrap_or_default()
            );
            if step["status"] != "pending" && !seen.contains(&line) {
                eprintln!("{line} ({:.1}s)", started.elapsed().as_secs_f64());
                seen.push(line);
            }
        }
        match plan["status"].as_str() {
            Some("succeeded") => {
                println!("plan {id} succeeded");
                return Ok(());
            }
            Some("failed") => bail!(
                "plan {id} failed: {}",
                plan["error"].as_str().unwrap_or("no message")
            ),
            Some("rejected") => bail!("plan {id} was rejected"),
            _ => {}
        }
        if started.elapsed() > FOLLOW_LIMIT {
            bail!("plan {id} is still running; follow it with `portcullis plans show {id}`");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn print_plan(plan: &Value) {
    println!(
        "plan {} ({}): {}",
        plan["id"].as_str().unwrap_or_default(),
        plan["status"].as_str().unwrap_or_default(),
        summary(plan)
    );
    for step in plan["steps"].as_array().map_or(&[][..], Vec::as_slice) {
        println!(
            "  {:<12} {}",
            step["name"].as_str().unwrap_or_default(),
            step["description"].as_str().unwrap_or_default()
        );
    }
}

fn summary(plan: &Value) -> String {
    match plan["kind"].as_str() {
        Some("expose") => format!(
            "expose {}",
            plan["spec"]["hostname"].as_str().unwrap_or_default()
        ),
        Some("certificate") => format!(
            "certificate for {}",
            plan["request"]["common_name"].as_str().unwrap_or_default()
        ),
        Some("revoke") => format!(
            "revoke {}",
            plan["certificate"].as_str().unwrap_or_default()
        ),
        _ => String::new(),
    }
}
