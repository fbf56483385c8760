//! `/api/v1/auth/*` and `/api/v1/me`.

use std::time::Duration;

use actix_web::{web, HttpRequest, HttpResponse};
use emo_api_types::{Credentials, ErrorCode, LoginResponse, Role, User};

use super::AppState;
use crate::auth::{burn_password_check, new_token, validate_username, verify_password, AuthUser};
use crate::error::{AppError, AppResult};
use crate::metrics::Metrics;
use crate::store::{ms_to_datetime, now_ms, TokenRow, UserRow};

/// The client's address as the throttles see it.
fn client_address(req: &HttpRequest) -> String {
    req.peer_addr()
        .map(|a| a.ip().to_string())
        .unwrap_or_else(|| "unknown".into())
}

#[utoipa::path(post, path = "/api/v1/auth/register", tag = "auth", request_body = Credentials,
    responses((status = 201, body = User), (status = 403, description = "registration_closed", body = emo_api_types::ApiError),
        (status = 409, description = "username not available (names are case-insensitive)", body = emo_api_types::ApiError),
        (status = 422, description = "invalid username or password", body = emo_api_types::ApiError),
        (status = 429, description = "too_many_attempts: too many registrations from this address", body = emo_api_types::ApiError)))]
pub async fn register(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Json<Credentials>,
) -> AppResult<HttpResponse> {
    if !state.config.auth.allow_register {
        return Err(AppError::new(
            ErrorCode::RegistrationClosed,
            "self-registration is disabled; ask an admin for an account",
        ));
    }
    // Every attempt counts: each one costs an argon2 hash, and enumeration of taken names
    // through the 409 is bounded by it too.
    let ip = client_address(&req);
    state
        .throttle
        .register_attempt(
            &ip,
            state.config.auth.max_registrations_per_address,
            Duration::from_secs(3600),
        )
        .map_err(|retry_after| {
            Metrics::inc(&state.metrics.logins_throttled, 1);
            AppError::Throttled { retry_after }
        })?;
    let row = match crate::users::create(
        &state,
        body.username.trim(),
        &body.password,
        Role::Agent,
        None,
    )
    .await
    {
        // The same answer for `root1`, `Root1` and a name that is merely reserved: it does not
        // echo or confirm the name.
        Err(e) if e.code() == ErrorCode::Conflict => {
            return Err(AppError::new(
                ErrorCode::Conflict,
                "this username is not available; choose another",
            ))
        }
        other => other?,
    };
    tracing::info!(username = %row.username, %ip, "agent registered");
    Ok(HttpResponse::Created().json(row.to_api()?))
}

#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth", request_body = Credentials,
    responses((status = 200, body = LoginResponse), (status = 401, description = "invalid_credentials", body = emo_api_types::ApiError),
        (status = 429, description = "too_many_attempts", body = emo_api_types::ApiError)))]
pub async fn login(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Json<Credentials>,
) -> AppResult<HttpResponse> {
    let ip = client_address(&req);
    let username = body.username.trim().to_string();
    // A name registration would refuse cannot belong to anybody: answered at once, without a
    // hash, a throttle entry or a log line carrying it (a newline in it forged log lines).
    if validate_username(&username).is_err() {
        Metrics::inc(&state.metrics.logins_failed, 1);
        tracing::info!(%ip, "failed login (malformed username)");
        return Err(wrong_credentials());
    }
    let keys = reserve_attempt(&state, &username, &ip)?;
    let Some(user) = verified_user(&state, &keys, &username, &body.password).await? else {
        Metrics::inc(&state.metrics.logins_failed, 1);
        tracing::info!(%username, %ip, "failed login");
        return Err(wrong_credentials());
    };
    state.throttle.succeeded(&keys[0], &keys[1..]);
    if user.disabled {
        return Err(AppError::new(
            ErrorCode::AccountDisabled,
            "this account is disabled",
        ));
    }
    let response = issue_token(&state, &user).await?;
    Metrics::inc(&state.metrics.logins_ok, 1);
    Ok(HttpResponse::Ok().json(response))
}

/// The one answer to a wrong name, a wrong password or both.
fn wrong_credentials() -> AppError {
    AppError::new(ErrorCode::InvalidCredentials, "wrong username or password")
}

/// Count this login attempt as a failure of `username` from `ip` before the password is
/// checked (429 when either is locked out); the throttle keys, to give the attempt back when
/// it was right. Attempts in flight count, so concurrency cannot buy more guesses.
fn reserve_attempt(state: &AppState, username: &str, ip: &str) -> AppResult<Vec<String>> {
    let cfg = &state.config.auth;
    // The username key is per client address: counted per name alone, anybody could lock
    // anybody out. Names are case-insensitive, so `Root` and `root` share a key.
    let keys = vec![
        format!("u:{}@{ip}", username.to_lowercase()),
        format!("ip:{ip}"),
    ];
    let limits = [cfg.max_failed_logins, cfg.max_failed_logins_per_address];
    let window = crate::auth::Backoff {
        base: Duration::from_secs(cfg.lockout_secs),
        max: Duration::from_secs(cfg.lockout_max_secs),
    };
    if let Err(retry_after) = state.throttle.reserve(&keys, &limits, window) {
        Metrics::inc(&state.metrics.logins_throttled, 1);
        return Err(AppError::Throttled { retry_after });
    }
    Ok(keys)
}

/// The user `username` names when `password` is theirs, `None` otherwise (an unknown name costs
/// the same hash as a known one). An error is no verdict on the password: the attempt reserved
/// under `keys` is given back.
async fn verified_user(
    state: &AppState,
    keys: &[String],
    username: &str,
    password: &str,
) -> AppResult<Option<UserRow>> {
    let store = state.store.clone();
    let lookup = username.to_string();
    let user = match web::block(move || store.user_by_name(&lookup)).await {
        Ok(Ok(user)) => user,
        Ok(Err(e)) => {
            state.throttle.release(keys);
            return Err(e.into());
        }
        Err(e) => {
            state.throttle.release(keys);
            return Err(e.into());
        }
    };
    let password = password.to_string();
    let hash = user.as_ref().map(|u| u.password_hash.clone());
    let verified = state
        .throttle
        .hash_bounded(move || match hash {
            Some(h) => verify_password(&h, &password),
            None => {
                burn_password_check(&password);
                false
            }
        })
        .await;
    match verified {
        Ok(verified) => Ok(user.filter(|_| verified)),
        Err(e) => {
            // Not a verdict on the password (hashing queue full): the slot is given back.
            state.throttle.release(keys);
            if matches!(e, AppError::Throttled { .. }) {
                Metrics::inc(&state.metrics.logins_throttled, 1);
            }
            Err(e)
        }
    }
}

/// A new bearer token for `user`, stored (as its hash) with the configured lifetime.
async fn issue_token(state: &AppState, user: &UserRow) -> AppResult<LoginResponse> {
    let (token, hash) = new_token();
    let now = now_ms();
    let expires_at = now + state.config.auth.token_ttl_ms();
    let row = TokenRow {
        token_hash: hash,
        user_id: user.id.clone(),
        created_at: now,
        expires_at,
        revoked: false,
    };
    let store = state.store.clone();
    web::block(move || store.insert_token(&row)).await??;
    Ok(LoginResponse {
        token,
        expires_at: ms_to_datetime(expires_at),
    })
}

#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "auth",
    responses((status = 204, description = "token revoked"), (status = 401, body = emo_api_types::ApiError)),
    security(("bearer" = [])))]
pub async fn logout(state: web::Data<AppState>, user: AuthUser) -> AppResult<HttpResponse> {
    let store = state.store.clone();
    let hash = user.token_hash.clone();
    web::block(move || store.revoke_token(&hash)).await??;
    state.tokens.forget(&user.token_hash);
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(get, path = "/api/v1/me", tag = "auth",
    responses((status = 200, body = User), (status = 401, body = emo_api_types::ApiError)),
    security(("bearer" = [])))]
pub async fn me(state: web::Data<AppState>, user: AuthUser) -> AppResult<HttpResponse> {
    let store = state.store.clone();
    let id = user.id.to_string();
    let row = web::block(move || store.user_by_id(&id))
        .await??
        .ok_or_else(|| AppError::unauthenticated("the account no longer exists"))?;
    Ok(HttpResponse::Ok().json(row.to_api()?))
}
