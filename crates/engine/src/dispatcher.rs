//! The dispatcher: hands queued messages to their gateways, in every `serve` and `worker`
//! process alike.
//!
//! Several lanes per process each loop over the live gateways: claim a batch of due messages
//! (the claim reserves their slots in the gateway's shared rate limit), hand each to the
//! gateway at its slot, then record all the answers in one transaction. A sweeper expires
//! messages past their validity and takes back messages whose dispatcher died mid-send.
//! Nothing is handed over during the project's quiet hours.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use casecast_core::sms::Encoding;
use casecast_core::PhoneNumber;
use casecast_gateways::config::AnyGateway;
use casecast_gateways::{OutboundSms, SendError, SmsGateway};
use casecast_store::gateways::Gateway;
use casecast_store::outbox::{now_us, Claim, ClaimRequest, Claimed, Outcome, SendResult};
use casecast_store::settings::MessagingSettings;
use casecast_store::Db;
use futures_util::future::join_all;
use tokio::sync::watch;

/// How a dispatcher works; the defaults suit production, tests shorten the times.
#[derive(Clone, Debug)]
pub struct DispatchOptions {
    /// Claim-send-record loops per process.
    pub lanes: usize,
    /// Most messages per claim (and so per lane in flight).
    pub batch: usize,
    /// How far ahead a claim reserves rate-limit slots.
    pub window_ms: i64,
    /// How long a claim holds its messages before another dispatcher may take them back.
    pub lease_ms: i64,
    /// The wait before the first retry; doubled for each further attempt.
    pub retry_base_ms: i64,
    /// The longest wait between attempts.
    pub retry_max_ms: i64,
    /// How often the gateway list (and settings) is read again.
    pub refresh_ms: u64,
    /// How often the sweeper runs.
    pub sweep_ms: u64,
}

impl Default for DispatchOptions {
    fn default() -> Self {
        DispatchOptions {
            lanes: 4,
            batch: 100,
            window_ms: 250,
            lease_ms: 60_000,
            retry_base_ms: 5_000,
            retry_max_ms: 10 * 60_000,
            refresh_ms: 2_000,
            sweep_ms: 5_000,
        }
    }
}

/// A live gateway, ready to send, with what its project says about when to send.
struct Entry {
    gateway: Gateway,
    sender: AnyGateway,
    zone: jiff::tz::TimeZone,
    settings: MessagingSettings,
}

impl Entry {
    /// Whether the project's quiet hours hold now.
    fn quiet_now(&self) -> bool {
        self.settings
            .quiet_hours()
            .is_some_and(|q| q.contains(jiff::Timestamp::now(), &self.zone))
    }
}

type Registry = Arc<Mutex<Arc<Vec<Arc<Entry>>>>>;

/// Reads the live gateways, building each sender once per change of its settings.
async fn refresh(db: &Db, http: &reqwest::Client, registry: &Registry) {
    let gateways = match db.all_live_gateways().await {
        Ok(g) => g,
        Err(e) => {
            tracing::error!(error = %e, "dispatcher: reading gateways failed");
            return;
        }
    };
    let old: HashMap<i64, Arc<Entry>> = registry
        .lock()
        .expect("registry lock")
        .iter()
        .map(|e| (e.gateway.id, e.clone()))
        .collect();
    let mut projects = HashMap::new();
    let mut entries = Vec::with_capacity(gateways.len());
    for g in gateways {
        let project = match projects.get(&g.project_id) {
            Some(p) => Some(p),
            None => match db.project_by_id(g.project_id).await {
                Ok(p) => {
                    projects.insert(g.project_id, p);
                    projects.get(&g.project_id)
                }
                Err(e) => {
                    tracing::error!(error = %e, gateway.id = g.id, "dispatcher: reading a project failed");
                    None
                }
            },
        };
        let Some(project) = project else { continue };
        let entry = match old.get(&g.id) {
            Some(e)
                if e.gateway.modified_at == g.modified_at
                    && e.settings == project.messaging
                    && e.zone == project.zone() =>
            {
                e.clone()
            }
            _ => Arc::new(Entry {
                sender: AnyGateway::build(g.config.clone(), &g.callbacks(), http.clone()),
                gateway: g,
                zone: project.zone(),
                settings: project.messaging.clone(),
            }),
        };
        entries.push(entry);
    }
    *registry.lock().expect("registry lock") = Arc::new(entries);
}

/// Runs the dispatcher until `stop` turns true.
pub async fn run_dispatcher(
    db: Db,
    worker: String,
    options: DispatchOptions,
    mut stop: watch::Receiver<bool>,
) {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .build()
        .expect("an HTTP client without TLS builds");
    let registry: Registry = Arc::new(Mutex::new(Arc::new(Vec::new())));
    refresh(&db, &http, &registry).await;
    let mut tasks = Vec::new();
    {
        let (db, http, registry, mut stop, every) = (
            db.clone(),
            http.clone(),
            registry.clone(),
            stop.clone(),
            Duration::from_millis(options.refresh_ms),
        );
        tasks.push(tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = tokio::time::sleep(every) => refresh(&db, &http, &registry).await,
                    _ = stop.changed() => break,
                }
            }
        }));
    }
    {
        let (db, mut stop, every) = (
            db.clone(),
            stop.clone(),
            Duration::from_millis(options.sweep_ms),
        );
        tasks.push(tokio::spawn(async move {
            loop {
                match db.sweep_outbox().await {
                    Ok((0, 0)) => {}
                    Ok((expired, taken_back)) => {
                        tracing::info!(expired, taken_back, "dispatcher: outbox swept")
                    }
                    Err(e) => tracing::error!(error = %e, "dispatcher: sweeping the outbox failed"),
                }
                tokio::select! {
                    () = tokio::time::sleep(every) => {}
                    _ = stop.changed() => break,
                }
            }
        }));
    }
    for lane in 0..options.lanes.max(1) {
        let (db, registry, stop, options) =
            (db.clone(), registry.clone(), stop.clone(), options.clone());
        let name = format!("{worker}/{lane}");
        tasks.push(tokio::spawn(async move {
            run_lane(db, name, lane, registry, options, stop).await
        }));
    }
    tracing::info!(worker = %worker, lanes = options.lanes, "dispatcher started");
    let _ = stop.wait_for(|s| *s).await;
    for t in tasks {
        let _ = t.await;
    }
    tracing::info!(worker = %worker, "dispatcher stopped");
}

/// One claim-send-record loop over all gateways.
async fn run_lane(
    db: Db,
    name: String,
    lane: usize,
    registry: Registry,
    options: DispatchOptions,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        if *stop.borrow() {
            break;
        }
        let entries = registry.lock().expect("registry lock").clone();
        let mut worked = false;
        // The earliest instant a throttled gateway frees up (ms), to sleep no longer than that.
        let mut wake_at: Option<i64> = None;
        // Lanes start at different gateways so that one busy gateway does not hold them all.
        let n = entries.len();
        for i in 0..n {
            let entry = &entries[(i + lane) % n];
            if entry.quiet_now() {
                continue;
            }
            let request = ClaimRequest {
                gateway_id: entry.gateway.id,
                rate: entry.gateway.max_segments_per_second,
                max_messages: options.batch,
                window_ms: options.window_ms,
                worker: &name,
                lease_ms: options.lease_ms,
            };
            match db.claim_outbound(&request).await {
                Ok(Claim::Messages(batch)) => {
                    worked = worked || !batch.is_empty();
                    send_batch(&db, entry, batch, &options).await;
                }
                Ok(Claim::Throttled { until_ms }) => {
                    wake_at = Some(wake_at.map_or(until_ms, |w| w.min(until_ms)));
                }
                Ok(Claim::Empty) => {}
                Err(e) => {
                    tracing::error!(error = %e, gateway.id = entry.gateway.id, "dispatcher: claiming messages failed");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
        if worked {
            continue;
        }
        let nap = match wake_at {
            Some(at) => (at - casecast_core::time::now_ms()).clamp(1, 500) as u64,
            None => 500,
        };
        tokio::select! {
            () = db.message_queued() => {}
            () = tokio::time::sleep(Duration::from_millis(nap)) => {}
            _ = stop.changed() => {}
        }
    }
}

/// The wait before attempt `attempts + 1`.
fn backoff(options: &DispatchOptions, attempts: i64, id: i64) -> i64 {
    let exp = (attempts - 1).clamp(0, 20) as u32;
    let wait = options
        .retry_base_ms
        .saturating_mul(1_i64 << exp)
        .min(options.retry_max_ms);
    // Spread retries of one failed batch a little so they do not all come back at once.
    wait + wait * (id % 10) / 50
}

/// Hands a claimed batch to the gateway, each message at its slot, and records the answers.
async fn send_batch(db: &Db, entry: &Entry, batch: Vec<Claimed>, options: &DispatchOptions) {
    let sends = batch.into_iter().map(|m| async move {
        let wait_us = m.not_before_us - now_us();
        if wait_us > 0 {
            tokio::time::sleep(Duration::from_micros(wait_us as u64)).await;
        }
        let sms = OutboundSms {
            message_id: m.id,
            to: PhoneNumber::from_stored(m.phone.clone()),
            from: None,
            text: m.text.clone(),
            encoding: if m.encoding == "ucs2" {
                Encoding::Ucs2
            } else {
                Encoding::Gsm7
            },
            segments: m.segments as usize,
        };
        let outcome = match entry.sender.send(&sms).await {
            Ok(accepted) => Outcome::Sent {
                gateway_message_id: accepted.gateway_message_id,
            },
            Err(SendError::Temporary(error)) => Outcome::Retry {
                error,
                next_attempt_at: casecast_core::time::now_ms() + backoff(options, m.attempts, m.id),
            },
            Err(SendError::Permanent(error)) => Outcome::Failed { error },
        };
        SendResult {
            id: m.id,
            attempts: m.attempts,
            max_attempts: entry.gateway.max_attempts,
            expires_at: m.expires_at,
            outcome,
        }
    });
    let results = join_all(sends).await;
    // Recording must not be lost to a passing database error: the messages would stay
    // `sending` until the sweeper sends them again.
    for attempt in 1..=5 {
        match db.record_send_results(&results).await {
            Ok(()) => return,
            Err(e) => {
                tracing::error!(error = %e, attempt, "dispatcher: recording results failed");
                tokio::time::sleep(Duration::from_millis(200 * attempt)).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_capped() {
        let o = DispatchOptions::default();
        assert_eq!(backoff(&o, 1, 0), 5_000);
        assert_eq!(backoff(&o, 2, 0), 10_000);
        assert_eq!(backoff(&o, 3, 0), 20_000);
        assert_eq!(backoff(&o, 30, 0), 600_000);
        assert!(backoff(&o, 1, 9) > backoff(&o, 1, 0));
    }
}
