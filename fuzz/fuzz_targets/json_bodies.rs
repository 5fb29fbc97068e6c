//! The JSON bodies of the main API routes, through the same readers the routes use: a survey
//! (`POST /surveys`), a keyword (`POST /keywords`), a reminder rule (`POST /reminders`), a
//! broadcast (`POST /broadcasts`, its schedule and content), a gateway's settings for each kind
//! (`POST /gateways`, and an edit merged into them), the messaging settings. Never a panic;
//! what is accepted writes out as JSON that reads back the same.
#![no_main]

use casecast_core::broadcast::Draft;
use casecast_core::gateway::config::{GatewayConfig, GatewayKind};
use casecast_core::keyword::Keyword;
use casecast_core::recurrence::Schedule;
use casecast_core::reminder::ReminderRule;
use casecast_core::settings::MessagingSettings;
use casecast_core::survey::Survey;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    casecast_fuzz::init();
    let Ok(body) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    if let Ok(survey) = Survey::parse(&body) {
        let written = serde_json::to_value(&survey).expect("a survey writes out");
        assert_eq!(
            Survey::parse(&written).as_ref(),
            Ok(&survey),
            "survey round trip"
        );
        for language in survey.languages() {
            let _ = survey.first_message(Some(&language));
        }
    }
    if let Ok(keyword) = Keyword::parse(&body, &["STOP"]) {
        assert_eq!(
            Keyword::from_stored(&keyword.to_json()).as_ref(),
            Ok(&keyword),
            "keyword round trip"
        );
        let _ = keyword.usage();
    }
    if let Ok(rule) = ReminderRule::parse_checked(&body) {
        assert_eq!(
            ReminderRule::parse_checked(&rule.to_json()).as_ref(),
            Ok(&rule),
            "rule round trip"
        );
    }
    let _ = Draft::parse(&body);
    if let Ok(schedule) = Schedule::parse(&body) {
        assert_eq!(
            Schedule::parse(&schedule.to_json()).as_ref(),
            Ok(&schedule),
            "schedule round trip"
        );
    }
    for kind in [
        GatewayKind::Kannel,
        GatewayKind::Twilio,
        GatewayKind::Http,
        GatewayKind::Log,
    ] {
        if let Ok(config) = GatewayConfig::parse(kind, &body) {
            let _ = GatewayConfig::merge_edit(&config, &body);
        }
    }
    if let Ok(settings) = serde_json::from_value::<MessagingSettings>(body.clone()) {
        let _ = settings.check();
    }
});
