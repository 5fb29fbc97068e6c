//! SMS segments: the parts rejoin to the text, their count is `analyse`'s, none is over its
//! limit counted independently (GSM-7 extension characters two septets, UCS-2 in UTF-16
//! units), and only the last may have room for the next character.
#![no_main]

use casecast_core::sms::{analyse, is_gsm7, split};
use libfuzzer_sys::fuzz_target;

const EXTENSION: &str = "\u{c}^{}\\[~]|€";

fuzz_target!(|data: &[u8]| {
    casecast_fuzz::init();
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let info = analyse(text);
    let parts = split(text);
    assert_eq!(parts.concat(), text);
    assert_eq!(parts.len(), info.segments);
    let gsm = is_gsm7(text);
    let units = |s: &str| -> usize {
        if gsm {
            s.chars()
                .map(|c| if EXTENSION.contains(c) { 2 } else { 1 })
                .sum()
        } else {
            s.encode_utf16().count()
        }
    };
    assert_eq!(units(text), info.units);
    let (single, multi) = if gsm { (160, 153) } else { (70, 67) };
    if parts.len() == 1 {
        assert!(info.units <= single);
    } else {
        for (i, part) in parts.iter().enumerate() {
            let used = units(part);
            assert!(used <= multi, "part {i} uses {used} of {multi}");
            assert!(!part.is_empty());
            if let Some(next) = parts.get(i + 1).and_then(|p| p.chars().next()) {
                // Filled greedily: the next part's first character did not fit.
                assert!(used + units(&next.to_string()) > multi, "part {i} had room");
            }
        }
    }
});
