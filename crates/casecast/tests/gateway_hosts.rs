//! `--allow-gateway-host` / `CASECAST_ALLOW_GATEWAY_HOSTS`: what `serve` and `worker` let
//! gateways reach besides public addresses, on both engines. A value that is not an address,
//! a network or a host name stops the process with one line; the variable takes a
//! comma-separated list; and a worker that does not allow a gateway's address fails its
//! messages without a request.

// Helpers of a test crate are test code too, though clippy's allow-unwrap-in-tests (clippy.toml)
// spares only #[test] functions and #[cfg(test)] modules.
#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use casecast_core::case::CaseChanges;
use casecast_core::gateway::config::GatewayKind;
use casecast_core::{CountryCode, Email, PhoneNumber, ProjectSlug, Role, TimeZoneName};
use casecast_store::gateways::NewGateway;
use casecast_store::projects::{NewProject, Project};
use casecast_store::Db;
use casecast_testkit::cli::{self, Server, Worker};
use casecast_testkit::{eventually, on_both_engines, Dialect, TestDb, Workflows};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const BIN: &str = env!("CARGO_BIN_EXE_casecast");

on_both_engines!(
    a_bad_allowed_host_is_a_one_line_error,
    the_variable_takes_a_comma_separated_list,
    a_worker_that_does_not_allow_the_address_makes_no_request,
);

async fn project(db: &Db) -> Project {
    db.create_project(&NewProject {
        slug: ProjectSlug::parse("hosts").unwrap(),
        name: "Hosts".into(),
        time_zone: TimeZoneName::parse("Africa/Kampala").unwrap(),
        country: Some(CountryCode::parse("UG").unwrap()),
    })
    .await
    .unwrap()
}

async fn a_bad_allowed_host_is_a_one_line_error(engine: Dialect) {
    let t = TestDb::new(engine).await;
    for (args, env) in [
        (vec!["serve", "--allow-gateway-host", "10.0.0.0/33"], None),
        (vec!["worker", "--allow-gateway-host", "10.0.0.0/33"], None),
        (
            vec!["worker"],
            Some(("CASECAST_ALLOW_GATEWAY_HOSTS", "127.0.0.1,10.0.0.0/33")),
        ),
    ] {
        let mut cmd = cli::command(BIN, Some(&t.url));
        if let Some((k, v)) = env {
            cmd.env(k, v);
        }
        let run = cli::run(cmd, &args, None).await;
        assert!(!run.status.success(), "{run:?}");
        assert_eq!(
            run.stderr.trim(),
            "error: invalid value '10.0.0.0/33' for '--allow-gateway-host <HOST_OR_CIDR>': \
             \"10.0.0.0/33\" is not an IP address, a network in CIDR form (10.0.0.0/8) or a host name",
            "{run:?}"
        );
    }
}

async fn the_variable_takes_a_comma_separated_list(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let p = project(&t.db).await;
    let user =
        t.db.upsert_user(
            &Email::parse("admin@hosts.example.org").unwrap(),
            "pw-admin-hosts-1",
            p.id,
            Role::Admin,
        )
        .await
        .unwrap();
    let (_, token) = t.db.create_token(p.id, user.id, "test").await.unwrap();
    let server = Server::start_exactly(
        BIN,
        &t.url,
        &[],
        &[("CASECAST_ALLOW_GATEWAY_HOSTS", "127.0.0.1, 10.0.0.0/8")],
    )
    .await;
    let http = reqwest::Client::new();
    let add = |name: &str, url: &str| {
        http.post(format!(
            "{}/api/v1/projects/hosts/gateways",
            server.base
        ))
        .bearer_auth(&token)
        .json(&json!({"name": name, "kind": "http", "callback_base_url": "http://casecast.example",
            "config": {"url": url, "method": "GET"}}))
        .send()
    };
    let local = add("Local", "http://127.0.0.1:13013/send").await.unwrap();
    assert_eq!(local.status(), 201, "{}", local.text().await.unwrap());
    let network = add("Network", "http://10.9.8.7/send").await.unwrap();
    assert_eq!(network.status(), 201, "{}", network.text().await.unwrap());
    let other = add("Other", "http://192.168.1.1/send").await.unwrap();
    assert_eq!(other.status(), 422);
    let body: serde_json::Value = other.json().await.unwrap();
    assert_eq!(
        body["error"]["message"],
        "config.url: 192.168.1.1 is a private address: gateways may not reach loopback, \
         link-local or private addresses unless the server is started with \
         --allow-gateway-host 192.168.1.1"
    );
}

/// A gateway on loopback that counts the requests it gets and accepts each.
async fn counting_gateway() -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = stream.read(&mut buf).await;
                let answer = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nOK";
                let _ = stream.write_all(answer.as_bytes()).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    (format!("http://{addr}/send"), hits)
}

async fn a_worker_that_does_not_allow_the_address_makes_no_request(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = t.db.clone();
    let p = project(&db).await;
    let (url, hits) = counting_gateway().await;
    // Saved while loopback was allowed (the store itself does not check addresses).
    db.create_gateway(
        p.id,
        &NewGateway {
            name: "Local".into(),
            kind: GatewayKind::Http,
            config: json!({"url": url, "method": "GET", "params": [["to", "{to}"]]}),
            callback_base_url: "http://casecast.example".into(),
            max_segments_per_second: None,
            max_attempts: None,
            prefixes: vec![],
            is_default: true,
        },
    )
    .await
    .unwrap();
    let case = db
        .create_case(
            p.id,
            None,
            &CaseChanges {
                name: Some("Amina".into()),
                phone_number: Some(Some(PhoneNumber::parse("+256772000001", None).unwrap())),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let m = db
        .send_to_case(&p, case.case_id.as_str(), "Hello Amina", None, None)
        .await
        .unwrap();
    let mut worker = Worker::start_exactly(BIN, &t.url, &[], &[]);
    let failed = eventually("the message failed", Duration::from_secs(60), || {
        worker.check_alive();
        let (db, project_id, id) = (db.clone(), p.id, m.id);
        async move {
            let m = db.message(project_id, id).await.unwrap();
            (m.status == "failed").then_some(m)
        }
    })
    .await;
    let error = failed.error.unwrap();
    assert!(
        error.starts_with(
            "the gateway's address is not allowed [detail: 127.0.0.1 is a loopback address"
        ),
        "{error}"
    );
    assert!(error.contains("--allow-gateway-host 127.0.0.1"), "{error}");
    assert_eq!(hits.load(Ordering::SeqCst), 0, "a request was made");
    assert_eq!(failed.attempts, 1, "refused at once, not retried");
}
