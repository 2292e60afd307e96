//! The nine scopes of the OmniRoute MCP surface and the operator's grants.

use std::fmt;
use std::str::FromStr;

/// A permission a tool declares and an operator grants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scope {
    ReadHealth,
    ReadCombos,
    WriteCombos,
    ReadQuota,
    ExecuteCompletions,
    ReadUsage,
    ReadModels,
    WriteBudget,
    WriteResilience,
}

/// A scope string that names no known scope.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown scope \"{0}\"; known scopes: read:health, read:combos, write:combos, read:quota, execute:completions, read:usage, read:models, write:budget, write:resilience")]
pub struct ScopeError(pub String);

impl Scope {
    /// Every scope, in the order the original server documents them.
    pub const ALL: [Scope; 9] = [
        Scope::ReadHealth,
        Scope::ReadCombos,
        Scope::WriteCombos,
        Scope::ReadQuota,
        Scope::ExecuteCompletions,
        Scope::ReadUsage,
        Scope::ReadModels,
        Scope::WriteBudget,
        Scope::WriteResilience,
    ];

    /// The wire name, e.g. `read:health`.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::ReadHealth => "read:health",
            Scope::ReadCombos => "read:combos",
            Scope::WriteCombos => "write:combos",
            Scope::ReadQuota => "read:quota",
            Scope::ExecuteCompletions => "execute:completions",
            Scope::ReadUsage => "read:usage",
            Scope::ReadModels => "read:models",
            Scope::WriteBudget => "write:budget",
            Scope::WriteResilience => "write:resilience",
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Scope {
    type Err = ScopeError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Scope::ALL
            .iter()
            .copied()
            .find(|scope| scope.as_str() == s)
            .ok_or_else(|| ScopeError(s.to_owned()))
    }
}

/// A scope pattern that would grant nothing: it matches none of the known scopes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("\"{pattern}\" matches no scope; use `*`, a prefix such as `read:*`, or one of: {known}")]
pub struct PatternError {
    pub pattern: String,
    known: String,
}

/// Checks one scope pattern as an operator writes it (`*`, a prefix ending in
/// `*` such as `read:*`, or an exact scope name) and returns it trimmed. A
/// pattern that matches no known scope is refused, naming the known scopes, so
/// a typo in a tenants file, a plugin grants file or `OMNIROUTE_MCP_SCOPES`
/// cannot silently grant nothing (or, as a prefix, more than meant).
pub fn parse_scope_pattern(pattern: &str) -> Result<&str, PatternError> {
    let pattern = pattern.trim();
    let matches_a_scope = match pattern.strip_suffix('*') {
        Some(prefix) => Scope::ALL.iter().any(|s| s.as_str().starts_with(prefix)),
        None => pattern.parse::<Scope>().is_ok(),
    };
    if matches_a_scope {
        Ok(pattern)
    } else {
        Err(PatternError {
            pattern: pattern.to_owned(),
            known: Scope::ALL.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", "),
        })
    }
}

/// Scope patterns an operator granted: exact names, `*`, or prefixes ending
/// in `*` (`read:*`), matched as the original server matches them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grants {
    patterns: Vec<String>,
}

impl Grants {
    /// Every scope (`*`): what stdio gets while enforcement is off.
    pub fn all() -> Self {
        Self {
            patterns: vec!["*".to_owned()],
        }
    }

    /// Parses a comma-separated list; entries are trimmed, empties and duplicates dropped.
    pub fn parse(list: &str) -> Self {
        Self::from_patterns(list.split(','))
    }

    /// Parses an operator's comma-separated list (`OMNIROUTE_MCP_SCOPES`):
    /// empty entries are skipped, every other one must match a scope.
    pub fn parse_checked(list: &str) -> Result<Self, PatternError> {
        Self::from_checked_patterns(list.split(',').filter(|p| !p.trim().is_empty()))
    }

    /// Builds an operator's grants from individual patterns, each of which
    /// must match a scope (see [`parse_scope_pattern`]).
    pub fn from_checked_patterns<'a>(patterns: impl IntoIterator<Item = &'a str>) -> Result<Self, PatternError> {
        let checked = patterns.into_iter().map(parse_scope_pattern).collect::<Result<Vec<_>, _>>()?;
        Ok(Self::from_patterns(checked))
    }

    /// Builds grants from individual patterns (trimmed, de-duplicated), as
    /// given: a client's `_meta` scopes only narrow, so they are not checked.
    pub fn from_patterns<'a>(patterns: impl IntoIterator<Item = &'a str>) -> Self {
        let mut out: Vec<String> = Vec::new();
        for p in patterns {
            let p = p.trim();
            if !p.is_empty() && !out.iter().any(|q| q == p) {
                out.push(p.to_owned());
            }
        }
        Self { patterns: out }
    }

    /// The patterns as given.
    pub fn patterns(&self) -> &[String] {
        &self.patterns
    }

    /// Whether `scope` is granted: `*`, an exact match, or a `prefix*` pattern.
    pub fn allows(&self, scope: Scope) -> bool {
        let name = scope.as_str();
        self.patterns.iter().any(|p| {
            p == "*"
                || p == name
                || p.strip_suffix('*')
                    .is_some_and(|prefix| name.starts_with(prefix))
        })
    }

    /// The granted subset of `scopes`.
    pub fn granted<'a>(&'a self, scopes: &'a [Scope]) -> impl Iterator<Item = Scope> + 'a {
        scopes.iter().copied().filter(|s| self.allows(*s))
    }
}

/// What one caller holds: the operator's grants, optionally narrowed by the
/// client's `_meta` scopes. A client can only remove scopes, never add them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EffectiveGrants {
    operator: Grants,
    narrowing: Option<Grants>,
}

impl EffectiveGrants {
    /// `narrowing`: the client's `_meta` scopes, when it sent any.
    pub fn new(operator: Grants, narrowing: Option<Grants>) -> Self {
        Self { operator, narrowing }
    }

    /// Granted by the operator and, if the client narrowed, by the client too.
    pub fn allows(&self, scope: Scope) -> bool {
        self.operator.allows(scope) && self.narrowing.as_ref().is_none_or(|n| n.allows(scope))
    }

    /// The granted subset of `scopes`.
    pub fn granted<'a>(&'a self, scopes: &'a [Scope]) -> impl Iterator<Item = Scope> + 'a {
        scopes.iter().copied().filter(|s| self.allows(*s))
    }

    /// Whether the client narrowed the grants.
    pub fn narrowed(&self) -> bool {
        self.narrowing.is_some()
    }

    /// The scope patterns in force, for denial details: the client's list
    /// when it narrowed, else the operator's.
    pub fn patterns(&self) -> &[String] {
        self.narrowing.as_ref().unwrap_or(&self.operator).patterns()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meta_can_only_narrow() {
        let operator = Grants::parse("read:*");
        let escalate = EffectiveGrants::new(operator.clone(), Some(Grants::parse("*")));
        assert!(escalate.allows(Scope::ReadHealth));
        assert!(!escalate.allows(Scope::WriteCombos), "a client must not grant itself write scopes");
        assert!(!escalate.allows(Scope::ExecuteCompletions));
        let narrow = EffectiveGrants::new(operator.clone(), Some(Grants::parse("read:health")));
        assert!(narrow.allows(Scope::ReadHealth));
        assert!(!narrow.allows(Scope::ReadCombos));
        let none = EffectiveGrants::new(operator, Some(Grants::parse("")));
        assert!(!none.allows(Scope::ReadHealth));
    }

    #[test]
    fn round_trips_every_scope() {
        for s in Scope::ALL {
            assert_eq!(s.as_str().parse::<Scope>().unwrap(), s);
        }
        assert!("read:everything".parse::<Scope>().is_err());
    }

    #[test]
    fn one_parser_refuses_patterns_that_match_no_scope() {
        for good in ["*", "read:*", "write*", " read:health ", "execute:completions", "r*"] {
            assert!(parse_scope_pattern(good).is_ok(), "refused {good}");
        }
        for bad in ["bogus*", "read:nope", "admin:*", "", "read:health,read:combos", "*read"] {
            let err = parse_scope_pattern(bad).unwrap_err().to_string();
            assert!(err.contains("matches no scope") && err.contains("read:health, read:combos"), "{bad}: {err}");
        }
        assert_eq!(parse_scope_pattern(" read:* ").unwrap(), "read:*");
        let grants = Grants::parse_checked("read:health, ,write:*,").unwrap();
        assert_eq!(grants.patterns(), ["read:health", "write:*"]);
        assert!(Grants::parse_checked("").unwrap().patterns().is_empty());
        let err = Grants::parse_checked("read:health,bogus*").unwrap_err();
        assert_eq!(err.pattern, "bogus*");
    }

    #[test]
    fn wildcards_follow_the_original_rules() {
        let g = Grants::parse(" read:* , write:combos,, read:*");
        assert_eq!(g.patterns(), ["read:*", "write:combos"]);
        assert!(g.allows(Scope::ReadHealth));
        assert!(g.allows(Scope::ReadUsage));
        assert!(g.allows(Scope::WriteCombos));
        assert!(!g.allows(Scope::WriteBudget));
        assert!(!g.allows(Scope::ExecuteCompletions));
        assert!(Grants::parse("write*").allows(Scope::WriteCombos));
        assert!(Grants::all().allows(Scope::ExecuteCompletions));
        assert!(!Grants::parse("").allows(Scope::ReadHealth));
    }
}
