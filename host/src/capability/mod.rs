//! Scopes and what they let a tool call do on the gateway.
//!
//! This module is the single source of truth for the capability table: which
//! (method, path pattern, body) each scope grants. The broker consults it on
//! every request a component makes, `omniroute-mcp tools` prints it, and the
//! tests check it row by row and against an expansion of the table.

mod body;
mod path;
#[cfg(test)]
mod proptests;
mod scope;
mod table;

pub use path::{NormalizedPath, PathError, normalize_path};
pub use scope::{EffectiveGrants, Grants, PatternError, Scope, ScopeError, parse_scope_pattern};
pub use table::{CAPABILITY_TABLE, CapabilityRow, Method, pattern_matches, template_for};

use std::collections::BTreeSet;

/// The gateway requests one tool call may make: the union of the table rows
/// of its effective scopes (granted ∩ declared by the tool).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CapabilitySet {
    scopes: BTreeSet<Scope>,
}

/// Why a request was refused before leaving the host.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    #[error("{method} {path} is not allowed by any scope of this call (scopes: {scopes})")]
    NotInScopes {
        method: Method,
        path: String,
        scopes: String,
    },
    #[error("{0}")]
    BadPath(#[from] PathError),
    /// The route is allowed but not with this body.
    #[error("{0}")]
    Body(String),
}

impl CapabilitySet {
    /// Builds the set for a call from the scopes that are both granted and declared.
    pub fn new(scopes: impl IntoIterator<Item = Scope>) -> Self {
        Self {
            scopes: scopes.into_iter().collect(),
        }
    }

    /// The effective scopes, sorted.
    pub fn scopes(&self) -> impl Iterator<Item = Scope> + '_ {
        self.scopes.iter().copied()
    }

    /// Whether this call holds `scope` (used for host state such as the budget guard).
    pub fn has(&self, scope: Scope) -> bool {
        self.scopes.contains(&scope)
    }

    /// Checks one request. The path must already be normalised. Returns the
    /// body to send: the checked JSON re-serialised (or none).
    pub fn check(&self, method: Method, path: &NormalizedPath, body: Option<&str>) -> Result<Option<String>, Denied> {
        let mut body_refusal = None;
        for (index, row) in CAPABILITY_TABLE.iter().enumerate() {
            if !(self.scopes.contains(&row.scope) && row.method == method && pattern_matches(row.pattern, path.as_str())) {
                continue;
            }
            match body::check(index, row, body) {
                Ok(body) => return Ok(body),
                Err(reason) => body_refusal = Some(reason),
            }
        }
        Err(match body_refusal {
            Some(reason) => Denied::Body(reason),
            None => Denied::NotInScopes {
                method,
                path: path.as_str().to_owned(),
                scopes: self.describe_scopes(),
            },
        })
    }

    fn describe_scopes(&self) -> String {
        if self.scopes.is_empty() {
            "none".to_owned()
        } else {
            self.scopes
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(scopes: &[Scope], method: Method, path: &str) -> Result<(), Denied> {
        check_with(scopes, method, path, body_for(method, path).as_deref()).map(|_| ())
    }

    fn check_with(scopes: &[Scope], method: Method, path: &str, body: Option<&str>) -> Result<Option<String>, Denied> {
        let set = CapabilitySet::new(scopes.iter().copied());
        let path = normalize_path(path)?;
        set.check(method, &path, body)
    }

    /// A body the tools send on this route, if it takes one.
    fn body_for(method: Method, path: &str) -> Option<String> {
        match (method, path) {
            (Method::Put, p) if p.starts_with("/api/combos/") => Some(r#"{"isActive":false}"#.to_owned()),
            (Method::Post, "/v1/chat/completions") => {
                Some(r#"{"model":"m","messages":[{"role":"user","content":"hi"}],"max_tokens":50,"stream":false}"#.to_owned())
            }
            (Method::Patch, "/api/resilience") => {
                Some(r#"{"requestQueue":{"requestsPerMinute":100},"providerBreaker":{"oauth":{"failureThreshold":3}}}"#.to_owned())
            }
            _ => None,
        }
    }

    #[test]
    fn write_combos_may_only_switch_a_combo() {
        let put = |body: Option<&str>| check_with(&[Scope::WriteCombos], Method::Put, "/api/combos/c1", body);
        assert_eq!(put(Some(r#"{ "isActive" : true }"#)), Ok(Some(r#"{"isActive":true}"#.to_owned())));
        for rewrite in [
            r#"{"isActive":true,"models":["evil/model"]}"#,
            r#"{"name":"renamed"}"#,
            r#"{"isActive":"yes"}"#,
            r#"{"isActive":true,"isActive":"x"}"#,
            r#"[true]"#,
            r#"{"isActive":true} trailing"#,
        ] {
            let err = put(Some(rewrite)).unwrap_err();
            assert!(matches!(err, Denied::Body(_)), "{rewrite}: {err}");
            assert!(!err.to_string().contains("evil") && !err.to_string().contains("renamed"), "the value must not be echoed: {err}");
        }
        assert!(matches!(put(None), Err(Denied::Body(_))));
        let get_with_body = check_with(&[Scope::ReadCombos], Method::Get, "/api/combos", Some("{}"));
        assert!(matches!(get_with_body, Err(Denied::Body(_))), "{get_with_body:?}");
    }

    #[test]
    fn health_scope_reads_health_but_not_combos() {
        assert!(check(&[Scope::ReadHealth], Method::Get, "/api/monitoring/health").is_ok());
        let err = check(&[Scope::ReadHealth], Method::Get, "/api/combos").unwrap_err();
        assert_eq!(
            err.to_string(),
            "GET /api/combos is not allowed by any scope of this call (scopes: read:health)"
        );
    }

    #[test]
    fn method_matters() {
        assert!(check(&[Scope::ReadCombos], Method::Get, "/api/combos").is_ok());
        assert!(check(&[Scope::ReadCombos], Method::Put, "/api/combos/abc").is_err());
        assert!(check(&[Scope::WriteCombos], Method::Put, "/api/combos/abc").is_ok());
    }

    #[test]
    fn placeholder_matches_exactly_one_segment() {
        assert!(check(&[Scope::WriteCombos], Method::Put, "/api/combos/abc/def").is_err());
        assert!(check(&[Scope::WriteCombos], Method::Put, "/api/combos/").is_err());
    }

    #[test]
    fn no_scopes_no_requests() {
        assert!(check(&[], Method::Get, "/api/monitoring/health").is_err());
    }

    #[test]
    fn traversal_is_refused_before_matching() {
        let err = check(&[Scope::ReadHealth], Method::Get, "/api/monitoring/../combos").unwrap_err();
        assert!(matches!(err, Denied::BadPath(_)));
    }

    /// Every row of the table, checked in both directions: the row's scope
    /// allows it, and a set holding every *other* scope that does not list
    /// the same pair refuses it.
    #[test]
    fn every_table_row_is_enforced() {
        for row in CAPABILITY_TABLE {
            let concrete = row.pattern.replace("{id}", "some-id");
            assert!(
                check(&[row.scope], row.method, &concrete).is_ok(),
                "{} should allow {} {}",
                row.scope.as_str(),
                row.method,
                row.pattern
            );
            let others: Vec<Scope> = Scope::ALL
                .iter()
                .copied()
                .filter(|s| {
                    !CAPABILITY_TABLE.iter().any(|r| {
                        r.scope == *s && r.method == row.method && r.pattern == row.pattern
                    })
                })
                .collect();
            assert!(
                check(&others, row.method, &concrete).is_err(),
                "{} {} leaks through other scopes",
                row.method,
                row.pattern
            );
        }
    }

    #[test]
    fn write_budget_grants_no_gateway_route() {
        assert!(
            CAPABILITY_TABLE
                .iter()
                .all(|row| row.scope != Scope::WriteBudget)
        );
    }
}
