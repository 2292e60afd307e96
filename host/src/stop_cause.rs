//! Why the sandbox stopped a call: one vocabulary shared by the runtime's
//! errors, the result an agent reads, the audit row, metrics and the tests.
//! A leaf module, so everything that reports a stop can name it without
//! depending on the runtime.

use std::fmt;
use std::str::FromStr;

/// The one cause of a stop. `requests` is the exception that does not end
/// the call: requests past the call's allowance are refused with an error the
/// tool can report, and the call is marked as having reached that limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum StopCause {
    /// Guest CPU time over the call's CPU budget.
    Cpu,
    /// The call's wall-clock deadline passed (a guest blocked in a host call
    /// counts here, not under `cpu`).
    Wall,
    /// All memories and tables of the call together over the memory cap.
    Memory,
    /// Output larger than the output cap.
    Output,
    /// More gateway requests than the call may make.
    Requests,
    /// The client cancelled the call.
    Cancelled,
    /// The guest trapped or panicked.
    Crash,
    /// The component could not be instantiated.
    Start,
}

impl StopCause {
    /// Every cause, for listings and tests.
    pub const ALL: [StopCause; 8] = [
        StopCause::Cpu,
        StopCause::Wall,
        StopCause::Memory,
        StopCause::Output,
        StopCause::Requests,
        StopCause::Cancelled,
        StopCause::Crash,
        StopCause::Start,
    ];

    /// The wire name (`cpu`, `wall`, ...), as audit rows and results carry it.
    pub fn as_str(self) -> &'static str {
        match self {
            StopCause::Cpu => "cpu",
            StopCause::Wall => "wall",
            StopCause::Memory => "memory",
            StopCause::Output => "output",
            StopCause::Requests => "requests",
            StopCause::Cancelled => "cancelled",
            StopCause::Crash => "crash",
            StopCause::Start => "start",
        }
    }
}

impl fmt::Display for StopCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is not a stop cause.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown stop cause {0:?}")]
pub struct UnknownStopCause(pub String);

impl FromStr for StopCause {
    type Err = UnknownStopCause;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        StopCause::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| UnknownStopCause(s.to_owned()))
    }
}
