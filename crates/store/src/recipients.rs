//! The recipients of a broadcast occurrence, read and rendered in batches: what the fan-out
//! writes and the preview counts.
//!
//! Recipients are read source by source (each case group in the order given, then the
//! individually chosen cases), in case row order, with keyset batches. Each case is classified
//! (deleted, closed, no phone, opted out, no gateway) and the rest get their text rendered in
//! their language. A case met again in a later source counts as a duplicate (it has its
//! message already), unless it was excluded the first time. The engine's
//! pipeline reads the next batch of a [`Walk`] while its consumer handles the current one.

use std::sync::Arc;

use casecast_core::sms;
use casecast_core::template::{Content, Placeholder};
use sqlx::Row;
use std::borrow::Cow;

use crate::broadcasts::Excluded;
use crate::error::{StoreError, StoreResult};
use crate::gateways::Router;
use crate::Db;

/// Cases whose property names `Db::property_names` reads.
pub const PROPERTY_SAMPLE: usize = 20_000;

/// Cases read per batch (and per fan-out transaction).
pub(crate) const BATCH: i64 = 5000;

/// Where an occurrence's recipients come from, in reading order.
#[derive(Debug)]
pub struct Sources {
    /// The broadcast's groups that still exist, in the order given.
    groups: Vec<i64>,
    /// Row ids of the individually chosen cases, ascending.
    case_pks: Vec<i64>,
}

impl Sources {
    /// Groups, then the list of cases.
    pub(crate) fn len(&self) -> i64 {
        self.groups.len() as i64 + 1
    }
}

/// The case fields a broadcast's texts use beyond those every walk reads (row id, case ID,
/// name, phone, language, closed, deleted): only these are read, which keeps batches small.
#[derive(Clone, Debug, Default)]
pub(crate) struct Fields {
    name: bool,
    case_id: bool,
    external_id: bool,
    case_type: bool,
    owner_id: bool,
    /// Property names, each once.
    properties: Vec<String>,
}

impl Fields {
    fn of(content: &Content) -> Fields {
        let mut f = Fields::default();
        for (_, template) in content.templates() {
            for p in template.placeholders() {
                match p {
                    Placeholder::Name => f.name = true,
                    Placeholder::CaseId => f.case_id = true,
                    Placeholder::ExternalId => f.external_id = true,
                    Placeholder::CaseType => f.case_type = true,
                    Placeholder::OwnerId => f.owner_id = true,
                    Placeholder::Property(name) if !f.properties.contains(name) => {
                        f.properties.push(name.clone())
                    }
                    _ => {}
                }
            }
        }
        f
    }
}

/// A case as the batch query writes it (one JSON array), borrowing its text from the batch:
/// the properties used come nested in an array of their own, in `Fields::properties` order.
#[derive(serde::Deserialize)]
struct Candidate<'a>(
    /// Case row id.
    i64,
    #[serde(borrow)] Option<Cow<'a, str>>,
    /// Language code.
    #[serde(borrow)]
    Option<Cow<'a, str>>,
    /// Flags: 1 closed, 2 deleted, 4 opted out, 8 met in an earlier source.
    i64,
    /// Name, case ID, external ID, case type, owner ID: each only when a text uses it.
    #[serde(borrow)]
    Option<Cow<'a, str>>,
    #[serde(borrow)] Option<Cow<'a, str>>,
    #[serde(borrow)] Option<Cow<'a, str>>,
    #[serde(borrow)] Option<Cow<'a, str>>,
    #[serde(borrow)] Option<Cow<'a, str>>,
    #[serde(borrow)] Vec<Option<Cow<'a, str>>>,
);

/// The columns of a candidate, in order (the properties follow, as `p0`, `p1`, …).
const CANDIDATE_COLUMNS: [&str; 9] = [
    "id",
    "phone_number",
    "language_code",
    "flags",
    "name",
    "case_id",
    "external_id",
    "case_type",
    "owner_id",
];

impl Candidate<'static> {
    /// A candidate from a row of the batch query (PostgreSQL), with `properties` values. The
    /// columns are read by position, in `CANDIDATE_COLUMNS` order.
    fn from_row(r: &sqlx::any::AnyRow, properties: usize) -> Result<Self, sqlx::Error> {
        let text = |i: usize| -> Result<Option<Cow<'static, str>>, sqlx::Error> {
            Ok(r.try_get::<Option<String>, _>(i)?.map(Cow::Owned))
        };
        Ok(Candidate(
            r.try_get(0)?,
            text(1)?,
            text(2)?,
            r.try_get(3)?,
            text(4)?,
            text(5)?,
            text(6)?,
            text(7)?,
            text(8)?,
            (0..properties)
                .map(|i| text(9 + i))
                .collect::<Result<_, _>>()?,
        ))
    }
}

impl Candidate<'_> {
    fn pk(&self) -> i64 {
        self.0
    }
    fn phone(&self) -> Option<&str> {
        self.1.as_deref()
    }
    fn language_code(&self) -> Option<&str> {
        self.2.as_deref()
    }
    fn closed(&self) -> bool {
        self.3 & 1 != 0
    }
    fn deleted(&self) -> bool {
        self.3 & 2 != 0
    }
    fn opted_out(&self) -> bool {
        self.3 & 4 != 0
    }
    /// An earlier source (group) of the same occurrence already gave this case.
    fn seen(&self) -> bool {
        self.3 & 8 != 0
    }

    /// The case's value for a placeholder, as [`Placeholder::value`] reads it from a case.
    fn value(&self, placeholder: &Placeholder, fields: &Fields) -> Option<&str> {
        match placeholder {
            Placeholder::PhoneNumber => self.1.as_deref(),
            Placeholder::LanguageCode => self.2.as_deref(),
            Placeholder::Name => self.4.as_deref(),
            Placeholder::CaseId => self.5.as_deref(),
            Placeholder::ExternalId => self.6.as_deref(),
            Placeholder::CaseType => self.7.as_deref(),
            Placeholder::OwnerId => self.8.as_deref(),
            Placeholder::Property(name) => {
                let i = fields.properties.iter().position(|p| p == name)?;
                self.9.get(i)?.as_deref()
            }
        }
    }
}

/// Why a case gets no message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    Deleted,
    Closed,
    NoPhone,
    OptedOut,
    /// No gateway takes the number (the project has none).
    NoGateway,
    /// Another recipient has the number, or the case came in through an earlier source.
    DuplicatePhone,
    /// The case came in through an earlier source, where it was already excluded: counted
    /// there, once.
    Repeat,
}

impl Excluded {
    pub fn add(&mut self, reason: Reason) {
        match reason {
            Reason::Deleted => self.deleted += 1,
            Reason::Closed => self.closed += 1,
            Reason::NoPhone => self.no_phone += 1,
            Reason::OptedOut => self.opted_out += 1,
            Reason::NoGateway => self.no_gateway += 1,
            Reason::DuplicatePhone => self.duplicate_phone += 1,
            Reason::Repeat => {}
        }
    }
}

/// One rendered message for one case.
pub struct Outgoing {
    pub case_pk: i64,
    /// Which text was used: its position in `Content::templates` (0 is the default).
    pub language: usize,
    pub phone: String,
    /// The number as an integer, for cheap duplicate checks.
    pub phone_key: u64,
    pub text: String,
    pub encoding: sms::Encoding,
    pub segments: i64,
    pub gateway_id: i64,
    pub missing: Vec<String>,
    /// The case's own language code, as stored (the preview counts recipients by it).
    pub case_language: Option<String>,
}

/// The exclusion rules, in the order a case is checked against them.
fn classify(c: &Candidate) -> Option<Reason> {
    if c.deleted() {
        Some(Reason::Deleted)
    } else if c.closed() {
        Some(Reason::Closed)
    } else if c.phone().is_none() {
        Some(Reason::NoPhone)
    } else if c.opted_out() {
        Some(Reason::OptedOut)
    } else {
        None
    }
}

/// An E.164 number (`+` and at most 15 digits) as an integer; anything else (never stored)
/// as a hash of its text.
pub(crate) fn phone_key(phone: &str) -> u64 {
    let digits = phone.strip_prefix('+').unwrap_or(phone);
    if digits.len() <= 15 && digits.bytes().all(|b| b.is_ascii_digit()) {
        if let Ok(n) = digits.parse::<u64>() {
            return n;
        }
    }
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    phone.hash(&mut h);
    h.finish() | (1 << 63)
}

impl Walk {
    /// The message a candidate gets, or why it gets none.
    fn outgoing(&self, c: &Candidate) -> Result<Outgoing, Reason> {
        match (classify(c), c.seen()) {
            (Some(_), true) => return Err(Reason::Repeat),
            (Some(reason), false) => return Err(reason),
            (None, true) => return Err(Reason::DuplicatePhone),
            (None, false) => {}
        }
        let (key, template) = self.content.choose(c.language_code());
        let language = self.keys.iter().position(|k| k == key).unwrap_or(0);
        let rendered = template.render_with(|p| c.value(p, &self.fields));
        let info = sms::analyse(&rendered.text);
        let phone = c.phone().expect("classified as having a phone");
        let gateway_id = self.router.route(phone).ok_or(Reason::NoGateway)?;
        Ok(Outgoing {
            case_pk: c.pk(),
            language,
            gateway_id,
            phone: phone.to_string(),
            phone_key: phone_key(phone),
            text: rendered.text,
            encoding: info.encoding,
            segments: info.segments as i64,
            missing: rendered.missing,
            case_language: c.language_code().map(str::to_string),
        })
    }
}

/// One batch of recipients, read and rendered.
pub struct Batch {
    /// The cursor it was read from: (source, last case row before it).
    pub from: (i64, i64),
    /// Where the next batch starts; `None` when this one is past the last source (empty).
    pub next: Option<(i64, i64)>,
    pub items: Vec<Result<Outgoing, Reason>>,
}

/// Reads an occurrence's recipients batch by batch, one batch ahead.
#[derive(Clone)]
pub struct Walk {
    db: Db,
    project_id: i64,
    sources: Arc<Sources>,
    content: Arc<Content>,
    /// The language keys of `content`, in `Content::templates` order.
    keys: Arc<Vec<String>>,
    fields: Arc<Fields>,
    router: Arc<Router>,
}

impl Walk {
    pub fn new(
        db: &Db,
        project_id: i64,
        sources: Sources,
        content: Content,
        router: Router,
    ) -> Walk {
        Walk {
            db: db.clone(),
            project_id,
            sources: Arc::new(sources),
            fields: Arc::new(Fields::of(&content)),
            keys: Arc::new(content.templates().map(|(k, _)| k.to_string()).collect()),
            content: Arc::new(content),
            router: Arc::new(router),
        }
    }

    /// Reads the batch at the cursor `from` (source, after case row): the rows, the cursor
    /// they were read from and where the next batch starts. Past the last source it is an
    /// empty batch with no next one, which ends the walk. The engine pipelines these reads
    /// with [`Walk::render`] (`casecast_engine::recipients`).
    pub async fn read(&self, from: (i64, i64)) -> RawRead {
        if from.0 >= self.sources.len() {
            return Ok((RawBatch::default(), from, None));
        }
        let raw = (self.db)
            .candidates_raw(self.project_id, &self.sources, &self.fields, from, BATCH)
            .await?;
        let next = match &raw {
            RawBatch {
                count: BATCH,
                last: Some(last),
                ..
            } => (from.0, *last),
            _ => (from.0 + 1, 0),
        };
        Ok((raw, from, Some(next)))
    }

    /// Parses and renders one batch read from `from`; `next` is where the following batch
    /// starts (`None`: this one is past the last source, and the walk ends).
    pub fn render(
        &self,
        raw: RawBatch,
        from: (i64, i64),
        next: Option<(i64, i64)>,
    ) -> StoreResult<Batch> {
        let mut rows: Vec<Candidate> = if raw.count == 0 {
            Vec::new()
        } else if !raw.rows.is_empty() {
            (raw.rows.iter())
                .map(|r| Candidate::from_row(r, self.fields.properties.len()))
                .collect::<Result<_, sqlx::Error>>()?
        } else {
            serde_json::from_str(&raw.json).map_err(|e| {
                StoreError::Internal(format!(
                    "a batch of recipients could not be decoded (column {})",
                    e.column()
                ))
            })?
        };
        // JSON aggregates do not promise to keep the rows' order.
        rows.sort_unstable_by_key(Candidate::pk);
        let items = rows.iter().map(|c| self.outgoing(c)).collect();
        Ok(Batch { from, next, items })
    }
}

/// A batch read: the rows, the cursor they were read from, where the next batch starts.
pub type RawRead = StoreResult<(RawBatch, (i64, i64), Option<(i64, i64)>)>;

/// One batch as the database returns it: the rows as JSON, how many, the last case row.
#[derive(Default)]
pub struct RawBatch {
    /// SQLite: the rows as one JSON array (see `dialect::batch_as_json`).
    json: String,
    /// PostgreSQL: the rows.
    rows: Vec<sqlx::any::AnyRow>,
    count: i64,
    last: Option<i64>,
}

impl Db {
    /// The groups and case rows a broadcast's recipients name.
    pub async fn sources(
        &self,
        project_id: i64,
        recipients: &casecast_core::broadcast::Recipients,
    ) -> StoreResult<Sources> {
        // Every group given, even one deleted since: it reads as an empty source, and the
        // positions that an interrupted fan-out's cursor counts in stay the same.
        let groups = recipients.case_groups.clone();
        let mut case_pks: Vec<i64> = (self.case_pks(project_id, &recipients.cases).await?)
            .into_iter()
            .map(|(_, pk)| pk)
            .collect();
        case_pks.sort_unstable();
        Ok(Sources { groups, case_pks })
    }

    /// Up to `limit` cases of source `pos` after case row `after`, in row order, each marked
    /// if an earlier source already gave it.
    async fn candidates_raw(
        &self,
        project_id: i64,
        sources: &Sources,
        fields: &Fields,
        (pos, after): (i64, i64),
        limit: i64,
    ) -> StoreResult<RawBatch> {
        // Ids below are integers read from the database, written into the SQL as literals.
        let list = |ids: &[i64]| ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",");
        let optional = |used: bool, column: &str| {
            if used {
                format!("c.{column}")
            } else {
                format!("NULL AS {column}")
            }
        };
        // Each property used, as text ($3, $4, … bind the names).
        let properties: Vec<String> = (0..fields.properties.len())
            .map(|i| {
                let value = crate::dialect::json_text(self.dialect(), "c.properties", i + 3);
                format!("{value} AS p{i}")
            })
            .collect();
        let opted_out = format!(
            "CASE WHEN EXISTS (SELECT 1 FROM opt_outs o WHERE o.project_id = {project_id}
                AND o.phone = c.phone_number) THEN 1 ELSE 0 END"
        );
        // The columns, given whether an earlier source (group) already gave the case.
        let columns = |earlier: &[i64], case_pk: &str| {
            let seen = if earlier.is_empty() {
                "0".to_string()
            } else {
                format!(
                    "CASE WHEN EXISTS (SELECT 1 FROM case_group_members e WHERE e.case_pk = {case_pk}
                        AND e.group_id IN ({})) THEN 1 ELSE 0 END",
                    list(earlier)
                )
            };
            let mut columns = format!(
                "c.id, c.phone_number, c.language_code,
                 CAST(c.closed + 2 * c.deleted + 4 * ({opted_out}) + 8 * ({seen}) AS BIGINT) AS flags,
                 {}, {}, {}, {}, {}",
                optional(fields.name, "name"),
                optional(fields.case_id, "case_id"),
                optional(fields.external_id, "external_id"),
                optional(fields.case_type, "case_type"),
                optional(fields.owner_id, "owner_id"),
            );
            for p in &properties {
                columns.push_str(", ");
                columns.push_str(p);
            }
            columns
        };
        let pos_usize = pos as usize;
        // `c.id > $1` repeats `m.case_pk > $1` for PostgreSQL's merge join, which otherwise
        // reads the cases table from its start at every batch.
        let inner = if pos_usize < sources.groups.len() {
            let earlier = &sources.groups[..pos_usize];
            format!(
                "SELECT {} FROM case_group_members m JOIN cases c ON c.id = m.case_pk
                 WHERE m.group_id = {} AND m.case_pk > $1 AND c.id > $1 AND c.project_id = {project_id}
                 ORDER BY m.case_pk LIMIT $2",
                columns(earlier, "m.case_pk"),
                sources.groups[pos_usize]
            )
        } else {
            if sources.case_pks.is_empty() {
                return Ok(RawBatch::default());
            }
            format!(
                "SELECT {} FROM cases c
                 WHERE c.id IN ({}) AND c.id > $1 AND c.project_id = {project_id}
                 ORDER BY c.id LIMIT $2",
                columns(&sources.groups, "c.id"),
                list(&sources.case_pks)
            )
        };
        if !crate::dialect::batch_as_json(self.dialect()) {
            let mut q = sqlx::query(&inner).bind(after).bind(limit);
            for name in &fields.properties {
                q = q.bind(crate::dialect::json_text_key(self.dialect(), name));
            }
            let rows = q.persistent(false).fetch_all(self.pool()).await?;
            let last = match rows.last() {
                Some(r) => Some(r.try_get("id")?),
                None => None,
            };
            return Ok(RawBatch {
                json: String::new(),
                count: rows.len() as i64,
                last,
                rows,
            });
        }
        // The whole batch comes back as one JSON row: row by row, the driver's per-row cost
        // was most of a preview's time.
        let sql = crate::dialect::json_rows(
            &inner,
            &CANDIDATE_COLUMNS,
            &(0..fields.properties.len())
                .map(|i| format!("p{i}"))
                .collect::<Vec<_>>(),
        );
        let mut q = sqlx::query(&sql).bind(after).bind(limit);
        for name in &fields.properties {
            q = q.bind(crate::dialect::json_text_key(self.dialect(), name));
        }
        let row = q.persistent(false).fetch_one(self.pool()).await?;
        Ok(RawBatch {
            rows: Vec::new(),
            json: row.try_get("json_rows")?,
            count: row.try_get("n")?,
            last: row.try_get("last")?,
        })
    }

    /// Names of the properties the project's live cases have, sorted, at most `limit` (for
    /// placeholders). Read from the `property_keys` of the newest `PROPERTY_SAMPLE` cases, so
    /// that a page or preview costs the same in a project of any size.
    pub async fn property_names(&self, project_id: i64, limit: usize) -> StoreResult<Vec<String>> {
        let sets: Vec<String> = sqlx::query_scalar(&format!(
            "SELECT DISTINCT property_keys FROM (SELECT property_keys FROM cases
               WHERE project_id = $1 AND deleted = 0 ORDER BY id DESC LIMIT {PROPERTY_SAMPLE}) s
             WHERE property_keys <> ''"
        ))
        .bind(project_id)
        .fetch_all(self.pool())
        .await?;
        let names: std::collections::BTreeSet<&str> = sets
            .iter()
            .flat_map(|set| set.split(','))
            .filter(|k| !k.is_empty())
            .collect();
        Ok(names.into_iter().take(limit).map(str::to_string).collect())
    }
}
