//! The session budget guard, enforced by the host on every completion any
//! tool sends: a tool cannot route around it or under-report what was
//! spent, because the ledger is filled from the wire. The guard's type, its
//! decision, its texts and the degrade-target rule are the contract's, the
//! same the tools use.

pub use omniroute_tool_contract::budget::{
    BudgetGuard, Decision, GuardAction, degrade_target, degraded_text, no_target_text,
};

use crate::capability::{CapabilitySet, Method, Scope};
use crate::gateway::{Broker, GatewayError, GatewayRequest, GatewayResponse};
use std::time::Duration;

/// The guard's `degrade` action: points the completion at the degrade target
/// of `tier`, chosen from the gateway's combos, prices and providers, which
/// the host reads itself with its own read scopes (the tool's scopes play no
/// part in the host's policy). `Ok(Some(original))` when
/// the model changed, `Ok(None)` when it already was the target.
pub async fn degrade(broker: &Broker, within: Duration, req: &mut GatewayRequest, tier: &str) -> Result<Option<String>, String> {
    // Host-initiated reads for the host's own policy, not the tool's.
    let host_caps = CapabilitySet::new([Scope::ReadCombos, Scope::ReadModels]);
    let get = |path: &str| GatewayRequest {
        method: Method::Get,
        path: path.to_owned(),
        query: vec![],
        body: None,
    };
    let json = |r: Result<GatewayResponse, GatewayError>| {
        r.ok()
            .filter(|r| (200..300).contains(&r.status))
            .and_then(|r| serde_json::from_str::<serde_json::Value>(&r.body).ok())
    };
    let (r_combos, r_pricing, r_nodes, r_models) =
        (get("/api/combos"), get("/api/pricing"), get("/api/provider-nodes"), get("/api/pricing/models"));
    let (combos, pricing, nodes, models) = futures::join!(
        broker.send_within(&host_caps, &r_combos, within),
        broker.send_within(&host_caps, &r_pricing, within),
        broker.send_within(&host_caps, &r_nodes, within),
        broker.send_within(&host_caps, &r_models, within),
    );
    let Some(combos) = json(combos) else {
        return Err(no_target_text(tier));
    };
    let providers = omniroute_tool_contract::providers::Providers::from_json(json(nodes).as_ref(), json(models).as_ref());
    let target = degrade_target(tier, &combos, json(pricing).as_ref(), &providers)
        .ok_or_else(|| no_target_text(tier))?;
    let mut body: serde_json::Value = req
        .body
        .as_deref()
        .and_then(|b| serde_json::from_str(b).ok())
        .ok_or_else(|| "Budget guard could not degrade: the completion body is not JSON; request not sent.".to_owned())?;
    let original = body.get("model").and_then(|m| m.as_str()).unwrap_or_default().to_owned();
    if original == target {
        return Ok(None);
    }
    body["model"] = serde_json::Value::String(target);
    req.body = Some(body.to_string());
    Ok(Some(original))
}

