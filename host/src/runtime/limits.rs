//! Bounds on one tool call (the README's security invariants) and how they are derived.
//!
//! The wall deadline depends on the tool's class, known from its scopes:
//!
//! * a tool without `execute:completions` only makes ordinary gateway
//!   requests: its deadline is the gateway timeout plus [`WALL_MARGIN`]
//!   (30 s with the default 15 s gateway timeout);
//! * a completion tool (`execute:completions`) starts with one completion
//!   round: the completion timeout plus [`WALL_MARGIN`]. When it sends a
//!   batch of completions, the host knows how many sequential rounds the
//!   batch needs (`ceil(completions / in flight)`, e.g. `test_combo` with 10
//!   steps at 4 at a time: 3) and makes room for them, never past
//!   [`MAX_CALL_WALL`] after the call started.
//!
//! Every gateway request gets the smaller of its own timeout and what is
//! left of the call's deadline. CPU time is a separate budget
//! ([`DEFAULT_CPU`]), counted only while the call's code runs. A manifest
//! may tighten each bound, never loosen it.

use crate::capability::Scope;
use std::time::Duration;

/// Added to the gateway (or completion) timeout: room for the requests
/// around the slow one and for the guest's own work.
pub const WALL_MARGIN: Duration = Duration::from_secs(15);
/// No call runs longer than this, whatever completion rounds it asks for.
pub const MAX_CALL_WALL: Duration = Duration::from_secs(600);
/// Guest CPU time a call may use by default.
pub const DEFAULT_CPU: Duration = Duration::from_secs(2);
/// `describe()` runs at load time, before or beside serving: it gets little.
pub const DESCRIBE_CPU: Duration = Duration::from_secs(1);
/// Wall-clock bound of one `describe()`.
pub const DESCRIBE_WALL: Duration = Duration::from_secs(5);

/// What a tool's wall deadline is sized for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeadlineClass {
    /// Ordinary gateway requests only.
    Gateway,
    /// Sends chat completions (holds `execute:completions`).
    Completion,
}

impl DeadlineClass {
    /// The class of a tool with these (declared) scopes.
    pub fn of(scopes: &[Scope]) -> Self {
        if scopes.contains(&Scope::ExecuteCompletions) {
            DeadlineClass::Completion
        } else {
            DeadlineClass::Gateway
        }
    }
}

/// The server's bounds, from its configuration; each tool's [`CallLimits`]
/// are derived from them by class and tightened by its manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitPolicy {
    /// Timeout of an ordinary gateway request.
    pub gateway_timeout: Duration,
    /// Timeout of one chat completion.
    pub completion_timeout: Duration,
    pub cpu: Duration,
    pub memory_bytes: usize,
    pub output_bytes: usize,
    pub gateway_requests: u32,
}

impl Default for LimitPolicy {
    fn default() -> Self {
        Self {
            gateway_timeout: Duration::from_secs(15),
            completion_timeout: Duration::from_secs(120),
            cpu: DEFAULT_CPU,
            memory_bytes: 128 * 1024 * 1024,
            output_bytes: 1024 * 1024,
            gateway_requests: 100,
        }
    }
}

impl LimitPolicy {
    /// The limits of a tool of `class`, before its manifest tightens them.
    pub fn for_class(&self, class: DeadlineClass) -> CallLimits {
        let (wall, completion_round) = match class {
            DeadlineClass::Gateway => (self.gateway_timeout + WALL_MARGIN, None),
            DeadlineClass::Completion => (self.completion_timeout + WALL_MARGIN, Some(self.completion_timeout)),
        };
        CallLimits {
            wall: wall.min(MAX_CALL_WALL),
            wall_max: if completion_round.is_some() { MAX_CALL_WALL } else { wall.min(MAX_CALL_WALL) },
            completion_round,
            cpu: self.cpu,
            memory_bytes: self.memory_bytes,
            output_bytes: self.output_bytes,
            gateway_requests: self.gateway_requests,
        }
    }

    /// The limits of `describe()`: little CPU and wall time, no requests.
    pub fn for_describe(&self) -> CallLimits {
        CallLimits {
            wall: DESCRIBE_WALL,
            wall_max: DESCRIBE_WALL,
            completion_round: None,
            cpu: DESCRIBE_CPU.min(self.cpu),
            memory_bytes: self.memory_bytes,
            output_bytes: self.output_bytes,
            gateway_requests: 0,
        }
    }
}

/// Bounds on one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallLimits {
    /// Wall-clock time for the whole call, guest code and host calls alike.
    pub wall: Duration,
    /// How far completion rounds may push the deadline (equal to `wall` for
    /// tools that send no completions).
    pub wall_max: Duration,
    /// Completion tools: the time one round of completions may take.
    pub completion_round: Option<Duration>,
    /// Guest CPU time.
    pub cpu: Duration,
    /// All linear memories and tables together.
    pub memory_bytes: usize,
    /// Largest output (JSON text) accepted from the component.
    pub output_bytes: usize,
    /// Gateway requests one call may make (`send-all` counts each request).
    pub gateway_requests: u32,
}

impl Default for CallLimits {
    fn default() -> Self {
        LimitPolicy::default().for_class(DeadlineClass::Gateway)
    }
}

/// Per-tool bounds a manifest may set; each can only tighten.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tightening {
    pub wall: Option<Duration>,
    pub cpu: Option<Duration>,
    pub memory_bytes: Option<usize>,
    pub gateway_requests: Option<u32>,
}

impl CallLimits {
    /// The tighter of `self` and the per-tool values.
    pub fn tightened(self, t: Tightening) -> Self {
        let wall = t.wall.map_or(self.wall, |d| d.min(self.wall));
        Self {
            wall,
            wall_max: t.wall.map_or(self.wall_max, |d| d.min(self.wall_max)).max(wall),
            completion_round: self.completion_round,
            cpu: t.cpu.map_or(self.cpu, |c| c.min(self.cpu)),
            memory_bytes: t.memory_bytes.map_or(self.memory_bytes, |m| m.min(self.memory_bytes)),
            output_bytes: self.output_bytes,
            gateway_requests: t.gateway_requests.map_or(self.gateway_requests, |g| g.min(self.gateway_requests)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_class_decides_the_deadline() {
        let policy = LimitPolicy::default();
        let gateway = policy.for_class(DeadlineClass::Gateway);
        assert_eq!(gateway.wall, Duration::from_secs(30));
        assert_eq!(gateway.wall_max, gateway.wall, "nothing may extend an ordinary tool's deadline");
        assert_eq!(gateway.completion_round, None);
        let completion = policy.for_class(DeadlineClass::Completion);
        assert_eq!(completion.wall, Duration::from_secs(135));
        assert_eq!(completion.wall_max, MAX_CALL_WALL);
        assert_eq!(completion.completion_round, Some(Duration::from_secs(120)));
        assert_eq!(DeadlineClass::of(&[Scope::ReadCombos, Scope::ExecuteCompletions]), DeadlineClass::Completion);
        assert_eq!(DeadlineClass::of(&[Scope::WriteCombos]), DeadlineClass::Gateway);
        let describe = policy.for_describe();
        assert_eq!((describe.cpu, describe.wall, describe.gateway_requests), (DESCRIBE_CPU, DESCRIBE_WALL, 0));
    }

    #[test]
    fn manifests_only_tighten() {
        let base = LimitPolicy::default().for_class(DeadlineClass::Completion);
        let t = base.tightened(Tightening {
            wall: Some(Duration::from_secs(2)),
            cpu: Some(Duration::from_millis(500)),
            memory_bytes: Some(usize::MAX),
            gateway_requests: Some(5),
        });
        assert_eq!((t.wall, t.wall_max), (Duration::from_secs(2), Duration::from_secs(2)));
        assert_eq!(t.cpu, Duration::from_millis(500));
        assert_eq!(t.memory_bytes, base.memory_bytes);
        assert_eq!(t.gateway_requests, 5);
        let loose = base.tightened(Tightening {
            wall: Some(Duration::from_secs(10_000)),
            cpu: Some(Duration::from_secs(10_000)),
            ..Tightening::default()
        });
        assert_eq!((loose.wall, loose.wall_max, loose.cpu), (base.wall, base.wall_max, base.cpu));
    }
}
