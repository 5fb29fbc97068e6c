//! `keywords`: issue 14's figures. A project of K known cases (25,000 by default, UUID case
//! IDs, two other groups with their upload reports) has two keywords: `REG <name> <birth date>`
//! (an unknown sender becomes a case: set_properties and a reply using `{case.name}`) and
//! `JOIN` (add to the group "ANC" and a reply). Then M messages (50,000 by default), half `REG`
//! from numbers of no case and half `JOIN` from the known cases, each from its own number, go
//! through the inbound router (`casecast_engine::inbound::handle_inbound`) from C messages in
//! flight in a child process (`run-keywords`), which prints messages/s, the latency from a
//! message's arrival to its reply queued (p50, p99, max) and its peak memory, then checks that
//! every REG made one case, every JOIN joined, and every message got its reply.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context};
use casecast_core::gateway::InboundSms;
use casecast_core::identifier::GroupName;
use casecast_core::keyword::Keyword;
use serde_json::json;

use crate::common::{peak_rss_mib, Bench, Stopwatch};
use crate::groups::{phone_digits, ACTOR};
use crate::surveys::realistic_project;

/// Numbers of no case start here (the known cases' are `phone_digits(0..K)`).
const UNKNOWN: usize = 5_000_000;

/// Sets up the project, then runs the timed messages in a child process.
pub async fn run(
    bench: &Bench,
    cases: usize,
    messages: usize,
    concurrency: usize,
) -> anyhow::Result<()> {
    if messages / 2 > cases {
        bail!("--messages ({messages}) must be at most twice --cases ({cases}): one JOIN a case");
    }
    let db = bench.open().await?;
    let engine = db.dialect().name();
    let started = Instant::now();
    let (project, created) = realistic_project(&db, cases).await?;
    let anc = db
        .create_group(project.id, &GroupName::parse("ANC")?, ACTOR)
        .await?;
    let reserved = ["STOP", "START"];
    let parse = |body: serde_json::Value| {
        Keyword::parse(&body, &reserved).map_err(|problems| {
            anyhow::anyhow!(
                "the benchmark's keyword: {}",
                problems
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; ")
            )
        })
    };
    db.create_keyword(
        project.id,
        &parse(json!({
            "keyword": "REG", "fields": ["name", "birth_date"], "unknown_sender": "create_case",
            "case_type": "participant",
            "actions": [{"type": "set_properties"},
                        {"type": "reply", "text": {"*": "Welcome {case.name}: you are registered.",
                                                   "sw": "Karibu {case.name}."}}]
        }))?,
        None,
    )
    .await?;
    db.create_keyword(
        project.id,
        &parse(json!({
            "keyword": "JOIN", "fields": ["programme"],
            "actions": [{"type": "add_to_group", "case_group_id": anc.id},
                        {"type": "reply", "text": "You will get {field.programme} reminders."}]
        }))?,
        None,
    )
    .await?;
    println!(
        "[{engine}] setup: {created} cases (UUID case IDs), two groups with their upload reports, the ANC group, keywords REG and JOIN, in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    db.close().await;
    let figures = bench.measure(&[
        "run-keywords",
        "--project-id",
        &project.id.to_string(),
        "--group-id",
        &anc.id.to_string(),
        "--messages",
        &messages.to_string(),
        "--concurrency",
        &concurrency.to_string(),
    ])?;
    println!("[{engine}] {figures}");
    Ok(())
}

/// What the messages child is told.
pub struct Messages {
    pub project_id: i64,
    pub group_id: i64,
    pub messages: usize,
    pub concurrency: usize,
}

/// The measured messages: even ones `JOIN ANC` from known case n/2, odd ones
/// `REG Name YYYY-MM-DD` from unknown numbers; prints messages/s, latency and peak memory after
/// checking the outcome.
pub async fn run_messages(bench: &Bench, m: Messages) -> anyhow::Result<()> {
    let db = bench.open().await?;
    let gateway = db
        .list_gateways(m.project_id)
        .await?
        .into_iter()
        .next()
        .context("the project has no gateway")?;
    let cases_before = db.count_cases(m.project_id).await?;
    let next = Arc::new(AtomicUsize::new(0));
    let watch = Stopwatch::start();
    let mut tasks = Vec::new();
    for _ in 0..m.concurrency.max(1) {
        let (db, gateway, next) = (db.clone(), gateway.clone(), next.clone());
        let total = m.messages;
        tasks.push(tokio::spawn(async move {
            let mut latencies: Vec<f64> = Vec::new();
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= total {
                    return Ok::<_, anyhow::Error>(latencies);
                }
                let (from, text) = if n % 2 == 0 {
                    (phone_digits(n / 2), "JOIN ANC".to_string())
                } else {
                    (
                        phone_digits(UNKNOWN + n / 2),
                        format!("REG Person{n} 1990-{:02}-{:02}", n % 12 + 1, n % 28 + 1),
                    )
                };
                let sms = InboundSms {
                    from: format!("+256{from}"),
                    to: "6000".into(),
                    text,
                    gateway_message_id: Some(format!("kw-{n}")),
                };
                let arrived = Instant::now();
                let outcome = casecast_engine::inbound::handle_inbound(
                    &db,
                    &casecast_engine::clock::SystemClock,
                    &gateway,
                    &sms,
                )
                .await?;
                if !outcome.recorded {
                    bail!("message {n} was not recorded");
                }
                latencies.push(arrived.elapsed().as_secs_f64() * 1000.0);
            }
        }));
    }
    let mut latencies = Vec::with_capacity(m.messages);
    for t in tasks {
        latencies.extend(t.await??);
    }
    let (secs, cpu) = (watch.secs(), watch.cpu_secs());
    let made = db.count_cases(m.project_id).await? - cases_before;
    let regs = (m.messages / 2) as i64;
    if made != regs {
        bail!("{regs} REG messages made {made} cases");
    }
    let joined = db.get_group(m.project_id, m.group_id).await?.case_count;
    let joins = m.messages.div_ceil(2) as i64;
    if joined != joins {
        bail!("{joins} JOIN messages left {joined} members");
    }
    let queued = db.count_auto_replies(m.project_id).await?;
    if queued != m.messages as i64 {
        bail!("{} messages got {queued} replies", m.messages);
    }
    latencies.sort_by(f64::total_cmp);
    let at = |q: f64| {
        let i = ((latencies.len() as f64 * q).ceil() as usize).saturating_sub(1);
        latencies.get(i).copied().unwrap_or(f64::NAN)
    };
    println!(
        "keywords: {} messages (half REG making a case, half JOIN with a reply) from {} in flight in {secs:.2} s ({:.0} messages/s; CPU {cpu:.2} s); \
         latency to the reply queued p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; peak RSS {:.0} MiB",
        m.messages,
        m.concurrency,
        m.messages as f64 / secs,
        at(0.50),
        at(0.99),
        at(1.0),
        peak_rss_mib().unwrap_or(f64::NAN)
    );
    Ok(())
}
