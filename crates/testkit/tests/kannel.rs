//! The Kannel test harness against the real bearerbox and smsbox: MT text, UCS-2 and
//! concatenated messages reach the fake operator, delivery reports and MO messages reach local
//! HTTP listeners, and dropping the value stops the processes.

// Helpers of a test crate are test code too, though clippy's allow-unwrap-in-tests (clippy.toml)
// spares only #[test] functions and #[cfg(test)] modules.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use casecast_testkit::capture::Capture;
use casecast_testkit::kannel::{decode_ucs2, join_parts, Kannel, LineKind};
use reqwest::Url;

const WITHIN: Duration = Duration::from_secs(15);

/// The callbacks `capture` has had for `path` (waiting for `n`), as URLs.
async fn callbacks(capture: &Capture, path: &str, n: usize) -> Vec<Url> {
    capture
        .wait_for(path, n)
        .await
        .iter()
        .map(|q| Url::parse(&format!("{}{path}?{q}", capture.base)).unwrap())
        .collect()
}

fn param(url: &Url, name: &str) -> Option<String> {
    url.query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// GET sendsms from 1234 to +256772123456 with `extra` parameters; asserts 202.
async fn sendsms(kannel: &Kannel, extra: &[(&str, &str)]) {
    let mut query = vec![
        ("username", kannel.username.as_str()),
        ("password", kannel.password.as_str()),
        ("from", "1234"),
        ("to", "+256772123456"),
    ];
    query.extend_from_slice(extra);
    let response = reqwest::Client::new()
        .get(&kannel.sendsms_url)
        .query(&query)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let body = response.text().await.unwrap();
    assert_eq!(status, 202, "sendsms answered {status}: {body}");
    assert!(body.contains("Accepted for delivery"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mt_messages_reach_the_fake_operator() {
    let capture = Capture::start();
    let kannel = Kannel::start(&format!("{}/mo", capture.base)).await;

    let gsm = "Hello from Casecast: visit on 12/05 at 09:00 (bring card #7)";
    sendsms(&kannel, &[("text", gsm)]).await;
    let got = kannel.wait_for(1, WITHIN).await;
    assert_eq!(got.len(), 1, "{got:#?}");
    assert_eq!(
        (
            got[0].sender.as_str(),
            got[0].receiver.as_str(),
            got[0].kind,
            got[0].text.as_str()
        ),
        ("1234", "+256772123456", LineKind::Text, gsm)
    );
    assert_eq!(got[0].udh, None);

    let unicode = "Habari 😀 café – ናይ";
    sendsms(
        &kannel,
        &[("text", unicode), ("coding", "2"), ("charset", "UTF-8")],
    )
    .await;
    let got = kannel.wait_for(2, WITHIN).await;
    assert_eq!(got.len(), 2, "{got:#?}");
    assert_eq!(
        (got[1].kind, got[1].text.as_str()),
        (LineKind::Ucs2, unicode)
    );

    let long: String = (0..300)
        .map(|i| char::from(b"abcdefghij klmnopqrstuvwxyz0123456789"[i % 37]))
        .collect();
    sendsms(&kannel, &[("text", &long)]).await;
    let got = kannel.wait_for(4, WITHIN).await;
    assert_eq!(got.len(), 4, "{got:#?}");
    let parts = &got[2..];
    assert!(parts.iter().all(|p| p.kind == LineKind::Udh), "{parts:#?}");
    assert_eq!(parts.iter().map(|p| p.concat().unwrap().seq).sum::<u8>(), 3);
    assert_eq!(String::from_utf8(join_parts(parts)).unwrap(), long);

    // Long UCS-2 also splits, into UTF-16BE parts.
    let long_unicode = "Asante sana 🙏 ".repeat(8);
    sendsms(
        &kannel,
        &[
            ("text", &long_unicode),
            ("coding", "2"),
            ("charset", "UTF-8"),
        ],
    )
    .await;
    let got = kannel.wait_for(6, WITHIN).await;
    assert_eq!(got.len(), 6, "{got:#?}");
    assert_eq!(decode_ucs2(&join_parts(&got[4..])), long_unicode);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivery_reports_and_mo_reach_their_urls() {
    let capture = Capture::start();
    let kannel = Kannel::start(&format!("{}/mo", capture.base)).await;

    let dlr_url = format!("{}/dlr?id=abc&status=%d", capture.base);
    sendsms(
        &kannel,
        &[
            ("text", "with reports"),
            ("dlr-mask", "31"),
            ("dlr-url", &dlr_url),
        ],
    )
    .await;
    let reports = callbacks(&capture, "/dlr", 2).await;
    let mut statuses: Vec<String> = reports
        .iter()
        .map(|u| {
            assert_eq!(param(u, "id").as_deref(), Some("abc"), "{u}");
            param(u, "status").unwrap()
        })
        .collect();
    statuses.sort();
    assert_eq!(statuses, ["1", "8"]);
    assert_eq!(kannel.received()[0].text, "with reports");

    kannel.send_mo("+256772123456", "1234", "STOP").await;
    let mo = callbacks(&capture, "/mo", 1).await;
    assert_eq!(param(&mo[0], "from").as_deref(), Some("+256772123456"));
    assert_eq!(param(&mo[0], "to").as_deref(), Some("1234"));
    assert_eq!(param(&mo[0], "text").as_deref(), Some("STOP"));
    assert!(param(&mo[0], "id").is_some_and(|id| !id.is_empty()));

    // Non-ASCII MO goes as UCS-2 and arrives as UTF-8 (mo-recode).
    kannel
        .send_mo("+256772123456", "1234", "Ndiyo 😀 & 100%")
        .await;
    let mo = callbacks(&capture, "/mo", 2).await;
    assert_eq!(param(&mo[1], "text").as_deref(), Some("Ndiyo 😀 & 100%"));
    assert_eq!(callbacks(&capture, "/dlr", 0).await.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drop_stops_the_processes() {
    let kannel = Kannel::start("http://127.0.0.1:9/mo").await;
    let dir = kannel.dir().to_path_buf();
    let pids = [kannel.bearerbox_pid(), kannel.smsbox_pid()];
    for pid in pids {
        assert!(std::path::Path::new(&format!("/proc/{pid}")).exists());
    }
    drop(kannel);
    let deadline = Instant::now() + WITHIN;
    for pid in pids {
        let proc = format!("/proc/{pid}");
        while std::path::Path::new(&proc).exists() {
            assert!(Instant::now() < deadline, "PID {pid} still runs after drop");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
    assert!(!dir.exists(), "{} is left behind", dir.display());
}
