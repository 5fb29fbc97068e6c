//! Quiet hours in 20 zones: the window reads from texts of the fuzzer's or well-formed ones;
//! `next_allowed` is at or after the instant, outside the window, the instant itself when it
//! is outside, and no later than two days (a day's whole allowed time can fall in a DST gap:
//! allowed 00:11–01:00 in St. John's on 2007-03-11, when 00:01 jumped to 01:01).
#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use casecast_core::quiet_hours::QuietHours;
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Input {
    start: (u8, u8),
    end: (u8, u8),
    start_text: Option<String>,
    end_text: Option<String>,
    zone: u8,
}

fuzz_target!(|data: &[u8]| {
    casecast_fuzz::init();
    let mut u = Unstructured::new(data);
    let Ok(input) = Input::arbitrary(&mut u) else {
        return;
    };
    let Ok(at) = casecast_fuzz::instant(&mut u) else {
        return;
    };
    let text = |t: &Option<String>, (h, m): (u8, u8)| {
        t.clone()
            .unwrap_or_else(|| format!("{:02}:{:02}", h % 24, m % 60))
    };
    let Ok(quiet) = QuietHours::parse(
        &text(&input.start_text, input.start),
        &text(&input.end_text, input.end),
    ) else {
        return;
    };
    let zone = casecast_fuzz::zone(input.zone);
    let next = quiet.next_allowed(at, &zone);
    assert!(next >= at);
    assert!(!quiet.contains(next, &zone), "{next} is inside the window");
    if !quiet.contains(at, &zone) {
        assert_eq!(next, at);
    }
    assert!(
        next.duration_since(at) <= jiff::SignedDuration::from_hours(49),
        "{quiet:?} in {}: {at} -> {next}",
        zone.iana_name().unwrap_or("?")
    );
});
