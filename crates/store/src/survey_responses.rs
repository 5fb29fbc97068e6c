//! Following a survey: its sessions filtered by status and case (newest first, with a keyset
//! cursor), their counts by status and the completion rate, its responses a page at a time in
//! id order (exports read them so, never the whole table at once), and a session as a row of
//! an export. Reads only: sessions change in `survey_sessions.rs`, driven by the engine.

use std::collections::BTreeMap;

use casecast_core::survey::session::SessionStatus;
use sqlx::Row;

use crate::error::StoreResult;
use crate::survey_sessions::{session_from_row, SurveySession, SESSION_COLUMNS, SESSION_FROM};
use crate::Db;

/// Sessions read per page of a responses export.
pub const RESPONSES_PAGE: usize = 1000;

/// Which sessions of a survey to list; both optional, combined with AND.
#[derive(Clone, Debug, Default)]
pub struct SessionFilter {
    pub status: Option<SessionStatus>,
    /// A case ID (`CaseId`'s text) of the project.
    pub case_id: Option<String>,
}

/// A survey's sessions by status, and how many were completed of all started.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct SurveyProgress {
    /// Every status, zero when none.
    pub counts: BTreeMap<String, i64>,
    /// Sessions started (of every status).
    pub total: i64,
}

impl SurveyProgress {
    /// Completed sessions.
    pub fn completed(&self) -> i64 {
        self.counts
            .get(SessionStatus::Completed.as_str())
            .copied()
            .unwrap_or(0)
    }

    /// Completed sessions as a share of all started, 0 to 1; `None` before any started.
    pub fn completion_rate(&self) -> Option<f64> {
        (self.total > 0).then(|| self.completed() as f64 / self.total as f64)
    }

    /// The rate as people read it: `"40%"`, `"33.3%"`, or `"–"` before any session.
    pub fn completion_percent(&self) -> String {
        match self.completion_rate() {
            None => "–".to_string(),
            Some(r) => {
                let p = (r * 1000.0).round() / 10.0;
                if p.fract() == 0.0 {
                    format!("{p:.0}%")
                } else {
                    format!("{p:.1}%")
                }
            }
        }
    }
}

impl Db {
    /// The sessions of a survey of the project that pass the filter, newest first, at most
    /// `limit`, after `cursor` (the `id` a previous page ended with); with the cursor of the
    /// next page when there is one.
    pub async fn list_survey_sessions(
        &self,
        project_id: i64,
        survey_id: i64,
        filter: &SessionFilter,
        limit: i64,
        cursor: Option<i64>,
    ) -> StoreResult<(Vec<SurveySession>, Option<i64>)> {
        // The case first, so that the index on (case_pk, id) is used; an unknown case lists
        // nothing.
        let case_pk = match &filter.case_id {
            Some(case_id) => Some(
                sqlx::query_scalar("SELECT id FROM cases WHERE project_id = $1 AND case_id = $2")
                    .bind(project_id)
                    .bind(case_id)
                    .fetch_optional(self.pool())
                    .await?
                    .unwrap_or(-1i64),
            ),
            None => None,
        };
        let mut sql = format!(
            "SELECT {SESSION_COLUMNS} FROM {SESSION_FROM} WHERE s.project_id = $1 AND s.survey_id = $2"
        );
        let mut n = 2;
        let mut clause = |sql: &mut String, text: &str| {
            n += 1;
            sql.push_str(&text.replace('?', &format!("${n}")));
        };
        if filter.status.is_some() {
            clause(&mut sql, " AND s.status = ?");
        }
        if case_pk.is_some() {
            clause(&mut sql, " AND s.case_pk = ?");
        }
        if cursor.is_some() {
            clause(&mut sql, " AND s.id < ?");
        }
        clause(&mut sql, " ORDER BY s.id DESC LIMIT ?");
        let mut q = sqlx::query(&sql).bind(project_id).bind(survey_id);
        if let Some(status) = filter.status {
            q = q.bind(status.as_str());
        }
        for v in [case_pk, cursor].into_iter().flatten() {
            q = q.bind(v);
        }
        let rows = q
            .bind(limit + 1)
            .persistent(false)
            .fetch_all(self.pool())
            .await?;
        let mut items = rows
            .iter()
            .map(session_from_row)
            .collect::<StoreResult<Vec<_>>>()?;
        let next = if items.len() as i64 > limit {
            items.truncate(limit as usize);
            items.last().map(|s| s.id)
        } else {
            None
        };
        Ok((items, next))
    }

    /// A survey's sessions by status (every status present, zero when none) and their total.
    /// Only the project's: another project's survey counts nothing.
    pub async fn survey_progress(
        &self,
        project_id: i64,
        survey_id: i64,
    ) -> StoreResult<SurveyProgress> {
        let rows = sqlx::query(
            "SELECT status, CAST(COUNT(*) AS BIGINT) AS n FROM survey_sessions
             WHERE project_id = $1 AND survey_id = $2 GROUP BY status",
        )
        .bind(project_id)
        .bind(survey_id)
        .fetch_all(self.pool())
        .await?;
        let mut counts: BTreeMap<String, i64> = SessionStatus::ALL
            .iter()
            .map(|s| (s.as_str().to_string(), 0))
            .collect();
        let mut total = 0;
        for row in &rows {
            let n: i64 = row.try_get("n")?;
            total += n;
            counts.insert(row.try_get("status")?, n);
        }
        Ok(SurveyProgress { counts, total })
    }

    /// One page of a survey's sessions in id order, after session `after` (0: from the
    /// start), at most `limit`; with where the next page starts (None at the end). Exports
    /// read every session so, a page at a time.
    pub async fn responses_page(
        &self,
        project_id: i64,
        survey_id: i64,
        after: i64,
        limit: usize,
    ) -> StoreResult<(Vec<SurveySession>, Option<i64>)> {
        let rows = sqlx::query(&format!(
            "SELECT {SESSION_COLUMNS} FROM {SESSION_FROM}
             WHERE s.project_id = $1 AND s.survey_id = $2 AND s.id > $3 ORDER BY s.id LIMIT $4"
        ))
        .bind(project_id)
        .bind(survey_id)
        .bind(after)
        .bind(limit as i64)
        .fetch_all(self.pool())
        .await?;
        let items = rows
            .iter()
            .map(session_from_row)
            .collect::<StoreResult<Vec<_>>>()?;
        let next = (items.len() == limit)
            .then(|| items.last().map(|s| s.id))
            .flatten();
        Ok((items, next))
    }
}

/// The columns of a responses export every survey's starts with; one column per question
/// `key` follows, in the survey's order.
pub const RESPONSE_FIXED_COLUMNS: [&str; 7] = [
    "case_id",
    "external_id",
    "name",
    "phone_number",
    "status",
    "started_at",
    "completed_at",
];

/// The columns of one survey's responses export, and how a session becomes a row.
#[derive(Clone, Debug)]
pub struct ResponseColumns {
    /// The question keys, in the survey's order.
    pub keys: Vec<String>,
    /// Which keys are number questions (their cells are numbers in `.xlsx`).
    numbers: Vec<bool>,
    zone: jiff::tz::TimeZone,
}

impl ResponseColumns {
    /// The columns of `survey`'s responses, times in `zone` (the project's).
    pub fn new(survey: &casecast_core::survey::Survey, zone: jiff::tz::TimeZone) -> Self {
        use casecast_core::survey::QuestionType;
        ResponseColumns {
            keys: survey.questions.iter().map(|q| q.key.clone()).collect(),
            numbers: survey
                .questions
                .iter()
                .map(|q| q.kind == QuestionType::Number)
                .collect(),
            zone,
        }
    }

    /// Every header, in order.
    pub fn headers(&self) -> Vec<&str> {
        RESPONSE_FIXED_COLUMNS
            .iter()
            .copied()
            .chain(self.keys.iter().map(String::as_str))
            .collect()
    }

    /// The columns whose cells are written as numbers in `.xlsx` (answers to number
    /// questions); every other column is text.
    pub fn number_columns(&self) -> Vec<usize> {
        self.numbers
            .iter()
            .enumerate()
            .filter(|(_, n)| **n)
            .map(|(i, _)| RESPONSE_FIXED_COLUMNS.len() + i)
            .collect()
    }

    /// The text columns of `.xlsx`: all but [`Self::number_columns`].
    pub fn text_columns(&self) -> Vec<usize> {
        let numbers = self.number_columns();
        (0..RESPONSE_FIXED_COLUMNS.len() + self.keys.len())
            .filter(|c| !numbers.contains(c))
            .collect()
    }

    /// A stored instant in the project's time zone, RFC 3339 with its offset
    /// (`2026-12-07T12:10:11+03:00`).
    pub fn time(&self, ms: i64) -> String {
        match jiff::Timestamp::from_millisecond(ms) {
            Ok(ts) => ts
                .to_zoned(self.zone.clone())
                .strftime("%Y-%m-%dT%H:%M:%S%:z")
                .to_string(),
            Err(_) => String::new(),
        }
    }

    /// One session as a row of cells: answers as stored (a number as its number, a date as
    /// `YYYY-MM-DD`, a choice as its value, yes/no as `yes`/`no`); an unanswered question is
    /// an empty cell.
    pub fn row(&self, s: &SurveySession) -> Vec<String> {
        let mut row = Vec::with_capacity(RESPONSE_FIXED_COLUMNS.len() + self.keys.len());
        row.extend([
            s.case_id.clone(),
            s.external_id.clone().unwrap_or_default(),
            s.case_name.clone(),
            s.phone_number.clone(),
            s.status.as_str().to_string(),
            self.time(s.started_at),
            s.completed_at.map(|t| self.time(t)).unwrap_or_default(),
        ]);
        row.extend(self.keys.iter().map(|k| answer_cell(s.answers.get(k))));
        row
    }
}

/// A stored answer as a cell's text.
pub fn answer_cell(answer: Option<&serde_json::Value>) -> String {
    use serde_json::Value;
    match answer {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => casecast_core::survey::answer::number_text(n),
        Some(Value::Bool(b)) => if *b { "yes" } else { "no" }.to_string(),
        Some(other) => other.to_string(),
    }
}
