//! Provider identity and the price lookup.
//!
//! The gateway names one upstream several ways: a custom node has an **id**
//! (`openai-compatible-chat-<uuid>`, used by `owned_by`, `x-omniroute-provider`,
//! quota, analytics, call logs) and a **prefix** (`mock`, used by combo steps
//! and `/v1/models` ids); a built-in provider has an **id** (`claude`) and an
//! **alias** (`cc`). [`Providers`] holds both maps, read from
//! `GET /api/provider-nodes` and `GET /api/pricing/models`, and answers:
//!
//! * [`Providers::alias_set`]: `aliasSet(p)`, the names that denote `p`;
//! * [`Providers::gateway_id`]: the id the gateway's own endpoints use for `p`;
//! * [`breaker_state`]: the worst breaker state of an alias set;
//! * [`Providers::price`]: `price(providerNames, model)` over `GET /api/pricing`.
//!
//! Either source may be missing (a failed request): the maps are then just
//! emptier, and an alias set shrinks to what is still known, at least `{p}`.
//! The host uses the same maps for the budget guard's degrade target.
//!
//! ```
//! use omniroute_tool_contract::providers::Providers;
//! use serde_json::json;
//! let nodes = json!({"nodes":[{"id":"openai-compatible-chat-1","prefix":"mock"}]});
//! let providers = Providers::from_json(Some(&nodes), None);
//! assert_eq!(providers.alias_set("mock").members(), ["mock", "openai-compatible-chat-1"]);
//! assert_eq!(providers.gateway_id("mock"), "openai-compatible-chat-1");
//! ```

use serde_json::{Value, json};

use crate::coerce::{self, non_blank};

/// `GET /api/monitoring/health`: `providerBreakers` and the gateway `version`.
pub const HEALTH: &str = "/api/monitoring/health";
/// `GET /api/provider-nodes`: custom nodes `{"nodes":[{id, prefix, …}]}`.
pub const PROVIDER_NODES: &str = "/api/provider-nodes";
/// `GET /api/pricing/models`: built-in providers `{<alias>:{id, alias, …}}`.
pub const PRICING_MODELS: &str = "/api/pricing/models";
/// `GET /api/pricing`: prices `{<providerKey>:{<model>:{input, output, …}}}`, USD per 1M tokens.
pub const PRICING: &str = "/api/pricing";

/// One provider as the two mapping sources describe it: the id the gateway
/// uses, and the short name (node prefix or built-in alias), if any.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Identity {
    id: String,
    short: Option<String>,
}

impl Identity {
    fn names(&self, p: &str) -> bool {
        self.id == p || self.short.as_deref() == Some(p)
    }
}

/// The provider maps of one call, from its two mapping sources.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Providers {
    /// Custom nodes: id and prefix.
    nodes: Vec<Identity>,
    /// Built-in providers: id and alias.
    builtins: Vec<Identity>,
}

/// `aliasSet(p)`: `p` first, then the other names of the same provider, in
/// the order they were found, without duplicates.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AliasSet {
    members: Vec<String>,
}

impl AliasSet {
    /// `{p}` alone: what an alias set is when nothing maps `p`.
    pub fn single(p: &str) -> Self {
        AliasSet {
            members: vec![p.to_string()],
        }
    }

    fn push(&mut self, name: &str) {
        if !name.is_empty() && !self.contains(name) {
            self.members.push(name.to_string());
        }
    }

    /// The members, `p` first.
    pub fn members(&self) -> &[String] {
        &self.members
    }

    /// Exact membership: provider names are compared exactly.
    pub fn contains(&self, name: &str) -> bool {
        self.members.iter().any(|m| m == name)
    }

    /// Case-insensitive membership, for pricing keys and analytics providers
    /// (the gateway lower-cases those).
    pub fn contains_ignore_case(&self, name: &str) -> bool {
        self.members.iter().any(|m| m.eq_ignore_ascii_case(name))
    }

    /// True when some name is in both sets: the two denote the same provider.
    pub fn intersects(&self, other: &AliasSet) -> bool {
        self.members.iter().any(|m| other.contains(m))
    }

    /// True when any of `names` is a member.
    pub fn contains_any<'a>(&self, names: impl IntoIterator<Item = &'a str>) -> bool {
        names.into_iter().any(|n| self.contains(n))
    }
}

impl Providers {
    /// The maps from the two source responses; `None` (a failed request) or
    /// an unexpected shape contributes nothing.
    ///
    /// * provider nodes: `{"nodes":[{id, prefix}]}` (or a bare array);
    /// * pricing models: `{<key>:{id, alias}}`; `alias` defaults to the key.
    pub fn from_json(provider_nodes: Option<&Value>, pricing_models: Option<&Value>) -> Self {
        let node_list = match provider_nodes {
            Some(Value::Array(items)) => items.as_slice(),
            Some(other) => coerce::arr(&other["nodes"]),
            None => &[],
        };
        let nodes = node_list
            .iter()
            .filter_map(|n| {
                Some(Identity {
                    id: non_blank(&n["id"])?.to_string(),
                    short: non_blank(&n["prefix"]).map(str::to_string),
                })
            })
            .collect();
        let builtins = pricing_models
            .and_then(Value::as_object)
            .map(|entries| {
                entries
                    .iter()
                    .filter_map(|(key, e)| {
                        Some(Identity {
                            id: non_blank(&e["id"])?.to_string(),
                            short: Some(non_blank(&e["alias"]).unwrap_or(key).to_string()),
                        })
                    })
                    .collect()
            })
            .unwrap_or_default();
        Providers { nodes, builtins }
    }

    /// The compact form a tool keeps in its session cache:
    /// `{"nodes": [[id, short]], "builtins": [[id, short]]}`.
    pub fn to_cache_value(&self) -> Value {
        let list = |ids: &[Identity]| ids.iter().map(|i| json!([i.id, i.short])).collect::<Vec<_>>();
        json!({ "nodes": list(&self.nodes), "builtins": list(&self.builtins) })
    }

    /// The maps back from [`Providers::to_cache_value`]; `None` for any other shape.
    pub fn from_cache_value(value: &Value) -> Option<Self> {
        let list = |v: &Value| -> Option<Vec<Identity>> {
            v.as_array()?
                .iter()
                .map(|pair| {
                    Some(Identity {
                        id: pair[0].as_str()?.to_string(),
                        short: pair[1].as_str().map(str::to_string),
                    })
                })
                .collect()
        };
        Some(Providers { nodes: list(&value["nodes"])?, builtins: list(&value["builtins"])? })
    }

    /// `aliasSet(p)`: `{p}` plus the id and prefix of every node
    /// that `p` names (by id or prefix), plus the id and alias of every
    /// built-in provider that `p` names (by id or alias).
    pub fn alias_set(&self, p: &str) -> AliasSet {
        let mut set = AliasSet::single(p);
        for who in self.nodes.iter().chain(&self.builtins) {
            if who.names(p) {
                set.push(&who.id);
                if let Some(short) = &who.short {
                    set.push(short);
                }
            }
        }
        set
    }

    /// The union of the alias sets of `names`: `names` first, in order, then
    /// the other members of their alias sets. For the names of one model,
    /// such as `{owned_by, id prefix}`.
    pub fn alias_set_of_all<'a>(&self, names: impl IntoIterator<Item = &'a str>) -> AliasSet {
        let names: Vec<&str> = names.into_iter().collect();
        let mut set = AliasSet {
            members: Vec::new(),
        };
        for name in &names {
            set.push(name);
        }
        for name in &names {
            for m in self.alias_set(name).members {
                set.push(&m);
            }
        }
        set
    }

    /// Two names denote the same provider when their alias sets intersect.
    pub fn same_provider(&self, a: &str, b: &str) -> bool {
        self.alias_set(a).intersects(&self.alias_set(b))
    }

    /// The name the gateway's own endpoints (quota, analytics, call logs,
    /// `x-omniroute-provider`) use for `p`: the id of the node `p` names,
    /// else the id of the built-in provider `p` names, else `p` itself.
    pub fn gateway_id<'a>(&'a self, p: &'a str) -> &'a str {
        self.nodes
            .iter()
            .chain(&self.builtins)
            .find(|who| who.names(p))
            .map_or(p, |who| who.id.as_str())
    }

    /// True when `name` is a node id or a built-in provider id, i.e. a key
    /// the gateway itself reports providers under.
    pub fn is_gateway_key(&self, name: &str) -> bool {
        self.nodes
            .iter()
            .chain(&self.builtins)
            .any(|who| who.id == name)
    }

    /// `price(providerNames, model)` over a `GET /api/pricing` body.
    ///
    /// Provider keys, in order: `names` as given (the node or provider id
    /// first, then the prefix or alias), then the other members of their
    /// alias sets; each key as is, then lower-cased. For each key, models in
    /// order: as given, after the first `/`, after the last `/`. The first
    /// entry with numeric `input` and `output` wins.
    pub fn price(&self, pricing: &Value, names: &[&str], model: &str) -> Option<Price> {
        let keys = self.alias_set_of_all(names.iter().copied());
        let models = model_candidates(model);
        keys.members().iter().find_map(|key| {
            let lower = key.to_lowercase();
            let tried: &[&str] = if lower == *key {
                &[key]
            } else {
                &[key, &lower]
            };
            tried.iter().find_map(|k| {
                let by_model = &pricing[*k];
                models.iter().find_map(|m| Price::from_entry(&by_model[*m]))
            })
        })
    }
}

/// The model names tried for a price: as given, after the first `/`, after
/// the last `/` (duplicates and empty strings dropped).
fn model_candidates(model: &str) -> Vec<&str> {
    let mut out: Vec<&str> = Vec::with_capacity(3);
    let after_first = model.split_once('/').map(|(_, rest)| rest);
    let after_last = model.rsplit_once('/').map(|(_, rest)| rest);
    for m in [Some(model), after_first, after_last].into_iter().flatten() {
        if !m.is_empty() && !out.contains(&m) {
            out.push(m);
        }
    }
    out
}

/// A known price, USD per 1M tokens.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Price {
    pub input_per_million: f64,
    pub output_per_million: f64,
}

impl Price {
    /// A pricing entry `{input, output, …}` with both rates numeric.
    fn from_entry(entry: &Value) -> Option<Price> {
        Some(Price {
            input_per_million: entry["input"].as_f64().filter(|x| x.is_finite())?,
            output_per_million: entry["output"].as_f64().filter(|x| x.is_finite())?,
        })
    }

    /// Unit price, used only for comparisons: input + output.
    pub fn unit(&self) -> f64 {
        self.input_per_million + self.output_per_million
    }

    /// `{"inputPerMillion": …, "outputPerMillion": …}` with JS-style numbers.
    pub fn to_value(&self) -> Value {
        json!({
            "inputPerMillion": coerce::number(self.input_per_million),
            "outputPerMillion": coerce::number(self.output_per_million),
        })
    }
}

/// Circuit-breaker states, worst last, so `max` is "the worst".
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum BreakerState {
    Closed,
    HalfOpen,
    Open,
}

impl BreakerState {
    pub fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "CLOSED",
            BreakerState::HalfOpen => "HALF_OPEN",
            BreakerState::Open => "OPEN",
        }
    }

    /// The gateway's state names; anything else is not a state.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "CLOSED" => Some(BreakerState::Closed),
            "HALF_OPEN" => Some(BreakerState::HalfOpen),
            "OPEN" => Some(BreakerState::Open),
            _ => None,
        }
    }
}

/// Breaker state of a provider: the worst state among the health
/// response's `providerBreakers` entries whose `provider` is in `set`
/// (OPEN > HALF_OPEN > CLOSED); CLOSED when no entry matches, because the
/// gateway then never counted a failure for it.
pub fn breaker_state(health: &Value, set: &AliasSet) -> BreakerState {
    coerce::arr(&health["providerBreakers"])
        .iter()
        .filter(|b| b["provider"].as_str().is_some_and(|p| set.contains(p)))
        .filter_map(|b| b["state"].as_str().and_then(BreakerState::parse))
        .max()
        .unwrap_or(BreakerState::Closed)
}

#[cfg(test)]
mod tests {
    use super::*;

    use omniroute_tool_testing::fixtures::{
        HEALTH_FRESH, HEALTH_OPEN_BREAKERS as HEALTH_OPEN, HEALTH_POPULATED, PRICING as PRICES,
        PRICING_MODELS_EXCERPT as MODELS, PROVIDER_NODES as NODES,
    };

    const NODE_ID: &str = "openai-compatible-chat-9bf192e7-8141-485a-88a1-3f5e6e4f84be";

    fn parse(s: &str) -> Value {
        serde_json::from_str(s).unwrap()
    }

    fn providers() -> Providers {
        Providers::from_json(Some(&parse(NODES)), Some(&parse(MODELS)))
    }

    #[test]
    fn node_prefix_and_id_are_one_provider() {
        let p = providers();
        assert_eq!(p.alias_set("mock").members(), ["mock", NODE_ID]);
        // The node id is also a pricing-models entry (id = alias = node id).
        assert_eq!(p.alias_set(NODE_ID).members(), [NODE_ID, "mock"]);
        assert!(p.same_provider("mock", NODE_ID));
        assert_eq!(p.gateway_id("mock"), NODE_ID);
        assert_eq!(p.gateway_id(NODE_ID), NODE_ID);
        assert!(p.is_gateway_key(NODE_ID));
        assert!(!p.is_gateway_key("mock"));
    }

    #[test]
    fn cache_form_round_trips() {
        let p = providers();
        assert_eq!(Providers::from_cache_value(&p.to_cache_value()), Some(p));
        assert_eq!(Providers::from_cache_value(&json!({"nodes": []})), None);
        assert_eq!(Providers::from_cache_value(&json!("x")), None);
    }

    #[test]
    fn builtin_alias_and_id_are_one_provider() {
        let p = providers();
        assert_eq!(p.alias_set("cc").members(), ["cc", "claude"]);
        assert_eq!(p.alias_set("claude").members(), ["claude", "cc"]);
        assert_eq!(p.alias_set("openai").members(), ["openai"]);
        assert_eq!(p.gateway_id("cc"), "claude");
        assert!(p.same_provider("cc", "claude"));
        assert!(!p.same_provider("cc", "openai"));
        assert!(!p.same_provider("mock", "claude"));
    }

    #[test]
    fn unknown_names_and_missing_sources() {
        let p = providers();
        assert_eq!(p.alias_set("nope").members(), ["nope"]);
        assert_eq!(p.gateway_id("nope"), "nope");
        // Comparisons are exact.
        assert_eq!(p.alias_set("MOCK").members(), ["MOCK"]);
        assert!(p.alias_set("mock").contains_ignore_case("MOCK"));
        let none = Providers::from_json(None, None);
        assert_eq!(none.alias_set("mock").members(), ["mock"]);
        assert_eq!(none.gateway_id("cc"), "cc");
        // Odd shapes contribute nothing instead of failing.
        let odd = Providers::from_json(Some(&json!({"nodes":"x"})), Some(&json!([1, 2])));
        assert_eq!(odd, Providers::default());
        // A bare node array and an entry without alias (the key is the alias).
        let bare = Providers::from_json(
            Some(&json!([{"id":"n1","prefix":"p1"},{"prefix":"no-id"}])),
            Some(&json!({"gh":{"id":"github"}})),
        );
        assert_eq!(bare.alias_set("p1").members(), ["p1", "n1"]);
        assert_eq!(bare.alias_set("gh").members(), ["gh", "github"]);
        assert_eq!(bare.alias_set("no-id").members(), ["no-id"]);
    }

    #[test]
    fn union_of_alias_sets() {
        let p = providers();
        let set = p.alias_set_of_all([NODE_ID, "mock"]);
        assert_eq!(set.members(), [NODE_ID, "mock"]);
        assert!(set.intersects(&AliasSet::single("mock")));
        assert!(set.contains_any(["x", "mock"]));
        assert!(p.alias_set_of_all([]).members().is_empty());
        // The given names come first, in order; then their other aliases.
        assert_eq!(
            p.alias_set_of_all(["cc", "mock"]).members(),
            ["cc", "mock", "claude", NODE_ID]
        );
    }

    #[test]
    fn breaker_state_is_the_worst_of_the_alias_set() {
        let p = providers();
        let open = parse(HEALTH_OPEN);
        // Both the prefix entry and the (other gateway's) node id are OPEN.
        assert_eq!(
            breaker_state(&open, &p.alias_set("mock")),
            BreakerState::Open
        );
        assert_eq!(
            breaker_state(&open, &p.alias_set("cc")),
            BreakerState::Closed
        );
        let populated = parse(HEALTH_POPULATED);
        assert_eq!(
            breaker_state(&populated, &p.alias_set("mock")).as_str(),
            "CLOSED"
        );
        assert_eq!(
            breaker_state(&parse(HEALTH_FRESH), &p.alias_set("mock")),
            BreakerState::Closed
        );
        let mixed = json!({"providerBreakers":[
            {"provider":"mock","state":"CLOSED"},
            {"provider":NODE_ID,"state":"HALF_OPEN"},
            {"provider":"other","state":"OPEN"},
            {"provider":"mock","state":"weird"}
        ]});
        assert_eq!(
            breaker_state(&mixed, &p.alias_set("mock")),
            BreakerState::HalfOpen
        );
    }

    #[test]
    fn price_of_a_builtin_model() {
        let p = providers();
        let prices = parse(PRICES);
        let gpt4o = Price {
            input_per_million: 2.5,
            output_per_million: 10.0,
        };
        assert_eq!(p.price(&prices, &["openai"], "gpt-4o"), Some(gpt4o));
        // `openai/gpt-4o`: the text after the first `/`.
        assert_eq!(
            p.price(&prices, &["openai", "openai"], "openai/gpt-4o"),
            Some(gpt4o)
        );
        assert_eq!(
            gpt4o.to_value().to_string(),
            r#"{"inputPerMillion":2.5,"outputPerMillion":10}"#
        );
        assert_eq!(gpt4o.unit(), 12.5);
        // Via the alias set: `claude` has no pricing key, its alias `cc` has.
        let claude = p
            .price(&prices, &["claude"], "claude-sonnet-4-6")
            .expect("priced under cc");
        assert_eq!(Some(claude), p.price(&prices, &["cc"], "claude-sonnet-4-6"));
        // Keys are also tried lower-cased.
        assert_eq!(p.price(&prices, &["OpenAI"], "gpt-4o"), Some(gpt4o));
    }

    #[test]
    fn custom_nodes_have_no_default_price() {
        let p = providers();
        let prices = parse(PRICES);
        assert_eq!(p.price(&prices, &[NODE_ID, "mock"], "mock-small"), None);
        assert_eq!(p.price(&prices, &["combo"], "coding-fast"), None);
        assert_eq!(p.price(&Value::Null, &["openai"], "gpt-4o"), None);
    }

    #[test]
    fn user_price_under_the_node_id_and_model_candidates() {
        let p = providers();
        let prices = json!({
            NODE_ID: {"mock-small": {"input": 1.5, "output": 6}},
            "mock": {"mock-large": {"input": 10, "output": 30}},
            "x": {"a/b": {"input": 1, "output": 2}, "c": {"input": 3, "output": 4}, "bad": {"input": "1", "output": 2}}
        });
        let small = p.price(&prices, &[NODE_ID, "mock"], "mock-small").unwrap();
        assert_eq!(
            small.to_value(),
            json!({"inputPerMillion":1.5,"outputPerMillion":6})
        );
        // Found from the node id through the alias set (prefix key).
        assert!(p.price(&prices, &[NODE_ID], "mock-large").is_some());
        // Model as given, after the first `/`, after the last `/`.
        assert_eq!(
            p.price(&prices, &["x"], "a/b").unwrap().input_per_million,
            1.0
        );
        assert_eq!(
            p.price(&prices, &["x"], "z/a/b").unwrap().input_per_million,
            1.0
        );
        assert_eq!(
            p.price(&prices, &["x"], "z/y/c").unwrap().input_per_million,
            3.0
        );
        assert_eq!(p.price(&prices, &["x"], "bad"), None);
        assert_eq!(model_candidates("a/b/c"), ["a/b/c", "b/c", "c"]);
        assert_eq!(model_candidates("c"), ["c"]);
        assert_eq!(model_candidates("a/"), ["a/"]);
    }
}
