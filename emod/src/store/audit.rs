//! The audit log: who read whose data, and administrative changes.

use diesel::prelude::*;
use emo_api_types::AuditEntry;

use super::rows::parse_uuid;
use super::schema::audit_log;
use super::{ms_to_datetime, Store, StoreResult};
use crate::with_conn;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = audit_log)]
pub struct AuditRow {
    pub id: String,
    pub at: i64,
    pub actor_id: String,
    pub actor: String,
    pub action: String,
    pub target_user: Option<String>,
    pub detail: String,
}

impl AuditRow {
    pub fn to_api(&self) -> StoreResult<AuditEntry> {
        Ok(AuditEntry {
            id: parse_uuid(&self.id)?,
            at: ms_to_datetime(self.at),
            actor: self.actor.clone(),
            action: self.action.clone(),
            target_user: self.target_user.clone(),
            detail: self.detail.clone(),
        })
    }
}

/// Which entries `GET /audit` lists (every field optional; all given must hold).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AuditFilter {
    pub action: Option<String>,
    /// The actor or the target user.
    pub user: Option<String>,
    pub from_ms: Option<i64>,
    pub to_ms: Option<i64>,
}

impl AuditFilter {
    /// The filter as audit detail (` action=… user=…`, empty when unfiltered).
    pub fn describe(&self) -> String {
        let mut out = String::new();
        if let Some(a) = &self.action {
            out.push_str(&format!(" action={a}"));
        }
        if let Some(u) = &self.user {
            out.push_str(&format!(" user={u}"));
        }
        if let Some(f) = self.from_ms {
            out.push_str(&format!(" from={}", ms_to_datetime(f).to_rfc3339()));
        }
        if let Some(t) = self.to_ms {
            out.push_str(&format!(" to={}", ms_to_datetime(t).to_rfc3339()));
        }
        out
    }
}

/// The filtered audit query, boxed so that the count and the page share it.
macro_rules! filtered_audit {
    ($f:expr) => {{
        let f: &AuditFilter = $f;
        let mut q = audit_log::table.into_boxed();
        if let Some(a) = &f.action {
            q = q.filter(audit_log::action.eq(a.clone()));
        }
        if let Some(u) = &f.user {
            q = q.filter(
                audit_log::actor
                    .eq(u.clone())
                    .or(audit_log::target_user.eq(u.clone())),
            );
        }
        if let Some(t) = f.from_ms {
            q = q.filter(audit_log::at.ge(t));
        }
        if let Some(t) = f.to_ms {
            q = q.filter(audit_log::at.lt(t));
        }
        q
    }};
}

impl Store {
    pub fn insert_audit(&self, row: &AuditRow) -> StoreResult<()> {
        with_conn!(self, |c| {
            diesel::insert_into(audit_log::table)
                .values(row)
                .execute(c)?;
            Ok(())
        })
    }

    /// Newest first.
    pub fn list_audit(
        &self,
        filter: &AuditFilter,
        limit: i64,
        offset: i64,
    ) -> StoreResult<(Vec<AuditRow>, i64)> {
        with_conn!(self, |c| {
            let total: i64 = filtered_audit!(filter).count().get_result(c)?;
            let rows = filtered_audit!(filter)
                .order((audit_log::at.desc(), audit_log::id.desc()))
                .limit(limit)
                .offset(offset)
                .select(AuditRow::as_select())
                .load(c)?;
            Ok((rows, total))
        })
    }
}
