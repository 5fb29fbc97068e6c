//! Message templates: whatever parses renders exactly as an independent reading of the text
//! says (`{{` and `}}` are braces, each placeholder its value), with values and without; a
//! keyword's reply with `{field.NAME}` too.
#![no_main]

use casecast_core::template::Template;
use libfuzzer_sys::fuzz_target;

/// The text with every placeholder replaced by `value`, read without the parser.
fn independent(source: &str, value: &str) -> String {
    let mut out = String::new();
    let mut chars = source.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '{' if chars.peek() == Some(&'{') => {
                chars.next();
                out.push('{');
            }
            '}' if chars.peek() == Some(&'}') => {
                chars.next();
                out.push('}');
            }
            '{' => {
                for inner in chars.by_ref() {
                    if inner == '}' {
                        break;
                    }
                }
                out.push_str(value);
            }
            other => out.push(other),
        }
    }
    out
}

fuzz_target!(|data: &[u8]| {
    casecast_fuzz::init();
    let Some((mode, text)) = casecast_fuzz::pick_and_text(data) else {
        return;
    };
    let fields = ["name", "birth_date"];
    let parsed = if mode % 2 == 0 {
        Template::parse(text)
    } else {
        Template::parse_with_fields(text, &fields)
    };
    let template = match parsed {
        Ok(t) => t,
        Err(e) => {
            // The error's column, when it names one, is inside the text.
            if let Some(column) = e.column() {
                assert!(column >= 1 && column <= text.chars().count(), "{e}");
            }
            return;
        }
    };
    assert!(text.chars().count() <= casecast_core::template::MAX_CHARS);
    let full = template.render_with_fields(|_| Some("\u{1}"), |_| Some("\u{1}"));
    assert_eq!(full.text, independent(text, "\u{1}"));
    assert!(full.missing.is_empty());
    let empty = template.render_with_fields(|_| None, |_| None);
    assert_eq!(empty.text, independent(text, ""));
    let mut missing = empty.missing.clone();
    missing.sort();
    missing.dedup();
    assert_eq!(
        missing.len(),
        empty.missing.len(),
        "missing placeholders are listed once"
    );
    assert_eq!(
        empty.missing.is_empty(),
        template.placeholders().is_empty() && template.fields().is_empty()
    );
});
