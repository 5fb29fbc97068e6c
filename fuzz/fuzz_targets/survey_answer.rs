//! SMS survey replies: a reply of the fuzzer's read as an answer to each question type (number
//! with a range, choice with synonyms, date, yes/no, text with a limit): no panic; an accepted
//! answer is of the question's kind and within its limits, and reading its stored form again
//! gives the same answer.
#![no_main]

use std::sync::OnceLock;

use casecast_core::survey::answer::{read, Reply};
use casecast_core::survey::{QuestionType, Survey};
use libfuzzer_sys::fuzz_target;
use serde_json::json;

fn survey() -> &'static Survey {
    static SURVEY: OnceLock<Survey> = OnceLock::new();
    SURVEY.get_or_init(make_survey)
}

fn make_survey() -> Survey {
    let body = json!({
        "name": "fuzz",
        "intro": {"*": "Hello", "sw": "Habari"},
        "questions": [
            {"key": "visits", "type": "number", "text": "How many visits?", "min": 0, "max": 20},
            {"key": "weight", "type": "number", "text": "Weight?", "min": -1.5, "max": 250.25, "required": false},
            {"key": "feeling", "type": "choice", "text": {"*": "How do you feel?", "sw": "Unajisikiaje?"},
             "choices": [
                {"value": "good", "text": {"*": "Good", "sw": "Vizuri"}, "synonyms": ["fine", "sawa"]},
                {"value": "bad", "text": "Bad"},
                {"value": "unsure", "text": "Not sure", "synonyms": ["dunno"]}
             ]},
            {"key": "due", "type": "date", "text": "Due date?", "required": false},
            {"key": "bleeding", "type": "yes_no", "text": "Any bleeding?"},
            {"key": "comment", "type": "text", "text": "Anything else?", "max": 40, "required": false}
        ]
    });
    Survey::parse(&body).expect("the fuzz survey is valid")
}

fuzz_target!(|data: &[u8]| {
    casecast_fuzz::init();
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let survey = survey();
    for question in &survey.questions {
        let Reply::Answer(value) = read(question, text) else {
            continue;
        };
        match question.kind {
            QuestionType::Number => {
                let n = value.as_f64().expect("a number answer is a number");
                let min = question
                    .min
                    .as_ref()
                    .and_then(|m| m.as_f64())
                    .unwrap_or(f64::MIN);
                let max = question
                    .max
                    .as_ref()
                    .and_then(|m| m.as_f64())
                    .unwrap_or(f64::MAX);
                assert!(n >= min && n <= max, "{n} outside {min}..={max}");
            }
            QuestionType::Choice => {
                let v = value.as_str().expect("a choice answer is its value");
                assert!(
                    question.choices.iter().any(|c| c.value == v),
                    "{v} is no option"
                );
            }
            QuestionType::Date => {
                let v = value.as_str().expect("a date answer is text");
                assert!(
                    casecast_core::reminder::schedule::read_date(v).is_some(),
                    "{v} is no YYYY-MM-DD date"
                );
            }
            QuestionType::YesNo => assert!(value.is_boolean() || value.is_string(), "{value}"),
            QuestionType::Text => {
                let v = value.as_str().expect("a text answer is text");
                if let Some(max) = question.max.as_ref().and_then(|m| m.as_u64()) {
                    assert!(v.chars().count() as u64 <= max, "{v:?} is over {max}");
                }
            }
        }
        // The stored form (as the case property and the export write it), sent again, is the
        // same answer.
        let again_text = casecast_core::survey::session::property_text(&value);
        if question.kind != QuestionType::Text && !again_text.trim().is_empty() {
            assert_eq!(
                read(question, &again_text),
                Reply::Answer(value.clone()),
                "{again_text:?}"
            );
        }
    }
});
