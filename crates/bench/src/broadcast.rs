//! `broadcast`: a broadcast to one group of N cases (1,000,000 by default) with a
//! templated text in two languages: the preview's time, then the fan-out into the outbox in a
//! child process (`run-fanout`), with its time and peak memory. No dispatcher runs, so the
//! figure is the fan-out alone.

use std::time::Instant;

use anyhow::{bail, Context};
use casecast_core::broadcast::Draft;
use casecast_core::gateway::config::GatewayKind;
use casecast_core::identifier::GroupName;
use casecast_store::gateways::NewGateway;
use serde_json::json;

use crate::common::{new_project, peak_rss_mib, Bench, Stopwatch};
use crate::groups::{import_cases, upload_in_process, ACTOR};

/// Sets up the project, times the preview, then runs and times the fan-out in a child process.
pub async fn run(bench: &Bench, cases: usize) -> anyhow::Result<()> {
    let db = bench.open().await?;
    let engine = db.dialect().name();
    let project = new_project(&db).await?;
    let started = Instant::now();
    let created = import_cases(&db, &project.slug, cases).await?;
    let group = db
        .create_group(project.id, &GroupName::parse("Everyone")?, ACTOR)
        .await?;
    let mut csv = String::from("case_id\n");
    for i in 0..cases {
        csv.push_str(&format!("bc-{i:07}\n"));
    }
    upload_in_process(&db, project.id, group.id, "everyone.csv", csv.into_bytes()).await?;
    db.create_gateway(
        project.id,
        &NewGateway {
            name: "Bench log".into(),
            kind: GatewayKind::Log,
            config: json!({}),
            callback_base_url: "http://127.0.0.1:8080".into(),
            max_segments_per_second: Some(100.0),
            max_attempts: None,
            prefixes: Vec::new(),
            is_default: true,
        },
    )
    .await?;
    println!(
        "[{engine}] setup: {created} cases in one group in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let project = db.project_by_id(project.id).await?;
    let draft = draft(group.id)?;
    db.close().await;
    let figures = bench.measure(&[
        "run-preview",
        "--project-id",
        &project.id.to_string(),
        "--group-id",
        &group.id.to_string(),
    ])?;
    println!("[{engine}] {figures}");
    let db = bench.open().await?;
    // The broadcast is created without workers running: its fan-out job waits for the child.
    let broadcast = casecast_engine::broadcasts::create_broadcast(
        &db,
        &casecast_engine::clock::SystemClock,
        &project,
        &draft,
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
        "run-fanout",
        "--project-id",
        &project.id.to_string(),
        "--occurrence",
        &occurrence.id.to_string(),
    ])?;
    println!("[{engine}] {figures}");
    Ok(())
}

/// The benchmark's broadcast: two languages, the case's name and a property.
fn draft(group_id: i64) -> anyhow::Result<Draft> {
    Ok(Draft::parse(&json!({
        "name": "Side effect notice",
        "recipients": {"case_groups": [group_id]},
        "content": {"sms": {
            "*": "Dear {case.name}, a new service is available in {case.district}. Reply STOP to opt out.",
            "sw": "Mpendwa {case.name}, huduma mpya inapatikana {case.district}.",
        }},
        "schedule": {"kind": "immediate"},
    }))?)
}

/// The measured preview: prints its time, CPU time and peak memory.
pub async fn run_preview(bench: &Bench, project_id: i64, group_id: i64) -> anyhow::Result<()> {
    let db = bench.open().await?;
    let project = db.project_by_id(project_id).await?;
    let draft = draft(group_id)?;
    let watch = Stopwatch::start();
    let preview = casecast_engine::preview_broadcast(
        &db,
        &casecast_engine::clock::SystemClock,
        &project,
        &draft,
    )
    .await?;
    println!(
        "preview of a broadcast to {} recipients ({} segments): {:.2} s (CPU {:.2} s), peak RSS {:.0} MiB",
        preview.recipients,
        preview.segments,
        watch.secs(),
        watch.cpu_secs(),
        peak_rss_mib().unwrap_or(f64::NAN)
    );
    Ok(())
}

/// The measured part: fans one occurrence out and prints the time, rate and peak memory.
pub async fn run_fanout(bench: &Bench, project_id: i64, occurrence_id: i64) -> anyhow::Result<()> {
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
    println!(
        "fan-out of {} messages into the outbox: {secs:.2} s ({:.0} messages/s; CPU {cpu:.2} s), peak RSS {:.0} MiB",
        o.queued,
        o.queued as f64 / secs,
        peak_rss_mib().unwrap_or(f64::NAN)
    );
    Ok(())
}
