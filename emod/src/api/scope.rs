//! Who may see what: agents only their own data, admins everything, and every admin read of
//! someone else's data lands in the audit log before the data is served.

use actix_web::web;
use uuid::Uuid;

use super::AppState;
use crate::audit;
use crate::auth::AuthUser;
use crate::error::{AppError, AppResult};
use crate::store::parse_uuid;

/// Resolves the `agent` filter for `user` into the user id to restrict to (`None` = everyone),
/// writing an audit entry when an admin reads beyond their own data.
pub async fn data_scope(
    state: &web::Data<AppState>,
    user: &AuthUser,
    agent: Option<&str>,
    action: &str,
    detail: String,
) -> AppResult<Option<Uuid>> {
    let agent = agent.map(str::trim).filter(|a| !a.is_empty());
    if !user.is_admin() {
        return match agent {
            Some(name) if name != user.username => {
                Err(AppError::forbidden("agents can only see their own data"))
            }
            _ => Ok(Some(user.id)),
        };
    }
    match agent {
        Some(name) if name == user.username => Ok(Some(user.id)),
        Some(name) => {
            let store = state.store.clone();
            let lookup = name.to_string();
            let row = web::block(move || store.user_by_name(&lookup))
                .await??
                .ok_or_else(|| AppError::not_found(&format!("agent `{name}`")))?;
            audit::record(state, user, action, Some(name.to_string()), detail).await?;
            Ok(Some(parse_uuid(&row.id)?))
        }
        None => {
            audit::record(state, user, action, None, detail).await?;
            Ok(None)
        }
    }
}
