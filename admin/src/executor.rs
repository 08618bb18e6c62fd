//! Running approved plans, and undoing what a failed plan created.

use std::collections::HashSet;
use std::time::Duration;

use portcullis_acme::CertRequest;
use portcullis_config::model::{CertStatus, CertificateRecord, Router, Service};
use portcullis_config::store::{Change, Expect};

use crate::audit;
use crate::expose::ExposeSpec;
use crate::plans::{self, Plan, PlanKind, PlanStatus, StepStatus};
use crate::server::AdminState;

/// How long a plan waits for its certificate.
const CERTIFICATE_WAIT: Duration = Duration::from_secs(15 * 60);
/// How long a plan waits for the data plane to serve what it committed.
const SWAP_WAIT: Duration = Duration::from_secs(20);

/// Runs `plan` (already `running`) to its end, saving progress after each step.
pub(crate) async fn run(state: AdminState, mut plan: Plan) {
    let outcome = match plan.kind.clone() {
        PlanKind::Expose { spec } => expose(&state, &mut plan, &spec).await,
        PlanKind::Certificate { request } => {
            certificate_step(&state, &mut plan, 0, &CertRequest::from(&request))
                .await
                .map(|_| ())
        }
        PlanKind::Revoke { certificate } => revoke(&state, &mut plan, &certificate).await,
    };
    plan.status = if outcome.is_ok() {
        PlanStatus::Succeeded
    } else {
        PlanStatus::Failed
    };
    plan.error = outcome.err();
    plan.updated_at = portcullis_acme::unix_now();
    save(&state, &plan).await;
    audit::record(
        state.store.as_ref(),
        plan.decided_by.as_deref().unwrap_or("system"),
        "plan.run",
        &plan.id,
        plan.status.as_str(),
        plan.error.clone(),
    )
    .await;
}

async fn save(state: &AdminState, plan: &Plan) {
    if let Err(error) = plans::save(state.store.as_ref(), plan, Expect::Any).await {
        tracing::error!(plan = %plan.id, %error, "could not save plan progress");
    }
}

async fn set_step(
    state: &AdminState,
    plan: &mut Plan,
    index: usize,
    status: StepStatus,
    message: Option<String>,
) {
    if let Some(step) = plan.steps.get_mut(index) {
        step.status = status;
        if message.is_some() {
            step.message = message;
        }
    }
    plan.updated_at = portcullis_acme::unix_now();
    save(state, plan).await;
}

fn owner(plan: &Plan) -> String {
    format!("plan:{}", plan.id)
}

/// Requests the certificate and waits until it is valid. On failure the
/// record is removed if this plan created it.
async fn certificate_step(
    state: &AdminState,
    plan: &mut Plan,
    index: usize,
    request: &CertRequest,
) -> Result<CertificateRecord, String> {
    set_step(state, plan, index, StepStatus::Running, None).await;
    let owner = owner(plan);
    let record = match state.certificates.request(request, &owner).await {
        Ok(record) => record,
        Err(error) => {
            set_step(
                state,
                plan,
                index,
                StepStatus::Failed,
                Some(error.to_string()),
            )
            .await;
            return Err(format!("certificate: {error}"));
        }
    };
    let created = record.owner == owner;
    plan.certificate_id = Some(record.id.clone());
    if let Some(step) = plan.steps.get_mut(index) {
        step.produced = vec![record.id.clone()];
        step.reused = !created;
    }
    save(state, plan).await;
    let deadline = tokio::time::Instant::now() + CERTIFICATE_WAIT;
    let mut current = record;
    while current.status.is_in_progress() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
        match state.certificates.get(&current.id).await {
            Ok(record) => current = record,
            Err(error) => return Err(format!("certificate: {error}")),
        }
    }
    // Issued is what this step asked for; what happens to the certificate
    // afterwards (renewal, revocation) is another operation's business.
    if current.not_after.is_some() && !current.status.is_in_progress()
        || current.status == CertStatus::Renewing
    {
        set_step(state, plan, index, StepStatus::Succeeded, None).await;
        return Ok(current);
    }
    let message = current
        .status_message
        .clone()
        .unwrap_or_else(|| format!("certificate is {}", current.status));
    set_step(
        state,
        plan,
        index,
        StepStatus::Failed,
        Some(message.clone()),
    )
    .await;
    if created && current.status == CertStatus::Failed {
        if let Err(error) = state.certificates.remove(&current.id).await {
            tracing::error!(plan = %plan.id, %error, "could not remove the failed certificate");
        }
    }
    Err(format!("certificate: {message}"))
}

async fn expose(state: &AdminState, plan: &mut Plan, spec: &ExposeSpec) -> Result<(), String> {
    let template = state
        .config
        .router_templates
        .get(&spec.template)
        .cloned()
        .ok_or_else(|| format!("template \"{}\" no longer exists", spec.template))?;
    let snapshot = state.store.snapshot().await.map_err(|e| e.to_string())?;
    let applied_services: HashSet<String> = state
        .plane
        .applied()
        .state
        .services
        .keys()
        .cloned()
        .collect();

    // 1. service
    set_step(state, plan, 0, StepStatus::Running, None).await;
    let service = spec.service();
    let service_name = spec.service_name();
    if let Some(step) = plan.steps.get_mut(0) {
        step.produced = vec![service_name.clone()];
        step.reused = service.is_none()
            || snapshot.services.contains_key(&service_name)
            || applied_services.contains(&service_name);
    }
    set_step(state, plan, 0, StepStatus::Succeeded, None).await;

    // 2. routers (certificate id filled in once known)
    set_step(state, plan, 1, StepStatus::Running, None).await;
    let names: Vec<String> = spec
        .routers(&template, None, None)
        .into_iter()
        .map(|r| r.name)
        .collect();
    if let Some(step) = plan.steps.get_mut(1) {
        step.reused = names.iter().all(|n| snapshot.routers.contains_key(n));
        step.produced.clone_from(&names);
    }
    set_step(state, plan, 1, StepStatus::Succeeded, None).await;

    // 3. certificate (https only)
    let certificate = if spec.https {
        let request = CertRequest {
            common_name: spec.hostname.clone(),
            sans: spec.hosts.iter().skip(1).cloned().collect(),
            issuer: Some(spec.issuer.clone()),
            challenge_type: Some(spec.challenge_type.as_str().to_owned()),
            dns_credential_id: spec.dns_credential_id.clone(),
            ..CertRequest::default()
        };
        Some(certificate_step(state, plan, 2, &request).await?)
    } else {
        set_step(
            state,
            plan,
            2,
            StepStatus::Skipped,
            Some("plain HTTP needs no certificate".into()),
        )
        .await;
        None
    };
    let created_certificate = certificate
        .as_ref()
        .filter(|c| c.owner == owner(plan))
        .map(|c| c.id.clone());

    // 4. table swap: service and routers committed in one batch, then
    //    confirmed in the data plane.
    set_step(state, plan, 3, StepStatus::Running, None).await;
    let client_ca = state.config.mtls_client_ca_pem.clone();
    let routers = spec.routers(
        &template,
        certificate.as_ref().map(|c| c.id.as_str()),
        client_ca.as_deref(),
    );
    let mut changes: Vec<Change> = service.iter().cloned().map(Change::PutService).collect();
    changes.extend(routers.iter().cloned().map(Change::PutRouter));
    let committed = state.store.apply(changes, None).await;
    let confirmed = match committed {
        Ok(_) => {
            wait_until_served(state, &routers, certificate.as_ref().map(|c| c.id.as_str())).await
        }
        Err(error) => Err(format!("could not commit: {error}")),
    };
    if let Err(message) = confirmed {
        set_step(state, plan, 3, StepStatus::Failed, Some(message.clone())).await;
        roll_back(
            state,
            plan,
            &snapshot,
            service.as_ref(),
            &routers,
            created_certificate.as_deref(),
        )
        .await;
        return Err(format!("table swap: {message}"));
    }
    if let Some(step) = plan.steps.get_mut(3) {
        step.produced = vec![format!("generation {}", state.plane.generation())];
    }
    set_step(state, plan, 3, StepStatus::Succeeded, None).await;
    Ok(())
}

async fn wait_until_served(
    state: &AdminState,
    routers: &[Router],
    certificate: Option<&str>,
) -> Result<(), String> {
    let deadline = tokio::time::Instant::now() + SWAP_WAIT;
    loop {
        let routers_in = {
            let applied = state.plane.applied();
            routers.iter().all(|r| {
                applied
                    .state
                    .routers
                    .get(&r.name)
                    .is_some_and(|live| live.service == r.service && live.hosts == r.hosts)
            })
        };
        // The record's current certificate, by fingerprint: a reused record
        // may be mid-renewal, its id already served with the old one.
        let certificate_in = match certificate {
            None => true,
            Some(id) => {
                let record = state
                    .certificates
                    .get(id)
                    .await
                    .map_err(|error| error.to_string())?;
                state.plane.serves(&record)
            }
        };
        if routers_in && certificate_in {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            return Err(if routers_in {
                format!(
                    "the data plane did not take certificate {} within {} s (see the server log)",
                    certificate.unwrap_or_default(),
                    SWAP_WAIT.as_secs()
                )
            } else {
                "the data plane did not take the new routes (a name clash with the file provider? see the server log)".into()
            });
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Puts back what the plan changed: removes what it created, restores what it reused.
async fn roll_back(
    state: &AdminState,
    plan: &mut Plan,
    before: &portcullis_config::store::Snapshot,
    service: Option<&Service>,
    routers: &[Router],
    created_certificate: Option<&str>,
) {
    let mut changes = Vec::new();
    for router in routers {
        changes.push(match before.routers.get(&router.name) {
            Some(previous) => Change::PutRouter(previous.clone()),
            None => Change::DeleteRouter(router.name.clone()),
        });
    }
    if let Some(service) = service {
        changes.push(match before.services.get(&service.name) {
            Some(previous) => Change::PutService(previous.clone()),
            None => Change::DeleteService(service.name.clone()),
        });
    }
    // Deleting what was never committed fails the batch; retry without those.
    let current = state.store.snapshot().await.ok();
    let changes: Vec<Change> = changes
        .into_iter()
        .filter(|c| match (c, &current) {
            (Change::DeleteRouter(name), Some(s)) => s.routers.contains_key(name),
            (Change::DeleteService(name), Some(s)) => s.services.contains_key(name),
            _ => true,
        })
        .collect();
    if !changes.is_empty() {
        if let Err(error) = state.store.apply(changes, None).await {
            tracing::error!(plan = %plan.id, %error, "rollback of routes failed");
        }
    }
    if let Some(id) = created_certificate {
        if let Err(error) = state.certificates.remove(id).await {
            tracing::error!(plan = %plan.id, %error, "rollback of the certificate failed");
        }
    }
    for index in 0..plan.steps.len() {
        if plan.steps[index].status == StepStatus::Succeeded {
            set_step(state, plan, index, StepStatus::RolledBack, None).await;
        }
    }
}

async fn revoke(state: &AdminState, plan: &mut Plan, id: &str) -> Result<(), String> {
    set_step(state, plan, 0, StepStatus::Running, None).await;
    match state.certificates.revoke(id).await {
        Ok(_) => {
            set_step(state, plan, 0, StepStatus::Succeeded, None).await;
            Ok(())
        }
        Err(error) => {
            set_step(state, plan, 0, StepStatus::Failed, Some(error.to_string())).await;
            Err(error.to_string())
        }
    }
}

/// After a restart: a plan left `running` either committed (its routers are
/// in the store: it succeeded) or did not (its certificate is removed if it
/// created one, and it failed).
pub(crate) async fn recover(state: &AdminState) {
    let Ok(all) = plans::list(state.store.as_ref()).await else {
        return;
    };
    let snapshot = state.store.snapshot().await.ok();
    for mut plan in all.into_iter().filter(|p| p.status == PlanStatus::Running) {
        let committed = match (&plan.kind, &snapshot) {
            (PlanKind::Expose { spec }, Some(snapshot)) => state
                .config
                .router_templates
                .get(&spec.template)
                .is_some_and(|t| {
                    spec.routers(t, None, None)
                        .iter()
                        .all(|r| snapshot.routers.contains_key(&r.name))
                }),
            _ => false,
        };
        if committed {
            plan.status = PlanStatus::Succeeded;
        } else {
            if let Some(id) = &plan.certificate_id {
                let created = state
                    .certificates
                    .get(id)
                    .await
                    .is_ok_and(|c| c.owner == owner(&plan) && !c.status.is_in_progress());
                if created && !matches!(plan.kind, PlanKind::Certificate { .. }) {
                    let _ = state.certificates.remove(id).await;
                }
            }
            plan.status = PlanStatus::Failed;
            plan.error = Some(match plan.kind {
                PlanKind::Certificate { .. } => {
                    "interrupted by a restart; the certificate order itself resumes: follow certificate_id".into()
                }
                _ => "interrupted by a restart before it finished; nothing it created was kept".into(),
            });
        }
        plan.updated_at = portcullis_acme::unix_now();
        save(state, &plan).await;
    }
}
