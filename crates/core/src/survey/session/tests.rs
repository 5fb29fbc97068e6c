use proptest::prelude::*;
use serde_json::json;

use super::*;

fn survey() -> Survey {
    Survey::parse(&crate::survey::tests::body()).unwrap()
}

/// Runs events from a new session, returning the final state and every action.
fn run(survey: &Survey, events: Vec<Event>) -> (SessionState, Vec<Action>) {
    let mut state = SessionState::new();
    let mut all = Vec::new();
    for e in events {
        let (s, a) = step(survey, None, &state, e);
        state = s;
        all.extend(a);
    }
    (state, all)
}

fn reply(text: &str) -> Event {
    Event::Reply(text.to_string())
}

fn sends(actions: &[Action]) -> Vec<&str> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Send(t) => Some(t.as_str()),
            _ => None,
        })
        .collect()
}

#[test]
fn a_whole_survey_saves_normalised_answers_and_completes() {
    let s = survey();
    let (state, actions) = step(&s, Some("sw"), &SessionState::new(), Event::Start);
    assert_eq!(sends(&actions), ["Habari, maswali machache.\nMara ngapi?"]);
    assert_eq!(
        actions[1],
        Action::SetTimers {
            reminder_in: Some(Duration::from_secs(3600)),
            expiry_in: Duration::from_secs(86400),
            step: 1
        }
    );
    assert_eq!((state.current_question, state.step), (Some(0), 1));
    let (state, actions) = step(&s, Some("sw"), &state, reply(" 12 "));
    assert_eq!(
        actions[0],
        Action::SaveAnswer {
            key: "visits".into(),
            value: json!(12),
            case_property: Some("anc_visits".into())
        }
    );
    assert_eq!(
        sends(&actions),
        ["How do you feel?\n1. Vizuri 2. Vibaya 3. Not sure"]
    );
    let mut state = state;
    for r in ["vibaya!", "skip", "ndiyo", "All good, thanks"] {
        state = step(&s, Some("sw"), &state, reply(r)).0;
    }
    assert_eq!(state.status, SessionStatus::Completed);
    assert_eq!(state.current_question, None);
    assert_eq!(
        Value::Object(state.answers.clone()),
        json!({"visits": 12, "feeling": "bad", "bleeding": "yes", "comment": "All good, thanks"})
    );
    // The last reply's actions: save, the end text, the end.
    let before_last = run(
        &s,
        vec![
            Event::Start,
            reply("1"),
            reply("2"),
            reply("skip"),
            reply("no"),
        ],
    )
    .0;
    let (_, actions) = step(&s, None, &before_last, reply("skip"));
    assert_eq!(
        actions,
        vec![
            Action::Send("Thank you.".into()),
            Action::End {
                status: SessionStatus::Completed,
                reason: None
            }
        ]
    );
}

#[test]
fn an_invalid_reply_asks_again_and_too_many_cancel() {
    let s = survey();
    let (state, actions) = run(&s, vec![Event::Start, reply("twelve")]);
    assert_eq!(
        sends(&actions)[1],
        "Please reply with a number from 0 to 20.\nHow many visits?"
    );
    assert_eq!((state.attempts, state.current_question), (1, Some(0)));
    assert!(matches!(
        actions.last(),
        Some(Action::SetTimers { step: 2, .. })
    ));
    // "skip" on a required question is invalid.
    let (state, actions) = step(&s, None, &state, reply("skip"));
    assert_eq!(state.attempts, 2);
    assert_eq!(sends(&actions).len(), 1);
    let (state, actions) = step(&s, None, &state, reply("21"));
    assert_eq!(state.status, SessionStatus::Cancelled);
    assert_eq!(
        state.reason.as_deref(),
        Some("3 invalid replies to question 1 (visits)")
    );
    assert_eq!(
        actions,
        vec![Action::End {
            status: SessionStatus::Cancelled,
            reason: Some("3 invalid replies to question 1 (visits)".into())
        }]
    );
    // A valid answer resets the count for the next question.
    let (state, _) = run(
        &s,
        vec![Event::Start, reply("x"), reply("x"), reply("3"), reply("x")],
    );
    assert_eq!((state.current_question, state.attempts), (Some(1), 1));
}

#[test]
fn reminders_resend_the_question_a_limited_number_of_times() {
    let s = survey();
    let (state, _) = run(&s, vec![Event::Start]);
    let (state, actions) = step(&s, None, &state, Event::ReminderDue { step: 1 });
    assert_eq!(sends(&actions), ["How many visits?"]);
    assert_eq!(state.reminders_sent, 1);
    let (state, actions) = step(&s, None, &state, Event::ReminderDue { step: 2 });
    assert_eq!(state.reminders_sent, 2);
    // The second of two reminders sets no further reminder, only the expiry.
    assert_eq!(
        actions[1],
        Action::SetTimers {
            reminder_in: None,
            expiry_in: Duration::from_secs(86400),
            step: 3
        }
    );
    let (same, actions) = step(&s, None, &state, Event::ReminderDue { step: 3 });
    assert_eq!((same, actions), (state.clone(), vec![]));
    // Expiry keeps the answers so far.
    let (state, _) = run(&s, vec![Event::Start, reply("4")]);
    let (state, actions) = step(&s, None, &state, Event::ExpiryDue { step: state.step });
    assert_eq!(state.status, SessionStatus::Expired);
    assert_eq!(state.answers.get("visits"), Some(&json!(4)));
    assert_eq!(
        actions,
        vec![Action::End {
            status: SessionStatus::Expired,
            reason: Some("no reply for 1440 minutes".into())
        }]
    );
}

#[test]
fn stale_timers_change_nothing() {
    let s = survey();
    let (state, _) = run(&s, vec![Event::Start, reply("4")]);
    for e in [
        Event::ReminderDue { step: 1 },
        Event::ExpiryDue { step: 1 },
        Event::ExpiryDue { step: 99 },
    ] {
        assert_eq!(step(&s, None, &state, e), (state.clone(), vec![]));
    }
    // Timers before the start mean nothing either.
    let new = SessionState::new();
    assert_eq!(
        step(&s, None, &new, Event::ExpiryDue { step: 0 }),
        (new.clone(), vec![])
    );
    assert_eq!(step(&s, None, &new, reply("1")), (new.clone(), vec![]));
}

#[test]
fn stop_and_cancel_end_at_once_and_nothing_follows() {
    let s = survey();
    let (state, actions) = run(&s, vec![Event::Start, reply("4"), Event::Stop]);
    assert_eq!(state.status, SessionStatus::Cancelled);
    assert_eq!(state.answers.len(), 1);
    assert!(matches!(
        actions.last(),
        Some(Action::End {
            status: SessionStatus::Cancelled,
            ..
        })
    ));
    let (state2, _) = run(
        &s,
        vec![
            Event::Start,
            Event::Cancel("a new survey was started".into()),
        ],
    );
    assert_eq!(state2.reason.as_deref(), Some("a new survey was started"));
    for e in [
        Event::Start,
        reply("good"),
        Event::Stop,
        Event::Cancel("x".into()),
        Event::ReminderDue { step: state.step },
        Event::ExpiryDue { step: state.step },
    ] {
        assert_eq!(step(&s, None, &state, e), (state.clone(), vec![]));
    }
    // A second Start is ignored.
    let (started, _) = run(&s, vec![Event::Start]);
    assert_eq!(
        step(&s, None, &started, Event::Start),
        (started.clone(), vec![])
    );
}

#[test]
fn the_state_round_trips_through_json() {
    let s = survey();
    let (state, _) = run(
        &s,
        vec![Event::Start, reply("12.5"), Event::ReminderDue { step: 2 }],
    );
    let json = serde_json::to_value(&state).unwrap();
    assert_eq!(json["status"], "active");
    assert_eq!(json["answers"], json!({"visits": 12.5}));
    let back: SessionState = serde_json::from_value(json).unwrap();
    assert_eq!(back, state);
    assert_eq!(
        SessionStatus::parse("expired"),
        Some(SessionStatus::Expired)
    );
    assert_eq!(property_text(&json!(12.5)), "12.5");
    // JSON would write `8e-6`; the case and the export get the decimals a reply reads back.
    let tiny = crate::survey::answer::read_number("0.000008").expect("a number");
    assert_eq!(property_text(&serde_json::Value::Number(tiny)), "0.000008");
    assert_eq!(property_text(&json!(-0.25)), "-0.25");
    assert_eq!(property_text(&json!("bad")), "bad");
}

/// An event as the engine could deliver it: a reply, or a timer with a step near the state's.
#[derive(Clone, Debug)]
enum Gen {
    Reply(String),
    Reminder(i64),
    Expiry(i64),
    Stop,
}

fn gen() -> impl Strategy<Value = Gen> {
    prop_oneof![
        6 => prop_oneof![
            Just("1".to_string()), Just("2".to_string()), Just("skip".to_string()),
            Just("yes".to_string()), Just("25/12/2026".to_string()), Just("31/02/2026".to_string()),
            Just("".to_string()), "[a-z0-9 ]{0,8}",
        ].prop_map(Gen::Reply),
        3 => (-2i64..=0).prop_map(Gen::Reminder),
        1 => (-2i64..=0).prop_map(Gen::Expiry),
        1 => Just(Gen::Stop),
    ]
}

proptest! {
    #[test]
    fn any_sequence_stays_consistent(events in proptest::collection::vec(gen(), 0..60), attempts in 1u32..=4, times in 0u32..=3) {
        let mut s = survey();
        s.max_attempts = attempts;
        s.reminders = (times > 0).then_some(crate::survey::Reminders { every_minutes: 30, times });
        let (mut state, _) = step(&s, None, &SessionState::new(), Event::Start);
        let mut reminders_here = 0u32;
        for g in events {
            let event = match g {
                Gen::Reply(t) => Event::Reply(t),
                Gen::Reminder(d) => Event::ReminderDue { step: state.step.saturating_add_signed(d) },
                Gen::Expiry(d) => Event::ExpiryDue { step: state.step.saturating_add_signed(d) },
                Gen::Stop => Event::Stop,
            };
            let stale = matches!(event, Event::ReminderDue { step } | Event::ExpiryDue { step } if step != state.step);
            let is_reminder = matches!(event, Event::ReminderDue { .. });
            let (next, actions) = step(&s, None, &state, event);
            if state.status.is_finished() || stale {
                // A finished session and a stale timer change nothing.
                prop_assert_eq!(&next, &state);
                prop_assert!(actions.is_empty());
                continue;
            }
            if next.current_question != state.current_question {
                reminders_here = 0;
            }
            if is_reminder && !actions.is_empty() {
                reminders_here += 1;
            }
            prop_assert!(reminders_here <= times);
            if !next.status.is_finished() {
                prop_assert_eq!(next.reminders_sent, reminders_here);
            }
            // Never two questions outstanding: at most one message per event, and it asks
            // the current question (or ends the session).
            let sent = sends(&actions).len();
            let ended = actions.iter().any(|a| matches!(a, Action::End { .. }));
            prop_assert!(sent <= 1);
            prop_assert_eq!(next.status.is_finished(), next.current_question.is_none());
            prop_assert_eq!(ended, next.status.is_finished());
            if !next.status.is_finished() {
                prop_assert!(next.attempts < attempts);
                prop_assert!(next.step > state.step || actions.is_empty());
                let timers = actions.iter().filter(|a| matches!(a, Action::SetTimers { step, .. } if *step == next.step)).count();
                prop_assert_eq!(timers, usize::from(sent == 1));
            }
            // Answers only grow, by one key at most, and only for questions asked.
            prop_assert!(next.answers.len() <= state.answers.len() + 1);
            for k in next.answers.keys() {
                prop_assert!(s.questions.iter().any(|q| &q.key == k));
            }
            state = next;
        }
        // Whatever happened, expiry at the current step finishes an active session.
        if !state.status.is_finished() {
            let (end, _) = step(&s, None, &state, Event::ExpiryDue { step: state.step });
            prop_assert_eq!(end.status, SessionStatus::Expired);
            prop_assert_eq!(end.answers, state.answers);
        }
    }
}
