//! A private Kannel for tests: `bearerbox` and `smsbox` on free loopback ports, with a fake
//! operator written here in Rust that connects to the `smsc = fake` port and speaks the
//! `fakesmsc` line protocol. It records every MT message Kannel hands to the operator and can
//! inject MO messages. Each test starts its own instance; dropping it stops everything.
//!
//! The binaries come from `CASECAST_KANNEL_BEARERBOX` and `CASECAST_KANNEL_SMSBOX` (set by
//! `scripts/test`), or `/usr/sbin/bearerbox` and `/usr/sbin/smsbox` (Debian's `kannel`).
//!
//! Line protocol, as Kannel 1.4.5 writes MT lines to the operator:
//! - `FROM TO text TEXT`: 7-bit text, raw (a newline inside the text breaks the line; such
//!   continuation lines are joined back here);
//! - `FROM TO ucs-2 DATA`: UCS-2 (UTF-16BE), URL-encoded;
//! - `FROM TO data DATA`: 8-bit data, URL-encoded;
//! - `FROM TO udh UDH data DATA`: one part with a user data header (both URL-encoded); the
//!   line does not tell the coding of the part (GSM text or UTF-16BE).
//!
//! MO lines the operator writes: `FROM TO text TEXT` (raw, taken as is) or
//! `FROM TO ucs2 DATA` (URL-encoded UTF-16BE).

use std::io::{BufRead, BufReader, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How one MT line from Kannel was typed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LineKind {
    /// `text`: 7-bit text as Kannel holds it (UTF-8 here).
    Text,
    /// `ucs-2`: UTF-16BE.
    Ucs2,
    /// `data`: 8-bit binary.
    Data,
    /// `udh … data …`: one part of a concatenated (or otherwise headed) message.
    Udh,
}

/// The concatenation element of a user data header (IEI 0x00 or 0x08).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Concat {
    pub reference: u16,
    pub total: u8,
    pub seq: u8,
}

/// A user data header: its bytes as Kannel sent them (length octet first) and, when present,
/// the concatenation element.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Udh {
    pub raw: Vec<u8>,
    pub concat: Option<Concat>,
}

impl Udh {
    /// Parses the header bytes (with or without the leading length octet).
    pub fn parse(raw: Vec<u8>) -> Udh {
        let body = match raw.first() {
            Some(&len) if len as usize == raw.len() - 1 => &raw[1..],
            _ => &raw[..],
        };
        let mut concat = None;
        let mut i = 0;
        while i + 1 < body.len() {
            let (iei, len) = (body[i], body[i + 1] as usize);
            let Some(value) = body.get(i + 2..i + 2 + len) else {
                break;
            };
            match (iei, value) {
                (0x00, &[r, total, seq]) => {
                    concat = Some(Concat {
                        reference: r.into(),
                        total,
                        seq,
                    })
                }
                (0x08, &[r1, r2, total, seq]) => {
                    concat = Some(Concat {
                        reference: u16::from_be_bytes([r1, r2]),
                        total,
                        seq,
                    })
                }
                _ => {}
            }
            i += 2 + len;
        }
        Udh { raw, concat }
    }
}

/// One MT message (or message part) the fake operator received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FakeMt {
    pub sender: String,
    pub receiver: String,
    pub kind: LineKind,
    /// The payload bytes (URL-decoded where the line was URL-encoded).
    pub data: Vec<u8>,
    /// The payload as text: `text` and `data` lines as UTF-8 (lossy), `ucs-2` lines decoded
    /// from UTF-16BE. For `udh` parts the coding is unknown: UTF-8 (lossy) of `data`; use
    /// [`join_parts`] and [`decode_ucs2`] for UCS-2 parts.
    pub text: String,
    pub udh: Option<Udh>,
    /// The line(s) as received, without the final newline.
    pub line: String,
}

impl FakeMt {
    /// The concatenation element of the header, if any.
    pub fn concat(&self) -> Option<Concat> {
        self.udh.as_ref().and_then(|u| u.concat)
    }
}

/// The payloads of the parts of one concatenated message, in sequence order. Panics unless the
/// parts share a reference, their count matches the header and every sequence number is there.
pub fn join_parts(parts: &[FakeMt]) -> Vec<u8> {
    let mut heads: Vec<(Concat, &FakeMt)> = parts
        .iter()
        .map(|p| {
            let c = p
                .concat()
                .unwrap_or_else(|| panic!("not a concatenated part: {p:?}"));
            (c, p)
        })
        .collect();
    heads.sort_by_key(|(c, _)| c.seq);
    let first = heads.first().map(|(c, _)| *c).expect("no parts");
    for (i, (c, p)) in heads.iter().enumerate() {
        assert!(
            c.reference == first.reference
                && c.total as usize == parts.len()
                && c.seq as usize == i + 1,
            "inconsistent parts at {p:?} among {parts:?}"
        );
    }
    heads.iter().flat_map(|(_, p)| p.data.clone()).collect()
}

/// UTF-16BE bytes as text (lossy; an odd last byte is dropped).
pub fn decode_ucs2(bytes: &[u8]) -> String {
    let units: Vec<u16> = bytes
        .chunks_exact(2)
        .map(|b| u16::from_be_bytes([b[0], b[1]]))
        .collect();
    String::from_utf16_lossy(&units)
}

/// Decodes `%XX` and `+` (space), as Kannel's `octstr_url_decode` does; a malformed escape
/// is kept as it is.
pub fn url_decode(s: &str) -> Vec<u8> {
    // A `+` that was sent as data arrives as `%2B`, so spaces can be put back first.
    percent_encoding::percent_decode_str(&s.replace('+', " ")).collect()
}

/// Every byte as `%XX`.
fn percent_all(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("%{b:02X}")).collect()
}

/// The MT line types, as Kannel writes them.
const LINE_TYPES: [(&str, LineKind); 4] = [
    ("text", LineKind::Text),
    ("ucs-2", LineKind::Ucs2),
    ("data", LineKind::Data),
    ("udh", LineKind::Udh),
];

/// Parses one MT line; `None` unless it reads `FROM TO TYPE …`. The receiver is a number; the
/// sender may hold spaces (an alphanumeric sender id), so the type is the first known type word
/// from the third word on.
fn parse_line(line: &str) -> Option<FakeMt> {
    let mut words = Vec::new(); // (start, word)
    let mut start = 0;
    for word in line.split(' ') {
        words.push((start, word));
        start += word.len() + 1;
    }
    let k = (2..words.len()).find(|&k| LINE_TYPES.iter().any(|(t, _)| *t == words[k].1))?;
    let sender = &line[..words[k - 1].0 - 1];
    let receiver = words[k - 1].1;
    let kind = LINE_TYPES.iter().find(|(t, _)| *t == words[k].1)?.1;
    let rest = line.get(words[k].0 + words[k].1.len() + 1..).unwrap_or("");
    let (data, udh) = match kind {
        LineKind::Text => (rest.as_bytes().to_vec(), None),
        LineKind::Ucs2 | LineKind::Data => (url_decode(rest), None),
        LineKind::Udh => {
            let (udh, payload) = rest.split_once(' ').unwrap_or((rest, ""));
            let payload = payload.strip_prefix("data ").unwrap_or(payload);
            (url_decode(payload), Some(Udh::parse(url_decode(udh))))
        }
    };
    let text = match kind {
        LineKind::Ucs2 => decode_ucs2(&data),
        _ => String::from_utf8_lossy(&data).into_owned(),
    };
    Some(FakeMt {
        sender: sender.to_string(),
        receiver: receiver.to_string(),
        kind,
        data,
        text,
        udh,
        line: line.to_string(),
    })
}

/// The MO line for a message: `text` when it is printable ASCII (Kannel takes it as is),
/// otherwise `ucs2` with URL-encoded UTF-16BE.
fn mo_line(from: &str, to: &str, text: &str) -> String {
    for (what, v) in [("sender", from), ("receiver", to)] {
        assert!(
            !v.is_empty() && !v.contains([' ', '\n', '\r']),
            "the MO {what} must be one word: {v:?}"
        );
    }
    if text.bytes().all(|b| (0x20..=0x7e).contains(&b)) {
        format!("{from} {to} text {text}\n")
    } else {
        let bytes: Vec<u8> = text.encode_utf16().flat_map(u16::to_be_bytes).collect();
        format!("{from} {to} ucs2 {}\n", percent_all(&bytes))
    }
}

/// Reads MT lines until the connection closes.
fn read_operator(stream: TcpStream, received: Arc<Mutex<Vec<FakeMt>>>) {
    let mut reader = BufReader::new(stream);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match reader.read_until(b'\n', &mut buf) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        if buf.last() == Some(&b'\n') {
            buf.pop();
        }
        let line = String::from_utf8_lossy(&buf).into_owned();
        let mut got = received.lock().unwrap_or_else(|e| e.into_inner());
        match (parse_line(&line), got.last_mut()) {
            (Some(mt), _) => got.push(mt),
            // A newline inside a `text` message: Kannel writes it raw.
            (None, Some(last)) if last.kind == LineKind::Text => {
                last.data.push(b'\n');
                last.data.extend_from_slice(line.as_bytes());
                last.text = String::from_utf8_lossy(&last.data).into_owned();
                last.line.push('\n');
                last.line.push_str(&line);
            }
            (None, _) => eprintln!("fake operator: a line it cannot read: {line:?}"),
        }
    }
}

const SETPRIV: &str = "/usr/bin/setpriv";
const ATTEMPTS: usize = 3;
const STEP: Duration = Duration::from_millis(25);
const START_WITHIN: Duration = Duration::from_secs(20);
const STOP_WITHIN: Duration = Duration::from_secs(15);

type SpawnRequest = (Command, mpsc::Sender<std::io::Result<Child>>);

/// Starts the processes from one thread that lives as long as the [`Kannel`]: with `setpriv
/// --pdeathsig TERM`, they get SIGTERM when that thread ends, so a test process that dies
/// without dropping the value (a kill, an abort) leaves no Kannel behind.
struct Spawner {
    requests: Option<mpsc::Sender<SpawnRequest>>,
    thread: Option<JoinHandle<()>>,
}

impl Spawner {
    fn new() -> Spawner {
        let (requests, incoming) = mpsc::channel::<SpawnRequest>();
        let thread = std::thread::Builder::new()
            .name("kannel-spawner".into())
            .spawn(move || {
                for (mut cmd, reply) in incoming {
                    let _ = reply.send(cmd.spawn());
                }
            })
            .expect("starting the Kannel spawner thread");
        Spawner {
            requests: Some(requests),
            thread: Some(thread),
        }
    }

    fn spawn(&self, cmd: Command) -> std::io::Result<Child> {
        let (reply, answer) = mpsc::channel();
        self.requests
            .as_ref()
            .expect("the spawner is running")
            .send((cmd, reply))
            .expect("the spawner is running");
        answer.recv().expect("the spawner answers")
    }
}

impl Drop for Spawner {
    fn drop(&mut self) {
        self.requests.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A connection to the fake SMSC port.
struct Operator {
    stream: Mutex<TcpStream>,
    reader: Option<JoinHandle<()>>,
}

/// A running bearerbox and smsbox with the fake operator connected. Dropping it sends SIGTERM
/// to both (by PID), closes the operator's connection, waits for the processes to end
/// (SIGKILL after 15 s) and removes the temporary folder.
pub struct Kannel {
    /// `http://127.0.0.1:PORT/cgi-bin/sendsms`.
    pub sendsms_url: String,
    /// The `sendsms-user` (concatenation on, at most 10 parts).
    pub username: String,
    pub password: String,
    /// `http://127.0.0.1:PORT`, the admin interface (`/status.txt?password=…`).
    pub admin_url: String,
    pub admin_password: String,
    /// The `smsc-id` of the fake operator's connection.
    pub smsc_id: String,
    fake_port: u16,
    http: reqwest::Client,
    received: Arc<Mutex<Vec<FakeMt>>>,
    operator: Option<Operator>,
    bearerbox: Option<Child>,
    smsbox: Option<Child>,
    spawner: Option<Spawner>,
    dir: tempfile::TempDir,
}

fn binary(var: &str, fallback: &str) -> String {
    let bin = std::env::var(var)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| fallback.to_string());
    assert!(
        Path::new(&bin).is_file(),
        "{bin} is missing: install Debian's kannel (scripts/test does) or set {var}"
    );
    bin
}

/// Distinct free loopback ports (held together while chosen, so they differ).
fn free_ports<const N: usize>() -> [u16; N] {
    let held: Vec<TcpListener> = (0..N)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("a free loopback port"))
        .collect();
    std::array::from_fn(|i| held[i].local_addr().unwrap().port())
}

/// The last `n` lines of a file, or a note that it is missing.
fn tail(path: &Path, n: usize) -> String {
    match std::fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let lines: Vec<&str> = text.lines().collect();
            lines[lines.len().saturating_sub(n)..].join("\n")
        }
        Err(e) => format!("({e})"),
    }
}

#[allow(clippy::too_many_arguments)]
fn config(
    dir: &Path,
    admin_port: u16,
    admin_password: &str,
    box_port: u16,
    fake_port: u16,
    smsc_id: &str,
    sendsms_port: u16,
    username: &str,
    password: &str,
    get_url: &str,
) -> String {
    let dir = dir.display();
    format!(
        r#"group = core
admin-port = {admin_port}
admin-interface = "127.0.0.1"
admin-password = "{admin_password}"
admin-allow-ip = "127.0.0.1"
smsbox-port = {box_port}
smsbox-interface = "127.0.0.1"
box-allow-ip = "127.0.0.1"
dlr-storage = internal
log-file = "{dir}/bearerbox.log"
log-level = 1

group = smsc
smsc = fake
smsc-id = "{smsc_id}"
port = {fake_port}
our-host = "127.0.0.1"
connect-allow-ip = "127.0.0.1"

group = smsbox
bearerbox-host = "127.0.0.1"
bearerbox-port = {box_port}
sendsms-port = {sendsms_port}
sendsms-interface = "127.0.0.1"
mo-recode = true
log-file = "{dir}/smsbox.log"
log-level = 1

group = sendsms-user
username = "{username}"
password = "{password}"
user-allow-ip = "127.0.0.1"
concatenation = true
max-messages = 10

group = sms-service
keyword = default
catch-all = true
max-messages = 0
accept-x-kannel-headers = true
get-url = "{get_url}"
"#
    )
}

impl Kannel {
    /// Writes a config into a temporary folder (every interface on 127.0.0.1, free ports),
    /// starts bearerbox, waits for `status.txt`, connects the fake operator, starts smsbox and
    /// waits until `status.txt` shows the fake SMSC online and smsbox on-line, and the sendsms
    /// port answers. MO messages go to `mo_url` with
    /// `from=%p&to=%P&text=%b&coding=%c&charset=%C&id=%I` appended (`%b` keeps the text exactly;
    /// `%a` would fold its white space).
    /// Tries three times (fresh ports each time), then panics with the logs.
    pub async fn start(mo_url: &str) -> Kannel {
        assert!(
            !mo_url.contains(['"', ' ', '\n']),
            "the MO URL cannot go into the config: {mo_url:?}"
        );
        let bearerbox = binary("CASECAST_KANNEL_BEARERBOX", "/usr/sbin/bearerbox");
        let smsbox = binary("CASECAST_KANNEL_SMSBOX", "/usr/sbin/smsbox");
        let sep = if mo_url.contains('?') { '&' } else { '?' };
        let get_url = format!("{mo_url}{sep}from=%p&to=%P&text=%b&coding=%c&charset=%C&id=%I");
        let mut failures = Vec::new();
        for attempt in 1..=ATTEMPTS {
            match Kannel::try_start(&bearerbox, &smsbox, &get_url).await {
                Ok(kannel) => return kannel,
                Err(why) => failures.push(format!("attempt {attempt}: {why}")),
            }
        }
        panic!("Kannel did not start:\n{}", failures.join("\n\n"));
    }

    async fn try_start(bearerbox: &str, smsbox: &str, get_url: &str) -> Result<Kannel, String> {
        let dir = tempfile::Builder::new()
            .prefix("casecast-kannel.")
            .tempdir()
            .map_err(|e| format!("a temporary folder: {e}"))?;
        let [admin_port, box_port, fake_port, sendsms_port] = free_ports();
        let secret = || casecast_store::secrets::random_hex(8);
        let mut kannel = Kannel {
            sendsms_url: format!("http://127.0.0.1:{sendsms_port}/cgi-bin/sendsms"),
            username: "casecast".into(),
            password: secret(),
            admin_url: format!("http://127.0.0.1:{admin_port}"),
            admin_password: secret(),
            smsc_id: "fake".into(),
            fake_port,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()
                .unwrap(),
            received: Arc::default(),
            operator: None,
            bearerbox: None,
            smsbox: None,
            spawner: Some(Spawner::new()),
            dir,
        };
        let conf = kannel.dir.path().join("kannel.conf");
        let text = config(
            kannel.dir.path(),
            admin_port,
            &kannel.admin_password,
            box_port,
            fake_port,
            &kannel.smsc_id,
            sendsms_port,
            &kannel.username,
            &kannel.password,
            get_url,
        );
        std::fs::write(&conf, text).map_err(|e| format!("writing {}: {e}", conf.display()))?;

        kannel.bearerbox = Some(kannel.spawn(bearerbox, "bearerbox", &conf)?);
        kannel
            .wait_for_status("bearerbox's status.txt", |_| true)
            .await?;
        kannel.connect_operator().await?;
        kannel.smsbox = Some(kannel.spawn(smsbox, "smsbox", &conf)?);
        let fake = format!("FAKE:{fake_port} (online");
        kannel
            .wait_for_status("the fake SMSC online and smsbox on-line", |s| {
                s.contains(&fake)
                    && s.lines()
                        .any(|l| l.trim_start().starts_with("smsbox:") && l.contains("on-line"))
            })
            .await?;
        kannel.wait_for_sendsms().await?;
        Ok(kannel)
    }

    fn spawn(&self, bin: &str, name: &str, conf: &Path) -> Result<Child, String> {
        let console = std::fs::File::create(self.dir.path().join(format!("{name}.console")))
            .map_err(|e| format!("{name}'s console file: {e}"))?;
        let err = console.try_clone().map_err(|e| e.to_string())?;
        let mut cmd = if Path::new(SETPRIV).is_file() {
            let mut cmd = Command::new(SETPRIV);
            cmd.args(["--pdeathsig", "TERM", "--"]).arg(bin);
            cmd
        } else {
            Command::new(bin)
        };
        // Only errors on the console; the log files hold the rest.
        cmd.args(["-v", "3"])
            .arg(conf)
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(console)
            .stderr(err);
        self.spawner
            .as_ref()
            .expect("the spawner is running")
            .spawn(cmd)
            .map_err(|e| format!("starting {bin}: {e}"))
    }

    /// Fails when a started process has ended.
    fn check_alive(&mut self) -> Result<(), String> {
        let mut ended = None;
        for (name, child) in [
            ("bearerbox", &mut self.bearerbox),
            ("smsbox", &mut self.smsbox),
        ] {
            if let Some(Ok(Some(status))) = child.as_mut().map(Child::try_wait) {
                ended = Some(format!("{name} exited ({status})"));
                break;
            }
        }
        match ended {
            Some(why) => Err(format!("{why}\n{}", self.logs())),
            None => Ok(()),
        }
    }

    async fn wait_for_status(
        &mut self,
        what: &str,
        ready: impl Fn(&str) -> bool,
    ) -> Result<(), String> {
        let deadline = Instant::now() + START_WITHIN;
        let mut last = String::new();
        while Instant::now() < deadline {
            self.check_alive()?;
            match self.try_status().await {
                Ok(status) if ready(&status) => return Ok(()),
                Ok(status) => last = status,
                Err(e) => last = e,
            }
            tokio::time::sleep(STEP).await;
        }
        Err(format!(
            "no {what} within {START_WITHIN:?}; last status: {last}\n{}",
            self.logs()
        ))
    }

    async fn connect_operator(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + START_WITHIN;
        let stream = loop {
            self.check_alive()?;
            match TcpStream::connect(("127.0.0.1", self.fake_port)) {
                Ok(stream) => break stream,
                Err(e) if Instant::now() >= deadline => {
                    return Err(format!(
                        "the fake SMSC port {} refused the operator: {e}\n{}",
                        self.fake_port,
                        self.logs()
                    ))
                }
                Err(_) => tokio::time::sleep(STEP).await,
            }
        };
        stream.set_nodelay(true).ok();
        let read = stream.try_clone().map_err(|e| e.to_string())?;
        let received = self.received.clone();
        let reader = std::thread::Builder::new()
            .name("kannel-fake-operator".into())
            .spawn(move || read_operator(read, received))
            .map_err(|e| e.to_string())?;
        self.operator = Some(Operator {
            stream: Mutex::new(stream),
            reader: Some(reader),
        });
        Ok(())
    }

    /// Waits until the sendsms port answers HTTP (any status).
    async fn wait_for_sendsms(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + START_WITHIN;
        loop {
            self.check_alive()?;
            match self.http.get(&self.sendsms_url).send().await {
                Ok(_) => return Ok(()),
                Err(e) if Instant::now() >= deadline => {
                    return Err(format!("sendsms does not answer: {e}\n{}", self.logs()))
                }
                Err(_) => tokio::time::sleep(STEP).await,
            }
        }
    }

    async fn try_status(&self) -> Result<String, String> {
        let url = format!("{}/status.txt", self.admin_url);
        let response = self
            .http
            .get(url)
            .query(&[("password", &self.admin_password)])
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let code = response.status();
        let body = response.text().await.map_err(|e| e.to_string())?;
        if code.is_success() {
            Ok(body)
        } else {
            Err(format!("{code}: {body}"))
        }
    }

    /// bearerbox's `status.txt`.
    pub async fn status(&self) -> String {
        self.try_status()
            .await
            .unwrap_or_else(|e| panic!("Kannel's status.txt: {e}"))
    }

    /// The MT messages (and message parts) the fake operator received so far, in order.
    pub fn received(&self) -> Vec<FakeMt> {
        self.received
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Waits until at least `n` MT lines arrived (each part of a concatenated message counts);
    /// panics with what arrived and the logs after `within`.
    pub async fn wait_for(&self, n: usize, within: Duration) -> Vec<FakeMt> {
        let deadline = Instant::now() + within;
        loop {
            let got = self.received();
            if got.len() >= n {
                return got;
            }
            if Instant::now() >= deadline {
                panic!(
                    "the fake operator received {} of {n} messages within {within:?}: {got:#?}\n{}",
                    got.len(),
                    self.logs()
                );
            }
            tokio::time::sleep(STEP).await;
        }
    }

    /// Sends an MO message from the fake operator: a `text` line when `text` is printable
    /// ASCII, otherwise a `ucs2` line (URL-encoded UTF-16BE; smsbox recodes it to UTF-8).
    /// `from` and `to` must be single words.
    pub async fn send_mo(&self, from: &str, to: &str, text: &str) {
        let line = mo_line(from, to, text);
        let operator = self
            .operator
            .as_ref()
            .expect("the fake operator is connected");
        let mut stream = operator.stream.lock().unwrap_or_else(|e| e.into_inner());
        stream
            .write_all(line.as_bytes())
            .unwrap_or_else(|e| panic!("writing {line:?} to the fake SMSC: {e}"));
    }

    /// bearerbox's process id.
    pub fn bearerbox_pid(&self) -> u32 {
        self.bearerbox.as_ref().expect("bearerbox is running").id()
    }

    /// smsbox's process id.
    pub fn smsbox_pid(&self) -> u32 {
        self.smsbox.as_ref().expect("smsbox is running").id()
    }

    /// The temporary folder with `kannel.conf` and the logs.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The last lines of every log, for failure messages.
    pub fn logs(&self) -> String {
        let files: [PathBuf; 4] = [
            "bearerbox.console",
            "bearerbox.log",
            "smsbox.console",
            "smsbox.log",
        ]
        .map(|f| self.dir.path().join(f));
        files
            .iter()
            .filter(|f| f.exists())
            .map(|f| format!("--- {}:\n{}", f.display(), tail(f, 30)))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for Kannel {
    fn drop(&mut self) {
        let mut children: Vec<Child> = [self.smsbox.take(), self.bearerbox.take()]
            .into_iter()
            .flatten()
            .collect();
        for child in &mut children {
            if let Ok(None) = child.try_wait() {
                let _ = Command::new("kill")
                    .arg("-TERM")
                    .arg(child.id().to_string())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status();
            }
        }
        if let Some(mut operator) = self.operator.take() {
            if let Ok(stream) = operator.stream.get_mut() {
                let _ = stream.shutdown(Shutdown::Both);
            }
            if let Some(reader) = operator.reader.take() {
                let _ = reader.join();
            }
        }
        let deadline = Instant::now() + STOP_WITHIN;
        for child in &mut children {
            while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(STEP);
            }
            if let Ok(None) = child.try_wait() {
                eprintln!("kannel: PID {} ignored SIGTERM; killing it", child.id());
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        self.spawner.take();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_mt_line_types() {
        let t = parse_line("1234 +256772123456 text Hello  world").unwrap();
        assert_eq!(
            (
                t.sender.as_str(),
                t.receiver.as_str(),
                t.kind,
                t.text.as_str()
            ),
            ("1234", "+256772123456", LineKind::Text, "Hello  world")
        );
        let u = parse_line("1234 +256772123456 ucs-2 %00H%00i%00+%D8%3D%DE%00").unwrap();
        assert_eq!((u.kind, u.text.as_str()), (LineKind::Ucs2, "Hi 😀"));
        let a = parse_line("Casecast Health 256772123456 text ok").unwrap();
        assert_eq!(
            (a.sender.as_str(), a.receiver.as_str(), a.text.as_str()),
            ("Casecast Health", "256772123456", "ok")
        );
        let p = parse_line("1234 +256 udh %05%00%03%2A%02%01 data ab+%25").unwrap();
        assert_eq!((p.kind, p.data.as_slice()), (LineKind::Udh, &b"ab %"[..]));
        let udh = p.udh.clone().unwrap();
        assert_eq!(udh.raw, vec![5, 0, 3, 42, 2, 1]);
        let c = Concat {
            reference: 42,
            total: 2,
            seq: 1,
        };
        assert_eq!(udh.concat, Some(c));
        let q = parse_line("1234 +256 udh %06%08%04%01%02%02%02 data cd").unwrap();
        assert_eq!(
            q.concat(),
            Some(Concat {
                reference: 258,
                total: 2,
                seq: 2
            })
        );
        let mut r = q.clone();
        r.udh = Some(Udh::parse(vec![5, 0, 3, 1, 2, 2]));
        let mut s = p.clone();
        s.udh = Some(Udh::parse(vec![5, 0, 3, 1, 2, 1]));
        assert_eq!(join_parts(&[r, s]), b"ab %cd");
        assert!(parse_line("no type here").is_none());
    }

    #[test]
    fn mo_lines_are_text_or_ucs2() {
        assert_eq!(mo_line("+256", "1234", "STOP"), "+256 1234 text STOP\n");
        assert_eq!(
            mo_line("+256", "1234", "é\n"),
            "+256 1234 ucs2 %00%E9%00%0A\n"
        );
        assert_eq!(url_decode("a%2Bb+c%zz%4"), b"a+b c%zz%4");
    }
}
