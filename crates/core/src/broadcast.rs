//! A broadcast as the user writes it (issue 5): its name, recipients, texts and schedule, read
//! from the CONTRACT's JSON body and checked field by field before anything is stored.

use serde::Serialize;
use serde_json::{json, Map, Value};

use crate::case::FieldError;
use crate::recurrence::Schedule;
use crate::survey::Survey;
use crate::template::Content;

/// Longest broadcast name, in characters.
pub const MAX_NAME_CHARS: usize = 200;
/// Most case groups one broadcast may go to.
pub const MAX_GROUPS: usize = 50;
/// Most individually chosen cases one broadcast may go to (larger audiences belong in a group).
pub const MAX_CASES: usize = 1000;

/// Who a broadcast goes to: case groups (read at each occurrence) and individual cases.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Recipients {
    /// Group ids, each once, in the order given.
    pub case_groups: Vec<i64>,
    /// Case IDs, each once, in the order given.
    pub cases: Vec<String>,
}

/// What a broadcast sends: SMS texts, or a survey (each recipient gets a session: the intro and
/// the first question, then the rest as replies come).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BroadcastContent {
    /// `{"sms": {"*": "text", "<language>": "text"}}`.
    Sms(Content),
    /// `{"survey": id}`: the id of one of the project's surveys (checked where the broadcast is
    /// created, not here).
    Survey(i64),
}

impl BroadcastContent {
    /// The SMS texts, if the broadcast sends texts.
    pub fn sms(&self) -> Option<&Content> {
        match self {
            BroadcastContent::Sms(c) => Some(c),
            BroadcastContent::Survey(_) => None,
        }
    }

    /// The survey's id, if the broadcast sends a survey.
    pub fn survey(&self) -> Option<i64> {
        match self {
            BroadcastContent::Survey(id) => Some(*id),
            BroadcastContent::Sms(_) => None,
        }
    }
}

/// A survey broadcast's texts as the recipient walk renders them: per language of the survey,
/// the first message a session sends ([`Survey::first_message`]: intro and first question),
/// chosen for a case by its language code as SMS texts are. Plain text: a survey's texts have
/// no placeholders.
pub fn survey_content(survey: &Survey) -> Content {
    Content::literal(
        &survey.first_message(None),
        survey.languages().into_iter().map(|code| {
            let text = survey.first_message(Some(&code));
            (code, text)
        }),
    )
}

/// A checked broadcast body: what `POST /broadcasts` and its preview take.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Draft {
    pub name: String,
    pub recipients: Recipients,
    pub content: BroadcastContent,
    pub schedule: Schedule,
    pub gateway_id: Option<i64>,
}

impl Draft {
    /// Reads a broadcast body, naming the first field at fault (`content.sms.sw`,
    /// `schedule.weekdays`, `recipients.case_groups`).
    pub fn parse(body: &Value) -> Result<Draft, FieldError> {
        let obj = body
            .as_object()
            .ok_or_else(|| FieldError::new("body", "send a JSON object"))?;
        for key in obj.keys() {
            if !["name", "recipients", "content", "schedule", "gateway_id"].contains(&key.as_str())
            {
                return Err(FieldError::new(key, "is not a field of a broadcast"));
            }
        }
        let name = match obj.get("name") {
            Some(Value::String(s)) => parse_name(s)?,
            None | Some(Value::Null) => {
                return Err(FieldError::new("name", "give the broadcast a name"))
            }
            Some(_) => return Err(FieldError::new("name", "must be text")),
        };
        let recipients = parse_recipients(obj.get("recipients"))?;
        let content = parse_content(obj.get("content"))?;
        let schedule = match obj.get("schedule") {
            None | Some(Value::Null) => Schedule::Immediate,
            Some(v) => Schedule::parse(v)
                .map_err(|e| FieldError::new(format!("schedule.{}", e.field), e.message.clone()))?,
        };
        let gateway_id = match obj.get("gateway_id") {
            None | Some(Value::Null) => None,
            Some(v) => Some(
                v.as_i64()
                    .filter(|id| *id > 0)
                    .ok_or_else(|| FieldError::new("gateway_id", "must be a gateway's id"))?,
            ),
        };
        Ok(Draft {
            name,
            recipients,
            content,
            schedule,
            gateway_id,
        })
    }
}

/// Checks a broadcast name: 1 to 200 characters once trimmed, no control characters.
pub fn parse_name(name: &str) -> Result<String, FieldError> {
    let name = name.trim();
    if name.is_empty() {
        return Err(FieldError::new("name", "give the broadcast a name"));
    }
    let n = name.chars().count();
    if n > MAX_NAME_CHARS {
        return Err(FieldError::new(
            "name",
            format!("is {n} characters; a name may have at most {MAX_NAME_CHARS}"),
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(FieldError::new(
            "name",
            "must not contain control characters",
        ));
    }
    Ok(name.to_string())
}

fn parse_recipients(value: Option<&Value>) -> Result<Recipients, FieldError> {
    let obj = match value {
        Some(Value::Object(o)) => o,
        None | Some(Value::Null) => {
            return Err(FieldError::new(
                "recipients",
                "choose at least one case group or case",
            ))
        }
        Some(_) => {
            return Err(FieldError::new(
                "recipients",
                "must be {\"case_groups\": [id], \"cases\": [case_id]}",
            ))
        }
    };
    for key in obj.keys() {
        if key != "case_groups" && key != "cases" {
            return Err(FieldError::new(
                format!("recipients.{key}"),
                "is not a kind of recipient (use case_groups or cases)",
            ));
        }
    }
    let list = |key: &str| -> Result<Vec<Value>, FieldError> {
        match obj.get(key) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Array(a)) => Ok(a.clone()),
            Some(_) => Err(FieldError::new(
                format!("recipients.{key}"),
                "must be a list",
            )),
        }
    };
    let mut recipients = Recipients::default();
    let groups = list("case_groups")?;
    if groups.len() > MAX_GROUPS {
        return Err(FieldError::new(
            "recipients.case_groups",
            format!(
                "{} groups given; a broadcast may go to at most {MAX_GROUPS}",
                groups.len()
            ),
        ));
    }
    for (i, g) in groups.iter().enumerate() {
        // Ids come as numbers from the API and as text from forms.
        let id = g
            .as_i64()
            .or_else(|| g.as_str().and_then(|s| s.trim().parse().ok()))
            .filter(|id| *id > 0)
            .ok_or_else(|| {
                FieldError::new(
                    format!("recipients.case_groups[{i}]"),
                    "must be a case group's id",
                )
            })?;
        if !recipients.case_groups.contains(&id) {
            recipients.case_groups.push(id);
        }
    }
    let cases = list("cases")?;
    if cases.len() > MAX_CASES {
        return Err(FieldError::new(
            "recipients.cases",
            format!(
                "{} cases given; a broadcast may name at most {MAX_CASES} (put more in a case group)",
                cases.len()
            ),
        ));
    }
    for (i, c) in cases.iter().enumerate() {
        let id = c
            .as_str()
            .map(str::trim)
            .filter(|s| !s.is_empty() && s.len() <= 255)
            .ok_or_else(|| {
                FieldError::new(format!("recipients.cases[{i}]"), "must be a case ID")
            })?;
        if !recipients.cases.iter().any(|x| x == id) {
            recipients.cases.push(id.to_string());
        }
    }
    if recipients.case_groups.is_empty() && recipients.cases.is_empty() {
        return Err(FieldError::new(
            "recipients",
            "choose at least one case group or case",
        ));
    }
    Ok(recipients)
}

const CONTENT_SHAPE: &str =
    "must be {\"sms\": {\"*\": \"text\", \"<language>\": \"text\"}} or {\"survey\": id}";

/// Reads a CONTRACT `content` object (`None` when absent), naming the field at fault
/// (`content.sms.sw`, `content.survey`); reminders take the same content.
pub fn parse_content(value: Option<&Value>) -> Result<BroadcastContent, FieldError> {
    let obj = match value {
        Some(Value::Object(o)) => o,
        None | Some(Value::Null) => return Err(FieldError::new("content", "write the message")),
        Some(_) => return Err(FieldError::new("content", CONTENT_SHAPE)),
    };
    if obj.len() != 1 {
        return Err(FieldError::new(
            "content",
            format!("{CONTENT_SHAPE}: send either an SMS message or a survey"),
        ));
    }
    if let Some(id) = obj.get("survey") {
        // Ids come as numbers from the API and as text from forms.
        return id
            .as_i64()
            .or_else(|| id.as_str().and_then(|s| s.trim().parse().ok()))
            .filter(|id| *id > 0)
            .map(BroadcastContent::Survey)
            .ok_or_else(|| {
                FieldError::new(
                    "content.survey",
                    "must be a survey's id (a positive integer)",
                )
            });
    }
    let texts = match obj.get("sms") {
        Some(Value::Object(map)) => map,
        Some(Value::String(text)) => {
            return Content::parse([("*", text.as_str())])
                .map(BroadcastContent::Sms)
                .map_err(content_error)
        }
        _ => return Err(FieldError::new("content", CONTENT_SHAPE)),
    };
    let mut pairs = Vec::with_capacity(texts.len());
    for (language, text) in texts {
        let text = text
            .as_str()
            .ok_or_else(|| FieldError::new(format!("content.sms.{language}"), "must be text"))?;
        // A translation is chosen by a case's language code, which has the shape
        // `case::parse_language_code` allows: any other key (`Acholi` for `ach`) would reach
        // nobody, so a new broadcast refuses it. (Stored broadcasts are read as they were.)
        let key = language.trim();
        if key != crate::template::DEFAULT_KEY && crate::case::parse_language_code(key).is_err() {
            return Err(FieldError::new(
                format!("content.sms.{language}"),
                format!(
                    "'{key}' is not a language code, so no case would get this translation:                      cases have codes of 2 or 3 letters such as en, sw or ach (with a region                      if needed: pt-BR)"
                ),
            ));
        }
        pairs.push((language.as_str(), text));
    }
    Content::parse(pairs)
        .map(BroadcastContent::Sms)
        .map_err(content_error)
}

fn content_error(e: crate::template::ContentError) -> FieldError {
    let field = match e.language() {
        Some(language) => format!("content.sms.{language}"),
        None => "content.sms".to_string(),
    };
    FieldError::new(field, e.to_string())
}

/// The CONTRACT `content` object of a checked content: `{"sms": {"*": …, "<code>": …}}` or
/// `{"survey": id}`.
pub fn content_json(content: &BroadcastContent) -> Value {
    match content {
        BroadcastContent::Sms(content) => {
            let texts: Map<String, Value> = content
                .templates()
                .map(|(k, t)| (k.to_string(), Value::String(t.as_str().to_string())))
                .collect();
            json!({ "sms": texts })
        }
        BroadcastContent::Survey(id) => json!({ "survey": id }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(extra: Value) -> Value {
        let mut b = json!({
            "name": "Side effect notice",
            "recipients": {"case_groups": [3], "cases": []},
            "content": {"sms": {"*": "Hello {case.name}", "sw": "Habari {case.name}"}},
            "schedule": {"kind": "immediate"},
        });
        for (k, v) in extra.as_object().unwrap() {
            b[k] = v.clone();
        }
        b
    }

    #[test]
    fn reads_a_whole_body_and_writes_its_content_back() {
        let d = Draft::parse(&body(json!({}))).unwrap();
        assert_eq!(d.name, "Side effect notice");
        assert_eq!(d.recipients.case_groups, vec![3]);
        assert_eq!(d.schedule, Schedule::Immediate);
        assert_eq!(
            content_json(&d.content),
            json!({"sms": {"*": "Hello {case.name}", "sw": "Habari {case.name}"}})
        );
        assert!(d.content.survey().is_none());
        assert_eq!(
            d.content.sms().map(|c| c.default_template().as_str()),
            Some("Hello {case.name}")
        );
    }

    #[test]
    fn a_translation_key_must_be_a_code_a_case_can_have() {
        let content = |sms: Value| Draft::parse(&body(json!({"content": {"sms": sms}})));
        let e = content(json!({"*": "Hi", "Acholi": "Apwoyo"})).unwrap_err();
        assert_eq!(e.field, "content.sms.Acholi");
        assert!(
            e.message.contains("'Acholi' is not a language code") && e.message.contains("ach"),
            "{}",
            e.message
        );
        assert!(content(json!({"*": "Hi", "english": "Hi"})).is_err());
        for ok in ["ach", "en", "pt-BR", "SW"] {
            assert!(content(json!({"*": "Hi", ok: "x"})).is_ok(), "{ok}");
        }
    }

    #[test]
    fn names_the_field_at_fault() {
        let field = |extra: Value| Draft::parse(&body(extra)).unwrap_err().field;
        assert_eq!(field(json!({"name": "  "})), "name");
        assert_eq!(field(json!({"name": "x".repeat(201)})), "name");
        assert_eq!(field(json!({"recipients": {}})), "recipients");
        assert_eq!(
            field(json!({"recipients": {"groups": [1]}})),
            "recipients.groups"
        );
        assert_eq!(
            field(json!({"recipients": {"case_groups": ["x"]}})),
            "recipients.case_groups[0]"
        );
        assert_eq!(
            field(json!({"content": {"sms": {"sw": "hi"}}})),
            "content.sms"
        );
        assert_eq!(
            field(json!({"content": {"sms": {"*": "hi {case.}"}}})),
            "content.sms.*"
        );
        assert_eq!(
            field(json!({"content": {"survey": "s1"}})),
            "content.survey"
        );
        assert_eq!(field(json!({"content": {"survey": 0}})), "content.survey");
        assert_eq!(field(json!({"content": {"survey": -3}})), "content.survey");
        assert_eq!(field(json!({"content": {"survey": 1.5}})), "content.survey");
        assert_eq!(
            field(json!({"content": {"survey": 1, "sms": "hi"}})),
            "content"
        );
        assert_eq!(
            field(
                json!({"schedule": {"kind": "weekly", "start_date": "2026-12-01", "time": "09:00", "every": 1, "weekdays": []}})
            ),
            "schedule.weekdays"
        );
        assert_eq!(field(json!({"gateway_id": "x"})), "gateway_id");
        assert_eq!(field(json!({"colour": 1})), "colour");
    }

    #[test]
    fn a_malformed_placeholder_is_reported_with_its_position() {
        let e = Draft::parse(&body(
            json!({"content": {"sms": {"*": "Hi {case.name", "sw": "x"}}}),
        ))
        .unwrap_err();
        assert_eq!(e.field, "content.sms.*");
        assert!(e.message.contains("column"), "{}", e.message);
    }

    #[test]
    fn repeated_recipients_count_once_and_limits_hold() {
        let d = Draft::parse(&body(
            json!({"recipients": {"case_groups": [3, "3", 4], "cases": ["a", " a "]}}),
        ))
        .unwrap();
        assert_eq!(d.recipients.case_groups, vec![3, 4]);
        assert_eq!(d.recipients.cases, vec!["a".to_string()]);
        let many: Vec<i64> = (1..=51).collect();
        assert!(Draft::parse(&body(json!({"recipients": {"case_groups": many}}))).is_err());
        let cases: Vec<String> = (0..1001).map(|i| format!("c{i}")).collect();
        assert!(Draft::parse(&body(json!({"recipients": {"cases": cases}}))).is_err());
    }

    #[test]
    fn a_survey_is_read_by_its_id_and_written_back() {
        let content = |v: Value| Draft::parse(&body(json!({"content": v}))).map(|d| d.content);
        assert_eq!(
            content(json!({"survey": 7})).unwrap(),
            BroadcastContent::Survey(7)
        );
        // A form sends the id as text.
        assert_eq!(
            content(json!({"survey": " 12 "})).unwrap(),
            BroadcastContent::Survey(12)
        );
        let c = content(json!({"survey": 7})).unwrap();
        assert_eq!(content_json(&c), json!({"survey": 7}));
        assert_eq!(c.survey(), Some(7));
        assert!(c.sms().is_none());
        let e = content(json!({"survey": "seven"})).unwrap_err();
        assert!(e.message.contains("survey's id"), "{}", e.message);
        assert!(content(json!({"survey": null})).is_err());
    }

    #[test]
    fn a_survey_s_first_message_is_chosen_per_language_as_the_session_sends_it() {
        let survey_body = || {
            json!({
                "name": "ANC",
                "intro": {"*": "Hello, a few questions.", "sw": "Habari, maswali machache."},
                "questions": [
                    {"key": "visits", "type": "number", "text": {"*": "How many visits?", "sw": "Mara ngapi?"}},
                    {"key": "ok", "type": "yes_no", "text": "Well?"}
                ]
            })
        };
        let survey = Survey::parse(&survey_body()).unwrap();
        let content = survey_content(&survey);
        let keys: Vec<&str> = content.templates().map(|(k, _)| k).collect();
        assert_eq!(keys, vec!["*", "sw"]);
        for code in [
            None,
            Some("sw"),
            Some("SW"),
            Some("sw-KE"),
            Some("fr"),
            Some(""),
        ] {
            let rendered = content.for_language(code).render_with(|_| None);
            assert_eq!(rendered.text, survey.first_message(code), "{code:?}");
            assert!(rendered.missing.is_empty());
        }
        assert!(content
            .for_language(Some("sw"))
            .as_str()
            .starts_with("Habari, maswali machache."));
        // Braces in a survey's text are sent as written.
        let mut body = survey_body();
        body["intro"] = json!("Hello {case.name}}");
        let survey = Survey::parse(&body).unwrap();
        let text = survey_content(&survey)
            .for_language(None)
            .render_with(|_| Some("x"))
            .text;
        assert!(text.starts_with("Hello {case.name}}"), "{text}");
    }

    #[test]
    fn a_missing_schedule_means_now() {
        let mut b = body(json!({}));
        b.as_object_mut().unwrap().remove("schedule");
        assert_eq!(Draft::parse(&b).unwrap().schedule, Schedule::Immediate);
    }
}
