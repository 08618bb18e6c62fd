//! Plans: changes to the public surface that wait for approval.
//!
//! A plan records what it will do (its steps) before anything happens, and
//! what each step did once it runs (ids produced, reused or created), so an
//! approver sees exactly what they approve and an operator sees exactly
//! what happened. Status moves only forward: awaiting_approval → running →
//! succeeded | failed, or awaiting_approval → rejected.

use portcullis_acme::CertRequest;
use portcullis_config::store::{space, Expect};
use portcullis_config::Store;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::expose::ExposeSpec;

/// Where a plan is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum PlanStatus {
    /// Waiting for someone with `plans.approve`.
    AwaitingApproval,
    /// Refused; nothing was done.
    Rejected,
    /// Approved and executing.
    Running,
    /// Every step succeeded.
    Succeeded,
    /// A step failed; what the plan created was removed.
    Failed,
}

impl PlanStatus {
    /// Whether the move is allowed.
    pub(crate) fn can_become(self, to: PlanStatus) -> bool {
        use PlanStatus::*;
        matches!(
            (self, to),
            (AwaitingApproval, Running | Rejected) | (Running, Succeeded | Failed)
        )
    }

    /// The status as the API shows it.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::AwaitingApproval => "awaiting_approval",
            Self::Rejected => "rejected",
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
        }
    }
}

/// Where a step is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum StepStatus {
    /// Not started.
    Pending,
    /// Under way.
    Running,
    /// Done.
    Succeeded,
    /// Failed; the plan stops here.
    Failed,
    /// Not needed (e.g. no certificate for plain HTTP).
    Skipped,
    /// Undone after a later step failed.
    RolledBack,
}

/// One step of a plan.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub(crate) struct Step {
    /// `service`, `routers`, `certificate`, `table_swap`, `revoke`.
    pub name: String,
    /// What the step does, in words.
    pub description: String,
    /// Where it is.
    pub status: StepStatus,
    /// Ids or names the step produced (fed to the next steps).
    #[serde(default)]
    pub produced: Vec<String>,
    /// True when the step reused an existing resource instead of creating one.
    #[serde(default)]
    pub reused: bool,
    /// Why it failed, or a note.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl Step {
    pub(crate) fn new(name: &str, description: String) -> Self {
        Self {
            name: name.to_owned(),
            description,
            status: StepStatus::Pending,
            produced: Vec::new(),
            reused: false,
            message: None,
        }
    }
}

/// What a plan changes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub(crate) enum PlanKind {
    /// Publish a service: service → routers → certificate → table swap.
    Expose {
        /// The validated request.
        spec: ExposeSpec,
    },
    /// A certificate only.
    Certificate {
        /// The request.
        request: CertRequestSpec,
    },
    /// Revoke a certificate (irreversible).
    Revoke {
        /// The certificate to revoke.
        certificate: String,
    },
}

/// A certificate request as a plan stores it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CertRequestSpec {
    /// First name.
    pub common_name: String,
    /// More names.
    pub sans: Vec<String>,
    /// Issuer.
    pub issuer: Option<String>,
    /// Challenge type.
    #[schema(value_type = Option<crate::openapi::ChallengeTypeName>)]
    pub challenge_type: Option<String>,
    /// Account contact.
    pub acme_email: Option<String>,
    /// DNS credential for dns-01.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns_credential_id: Option<String>,
}

impl From<&CertRequestSpec> for CertRequest {
    fn from(spec: &CertRequestSpec) -> Self {
        CertRequest {
            common_name: spec.common_name.clone(),
            sans: spec.sans.clone(),
            issuer: spec.issuer.clone(),
            challenge_type: spec.challenge_type.clone(),
            acme_email: spec.acme_email.clone(),
            dns_credential_id: spec.dns_credential_id.clone(),
        }
    }
}

/// A plan and its progress.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub(crate) struct Plan {
    /// Stable id.
    pub id: String,
    /// What it changes.
    #[serde(flatten)]
    pub kind: PlanKind,
    /// Where it is.
    pub status: PlanStatus,
    /// Steps in order.
    pub steps: Vec<Step>,
    /// Token that asked.
    pub requested_by: String,
    /// Token that approved or rejected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_by: Option<String>,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The certificate the plan uses, once known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_id: Option<String>,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds.
    pub updated_at: i64,
}

/// Reads one plan with its store revision.
pub(crate) async fn load(
    store: &dyn Store,
    id: &str,
) -> Result<Option<(Plan, u64)>, portcullis_config::Error> {
    Ok(store.get(space::PLANS, id).await?.and_then(|e| {
        serde_json::from_slice(&e.value)
            .ok()
            .map(|p| (p, e.revision))
    }))
}

/// Every plan, oldest first.
pub(crate) async fn list(store: &dyn Store) -> Result<Vec<Plan>, portcullis_config::Error> {
    let mut plans: Vec<Plan> = store
        .list(space::PLANS)
        .await?
        .iter()
        .filter_map(|e| serde_json::from_slice(&e.value).ok())
        .collect();
    plans.sort_by(|a, b| {
        a.created_at
            .cmp(&b.created_at)
            .then_with(|| a.id.cmp(&b.id))
    });
    Ok(plans)
}

/// Writes a plan; `expect` guards decisions against a concurrent decision.
pub(crate) async fn save(
    store: &dyn Store,
    plan: &Plan,
    expect: Expect,
) -> Result<u64, portcullis_config::Error> {
    let value = serde_json::to_vec(plan).unwrap_or_default();
    store.put(space::PLANS, &plan.id, value, expect).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_plan_kind_round_trips_through_json() {
        let kinds = [
            PlanKind::Revoke {
                certificate: "c1".into(),
            },
            PlanKind::Certificate {
                request: CertRequestSpec {
                    common_name: "a.test".into(),
                    sans: vec![],
                    issuer: None,
                    challenge_type: None,
                    acme_email: None,
                    dns_credential_id: None,
                },
            },
        ];
        for kind in kinds {
            let plan = Plan {
                id: "p".into(),
                kind,
                status: PlanStatus::Running,
                steps: vec![Step::new("x", "y".into())],
                requested_by: "admin".into(),
                decided_by: None,
                error: None,
                certificate_id: Some("c1".into()),
                created_at: 1,
                updated_at: 2,
            };
            let json = serde_json::to_vec(&plan).unwrap();
            let back: Plan = serde_json::from_slice(&json).unwrap();
            assert_eq!(back, plan);
        }
    }

    #[test]
    fn plan_status_moves_only_forward() {
        use PlanStatus::*;
        let all = [AwaitingApproval, Rejected, Running, Succeeded, Failed];
        let legal = [
            (AwaitingApproval, Running),
            (AwaitingApproval, Rejected),
            (Running, Succeeded),
            (Running, Failed),
        ];
        for from in all {
            for to in all {
                assert_eq!(
                    from.can_become(to),
                    legal.contains(&(from, to)),
                    "{from:?} -> {to:?}"
                );
            }
        }
    }
}
