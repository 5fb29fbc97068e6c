//! `dispatch`: figures of the delivery pipeline.
//!
//! - `http`: N queued messages go through an `http` gateway with no rate limit to a minimal
//!   HTTP sink in this process (keep-alive, answers 200 with an id). Prints messages/s from
//!   the dispatcher's start until every message is `sent`, and this process's peak memory over
//!   that time.
//! - `kannel`: against a running Kannel (scripts/bench starts a private one with the testkit's
//!   `bench_kannel` example). First a plain load generator sends N `sendsms` GETs (with
//!   `dlr-mask` and a `dlr-url`, as the Kannel gateway sends them) over as many keep-alive
//!   connections as the dispatcher may use, then the dispatcher sends N queued messages through
//!   a Kannel gateway; both rates and their ratio are printed.
//! - `rate`: `casecast worker` processes share a gateway limited to R segments/s whose sink
//!   timestamps arrivals; prints the rate achieved over a measured period after a warm-up, and
//!   the worst deviation of a 10-second window.
//!
//! The dispatcher sends every queued message of every live gateway: each bench refuses a
//! database that already has a live gateway (it could be a real one), and deletes its own
//! gateway at the end.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use casecast_core::gateway::config::GatewayKind;
use casecast_core::PhoneNumber;
use casecast_engine::{run_dispatcher, DispatchOptions};
use casecast_store::gateways::{Gateway, NewGateway};
use casecast_store::outbox::now_us;
use casecast_store::projects::Project;
use casecast_store::Db;
use clap::{Args, Subcommand};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;

use crate::common::{new_project, peak_rss_mib, reset_peak_rss, stat_cpu_seconds, Bench, Process};

#[derive(Subcommand)]
pub enum DispatchBench {
    /// Messages/s through an `http` gateway (no limit) to a local sink, and peak RSS.
    Http {
        #[arg(long, default_value_t = 50_000)]
        messages: usize,
        #[command(flatten)]
        tuning: Tuning,
    },
    /// A plain load generator against the dispatcher, through a running Kannel.
    Kannel {
        /// smsbox's sendsms URL.
        #[arg(long)]
        sendsms_url: String,
        /// A `sendsms-user` of smsbox.
        #[arg(long)]
        username: String,
        #[arg(long, env = "CASECAST_BENCH_KANNEL_PASSWORD", hide_env_values = true)]
        password: String,
        /// The sender of the messages.
        #[arg(long, default_value = "1234")]
        from: String,
        #[arg(long, default_value_t = 20_000)]
        messages: usize,
        /// Connections of the plain load generator (default: as many as the dispatcher may
        /// have requests in flight to one gateway, `DispatchOptions::max_in_flight`).
        #[arg(long)]
        connections: Option<usize>,
        #[command(flatten)]
        tuning: Tuning,
    },
    /// The rate achieved by worker processes sharing a gateway's rate limit.
    Rate {
        /// The gateway's limit, segments per second.
        #[arg(long, default_value_t = 50.0)]
        rate: f64,
        /// The measured period, after the warm-up.
        #[arg(long, default_value_t = 60)]
        seconds: u64,
        #[arg(long, default_value_t = 5)]
        warmup: u64,
        /// `casecast worker` processes.
        #[arg(long, default_value_t = 2)]
        workers: usize,
    },
}

/// The in-process dispatcher's settings, to compare them; the defaults are
/// `DispatchOptions::default()`.
#[derive(Args)]
pub struct Tuning {
    /// Lanes of the dispatcher.
    #[arg(long, env = "CASECAST_BENCH_LANES")]
    lanes: Option<usize>,
    /// Messages a lane claims at a time.
    #[arg(long, env = "CASECAST_BENCH_BATCH")]
    batch: Option<usize>,
    /// Requests in flight to one gateway at most.
    #[arg(long, env = "CASECAST_BENCH_IN_FLIGHT")]
    in_flight: Option<usize>,
}

impl Tuning {
    fn options(&self) -> DispatchOptions {
        // The benchmarks' gateways are sinks on loopback.
        let mut options = DispatchOptions {
            gateway_addresses: casecast_gateways::AddressPolicy::allowing_loopback(),
            ..DispatchOptions::default()
        };
        if let Some(n) = self.lanes {
            options.lanes = n;
        }
        if let Some(n) = self.batch {
            options.batch = n;
        }
        if let Some(n) = self.in_flight {
            options.max_in_flight = n;
        }
        options
    }
}

pub async fn run(bench: &Bench, command: DispatchBench) -> anyhow::Result<()> {
    match command {
        DispatchBench::Http { messages, tuning } => http(bench, messages, tuning.options()).await,
        DispatchBench::Kannel {
            sendsms_url,
            username,
            password,
            from,
            messages,
            connections,
            tuning,
        } => {
            let kannel = KannelTarget {
                sendsms_url,
                username,
                password,
                from,
            };
            kannel_bench(bench, &kannel, messages, connections, tuning.options()).await
        }
        DispatchBench::Rate {
            rate,
            seconds,
            warmup,
            workers,
        } => rate_bench(bench, rate, seconds, warmup, workers).await,
    }
}

// ---------------------------------------------------------------------------------------------
// The sink: a minimal HTTP/1.1 server.

/// What the sink counts and, when asked, timestamps.
#[derive(Default)]
struct SinkState {
    requests: AtomicU64,
    connections: AtomicU64,
    /// (arrival in epoch µs, segments of the message's `text`), when timestamping.
    arrivals: Option<Mutex<Vec<(i64, u32)>>>,
}

/// A loopback HTTP/1.1 server that answers every request `200 OK` with an id, over keep-alive
/// connections.
struct Sink {
    base: String,
    state: Arc<SinkState>,
    task: tokio::task::JoinHandle<()>,
}

impl Sink {
    async fn start(timestamps: bool) -> anyhow::Result<Sink> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let base = format!("http://{}", listener.local_addr()?);
        let state = Arc::new(SinkState {
            arrivals: timestamps.then(|| Mutex::new(Vec::new())),
            ..SinkState::default()
        });
        let shared = state.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                shared.connections.fetch_add(1, Ordering::Relaxed);
                let _ = stream.set_nodelay(true);
                let state = shared.clone();
                tokio::spawn(async move {
                    let _ = serve_connection(stream, state).await;
                });
            }
        });
        Ok(Sink { base, state, task })
    }

    fn requests(&self) -> u64 {
        self.state.requests.load(Ordering::Relaxed)
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Request after request on one connection, until the peer closes it.
async fn serve_connection(
    stream: tokio::net::TcpStream,
    state: Arc<SinkState>,
) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut reader = tokio::io::BufReader::new(read);
    let mut line = String::new();
    let mut target = String::new();
    loop {
        target.clear();
        if reader.read_line(&mut target).await? == 0 {
            return Ok(());
        }
        let mut length = 0;
        loop {
            line.clear();
            if reader.read_line(&mut line).await? == 0 {
                return Ok(());
            }
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().unwrap_or(0);
                }
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).await?;
        let n = state.requests.fetch_add(1, Ordering::Relaxed) + 1;
        if let Some(arrivals) = &state.arrivals {
            let at = now_us();
            let path = target.split(' ').nth(1).unwrap_or("");
            let segments = reqwest::Url::parse(&format!("http://sink{path}"))
                .ok()
                .and_then(|u| {
                    u.query_pairs()
                        .find(|(k, _)| k == "text")
                        .map(|(_, v)| casecast_core::sms::analyse(&v).segments as u32)
                })
                .unwrap_or(1);
            arrivals
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push((at, segments));
        }
        let answer = format!("OK id:sink-{n}\n");
        let response = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{answer}",
            answer.len()
        );
        write.write_all(response.as_bytes()).await?;
    }
}

// ---------------------------------------------------------------------------------------------
// Shared set-up.

/// Refuses a database with live gateways: the bench's dispatcher would send their messages.
async fn require_no_gateways(db: &Db) -> anyhow::Result<()> {
    let live = db
        .all_live_gateways()
        .await
        .context("reading the gateways")?;
    if !live.is_empty() {
        bail!(
            "the database has {} live gateway(s): the bench's dispatcher would send their queued \
             messages too. Run `casecast-bench dispatch` on a database of its own",
            live.len()
        );
    }
    Ok(())
}

async fn create_gateway(
    db: &Db,
    project: &Project,
    kind: GatewayKind,
    config: serde_json::Value,
    callback_base_url: &str,
    rate: Option<f64>,
) -> anyhow::Result<Gateway> {
    Ok(db
        .create_gateway(
            project.id,
            &NewGateway {
                name: "Benchmark".into(),
                kind,
                config,
                callback_base_url: callback_base_url.to_string(),
                max_segments_per_second: rate,
                max_attempts: None,
                prefixes: Vec::new(),
                is_default: true,
            },
        )
        .await?)
}

/// An http-kind gateway config that GETs `{base}/send` with the number, text and our id.
fn http_config(base: &str) -> serde_json::Value {
    json!({
        "url": format!("{base}/send"),
        "method": "GET",
        "params": [["to", "{to}"], ["text", "{text}"], ["ref", "{id}"]],
        "id_after": "id:",
    })
}

/// Message `i` of a bench: its number and text, one segment, or two when `long`.
fn bench_message(i: usize, long: bool) -> (PhoneNumber, String) {
    let mut text =
        format!("Reminder {i}: your clinic visit is on Monday at 10:00. Reply STOP to opt out.");
    if long {
        text.push_str(
            " Bring your health card and the medicine you have left. Ask at the front desk \
             for Nurse Akello if you have questions about your treatment.",
        );
    }
    let phone = PhoneNumber::from_stored(format!(
        "+2567{}{:08}",
        [0, 1, 5, 7, 8][i % 5],
        i % 100_000_000
    ));
    (phone, text)
}

/// Queues `n` messages (every `long_every`-th one of two segments); returns the seconds taken.
async fn queue(
    db: &Db,
    project: &Project,
    gateway_id: i64,
    n: usize,
    long_every: Option<usize>,
) -> anyhow::Result<f64> {
    let started = Instant::now();
    let items: Vec<(Option<i64>, PhoneNumber, String)> = (0..n)
        .map(|i| {
            let (phone, text) = bench_message(i, long_every.is_some_and(|k| i % k == k - 1));
            (None, phone, text)
        })
        .collect();
    let queued = db.queue_outbound_bulk(project, gateway_id, &items).await?;
    if queued != n as u64 {
        bail!("queued {queued} of {n} messages");
    }
    Ok(started.elapsed().as_secs_f64())
}

/// A dispatcher running in this process.
struct Dispatcher {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Dispatcher {
    fn start(db: &Db, options: DispatchOptions) -> Dispatcher {
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(run_dispatcher(db.clone(), "bench".into(), options, stopped));
        Dispatcher { stop, task }
    }

    async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// Waits until no message of the gateway is queued or being sent, polling every `every`;
/// fails after `within`.
async fn wait_until_sent(
    db: &Db,
    gateway_id: i64,
    every: Duration,
    within: Duration,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + within;
    loop {
        if !db.gateway_has_unsent(gateway_id).await? {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "messages were still unsent after {within:?}: {:?}",
                db.gateway_message_counts(gateway_id).await?
            );
        }
        tokio::time::sleep(every).await;
    }
}

/// `status n, status n` of a gateway's messages; fails unless all `n` are `sent`.
async fn check_all_sent(db: &Db, gateway_id: i64, n: usize) -> anyhow::Result<()> {
    let counts = db.gateway_message_counts(gateway_id).await?;
    let sent = counts
        .iter()
        .find(|(s, _)| s == "sent")
        .map_or(0, |(_, n)| *n);
    if sent != n as i64 {
        bail!("expected {n} messages sent, found {counts:?}");
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// 1. An http gateway with no limit.

async fn http(bench: &Bench, n: usize, options: DispatchOptions) -> anyhow::Result<()> {
    let db = bench.open().await?;
    require_no_gateways(&db).await?;
    let sink = Sink::start(false).await?;
    let project = new_project(&db).await?;
    let gateway = create_gateway(
        &db,
        &project,
        GatewayKind::Http,
        http_config(&sink.base),
        &sink.base,
        None,
    )
    .await?;
    let result = http_measured(&db, &sink, &project, &gateway, n, options).await;
    db.delete_gateway(project.id, gateway.id).await?;
    db.close().await;
    result
}

async fn http_measured(
    db: &Db,
    sink: &Sink,
    project: &Project,
    gateway: &Gateway,
    n: usize,
    options: DispatchOptions,
) -> anyhow::Result<()> {
    let engine = db.dialect().name();
    let setup = queue(db, project, gateway.id, n, None).await?;
    println!("[{engine}] dispatch: queued {n} messages in {setup:.1} s");

    reset_peak_rss();
    let started = Instant::now();
    let dispatcher = Dispatcher::start(db, options);
    let deadline = started + Duration::from_secs(600);
    while sink.requests() < n as u64 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    wait_until_sent(
        db,
        gateway.id,
        Duration::from_millis(5),
        Duration::from_secs(60),
    )
    .await?;
    let secs = started.elapsed().as_secs_f64();
    let peak = peak_rss_mib().unwrap_or(f64::NAN);
    dispatcher.stop().await;
    check_all_sent(db, gateway.id, n).await?;
    let requests = sink.requests();
    let connections = sink.state.connections.load(Ordering::Relaxed);
    println!(
        "[{engine}] dispatch {n} messages to a local HTTP sink, no rate limit: {secs:.2} s, \
         {:.0} messages/s ({requests} requests over {connections} connections), peak RSS {peak:.0} MiB",
        n as f64 / secs
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// 2. Through Kannel: a plain load generator, then the dispatcher.

struct KannelTarget {
    sendsms_url: String,
    username: String,
    password: String,
    from: String,
}

/// The loopback port of a URL.
fn port_of(url: &str) -> anyhow::Result<u16> {
    reqwest::Url::parse(url)?
        .port_or_known_default()
        .context("the URL has no port")
}

/// Established TCP connections to `port` on this machine (from /proc/net/tcp{,6}).
fn connections_to(port: u16) -> usize {
    let port = format!(":{port:04X}");
    ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|f| std::fs::read_to_string(f).ok())
        .map(|text| {
            text.lines()
                .skip(1)
                .filter(|l| {
                    let cols: Vec<&str> = l.split_whitespace().collect();
                    cols.len() > 3 && cols[2].ends_with(&port) && cols[3] == "01"
                })
                .count()
        })
        .sum()
}

/// CPU seconds used so far by each process of one of these names, by process id (from /proc).
type CpuReading = HashMap<u32, (usize, f64)>;

fn cpu_by_process(names: &[&str]) -> CpuReading {
    let mut reading = HashMap::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return reading;
    };
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let Some((name, secs)) = stat_cpu_seconds(&stat) else {
            continue;
        };
        if let Some(i) = names.iter().position(|n| *n == name) {
            reading.insert(pid, (i, secs));
        }
    }
    reading
}

/// The CPU each kind of process used between two readings, as text: processes that started
/// in between count whole, those that ended in between are not counted.
fn cpu_used(names: &[&str], before: &CpuReading, after: &CpuReading) -> String {
    let mut used = vec![0.0; names.len()];
    for (pid, (i, secs)) in after {
        let earlier = before.get(pid).map_or(0.0, |(_, s)| *s);
        used[*i] += secs - earlier;
    }
    names
        .iter()
        .zip(used)
        .map(|(name, secs)| format!("{name} {secs:.1} s"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Samples the connections to `port` every two seconds until dropped (reading /proc/net/tcp takes
/// CPU from what is measured); `peak()` is the most seen at once.
struct ConnectionSampler {
    peak: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl ConnectionSampler {
    fn start(port: u16) -> ConnectionSampler {
        let peak = Arc::new(AtomicUsize::new(0));
        let shared = peak.clone();
        let task = tokio::spawn(async move {
            loop {
                let n = tokio::task::spawn_blocking(move || connections_to(port))
                    .await
                    .unwrap_or(0);
                shared.fetch_max(n, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(2000)).await;
            }
        });
        ConnectionSampler { peak, task }
    }

    fn peak(&self) -> usize {
        self.peak.load(Ordering::Relaxed)
    }
}

impl Drop for ConnectionSampler {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Sends `n` sendsms GETs over `connections` keep-alive connections, as the Kannel gateway
/// shapes them; returns the seconds taken. Fails on any answer but 2xx.
async fn plain_load(
    target: &KannelTarget,
    dlr_base: &str,
    n: usize,
    connections: usize,
) -> anyhow::Result<f64> {
    // As the dispatcher's client: keep-alive, idle connections kept.
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(connections)
        .build()?;
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let (client, next) = (client.clone(), next.clone());
        let url = target.sendsms_url.clone();
        let (username, password, from) = (
            target.username.clone(),
            target.password.clone(),
            target.from.clone(),
        );
        let dlr_base = dlr_base.to_string();
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    return Ok::<(), anyhow::Error>(());
                }
                let (phone, text) = bench_message(i, false);
                let dlr_url = format!("{dlr_base}?id={}&status=%d&answer=%A", i + 1);
                let response = client
                    .get(&url)
                    .query(&[
                        ("username", username.as_str()),
                        ("password", password.as_str()),
                        ("to", phone.as_str()),
                        ("text", text.as_str()),
                        ("charset", "UTF-8"),
                        ("dlr-mask", "31"),
                        ("dlr-url", dlr_url.as_str()),
                        ("from", from.as_str()),
                    ])
                    .timeout(Duration::from_secs(10))
                    .send()
                    .await
                    .map_err(|e| anyhow::anyhow!("sendsms: {}", e.without_url()))?;
                let status = response.status();
                let body = response.text().await.unwrap_or_default();
                if !status.is_success() {
                    bail!("sendsms answered {status}: {}", body.trim());
                }
            }
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(started.elapsed().as_secs_f64())
}

/// Waits until `want` delivery reports arrived, or none for two seconds (at most 60 s).
async fn settle_reports(sink: &Sink, want: u64) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(60);
    let (mut last, mut since) = (sink.requests(), Instant::now());
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = sink.requests();
        if now >= want || Instant::now() > deadline {
            return now;
        }
        if now != last {
            (last, since) = (now, Instant::now());
        } else if since.elapsed() > Duration::from_secs(2) {
            return now;
        }
    }
}

async fn kannel_bench(
    bench: &Bench,
    target: &KannelTarget,
    n: usize,
    connections: Option<usize>,
    options: DispatchOptions,
) -> anyhow::Result<()> {
    let db = bench.open().await?;
    let engine = db.dialect().name();
    require_no_gateways(&db).await?;
    let connections = connections.unwrap_or(options.max_in_flight);
    let port = port_of(&target.sendsms_url)?;
    // Delivery reports (two per message from the fake operator) go to a sink that counts them.
    let reports = Sink::start(false).await?;

    // The plain load generator, before and after the dispatcher (Kannel may change over a run).
    let plain_before = plain_run(&db, target, &reports, port, n, connections, "first").await?;

    // The dispatcher, through a Kannel gateway.
    let project = new_project(&db).await?;
    let gateway = create_gateway(
        &db,
        &project,
        GatewayKind::Kannel,
        json!({
            "sendsms_url": target.sendsms_url,
            "username": target.username,
            "password": target.password,
            "from": target.from,
        }),
        &reports.base,
        None,
    )
    .await?;
    let result = kannel_dispatch(&db, &reports, &project, &gateway, port, n, options).await;
    db.delete_gateway(project.id, gateway.id).await?;
    db.close().await;
    let rate = result?;
    let plain_after = plain_run(&db, target, &reports, port, n, connections, "second").await?;
    let plain_rate = (plain_before + plain_after) / 2.0;
    println!(
        "[{engine}] kannel: dispatcher / plain load generator (mean of both runs, {plain_rate:.0} \
         messages/s) = {:.0} % (target ≥ 90 %)",
        100.0 * rate / plain_rate
    );
    Ok(())
}

/// The processes whose CPU the Kannel bench reports (this one, with the dispatcher, is
/// `casecast-bench`).
const CPU_OF: [&str; 4] = ["smsbox", "bearerbox", "casecast-bench", "postgres"];

/// One run of the plain load generator, with its figures printed; returns its messages/s.
async fn plain_run(
    db: &Db,
    target: &KannelTarget,
    reports: &Sink,
    port: u16,
    n: usize,
    connections: usize,
    which: &str,
) -> anyhow::Result<f64> {
    let engine = db.dialect().name();
    let before = reports.requests();
    let sampler = ConnectionSampler::start(port);
    let cpu_before = cpu_by_process(&CPU_OF);
    let secs = plain_load(
        target,
        &format!("{}/hooks/0/plain/dlr", reports.base),
        n,
        connections,
    )
    .await?;
    let cpu = cpu_used(&CPU_OF, &cpu_before, &cpu_by_process(&CPU_OF));
    let peak = sampler.peak();
    drop(sampler);
    let rate = n as f64 / secs;
    println!(
        "[{engine}] kannel: plain load generator ({which} run), {n} sendsms GETs with dlr-mask \
         and dlr-url over {connections} connections (at most {peak} open at once): {secs:.2} s, \
         {rate:.0} messages/s; CPU used: {cpu}"
    );
    let got = settle_reports(reports, before + 2 * n as u64).await - before;
    println!("[{engine}] kannel: {got} delivery reports after that run");
    Ok(rate)
}

/// The dispatcher's part of the Kannel bench; returns its messages/s.
async fn kannel_dispatch(
    db: &Db,
    reports: &Sink,
    project: &Project,
    gateway: &Gateway,
    port: u16,
    n: usize,
    options: DispatchOptions,
) -> anyhow::Result<f64> {
    let engine = db.dialect().name();
    queue(db, project, gateway.id, n, None).await?;
    let before = reports.requests();
    let sampler = ConnectionSampler::start(port);
    let cpu_before = cpu_by_process(&CPU_OF);
    reset_peak_rss();
    let started = Instant::now();
    let dispatcher = Dispatcher::start(db, options);
    wait_until_sent(
        db,
        gateway.id,
        Duration::from_millis(50),
        Duration::from_secs(600),
    )
    .await?;
    let secs = started.elapsed().as_secs_f64();
    let cpu = cpu_used(&CPU_OF, &cpu_before, &cpu_by_process(&CPU_OF));
    let peak_rss = peak_rss_mib().unwrap_or(f64::NAN);
    let peak_connections = sampler.peak();
    drop(sampler);
    dispatcher.stop().await;
    check_all_sent(db, gateway.id, n).await?;
    let rate = n as f64 / secs;
    println!(
        "[{engine}] kannel: dispatcher, {n} messages through a Kannel gateway (no rate limit; at \
         most {peak_connections} connections open at once): {secs:.2} s, {rate:.0} messages/s, \
         peak RSS {peak_rss:.0} MiB; CPU used: {cpu}"
    );
    let got = settle_reports(reports, before + 2 * n as u64).await - before;
    println!("[{engine}] kannel: {got} delivery reports after the dispatcher run");
    Ok(rate)
}

// ---------------------------------------------------------------------------------------------
// 3. A shared rate limit over worker processes.

/// Arrivals at the sink: (epoch µs, segments).
type Arrivals = Vec<(i64, u32)>;

/// Starts the workers, queues enough messages for `seconds` at `rate`, and waits until
/// `seconds` have passed since the first arrival (and one more). Returns the first arrival,
/// every arrival and the messages each worker handed over.
#[allow(clippy::too_many_arguments)]
async fn rate_measured(
    bench: &Bench,
    db: &Db,
    sink: &Sink,
    project: &Project,
    gateway: &Gateway,
    rate: f64,
    seconds: u64,
    workers: usize,
) -> anyhow::Result<(i64, Arrivals, Vec<usize>)> {
    let dir = tempfile::tempdir()?;
    let mut children = Vec::new();
    for i in 0..workers {
        let log = dir.path().join(format!("worker-{i}.log"));
        children.push(Worker {
            _process: bench.start_worker(&log)?,
            log,
        });
    }
    // Enough for the time measured and a margin; one message in five has two segments, so 1.2
    // segments per message on average.
    let segments = rate * (seconds + 10) as f64;
    let n = (segments / 1.2).ceil() as usize;
    queue(db, project, gateway.id, n, Some(5)).await?;
    let arrivals = || {
        sink.state
            .arrivals
            .as_ref()
            .expect("the sink timestamps")
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    let first = loop {
        if let Some(first) = arrivals().first() {
            break first.0;
        }
        if Instant::now() > deadline {
            bail!("no message reached the sink within 30 s");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let end = first + seconds as i64 * 1_000_000;
    let wait_us = (end - now_us()).max(0) as u64 + 1_000_000;
    tokio::time::sleep(Duration::from_micros(wait_us)).await;
    let got = arrivals();
    let shares: Vec<usize> = children.iter().map(Worker::handed_over).collect();
    drop(children);
    Ok((first, got, shares))
}

/// A `casecast worker` child (stopped when dropped), its log in a file.
struct Worker {
    _process: Process,
    log: PathBuf,
}

impl Worker {
    /// Messages this worker handed over (from its log).
    fn handed_over(&self) -> usize {
        std::fs::read_to_string(&self.log)
            .map(|log| {
                log.lines()
                    .filter(|l| l.contains("message accepted"))
                    .count()
            })
            .unwrap_or(0)
    }
}

async fn rate_bench(
    bench: &Bench,
    rate: f64,
    seconds: u64,
    warmup: u64,
    workers: usize,
) -> anyhow::Result<()> {
    if seconds < 10 || !seconds.is_multiple_of(10) {
        bail!("--seconds must be a multiple of 10 (windows of 10 s)");
    }
    let db = bench.open().await?;
    let engine = db.dialect().name();
    require_no_gateways(&db).await?;
    let sink = Sink::start(true).await?;
    let project = new_project(&db).await?;
    let gateway = create_gateway(
        &db,
        &project,
        GatewayKind::Http,
        http_config(&sink.base),
        &sink.base,
        Some(rate),
    )
    .await?;
    let result = rate_measured(
        bench,
        &db,
        &sink,
        &project,
        &gateway,
        rate,
        seconds + warmup,
        workers,
    )
    .await;
    db.delete_gateway(project.id, gateway.id).await?;
    db.close().await;
    let (first, got, shares) = result?;
    let t0 = first + warmup as i64 * 1_000_000;
    let t1 = t0 + seconds as i64 * 1_000_000;
    let in_window = |from: i64, to: i64| -> u64 {
        got.iter()
            .filter(|(at, _)| (from..to).contains(at))
            .map(|(_, s)| u64::from(*s))
            .sum()
    };
    let total = in_window(t0, t1);
    let achieved = total as f64 / seconds as f64;
    let deviation = |segments: u64, secs: f64| (segments as f64 / secs - rate) / rate * 100.0;
    let windows: Vec<f64> = (0..seconds / 10)
        .map(|w| {
            let from = t0 + w as i64 * 10_000_000;
            deviation(in_window(from, from + 10_000_000), 10.0)
        })
        .collect();
    let worst = windows
        .iter()
        .copied()
        .fold(0.0_f64, |a, b| if b.abs() > a.abs() { b } else { a });
    let worst_second = (0..seconds)
        .map(|s| {
            let from = t0 + s as i64 * 1_000_000;
            deviation(in_window(from, from + 1_000_000), 1.0)
        })
        .fold(0.0_f64, |a, b| if b.abs() > a.abs() { b } else { a });
    println!(
        "[{engine}] rate limit {rate} segments/s, {workers} worker processes: {achieved:.2} \
         segments/s over {seconds} s after a {warmup} s warm-up ({:+.2} %); 10-s windows {}; \
         worst 10-s window {worst:+.1} % (target ±5 %), worst 1-s window {worst_second:+.0} %; \
         messages handed over per worker: {}",
        (achieved - rate) / rate * 100.0,
        windows
            .iter()
            .map(|d| format!("{d:+.1} %"))
            .collect::<Vec<_>>()
            .join(", "),
        shares
            .iter()
            .map(usize::to_string)
            .collect::<Vec<_>>()
            .join(" / ")
    );
    Ok(())
}
