//! Why the sandbox stopped a call: one vocabulary shared by the runtime's
//! errors, the result an agent reads, the audit row, metrics and the tests.


pub use crate::stop_cause::{StopCause, UnknownStopCause};


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
