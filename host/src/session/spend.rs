//! Spend per completion: the worst case the host reserves before a
//! completion is sent, and the reservation that settles it.
//!
//! The worst case is the highest input and output price among every model
//! the requested model or combo can reach (combo references followed), read
//! by the host itself from `/api/combos` and `/api/pricing` with its own read
//! scopes (briefly cached), times a sound bound of the tokens: input tokens ≤
//! the request body's bytes, output tokens ≤ `max_tokens` /
//! `max_completion_tokens` (else the principal's `default_max_tokens`), times
//! `n`. A model without a known price makes the worst case unknown.
//!
//! A [`Reservation`] is settled once, with the real cost of the answer; one
//! that is dropped unsettled (deadline, cancellation, a dropped future)
//! settles at its full amount in a spawned task, never at 0.

use crate::capability::{CapabilitySet, Method, Scope};
use crate::gateway::{Broker, GatewayError, GatewayRequest, GatewayResponse};
use crate::state::{BucketKey, LedgerId, ReservationId, SpendLimits, SpendPolicy, Store, StoreError};
use omniroute_tool_contract::ledger::LedgerEntry;
use omniroute_tool_contract::combos::{combo_steps, combos_of, find_combo, is_combo_ref, model_provider, model_string};
use omniroute_tool_contract::providers::{Price, Providers};
use serde_json::Value;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long the host reuses what it read of combos and prices.
pub const CATALOG_TTL: Duration = Duration::from_secs(30);
/// Combo references followed at most this deep (a cycle stops here too).
const MAX_COMBO_DEPTH: usize = 8;

/// The worst case of one completion.
#[derive(Debug, Clone, PartialEq)]
pub enum Estimate {
    /// Every reachable model has a known price: at most this many USD.
    Priced(f64),
    /// These reachable models have no known price (the first few).
    Unpriced(Vec<String>),
}

/// What the host read of the gateway's combos and prices.
#[derive(Debug, Default)]
pub struct Catalog {
    pub combos: Option<Value>,
    pub pricing: Option<Value>,
    pub providers: Providers,
}

/// The token bounds of a completion request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TokenBounds {
    pub input: u64,
    pub output: u64,
    pub choices: u64,
}

/// The bounds of `req`: body bytes for input, `max_tokens` /
/// `max_completion_tokens` (else `default_max_tokens`) for output, `n` choices.
pub fn token_bounds(req: &GatewayRequest, default_max_tokens: u32) -> TokenBounds {
    let raw = req.body.as_deref().unwrap_or_default();
    let body: Value = serde_json::from_str(raw).unwrap_or(Value::Null);
    let positive = |key: &str| body.get(key).and_then(Value::as_u64).filter(|n| *n > 0);
    let output = positive("max_completion_tokens")
        .into_iter()
        .chain(positive("max_tokens"))
        .max()
        .unwrap_or(u64::from(default_max_tokens));
    TokenBounds { input: raw.len() as u64, output, choices: positive("n").unwrap_or(1) }
}

/// Every `(provider, model)` the target `model` can reach: a combo's steps
/// (references followed), else the model itself (its `provider/` prefix).
pub fn reachable(model: &str, combos: Option<&Value>) -> Vec<(Option<String>, String)> {
    let mut out = Vec::new();
    let mut seen = Vec::new();
    walk(model, combos, 0, &mut seen, &mut out);
    out
}

fn walk(target: &str, combos: Option<&Value>, depth: usize, seen: &mut Vec<String>, out: &mut Vec<(Option<String>, String)>) {
    let combo = combos.and_then(|c| find_combo(combos_of(c), target));
    let Some(combo) = combo else {
        let provider = target.split_once('/').map(|(p, _)| p.to_owned()).filter(|p| !p.is_empty());
        out.push((provider, target.to_owned()));
        return;
    };
    if depth >= MAX_COMBO_DEPTH || seen.iter().any(|s| s == target) {
        return;
    }
    seen.push(target.to_owned());
    for step in combo_steps(combo) {
        if is_combo_ref(step) {
            if let Some(name) = step["comboName"].as_str() {
                walk(name, combos, depth + 1, seen, out);
            }
        } else if let Some(m) = model_string(step) {
            out.push((model_provider(step), m));
        }
    }
}

/// The worst case of a completion to `model` with `bounds`, from `catalog`.
pub fn estimate(model: &str, bounds: TokenBounds, catalog: &Catalog) -> Estimate {
    let targets = reachable(model, catalog.combos.as_ref());
    let mut unpriced = Vec::new();
    let (mut input, mut output) = (0.0f64, 0.0f64);
    for (provider, m) in &targets {
        let names: Vec<&str> = provider.as_deref().into_iter().collect();
        let price: Option<Price> = catalog.pricing.as_ref().and_then(|p| catalog.providers.price(p, &names, m));
        match price {
            Some(p) => {
                input = input.max(p.input_per_million);
                output = output.max(p.output_per_million);
            }
            None if unpriced.len() < 5 => unpriced.push(m.clone()),
            None => {}
        }
    }
    if targets.is_empty() {
        unpriced.push(model.to_owned());
    }
    if !unpriced.is_empty() {
        return Estimate::Unpriced(unpriced);
    }
    let per_choice = (bounds.input as f64 * input + bounds.output as f64 * output) / 1_000_000.0;
    // The prompt is billed once; every extra choice adds its output.
    let extra = bounds.choices.saturating_sub(1) as f64 * bounds.output as f64 * output / 1_000_000.0;
    Estimate::Priced(per_choice + extra)
}

/// The catalog, read with the host's own read scopes and kept for
/// [`CATALOG_TTL`] per gateway; a read that fails leaves its part empty.
pub async fn catalog(broker: &Broker, within: Duration) -> Arc<Catalog> {
    static CACHE: Mutex<Option<(Instant, String, Arc<Catalog>)>> = Mutex::new(None);
    let gateway = broker.base_url().to_string();
    {
        let cached = CACHE.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((at, url, catalog)) = cached.as_ref()
            && *url == gateway
            && at.elapsed() < CATALOG_TTL
        {
            return catalog.clone();
        }
    }
    // Host-initiated reads for the host's own policy, not the tool's.
    let host_caps = CapabilitySet::new([Scope::ReadCombos, Scope::ReadModels]);
    let get = |path: &str| GatewayRequest { method: Method::Get, path: path.to_owned(), query: vec![], body: None };
    let json = |r: Result<GatewayResponse, GatewayError>| {
        r.ok()
            .filter(|r| (200..300).contains(&r.status))
            .and_then(|r| serde_json::from_str::<Value>(&r.body).ok())
    };
    let (r_combos, r_pricing, r_nodes, r_models) =
        (get("/api/combos"), get("/api/pricing"), get("/api/provider-nodes"), get("/api/pricing/models"));
    let (combos, pricing, nodes, models) = futures::join!(
        broker.send_within(&host_caps, &r_combos, within),
        broker.send_within(&host_caps, &r_pricing, within),
        broker.send_within(&host_caps, &r_nodes, within),
        broker.send_within(&host_caps, &r_models, within),
    );
    let (combos, pricing, nodes, models) = (json(combos), json(pricing), json(nodes), json(models));
    let complete = combos.is_some() && pricing.is_some();
    let catalog = Arc::new(Catalog { providers: Providers::from_json(nodes.as_ref(), models.as_ref()), combos, pricing });
    if complete {
        *CACHE.lock().unwrap_or_else(|p| p.into_inner()) = Some((Instant::now(), gateway, catalog.clone()));
    }
    catalog
}

/// The model a completion request names.
pub fn requested_model(req: &GatewayRequest) -> Option<String> {
    let body: Value = serde_json::from_str(req.body.as_deref()?).ok()?;
    body.get("model")?.as_str().map(str::to_owned)
}

/// The worst case of `req` for a principal with `policy`.
pub async fn worst_case(broker: &Broker, within: Duration, req: &GatewayRequest, policy: &SpendPolicy) -> Estimate {
    let Some(model) = requested_model(req) else {
        return Estimate::Unpriced(vec!["(no model)".to_owned()]);
    };
    let catalog = catalog(broker, within).await;
    estimate(&model, token_bounds(req, policy.default_max_tokens), &catalog)
}

/// The real cost a completion's outcome settles at: the cost the gateway
/// reported; an error answer without one costs 0; a success without one,
/// or no answer at all (timeout, dropped connection, response over the cap),
/// `None`, i.e. the full reservation. A request refused before it left the
/// host costs 0.
pub fn settled_cost(result: &Result<GatewayResponse, GatewayError>, reported: Option<f64>) -> Option<f64> {
    match result {
        Ok(resp) if (200..300).contains(&resp.status) => reported,
        Ok(_) => Some(reported.unwrap_or(0.0)),
        Err(GatewayError::Denied(_) | GatewayError::Invalid(_) | GatewayError::Client(_) | GatewayError::Refused(_)) => Some(0.0),
        Err(GatewayError::Auth(_)) => Some(0.0),
        Err(GatewayError::Timeout(_) | GatewayError::Unreachable(_) | GatewayError::TooLarge) => None,
    }
}

/// An outstanding reservation. Settle it with [`Reservation::settle`]; if it
/// is dropped unsettled it settles at its full amount (spawned), so a
/// completion that was sent and never answered is charged, never free.
pub struct Reservation {
    store: Store,
    principal: Arc<str>,
    id: Option<ReservationId>,
    amount: f64,
}

impl std::fmt::Debug for Reservation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reservation").field("principal", &self.principal).field("amount", &self.amount).field("settled", &self.id.is_none()).finish()
    }
}

impl Reservation {
    /// Reserves `amount` in `bucket` of `principal` against `limits`.
    pub async fn reserve(store: &Store, principal: Arc<str>, bucket: &BucketKey, amount: f64, limits: SpendLimits) -> Result<Reservation, StoreError> {
        let id = store.reserve(&principal, bucket, amount, limits).await?;
        Ok(Reservation { store: store.clone(), principal, id: Some(id), amount })
    }

    /// The reserved amount (USD).
    pub fn amount(&self) -> f64 {
        self.amount
    }

    /// Settles at `actual` (`None`: the full amount). The store write runs
    /// in its own task, so dropping this future does not lose it.
    pub async fn settle(mut self, actual: Option<f64>) -> Result<f64, StoreError> {
        let Some(id) = self.id.take() else { return Ok(0.0) };
        let (store, principal) = (self.store.clone(), self.principal.clone());
        let task = tokio::spawn(async move { store.settle(&principal, &id, actual).await });
        match task.await {
            Ok(result) => result,
            Err(e) => Err(StoreError::Backend(format!("the settlement task failed: {e}"))),
        }
    }
}

/// Ends a completion: records `entry` (`None`: nothing left the host) in
/// the bucket's ledger and books its cost, settling `reservation` at
/// `actual` (`None`: in full) or, with nothing reserved, charging `actual`
/// directly, in one store transaction run in its own task, so dropping this
/// future loses neither. If that transaction fails, each half is tried
/// alone (append the entry, then settle or book), so a failure of one does
/// not lose the other; a reservation neither settles is charged in full once
/// stale. Returns the entry's id, the entry, and what was charged.
pub async fn finish_completion(
    store: &Store,
    principal: Arc<str>,
    bucket: BucketKey,
    mut reservation: Option<Reservation>,
    entry: Option<LedgerEntry>,
    actual: Option<f64>,
) -> (Option<LedgerId>, Option<LedgerEntry>, Result<f64, StoreError>) {
    let id = reservation.as_mut().and_then(|r| r.id.take());
    let reserved = reservation.as_ref().map_or(0.0, Reservation::amount);
    let store = store.clone();
    let task = tokio::spawn(async move {
        let finished = store.finish_completion(&principal, &bucket, entry.as_ref(), id.as_ref(), actual).await;
        let e = match finished {
            Ok((ledger_id, charged)) => return (ledger_id, entry, Ok(charged)),
            Err(e) => e,
        };
        tracing::warn!(error = %e, "recording a completion with its cost failed; trying each alone");
        let ledger_id = match &entry {
            Some(entry) => append_entry(&store, &principal, &bucket, entry).await,
            None => None,
        };
        let charged = match &id {
            Some(id) => store.settle(&principal, id, actual).await,
            None => store.finish_completion(&principal, &bucket, None, None, actual).await.map(|(_, charged)| charged),
        };
        (ledger_id, entry, charged)
    });
    match task.await {
        Ok(done) => done,
        Err(e) => {
            tracing::error!(reserved, error = %e, "the task ending a completion failed; an unsettled reservation is charged in full once stale");
            (None, None, Err(StoreError::Backend(format!("the task ending a completion failed: {e}"))))
        }
    }
}

/// Appends a completion's ledger entry on its own; a failure is logged (the
/// completion was sent either way) and gives no id.
pub async fn append_entry(store: &Store, principal: &str, bucket: &BucketKey, entry: &LedgerEntry) -> Option<LedgerId> {
    match store.append_ledger(principal, bucket, entry).await {
        Ok(id) => Some(id),
        Err(e) => {
            tracing::error!(tool = %entry.origin, error = %e, request_id = ?entry.request_id, "a completion could not be recorded in the ledger");
            None
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        let Some(id) = self.id.take() else { return };
        let (store, principal, amount) = (self.store.clone(), self.principal.clone(), self.amount);
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(async move {
                    if let Err(e) = store.settle(&principal, &id, None).await {
                        tracing::error!(%principal, amount, error = %e, "an unanswered completion's reservation could not be settled; the store settles it in full when it is stale");
                    }
                });
            }
            Err(_) => tracing::error!(%principal, amount, "an unanswered completion's reservation is left for the store to settle in full when it is stale"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{Retention, SqliteStore};

    fn fixture(name: &str) -> Value {
        let path = format!("{}/../tool-components/testing/fixtures/gateway/{name}", env!("CARGO_MANIFEST_DIR"));
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    fn completion(body: Value) -> GatewayRequest {
        GatewayRequest { method: Method::Post, path: "/v1/chat/completions".into(), query: vec![], body: Some(body.to_string()) }
    }

    #[test]
    fn bounds_come_from_the_request() {
        let req = completion(serde_json::json!({"model": "m", "messages": [], "max_tokens": 100, "n": 3}));
        let b = token_bounds(&req, 4096);
        assert_eq!((b.output, b.choices), (100, 3));
        assert_eq!(b.input, req.body.as_ref().unwrap().len() as u64);
        let req = completion(serde_json::json!({"model": "m", "max_completion_tokens": 50}));
        assert_eq!(token_bounds(&req, 4096).output, 50);
        assert_eq!(token_bounds(&completion(serde_json::json!({"model": "m"})), 777).output, 777);
    }

    #[test]
    fn a_combo_costs_its_most_expensive_reachable_model() {
        let combos = serde_json::json!({"combos": [
            {"id": "1", "name": "outer", "models": [{"kind": "model", "model": "cc/claude-haiku-4-5-20251001", "providerId": "cc"}, {"kind": "combo-ref", "comboName": "inner"}]},
            {"id": "2", "name": "inner", "models": ["cc/claude-opus-4-5-20251101", {"kind": "combo-ref", "comboName": "outer"}]}
        ]});
        let catalog = Catalog { combos: Some(combos), pricing: Some(fixture("pricing.json")), providers: Providers::default() };
        let reached = reachable("outer", catalog.combos.as_ref());
        assert_eq!(reached.len(), 2, "the cycle back to outer stops: {reached:?}");
        let bounds = TokenBounds { input: 1000, output: 100, choices: 1 };
        // opus-4-5: 15 in / 75 out per 1M, the highest of both.
        let Estimate::Priced(usd) = estimate("outer", bounds, &catalog) else { panic!("priced") };
        assert!((usd - (1000.0 * 15.0 + 100.0 * 75.0) / 1e6).abs() < 1e-12, "{usd}");
        let Estimate::Priced(direct) = estimate("cc/claude-haiku-4-5-20251001", bounds, &catalog) else { panic!("priced") };
        assert!((direct - (1000.0 * 0.5 + 100.0 * 2.5) / 1e6).abs() < 1e-12, "{direct}");
        assert_eq!(estimate("nobody/unknown-model", bounds, &catalog), Estimate::Unpriced(vec!["nobody/unknown-model".into()]));
    }

    #[test]
    fn what_an_outcome_settles_at() {
        let ok = |status: u16| Ok(GatewayResponse { status, headers: vec![], body: String::new() });
        assert_eq!(settled_cost(&ok(200), Some(0.5)), Some(0.5));
        assert_eq!(settled_cost(&ok(200), None), None, "a success without a cost is charged in full");
        assert_eq!(settled_cost(&ok(503), None), Some(0.0));
        assert_eq!(settled_cost(&Err(GatewayError::Timeout(30)), None), None);
        assert_eq!(settled_cost(&Err(GatewayError::Denied("x".into())), None), Some(0.0));
    }

    #[tokio::test]
    async fn a_dropped_reservation_settles_in_full() {
        let dir = std::env::temp_dir().join(format!("omr-spend-{}-{}", std::process::id(), crate::db::random_hex(6).unwrap()));
        let store: Store = Arc::new(SqliteStore::open(&dir.join("state.sqlite"), Retention::default()).unwrap());
        let bucket = BucketKey::default_bucket();
        let settled = Reservation::reserve(&store, Arc::from("p"), &bucket, 0.25, SpendLimits::default()).await.unwrap();
        assert_eq!(settled.settle(Some(0.1)).await.unwrap(), 0.1);
        let dropped = Reservation::reserve(&store, Arc::from("p"), &bucket, 0.25, SpendLimits::default()).await.unwrap();
        drop(dropped);
        let mut account = store.spend("p", "total").await.unwrap();
        for _ in 0..200 {
            if account.reserved == 0.0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
            account = store.spend("p", "total").await.unwrap();
        }
        assert!((account.spent - 0.35).abs() < 1e-12 && account.reserved.abs() < 1e-12, "{account:?}");
        let _ = std::fs::remove_dir_all(dir);
    }

    /// The entry and the settlement commit together; when that fails, the
    /// entry is still recorded and the settlement tried alone.
    #[tokio::test]
    async fn a_completion_is_recorded_even_when_its_settlement_fails() {
        let dir = std::env::temp_dir().join(format!("omr-finish-{}-{}", std::process::id(), crate::db::random_hex(6).unwrap()));
        let store: Store = Arc::new(SqliteStore::open(&dir.join("state.sqlite"), Retention::default()).unwrap());
        let bucket = BucketKey::default_bucket();
        // Built the way the broker builds it, from the wire.
        let entry = |id: &str| {
            use crate::session::ledger::FromExchange;
            let sent = GatewayRequest { method: Method::Post, path: "/v1/chat/completions".into(), query: vec![], body: Some(r#"{"model":"coding-fast"}"#.into()) };
            let headers = vec![("x-request-id".to_owned(), id.to_owned()), (omniroute_tool_contract::completion::headers::COST.to_owned(), "0.1".to_owned())];
            let answer = Ok(GatewayResponse { status: 200, headers, body: "{}".into() });
            LedgerEntry::from_exchange("omniroute_route_request", &sent, &answer, std::time::SystemTime::now(), std::time::SystemTime::now())
        };

        let reservation = Reservation::reserve(&store, Arc::from("p"), &bucket, 0.25, SpendLimits::default()).await.unwrap();
        let (id, recorded, charged) = finish_completion(&store, Arc::from("p"), bucket.clone(), Some(reservation), Some(entry("r1")), Some(0.1)).await;
        assert!(id.is_some() && recorded.is_some());
        assert_eq!(charged, Ok(0.1));

        // Settled elsewhere first (as a stale sweep does): the joint transaction fails.
        let reservation = Reservation::reserve(&store, Arc::from("p"), &bucket, 0.25, SpendLimits::default()).await.unwrap();
        let reservation_id = reservation.id.clone().unwrap();
        assert_eq!(store.settle("p", &reservation_id, None).await, Ok(0.25));
        let (id, recorded, charged) = finish_completion(&store, Arc::from("p"), bucket.clone(), Some(reservation), Some(entry("r2")), Some(0.1)).await;
        assert!(id.is_some(), "the entry is recorded alone");
        assert_eq!(recorded.and_then(|e| e.request_id).as_deref(), Some("r2"));
        assert_eq!(charged, Err(StoreError::NotFound));
        let ids: Vec<_> = store.ledger("p", &bucket).await.unwrap().into_iter().filter_map(|r| r.entry.request_id).collect();
        assert_eq!(ids, ["r1", "r2"]);
        let account = store.spend("p", "total").await.unwrap();
        assert!((account.spent - 0.35).abs() < 1e-12 && account.reserved.abs() < 1e-12, "{account:?}");
        let _ = std::fs::remove_dir_all(dir);
    }
}
