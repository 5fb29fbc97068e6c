//! Starts a private Kannel (bearerbox and smsbox on free loopback ports, the fake operator
//! connected) and runs `casecast-bench dispatch kannel` against it: the plain load generator and
//! the dispatcher then go through the same Kannel in the same run. scripts/bench runs it.
//!
//! Usage: `bench_kannel CASECAST_BENCH_BINARY [ARGS…]`, where ARGS go to `casecast-bench dispatch
//! kannel` (e.g. `--db postgres://… --messages 20000`).
//!
//! An example of the testkit rather than a part of `casecast-bench`: starting Kannel is test
//! support, which the benchmarks do not link.

use std::process::{Command, ExitCode};

use casecast_testkit::kannel::Kannel;

#[tokio::main]
async fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let Some(bench) = args.next() else {
        eprintln!(
            "usage: bench_kannel CASECAST_BENCH_BINARY [ARGS of `casecast-bench dispatch kannel`]"
        );
        return ExitCode::FAILURE;
    };
    let rest: Vec<String> = args.collect();
    // Inbound messages are not part of the figures: the MO URL is never called.
    let kannel = Kannel::start("http://127.0.0.1:9/mo").await;
    let status = Command::new(&bench)
        .args(["dispatch", "kannel", "--sendsms-url"])
        .arg(&kannel.sendsms_url)
        .arg("--username")
        .arg(&kannel.username)
        .args(&rest)
        .env("CASECAST_BENCH_KANNEL_PASSWORD", &kannel.password)
        .status();
    let received = kannel.received().len();
    println!("kannel: the fake operator received {received} messages in all");
    drop(kannel);
    match status {
        Ok(s) if s.success() => ExitCode::SUCCESS,
        Ok(s) => {
            eprintln!("casecast-bench dispatch kannel: {s}");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("running {bench}: {e}");
            ExitCode::FAILURE
        }
    }
}
