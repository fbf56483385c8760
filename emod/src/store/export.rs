//! Export pages: samples with their user's name, in (t, session, modality) order, by cursor.

use diesel::prelude::*;
use diesel::sql_types::Text;
use emo_api_types::ExportRow;

use super::rows::parse_uuid;
use super::stats::StatsFilter;
use super::{SampleRow, Store, StoreResult};
use crate::with_conn;

#[derive(QueryableByName)]
struct ExportSql {
    #[diesel(embed)]
    sample: SampleRow,
    #[diesel(sql_type = Text)]
    username: String,
}

/// Where an export page ends; the next page starts strictly after it.
#[derive(Debug, Clone, PartialEq)]
pub struct ExportCursor {
    pub t: i64,
    pub session_id: String,
    pub modality: i16,
}

impl Store {
    /// One page of export rows in (t, session, modality) order, starting after `after`.
    pub fn export_page(
        &self,
        f: &StatsFilter,
        after: Option<&ExportCursor>,
        limit: i64,
    ) -> StoreResult<Vec<ExportRow>> {
        let mut wheres = f.where_sql("t", "s.");
        if let Some(c) = after {
            let sid = parse_uuid(&c.session_id)?.hyphenated().to_string();
            wheres.push_str(&format!(
                " AND (s.t > {t} OR (s.t = {t} AND (s.session_id > '{sid}' OR (s.session_id = '{sid}' AND s.modality > {m}))))",
                t = c.t,
                m = c.modality
            ));
        }
        // `s.*`: the row is read by column name into `SampleRow`, whose columns (the
        // probability columns included) are declared once, in `rows.rs`.
        let sql = format!(
            "SELECT s.*, u.username FROM samples s JOIN users u ON u.id = s.user_id \
             WHERE {wheres} ORDER BY s.t, s.session_id, s.modality LIMIT {limit}"
        );
        let rows: Vec<ExportSql> = with_conn!(self, |c| diesel::sql_query(&sql).load(c)?);
        rows.into_iter()
            .map(|r| {
                let sample = r.sample.to_api()?;
                Ok(ExportRow {
                    session_id: sample.session_id,
                    username: r.username,
                    t: sample.t,
                    modality: sample.modality,
                    emotion: sample.emotion,
                    confidence: sample.confidence,
                    probabilities: sample.probabilities,
                })
            })
            .collect()
    }
}
