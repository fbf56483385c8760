//! Creating accounts: the one path self-registration (`POST /auth/register`) and an admin's
//! `POST /users` take, so both check the same name and password rules and hash the same way. The
//! handlers in `api/` call it; none imports the other's helpers.

use emo_api_types::Role;

use crate::auth::{hash_password, validate_display_name, validate_new_username, validate_password};
use crate::error::{AppError, AppResult};
use crate::state::AppState;
use crate::store::{now_ms, UserRow};

/// Creates a user row. Names are unique ignoring case (`Root1` beside `root1` is refused, 409
/// `conflict`); the password is hashed with a hashing permit, off the async runtime.
pub async fn create(
    state: &AppState,
    username: &str,
    password: &str,
    role: Role,
    display_name: Option<String>,
) -> AppResult<UserRow> {
    validate_new_username(username).map_err(AppError::invalid)?;
    validate_password(password, state.config.auth.min_password_len).map_err(AppError::invalid)?;
    if let Some(d) = &display_name {
        validate_display_name(d).map_err(AppError::invalid)?;
    }
    let pw = password.to_string();
    let hash = state
        .throttle
        .hash_bounded(move || hash_password(&pw))
        .await?
        .map_err(|e| AppError::Internal(e.to_string()))?;
    let row = UserRow {
        id: uuid::Uuid::now_v7().to_string(),
        username: username.to_string(),
        display_name,
        role: role.as_str().to_string(),
        password_hash: hash,
        disabled: false,
        created_at: now_ms(),
    };
    let store = state.store.clone();
    Ok(crate::blocking(move || store.create_user(&row)).await??)
}
