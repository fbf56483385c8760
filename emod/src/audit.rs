//! The audit trail of admin actions on other users' data. Handlers call [`record`] before they
//! serve anything: a read that cannot be audited is not served.

use crate::auth::AuthUser;
use crate::error::AppResult;
use crate::metrics::Metrics;
use crate::state::AppState;
use crate::store::audit::AuditRow;
use crate::store::now_ms;

/// Writes one audit entry. Fails the request if it cannot be written: data is never served
/// unaudited.
pub async fn record(
    state: &AppState,
    actor: &AuthUser,
    action: &str,
    target_user: Option<String>,
    detail: String,
) -> AppResult<()> {
    if !state.config.privacy.audit_admin_reads && action.starts_with("read") {
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
    let store = state.store.clone();
    crate::blocking(move || store.insert_audit(&row)).await??;
    Metrics::inc(&state.metrics.audit_entries, 1);
    Ok(())
}
