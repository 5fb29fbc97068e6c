//! A loopback HTTP/1.1 listener for gateway callbacks in tests: it answers every request
//! `200 OK` (keep-alive: Kannel calls over many parallel connections) and records each
//! request's path and raw query.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long [`Capture::wait_for`] waits.
const WITHIN: Duration = Duration::from_secs(15);

/// A loopback HTTP/1.1 listener that answers every request `200 OK` (keep-alive: Kannel calls
/// over many parallel connections) and records each request's path and raw query.
pub struct Capture {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    requests: Arc<Mutex<Vec<(String, String)>>>,
}

impl Capture {
    /// Starts listening on a free loopback port.
    pub fn start() -> Capture {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let requests = Arc::new(Mutex::new(Vec::new()));
        let sink = requests.clone();
        // Lives until the test process ends.
        std::thread::spawn(move || {
            for stream in listener.incoming().map_while(Result::ok) {
                let sink = sink.clone();
                std::thread::spawn(move || serve(stream, sink));
            }
        });
        Capture { base, requests }
    }

    /// Waits until `n` requests to `path` arrived; returns their raw query strings.
    pub async fn wait_for(&self, path: &str, n: usize) -> Vec<String> {
        let deadline = Instant::now() + WITHIN;
        loop {
            let got: Vec<String> = self
                .requests
                .lock()
                .unwrap()
                .iter()
                .filter(|(p, _)| p == path)
                .map(|(_, q)| q.clone())
                .collect();
            if got.len() >= n {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "{} of {n} requests to {path} within {WITHIN:?}: {:?}",
                got.len(),
                self.requests.lock().unwrap()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

/// One connection: request after request until the peer closes or stays idle.
fn serve(stream: TcpStream, sink: Arc<Mutex<Vec<(String, String)>>>) {
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
            return;
        }
        let mut length = 0;
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header).unwrap_or(0) == 0 {
                return;
            }
            let header = header.trim_end();
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
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        if let Some(target) = request_line.split(' ').nth(1) {
            let (path, query) = target.split_once('?').unwrap_or((target, ""));
            sink.lock()
                .unwrap()
                .push((path.to_string(), query.to_string()));
        }
        if writer
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
            .is_err()
        {
            return;
        }
    }
}
