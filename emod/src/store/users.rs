//! Users and API tokens.

use diesel::prelude::*;

use super::schema::{api_tokens, users};
use super::{next_no, Store, StoreError, StoreResult, TokenRow, UserRow};
use crate::with_conn;

/// Fields an admin may change; `None` leaves the column alone.
#[derive(Debug, Default, Clone, AsChangeset)]
#[diesel(table_name = users)]
pub struct UserChanges {
    pub display_name: Option<Option<String>>,
    pub role: Option<String>,
    pub password_hash: Option<String>,
    pub disabled: Option<bool>,
}

diesel::define_sql_function! {
    /// SQL `lower()` (both backends; usernames are ASCII, so it is exact).
    fn lower(x: diesel::sql_types::Text) -> diesel::sql_types::Text;
}

impl Store {
    /// Inserts a user. Usernames are unique ignoring case: `Root1` beside `root1` is a
    /// conflict (the unique index stays case-sensitive; the check runs in the inserting
    /// transaction, serialised per lower-cased name on PostgreSQL by an advisory lock and by the
    /// write lock on SQLite, so two registrations of `Root1` and `root1` at once cannot both
    /// pass it).
    pub fn create_user(&self, row: &UserRow) -> StoreResult<UserRow> {
        let taken = || StoreError::Conflict(format!("username `{}` is taken", row.username));
        let lower_name = row.username.to_ascii_lowercase();
        macro_rules! insert {
            ($c:ident $(, $pg:ident)?) => {{
                let same: i64 = users::table
                    .filter(lower(users::username).eq(&lower_name))
                    .count()
                    .get_result($c)?;
                if same > 0 {
                    return Err(taken());
                }
                let no = next_no!($c, "users" $(, $pg)?);
                diesel::insert_into(users::table)
                    .values((row, users::no.eq(no)))
                    .execute($c)
                    .map_err(|e| match StoreError::from(e) {
                        StoreError::Conflict(_) => taken(),
                        other => other,
                    })?;
                Ok(row.clone())
            }};
        }
        match &self.db {
            super::Db::Pg(pool) => {
                let mut guard = pool.get()?;
                let c: &mut diesel::PgConnection = &mut guard;
                c.transaction::<_, StoreError, _>(|c| {
                    diesel::sql_query("SELECT pg_advisory_xact_lock(hashtext($1))")
                        .bind::<diesel::sql_types::Text, _>(&lower_name)
                        .execute(c)?;
                    insert!(c, pg)
                })
            }
            super::Db::Sqlite(pool) => {
                let mut guard = pool.get()?;
                let c: &mut diesel::SqliteConnection = &mut guard;
                c.immediate_transaction::<_, StoreError, _>(|c| insert!(c))
            }
        }
    }

    /// Admins that are not disabled.
    pub fn count_active_admins(&self) -> StoreResult<i64> {
        with_conn!(self, |c| Ok(users::table
            .filter(users::role.eq("admin"))
            .filter(users::disabled.eq(false))
            .count()
            .get_result(c)?))
    }

    pub fn user_by_name(&self, name: &str) -> StoreResult<Option<UserRow>> {
        with_conn!(self, |c| {
            Ok(users::table
                .filter(users::username.eq(name))
                .select(UserRow::as_select())
                .first(c)
                .optional()?)
        })
    }

    pub fn user_by_id(&self, id: &str) -> StoreResult<Option<UserRow>> {
        with_conn!(self, |c| {
            Ok(users::table
                .find(id)
                .select(UserRow::as_select())
                .first(c)
                .optional()?)
        })
    }

    pub fn list_users(&self) -> StoreResult<Vec<UserRow>> {
        with_conn!(self, |c| {
            Ok(users::table
                .order(users::username.asc())
                .select(UserRow::as_select())
                .load(c)?)
        })
    }

    /// Applies `changes`; disabling a user or changing the password revokes their tokens.
    /// Demoting or disabling the last active admin is refused (`Conflict`). That is decided
    /// inside the transaction with the active admins locked (PostgreSQL: `FOR UPDATE`; SQLite:
    /// an immediate, i.e. write-locked, transaction), so two admins demoting each other at the
    /// same moment cannot leave none.
    pub fn update_user(&self, id: &str, changes: &UserChanges) -> StoreResult<UserRow> {
        let revoke = changes.disabled == Some(true) || changes.password_hash.is_some();
        let demotes =
            changes.role.as_deref().is_some_and(|r| r != "admin") || changes.disabled == Some(true);
        let keep_an_admin = |admins: Vec<String>| -> StoreResult<()> {
            if admins.len() <= 1 && admins.iter().any(|a| a == id) {
                return Err(StoreError::Conflict(
                    "this is the last active admin: make another admin first".into(),
                ));
            }
            Ok(())
        };
        let active_admins = users::table
            .filter(users::role.eq("admin"))
            .filter(users::disabled.eq(false))
            .select(users::id);
        macro_rules! apply {
            ($c:ident) => {{
                if changes.display_name.is_some()
                    || changes.role.is_some()
                    || changes.password_hash.is_some()
                    || changes.disabled.is_some()
                {
                    diesel::update(users::table.find(id))
                        .set(changes)
                        .execute($c)?;
                }
                if revoke {
                    diesel::update(api_tokens::table.filter(api_tokens::user_id.eq(id)))
                        .set(api_tokens::revoked.eq(true))
                        .execute($c)?;
                }
                users::table
                    .find(id)
                    .select(UserRow::as_select())
                    .first($c)
                    .optional()?
                    .ok_or_else(|| StoreError::NotFound("user".into()))
            }};
        }
        match &self.db {
            super::Db::Pg(pool) => {
                let mut guard = pool.get()?;
                let c: &mut diesel::PgConnection = &mut guard;
                c.transaction::<_, StoreError, _>(|c| {
                    if demotes {
                        keep_an_admin(active_admins.for_update().load(c)?)?;
                    }
                    apply!(c)
                })
            }
            super::Db::Sqlite(pool) => {
                let mut guard = pool.get()?;
                let c: &mut diesel::SqliteConnection = &mut guard;
                c.immediate_transaction::<_, StoreError, _>(|c| {
                    if demotes {
                        keep_an_admin(active_admins.load(c)?)?;
                    }
                    apply!(c)
                })
            }
        }
    }

    pub fn insert_token(&self, row: &TokenRow) -> StoreResult<()> {
        with_conn!(self, |c| {
            diesel::insert_into(api_tokens::table)
                .values(row)
                .execute(c)?;
            Ok(())
        })
    }

    /// The token and its user, if the token exists (expiry and revocation are the caller's call).
    pub fn token_with_user(&self, hash: &str) -> StoreResult<Option<(TokenRow, UserRow)>> {
        with_conn!(self, |c| {
            Ok(api_tokens::table
                .inner_join(users::table)
                .filter(api_tokens::token_hash.eq(hash))
                .select((TokenRow::as_select(), UserRow::as_select()))
                .first(c)
                .optional()?)
        })
    }

    pub fn revoke_token(&self, hash: &str) -> StoreResult<()> {
        with_conn!(self, |c| {
            diesel::update(api_tokens::table.find(hash))
                .set(api_tokens::revoked.eq(true))
                .execute(c)?;
            Ok(())
        })
    }

    /// Drops tokens that expired (or were revoked) more than a day ago.
    pub fn purge_tokens(&self, now_ms: i64) -> StoreResult<usize> {
        let day = 86_400_000;
        with_conn!(self, |c| {
            Ok(diesel::delete(
                api_tokens::table.filter(
                    api_tokens::expires_at
                        .lt(now_ms - day)
                        .or(api_tokens::revoked
                            .eq(true)
                            .and(api_tokens::created_at.lt(now_ms - day))),
                ),
            )
            .execute(c)?)
        })
    }
}
