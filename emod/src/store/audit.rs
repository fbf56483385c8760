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
    pub fn list_audit(&self, limit: i64, offset: i64) -> StoreResult<(Vec<AuditRow>, i64)> {
        with_conn!(self, |c| {
            let total: i64 = audit_log::table.count().get_result(c)?;
            let rows = audit_log::table
                .order((audit_log::at.desc(), audit_log::id.desc()))
                .limit(limit)
                .offset(offset)
                .select(AuditRow::as_select())
                .load(c)?;
            Ok((rows, total))
        })
    }
}
