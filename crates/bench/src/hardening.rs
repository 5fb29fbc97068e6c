//! Issue 12's hardening figures, each against a `casecast serve` of its own: memory after
//! requests with made-up method names and the size of a `/metrics` scrape (item 1), peak memory
//! while shared-strings bombs are imported at once (item 4), whether `/healthz` answers while
//! idle connections are held under a low open-file limit (item 5), and peak memory and answers
//! of concurrent logins for unknown emails (item 6).

use std::collections::BTreeMap;
use std::io::{Cursor, Write};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use casecast_core::{Email, Role};
use clap::Args;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::task::JoinSet;

use crate::common::{new_project, Bench, Process};

/// The sizes of the four measurements; `--only` picks one.
#[derive(Args, Clone, Debug)]
pub struct Hardening {
    /// Run only this part: metrics, bombs, idle or logins.
    #[arg(long)]
    only: Option<String>,
    /// Requests with made-up method names (item 1).
    #[arg(long, default_value_t = 40_000)]
    methods: usize,
    /// Length of each made-up method name, in bytes.
    #[arg(long, default_value_t = 2048)]
    method_len: usize,
    /// Shared-strings bombs imported at once (item 4).
    #[arg(long, default_value_t = 3)]
    bombs: usize,
    /// Shared strings in each bomb (22 M make the 416 MB part of the issue, 4.5 MB zipped).
    #[arg(long, default_value_t = 22_000_000)]
    bomb_strings: usize,
    /// Idle connections held (item 5).
    #[arg(long, default_value_t = 300)]
    idle: usize,
    /// The open-file limit of the server while they are held (`ulimit -n`).
    #[arg(long, default_value_t = 256)]
    nofile: u32,
    /// Concurrent logins for unknown emails (item 6).
    #[arg(long, default_value_t = 100)]
    logins: usize,
    /// A flag for every `casecast serve` started (repeatable), e.g.
    /// `--serve-arg=--max-password-checks=1`.
    #[arg(long, value_name = "FLAG", allow_hyphen_values = true)]
    serve_arg: Vec<String>,
}

pub async fn run(bench: &Bench, h: Hardening) -> anyhow::Result<()> {
    let wants = |part: &str| h.only.as_deref().is_none_or(|o| o == part);
    if let Some(only) = h.only.as_deref() {
        if !["metrics", "bombs", "idle", "logins"].contains(&only) {
            bail!("--only {only:?}: say metrics, bombs, idle or logins");
        }
    }
    if wants("metrics") {
        methods(bench, &h).await?;
    }
    if wants("bombs") {
        bombs(bench, &h).await?;
    }
    if wants("idle") {
        idle(bench, &h).await?;
    }
    if wants("logins") {
        logins(bench, &h).await?;
    }
    Ok(())
}

/// A made-up method name of `len` capital letters (a valid HTTP token).
fn method_name(i: usize, len: usize) -> String {
    let seed = casecast_store::secrets::random_hex(16);
    let mut name = format!("X{i}{seed}").to_ascii_uppercase();
    name = name
        .chars()
        .map(|c| match c {
            '0'..='9' => (b'G' + (c as u8 - b'0')) as char,
            c => c,
        })
        .collect();
    while name.len() < len {
        name.push((b'A' + (name.len() % 26) as u8) as char);
    }
    name.truncate(len);
    name
}

/// Item 1: RSS before and after requests with made-up methods, and the size of a scrape.
async fn methods(bench: &Bench, h: &Hardening) -> anyhow::Result<()> {
    let (server, base) = bench.start_server_with(None, &h.serve_arg)?;
    let http = reqwest::Client::new();
    // One request first, so that "before" counts a warmed-up server.
    http.get(format!("{base}/healthz")).send().await?;
    let before = server.rss_mib().context("reading the server's memory")?;
    let started = Instant::now();
    let mut tasks = JoinSet::new();
    let lanes = 16;
    for lane in 0..lanes {
        let (http, base, len, n) = (http.clone(), base.clone(), h.method_len, h.methods);
        tasks.spawn(async move {
            let mut statuses = BTreeMap::<u16, usize>::new();
            for i in (lane..n).step_by(lanes) {
                let method = reqwest::Method::from_bytes(method_name(i, len).as_bytes())
                    .expect("capital letters make a method");
                let status = match http.request(method, format!("{base}/healthz")).send().await {
                    Ok(r) => r.status().as_u16(),
                    Err(_) => 0,
                };
                *statuses.entry(status).or_default() += 1;
            }
            statuses
        });
    }
    let mut statuses = BTreeMap::<u16, usize>::new();
    while let Some(done) = tasks.join_next().await {
        for (s, n) in done? {
            *statuses.entry(s).or_default() += n;
        }
    }
    let secs = started.elapsed().as_secs_f64();
    let after = server.rss_mib().context("reading the server's memory")?;
    let scrape = http.get(format!("{base}/metrics")).send().await?;
    let status = scrape.status();
    let scrape = scrape.bytes().await?;
    println!(
        "metrics: {} requests with {}-byte made-up methods in {secs:.1} s, answers {}",
        h.methods,
        h.method_len,
        histogram(&statuses)
    );
    println!(
        "metrics: server RSS {before:.1} MiB before, {after:.1} MiB after (peak {:.1} MiB); one /metrics scrape after: {} bytes ({status})",
        server.peak_rss_mib().unwrap_or(f64::NAN),
        scrape.len()
    );
    Ok(())
}

/// A workbook with one data row and `strings` shared strings besides the four its cells use:
/// mostly the same one, every 16th its own, so that it packs about 70:1 (the report's bomb was
/// 4.5 MB zipped and 416 MB unpacked), under the 50 MB upload limit and the 1000:1 ratio check.
fn shared_strings_bomb(strings: usize) -> anyhow::Result<(Vec<u8>, u64)> {
    use zip::write::SimpleFileOptions;
    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let options = SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .large_file(true);
    let parts: [(&str, &[u8]); 3] = [
        ("xl/workbook.xml", br#"<workbook xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"><sheets><sheet name="S" sheetId="1" r:id="rId1"/></sheets></workbook>"#),
        ("xl/_rels/workbook.xml.rels", br#"<Relationships><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" Target="worksheets/sheet1.xml"/></Relationships>"#),
        ("xl/worksheets/sheet1.xml", br#"<worksheet><sheetData><row r="1"><c r="A1" t="s"><v>0</v></c><c r="B1" t="s"><v>1</v></c></row><row r="2"><c r="A2" t="s"><v>2</v></c><c r="B2" t="s"><v>3</v></c></row></sheetData></worksheet>"#),
    ];
    for (name, data) in parts {
        zip.start_file(name, options)?;
        zip.write_all(data)?;
    }
    zip.start_file("xl/sharedStrings.xml", options)?;
    let head = b"<sst><si><t>external_id</t></si><si><t>name</t></si><si><t>E-1</t></si><si><t>Akello</t></si>";
    zip.write_all(head)?;
    let mut unpacked = head.len() as u64 + 6;
    let mut chunk = String::with_capacity(1 << 20);
    for i in 0..strings {
        use std::fmt::Write as _;
        if i % 16 == 0 {
            let _ = write!(chunk, "<si><t>{i}</t></si>");
        } else {
            chunk.push_str("<si><t>x</t></si>");
        }
        if chunk.len() >= 1 << 20 {
            unpacked += chunk.len() as u64;
            zip.write_all(chunk.as_bytes())?;
            chunk.clear();
        }
    }
    unpacked += chunk.len() as u64;
    zip.write_all(chunk.as_bytes())?;
    zip.write_all(b"</sst>")?;
    Ok((zip.finish()?.into_inner(), unpacked))
}

/// Item 4: peak RSS while the bombs are imported at once, and each answer.
async fn bombs(bench: &Bench, h: &Hardening) -> anyhow::Result<()> {
    let db = bench.open().await?;
    let project = new_project(&db).await?;
    let email = format!(
        "bench-{}@example.org",
        casecast_store::secrets::random_hex(4)
    );
    let user = db
        .upsert_user(
            &Email::parse(&email)?,
            &casecast_store::secrets::random_hex(16),
            project.id,
            Role::Admin,
        )
        .await?;
    let (_, token) = db.create_token(project.id, user.id, "bench").await?;
    db.close().await;
    let (bomb, unpacked) = shared_strings_bomb(h.bomb_strings)?;
    println!(
        "bombs: each {:.1} MB zipped, its shared strings {:.0} MB unpacked ({} entries) for 4 cells",
        bomb.len() as f64 / 1e6,
        unpacked as f64 / 1e6,
        h.bomb_strings + 4
    );
    let (server, base) = bench.start_server_with(None, &h.serve_arg)?;
    let url = format!("{base}/api/v1/projects/{}/cases/import", project.slug);
    let started = Instant::now();
    let mut tasks = JoinSet::new();
    for i in 0..h.bombs {
        let (url, token, bomb) = (url.clone(), token.clone(), bomb.clone());
        tasks.spawn(async move {
            let form = reqwest::multipart::Form::new().part(
                "file",
                reqwest::multipart::Part::bytes(bomb).file_name(format!("bomb{i}.xlsx")),
            );
            let sent = reqwest::Client::new()
                .post(&url)
                .bearer_auth(&token)
                .multipart(form)
                .send()
                .await;
            match sent {
                Ok(r) => {
                    let status = r.status().as_u16();
                    let text = r.text().await.unwrap_or_default();
                    format!("{status} {}", text.chars().take(300).collect::<String>())
                }
                Err(e) => format!("no answer: {e}"),
            }
        });
    }
    let mut answers = Vec::new();
    while let Some(answer) = tasks.join_next().await {
        answers.push(answer?);
    }
    println!(
        "bombs: {} imported at once in {:.1} s; server peak RSS {:.1} MiB",
        h.bombs,
        started.elapsed().as_secs_f64(),
        server.peak_rss_mib().unwrap_or(f64::NAN)
    );
    for answer in answers {
        println!("bombs: answer {answer}");
    }
    Ok(())
}

/// Item 5: `/healthz` while idle connections are held, the server's open files limited.
async fn idle(bench: &Bench, h: &Hardening) -> anyhow::Result<()> {
    let (server, base) = bench.start_server_with(Some(h.nofile), &h.serve_arg)?;
    let addr = base.trim_start_matches("http://").to_string();
    let mut held = Vec::new();
    for _ in 0..h.idle {
        held.push(TcpStream::connect(&addr).await?);
    }
    println!(
        "idle: {} idle connections held, the server's open files limited to {}",
        h.idle, h.nofile
    );
    let started = Instant::now();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(180))
        .build()?;
    match http.get(format!("{base}/healthz")).send().await {
        Ok(r) => println!(
            "idle: /healthz answered {} after {:.1} s",
            r.status(),
            started.elapsed().as_secs_f64()
        ),
        Err(e) => println!(
            "idle: /healthz did not answer within {:.0} s ({e})",
            started.elapsed().as_secs_f64()
        ),
    }
    // How many of the held connections the server has closed by now.
    let mut closed = 0;
    for socket in &mut held {
        let mut byte = [0u8; 1];
        let read = tokio::time::timeout(Duration::from_millis(10), socket.read(&mut byte)).await;
        if matches!(read, Ok(Ok(0)) | Ok(Err(_))) {
            closed += 1;
        }
    }
    println!(
        "idle: the server closed {closed} of the {} held connections by then",
        h.idle
    );
    drop(server);
    Ok(())
}

/// Item 6: peak RSS and answers of concurrent logins for unknown emails, each from its own
/// loopback address (127.0.x.y), so that the login limit per address slows none of them down
/// and every one costs a password check: the worst case for memory.
async fn logins(bench: &Bench, h: &Hardening) -> anyhow::Result<()> {
    let (server, base) = bench.start_server_with(None, &h.serve_arg)?;
    let mut forms = Vec::new();
    // Each login needs its form's CSRF token and cookie; fetch them all first.
    for _ in 0..h.logins {
        let page = reqwest::get(format!("{base}/login")).await?;
        let cookie = page
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(|v| v.strip_prefix("casecast_login_csrf="))
            .and_then(|v| v.split(';').next())
            .context("no login CSRF cookie")?
            .to_string();
        let html = page.text().await?;
        let marker = "name=\"csrf\" value=\"";
        let start = html.find(marker).context("no CSRF field")? + marker.len();
        let csrf = html[start..]
            .split('"')
            .next()
            .unwrap_or_default()
            .to_string();
        forms.push((cookie, csrf));
    }
    let started = Instant::now();
    let mut tasks = JoinSet::new();
    for (i, (cookie, csrf)) in forms.into_iter().enumerate() {
        let url = format!("{base}/login");
        tasks.spawn(async move {
            let email = format!(
                "nobody-{i}-{}@example.org",
                casecast_store::secrets::random_hex(4)
            );
            let from = std::net::Ipv4Addr::new(127, 0, 1 + (i / 250) as u8, 2 + (i % 250) as u8);
            let sent = reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .local_address(std::net::IpAddr::V4(from))
                .build()
                .expect("a client")
                .post(url)
                .header("cookie", format!("casecast_login_csrf={cookie}"))
                .form(&[
                    ("csrf", csrf.as_str()),
                    ("email", email.as_str()),
                    ("password", "not the password"),
                ])
                .send()
                .await;
            sent.map_or(0, |r| r.status().as_u16())
        });
    }
    let mut statuses = BTreeMap::<u16, usize>::new();
    while let Some(status) = tasks.join_next().await {
        *statuses.entry(status?).or_default() += 1;
    }
    println!(
        "logins: {} at once for unknown emails, each from its own address, in {:.1} s, answers {}; server peak RSS {:.1} MiB",
        h.logins,
        started.elapsed().as_secs_f64(),
        histogram(&statuses),
        server.peak_rss_mib().unwrap_or(f64::NAN)
    );
    Ok(())
}

/// `200×3, 503×2` (0 for no answer).
fn histogram(statuses: &BTreeMap<u16, usize>) -> String {
    statuses
        .iter()
        .map(|(s, n)| format!("{s}×{n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl Process {
    /// The process's resident memory now, in MiB.
    pub fn rss_mib(&self) -> Option<f64> {
        crate::common::status_mib(&format!("/proc/{}/status", self.id()), "VmRSS:")
    }
}
