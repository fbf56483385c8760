//! The audit trail of admin actions on other users' data. Handlers call [`Audit::record`] before they
//! serve anything: a read that cannot be audited is not served.

use crate::auth::AuthUser;
use crate::config::Config;
use crate::error::AppResult;
use crate::metrics::Metrics;
use crate::store::audit::AuditRow;
use crate::store::{now_ms, Store};

/// What writing the trail needs (borrowed from the daemon's state: `AppState::audit`).
pub struct Audit<'a> {
    pub store: &'a Store,
    pub metrics: &'a Metrics,
    pub config: &'a Config,
}

impl Audit<'_> {
    /// Writes one audit entry. Fails the request if it cannot be written: data is never served
    /// unaudited.
    pub async fn record(
        &self,
        actor: &AuthUser,
        action: &str,
        target_user: Option<String>,
        detail: String,
    ) -> AppResult<()> {
        if !self.config.privacy.audit_admin_reads && action.starts_with("read") {
            return Ok(());
        }
        let row = AuditRow {
            id: uuid::Uuid::now_v7().to_string(),
            at: now_ms(),
            actor_id: actor.id.to_string(),
            actor: actor.username.clone(),
            action: action.to_string(),
            target_user,
            detail,
        };
        let store = self.store.clone();
        crate::blocking(move || store.insert_audit(&row)).await??;
        Metrics::inc(&self.metrics.audit_entries, 1);
        Ok(())
    }
}
