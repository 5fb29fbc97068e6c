//! The preview of a broadcast: its recipients walked as a fan-out would walk them now, counted
//! and rendered, without writing anything.

use std::collections::{BTreeMap, HashMap, HashSet};

use casecast_core::broadcast::{survey_content, BroadcastContent, Draft};
use casecast_core::sms;
use casecast_core::template::{closest_name, Content, Placeholder, STANDARD_PLACEHOLDERS};
use serde::Serialize;

use casecast_store::broadcasts::Excluded;
use casecast_store::projects::Project;
use casecast_store::recipients::{Outgoing, Walk};
use casecast_store::{Db, StoreError, StoreResult};

use crate::clock::Clock;
use crate::recipients::{batches, received};

/// Sample messages shown per language in a preview.
const SAMPLES_PER_LANGUAGE: usize = 3;

/// What a preview shows before a broadcast is sent.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Preview {
    /// Messages that would be queued now: one per phone number.
    pub recipients: i64,
    pub excluded: Excluded,
    /// Segments of all those messages.
    pub segments: i64,
    /// `gsm7` when every message is GSM-7, else `ucs2`.
    pub encoding: &'static str,
    /// Recipients and segments per text (`*` is the default).
    pub languages: Vec<LanguagePreview>,
    /// Per placeholder (`{case.ward}`), how many recipients lack its value.
    pub missing: BTreeMap<String, i64>,
    /// Rendered messages for a few real recipients of each text.
    pub samples: Vec<Sample>,
    /// Seconds to hand everything to the gateways at their rate limits; `None` without limits.
    pub estimated_seconds: Option<f64>,
    /// Recipients by their case's own language code (compared ignoring case; `None`: the case
    /// has none), most first: what the translations are chosen by.
    pub recipient_languages: Vec<RecipientLanguage>,
    /// What is probably a mistake but does not stop the broadcast: a translation no recipient
    /// gets, a property placeholder no recipient has a value for (with the closest name).
    pub warnings: Vec<String>,
}

/// How many recipients have one language code.
#[derive(Clone, Debug, Serialize)]
pub struct RecipientLanguage {
    pub language_code: Option<String>,
    pub recipients: i64,
}

/// Property names read to suggest one for a misspelt placeholder.
const PROPERTY_NAMES: usize = 1000;

/// One text of a preview.
#[derive(Clone, Debug, Serialize)]
pub struct LanguagePreview {
    pub language: String,
    pub recipients: i64,
    pub segments: i64,
}

/// A rendered message for one real recipient.
#[derive(Clone, Debug, Serialize)]
pub struct Sample {
    pub case_id: String,
    pub name: String,
    pub phone_number: String,
    pub language: String,
    pub text: String,
    pub encoding: &'static str,
    pub segments: i64,
    pub missing: Vec<String>,
}

/// Walks a draft's recipients as a fan-out would now, without writing anything.
pub async fn preview_broadcast(
    db: &Db,
    clock: &dyn Clock,
    project: &Project,
    draft: &Draft,
) -> StoreResult<Preview> {
    db.check_draft_refs(project, draft).await?;
    // Smart groups' members as the cases are now.
    crate::smart_groups::settle(db, clock, project.id).await?;
    // A survey's recipients get its first message (intro and first question) in their language.
    let content = match (
        &draft.content,
        crate::broadcasts::draft_survey(db, project, draft).await?,
    ) {
        (BroadcastContent::Sms(content), _) => content.clone(),
        (BroadcastContent::Survey(_), Some(stored)) => survey_content(&stored.survey),
        (BroadcastContent::Survey(id), None) => {
            return Err(StoreError::internal(format!("survey {id} was not read")))
        }
    };
    // A schedule with nothing to come is refused here as it would be on saving.
    casecast_store::broadcasts::first_occurrence(&draft.schedule, project, clock.now_ms())?;
    let sources = db.sources(project.id, &draft.recipients).await?;
    // A gateway deleted since the check above routes nothing: every number counts as
    // having no gateway.
    let router = (db.router_for(project.id, draft.gateway_id).await?).unwrap_or_default();
    let walk = Walk::new(db, project.id, sources, content.clone(), router);
    let keys: Vec<&str> = content.templates().map(|(k, _)| k).collect();
    let mut preview = Preview::default();
    let mut phones: HashSet<u64> = HashSet::new();
    // Per text (by position): recipients, segments.
    let mut languages = vec![(0i64, 0i64); keys.len()];
    let mut samples: Vec<(i64, Outgoing)> = Vec::new();
    let mut by_gateway: HashMap<i64, i64> = HashMap::new();
    let mut by_code: HashMap<Option<String>, i64> = HashMap::new();
    let mut ucs2 = false;
    let mut batches = batches(&walk, 0, 0);
    loop {
        let batch = received(&mut batches).await?;
        if batch.next.is_none() {
            break;
        }
        for item in batch.items {
            let m = match item {
                Ok(m) => m,
                Err(reason) => {
                    preview.excluded.add(reason);
                    continue;
                }
            };
            if !phones.insert(m.phone_key) {
                preview.excluded.duplicate_phone += 1;
                continue;
            }
            preview.recipients += 1;
            preview.segments += m.segments;
            ucs2 |= m.encoding == sms::Encoding::Ucs2;
            for p in &m.missing {
                *preview.missing.entry(p.clone()).or_default() += 1;
            }
            *by_gateway.entry(m.gateway_id).or_default() += m.segments;
            let code = m.case_language.as_deref().map(str::to_ascii_lowercase);
            *by_code.entry(code).or_default() += 1;
            let entry = &mut languages[m.language];
            entry.0 += 1;
            entry.1 += m.segments;
            if entry.0 as usize <= SAMPLES_PER_LANGUAGE {
                samples.push((m.case_pk, m));
            }
        }
    }
    let names = db
        .case_names(&samples.iter().map(|(pk, _)| *pk).collect::<Vec<_>>())
        .await?;
    preview.samples = samples
        .into_iter()
        .map(|(pk, m)| {
            let (case_id, name) = names.get(&pk).cloned().unwrap_or_default();
            Sample {
                case_id,
                name,
                phone_number: m.phone,
                language: keys[m.language].to_string(),
                text: m.text,
                encoding: m.encoding.as_str(),
                segments: m.segments,
                missing: m.missing,
            }
        })
        .collect();
    preview.encoding = if ucs2 { "ucs2" } else { "gsm7" };
    preview.languages = (keys.iter().zip(languages))
        .filter(|(_, (recipients, _))| *recipients > 0)
        .map(|(language, (recipients, segments))| LanguagePreview {
            language: language.to_string(),
            recipients,
            segments,
        })
        .collect();
    // Gateways send in parallel: the slowest one sets the time.
    let mut seconds: Option<f64> = None;
    for gateway in db.list_gateways(project.id).await? {
        if let (Some(segments), Some(rate)) =
            (by_gateway.get(&gateway.id), gateway.max_segments_per_second)
        {
            let s = *segments as f64 / rate;
            seconds = Some(seconds.map_or(s, |x: f64| x.max(s)));
        }
    }
    preview.estimated_seconds = seconds;
    let mut codes: Vec<RecipientLanguage> = by_code
        .into_iter()
        .map(|(language_code, recipients)| RecipientLanguage {
            language_code,
            recipients,
        })
        .collect();
    codes.sort_by(|a, b| (b.recipients, &a.language_code).cmp(&(a.recipients, &b.language_code)));
    preview.warnings = warnings(db, project.id, &content, &preview, &codes).await?;
    preview.recipient_languages = codes;
    Ok(preview)
}

/// The preview's warnings: translations that reach no recipient, property placeholders that
/// no recipient has a value for (the project's property names are read only then, for the
/// closest one).
async fn warnings(
    db: &Db,
    project_id: i64,
    content: &Content,
    preview: &Preview,
    codes: &[RecipientLanguage],
) -> StoreResult<Vec<String>> {
    let mut out = Vec::new();
    if preview.recipients == 0 {
        return Ok(out);
    }
    let present = codes
        .iter()
        .map(|c| match &c.language_code {
            Some(code) => format!("{code} ({})", c.recipients),
            None => format!("none ({})", c.recipients),
        })
        .collect::<Vec<_>>()
        .join(", ");
    for (key, _) in content.templates().skip(1) {
        if !preview.languages.iter().any(|l| l.language == key) {
            out.push(format!(
                "No recipient gets the translation '{key}': no recipient's language code is '{key}' \
                 (the recipients' codes: {present}). Those recipients get the default text."
            ));
        }
    }
    // Per property placeholder: how many recipients' texts use it, and its name.
    let mut uses: BTreeMap<String, (i64, &str)> = BTreeMap::new();
    for (key, template) in content.templates() {
        let recipients = (preview.languages.iter())
            .find(|l| l.language == key)
            .map_or(0, |l| l.recipients);
        for p in template.placeholders() {
            if let Placeholder::Property(name) = p {
                uses.entry(p.to_string()).or_insert((0, name)).0 += recipients;
            }
        }
    }
    // Those that every recipient whose text uses them lacks.
    let unknown: Vec<&str> = (uses.iter())
        .filter(|(p, (n, _))| *n > 0 && preview.missing.get(*p).copied().unwrap_or(0) == *n)
        .map(|(_, (_, name))| *name)
        .collect();
    if unknown.is_empty() {
        return Ok(out);
    }
    let properties = db.property_names(project_id, PROPERTY_NAMES).await?;
    for name in unknown {
        let known = STANDARD_PLACEHOLDERS
            .iter()
            .copied()
            .chain(properties.iter().map(String::as_str));
        out.push(match closest_name(name, known) {
            Some(close) => format!(
                "{{case.{name}}}: no recipient has a property '{name}'; did you mean {{case.{close}}}?"
            ),
            None => format!(
                "{{case.{name}}}: no recipient has a property '{name}', so it is empty in every message"
            ),
        });
    }
    Ok(out)
}
