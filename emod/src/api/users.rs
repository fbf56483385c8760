//! `/api/v1/users` (admin only).

use actix_web::{web, HttpResponse};
use emo_api_types::{CreateUser, ErrorCode, Role, UpdateUser, User};

use super::extract::Authed;
use super::AppState;
use crate::auth::{
    hash_password, validate_display_name, validate_new_username, validate_password,
    validate_username, AuthUser,
};
use crate::error::{AppError, AppResult};
use crate::store::users::UserChanges;
use crate::store::{parse_uuid, UserRow};

#[utoipa::path(get, path = "/api/v1/users", tag = "users",
    responses((status = 200, body = Vec<User>), (status = 403, body = emo_api_types::ApiError)),
    security(("bearer" = [])))]
pub async fn list(state: web::Data<AppState>, user: AuthUser) -> AppResult<HttpResponse> {
    user.require_admin()?;
    state
        .audit()
        .record(&user, "read.users", None, String::new())
        .await?;
    let store = state.store.clone();
    let rows = web::block(move || store.list_users()).await??;
    let users = rows
        .iter()
        .map(UserRow::to_api)
        .collect::<Result<Vec<User>, _>>()?;
    Ok(HttpResponse::Ok().json(users))
}

#[utoipa::path(get, path = "/api/v1/users/{username}", tag = "users",
    params(("username" = String, Path)),
    responses((status = 200, body = User), (status = 404, body = emo_api_types::ApiError)),
    security(("bearer" = [])))]
pub async fn get(
    state: web::Data<AppState>,
    user: AuthUser,
    path: web::Path<String>,
) -> AppResult<HttpResponse> {
    user.require_admin()?;
    let name = path.into_inner();
    if validate_username(&name).is_err() {
        return Err(AppError::not_found("user"));
    }
    state
        .audit()
        .record(&user, "read.user", Some(name.clone()), String::new())
        .await?;
    let store = state.store.clone();
    let row = web::block(move || store.user_by_name(&name))
        .await??
        .ok_or_else(|| AppError::not_found("user"))?;
    Ok(HttpResponse::Ok().json(row.to_api()?))
}

#[utoipa::path(post, path = "/api/v1/users", tag = "users", request_body = CreateUser,
    responses((status = 201, body = User), (status = 409, body = emo_api_types::ApiError), (status = 403, body = emo_api_types::ApiError)),
    security(("bearer" = [])))]
pub async fn create(
    state: web::Data<AppState>,
    Authed(user, body): Authed<web::Json<CreateUser>>,
) -> AppResult<HttpResponse> {
    user.require_admin()?;
    let body = body.into_inner();
    let username = body.username.trim();
    // The entry is written before the account exists, so no account is created unaudited (if
    // the audit write fails, nothing happens); invalid input is refused before it. An entry can
    // therefore record an attempt the database then refused (409, name taken).
    validate_new_username(username).map_err(AppError::invalid)?;
    validate_password(&body.password, state.config.auth.min_password_len)
        .map_err(AppError::invalid)?;
    if let Some(d) = &body.display_name {
        validate_display_name(d).map_err(AppError::invalid)?;
    }
    state
        .audit()
        .record(
            &user,
            "user.create",
            Some(username.to_string()),
            format!("role={}", body.role.as_str()),
        )
        .await?;
    let row = crate::users::create(
        &state,
        username,
        &body.password,
        body.role,
        body.display_name,
    )
    .await?;
    Ok(HttpResponse::Created().json(row.to_api()?))
}

#[utoipa::path(patch, path = "/api/v1/users/{username}", tag = "users", request_body = UpdateUser,
    params(("username" = String, Path)),
    responses((status = 200, body = User), (status = 404, body = emo_api_types::ApiError),
        (status = 409, description = "the last active admin cannot be demoted or disabled", body = emo_api_types::ApiError),
        (status = 422, description = "invalid display name or password", body = emo_api_types::ApiError)),
    security(("bearer" = [])))]
pub async fn update(
    state: web::Data<AppState>,
    path: web::Path<String>,
    Authed(user, body): Authed<web::Json<UpdateUser>>,
) -> AppResult<HttpResponse> {
    user.require_admin()?;
    let name = path.into_inner();
    let body = body.into_inner();
    if let Some(d) = &body.display_name {
        validate_display_name(d).map_err(AppError::invalid)?;
    }
    let store = state.store.clone();
    let lookup = name.clone();
    let target = web::block(move || store.user_by_name(&lookup))
        .await??
        .ok_or_else(|| AppError::not_found("user"))?;
    // Nobody may leave the daemon without an active admin (the last admin demoting or
    // disabling themselves, or being demoted or disabled by... nobody else there is).
    let loses_admin = body.role == Some(Role::Agent) || body.disabled == Some(true);
    if loses_admin && target.role()? == Role::Admin && !target.disabled {
        let store = state.store.clone();
        let admins = web::block(move || store.count_active_admins()).await??;
        if admins <= 1 {
            return Err(AppError::new(
                ErrorCode::Conflict,
                "this is the last active admin: make another admin first",
            ));
        }
    }
    if name == user.username && body.disabled == Some(true) {
        return Err(AppError::invalid("admins cannot disable their own account"));
    }
    let password_hash = match &body.password {
        Some(pw) => {
            validate_password(pw, state.config.auth.min_password_len).map_err(AppError::invalid)?;
            let pw = pw.clone();
            Some(
                state
                    .throttle
                    .hash_bounded(move || hash_password(&pw))
                    .await?
                    .map_err(|e| AppError::Internal(e.to_string()))?,
            )
        }
        None => None,
    };
    let mut what = Vec::new();
    if let Some(d) = body.disabled {
        what.push(format!("disabled={d}"));
    }
    if let Some(r) = body.role {
        what.push(format!("role={r}"));
    }
    if body.password.is_some() {
        what.push("password".to_string());
    }
    if body.display_name.is_some() {
        what.push("display_name".to_string());
    }
    // Written before the change: an account is never changed unaudited (if the audit write
    // fails, nothing changes).
    state
        .audit()
        .record(&user, "user.update", Some(name), what.join(","))
        .await?;
    let changes = UserChanges {
        display_name: body.display_name.clone().map(Some),
        role: body.role.map(|r| r.as_str().to_string()),
        password_hash,
        disabled: body.disabled,
    };
    let store = state.store.clone();
    let id = target.id.clone();
    let updated = web::block(move || store.update_user(&id, &changes)).await??;
    // Cached tokens carry the user's role and state: any change must take effect at once.
    state.tokens.forget_user(parse_uuid(&updated.id)?);
    Ok(HttpResponse::Ok().json(updated.to_api()?))
}
