use std::time::Duration;

/// Bounds on one tool call (security invariant 5). Defaults come from the
/// server configuration; a manifest may only tighten them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallLimits {
    /// Wall-clock time for the whole call, guest code and host calls alike.
    pub deadline: Duration,
    /// Linear memory the component may grow to.
    pub memory_bytes: usize,
    /// Largest output (JSON text) accepted from the component.
    pub output_bytes: usize,
    /// Gateway requests one call may make (`send-all` counts each request).
    pub gateway_requests: u32,
}

impl Default for CallLimits {
    fn default() -> Self {
        Self {
            // Longer than the completion timeout, so a slow completion
            // reports the gateway timeout rather than a sandbox deadline.
            deadline: Duration::from_secs(150),
            memory_bytes: 128 * 1024 * 1024,
            output_bytes: 1024 * 1024,
            gateway_requests: 100,
        }
    }
}

impl CallLimits {
    /// The tighter of `self` and the optional per-tool values.
    pub fn tightened(
        self,
        deadline: Option<Duration>,
        memory_bytes: Option<usize>,
        gateway_requests: Option<u32>,
    ) -> Self {
        Self {
            deadline: deadline.map_or(self.deadline, |d| d.min(self.deadline)),
            memory_bytes: memory_bytes.map_or(self.memory_bytes, |m| m.min(self.memory_bytes)),
            output_bytes: self.output_bytes,
            gateway_requests: gateway_requests
                .map_or(self.gateway_requests, |g| g.min(self.gateway_requests)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifests_only_tighten() {
        let base = CallLimits::default();
        let t = base.tightened(Some(Duration::from_secs(2)), Some(usize::MAX), Some(5));
        assert_eq!(t.deadline, Duration::from_secs(2));
        assert_eq!(t.memory_bytes, base.memory_bytes);
        assert_eq!(t.gateway_requests, 5);
        let loose = base.tightened(Some(Duration::from_secs(10_000)), None, None);
        assert_eq!(loose.deadline, base.deadline);
    }
}
