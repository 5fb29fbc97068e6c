//! `serve --demo`: the demo project, an admin login, 500 realistic cases, a case group, a smart group,
//! made idempotently.

use anyhow::Context;
use casecast_core::gateway::config::GatewayKind;
use casecast_core::identifier::GroupName;
use casecast_core::sheet::Limits;
use casecast_core::{CountryCode, Email, ProjectSlug, Role, TimeZoneName};
use casecast_store::case_groups::Actor;
use casecast_store::cases::CaseFilter;
use casecast_store::gateways::NewGateway;
use casecast_store::membership::Change;
use casecast_store::projects::NewProject;
use casecast_store::{Db, StoreError};

/// The login printed on the console.
pub struct DemoLogin {
    pub email: String,
    pub password: String,
}

const DEMO_ADMIN: &str = "admin@demo.casecast.example";
const CASES: usize = 500;
/// The demo case group: the Gulu participants who are HIV positive.
const DEMO_GROUP: &str = "Gulu HIV+ participants";
/// The demo smart group and its query.
const DEMO_SMART_GROUP: &str = "Intervention arm, open cases";
const DEMO_SMART_QUERY: &str = "study_arm = intervention AND closed = false";

const FIRST: [&str; 24] = [
    "Aber",
    "Akello",
    "Apio",
    "Atim",
    "Auma",
    "Nakato",
    "Namubiru",
    "Nansubuga",
    "Babirye",
    "Kisakye",
    "Achieng",
    "Lamunu",
    "Okello",
    "Opio",
    "Ojok",
    "Odongo",
    "Mukasa",
    "Ssempijja",
    "Kato",
    "Wasswa",
    "Tumusiime",
    "Byaruhanga",
    "Kiggundu",
    "Onen",
];
const GIVEN: [&str; 20] = [
    "Grace",
    "Esther",
    "Sarah",
    "Joan",
    "Brenda",
    "Harriet",
    "Florence",
    "Immaculate",
    "Prossy",
    "Winnie",
    "Joseph",
    "Moses",
    "Patrick",
    "Denis",
    "Robert",
    "Samuel",
    "Ivan",
    "Emmanuel",
    "Geoffrey",
    "Brian",
];
const DISTRICTS: [(&str, &str); 7] = [
    ("Gulu", "ach"),
    ("Kitgum", "ach"),
    ("Lira", "laj"),
    ("Kampala", "lg"),
    ("Jinja", "lg"),
    ("Mbarara", "nyn"),
    ("Arua", "en"),
];
const PREFIXES: [&str; 7] = ["070", "071", "074", "075", "077", "078", "076"];

/// A small deterministic generator, so that the demo cases are the same on every start.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, n: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((self.0 >> 33) % n as u64) as usize
    }
}

/// The demo cases as CSV, imported through the same path as a user's sheet.
fn demo_sheet() -> String {
    let mut rng = Lcg(2026);
    let mut csv = String::from("external_id,name,phone_number,case_type,language_code,closed,district,study_arm,hiv_status,enrolled_on\n");
    for i in 1..=CASES {
        let (district, local_language) = DISTRICTS[rng.next(DISTRICTS.len())];
        let name = format!(
            "{} {}",
            GIVEN[rng.next(GIVEN.len())],
            FIRST[rng.next(FIRST.len())]
        );
        // Every 25th participant has no phone: broadcasts count them as excluded.
        let phone = if i % 25 == 0 {
            String::new()
        } else {
            format!(
                "{}{} {:06}",
                PREFIXES[rng.next(PREFIXES.len())],
                rng.next(10),
                rng.next(1_000_000)
            )
        };
        let language = if rng.next(3) == 0 {
            "en"
        } else {
            local_language
        };
        let arm = ["intervention", "control"][rng.next(2)];
        let status = ["positive", "negative", "negative", "unknown"][rng.next(4)];
        let closed = if i % 40 == 0 { "true" } else { "false" };
        let enrolled = format!("2026-{:02}-{:02}", 1 + rng.next(10), 1 + rng.next(28));
        let prefix = &district[..3].to_uppercase();
        csv.push_str(&format!(
            "{prefix}-{i:04},{name},{phone},participant,{language},{closed},{district},{arm},{status},{enrolled}\n"
        ));
    }
    csv
}

/// Creates what is missing of the demo and resets the demo admin's password (printed once).
pub async fn seed(db: &Db, public_url: &str) -> anyhow::Result<DemoLogin> {
    let project = match db.project_by_slug("demo").await {
        Ok(p) => p,
        Err(StoreError::NotFound(_)) => {
            db.create_project(&NewProject {
                slug: ProjectSlug::parse("demo")?,
                name: "Demo: Gulu HIV study".into(),
                time_zone: TimeZoneName::parse("Africa/Kampala")?,
                country: Some(CountryCode::parse("UG")?),
            })
            .await?
        }
        Err(e) => return Err(e.into()),
    };
    let password = casecast_store::secrets::random_hex(8);
    db.upsert_user(
        &Email::parse(DEMO_ADMIN)?,
        &password,
        project.id,
        Role::Admin,
    )
    .await?;
    let report = casecast_engine::import::import_cases(
        db,
        project.id,
        project.country_code(),
        demo_sheet().into_bytes(),
        "demo.csv",
        Limits::default(),
        &|_| {},
    )
    .await
    .context("importing the demo cases")?;
    anyhow::ensure!(
        report.errors.is_empty(),
        "demo row {} is invalid: {}",
        report.errors[0].row,
        report.errors[0].message
    );
    tracing::info!(
        created = report.created,
        unchanged = report.unchanged,
        "demo cases ready"
    );
    seed_group(db, project.id)
        .await
        .context("creating the demo case group")?;
    seed_smart_group(db, &project)
        .await
        .context("creating the demo smart group")?;
    seed_gateway(db, project.id, public_url)
        .await
        .context("creating the demo log gateway")?;
    seed_survey(db, project.id)
        .await
        .context("creating the demo survey")?;
    seed_keyword(db, &project)
        .await
        .context("creating the demo keyword")?;
    seed_reminder(db, &project)
        .await
        .context("creating the demo reminder rule")?;
    Ok(DemoLogin {
        email: DEMO_ADMIN.to_string(),
        password,
    })
}

/// Gives the demo project a `log` gateway (it sends nothing; it records and logs), unless the
/// project has a gateway already.
async fn seed_gateway(db: &Db, project_id: i64, public_url: &str) -> anyhow::Result<()> {
    if !db.list_gateways(project_id).await?.is_empty() {
        return Ok(());
    }
    let new = NewGateway {
        name: "Demo log gateway".into(),
        kind: GatewayKind::Log,
        config: serde_json::json!({}),
        callback_base_url: public_url.to_string(),
        max_segments_per_second: Some(10.0),
        max_attempts: None,
        prefixes: Vec::new(),
        is_default: true,
    };
    match db.create_gateway(project_id, &new).await {
        // Another process seeding the demo at the same moment made it.
        Ok(_) | Err(StoreError::Conflict { .. }) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// The demo survey: three questions (a number saved to a case property, a choice, a date),
/// with Luganda translations of its texts.
const DEMO_SURVEY: &str = r#"{
  "name": "Clinic visit follow-up",
  "intro": {"*": "Hello from the Gulu HIV study. 3 short questions.",
            "lg": "Gyebale ko okuva mu kunoonyereza kwa Gulu. Ebibuuzo 3."},
  "end_text": {"*": "Thank you. Reply STOP to stop messages.", "lg": "Webale nnyo."},
  "reminders": {"every_minutes": 240, "times": 1},
  "expire_after_minutes": 2880,
  "questions": [
    {"key": "missed_doses", "type": "number", "min": 0, "max": 31,
     "text": {"*": "How many doses did you miss this month?", "lg": "Dozi mmeka z'otomidde mwezi guno?"},
     "case_property": "missed_doses"},
    {"key": "side_effects", "type": "choice",
     "text": {"*": "Any side effects?", "lg": "Olina obuzibu bwonna?"},
     "choices": [
       {"value": "none", "text": {"*": "None", "lg": "Tewali"}, "synonyms": ["no"]},
       {"value": "mild", "text": {"*": "Mild", "lg": "Butono"}},
       {"value": "severe", "text": {"*": "Severe", "lg": "Bungi"}}
     ]},
    {"key": "next_visit", "type": "date", "required": false,
     "text": {"*": "When is your next clinic visit? (DD/MM/YYYY, or SKIP)",
              "lg": "Oddayo ddi ku ddwaliro? (DD/MM/YYYY, oba SKIP)"},
     "case_property": "next_visit"}
  ]
}"#;

/// Creates the demo survey unless the project has a survey of that name.
async fn seed_survey(db: &Db, project_id: i64) -> anyhow::Result<()> {
    let body: serde_json::Value = serde_json::from_str(DEMO_SURVEY)?;
    let survey = casecast_core::survey::Survey::parse(&body)
        .map_err(|e| anyhow::anyhow!("the demo survey is invalid: {e:?}"))?;
    let exists = db
        .list_surveys(project_id)
        .await?
        .iter()
        .any(|s| s.survey.name.to_lowercase() == survey.name.to_lowercase());
    if !exists {
        db.create_survey(project_id, &survey, None).await?;
    }
    Ok(())
}

/// Creates the demo smart group (its members the open cases of study arm B, kept current),
/// unless a group of that name exists.
async fn seed_smart_group(
    db: &Db,
    project: &casecast_store::projects::Project,
) -> anyhow::Result<()> {
    let name = GroupName::parse(DEMO_SMART_GROUP)?;
    if db
        .group_id_by_name(project.id, name.as_str())
        .await?
        .is_some()
    {
        return Ok(());
    }
    let actor = Actor {
        user_id: None,
        via: "cli",
    };
    match casecast_engine::smart_groups::create(
        db,
        &casecast_engine::clock::SystemClock,
        project,
        &name,
        DEMO_SMART_QUERY,
        actor,
    )
    .await
    {
        Ok(group) => {
            tracing::info!(
                group.id = group.id,
                members = group.case_count,
                "demo smart group ready"
            );
            Ok(())
        }
        // Another process seeding the demo at the same moment made it.
        Err(casecast_engine::smart_groups::SaveError::Store(StoreError::Conflict { .. })) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// The demo keyword: `VISIT 2027-01-15` from a participant's phone saves the date as the
/// case's `next_visit` (which the demo reminder rule reads) and confirms it.
const DEMO_KEYWORD: &str = r#"{
    "keyword": "VISIT",
    "fields": ["next_visit"],
    "actions": [
        {"type": "set_properties", "dates": ["next_visit"]},
        {"type": "reply", "text": {
            "*": "Thank you {case.name}: your next visit is on {field.next_visit}. We will remind you two days before.",
            "lg": "Webale {case.name}: olunaku lwo olw'okudda ku dwaliro ye {field.next_visit}."}}
    ],
    "unknown_sender": "reply",
    "unknown_reply": {"*": "This number is not registered with the study. Please call the clinic."}
}"#;

/// The demo reminder rule: two days before each open participant's `next_visit`, at 09:00
/// Kampala time, in the participant's language.
const DEMO_REMINDER: &str = r#"{
    "name": "Visit reminder",
    "case_type": "participant",
    "query": "closed = false",
    "start": {"property": "next_visit", "offset_days": -2},
    "time": "09:00",
    "stop_query": "visit_done = yes",
    "content": {"sms": {
        "*": "Hello {case.name}, your clinic visit is on {case.next_visit}. Reply VISIT and a new date to move it.",
        "lg": "Gyebale {case.name}, olunaku lwo olw'okudda ku dwaliro ye {case.next_visit}."}}
}"#;

/// Gives the demo project its keyword, unless it has one of that word (left as it is).
async fn seed_keyword(db: &Db, project: &casecast_store::projects::Project) -> anyhow::Result<()> {
    let body: serde_json::Value = serde_json::from_str(DEMO_KEYWORD)?;
    let keyword = casecast_core::keyword::Keyword::parse(&body, &[] as &[&str])
        .map_err(|e| anyhow::anyhow!("the demo keyword: {e:?}"))?;
    let exists = db
        .list_keywords(project.id)
        .await?
        .iter()
        .any(|k| k.keyword.key() == keyword.key());
    if exists {
        return Ok(());
    }
    match db.create_keyword(project.id, &keyword, None).await {
        Ok(_) | Err(StoreError::Conflict { .. }) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Gives the demo project its reminder rule, unless it has one of that name; then one demo
/// participant in five with a phone and no `next_visit` gets one in the coming three weeks, so
/// that the rule's upcoming list has something to show. (Two processes seeding the demo at the
/// same moment can both make the rule: rule names are not unique.)
async fn seed_reminder(db: &Db, project: &casecast_store::projects::Project) -> anyhow::Result<()> {
    let body: serde_json::Value = serde_json::from_str(DEMO_REMINDER)?;
    let rule = casecast_core::reminder::ReminderRule::parse_checked(&body)
        .map_err(|e| anyhow::anyhow!("the demo reminder rule: {e:?}"))?;
    let exists = db
        .list_reminders(project.id)
        .await?
        .iter()
        .any(|r| r.rule.name == rule.name);
    if exists {
        return Ok(());
    }
    let today = jiff::Timestamp::now().to_zoned(project.zone()).date();
    // One participant in five of the demo sheet, if the case is still there, has a phone and
    // no next_visit yet: nothing a user wrote is overwritten, no deleted case comes back.
    let chosen: std::collections::HashSet<String> = demo_sheet()
        .lines()
        .skip(1)
        .step_by(5)
        .filter_map(|line| line.split(',').next().map(str::to_string))
        .collect();
    let mut rng = Lcg(19);
    for case in all_cases(db, project.id).await? {
        let wanted = case
            .external_id
            .as_ref()
            .is_some_and(|x| chosen.contains(x))
            && case.phone_number.is_some()
            && !case.properties.contains_key("next_visit");
        if !wanted {
            continue;
        }
        let days = 3 + rng.next(18) as i64;
        let date = today
            .checked_add(jiff::Span::new().days(days))
            .unwrap_or(today);
        let changes = casecast_core::case::CaseChanges {
            properties: [("next_visit".to_string(), Some(date.to_string()))]
                .into_iter()
                .collect(),
            ..Default::default()
        };
        db.update_case(project.id, case.case_id.as_str(), &changes)
            .await
            .context("giving a demo case its next visit")?;
    }
    casecast_engine::reminders::create(db, project.id, &rule, None).await?;
    Ok(())
}

/// Every case of the project (the demo has 500), page by page.
async fn all_cases(db: &Db, project_id: i64) -> anyhow::Result<Vec<casecast_core::case::Case>> {
    let mut all = Vec::new();
    let mut cursor = None;
    loop {
        let page = db
            .list_cases(project_id, &CaseFilter::default(), 1000, cursor)
            .await?;
        all.extend(page.items);
        match page.next_cursor.and_then(|n| n.parse().ok()) {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    Ok(all)
}

/// Creates the demo group with its members, unless a group of that name exists (then it is
/// left as it is, with whatever members it has been given since).
async fn seed_group(db: &Db, project_id: i64) -> anyhow::Result<()> {
    let name = GroupName::parse(DEMO_GROUP)?;
    let exists = db
        .list_groups(project_id)
        .await?
        .iter()
        .any(|g| g.name.to_lowercase() == name.key());
    if exists {
        return Ok(());
    }
    let actor = Actor {
        user_id: None,
        via: "cli",
    };
    let group = match db.create_group(project_id, &name, actor).await {
        Ok(g) => g,
        // Another process seeding the demo at the same moment made it.
        Err(StoreError::Conflict { .. }) => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    let members: Vec<String> = all_cases(db, project_id)
        .await?
        .into_iter()
        .filter_map(|c| {
            let wanted = c.properties.get("district").map(String::as_str) == Some("Gulu")
                && c.properties.get("hiv_status").map(String::as_str) == Some("positive");
            c.external_id.filter(|_| wanted)
        })
        .collect();
    let results = db
        .change_members(project_id, group.id, Change::Add, &members, actor)
        .await?;
    tracing::info!(
        group.id = group.id,
        members = results.iter().filter(|r| r.case_id.is_some()).count(),
        "demo case group ready"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_survey_is_valid() {
        let body: serde_json::Value = serde_json::from_str(DEMO_SURVEY).unwrap();
        let survey = casecast_core::survey::Survey::parse(&body).unwrap();
        assert_eq!(survey.questions.len(), 3);
        assert_eq!(survey.languages(), vec!["lg".to_string()]);
    }

    #[test]
    fn the_demo_keyword_and_reminder_rule_are_valid() {
        let body: serde_json::Value = serde_json::from_str(DEMO_KEYWORD).unwrap();
        let keyword = casecast_core::keyword::Keyword::parse(&body, &["STOP", "START"]).unwrap();
        assert_eq!(keyword.key(), "visit");
        let body: serde_json::Value = serde_json::from_str(DEMO_REMINDER).unwrap();
        let rule = casecast_core::reminder::ReminderRule::parse_checked(&body).unwrap();
        assert_eq!(rule.name, "Visit reminder");
    }

    #[test]
    fn demo_sheet_is_stable_and_sized() {
        let a = demo_sheet();
        assert_eq!(a, demo_sheet());
        assert_eq!(a.lines().count(), CASES + 1);
        assert!(a.contains("GUL-") && a.contains(",participant,"));
        assert!(
            a.lines()
                .any(|l| l.contains(",Gulu,") && l.contains(",positive,")),
            "the demo group has members"
        );
    }
}
