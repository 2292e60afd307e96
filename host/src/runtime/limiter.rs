//! One memory budget per call over all its linear memories and tables
//! together: a component with four memories gets the cap once, not four
//! times. Initial sizes count (wasmtime asks the limiter when it creates a
//! memory or table), and a growth that was allowed but then failed is given
//! back.

/// Bytes per table element (wasmtime stores one pointer per element).
const TABLE_ELEMENT_BYTES: usize = std::mem::size_of::<usize>();

/// The call's limiter, installed on its store.
#[derive(Debug)]
pub(crate) struct CallLimiter {
    cap: usize,
    used: usize,
    /// The last allowed growth, given back if it fails after all.
    last_growth: usize,
    /// Set when a request was refused: a guest that aborts on a failed
    /// allocation is then reported as out of memory, not as a crash.
    pub(crate) exceeded: bool,
}

impl CallLimiter {
    pub(crate) fn new(cap: usize) -> Self {
        Self { cap, used: 0, last_growth: 0, exceeded: false }
    }

    /// Bytes held by all memories and tables of the call.
    #[cfg(test)]
    pub(crate) fn used(&self) -> usize {
        self.used
    }

    fn grow(&mut self, bytes: usize) -> bool {
        match self.used.checked_add(bytes) {
            Some(total) if total <= self.cap => {
                self.used = total;
                self.last_growth = bytes;
                true
            }
            _ => {
                self.exceeded = true;
                self.last_growth = 0;
                false
            }
        }
    }

    fn give_back(&mut self) {
        self.used = self.used.saturating_sub(self.last_growth);
        self.last_growth = 0;
    }
}

impl wasmtime::ResourceLimiter for CallLimiter {
    fn memory_growing(&mut self, current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        Ok(self.grow(desired.saturating_sub(current)))
    }

    fn memory_grow_failed(&mut self, _error: wasmtime::Error) -> wasmtime::Result<()> {
        self.give_back();
        Ok(())
    }

    fn table_growing(&mut self, current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        Ok(self.grow(desired.saturating_sub(current).saturating_mul(TABLE_ELEMENT_BYTES)))
    }

    fn table_grow_failed(&mut self, _error: wasmtime::Error) -> wasmtime::Result<()> {
        self.give_back();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmtime::ResourceLimiter;

    const MIB: usize = 1024 * 1024;

    #[test]
    fn memories_and_tables_share_one_cap() {
        let mut l = CallLimiter::new(100 * MIB);
        for _ in 0..3 {
            assert!(l.memory_growing(0, 30 * MIB, None).unwrap(), "three 30 MiB memories fit in 100 MiB");
        }
        assert!(!l.memory_growing(0, 30 * MIB, None).unwrap(), "a fourth must not");
        assert!(l.exceeded);
        assert!(l.table_growing(0, MIB, None).unwrap(), "8 MiB of table elements fit beside 90 MiB");
        assert!(!l.table_growing(MIB, 2 * MIB, None).unwrap(), "another 8 MiB does not");
        assert_eq!(l.used(), 90 * MIB + MIB * TABLE_ELEMENT_BYTES);
    }

    #[test]
    fn a_failed_growth_is_given_back() {
        let mut l = CallLimiter::new(10 * MIB);
        assert!(l.memory_growing(0, 8 * MIB, None).unwrap());
        l.memory_grow_failed(wasmtime::Error::msg("no room")).unwrap();
        assert_eq!(l.used(), 0);
        assert!(l.memory_growing(0, 8 * MIB, None).unwrap());
        assert!(!l.exceeded);
    }
}
