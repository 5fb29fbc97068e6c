use proptest::prelude::*;
use serde_json::json;

use super::*;
use crate::case::Case;
use crate::ids::CaseId;
use crate::opt_out;
use crate::template::Placeholder;

const RESERVED: [&str; 3] = ["STOP", "Simama", "START"];

/// A keyword that registers: two fields, create_case for unknown senders, three actions.
fn reg_body() -> Value {
    json!({
        "keyword": "Reg",
        "fields": ["name", "birth_date"],
        "actions": [
            {"type": "set_properties"},
            {"type": "add_to_group", "case_group_id": 4},
            {"type": "reply", "text": {"*": "Welcome {field.name}, born {field.birth_date} ({case.district})",
                                        "sw": "Karibu {field.name}"}}
        ],
        "override_open_survey": true,
        "unknown_sender": "create_case",
        "case_type": "mother"
    })
}

fn parse(body: &Value) -> Result<Keyword, Vec<FieldError>> {
    Keyword::parse(body, &RESERVED)
}

fn keyword(body: Value) -> Keyword {
    parse(&body).unwrap_or_else(|e| panic!("{body}: {e:?}"))
}

/// The fields and messages of the problems after `change` is applied to the REG body.
fn problems(change: impl FnOnce(&mut Value)) -> Vec<(String, String)> {
    let mut b = reg_body();
    change(&mut b);
    parse(&b)
        .expect_err("should be refused")
        .into_iter()
        .map(|e| (e.field, e.message))
        .collect()
}

#[test]
fn reads_a_keyword_and_writes_it_back_in_the_contract_shape() {
    let k = keyword(reg_body());
    assert_eq!(k.keyword, "Reg", "stored as typed");
    assert_eq!(k.key(), "reg");
    assert_eq!(k.fields, ["name", "birth_date"]);
    assert_eq!(k.actions.len(), 3);
    assert_eq!(k.actions[0], Action::SetProperties { dates: vec![] });
    assert_eq!(k.actions[1], Action::AddToGroup { case_group_id: 4 });
    assert!(k.override_open_survey);
    assert_eq!(k.unknown_sender, UnknownSender::CreateCase);
    assert_eq!(k.case_type, "mother");
    assert_eq!(k.unknown_reply, None);
    let out = k.to_json();
    assert_eq!(
        out,
        json!({
            "keyword": "Reg",
            "fields": ["name", "birth_date"],
            "actions": [
                {"type": "set_properties", "dates": []},
                {"type": "add_to_group", "case_group_id": 4},
                {"type": "reply", "text": {"*": "Welcome {field.name}, born {field.birth_date} ({case.district})",
                                            "sw": "Karibu {field.name}"}}
            ],
            "override_open_survey": true,
            "unknown_sender": "create_case",
            "unknown_reply": null,
            "case_type": "mother"
        })
    );
    assert_eq!(Keyword::from_stored(&out).unwrap(), k);
    let with_id = keyword_json(9, &k);
    assert_eq!(with_id["id"], 9);
    assert_eq!(with_id["keyword"], "Reg");
    // The API's own fields are ignored.
    let mut b = reg_body();
    b["id"] = json!(3);
    b["created_at"] = json!("2026-01-01T00:00:00Z");
    assert_eq!(keyword(b), k);
}

#[test]
fn defaults_and_other_shapes() {
    let k = keyword(
        json!({"keyword": "help", "actions": [{"type": "reply", "text": "Call 0800 100 100"}]}),
    );
    assert!(k.fields.is_empty());
    assert!(!k.override_open_survey);
    assert_eq!(k.unknown_sender, UnknownSender::Ignore);
    assert_eq!(k.case_type, DEFAULT_CASE_TYPE);
    let Action::Reply { text } = &k.actions[0] else {
        panic!("{:?}", k.actions)
    };
    assert_eq!(text.for_language(Some("sw")).as_str(), "Call 0800 100 100");
    // Fields as one string (a form), ids as text, blank optional texts.
    let k = keyword(json!({
        "keyword": "VISIT", "fields": " visit_no, note ",
        "actions": [{"type": "start_survey", "survey_id": "12"},
                    {"type": "remove_from_group", "case_group_id": 3},
                    {"type": "set_properties", "dates": null}],
        "unknown_sender": "ignore", "unknown_reply": " ", "case_type": "",
    }));
    assert_eq!(k.fields, ["visit_no", "note"]);
    assert_eq!(k.actions[0], Action::StartSurvey { survey_id: 12 });
    assert_eq!(k.actions[1], Action::RemoveFromGroup { case_group_id: 3 });
    assert_eq!(k.unknown_reply, None);
    assert_eq!(k.case_type, "contact");
    // Unicode keywords, marks included; the limit counts characters.
    for word in [
        "Jiandikishe",
        "ПОМОЩЬ",
        "पंजीकरण",
        "ลงทะเบียน",
        "登録",
        "Ñ1",
        &"é".repeat(20),
    ] {
        let k = keyword(json!({"keyword": word, "actions": [{"type": "reply", "text": "ok"}]}));
        assert_eq!(k.keyword, word);
    }
    // unknown_reply kept (checked) whatever unknown_sender says, so a form switching loses nothing.
    let k = keyword(
        json!({"keyword": "J", "fields": ["clinic"], "unknown_reply": {"*": "Register first: {field.clinic}"},
                           "actions": [{"type": "reply", "text": "ok"}]}),
    );
    assert!(k.unknown_reply.is_some());
}

#[test]
fn each_keyword_problem_names_the_field() {
    let cases: Vec<(Value, &str)> = vec![
        (json!(null), "give the keyword"),
        (json!(""), "give the keyword"),
        (json!("  "), "give the keyword"),
        (json!(5), "must be text"),
        (json!("REG NOW"), "must be one word"),
        (json!("#REG"), "leave out the '#': write REG"),
        (json!("REG!"), "may only contain letters and digits"),
        (json!("RE-G"), "may only contain letters and digits"),
        (json!("RE_G"), "may only contain letters and digits"),
        (json!("👍"), "may only contain letters and digits"),
        (json!("\u{301}A"), "may only contain letters and digits"),
        (
            json!("ABCDEFGHIJKLMNOPQRSTU"),
            "is 21 characters; a keyword may have at most 20",
        ),
        (json!("stop"), "stop or start words"),
        (json!("SIMAMA"), "stop or start words"),
        (json!("Start"), "stop or start words"),
    ];
    for (word, want) in cases {
        let e = problems(|b| b["keyword"] = word.clone());
        assert_eq!(e.len(), 1, "{word}: {e:?}");
        assert_eq!(e[0].0, "keyword", "{word}");
        assert!(e[0].1.contains(want), "{word}: {}", e[0].1);
    }
    // Reserved words are the caller's: STOP is fine where it is not one.
    let mut b = reg_body();
    b["keyword"] = json!("STOP");
    assert!(Keyword::parse(&b, &[] as &[&str]).is_ok());
    let defaults = opt_out::Keywords::default();
    let reserved: Vec<&str> = defaults
        .stop
        .iter()
        .chain(&defaults.start)
        .map(String::as_str)
        .collect();
    b["keyword"] = json!("unsubscribe");
    assert_eq!(
        Keyword::parse(&b, &reserved).unwrap_err()[0].field,
        "keyword"
    );
}

#[test]
fn every_problem_is_listed_with_its_path() {
    // Table: (change to the REG body, expected (field, part of the message) in order).
    type Change = Box<dyn Fn(&mut Value)>;
    let table: Vec<(Change, Vec<(&str, &str)>)> = vec![
        (
            Box::new(|b| b["colour"] = json!(1)),
            vec![("colour", "is not a field of a keyword")],
        ),
        (
            Box::new(|b| b["fields"] = json!(3)),
            vec![("fields", "must be a list of property names")],
        ),
        (
            Box::new(|b| {
                b["fields"] = json!(["name", "birth date"]);
                b["actions"][0]["dates"] = json!(["birth date", "x"]);
            }),
            vec![("fields[1]", "a property name has")],
        ),
        (
            Box::new(|b| b["fields"] = json!(["name", 3, "birth date", "Name", "case_id", "NAME"])),
            vec![
                ("fields[1]", "must be text"),
                ("fields[2]", "'birth date': a property name has 1 to 64"),
                ("fields[3]", "write name in lower case"),
                ("fields[4]", "'case_id' is a standard case field"),
                ("fields[5]", "write name in lower case"),
            ],
        ),
        // Fields are fine: a placeholder naming none is an error.
        (
            Box::new(|b| b["fields"] = json!(["name"])),
            vec![(
                "actions[2].text.*",
                "`{field.birth_date}` names no field of this keyword",
            )],
        ),
        (
            Box::new(|b| b["fields"] = json!(["name", "birth_date", "Birth_Date"])),
            vec![(
                "fields[2]",
                "'Birth_Date' is also fields[1] (field names ignore case)",
            )],
        ),
        (
            Box::new(|b| b["fields"] = json!((0..21).map(|i| format!("f{i}")).collect::<Vec<_>>())),
            vec![("fields", "21 fields; a keyword may have at most 20")],
        ),
        (
            Box::new(|b| b["override_open_survey"] = json!("yes")),
            vec![("override_open_survey", "true or false")],
        ),
        (
            Box::new(|b| b["unknown_sender"] = json!("create")),
            vec![("unknown_sender", "ignore, reply or create_case")],
        ),
        (
            Box::new(|b| b["unknown_sender"] = json!("reply")),
            vec![(
                "unknown_reply",
                "write the reply sent to a number with no case",
            )],
        ),
        (
            Box::new(|b| {
                b["unknown_sender"] = json!("reply");
                b["unknown_reply"] = json!("");
            }),
            vec![("unknown_reply", "write the reply")],
        ),
        (
            Box::new(|b| {
                b["unknown_reply"] = json!({"*": "Hi {case.name}", "sw": "Habari {field.nam}"})
            }),
            vec![("unknown_reply.sw", "did you mean `{field.name}`?")],
        ),
        (
            Box::new(|b| {
                b["unknown_reply"] = json!({"*": "Hi {case.name}", "sw": "Habari {case.district}"})
            }),
            vec![
                ("unknown_reply.*", "{case.name} would be empty"),
                ("unknown_reply.sw", "{case.district} would be empty"),
            ],
        ),
        (
            Box::new(|b| b["unknown_reply"] = json!([1])),
            vec![("unknown_reply", "must be text or")],
        ),
        (
            Box::new(|b| b["case_type"] = json!("new mother")),
            vec![("case_type", "may only have letters")],
        ),
        (
            Box::new(|b| b["case_type"] = json!(7)),
            vec![("case_type", "must be text")],
        ),
        (
            Box::new(|b| b["actions"] = json!([])),
            vec![("actions", "add at least one action")],
        ),
        (
            Box::new(|b| {
                b.as_object_mut().unwrap().remove("actions");
            }),
            vec![("actions", "add at least one action")],
        ),
        (
            Box::new(|b| b["actions"] = json!({"type": "reply"})),
            vec![("actions", "must be a list")],
        ),
        (
            Box::new(|b| b["actions"] = json!(vec![json!({"type": "reply", "text": "x"}); 11])),
            vec![("actions", "11 actions; a keyword may have at most 10")],
        ),
        (
            Box::new(|b| b["actions"][1] = json!("reply")),
            vec![("actions[1]", "must be an action")],
        ),
        (
            Box::new(|b| b["actions"][1] = json!({"type": "send"})),
            vec![("actions[1].type", "must be reply, start_survey")],
        ),
        (
            Box::new(|b| b["actions"][1] = json!({"case_group_id": 4})),
            vec![("actions[1].type", "must be reply")],
        ),
        (
            Box::new(|b| b["actions"][1]["survey_id"] = json!(2)),
            vec![(
                "actions[1].survey_id",
                "is not a field of this action (add_to_group takes case_group_id)",
            )],
        ),
        (
            Box::new(|b| b["actions"][1] = json!({"type": "start_survey"})),
            vec![("actions[1].survey_id", "must be a survey's id")],
        ),
        (
            Box::new(|b| b["actions"][1] = json!({"type": "start_survey", "survey_id": 0})),
            vec![("actions[1].survey_id", "must be a survey's id")],
        ),
        (
            Box::new(|b| b["actions"][1] = json!({"type": "start_survey", "survey_id": "x"})),
            vec![("actions[1].survey_id", "must be a survey's id")],
        ),
        (
            Box::new(|b| b["actions"][1]["case_group_id"] = json!(-4)),
            vec![("actions[1].case_group_id", "must be a case group's id")],
        ),
        (
            Box::new(|b| b["actions"][1] = json!({"type": "remove_from_group"})),
            vec![("actions[1].case_group_id", "must be a case group's id")],
        ),
        (
            Box::new(|b| b["actions"][2] = json!({"type": "reply"})),
            vec![("actions[2].text", "write the reply")],
        ),
        (
            Box::new(|b| b["actions"][2]["text"] = json!(["hi"])),
            vec![("actions[2].text", "must be text or")],
        ),
        (
            Box::new(|b| b["actions"][2]["text"] = json!({"sw": "Karibu"})),
            vec![("actions[2].text", "needs a default text")],
        ),
        (
            Box::new(|b| b["actions"][2]["text"]["sw"] = json!("  ")),
            vec![("actions[2].text.sw", "the text is empty")],
        ),
        (
            Box::new(|b| b["actions"][2]["text"]["sw"] = json!(3)),
            vec![("actions[2].text.sw", "must be text")],
        ),
        (
            Box::new(|b| b["actions"][2]["text"]["Swahili"] = json!("x")),
            vec![("actions[2].text.Swahili", "is not a language code")],
        ),
        (
            Box::new(|b| b["actions"][2]["text"]["SW"] = json!("x")),
            vec![("actions[2].text.sw", "given twice")],
        ),
        (
            Box::new(|b| b["actions"][2]["text"]["*"] = json!("Hi {case.}")),
            vec![("actions[2].text.*", "has no property name")],
        ),
        (
            Box::new(|b| b["actions"][2]["text"]["*"] = json!("Hi {field.birthdate}")),
            vec![("actions[2].text.*", "did you mean `{field.birth_date}`?")],
        ),
        (
            Box::new(|b| b["actions"][2]["text"]["*"] = json!("Hi {name}")),
            vec![(
                "actions[2].text.*",
                "`{name}` names no field: did you mean `{field.name}`?",
            )],
        ),
        (
            Box::new(|b| b["actions"][2]["text"]["*"] = json!("Hi {district}")),
            vec![("actions[2].text.*", "write `{case.district}`")],
        ),
        (
            Box::new(|b| b["actions"][2]["text"]["*"] = json!("x".repeat(1531))),
            vec![("actions[2].text.*", "at most 1530")],
        ),
        (
            Box::new(|b| {
                b["actions"][0]["dates"] = json!(["name", "village", "birth_date", "birth_date", 4])
            }),
            vec![
                ("actions[0].dates[0]", "name is the case's name, not a date"),
                (
                    "actions[0].dates[1]",
                    "'village' is not one of the keyword's fields",
                ),
                ("actions[0].dates[3]", "'birth_date' is listed twice"),
                ("actions[0].dates[4]", "must be one of the keyword's fields"),
            ],
        ),
        (
            Box::new(|b| b["actions"][0]["dates"] = json!("birth_date")),
            vec![("actions[0].dates", "must be a list")],
        ),
        (
            Box::new(|b| {
                b["actions"][0]["text"] = json!("x");
            }),
            vec![(
                "actions[0].text",
                "is not a field of this action (set_properties takes dates)",
            )],
        ),
        (
            Box::new(|b| {
                b["actions"][1] = json!({"type": "set_properties"});
            }),
            vec![("actions[1]", "actions[0] already sets the fields")],
        ),
        (
            Box::new(|b| {
                b["actions"][0] = json!({"type": "remove_from_group", "case_group_id": "4"});
            }),
            vec![(
                "actions[1].case_group_id",
                "actions[0] already adds to or removes from group 4",
            )],
        ),
        (
            Box::new(|b| {
                b["actions"] = json!([{"type": "start_survey", "survey_id": 1}, {"type": "start_survey", "survey_id": 2}]);
            }),
            vec![("actions[1]", "actions[0] already starts a survey")],
        ),
        (
            Box::new(|b| {
                b["fields"] = json!([]);
                b["actions"].as_array_mut().unwrap().pop();
            }),
            vec![("actions[0]", "set_properties needs fields")],
        ),
        // Several problems at once, each reported, in the body's order.
        (
            Box::new(|b| {
                b["keyword"] = json!("R G");
                b["case_type"] = json!("a b");
                b["actions"][1]["case_group_id"] = json!(null);
                b["actions"][2]["text"]["*"] = json!("{a b}");
            }),
            vec![
                ("keyword", "one word"),
                ("case_type", "may only have"),
                ("actions[1].case_group_id", "case group's id"),
                ("actions[2].text.*", "not a placeholder"),
            ],
        ),
    ];
    for (i, (change, want)) in table.into_iter().enumerate() {
        let got = problems(change);
        let fields: Vec<&str> = got.iter().map(|(f, _)| f.as_str()).collect();
        let want_fields: Vec<&str> = want.iter().map(|(f, _)| *f).collect();
        assert_eq!(fields, want_fields, "row {i}: {got:?}");
        for ((_, message), (_, part)) in got.iter().zip(&want) {
            assert!(
                message.contains(part),
                "row {i}: {message:?} lacks {part:?}"
            );
        }
    }
    assert_eq!(
        Keyword::parse(&json!([]), &RESERVED).unwrap_err(),
        vec![FieldError::new("body", "send a JSON object")]
    );
}

#[test]
fn limits_hold_exactly() {
    let mut b = reg_body();
    b["keyword"] = json!("A".repeat(MAX_KEYWORD_CHARS));
    b["fields"] = json!((0..MAX_FIELDS).map(|i| format!("f{i}")).collect::<Vec<_>>());
    b["actions"] = json!((0..MAX_ACTIONS)
        .map(|_| json!({"type": "reply", "text": "x".repeat(1530)}))
        .collect::<Vec<_>>());
    let k = keyword(b);
    assert_eq!((k.fields.len(), k.actions.len()), (20, 10));
}

#[test]
fn date_fields_usage_and_new_cases() {
    let k = keyword(json!({
        "keyword": "REG", "fields": ["name", "birth_date", "edd", "Visit_DATE", "date"],
        "actions": [{"type": "set_properties", "dates": ["edd"]}], "unknown_sender": "create_case"
    }));
    let dates: Vec<&str> = k
        .fields
        .iter()
        .map(String::as_str)
        .filter(|f| k.is_date_field(f))
        .collect();
    assert_eq!(dates, ["birth_date", "edd", "Visit_DATE"]);
    assert_eq!(
        k.usage(),
        "REG <name> <birth date> <edd> <Visit DATE> <date>"
    );

    let phone = PhoneNumber::parse("+256772123456", None).unwrap();
    let Some(Match::Matched { values, .. }) =
        match_message("reg Amina 01/03/1990 2026-09-01 12-10-2026 soon", [&k])
    else {
        panic!()
    };
    let changes = k.new_case(&values, &phone);
    let case = changes.create(CaseId::from_stored("c".into()), 1).unwrap();
    assert_eq!(case.name, "Amina");
    assert_eq!(case.case_type, "contact");
    assert_eq!(case.phone_number.as_ref(), Some(&phone));
    assert_eq!(
        case.properties
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect::<Vec<_>>(),
        [
            ("Visit_DATE", "2026-10-12"),
            ("birth_date", "1990-03-01"),
            ("date", "soon"),
            ("edd", "2026-09-01")
        ]
    );
    // Without a name field the number names the case.
    let join = keyword(
        json!({"keyword": "JOIN", "actions": [{"type": "add_to_group", "case_group_id": 1}]}),
    );
    let changes = join.new_case(&Values::default(), &phone);
    assert_eq!(changes.name.as_deref(), Some("+256772123456"));
    assert!(changes.properties.is_empty());
}

#[test]
fn which_keywords_act_on_every_case_of_a_number() {
    let with =
        |actions: Value| keyword(json!({"keyword": "K", "fields": ["x"], "actions": actions}));
    assert!(with(json!([{"type": "add_to_group", "case_group_id": 1}, {"type": "remove_from_group", "case_group_id": 2},
                        {"type": "reply", "text": {"*": "Joined {field.x}", "sw": "Sawa"}}])).acts_on_every_case());
    assert!(
        !with(json!([{"type": "reply", "text": {"*": "Hi", "sw": "Habari {case.name}"}}]))
            .acts_on_every_case()
    );
    assert!(!with(json!([{"type": "set_properties"}])).acts_on_every_case());
    assert!(!with(json!([{"type": "start_survey", "survey_id": 3}])).acts_on_every_case());
}

// ---- Matching ----

fn kw(word: &str, fields: &[&str]) -> Keyword {
    keyword(
        json!({"keyword": word, "fields": fields, "actions": [{"type": "reply", "text": "ok"}]}),
    )
}

/// What a message gives: the keyword's word and its values, or the missing/invalid field.
#[derive(Debug, PartialEq)]
enum Got {
    Values(String, Vec<(String, String)>),
    Missing(String, String),
    Invalid(String, String),
}

fn got(text: &str, keywords: &[Keyword]) -> Option<Got> {
    match_message(text, keywords).map(|m| match m {
        Match::Matched {
            keyword, values, ..
        } => Got::Values(
            keyword.keyword.clone(),
            values
                .iter()
                .map(|(f, v)| (f.to_string(), v.to_string()))
                .collect(),
        ),
        Match::Missing { keyword, field, .. } => Got::Missing(keyword.keyword.clone(), field),
        Match::Invalid { keyword, field, .. } => Got::Invalid(keyword.keyword.clone(), field),
    })
}

fn values(word: &str, pairs: &[(&str, &str)]) -> Option<Got> {
    Some(Got::Values(
        word.into(),
        pairs
            .iter()
            .map(|(f, v)| (f.to_string(), v.to_string()))
            .collect(),
    ))
}

fn keywords() -> Vec<Keyword> {
    vec![
        kw("REG", &["name", "birth_date"]),
        kw("Join", &["group"]),
        kw("HELP", &[]),
        kw("Jisajili", &["jina"]),
        kw("पंजीकरण", &["naam"]),
        kw("VISIT3", &[]),
        kw("İL", &[]),
        kw("Ärztin", &["note"]),
    ]
}

#[test]
fn matching_table() {
    let k = keywords();
    let missing = |w: &str, f: &str| Some(Got::Missing(w.into(), f.into()));
    let invalid = |w: &str, f: &str| Some(Got::Invalid(w.into(), f.into()));
    let reg = |name: &str, date: &str| values("REG", &[("name", name), ("birth_date", date)]);
    let table: Vec<(&str, Option<Got>)> = vec![
        // Case, surrounding punctuation, a leading #.
        ("REG Amina 1990-03-01", reg("Amina", "1990-03-01")),
        ("reg Amina 1990-03-01", reg("Amina", "1990-03-01")),
        ("rEg Amina 01/03/1990", reg("Amina", "1990-03-01")),
        ("#REG Amina 1-3-1990", reg("Amina", "1990-03-01")),
        ("  ##reg!  Amina   01031990  ", reg("Amina", "1990-03-01")),
        ("\"REG\" Amina 1990-03-01", reg("Amina", "1990-03-01")),
        ("*REG* Amina 1990-03-01.", reg("Amina", "1990-03-01")),
        ("REG: Amina, 1990-03-01.", reg("Amina", "1990-03-01")),
        ("REG:Amina 1990-03-01", reg("Amina", "1990-03-01")),
        ("REG.Amina 1990-03-01", reg("Amina", "1990-03-01")),
        ("REG Amina , 1990-03-01", reg("Amina", "1990-03-01")),
        (
            "\u{feff}\u{200b}REG Amina 1990-03-01",
            reg("Amina", "1990-03-01"),
        ),
        ("REG\u{a0}Amina\t1990-03-01", reg("Amina", "1990-03-01")),
        ("REG\nAmina\n1990-03-01", reg("Amina", "1990-03-01")),
        ("help", values("HELP", &[])),
        ("Help!!!", values("HELP", &[])),
        ("HELP?", values("HELP", &[])),
        ("¿help?", values("HELP", &[])),
        ("HELP 👍", values("HELP", &[])),
        ("HELP👍", values("HELP", &[])),
        ("(help)", values("HELP", &[])),
        ("JOIN-ANC", values("Join", &[("group", "ANC")])),
        ("join=anc", values("Join", &[("group", "anc")])),
        ("visit3", values("VISIT3", &[])),
        // Extra words: ignored without fields, the last field takes the rest.
        ("HELP me please", values("HELP", &[])),
        (
            "JOIN ANC group now",
            values("Join", &[("group", "ANC group now")]),
        ),
        (
            "JOIN  ANC   group  ",
            values("Join", &[("group", "ANC   group")]),
        ),
        (
            "Join ANC\nclinic 2!",
            values("Join", &[("group", "ANC\nclinic 2")]),
        ),
        ("REG Amina 1990-03-01 extra", invalid("REG", "birth_date")),
        // Missing words.
        ("REG", missing("REG", "name")),
        ("REG!", missing("REG", "name")),
        ("REG Amina", missing("REG", "birth_date")),
        ("REG Amina ...", missing("REG", "birth_date")),
        ("REG  ,  ", missing("REG", "name")),
        ("join", missing("Join", "group")),
        ("JOIN -", missing("Join", "group")),
        // Invalid values.
        ("REG Amina 31/02/1990", invalid("REG", "birth_date")),
        ("REG Amina tomorrow", invalid("REG", "birth_date")),
        ("REG Amina 1990-3-1", invalid("REG", "birth_date")),
        // Unicode.
        ("jisajili Aisha", values("Jisajili", &[("jina", "Aisha")])),
        (
            "JISAJILI Zoë Ñúñez",
            values("Jisajili", &[("jina", "Zoë Ñúñez")]),
        ),
        ("पंजीकरण राम", values("पंजीकरण", &[("naam", "राम")])),
        (
            "#पंजीकरण, राम कुमार।",
            values("पंजीकरण", &[("naam", "राम कुमार")]),
        ),
        ("i̇l", values("İL", &[])),
        ("ÄRZTIN 🚑 ok", values("Ärztin", &[("note", "ok")])),
        ("Ärztin ok 🚑", values("Ärztin", &[("note", "ok 🚑")])),
        ("ärztin", missing("Ärztin", "note")),
        // Not a keyword: another word, a longer word, a glued word, nothing at all.
        ("REGISTER Amina", None),
        ("RE G Amina", None),
        ("REG's name", None),
        ("REG1 Amina", None),
        ("1REG", None),
        ("Amina REG", None),
        ("STOP", None),
        ("", None),
        ("   ", None),
        ("...", None),
        ("#", None),
        ("!!! ??? 👍", None),
        ("\u{301}REG Amina 1990-03-01", None),
        ("ＨＥＬＰ", None),
    ];
    for (text, want) in table {
        assert_eq!(got(text, &k), want, "{text:?}");
    }
}

#[test]
fn problem_replies_say_what_to_send() {
    let k = keywords();
    let reply = |text: &str| {
        match_message(text, &k)
            .unwrap()
            .problem_reply()
            .map(str::to_string)
    };
    assert_eq!(
        reply("reg").as_deref(),
        Some("Missing name. Send: REG <name> <birth date>")
    );
    assert_eq!(
        reply("REG Amina").as_deref(),
        Some("Missing birth date. Send: REG <name> <birth date>")
    );
    assert_eq!(
        reply("REG Amina 30/02/2000").as_deref(),
        Some("birth date must be a date as DD/MM/YYYY, for example 25/12/2026. Send: REG <name> <birth date>")
    );
    let long = format!("REG {} 1990-03-01", "x".repeat(256));
    assert_eq!(
        reply(&long).as_deref(),
        Some("name must be at most 255 characters. Send: REG <name> <birth date>")
    );
    assert_eq!(
        reply("JOIN").as_deref(),
        Some("Missing group. Send: Join <group>")
    );
    assert_eq!(reply("join anc"), None);
    // A property value over the limit is refused; the last field takes it whole otherwise.
    let note = format!("Ärztin {}", "y".repeat(4097));
    assert_eq!(
        reply(&note).as_deref(),
        Some("note must be at most 4096 characters. Send: Ärztin <note>")
    );
    let nul = match_message("Join a\0b", &k).unwrap();
    assert!(
        matches!(nul, Match::Invalid { ref field, .. } if field == "group"),
        "{nul:?}"
    );
}

#[test]
fn the_first_matching_keyword_and_its_position() {
    let k = keywords();
    let m = match_message("JOIN ANC", &k).unwrap();
    assert_eq!((m.index(), m.keyword().keyword.as_str()), (1, "Join"));
    let twice = [kw("a", &[]), kw("A", &["x"])];
    assert_eq!(match_message("A", &twice).unwrap().index(), 0);
    assert!(match_message("REG x 1990-01-01", std::iter::empty()).is_none());
    assert_eq!(first_word("#Reg: Amina 1990"), Some(("Reg", " Amina 1990")));
    assert_eq!(first_word("HELP!! now"), Some(("HELP", " now")));
    assert_eq!(first_word("HELP's"), None);
    assert_eq!(first_word("👍"), None);
}

#[test]
fn values_become_case_changes() {
    let k = kw("REG", &["name", "district", "next_visit_date"]);
    let Some(Match::Matched { values, .. }) = match_message("REG Amina Gulu 1/12/2026", [&k])
    else {
        panic!()
    };
    assert_eq!(values.get("district"), Some("Gulu"));
    assert_eq!(values.get("District"), None);
    assert_eq!(values.len(), 3);
    assert_eq!(
        serde_json::to_string(&values).unwrap(),
        r#"{"name":"Amina","district":"Gulu","next_visit_date":"2026-12-01"}"#
    );
    let c = values.case_changes();
    assert_eq!(c.name.as_deref(), Some("Amina"));
    assert_eq!(c.properties.len(), 2);
    assert_eq!(
        c.properties["next_visit_date"].as_deref(),
        Some("2026-12-01")
    );
    assert_eq!(c.case_type, None);
}

fn case() -> Case {
    Case {
        case_id: CaseId::from_stored("c-1".into()),
        case_type: "mother".into(),
        name: "Aber Grace".into(),
        external_id: None,
        phone_number: None,
        language_code: Some("sw".into()),
        owner_id: None,
        closed: false,
        deleted: false,
        properties: [("district".to_string(), "Gulu".to_string())].into(),
        created_at: 0,
        modified_at: 0,
    }
}

#[test]
fn replies_render_fields_and_case_values() {
    let k = keyword(reg_body());
    let Action::Reply { text } = &k.actions[2] else {
        panic!()
    };
    let Some(Match::Matched { values, .. }) = match_message("reg Amina 1990-03-01", [&k]) else {
        panic!()
    };
    let mut c = case();
    c.language_code = None;
    let r = reply_text(text, Some(&c), &values);
    assert_eq!(r.text, "Welcome Amina, born 1990-03-01 (Gulu)");
    assert!(r.missing.is_empty());
    // The case's language picks the text.
    assert_eq!(
        reply_text(text, Some(&case()), &values).text,
        "Karibu Amina"
    );
    // No case: {case.…} renders empty and is listed.
    let r = reply_text(text, None, &values);
    assert_eq!(r.text, "Welcome Amina, born 1990-03-01 ()");
    assert_eq!(r.missing, ["{case.district}"]);
    // Another shape of case.
    let r = reply_text_with(
        text,
        Some("en"),
        |p| (p == &Placeholder::Property("district".into())).then_some("Lira"),
        &values,
    );
    assert_eq!(r.text, "Welcome Amina, born 1990-03-01 (Lira)");
    // A long value cannot make the reply longer than a message may be.
    let echo = keyword(
        json!({"keyword": "ECHO", "fields": ["x"], "actions": [{"type": "reply", "text": "You said: {field.x} {field.x}"}]}),
    );
    let Action::Reply { text } = &echo.actions[0] else {
        panic!()
    };
    let Some(Match::Matched { values, .. }) =
        match_message(&format!("echo {}", "é".repeat(1000)), [&echo])
    else {
        panic!()
    };
    let r = reply_text(text, None, &values);
    assert_eq!(r.text.chars().count(), crate::template::MAX_CHARS);
    assert!(r.text.ends_with('…') && r.text.starts_with("You said: éé"));
}

proptest! {
    #[test]
    fn matching_never_panics(text in "\\PC{0,60}|[#!.,:;\\- rRéE\u{301}\u{a0}👍gG0-9/]{0,30}|(?s).{0,40}") {
        let k = keywords();
        if let Some(m) = match_message(&text, &k) {
            // A match is always on the message's first word, and a problem names a field.
            prop_assert!(m.index() < k.len());
            match m {
                Match::Matched { keyword, values, .. } => prop_assert_eq!(values.len(), keyword.fields.len()),
                Match::Missing { keyword, field, reply, .. } | Match::Invalid { keyword, field, reply, .. } => {
                    prop_assert!(keyword.fields.contains(&field));
                    prop_assert!(reply.ends_with(&keyword.usage()));
                }
            }
        }
        let _ = first_word(&text);
    }

    #[test]
    fn a_keyword_with_any_text_after_a_space_matches(word in prop::sample::select(vec!["reg", "JOIN", "help", "पंजीकरण"]),
                                                     rest in "(?s).{0,60}") {
        let k = keywords();
        let text = format!("{word} {rest}");
        let m = match_message(&text, &k);
        prop_assert!(m.is_some(), "{:?}", text);
        let m = m.unwrap();
        prop_assert!(same(&m.keyword().keyword, word));
        if let Match::Matched { values, .. } = m {
            for (_, v) in values.iter() {
                prop_assert!(!v.is_empty() && v.trim() == v);
            }
        }
    }
}

/// Any JSON value, small.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        "\\PC{0,12}|\\{(case|field)\\.[a-z_]{0,6}\\}|(name|birth_date|reply|start_survey|add_to_group|set_properties|create_case|\\*|sw)"
            .prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::btree_map(
                "type|text|survey_id|case_group_id|dates|\\*|sw|x",
                inner,
                0..4
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #[test]
    fn parsing_never_panics_and_what_it_accepts_round_trips(
        word in any_json(), fields in any_json(), actions in any_json(),
        sender in any_json(), reply in any_json(), case_type in any_json(),
    ) {
        let body = json!({"keyword": word, "fields": fields, "actions": actions,
                          "unknown_sender": sender, "unknown_reply": reply, "case_type": case_type});
        match Keyword::parse(&body, &RESERVED) {
            Ok(k) => prop_assert_eq!(Keyword::from_stored(&k.to_json()).unwrap(), k),
            Err(problems) => {
                prop_assert!(!problems.is_empty());
                for p in problems {
                    prop_assert!(!p.field.is_empty() && !p.message.is_empty());
                }
            }
        }
    }
}
