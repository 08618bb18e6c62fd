//! Creating plans, and `/api/v1/plans`: list, show, approve, reject.

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::Full;
use portcullis_config::store::Expect;

use crate::api_error::{ApiError, ErrorBody};
use crate::plans::{self, Plan, PlanKind, PlanStatus, Step};
use crate::server::AdminState;
use crate::tokens::TokenRecord;
use crate::{audit, executor, json};

/// Records a new plan; runs it at once when approval is not required.
pub(crate) async fn create(
    state: &AdminState,
    token: &TokenRecord,
    kind: PlanKind,
    steps: Vec<Step>,
) -> Result<Plan, ApiError> {
    create_with_id(state, token, new_id(), kind, steps).await
}

/// Like [`create`], with an id chosen by the caller (who may already have
/// acted under it).
pub(crate) async fn create_with_id(
    state: &AdminState,
    token: &TokenRecord,
    id: String,
    kind: PlanKind,
    steps: Vec<Step>,
) -> Result<Plan, ApiError> {
    let now = portcullis_acme::unix_now();
    let mut plan = Plan {
        id,
        kind,
        status: PlanStatus::AwaitingApproval,
        steps,
        requested_by: token.name.clone(),
        decided_by: None,
        error: None,
        certificate_id: None,
        created_at: now,
        updated_at: now,
    };
    if !state.config.require_approval {
        plan.status = PlanStatus::Running;
        plan.decided_by = Some(token.name.clone());
    }
    plans::save(state.store.as_ref(), &plan, Expect::Absent).await?;
    audit::record(
        state.store.as_ref(),
        &token.name,
        "plan.create",
        &plan.id,
        "ok",
        Some(describe(&plan)),
    )
    .await;
    if plan.status == PlanStatus::Running {
        tokio::spawn(executor::run(state.clone(), plan.clone()));
    }
    Ok(plan)
}

fn describe(plan: &Plan) -> String {
    match &plan.kind {
        PlanKind::Expose { spec } => format!(
            "expose {} ({})",
            spec.hostname,
            if spec.https { "https" } else { "http" }
        ),
        PlanKind::Certificate { request } => format!("certificate for {}", request.common_name),
        PlanKind::Revoke { certificate } => format!("revoke certificate {certificate}"),
    }
}

pub(crate) fn new_id() -> String {
    rand::random::<[u8; 12]>()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Every plan, oldest first.
#[derive(serde::Serialize, utoipa::ToSchema)]
struct PlanList<'a> {
    /// The plans.
    plans: &'a [Plan],
}

/// List plans.
#[utoipa::path(
    get,
    path = "/api/v1/plans",
    operation_id = "list_plans",
    tag = "plans",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Every plan, oldest first", body = PlanList),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "The token holds none of `ingress.read`, `acme.read`, `plans.approve`", body = ErrorBody),
        (status = 500, description = "Internal error; see the server log", body = ErrorBody),
    )
)]
pub(crate) async fn list(state: &AdminState) -> Result<Response<Full<Bytes>>, ApiError> {
    let plans = plans::list(state.store.as_ref()).await?;
    Ok(json::ok(StatusCode::OK, &PlanList { plans: &plans }))
}

/// One plan.
#[utoipa::path(
    get,
    path = "/api/v1/plans/{id}",
    operation_id = "show_plan",
    tag = "plans",
    params(("id" = String, Path, description = "Plan id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The plan", body = Plan),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "The token holds none of `ingress.read`, `acme.read`, `plans.approve`", body = ErrorBody),
        (status = 404, description = "No such plan", body = ErrorBody),
        (status = 500, description = "Internal error; see the server log", body = ErrorBody),
    )
)]
pub(crate) async fn show(state: &AdminState, id: &str) -> Result<Response<Full<Bytes>>, ApiError> {
    let (plan, _) = plans::load(state.store.as_ref(), id)
        .await?
        .ok_or_else(|| ApiError::not_found("plan"))?;
    Ok(json::ok(StatusCode::OK, &plan))
}

/// Approves a plan awaiting approval, which then runs.
#[utoipa::path(
    post,
    path = "/api/v1/plans/{id}/approve",
    operation_id = "approve_plan",
    tag = "plans",
    params(("id" = String, Path, description = "Plan id")),
    security(("bearer" = [])),
    responses(
        (status = 202, description = "Approved; the plan runs", body = Plan),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "The token lacks `plans.approve`", body = ErrorBody),
        (status = 404, description = "No such plan", body = ErrorBody),
        (status = 409, description = "The plan is not awaiting approval, or was decided concurrently", body = ErrorBody),
        (status = 500, description = "Internal error; see the server log", body = ErrorBody),
    )
)]
pub(crate) async fn approve(
    state: &AdminState,
    token: &TokenRecord,
    id: &str,
) -> Result<Response<Full<Bytes>>, ApiError> {
    decide(state, token, id, true).await
}

/// Rejects a plan awaiting approval; nothing is done.
#[utoipa::path(
    post,
    path = "/api/v1/plans/{id}/reject",
    operation_id = "reject_plan",
    tag = "plans",
    params(("id" = String, Path, description = "Plan id")),
    security(("bearer" = [])),
    responses(
        (status = 202, description = "Rejected", body = Plan),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "The token lacks `plans.approve`", body = ErrorBody),
        (status = 404, description = "No such plan", body = ErrorBody),
        (status = 409, description = "The plan is not awaiting approval, or was decided concurrently", body = ErrorBody),
        (status = 500, description = "Internal error; see the server log", body = ErrorBody),
    )
)]
pub(crate) async fn reject(
    state: &AdminState,
    token: &TokenRecord,
    id: &str,
) -> Result<Response<Full<Bytes>>, ApiError> {
    decide(state, token, id, false).await
}

/// Approves (runs) or rejects a plan awaiting approval; 409 otherwise.
async fn decide(
    state: &AdminState,
    token: &TokenRecord,
    id: &str,
    approve: bool,
) -> Result<Response<Full<Bytes>>, ApiError> {
    let (mut plan, revision) = plans::load(state.store.as_ref(), id)
        .await?
        .ok_or_else(|| ApiError::not_found("plan"))?;
    let to = if approve {
        PlanStatus::Running
    } else {
        PlanStatus::Rejected
    };
    let action = if approve {
        "plan.approve"
    } else {
        "plan.reject"
    };
    if !plan.status.can_become(to) {
        audit::record(
            state.store.as_ref(),
            &token.name,
            action,
            id,
            "refused",
            Some(format!("plan is {}", plan.status.as_str())),
        )
        .await;
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            format!(
                "plan {id} is {}; only a plan awaiting approval can be decided",
                plan.status.as_str()
            ),
        ));
    }
    plan.status = to;
    plan.decided_by = Some(token.name.clone());
    plan.updated_at = portcullis_acme::unix_now();
    // Compare-and-swap: two approvers racing cannot both run it.
    plans::save(state.store.as_ref(), &plan, Expect::Revision(revision))
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::CONFLICT,
                "conflict",
                format!("plan {id} was decided concurrently"),
            )
        })?;
    audit::record(
        state.store.as_ref(),
        &token.name,
        action,
        id,
        "ok",
        Some(describe(&plan)),
    )
    .await;
    if approve {
        tokio::spawn(executor::run(state.clone(), plan.clone()));
    }
    Ok(json::ok(StatusCode::ACCEPTED, &plan))
}
