//! Tamper evidence: every audit row carries the SHA-256 of the row before it
//! (`prev_hash`) and its own (`row_hash`, over `prev_hash` and every field
//! of the row and its gateway requests). Editing, deleting, inserting or
//! reordering a row breaks the chain at that row, which `audit verify` names.
//!
//! Pruning keeps the chain verifiable: before old rows are deleted, the hash
//! of the last deleted row is recorded as the anchor the first kept row must
//! link to. What the chain cannot stop is someone with write access who
//! rewrites every row after an edit; `audit verify` prints the head hash so
//! an operator can keep it elsewhere and compare.

use super::record::GatewayCall;
use sha2::{Digest, Sha256};

/// `prev_hash` of the very first row.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The fields of one row that the hash covers.
#[derive(Debug, Clone, PartialEq)]
pub struct ChainedRow<'a> {
    pub tool_name: &'a str,
    pub input_hash: Option<&'a str>,
    pub output_summary: Option<&'a str>,
    pub duration_ms: Option<i64>,
    pub api_key_id: Option<&'a str>,
    pub success: bool,
    pub error_code: Option<&'a str>,
    pub created_at: &'a str,
    pub caller: Option<&'a str>,
    pub session_id: Option<&'a str>,
    pub stop_cause: Option<&'a str>,
    pub refusal_count: Option<i64>,
    pub gateway_calls: &'a [GatewayCall],
}

/// The row's hash given the previous row's.
pub fn row_hash(prev_hash: &str, row: &ChainedRow<'_>) -> String {
    // A JSON array: unambiguous field boundaries, stable across backends.
    let calls: Vec<serde_json::Value> = row
        .gateway_calls
        .iter()
        .map(|g| serde_json::json!([g.method, g.path_template, g.status, g.duration_ms, g.bytes, g.error]))
        .collect();
    let canonical = serde_json::json!([
        prev_hash,
        row.tool_name,
        row.input_hash,
        row.output_summary,
        row.duration_ms,
        row.api_key_id,
        row.success,
        row.error_code,
        row.created_at,
        row.caller,
        row.session_id,
        row.stop_cause,
        row.refusal_count,
        calls,
    ]);
    hex::encode(Sha256::digest(canonical.to_string().as_bytes()))
}

/// Where the chain broke.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Break {
    /// The first row that does not verify.
    pub id: i64,
    pub reason: String,
}

/// Walks rows in id order and finds the first break.
#[derive(Debug, Clone)]
pub struct Verifier {
    expected_prev: String,
    pub rows: u64,
    pub head: String,
    pub broken: Option<Break>,
}

impl Verifier {
    /// Starting from the anchor's hash (after pruning) or [`GENESIS`].
    pub fn new(anchor: Option<&str>) -> Verifier {
        let start = anchor.unwrap_or(GENESIS).to_owned();
        Verifier { expected_prev: start.clone(), rows: 0, head: start, broken: None }
    }

    /// Checks the next row (stored `prev_hash` and `row_hash` as read back).
    pub fn check(&mut self, id: i64, prev_hash: Option<&str>, stored_hash: Option<&str>, row: &ChainedRow<'_>) {
        if self.broken.is_some() {
            return;
        }
        self.rows += 1;
        let fail = |reason: String| Some(Break { id, reason });
        let (Some(prev), Some(stored)) = (prev_hash, stored_hash) else {
            self.broken = fail("the row has no hash (it was not written by omniroute-mcp's audit writer)".into());
            return;
        };
        if prev != self.expected_prev {
            self.broken = fail(if self.rows == 1 {
                "it does not link to the start of the chain (the anchor, or the genesis hash): rows before it were deleted or changed".into()
            } else {
                "it does not link to the row before it: a row was deleted, inserted or reordered here".into()
            });
            return;
        }
        if row_hash(prev, row) != stored {
            self.broken = fail("its contents do not match its hash: the row was changed".into());
            return;
        }
        self.expected_prev = stored.to_owned();
        self.head = stored.to_owned();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(tool: &str) -> ChainedRow<'_> {
        ChainedRow {
            tool_name: tool,
            input_hash: Some("h"),
            output_summary: Some("(null)"),
            duration_ms: Some(3),
            api_key_id: None,
            success: true,
            error_code: None,
            created_at: "2026-12-06 10:00:00",
            caller: Some("anonymous"),
            session_id: None,
            stop_cause: None,
            refusal_count: None,
            gateway_calls: &[],
        }
    }

    #[test]
    fn a_chain_verifies_and_names_the_first_broken_row() {
        let h1 = row_hash(GENESIS, &row("a"));
        let h2 = row_hash(&h1, &row("b"));
        let h3 = row_hash(&h2, &row("c"));
        let mut v = Verifier::new(None);
        v.check(1, Some(GENESIS), Some(&h1), &row("a"));
        v.check(2, Some(&h1), Some(&h2), &row("b"));
        v.check(3, Some(&h2), Some(&h3), &row("c"));
        assert_eq!((v.rows, v.broken.as_ref(), v.head.as_str()), (3, None, h3.as_str()));

        // Row 2 edited.
        let mut v = Verifier::new(None);
        v.check(1, Some(GENESIS), Some(&h1), &row("a"));
        v.check(2, Some(&h1), Some(&h2), &row("B"));
        assert_eq!(v.broken.as_ref().map(|b| b.id), Some(2));
        assert!(v.broken.unwrap().reason.contains("changed"));

        // Row 2 deleted: row 3 no longer links.
        let mut v = Verifier::new(None);
        v.check(1, Some(GENESIS), Some(&h1), &row("a"));
        v.check(3, Some(&h2), Some(&h3), &row("c"));
        assert_eq!(v.broken.map(|b| b.id), Some(3));

        // After pruning, the chain starts at the anchor.
        let mut v = Verifier::new(Some(&h2));
        v.check(3, Some(&h2), Some(&h3), &row("c"));
        assert!(v.broken.is_none());
    }
}
