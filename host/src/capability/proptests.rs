//! Property tests of the capability matcher (path normalisation, table
//! matching, body schemas) against an independent oracle: the table expanded
//! into explicit allowed requests, with the body rules written out by hand.
//! A fixed number of cases per property, so a run is repeatable in time.

use super::*;
use proptest::prelude::*;
use serde_json::Value;

/// The matcher under test: what the broker does before anything is sent.
fn matcher_allows(scopes: &[Scope], method: Method, path: &str, body: Option<&str>) -> bool {
    let Ok(path) = normalize_path(path) else { return false };
    CapabilitySet::new(scopes.iter().copied()).check(method, &path, body).is_ok()
}

/// Ids the generator puts where a pattern has `{id}`; each is classified by
/// hand as one the gateway reads as a single plain segment. `metrics` is
/// here because the table's own `/api/combos/metrics` is, for `PUT`, the
/// `{id}` route of a combo named so.
const SAFE_IDS: &[&str] = &["c9df3fce-0dd7", "abc", "A_b-9", "x.y", "~tilde", "a%20b", "%61bc", "1", "coding-fast", "metrics"];
/// Ids that would change the route if the gateway decoded or normalised them.
const HOSTILE_IDS: &[&str] = &[
    "", ".", "..", "a/b", "a//b", "%2e%2e", "%2E%2e", "..%2f", "%2f", "a%2Fb", "a%5cb", "a\\b", "%252e%252e", "%25", "a?b",
    "a#b", "a b", "a\u{0}b", "a\nb", "%00", "http://x", "../../v1/chat/completions", "./x", "x/..",
];

/// What a route's body must be, from what the tools send on it: written
/// here from the routes, not read from the table's schemas.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BodyKind {
    None,
    SwitchCombo,
    Completion,
    Resilience,
}

fn body_kind(method: Method, pattern: &str) -> BodyKind {
    match (method, pattern) {
        (Method::Put, "/api/combos/{id}") => BodyKind::SwitchCombo,
        (Method::Post, "/v1/chat/completions") => BodyKind::Completion,
        (Method::Patch, "/api/resilience") => BodyKind::Resilience,
        _ => BodyKind::None,
    }
}

/// One explicit allowed request shape.
struct Allowed {
    scope: Scope,
    method: Method,
    path: String,
    body: BodyKind,
}

/// The table expanded with every safe id.
fn expanded() -> Vec<Allowed> {
    let mut out = Vec::new();
    for row in CAPABILITY_TABLE {
        let body = body_kind(row.method, row.pattern);
        if row.pattern.contains("{id}") {
            for id in SAFE_IDS {
                out.push(Allowed { scope: row.scope, method: row.method, path: row.pattern.replace("{id}", id), body });
            }
        } else {
            out.push(Allowed { scope: row.scope, method: row.method, path: row.pattern.to_owned(), body });
        }
    }
    out
}

fn object_with_only<'a>(v: &'a Value, allowed: &[&str]) -> Option<&'a serde_json::Map<String, Value>> {
    let map = v.as_object()?;
    map.keys().all(|k| allowed.contains(&k.as_str())).then_some(map)
}

fn count(v: Option<&Value>) -> bool {
    v.is_none_or(|v| v.as_u64().is_some())
}

/// The body rules, by hand.
fn body_allowed(kind: BodyKind, body: Option<&str>) -> bool {
    let parsed = || body.and_then(|b| serde_json::from_str::<Value>(b).ok());
    match kind {
        BodyKind::None => body.is_none(),
        BodyKind::SwitchCombo => parsed().is_some_and(|v| {
            object_with_only(&v, &["isActive"]).is_some_and(|m| m.get("isActive").is_some_and(Value::is_boolean))
        }),
        BodyKind::Completion => parsed().is_some_and(|v| {
            let Some(m) = object_with_only(&v, &["model", "messages", "max_tokens", "stream"]) else { return false };
            let messages_ok = m.get("messages").and_then(Value::as_array).is_some_and(|list| {
                list.iter().all(|msg| {
                    object_with_only(msg, &["role", "content"]).is_some_and(|o| {
                        o.get("role").is_some_and(Value::is_string) && o.get("content").is_some_and(Value::is_string)
                    })
                })
            });
            m.get("model").is_some_and(Value::is_string)
                && messages_ok
                && m.get("max_tokens").is_none_or(|t| t.as_u64().is_some_and(|t| t >= 1))
                && m.get("stream").is_none_or(|s| s == &Value::Bool(false))
        }),
        BodyKind::Resilience => parsed().is_some_and(|v| {
            let Some(m) = object_with_only(&v, &["requestQueue", "connectionCooldown", "providerBreaker"]) else { return false };
            let queue_ok = m.get("requestQueue").is_none_or(|q| {
                object_with_only(q, &["requestsPerMinute", "minTimeBetweenRequestsMs", "concurrentRequests"])
                    .is_some_and(|q| q.values().all(|v| count(Some(v))))
            });
            let per_class = |v: &Value, keys: &[&str], check: &dyn Fn(&serde_json::Map<String, Value>) -> bool| {
                object_with_only(v, &["oauth", "apikey"])
                    .is_some_and(|c| c.values().all(|inner| object_with_only(inner, keys).is_some_and(check)))
            };
            let cooldown_ok = m.get("connectionCooldown").is_none_or(|c| {
                per_class(c, &["baseCooldownMs", "useUpstreamRetryHints", "maxBackoffSteps"], &|o| {
                    count(o.get("baseCooldownMs"))
                        && count(o.get("maxBackoffSteps"))
                        && o.get("useUpstreamRetryHints").is_none_or(Value::is_boolean)
                })
            });
            let breaker_ok = m.get("providerBreaker").is_none_or(|b| {
                per_class(b, &["failureThreshold", "resetTimeoutMs"], &|o| o.values().all(|v| count(Some(v))))
            });
            queue_ok && cooldown_ok && breaker_ok
        }),
    }
}

/// The oracle: some explicit allowed request of a held scope is exactly this one.
fn oracle_allows(table: &[Allowed], scopes: &[Scope], method: Method, path: &str, body: Option<&str>) -> bool {
    table
        .iter()
        .any(|a| scopes.contains(&a.scope) && a.method == method && a.path == path && body_allowed(a.body, body))
}

/// A segment in an `{id}` position that the gateway reads as one plain
/// segment: for paths outside the hand-classified pool.
fn safe_segment(raw: &str) -> bool {
    if raw.is_empty() || raw.chars().any(|c| c.is_whitespace() || c.is_control() || matches!(c, '/' | '\\' | '?' | '#')) {
        return false;
    }
    let decoded = percent_decode(raw);
    decoded != "." && decoded != ".." && !decoded.contains(['/', '\\', '%', '\0'])
}

fn percent_decode(raw: &str) -> String {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push((h * 16 + l) as u8);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The oracle for any path: a table pattern whose literal segments are equal
/// and whose `{id}` segments are safe, and the body rules.
fn sound(scopes: &[Scope], method: Method, path: &str, body: Option<&str>) -> bool {
    CAPABILITY_TABLE.iter().any(|row| {
        let (pattern, given): (Vec<&str>, Vec<&str>) = (row.pattern.split('/').collect(), path.split('/').collect());
        scopes.contains(&row.scope)
            && row.method == method
            && pattern.len() == given.len()
            && pattern.iter().zip(&given).all(|(p, g)| if *p == "{id}" { safe_segment(g) } else { p == g })
            && body_allowed(body_kind(row.method, row.pattern), body)
    })
}

fn methods() -> impl Strategy<Value = Method> {
    prop_oneof![Just(Method::Get), Just(Method::Post), Just(Method::Put), Just(Method::Patch), Just(Method::Delete)]
}

fn scope_sets() -> impl Strategy<Value = Vec<Scope>> {
    proptest::sample::subsequence(Scope::ALL.to_vec(), 0..=Scope::ALL.len())
}

/// Table paths with an id from the classified pools.
fn classified_paths() -> impl Strategy<Value = String> {
    let ids: Vec<&'static str> = SAFE_IDS.iter().chain(HOSTILE_IDS).copied().collect();
    (proptest::sample::select(CAPABILITY_TABLE.to_vec()), proptest::sample::select(ids))
        .prop_map(|(row, id)| row.pattern.replace("{id}", id))
}

const VALID_BODIES: &[&str] = &[
    r#"{"isActive":true}"#,
    r#"{ "isActive" : false }"#,
    r#"{"\u0069sActive":true}"#,
    r#"{"model":"coding-fast","messages":[{"role":"user","content":"hi"}],"stream":false}"#,
    r#"{"model":"m","messages":[],"max_tokens":50}"#,
    r#"{"requestQueue":{"requestsPerMinute":100,"minTimeBetweenRequestsMs":200,"concurrentRequests":10}}"#,
    r#"{"connectionCooldown":{"oauth":{"baseCooldownMs":1,"useUpstreamRetryHints":false,"maxBackoffSteps":2}},"providerBreaker":{"apikey":{"failureThreshold":3,"resetTimeoutMs":0}}}"#,
];

const HOSTILE_BODIES: &[&str] = &[
    "",
    "null",
    "[]",
    "true",
    "not json",
    r#"{"isActive":true,"models":["evil/model"]}"#,
    r#"{"isActive":"true"}"#,
    r#"{"isActive":true,"isActive":1}"#,
    r#"{"isActive":true} {"isActive":false}"#,
    r#"{"isActive":true}garbage"#,
    r#"{"name":"renamed","steps":[]}"#,
    r#"{"model":"m","messages":[{"role":"user","content":"hi","tool_calls":[]}]}"#,
    r#"{"model":"m","messages":[{"role":"user","content":["array"]}]}"#,
    r#"{"model":"m","messages":[],"stream":true}"#,
    r#"{"model":"m","messages":[],"max_tokens":0}"#,
    r#"{"model":"m","messages":[],"temperature":2}"#,
    r#"{"model":1,"messages":[]}"#,
    r#"{"messages":[]}"#,
    r#"{"requestQueue":{"requestsPerMinute":-1}}"#,
    r#"{"requestQueue":{"requestsPerMinute":1.5}}"#,
    r#"{"providerBreaker":{"oauth":{"failureThreshold":3,"extra":1}}}"#,
    r#"{"apiKeys":{"new":"x"}}"#,
];

fn bodies() -> impl Strategy<Value = Option<String>> {
    let all: Vec<&'static str> = VALID_BODIES.iter().chain(HOSTILE_BODIES).copied().collect();
    prop_oneof![
        1 => Just(None),
        4 => proptest::sample::select(all).prop_map(|b| Some(b.to_owned())),
    ]
}

/// A table path changed the way an attacker would: case, encodings,
/// separators, traversal, extra segments, a second host.
fn mutated_paths() -> impl Strategy<Value = String> {
    let mutations = prop_oneof![
        Just("trailing-slash"),
        Just("double-slash"),
        Just("upper"),
        Just("encode-first-letter"),
        Just("dot-dot"),
        Just("dot"),
        Just("scheme"),
        Just("host"),
        Just("query"),
        Just("fragment"),
        Just("backslash"),
        Just("encoded-slash"),
        Just("append-id"),
        Just("drop-last"),
        Just("unicode"),
    ];
    (classified_paths(), mutations, proptest::sample::select(SAFE_IDS.iter().chain(HOSTILE_IDS).copied().collect::<Vec<_>>()))
        .prop_map(|(path, mutation, id)| match mutation {
            "trailing-slash" => format!("{path}/"),
            "double-slash" => path.replacen('/', "//", 2),
            "upper" => path.to_uppercase(),
            "encode-first-letter" => path.replacen("/a", "/%61", 1),
            "dot-dot" => format!("{path}/../combos"),
            "dot" => path.replacen("/api/", "/api/./", 1),
            "scheme" => format!("http://evil.example{path}"),
            "host" => format!("//evil.example{path}"),
            "query" => format!("{path}?id=1"),
            "fragment" => format!("{path}#x"),
            "backslash" => path.replacen('/', "\\", 2),
            "encoded-slash" => path.replacen('/', "%2F", 2),
            "append-id" => format!("{path}/{id}"),
            "drop-last" => path.rsplit_once('/').map(|(head, _)| head.to_owned()).unwrap_or_default(),
            _ => path.replacen('a', "\u{0430}", 1),
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4000, failure_persistence: None, ..ProptestConfig::default() })]

    /// Table paths with classified ids: the matcher allows exactly what the
    /// expanded table allows.
    #[test]
    fn the_matcher_allows_exactly_the_expanded_table(
        scopes in scope_sets(), method in methods(), path in classified_paths(), body in bodies(),
    ) {
        let table = expanded();
        prop_assert_eq!(
            matcher_allows(&scopes, method, &path, body.as_deref()),
            oracle_allows(&table, &scopes, method, &path, body.as_deref()),
            "{} {} {:?} with {:?}", method, path, body, scopes
        );
    }

    /// Changed paths: whatever the matcher allows is a table route with a
    /// plain id and an allowed body.
    #[test]
    fn no_changed_path_gets_past_the_table(
        scopes in scope_sets(), method in methods(), path in mutated_paths(), body in bodies(),
    ) {
        if matcher_allows(&scopes, method, &path, body.as_deref()) {
            prop_assert!(sound(&scopes, method, &path, body.as_deref()), "allowed {} {} {:?} with {:?}", method, path, body, scopes);
        }
    }

    /// Any text at all as the path and body.
    #[test]
    fn no_arbitrary_request_gets_past_the_table(
        scopes in scope_sets(), method in methods(), path in "(/[a-z%0-9./\\\\?#:~ -]{0,12}){0,5}", body in proptest::option::of(".{0,40}"),
    ) {
        if matcher_allows(&scopes, method, &path, body.as_deref()) {
            prop_assert!(sound(&scopes, method, &path, body.as_deref()), "allowed {} {} {:?} with {:?}", method, path, body, scopes);
        }
    }
}

#[test]
fn the_oracle_is_not_empty_and_not_everything() {
    let table = expanded();
    let all = Scope::ALL.to_vec();
    assert!(oracle_allows(&table, &all, Method::Put, "/api/combos/abc", Some(r#"{"isActive":true}"#)));
    assert!(!oracle_allows(&table, &all, Method::Put, "/api/combos/abc", Some(r#"{"isActive":true,"x":1}"#)));
    assert!(!oracle_allows(&table, &all, Method::Put, "/api/combos/..", Some(r#"{"isActive":true}"#)));
    assert!(matcher_allows(&all, Method::Post, "/v1/chat/completions", Some(VALID_BODIES[3])));
    assert!(!sound(&all, Method::Put, "/api/combos/%2e%2e", Some(r#"{"isActive":true}"#)));
}
