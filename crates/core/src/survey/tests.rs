use serde_json::json;

use super::*;

/// A valid survey of every question type, in English and Swahili.
pub(crate) fn body() -> Value {
    json!({
        "name": "ANC follow-up",
        "intro": {"*": "Hello, a few questions.", "sw": "Habari, maswali machache."},
        "end_text": {"*": "Thank you.", "sw": "Asante."},
        "invalid_text": null,
        "max_attempts": 3,
        "reminders": {"every_minutes": 60, "times": 2},
        "expire_after_minutes": 1440,
        "questions": [
            {"key": "visits", "type": "number", "text": {"*": "How many visits?", "sw": "Mara ngapi?"},
             "min": 0, "max": 20, "case_property": "anc_visits"},
            {"key": "feeling", "type": "choice", "text": "How do you feel?",
             "choices": [
                {"value": "good", "text": {"*": "Good", "sw": "Vizuri"}, "synonyms": ["fine"]},
                {"value": "bad", "text": {"*": "Bad", "sw": "Vibaya"}},
                {"value": "unsure", "text": "Not sure", "synonyms": ["dunno"]}
             ]},
            {"key": "due", "type": "date", "text": "Due date?", "required": false},
            {"key": "bleeding", "type": "yes_no", "text": "Any bleeding?",
             "invalid_text": "Reply YES or NO."},
            {"key": "comment", "type": "text", "text": "Anything else?", "max": 160, "required": false}
        ]
    })
}

fn problems(change: impl FnOnce(&mut Value)) -> Vec<FieldError> {
    let mut b = body();
    change(&mut b);
    Survey::parse(&b).unwrap_err()
}

fn fields(change: impl FnOnce(&mut Value)) -> Vec<String> {
    problems(change).into_iter().map(|e| e.field).collect()
}

#[test]
fn reads_a_valid_survey_and_writes_it_back() {
    let s = Survey::parse(&body()).unwrap();
    assert_eq!(s.questions.len(), 5);
    assert_eq!(s.questions[1].kind, QuestionType::Choice);
    assert!(!s.questions[2].required && s.questions[0].required);
    assert_eq!(s.questions[1].text, Texts::from_default("How do you feel?"));
    assert_eq!(s.languages(), vec!["sw".to_string()]);
    // What is stored reads back the same.
    let again = Survey::parse(&serde_json::to_value(&s).unwrap()).unwrap();
    assert_eq!(again, s);
    // Defaults, and the API's own fields are ignored.
    let mut b = body();
    let o = b.as_object_mut().unwrap();
    o.remove("max_attempts");
    o.remove("expire_after_minutes");
    o.insert("id".into(), json!(7));
    o.insert("created_at".into(), json!(1));
    let s = Survey::parse(&b).unwrap();
    assert_eq!((s.max_attempts, s.expire_after_minutes), (3, 1440));
}

#[test]
fn a_wrong_shape_names_where() {
    let e = problems(|b| b["questions"][1]["choices"][0]["value"] = json!(3));
    assert_eq!(e.len(), 1);
    assert_eq!(e[0].field, "questions[1].choices[0].value");
    assert_eq!(
        fields(|b| b["questions"][0]["type"] = json!("essay")),
        ["questions[0].type"]
    );
    let e = problems(|b| b["colour"] = json!(1));
    assert_eq!(e[0].field, "colour");
    assert!(e[0].message.contains("unknown field"), "{}", e[0].message);
    assert_eq!(
        fields(|b| b["questions"][0]["colour"] = json!(1)),
        ["questions[0].colour"]
    );
    assert_eq!(Survey::parse(&json!([1])).unwrap_err()[0].field, "body");
}

#[test]
fn every_problem_is_reported_with_its_path() {
    let f = fields(|b| {
        b["name"] = json!(" ");
        b["max_attempts"] = json!(0);
        b["questions"][1]["choices"][0]["value"] = json!(" ");
        b["questions"][3]["key"] = json!("visits");
        b["questions"][4]["case_property"] = json!("name");
        b["intro"]["sw"] = json!("");
    });
    assert_eq!(
        f,
        [
            "name",
            "intro.sw",
            "max_attempts",
            "questions[1].choices[0].value",
            "questions[3].key",
            "questions[4].case_property",
        ]
    );
    let e = problems(|b| b["questions"][1]["choices"][0]["value"] = json!(""));
    assert_eq!(e[0].to_string(), "questions[1].choices[0].value: empty");
}

#[test]
fn keys_are_property_names_unique_ignoring_case_and_not_export_columns() {
    for bad in [
        "",
        "two words",
        "name",
        "status",
        "Started_at",
        "x".repeat(65).as_str(),
        " v ",
    ] {
        assert_eq!(
            fields(|b| b["questions"][0]["key"] = json!(bad)),
            ["questions[0].key"],
            "{bad:?}"
        );
    }
    let e = problems(|b| b["questions"][2]["key"] = json!("VISITS"));
    assert_eq!(e[0].field, "questions[2].key");
    assert!(e[0].message.contains("questions[0]"), "{}", e[0].message);
    let e = problems(|b| b["questions"][4]["case_property"] = json!("anc_visits"));
    assert_eq!(e[0].field, "questions[4].case_property");
}

#[test]
fn choices_only_for_choice_questions_and_at_least_two() {
    assert_eq!(
        fields(|b| b["questions"][0]["choices"] = json!([{"value": "a", "text": "A"}])),
        ["questions[0].choices"]
    );
    assert_eq!(
        fields(|b| b["questions"][1]["choices"] = json!([{"value": "a", "text": "A"}])),
        ["questions[1].choices"]
    );
    assert_eq!(
        fields(|b| b["questions"][1]["choices"] = json!([])),
        ["questions[1].choices"]
    );
    let many: Vec<Value> = (0..21)
        .map(|i| json!({"value": format!("v{i}"), "text": format!("t{i}")}))
        .collect();
    assert_eq!(
        fields(|b| b["questions"][1]["choices"] = json!(many)),
        ["questions[1].choices"]
    );
}

#[test]
fn a_reply_must_choose_one_option_only() {
    // A value that is another option's number, a synonym shared by two options, a text
    // equal to another's value ignoring case and punctuation.
    assert_eq!(
        fields(|b| b["questions"][1]["choices"][2]["value"] = json!("1")),
        ["questions[1].choices[2].value"]
    );
    assert_eq!(
        fields(|b| b["questions"][1]["choices"][1]["synonyms"] = json!(["Fine!"])),
        ["questions[1].choices[1].synonyms[0]"]
    );
    assert_eq!(
        fields(|b| b["questions"][1]["choices"][1]["text"]["*"] = json!("GOOD")),
        ["questions[1].choices[1].text"]
    );
    assert_eq!(
        fields(|b| b["questions"][1]["choices"][1]["synonyms"] = json!(["..."])),
        ["questions[1].choices[1].synonyms[0]"]
    );
}

#[test]
fn skip_cannot_choose_an_option_of_an_optional_question() {
    let set = |b: &mut Value| {
        b["questions"][1]["required"] = json!(false);
        b["questions"][1]["choices"][2]["synonyms"] = json!(["Skip"]);
    };
    let e = problems(set);
    assert_eq!(e[0].field, "questions[1].choices[2].synonyms[0]");
    assert!(e[0].message.contains("optional"), "{}", e[0].message);
    // On a required question "skip" may be an option.
    let mut b = body();
    b["questions"][1]["choices"][2]["synonyms"] = json!(["skip"]);
    assert!(Survey::parse(&b).is_ok());
}

#[test]
fn names_and_values_are_stored_trimmed() {
    let mut b = body();
    b["name"] = json!("  ANC  ");
    b["questions"][1]["choices"][0]["value"] = json!(" good ");
    let s = Survey::parse(&b).unwrap();
    assert_eq!(s.name, "ANC");
    assert_eq!(s.questions[1].choices[0].value, "good");
}

#[test]
fn bounds_fit_the_type() {
    assert_eq!(
        fields(|b| b["questions"][0]["min"] = json!(30)),
        ["questions[0].min"]
    );
    assert_eq!(
        fields(|b| b["questions"][2]["max"] = json!(3)),
        ["questions[2].max"]
    );
    assert_eq!(
        fields(|b| b["questions"][4]["max"] = json!(1.5)),
        ["questions[4].max"]
    );
    assert_eq!(
        fields(|b| b["questions"][4]["max"] = json!(0)),
        ["questions[4].max"]
    );
    // Decimal and negative bounds are fine for numbers.
    let mut b = body();
    b["questions"][0]["min"] = json!(-1.5);
    b["questions"][0]["max"] = json!(2.5);
    assert!(Survey::parse(&b).is_ok());
}

#[test]
fn attempts_reminders_and_expiry_have_ranges() {
    assert_eq!(fields(|b| b["max_attempts"] = json!(11)), ["max_attempts"]);
    assert_eq!(
        fields(|b| b["expire_after_minutes"] = json!(0)),
        ["expire_after_minutes", "reminders.every_minutes"]
    );
    assert_eq!(
        fields(|b| b["expire_after_minutes"] = json!(43201)),
        ["expire_after_minutes"]
    );
    assert_eq!(
        fields(|b| b["reminders"]["times"] = json!(0)),
        ["reminders.times"]
    );
    assert_eq!(
        fields(|b| b["reminders"]["every_minutes"] = json!(0)),
        ["reminders.every_minutes"]
    );
    assert_eq!(
        fields(|b| b["reminders"]["every_minutes"] = json!(1440)),
        ["reminders.every_minutes"]
    );
    assert_eq!(fields(|b| b["max_attempts"] = json!(-1)), ["max_attempts"]);
    let mut b = body();
    b["reminders"] = Value::Null;
    assert_eq!(Survey::parse(&b).unwrap().reminders, None);
}

#[test]
fn texts_need_a_default_and_language_codes() {
    assert_eq!(fields(|b| b["intro"] = json!({"sw": "Habari"})), ["intro"]);
    assert_eq!(
        fields(|b| b["intro"]["Swahili"] = json!("Habari")),
        ["intro.Swahili"]
    );
    assert_eq!(fields(|b| b["intro"]["SW"] = json!("Habari")), ["intro.sw"]);
    assert_eq!(
        fields(|b| b["end_text"]["*"] = json!("a\u{7}b")),
        ["end_text.*"]
    );
    assert_eq!(fields(|b| b["questions"] = json!([])), ["questions"]);
}

#[test]
fn every_message_fits_the_broadcast_limit() {
    let long = "x".repeat(1510);
    // Alone the text fits, but not with its options, nor with the invalid text.
    let e = problems(|b| b["questions"][1]["text"] = json!(long));
    assert_eq!(e.len(), 2, "{e:?}");
    assert_eq!(e[0].field, "questions[1].text");
    assert_eq!(
        e[0].message,
        "in *, the question with its options is 1537 characters; a message may have at most 1530"
    );
    assert_eq!(e[1].field, "questions[1].invalid_text");
    // The intro with the first question, in Swahili only.
    let e = problems(|b| b["intro"]["sw"] = json!("x".repeat(1525)));
    assert_eq!(e[0].field, "intro");
    assert!(e[0].message.starts_with("in sw,"), "{}", e[0].message);
    assert_eq!(
        fields(|b| b["end_text"]["*"] = json!("x".repeat(1531))),
        ["end_text.*"]
    );
    let many: Vec<Value> = (0..51)
        .map(|i| json!({"key": format!("q{i}"), "type": "text", "text": "?"}))
        .collect();
    assert_eq!(fields(|b| b["questions"] = json!(many)), ["questions"]);
}

#[test]
fn messages_render_in_the_language_with_numbered_options() {
    let s = Survey::parse(&body()).unwrap();
    assert_eq!(
        s.first_message(Some("sw")),
        "Habari, maswali machache.\nMara ngapi?"
    );
    assert_eq!(
        s.first_message(Some("sw-KE")),
        "Habari, maswali machache.\nMara ngapi?"
    );
    assert_eq!(
        s.first_message(Some("fr")),
        "Hello, a few questions.\nHow many visits?"
    );
    assert_eq!(
        s.questions[1].message(None),
        "How do you feel?\n1. Good 2. Bad 3. Not sure"
    );
    assert_eq!(
        s.questions[1].message(Some("sw")),
        "How do you feel?\n1. Vizuri 2. Vibaya 3. Not sure"
    );
    // The question's invalid text, else the survey's, else the default.
    assert_eq!(
        s.invalid_message(&s.questions[3], None),
        "Reply YES or NO.\nAny bleeding?"
    );
    assert_eq!(
        s.invalid_message(&s.questions[0], None),
        "Please reply with a number from 0 to 20.\nHow many visits?"
    );
    let mut b = body();
    b["invalid_text"] = json!({"*": "Sorry.", "sw": "Samahani."});
    let s = Survey::parse(&b).unwrap();
    assert_eq!(
        s.invalid_message(&s.questions[0], Some("sw")),
        "Samahani.\nMara ngapi?"
    );
}
