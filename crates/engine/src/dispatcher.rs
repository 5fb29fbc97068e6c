//! The dispatcher: hands queued messages to their gateways, in every `serve` and `worker`
//! process alike.
//!
//! Several lanes per process each loop over the live gateways: claim due messages (the claim
//! reserves their slots in the gateway's shared rate limit) as far as the gateway has room for
//! more requests in flight, hand each to the gateway at its slot, and record the answers as
//! they come, many per transaction. A sweeper expires messages past their validity and takes
//! back messages whose dispatcher died mid-send. Nothing is handed over during the project's
//! quiet hours, nor while its stored messaging settings cannot be used (the quiet hours are not
//! known then): that is logged as an error at every refresh until an admin saves them again.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use casecast_core::quiet_hours::QuietHours;
use casecast_core::sms::Encoding;
use casecast_core::PhoneNumber;
use casecast_gateways::config::AnyGateway;
use casecast_gateways::{AddressPolicy, GatewayHttp, OutboundSms, SendError, SmsGateway};
use casecast_store::gateways::Gateway;
use casecast_store::outbox::{now_us, Claim, ClaimRequest, Claimed, Outcome, SendResult};
use casecast_store::projects::Project;
use casecast_store::settings::{MessagingSettings, SettingsError};
use casecast_store::Db;
use tokio::sync::{mpsc, watch, Notify, Semaphore};
use tokio::task::JoinSet;

/// How a dispatcher works; the defaults suit production, tests shorten the times.
#[derive(Clone, Debug)]
pub struct DispatchOptions {
    /// Claim-send-record loops per process.
    pub lanes: usize,
    /// Most messages per claim.
    pub batch: usize,
    /// Most requests in flight to one gateway from this process, whatever the lanes: gateways
    /// (Kannel's smsbox among them) take a few dozen keep-alive connections well, and stall
    /// on bursts of hundreds of new ones. Claims keep twice as many messages ready, so that a
    /// request starts as soon as another ends; a claimed message so waits at most about two
    /// request timeouts (10 s each) before it is handed over, well within `lease_ms`.
    pub max_in_flight: usize,
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
    /// The addresses gateways may be reached at (by default no loopback, link-local or
    /// private one: `--allow-gateway-host`).
    pub gateway_addresses: AddressPolicy,
}

impl Default for DispatchOptions {
    fn default() -> Self {
        DispatchOptions {
            lanes: 4,
            batch: 100,
            max_in_flight: 64,
            window_ms: 250,
            lease_ms: 60_000,
            retry_base_ms: 5_000,
            retry_max_ms: 10 * 60_000,
            refresh_ms: 2_000,
            sweep_ms: 5_000,
            gateway_addresses: AddressPolicy::default(),
        }
    }
}

/// A live gateway, ready to send, with what its project says about when to send.
struct Entry {
    gateway: Gateway,
    sender: AnyGateway,
    /// Permits for requests in flight to this gateway (`DispatchOptions::max_in_flight`).
    in_flight: Arc<Semaphore>,
    /// Permits for messages claimed and not yet answered (twice `in_flight`).
    claimed: Arc<Semaphore>,
    zone: jiff::tz::TimeZone,
    /// The project's settings as read, to tell when they change.
    settings: Result<MessagingSettings, SettingsError>,
    /// When the project's messages may be handed over.
    window: Window,
}

/// When a project's messages may be handed over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Window {
    /// Any time: the project has no quiet hours.
    Always,
    /// Outside its quiet hours.
    OutsideQuietHours(QuietHours),
    /// Not at all: its stored settings cannot be used, so its quiet hours are not known.
    Held,
}

impl Window {
    /// The window a project's settings give.
    fn of(project: &Project) -> Window {
        match project
            .messaging
            .as_ref()
            .map(MessagingSettings::quiet_hours)
        {
            Ok(Ok(None)) => Window::Always,
            Ok(Ok(Some(q))) => Window::OutsideQuietHours(q),
            // Stored settings are checked as they are read: quiet hours that do not parse
            // cannot come from storage, and are held all the same.
            Ok(Err(_)) | Err(_) => Window::Held,
        }
    }
}

impl Entry {
    /// Whether nothing may be handed over now: the project's quiet hours hold, or its settings
    /// cannot be used.
    fn held_now(&self) -> bool {
        match self.window {
            Window::Always => false,
            Window::OutsideQuietHours(q) => q.contains(jiff::Timestamp::now(), &self.zone),
            Window::Held => true,
        }
    }
}

type Registry = Arc<Mutex<Arc<Vec<Arc<Entry>>>>>;

/// Reads the live gateways, building each sender once per change of its settings.
async fn refresh(db: &Db, http: &GatewayHttp, registry: &Registry, max_in_flight: usize) {
    let gateways = match db.all_live_gateways().await {
        Ok(g) => g,
        Err(e) => {
            tracing::error!(error = %e, "dispatcher: reading gateways failed");
            return;
        }
    };
    // The registry is replaced whole under its lock, never changed in place: a panic while
    // it was held cannot leave it half-written, so a poisoned lock is read as it is.
    let old: HashMap<i64, Arc<Entry>> = registry
        .lock()
        .unwrap_or_else(|p| p.into_inner())
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
                    if let Err(e) = &p.messaging {
                        // Once per project and refresh; the error names a field, never a
                        // number or a message's text.
                        tracing::error!(project.id = p.id, error = %e, "dispatcher: the project's messaging settings cannot be used; its messages are held until an admin saves them again");
                    }
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
                // A changed gateway gets new permits: for a moment, the old entry's sends may
                // still be in flight beside the new ones.
                in_flight: Arc::new(Semaphore::new(max_in_flight.max(1))),
                claimed: Arc::new(Semaphore::new(2 * max_in_flight.max(1))),
                gateway: g,
                zone: project.zone(),
                settings: project.messaging.clone(),
                window: Window::of(project),
            }),
        };
        entries.push(entry);
    }
    *registry.lock().unwrap_or_else(|p| p.into_inner()) = Arc::new(entries);
}

/// Runs the dispatcher until `stop` turns true.
pub async fn run_dispatcher(
    db: Db,
    worker: String,
    options: DispatchOptions,
    mut stop: watch::Receiver<bool>,
) {
    // Idle connections are kept for every request in flight (several gateways may share a
    // host): a connection closed after each burst would be opened again for the next.
    let http = GatewayHttp::with_idle_per_host(
        options.gateway_addresses.clone(),
        options.max_in_flight.max(256),
    );
    let registry: Registry = Arc::new(Mutex::new(Arc::new(Vec::new())));
    let max_in_flight = options.max_in_flight;
    refresh(&db, &http, &registry, max_in_flight).await;
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
                    () = tokio::time::sleep(every) => refresh(&db, &http, &registry, max_in_flight).await,
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
    // Wakes a lane waiting for room at a gateway when a send ends.
    let capacity = Arc::new(Notify::new());
    for lane in 0..options.lanes.max(1) {
        let (db, registry, stop, options, capacity) = (
            db.clone(),
            registry.clone(),
            stop.clone(),
            options.clone(),
            capacity.clone(),
        );
        let name = format!("{worker}/{lane}");
        tasks.push(tokio::spawn(async move {
            run_lane(db, name, lane, registry, options, capacity, stop).await
        }));
    }
    tracing::info!(worker = %worker, lanes = options.lanes, "dispatcher started");
    let _ = stop.wait_for(|s| *s).await;
    for t in tasks {
        let _ = t.await;
    }
    tracing::info!(worker = %worker, "dispatcher stopped");
}

/// One lane: claims due messages of each gateway while the gateway has room for more in flight,
/// hands each message over in a task of its own (at its slot), and records the answers as they
/// come, in transactions of whatever has arrived. A slow answer holds up only its own message.
async fn run_lane(
    db: Db,
    name: String,
    lane: usize,
    registry: Registry,
    options: DispatchOptions,
    capacity: Arc<Notify>,
    mut stop: watch::Receiver<bool>,
) {
    let options = Arc::new(options);
    let room = options.batch.max(1).max(2 * options.max_in_flight);
    let (results, incoming) = mpsc::channel(room);
    let recorder = tokio::spawn(record_results(db.clone(), incoming, room));
    let mut sends = JoinSet::new();
    loop {
        if *stop.borrow() {
            break;
        }
        while sends.try_join_next().is_some() {}
        let entries = registry.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let mut worked = false;
        // A gateway with too little room left: wait for room rather than the nap.
        let mut full = false;
        // The earliest instant a throttled gateway frees up (ms), to sleep no longer than that.
        let mut wake_at: Option<i64> = None;
        // Lanes start at different gateways so that one busy gateway does not hold them all.
        let n = entries.len();
        for i in 0..n {
            let entry = &entries[(i + lane) % n];
            if entry.held_now() {
                continue;
            }
            // Claim only what can be handed over soon: each claimed message holds one of the
            // gateway's `claimed` permits until its answer is passed on for recording.
            let free = entry.claimed.available_permits().min(options.batch.max(1));
            if free < low_water(&options) {
                full = true;
                continue;
            }
            let Ok(mut permits) = entry.claimed.clone().try_acquire_many_owned(free as u32) else {
                full = true;
                continue;
            };
            let request = ClaimRequest {
                gateway_id: entry.gateway.id,
                rate: entry.gateway.max_segments_per_second,
                max_messages: free,
                window_ms: options.window_ms,
                worker: &name,
                lease_ms: options.lease_ms,
            };
            match db.claim_outbound(&request).await {
                Ok(Claim::Messages(batch)) => {
                    worked = worked || !batch.is_empty();
                    for m in batch {
                        let permit = permits.split(1).expect("one permit per claimed message");
                        let (entry, options, results, capacity) = (
                            entry.clone(),
                            options.clone(),
                            results.clone(),
                            capacity.clone(),
                        );
                        sends.spawn(async move {
                            let result = send_one(&entry, m, &options).await;
                            // The receiver lives until every send of the lane has ended.
                            let _ = results.send(result).await;
                            drop(permit);
                            if entry.claimed.available_permits() >= low_water(&options) {
                                capacity.notify_one();
                            }
                        });
                    }
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
        let room_freed = async {
            if full {
                capacity.notified().await
            } else {
                std::future::pending().await
            }
        };
        tokio::select! {
            () = db.message_queued() => {}
            () = room_freed => {}
            () = tokio::time::sleep(Duration::from_millis(nap)) => {}
            _ = stop.changed() => {}
        }
    }
    // Messages already claimed are handed over and their answers recorded before the lane ends.
    while sends.join_next().await.is_some() {}
    drop(results);
    let _ = recorder.await;
}

/// The least room (free `claimed` permits) for which a lane claims: half a claim, so that
/// claims stay large enough to be worth a transaction.
fn low_water(options: &DispatchOptions) -> usize {
    (options.batch.min(2 * options.max_in_flight) / 2).max(1)
}

/// How long the first answer of a recording may wait for others to share its transaction.
const RECORD_LINGER: Duration = Duration::from_millis(20);

/// Records answers as they arrive, in transactions of up to `most`: each waits up to
/// [`RECORD_LINGER`] for more answers, so that a busy gateway's answers take a few
/// transactions a second rather than one each. Ends when every sender is gone.
async fn record_results(db: Db, mut incoming: mpsc::Receiver<SendResult>, most: usize) {
    let mut results = Vec::with_capacity(most);
    while incoming.recv_many(&mut results, most).await > 0 {
        let deadline = tokio::time::Instant::now() + RECORD_LINGER;
        while results.len() < most {
            match tokio::time::timeout_at(deadline, incoming.recv()).await {
                Ok(Some(result)) => results.push(result),
                Ok(None) | Err(_) => break,
            }
        }
        // Recording must not be lost to a passing database error: the messages would stay
        // `sending` until the sweeper sends them again.
        for attempt in 1..=5 {
            match db.record_send_results(&results).await {
                Ok(()) => break,
                Err(e) => {
                    tracing::error!(error = %e, attempt, "dispatcher: recording results failed");
                    tokio::time::sleep(Duration::from_millis(200 * attempt)).await;
                }
            }
        }
        results.clear();
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

/// Hands one claimed message to the gateway at its slot; what the gateway said.
async fn send_one(entry: &Entry, m: Claimed, options: &DispatchOptions) -> SendResult {
    let wait_us = m.not_before_us - now_us();
    if wait_us > 0 {
        tokio::time::sleep(Duration::from_micros(wait_us as u64)).await;
    }
    let sms = OutboundSms {
        message_id: m.id,
        to: PhoneNumber::from_stored(m.phone),
        from: None,
        text: m.text,
        encoding: if m.encoding == "ucs2" {
            Encoding::Ucs2
        } else {
            Encoding::Gsm7
        },
        segments: m.segments as usize,
    };
    // Never closed: the semaphore lives as long as the entry.
    let permit = entry.in_flight.acquire().await;
    let answer = entry.sender.send(&sms).await;
    drop(permit);
    let outcome = match answer {
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

    #[test]
    fn settings_that_cannot_be_used_hold_the_project() {
        let project = |stored: &str| Project {
            id: 1,
            slug: "p".into(),
            name: "P".into(),
            time_zone: "Africa/Kampala".into(),
            country: None,
            created_at: 0,
            messaging: MessagingSettings::from_stored(stored),
        };
        assert_eq!(Window::of(&project("{}")), Window::Always);
        let quiet = Window::of(&project(
            r#"{"quiet_hours_start": "21:00", "quiet_hours_end": "07:00"}"#,
        ));
        assert!(matches!(quiet, Window::OutsideQuietHours(_)), "{quiet:?}");
        for broken in [
            r#"{"quiet_hours_start": "21:00", "quiet_hours_end": "7 pm"}"#,
            r#"{"quiet_hours_start": "21:00"}"#,
            r#"{"validity_seconds": 0}"#,
            "not json",
        ] {
            assert_eq!(Window::of(&project(broken)), Window::Held, "{broken}");
        }
    }
}
