//! The JSON shapes of broadcasts, their occurrences and previews (CONTRACT "Gateways,
//! broadcasts, messages"); the pages' live progress uses them too.

use std::collections::BTreeMap;

use casecast_core::broadcast::content_json;
use casecast_engine::{LanguagePreview, Preview, Sample};
use casecast_store::broadcasts::{Broadcast, Excluded, Occurrence};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

fn time(ms: i64) -> String {
    casecast_core::time::rfc3339(ms)
}

/// A broadcast: what it sends to whom and when, and how far it has got.
#[derive(Serialize, ToSchema)]
pub struct BroadcastJson {
    pub id: i64,
    pub name: String,
    pub recipients: RecipientsJson,
    /// `{"sms": {"*": "default text", "<language_code>": "text"}}` or `{"survey": id}`.
    #[schema(value_type = Object)]
    pub content: Value,
    /// `{"kind": "immediate"}`, `{"kind": "once", "at"}` or `{"kind": "daily"|"weekly"|"monthly",
    /// "start_date", "time", "every", "weekdays", "days_of_month", "stop"}`, in the project's
    /// time zone.
    #[schema(value_type = Object)]
    pub schedule: Value,
    /// The gateway every message goes through; null: each number's routing.
    pub gateway_id: Option<i64>,
    /// `scheduled`, `sending`, `completed`, `cancelled`, `paused` or `failed`.
    pub status: String,
    /// Messages of all its occurrences by status (every outbound status, zeros included).
    pub counts: BTreeMap<String, i64>,
    /// RFC 3339, UTC; null when nothing more is due.
    pub next_run_at: Option<String>,
    /// When the last occurrence was due; null before the first.
    pub last_run_at: Option<String>,
    pub created_at: String,
    /// Occurrences so far (sent or missed).
    pub occurrences: i64,
    /// Why the last occurrence failed or was missed, if it did.
    pub error: Option<String>,
}

/// Who a broadcast goes to.
#[derive(Serialize, ToSchema)]
pub struct RecipientsJson {
    /// Case group ids; membership is read at each occurrence.
    pub case_groups: Vec<i64>,
    /// Case IDs.
    pub cases: Vec<String>,
}

impl From<Broadcast> for BroadcastJson {
    fn from(b: Broadcast) -> Self {
        BroadcastJson {
            id: b.id,
            content: content_json(&b.content),
            schedule: b.schedule.to_json(),
            name: b.name,
            recipients: RecipientsJson {
                case_groups: b.recipients.case_groups,
                cases: b.recipients.cases,
            },
            gateway_id: b.gateway_id,
            status: b.status.to_string(),
            counts: b.counts,
            next_run_at: b.next_run_at.map(time),
            last_run_at: b.last_run_at.map(time),
            created_at: time(b.created_at),
            occurrences: b.occurrences,
            error: b.error,
        }
    }
}

/// A page of the project's broadcasts, newest first.
#[derive(Serialize, ToSchema)]
pub struct BroadcastList {
    pub broadcasts: Vec<BroadcastJson>,
    pub next_cursor: Option<String>,
}

/// Cases left out, by reason.
#[derive(Serialize, ToSchema)]
pub struct ExcludedJson {
    pub no_phone: i64,
    pub opted_out: i64,
    pub closed: i64,
    pub deleted: i64,
    /// Another recipient already has the number (or the case came in through two groups).
    pub duplicate_phone: i64,
    /// No gateway takes the number (the project has no gateway for it).
    pub no_gateway: i64,
}

impl From<Excluded> for ExcludedJson {
    fn from(e: Excluded) -> Self {
        ExcludedJson {
            no_phone: e.no_phone,
            opted_out: e.opted_out,
            closed: e.closed,
            deleted: e.deleted,
            duplicate_phone: e.duplicate_phone,
            no_gateway: e.no_gateway,
        }
    }
}

/// One time a broadcast fired (or was due and missed), with its own counts.
#[derive(Serialize, ToSchema)]
pub struct OccurrenceJson {
    pub id: i64,
    /// 1-based, counted from the schedule's start.
    pub index: i64,
    /// RFC 3339, UTC.
    pub due_at: String,
    /// `fanning_out`, `done`, `missed`, `cancelled` or `failed`.
    pub status: String,
    /// Messages queued by the fan-out, and their segments.
    pub queued: i64,
    pub segments: i64,
    pub excluded: ExcludedJson,
    /// Recipients whose text lacked a placeholder's value (rendered empty).
    pub missing_values: i64,
    pub error: Option<String>,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    /// Its messages by status, now.
    pub counts: BTreeMap<String, i64>,
}

impl From<Occurrence> for OccurrenceJson {
    fn from(o: Occurrence) -> Self {
        OccurrenceJson {
            id: o.id,
            index: o.index,
            due_at: time(o.due_at),
            status: o.status.to_string(),
            queued: o.queued,
            segments: o.segments,
            excluded: o.excluded.into(),
            missing_values: o.missing_values,
            error: o.error,
            started_at: o.started_at.map(time),
            finished_at: o.finished_at.map(time),
            counts: o.counts,
        }
    }
}

/// A broadcast's occurrences, newest first.
#[derive(Serialize, ToSchema)]
pub struct OccurrenceList {
    pub occurrences: Vec<OccurrenceJson>,
    /// Always null for now: the newest `limit` occurrences are all there is to read.
    pub next_cursor: Option<String>,
}

/// What a broadcast would do if it were sent now.
#[derive(Serialize, ToSchema)]
pub struct PreviewJson {
    /// Messages that would be queued: one per phone number.
    pub recipients: i64,
    pub excluded: ExcludedJson,
    /// Segments of all those messages.
    pub segments: i64,
    /// `gsm7` when every message is GSM-7, else `ucs2`.
    pub encoding: String,
    /// Recipients and segments per text (`*` is the default text).
    pub languages: Vec<LanguageJson>,
    /// Per placeholder (`{case.ward}`), how many recipients lack its value (it renders empty).
    pub missing: BTreeMap<String, i64>,
    /// Rendered messages for up to three real recipients of each text.
    pub samples: Vec<SampleJson>,
    /// Seconds to hand every message to the gateways at their rate limits; null when no
    /// gateway involved has a limit.
    pub estimated_seconds: Option<f64>,
    /// Recipients by their case's language code (null: none), most first.
    pub recipient_languages: Vec<RecipientLanguageJson>,
    /// Probable mistakes that do not stop the broadcast: a translation no recipient gets, a
    /// placeholder naming a property no case has ("did you mean …").
    pub warnings: Vec<String>,
}

/// How many recipients have one language code.
#[derive(Serialize, ToSchema)]
pub struct RecipientLanguageJson {
    /// The code in lower case; null for cases without one.
    pub language_code: Option<String>,
    pub recipients: i64,
}

/// One text of a preview.
#[derive(Serialize, ToSchema)]
pub struct LanguageJson {
    /// `*` for the default text, else the language code.
    pub language: String,
    pub recipients: i64,
    pub segments: i64,
}

/// A message as one real recipient would get it.
#[derive(Serialize, ToSchema)]
pub struct SampleJson {
    pub case_id: String,
    pub name: String,
    /// E.164.
    pub phone_number: String,
    /// `*` for the default text, else the language code.
    pub language: String,
    pub text: String,
    pub encoding: String,
    pub segments: i64,
    /// Placeholders this case has no value for (rendered empty).
    pub missing: Vec<String>,
}

impl From<LanguagePreview> for LanguageJson {
    fn from(l: LanguagePreview) -> Self {
        LanguageJson {
            language: l.language,
            recipients: l.recipients,
            segments: l.segments,
        }
    }
}

impl From<Sample> for SampleJson {
    fn from(s: Sample) -> Self {
        SampleJson {
            case_id: s.case_id,
            name: s.name,
            phone_number: s.phone_number,
            language: s.language,
            text: s.text,
            encoding: s.encoding.to_string(),
            segments: s.segments,
            missing: s.missing,
        }
    }
}

impl From<Preview> for PreviewJson {
    fn from(p: Preview) -> Self {
        PreviewJson {
            recipients: p.recipients,
            excluded: p.excluded.into(),
            segments: p.segments,
            encoding: p.encoding.to_string(),
            languages: p.languages.into_iter().map(Into::into).collect(),
            missing: p.missing,
            samples: p.samples.into_iter().map(Into::into).collect(),
            estimated_seconds: p.estimated_seconds,
            recipient_languages: (p.recipient_languages.into_iter())
                .map(|l| RecipientLanguageJson {
                    language_code: l.language_code,
                    recipients: l.recipients,
                })
                .collect(),
            warnings: p.warnings,
        }
    }
}
