//! Why the sandbox stopped a call: one vocabulary shared by the runtime's
//! errors, the result an agent reads, the audit row, metrics and the tests.

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

/// The error a limit raises inside the store (from the epoch callback or a
/// host import), so the trap that ends the guest can be traced to its cause.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("stopped by the sandbox (stop cause: {0})")]
pub(crate) struct Stopped(pub StopCause);

/// A call the sandbox stopped. The texts complete "The tool ..." and end
/// with the cause in a form an agent and a log reader both see.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    #[error("used more than its {0} ms CPU budget and was stopped (stop cause: cpu)")]
    Cpu(u128),
    #[error("exceeded its {0} ms deadline and was stopped (stop cause: wall)")]
    Wall(u128),
    #[error("exceeded its memory limit of {0} MiB over all its memories and tables and was stopped (stop cause: memory)")]
    Memory(usize),
    #[error("returned {0} bytes of output, more than the limit of {1} bytes (stop cause: output)")]
    Output(usize, usize),
    #[error("was cancelled by the client and stopped (stop cause: cancelled)")]
    Cancelled,
    #[error("crashed: {0} (stop cause: crash)")]
    Crash(String),
    #[error("could not be started: {0} (stop cause: start)")]
    Start(String),
}

impl CallError {
    /// The one cause of this stop.
    pub fn cause(&self) -> StopCause {
        match self {
            CallError::Cpu(_) => StopCause::Cpu,
            CallError::Wall(_) => StopCause::Wall,
            CallError::Memory(_) => StopCause::Memory,
            CallError::Output(..) => StopCause::Output,
            CallError::Cancelled => StopCause::Cancelled,
            CallError::Crash(_) => StopCause::Crash,
            CallError::Start(_) => StopCause::Start,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_are_unique() {
        let mut names: Vec<&str> = StopCause::ALL.iter().map(|c| c.as_str()).collect();
        for cause in StopCause::ALL {
            assert_eq!(cause.as_str().parse::<StopCause>(), Ok(cause));
        }
        names.sort();
        names.dedup();
        assert_eq!(names.len(), StopCause::ALL.len());
        assert!("fuel".parse::<StopCause>().is_err());
    }

    #[test]
    fn every_error_names_its_cause_in_its_text() {
        let errors = [
            CallError::Cpu(2000),
            CallError::Wall(30_000),
            CallError::Memory(128),
            CallError::Output(2, 1),
            CallError::Cancelled,
            CallError::Crash("boom".into()),
            CallError::Start("no slot".into()),
        ];
        for e in errors {
            let text = e.to_string();
            assert!(text.ends_with(&format!("(stop cause: {})", e.cause())), "{text}");
        }
    }
}
