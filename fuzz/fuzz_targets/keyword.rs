//! Inbound messages against keywords ("REG Amina 1990-03-01", "JOIN ANC"): no panic; a match
//! is the keyword whose word the message starts with (ignoring case), with a value for every
//! field when matched; the reply renders. The first keyword's word is the fuzzer's when it is
//! a valid one.
#![no_main]

use casecast_core::keyword::{first_word, fold, match_message, reply_text, Action, Keyword, Match};
use libfuzzer_sys::fuzz_target;
use serde_json::json;

fuzz_target!(|data: &[u8]| {
    casecast_fuzz::init();
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (word, message) = text.split_once('\n').unwrap_or(("fuzz", text));
    let bodies = [
        json!({"keyword": word, "fields": ["value"], "actions": [{"type": "set_properties"}]}),
        json!({
            "keyword": "Reg",
            "fields": ["name", "birth_date"],
            "actions": [
                {"type": "set_properties", "dates": ["birth_date"]},
                {"type": "reply", "text": {"*": "Welcome {field.name}, born {field.birth_date}", "sw": "Karibu {field.name}"}}
            ],
            "unknown_sender": "create_case",
            "case_type": "mother"
        }),
        json!({"keyword": "join", "fields": ["group"], "actions": [{"type": "reply", "text": "Joined {field.group}"}]}),
        json!({"keyword": "स्टॉप", "actions": [{"type": "reply", "text": "ok"}]}),
    ];
    let reserved = ["STOP", "START"];
    let keywords: Vec<Keyword> = bodies
        .iter()
        .filter_map(|b| Keyword::parse(b, &reserved).ok())
        .collect();
    let found = match_message(message, &keywords);
    let Some(found) = found else {
        return;
    };
    let (w, _) = first_word(message).expect("a match starts with a word");
    assert_eq!(fold(&found.keyword().keyword), fold(w));
    assert!(found.index() < keywords.len());
    assert_eq!(
        keywords.iter().position(|k| fold(&k.keyword) == fold(w)),
        Some(found.index()),
        "the first keyword with that word"
    );
    if let Match::Matched {
        keyword, values, ..
    } = &found
    {
        assert_eq!(values.len(), keyword.fields.len());
        for field in &keyword.fields {
            assert!(
                values.get(field).is_some_and(|v| !v.is_empty()),
                "{field} has a value"
            );
        }
        let _ = values.case_changes();
        for action in &keyword.actions {
            if let Action::Reply { text } = action {
                let rendered = reply_text(text, None, values);
                assert!(
                    rendered.missing.iter().all(|m| !m.starts_with("{field.")),
                    "every field has a value"
                );
            }
        }
    }
    let _ = found.problem_reply();
});
