//! Request extractors: the authenticated caller ([`AuthUser`], from the `Authorization: Bearer`
//! header) and a body read only once the caller is authenticated ([`Authed`]).

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use actix_web::{web, FromRequest, HttpRequest};

use super::AppState;
use crate::auth::{authenticate, AuthUser};
use crate::error::AppError;

fn bearer(req: &HttpRequest) -> Result<String, AppError> {
    let header = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .ok_or_else(|| AppError::unauthenticated("missing Authorization: Bearer <token> header"))?;
    let value = header
        .to_str()
        .map_err(|_| AppError::unauthenticated("malformed Authorization header"))?;
    let token = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            AppError::unauthenticated("Authorization header must be `Bearer <token>`")
        })?;
    Ok(token.to_string())
}

impl FromRequest for AuthUser {
    type Error = AppError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let token = bearer(req);
        let state = req.app_data::<web::Data<AppState>>().cloned();
        Box::pin(async move {
            let token = token?;
            let state =
                state.ok_or_else(|| AppError::Internal("application state missing".into()))?;
            let cache_for = Duration::from_secs(state.config.auth.token_cache_secs);
            authenticate(&state.tokens, &state.store, cache_for, token).await
        })
    }
}

/// The caller and a body extracted only once they are authenticated. Actix polls a handler's
/// extractors together, so `(AuthUser, Json<T>)` answered a malformed body from a caller with a
/// bad token with 400/422 (the body was parsed while the token lookup waited on the database):
/// the body's shape told an unauthenticated client which fields an endpoint checks, and it did
/// work for nobody. Here the body is not read before the token is accepted (issue 28, item 12).
pub struct Authed<T>(pub AuthUser, pub T);

impl<T: FromRequest + 'static> FromRequest for Authed<T> {
    type Error = actix_web::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, payload: &mut actix_web::dev::Payload) -> Self::Future {
        let auth = AuthUser::from_request(req, &mut actix_web::dev::Payload::None);
        let req = req.clone();
        let mut payload = payload.take();
        Box::pin(async move {
            let user = auth.await?;
            let body = T::from_request(&req, &mut payload)
                .await
                .map_err(Into::into)?;
            Ok(Authed(user, body))
        })
    }
}
