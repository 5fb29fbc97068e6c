//! `surveys`: issue 13's figures. A group of N cases (100,000 by default) is sent a
//! three-question survey by a broadcast: (a) the fan-out that starts every session (session,
//! first message, link between them) is timed in a child process (`run-survey-start`); then
//! (b) with those sessions active, R replies (answers to the first question, each from another
//! number) are handled end to end through `casecast_engine::inbound::handle_inbound` (stored,
//! parsed, answer saved, next question queued) from several concurrent tasks in a child
//! process (`run-survey-replies`), which prints replies/s, the latency from a reply's arrival
//! to its next question queued (p50, p99, max) and its peak memory. No dispatcher runs: the
//! figures are the fan-out's and the inbound router's alone.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context};
use casecast_core::broadcast::Draft;
use casecast_core::gateway::config::GatewayKind;
use casecast_core::gateway::InboundSms;
use casecast_core::identifier::GroupName;
use casecast_core::survey::Survey;
use casecast_store::gateways::NewGateway;
use serde_json::json;

use crate::common::{new_project, peak_rss_mib, Bench, Stopwatch};
use crate::groups::{import_generated, phone_digits, upload_in_process, ACTOR};

/// Case `i`'s ID: a UUID (version 4 in form, derived from `i` so that the sheets written apart
/// agree), as real case IDs are.
pub(crate) fn case_id(i: usize) -> String {
    fn mix(mut z: u64) -> u64 {
        // splitmix64
        z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    let x = mix(i as u64);
    let y = mix(x);
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        x >> 32,
        (x >> 16) & 0xffff,
        x & 0xfff,
        0x8000 | ((y >> 48) & 0x3fff),
        y & 0xffff_ffff_ffff
    )
}

/// Cases `from..to` of the bench's project: UUID case IDs, a number each, one in five in Swahili.
pub(crate) fn write_cases(path: &std::path::Path, from: usize, to: usize) -> anyhow::Result<()> {
    let mut out = String::from("case_id,external_id,name,phone_number,district,language_code\n");
    for i in from..to {
        out.push_str(&format!(
            "{},BX-{i:07},Participant {i},+256{},Gulu,{}\n",
            case_id(i),
            phone_digits(i),
            if i % 5 == 0 { "sw" } else { "en" }
        ));
    }
    std::fs::write(path, out)?;
    Ok(())
}

/// A new project as the survey and keyword benchmarks find one: `cases` cases with UUID case
/// IDs, two groups with their upload reports (as a real project holds), and a default `log`
/// gateway. Returns it and how many cases were made.
pub(crate) async fn realistic_project(
    db: &casecast_store::Db,
    cases: usize,
) -> anyhow::Result<(casecast_store::projects::Project, usize)> {
    realistic_project_with(db, cases, write_cases).await
}

/// [`realistic_project`] with its cases from the sheets `write` makes (rows `from..to` into a
/// file; case `i`'s ID must be [`case_id`]`(i)`).
pub(crate) async fn realistic_project_with(
    db: &casecast_store::Db,
    cases: usize,
    write: impl Fn(&std::path::Path, usize, usize) -> anyhow::Result<()>,
) -> anyhow::Result<(casecast_store::projects::Project, usize)> {
    let project = new_project(db).await?;
    let created = import_generated(db, &project.slug, cases, write).await?;
    for (name, every) in [("Kitgum follow-up", 5), ("Former participants", 7)] {
        let other = db
            .create_group(project.id, &GroupName::parse(name)?, ACTOR)
            .await?;
        let mut csv = String::from("case_identifier\n");
        for i in (0..cases).step_by(every) {
            csv.push_str(&case_id(i));
            csv.push('\n');
        }
        upload_in_process(db, project.id, other.id, "other.csv", csv.into_bytes()).await?;
    }
    db.create_gateway(
        project.id,
        &NewGateway {
            name: "Bench log".into(),
            kind: GatewayKind::Log,
            config: json!({}),
            callback_base_url: "http://127.0.0.1:8080".into(),
            max_segments_per_second: None,
            max_attempts: None,
            prefixes: Vec::new(),
            is_default: true,
        },
    )
    .await?;
    Ok((project, created))
}

/// Sets up the project (cases, group, gateway, survey), then runs the timed start and replies
/// in child processes.
pub async fn run(
    bench: &Bench,
    cases: usize,
    replies: usize,
    concurrency: usize,
) -> anyhow::Result<()> {
    if replies > cases {
        bail!("--replies ({replies}) must not be more than --cases ({cases}): one reply a session");
    }
    let db = bench.open().await?;
    let engine = db.dialect().name();
    let started = Instant::now();
    let (project, created) = realistic_project(&db, cases).await?;
    let group = db
        .create_group(project.id, &GroupName::parse("Everyone")?, ACTOR)
        .await?;
    let mut csv = String::from("case_id\n");
    for i in 0..cases {
        csv.push_str(&case_id(i));
        csv.push('\n');
    }
    upload_in_process(&db, project.id, group.id, "everyone.csv", csv.into_bytes()).await?;
    let survey = db.create_survey(project.id, &survey()?, None).await?;
    println!(
        "[{engine}] setup: {created} cases (UUID case IDs), the survey's group and two other groups with their upload reports, in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let project = db.project_by_id(project.id).await?;
    // The broadcast is created without workers running: its fan-out job waits for the child.
    let broadcast = casecast_engine::broadcasts::create_broadcast(
        &db,
        &casecast_engine::clock::SystemClock,
        &project,
        &Draft::parse(&json!({
            "name": "ANC survey",
            "recipients": {"case_groups": [group.id]},
            "content": {"survey": survey.id},
            "schedule": {"kind": "immediate"},
        }))?,
        None,
    )
    .await?;
    let occurrence = db
        .broadcast_occurrences(project.id, broadcast.id, 1)
        .await?
        .pop()
        .context("the broadcast did not fire")?;
    db.close().await;
    let figures = bench.measure(&[
        "run-survey-start",
        "--project-id",
        &project.id.to_string(),
        "--occurrence",
        &occurrence.id.to_string(),
    ])?;
    println!("[{engine}] {figures}");
    if replies > 0 {
        let figures = bench.measure(&[
            "run-survey-replies",
            "--project-id",
            &project.id.to_string(),
            "--survey-id",
            &survey.id.to_string(),
            "--replies",
            &replies.to_string(),
            "--cases",
            &cases.to_string(),
            "--concurrency",
            &concurrency.to_string(),
        ])?;
        println!("[{engine}] {figures}");
    }
    Ok(())
}

/// The benchmark's survey: an intro and three questions (a number with a range, a choice, a
/// date), in two languages, with reminders.
fn survey() -> anyhow::Result<Survey> {
    Survey::parse(&json!({
        "name": "ANC follow-up",
        "intro": {"*": "Hello from the clinic: three short questions.", "sw": "Habari kutoka kliniki: maswali matatu."},
        "end_text": "Thank you.",
        "reminders": {"every_minutes": 60, "times": 2},
        "expire_after_minutes": 1440,
        "questions": [
            {"key": "visits", "type": "number", "text": {"*": "How many clinic visits so far?", "sw": "Umetembelea kliniki mara ngapi?"},
             "min": 0, "max": 20, "case_property": "anc_visits"},
            {"key": "feeling", "type": "choice", "text": "How do you feel?",
             "choices": [{"value": "good", "text": "Good"}, {"value": "bad", "text": "Bad"}, {"value": "unsure", "text": "Not sure"}]},
            {"key": "due", "type": "date", "text": "Expected delivery date?"}
        ]
    }))
    .map_err(|problems| {
        anyhow::anyhow!(
            "the benchmark's survey: {}",
            problems
                .iter()
                .map(|p| p.to_string())
                .collect::<Vec<_>>()
                .join("; ")
        )
    })
}

/// (a) The measured start: fans the survey broadcast's occurrence out (a session and a first
/// message per recipient) and prints the time, rate and peak memory.
pub async fn run_start(bench: &Bench, project_id: i64, occurrence_id: i64) -> anyhow::Result<()> {
    let db = bench.open().await?;
    let worker = "bench";
    let watch = Stopwatch::start();
    let job = db
        .claim_job_for(casecast_store::jobs::JobKind::Fanout, occurrence_id, worker)
        .await?
        .context("the fan-out's job was not found")?;
    casecast_engine::fanout::process_fanout(
        &db,
        occurrence_id,
        job.id,
        worker,
        &casecast_engine::faults::Faults::none(),
    )
    .await?;
    db.finish_job(job.id).await?;
    let (secs, cpu) = (watch.secs(), watch.cpu_secs());
    let o = db.occurrence(project_id, occurrence_id).await?;
    if o.status != casecast_core::states::OccurrenceStatus::Done {
        bail!("the occurrence ended {}: {:?}", o.status, o.error);
    }
    let survey_id = match db.broadcast(project_id, o.broadcast_id).await?.content {
        casecast_core::broadcast::BroadcastContent::Survey(id) => id,
        _ => bail!("not a survey broadcast"),
    };
    let active = db
        .session_counts(survey_id)
        .await?
        .get("active")
        .copied()
        .unwrap_or(0);
    if active != o.queued {
        bail!(
            "{} messages were queued but {active} sessions are active",
            o.queued
        );
    }
    println!(
        "survey start: {active} sessions and first messages in {secs:.2} s ({:.0} sessions/s; CPU {cpu:.2} s), peak RSS {:.0} MiB",
        active as f64 / secs,
        peak_rss_mib().unwrap_or(f64::NAN)
    );
    Ok(())
}

/// Sessions whose state is read back after the replies.
const CHECKED: usize = 2_000;

/// What the replies child is told.
pub struct Replies {
    pub project_id: i64,
    pub survey_id: i64,
    pub replies: usize,
    pub cases: usize,
    pub concurrency: usize,
}

/// (b) The measured replies: `replies` numbers (spread over the `cases`) each answer the first
/// question, from `concurrency` tasks; prints replies/s, latency percentiles and peak memory,
/// after checking that every reply was saved and its next question queued.
pub async fn run_replies(bench: &Bench, r: Replies) -> anyhow::Result<()> {
    let db = bench.open().await?;
    let gateway = db
        .list_gateways(r.project_id)
        .await?
        .into_iter()
        .next()
        .context("the project has no gateway")?;
    let before = db.session_counts(r.survey_id).await?;
    let next = Arc::new(AtomicUsize::new(0));
    let stride = (r.cases / r.replies.max(1)).max(1);
    let watch = Stopwatch::start();
    let mut tasks = Vec::new();
    for _ in 0..r.concurrency.max(1) {
        let (db, gateway, next) = (db.clone(), gateway.clone(), next.clone());
        let replies = r.replies;
        tasks.push(tokio::spawn(async move {
            let mut latencies: Vec<(f64, i64)> = Vec::new();
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= replies {
                    return Ok::<_, anyhow::Error>(latencies);
                }
                let i = n * stride;
                let sms = InboundSms {
                    from: format!("+256{}", phone_digits(i)),
                    to: "6000".into(),
                    text: format!(" {} ", i % 21),
                    gateway_message_id: Some(format!("bench-{i}")),
                };
                let arrived = Instant::now();
                let outcome = casecast_engine::inbound::handle_inbound(
                    &db,
                    &casecast_engine::clock::SystemClock,
                    &gateway,
                    &sms,
                )
                .await?;
                let ms = arrived.elapsed().as_secs_f64() * 1000.0;
                let Some(session) = outcome.session_id else {
                    bail!("reply {n} (case {i}) found no session");
                };
                latencies.push((ms, session));
            }
        }));
    }
    let mut handled = Vec::with_capacity(r.replies);
    for t in tasks {
        handled.extend(t.await??);
    }
    let (secs, cpu) = (watch.secs(), watch.cpu_secs());
    // Each reply went to its own session, and (checked on a sample, after the clock stopped)
    // saved its answer and moved the session to the second question.
    let mut sessions: Vec<i64> = handled.iter().map(|(_, s)| *s).collect();
    sessions.sort_unstable();
    sessions.dedup();
    if sessions.len() != r.replies {
        bail!("{} replies went to {} sessions", r.replies, sessions.len());
    }
    let step = (sessions.len() / CHECKED).max(1);
    for id in sessions.iter().step_by(step) {
        let s = db.survey_session(r.project_id, *id).await?;
        if s.current_question != Some(1) || !s.answers.contains_key("visits") {
            bail!(
                "session {id} is at question {:?} with answers {:?} after its reply",
                s.current_question,
                s.answers
            );
        }
    }
    let active = db.session_counts(r.survey_id).await?.get("active").copied();
    if active != before.get("active").copied() {
        bail!("active sessions went from {before:?} to {active:?}: a reply ended one");
    }
    let mut latencies: Vec<f64> = handled.iter().map(|(ms, _)| *ms).collect();
    latencies.sort_by(f64::total_cmp);
    let at = |q: f64| {
        let i = ((latencies.len() as f64 * q).ceil() as usize).saturating_sub(1);
        latencies.get(i).copied().unwrap_or(f64::NAN)
    };
    println!(
        "survey replies: {} replies from {} tasks in {secs:.2} s ({:.0} replies/s; CPU {cpu:.2} s); \
         latency to the next question queued p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; peak RSS {:.0} MiB",
        r.replies,
        r.concurrency,
        r.replies as f64 / secs,
        at(0.50),
        at(0.99),
        at(1.0),
        peak_rss_mib().unwrap_or(f64::NAN)
    );
    Ok(())
}
