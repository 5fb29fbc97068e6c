//! The preview of a broadcast: its recipients walked as a fan-out would walk them now, counted
//! and rendered, without writing anything.

use std::collections::{BTreeMap, HashMap, HashSet};

use casecast_core::broadcast::Draft;
use casecast_core::sms;
use serde::Serialize;

use crate::broadcasts::Excluded;
use crate::error::StoreResult;
use crate::gateways::Router;
use crate::projects::Project;
use crate::recipients::{received, Walk};
use crate::Db;

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
}

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

impl Db {
    /// Walks a draft's recipients as a fan-out would now, without writing anything.
    pub async fn preview_broadcast(
        &self,
        project: &Project,
        draft: &Draft,
    ) -> StoreResult<Preview> {
        self.check_draft_refs(project, draft).await?;
        let sources = self.sources(project.id, &draft.recipients).await?;
        let router = match draft.gateway_id {
            Some(id) => Router::only(id),
            None => self.router(project.id).await?,
        };
        let walk = Walk::new(self, project.id, sources, draft.content.clone(), router);
        let mut preview = Preview::default();
        let mut phones: HashSet<String> = HashSet::new();
        // Per language key: recipients, segments, samples taken.
        let mut languages: BTreeMap<String, (i64, i64, usize)> = BTreeMap::new();
        let mut by_gateway: HashMap<i64, i64> = HashMap::new();
        let mut ucs2 = false;
        let mut batches = walk.start(0, 0);
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
                if !phones.insert(m.phone.clone()) {
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
                let entry = match languages.get_mut(&m.language) {
                    Some(e) => e,
                    None => languages.entry(m.language.clone()).or_default(),
                };
                entry.0 += 1;
                entry.1 += m.segments;
                if entry.2 < SAMPLES_PER_LANGUAGE {
                    entry.2 += 1;
                    preview.samples.push(Sample {
                        case_id: m.case_id,
                        name: m.name,
                        phone_number: m.phone,
                        language: m.language,
                        text: m.text,
                        encoding: m.encoding.as_str(),
                        segments: m.segments,
                        missing: m.missing,
                    });
                }
            }
        }
        preview.encoding = if ucs2 { "ucs2" } else { "gsm7" };
        preview.languages = languages
            .into_iter()
            .map(|(language, (recipients, segments, _))| LanguagePreview {
                language,
                recipients,
                segments,
            })
            .collect();
        // Gateways send in parallel: the slowest one sets the time.
        let mut seconds: Option<f64> = None;
        for gateway in self.list_gateways(project.id).await? {
            if let (Some(segments), Some(rate)) =
                (by_gateway.get(&gateway.id), gateway.max_segments_per_second)
            {
                let s = *segments as f64 / rate;
                seconds = Some(seconds.map_or(s, |x: f64| x.max(s)));
            }
        }
        preview.estimated_seconds = seconds;
        Ok(preview)
    }
}
