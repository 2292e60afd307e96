//! Principals revoked in the state store (`omniroute-mcp tenants revoke`),
//! refused by every node that shares it.
//!
//! The tenants file is per machine; the store is what several nodes share.
//! So a revocation is written to the store, and each HTTP node reads the
//! (short) list every [`REFRESH`] into memory: a request is checked against
//! that copy with no database round trip, and a revoked tenant or OAuth
//! subject is refused on every node within about a second. If the store
//! cannot answer, the node keeps the last list it read and logs why.

use crate::auth::PrincipalId;
use crate::state::Store;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How often a node reads the revocations again.
pub const REFRESH: Duration = Duration::from_secs(1);

/// This node's copy of the revoked principals and why each was revoked.
#[derive(Debug, Default)]
pub struct Revocations {
    revoked: RwLock<Arc<HashMap<String, String>>>,
}

impl Revocations {
    /// Why `principal` is revoked, if it is.
    pub fn reason(&self, principal: &PrincipalId) -> Option<String> {
        let current = self.revoked.read().unwrap_or_else(|p| p.into_inner()).clone();
        current.get(principal.as_str()).cloned()
    }

    /// Reads the list from the store once.
    pub async fn refresh(&self, store: &Store) -> Result<(), String> {
        let list = store.revocations().await.map_err(|e| e.to_string())?;
        let map: HashMap<String, String> = list.into_iter().map(|r| (r.principal, r.reason)).collect();
        let mut current = self.revoked.write().unwrap_or_else(|p| p.into_inner());
        if current.len() != map.len() || map.iter().any(|(k, _)| !current.contains_key(k)) {
            tracing::info!(revoked = map.len(), "revoked principals changed");
        }
        *current = Arc::new(map);
        Ok(())
    }

    /// Refreshes every [`REFRESH`] until `stop` is cancelled.
    pub fn spawn_refresh(self: &Arc<Self>, store: Store, stop: CancellationToken) {
        let me = self.clone();
        tokio::spawn(async move {
            let mut failing = false;
            loop {
                match me.refresh(&store).await {
                    Ok(()) if failing => {
                        tracing::info!("the state store answers again; revocations are current");
                        failing = false;
                    }
                    Ok(()) => {}
                    Err(e) if !failing => {
                        tracing::warn!("cannot read revocations from the state store (keeping the last list): {e}");
                        failing = true;
                    }
                    Err(_) => {}
                }
                tokio::select! {
                    () = stop.cancelled() => break,
                    () = tokio::time::sleep(REFRESH) => {}
                }
            }
        });
    }
}

/// The principal id an operator names on the command line: `tenant:acme`,
/// `oauth:sso:alice` as they are, or a bare tenant id (`acme`).
pub fn principal_from_cli(name: &str) -> Result<PrincipalId, String> {
    if let Some(id) = PrincipalId::parse(name) {
        return Ok(id);
    }
    PrincipalId::tenant(name).map_err(|e| {
        format!("{e}; name a tenant by its id (acme) or any principal by its full id (tenant:acme, oauth:<issuer>:<sub>)")
    })
}
