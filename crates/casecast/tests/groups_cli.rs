//! `casecast groups …` as an operator runs it, and the demo case group of `serve --demo`.
//! Every test runs on SQLite and on PostgreSQL (`CASECAST_TEST_PG`).

// Helpers of a test crate are test code too, though clippy's allow-unwrap-in-tests (clippy.toml)
// spares only #[test] functions and #[cfg(test)] modules.
#![allow(clippy::unwrap_used)]

use std::path::Path;

use casecast_core::sheet::{read_table, Limits};
use casecast_store::cases::CaseFilter;
use casecast_store::Db;
use casecast_testkit::cli::{self, Run, Server};
use casecast_testkit::{fresh_url, on_both_engines, Dialect, TestDb};

// ---------------------------------------------------------------------------------------------
// Running the binary
// ---------------------------------------------------------------------------------------------

const BIN: &str = env!("CARGO_BIN_EXE_casecast");

/// `casecast --db URL ARGS…`.
async fn run(url: &str, args: &[&str]) -> Run {
    cli::run(cli::command(BIN, Some(url)), args, None).await
}

/// The tab-separated fields of each stdout line.
fn rows(stdout: &str) -> Vec<Vec<&str>> {
    stdout.lines().map(|l| l.split('\t').collect()).collect()
}

// ---------------------------------------------------------------------------------------------
// Fixture: two projects, cases in the first
// ---------------------------------------------------------------------------------------------

/// Bob and Carol share a phone number: that number is ambiguous. Dan's case is closed.
const CASES: &str = "external_id,name,phone_number,closed\n\
E1,Alice Akello,+256772123456,false\n\
E2,Bob Okello,0772 000001,false\n\
E3,Carol Atim,0772 000001,false\n\
E4,Dan Opio,0701 000004,true\n";

struct Fixture {
    t: TestDb,
    dir: tempfile::TempDir,
    clinic: i64,
    other: i64,
}

impl Fixture {
    async fn new(engine: Dialect) -> Fixture {
        let t = TestDb::new(engine).await;
        run(&t.url, &["project", "create", "clinic", "--country", "UG"])
            .await
            .ok();
        run(&t.url, &["project", "create", "other", "--country", "UG"])
            .await
            .ok();
        let dir = tempfile::tempdir().unwrap();
        let cases = dir.path().join("cases.csv");
        std::fs::write(&cases, CASES).unwrap();
        run(
            &t.url,
            &[
                "cases",
                "import",
                "--project",
                "clinic",
                cases.to_str().unwrap(),
            ],
        )
        .await
        .ok();
        let clinic = t.db.project_by_slug("clinic").await.unwrap().id;
        let other = t.db.project_by_slug("other").await.unwrap().id;
        Fixture {
            t,
            dir,
            clinic,
            other,
        }
    }

    async fn run(&self, args: &[&str]) -> Run {
        run(&self.t.url, args).await
    }

    /// The case ID of the clinic's case with this external ID.
    async fn case_id(&self, external_id: &str) -> String {
        let filter = CaseFilter {
            external_id: Some(external_id.to_string()),
            ..CaseFilter::default()
        };
        let page = self
            .t
            .db
            .list_cases(self.clinic, &filter, 10, None)
            .await
            .unwrap();
        assert_eq!(page.items.len(), 1, "one case {external_id}");
        page.items[0].case_id.as_str().to_string()
    }

    /// Creates a group in `project` through the CLI; returns its ID as printed.
    async fn create(&self, project: &str, name: &str) -> String {
        let out = self
            .run(&["groups", "create", "--project", project, name])
            .await;
        let line = out.ok().trim_end().to_string();
        let rest = line
            .strip_prefix("created case group ")
            .unwrap_or_else(|| panic!("{out:?}"));
        let (id, quoted) = rest.split_once(' ').unwrap();
        assert_eq!(quoted, format!("'{}'", name.trim()), "{out:?}");
        id.parse::<i64>().unwrap_or_else(|_| panic!("{out:?}"));
        id.to_string()
    }

    /// The external IDs of a group's members, in order.
    async fn members(&self, project_id: i64, group: &str) -> Vec<String> {
        let page = self
            .t
            .db
            .group_members(project_id, group.parse().unwrap(), None, 100, None)
            .await
            .unwrap();
        page.items
            .into_iter()
            .map(|c| c.external_id.unwrap_or_default())
            .collect()
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).to_str().unwrap().to_string()
    }
}

/// A first worksheet of text cells (an empty string leaves the cell empty), and optionally one
/// numeric cell (row, column, number) as Excel stores a phone number typed without a `+`.
fn write_xlsx(path: &str, cells: &[&[&str]], number: Option<(u32, u16, f64)>) {
    let mut book = rust_xlsxwriter::Workbook::new();
    let sheet = book.add_worksheet();
    for (r, row) in cells.iter().enumerate() {
        for (c, value) in row.iter().enumerate() {
            if !value.is_empty() {
                sheet.write_string(r as u32, c as u16, *value).unwrap();
            }
        }
    }
    if let Some((r, c, n)) = number {
        sheet.write_number(r, c, n).unwrap();
    }
    book.save(path).unwrap();
}

/// A written sheet read back: headers, then rows of cells.
fn read_back(path: &str) -> (Vec<String>, Vec<Vec<String>>) {
    let bytes = std::fs::read(path).unwrap();
    let table = read_table(&bytes, path, &Limits::default()).unwrap();
    (
        table.headers.0.clone(),
        table.rows.into_iter().map(|r| r.cells).collect(),
    )
}

// ---------------------------------------------------------------------------------------------
// create, list, rename, delete
// ---------------------------------------------------------------------------------------------

async fn groups_create_list_rename_delete(engine: Dialect) {
    let f = Fixture::new(engine).await;
    let out = f.run(&["groups", "list", "--project", "clinic"]).await;
    assert_eq!(out.ok(), "", "no groups yet");

    let mothers = f.create("clinic", "  Mothers  ").await;
    let youth = f.create("clinic", "Youth club").await;
    f.run(&["groups", "add", "--project", "clinic", &youth, "E1", "E2"])
        .await
        .ok();

    // One line per group: ID, name, number of cases; by name.
    let out = f.run(&["groups", "list", "--project", "clinic"]).await;
    assert_eq!(
        rows(out.ok()),
        [
            [mothers.as_str(), "Mothers", "0"],
            [youth.as_str(), "Youth club", "2"]
        ],
        "{out:?}"
    );

    // Names are unique in a project, ignoring case; the error names the name.
    f.run(&["groups", "create", "--project", "clinic", "MOTHERS"])
        .await
        .fails(&["MOTHERS", "already exists"]);
    f.run(&["groups", "create", "--project", "clinic", "   "])
        .await
        .fails(&["name"]);
    f.run(&["groups", "create", "--project", "nowhere", "Mothers"])
        .await
        .fails(&["nowhere"]);
    // The same name in another project is fine.
    f.create("other", "Mothers").await;

    // Rename; to a taken name is refused.
    let out = f
        .run(&[
            "groups",
            "rename",
            "--project",
            "clinic",
            &mothers,
            "Pregnant women",
        ])
        .await;
    assert!(out.ok().contains("'Pregnant women'"), "{out:?}");
    f.run(&[
        "groups",
        "rename",
        "--project",
        "clinic",
        &mothers,
        "youth CLUB",
    ])
    .await
    .fails(&["youth CLUB", "already exists"]);
    assert_eq!(
        f.t.db
            .get_group(f.clinic, mothers.parse().unwrap())
            .await
            .unwrap()
            .name,
        "Pregnant women"
    );

    // Delete: the group goes, its cases stay.
    let out = f
        .run(&["groups", "delete", "--project", "clinic", &youth])
        .await;
    assert!(
        out.ok().contains(&youth) && out.stdout.contains("Youth club"),
        "{out:?}"
    );
    let out = f.run(&["groups", "list", "--project", "clinic"]).await;
    assert_eq!(
        rows(out.ok()),
        [[mothers.as_str(), "Pregnant women", "0"]],
        "{out:?}"
    );
    assert_eq!(f.t.db.count_cases(f.clinic).await.unwrap(), 4);
    f.run(&["groups", "delete", "--project", "clinic", &youth])
        .await
        .fails(&[&youth, "not found"]);
    f.run(&["groups", "delete", "--project", "clinic", "abc"])
        .await
        .fails(&["abc"]);
}

// ---------------------------------------------------------------------------------------------
// add and remove
// ---------------------------------------------------------------------------------------------

async fn groups_add_and_remove(engine: Dialect) {
    let f = Fixture::new(engine).await;
    let group = f.create("clinic", "Reminders").await;
    let alice = f.case_id("E1").await;
    let bob = f.case_id("E2").await;
    let carol = f.case_id("E3").await;
    let dan = f.case_id("E4").await;

    // By case ID, external ID and phone number as people write it; then what cannot be added.
    let out = f
        .run(&[
            "groups",
            "add",
            "--project",
            "clinic",
            &group,
            &bob,
            "E3",
            "+256 772 123 456",
            "nope",
            "0772 000001",
        ])
        .await;
    let lines = rows(out.ok());
    assert_eq!(lines.len(), 6, "{out:?}");
    assert_eq!(lines[0], [bob.as_str(), "added", bob.as_str(), ""]);
    assert_eq!(lines[1], ["E3", "added", carol.as_str(), ""]);
    assert_eq!(lines[2], ["+256 772 123 456", "added", alice.as_str(), ""]);
    assert_eq!(lines[3][..3], ["nope", "not_found", ""]);
    assert!(!lines[3][3].is_empty(), "a reason: {out:?}");
    assert_eq!(lines[4][..3], ["0772 000001", "ambiguous", ""]);
    assert!(
        lines[4][3].contains(&bob) && lines[4][3].contains(&carol),
        "the message names both cases: {out:?}"
    );
    assert_eq!(lines[5], ["3 added, 1 not_found, 1 ambiguous"], "{out:?}");
    assert_eq!(f.members(f.clinic, &group).await, ["E1", "E2", "E3"]);

    // Again: already in the group; twice in one call; a closed case is added with a warning.
    let out = f
        .run(&[
            "groups",
            "add",
            "--project",
            "clinic",
            &group,
            "E1",
            "E4",
            "E4",
        ])
        .await;
    let lines = rows(out.ok());
    assert_eq!(lines.len(), 4, "{out:?}");
    assert_eq!(lines[0], ["E1", "already_in_group", alice.as_str(), ""]);
    assert_eq!(lines[1][..3], ["E4", "added", dan.as_str()]);
    assert!(lines[1][3].contains("closed"), "{out:?}");
    assert_eq!(lines[2][..3], ["E4", "duplicate_in_file", dan.as_str()]);
    assert_eq!(
        lines[3],
        ["1 added, 1 already_in_group, 1 duplicate_in_file"],
        "{out:?}"
    );

    // Removing.
    let out = f
        .run(&[
            "groups",
            "remove",
            "--project",
            "clinic",
            &group,
            "E4",
            "+256772123456",
            "E9",
        ])
        .await;
    let lines = rows(out.ok());
    assert_eq!(lines.len(), 4, "{out:?}");
    assert_eq!(lines[0], ["E4", "removed", dan.as_str(), ""]);
    assert_eq!(lines[1], ["+256772123456", "removed", alice.as_str(), ""]);
    assert_eq!(lines[2][..3], ["E9", "not_found", ""]);
    assert_eq!(lines[3], ["2 removed, 1 not_found"], "{out:?}");
    let out = f
        .run(&["groups", "remove", "--project", "clinic", &group, "E4"])
        .await;
    assert_eq!(
        rows(out.ok()),
        [
            vec!["E4", "not_in_group", dan.as_str(), ""],
            vec!["1 not_in_group"]
        ],
        "{out:?}"
    );
    assert_eq!(f.members(f.clinic, &group).await, ["E2", "E3"]);

    // Without identifiers: a usage error, nothing changed.
    let out = f
        .run(&["groups", "add", "--project", "clinic", &group])
        .await;
    assert_ne!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(f.members(f.clinic, &group).await, ["E2", "E3"]);
}

// ---------------------------------------------------------------------------------------------
// upload
// ---------------------------------------------------------------------------------------------

async fn groups_upload(engine: Dialect) {
    let f = Fixture::new(engine).await;
    let group = f.create("clinic", "From sheets").await;
    let alice = f.case_id("E1").await;
    let carol = f.case_id("E3").await;
    let dan = f.case_id("E4").await;

    // A CSV: added, a duplicate, a blank row, not found, ambiguous; with the per-row report.
    let csv = f.path("members.csv");
    std::fs::write(
        &csv,
        "case_identifier\nE1\n+256 772 123 456\n\nnope\n0772000001\n",
    )
    .unwrap();
    let report = f.path("report.csv");
    let out = f
        .run(&[
            "groups",
            "upload",
            "--project",
            "clinic",
            &group,
            &csv,
            "--results",
            &report,
        ])
        .await;
    assert_eq!(
        out.ok(),
        "1 added, 1 duplicate_in_file, 1 not_found, 1 ambiguous, 1 blank\n",
        "{out:?}"
    );
    let (headers, lines) = read_back(&report);
    assert_eq!(
        headers,
        ["row", "identifier", "outcome", "case_id", "message"]
    );
    let firsts: Vec<[&str; 4]> = lines
        .iter()
        .map(|l| [&*l[0], &*l[1], &*l[2], &*l[3]])
        .collect();
    assert_eq!(
        firsts,
        [
            ["2", "E1", "added", alice.as_str()],
            ["3", "+256 772 123 456", "duplicate_in_file", alice.as_str()],
            ["4", "", "blank", ""],
            ["5", "nope", "not_found", ""],
            ["6", "0772000001", "ambiguous", ""],
        ]
    );
    assert!(lines[4][4].contains("use the case ID"), "{lines:?}");
    let text = std::fs::read_to_string(&report).unwrap();
    assert!(
        text.trim_start_matches('\u{feff}')
            .starts_with("row,identifier,outcome,case_id,message\n2,E1,added,"),
        "{text:?}"
    );
    assert_eq!(f.members(f.clinic, &group).await, ["E1"]);

    // An .xlsx with typed columns, and a phone number stored as a number.
    let xlsx = f.path("members.xlsx");
    write_xlsx(
        &xlsx,
        &[
            &["case_id", "external_id", "phone_number"],
            &[&carol, "", ""],
            &["", "E4", ""],
            &["", "", ""],
        ],
        Some((3, 2, 256_772_123_456.0)),
    );
    let report = f.path("report-2.csv");
    let out = f
        .run(&[
            "groups",
            "upload",
            "--project",
            "clinic",
            &group,
            &xlsx,
            "--mode",
            "add",
            "--results",
            &report,
        ])
        .await;
    assert_eq!(out.ok(), "2 added, 1 already_in_group\n", "{out:?}");
    let (_, lines) = read_back(&report);
    let firsts: Vec<[&str; 4]> = lines
        .iter()
        .map(|l| [&*l[0], &*l[1], &*l[2], &*l[3]])
        .collect();
    assert_eq!(
        firsts,
        [
            ["2", carol.as_str(), "added", carol.as_str()],
            ["3", "E4", "added", dan.as_str()],
            ["4", "256772123456", "already_in_group", alice.as_str()],
        ]
    );
    assert!(lines[1][4].contains("closed"), "{lines:?}");
    assert_eq!(f.members(f.clinic, &group).await, ["E1", "E3", "E4"]);

    // Removing by sheet.
    let remove = f.path("remove.csv");
    std::fs::write(&remove, "external_id\nE4\nE2\nE9\n").unwrap();
    let out = f
        .run(&[
            "groups",
            "upload",
            "--project",
            "clinic",
            &group,
            &remove,
            "--mode",
            "remove",
        ])
        .await;
    assert_eq!(
        out.ok(),
        "1 removed, 1 not_in_group, 1 not_found\n",
        "{out:?}"
    );
    assert_eq!(f.members(f.clinic, &group).await, ["E1", "E3"]);

    // No identifier column: one error line listing the headers; nothing changes, no report.
    let bad = f.path("bad.csv");
    std::fs::write(&bad, "Name,Telephone\nE2,0772000001\n").unwrap();
    let report = f.path("report-3.csv");
    f.run(&[
        "groups",
        "upload",
        "--project",
        "clinic",
        &group,
        &bad,
        "--results",
        &report,
    ])
    .await
    .fails(&["bad.csv", "case_identifier", "'Name', 'Telephone'"]);
    assert!(!Path::new(&report).exists());
    let bad_xlsx = f.path("bad.xlsx");
    write_xlsx(&bad_xlsx, &[&["who"], &["E2"]], None);
    f.run(&["groups", "upload", "--project", "clinic", &group, &bad_xlsx])
        .await
        .fails(&["case_identifier", "'who'"]);
    assert_eq!(f.members(f.clinic, &group).await, ["E1", "E3"]);

    // Not a spreadsheet, a missing file, a bad mode.
    let png = f.path("photo.csv");
    std::fs::write(&png, b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01").unwrap();
    f.run(&["groups", "upload", "--project", "clinic", &group, &png])
        .await
        .fails(&["photo.csv"]);
    let missing = f.path("missing.csv");
    f.run(&["groups", "upload", "--project", "clinic", &group, &missing])
        .await
        .fails(&["missing.csv"]);
    let out = f
        .run(&[
            "groups",
            "upload",
            "--project",
            "clinic",
            &group,
            &csv,
            "--mode",
            "swap",
        ])
        .await;
    assert_ne!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(f.members(f.clinic, &group).await, ["E1", "E3"]);

    // Every upload's job is finished: nothing is left for a worker.
    assert!(
        f.t.db.claim_job("test").await.unwrap().is_none(),
        "no job left queued"
    );
}

// ---------------------------------------------------------------------------------------------
// export
// ---------------------------------------------------------------------------------------------

async fn groups_export(engine: Dialect) {
    let f = Fixture::new(engine).await;
    let group = f.create("clinic", "Export me").await;
    let alice = f.case_id("E1").await;
    let dan = f.case_id("E4").await;
    f.run(&["groups", "add", "--project", "clinic", &group, "E1", "E4"])
        .await
        .ok();

    let headers = [
        "case_id",
        "external_id",
        "name",
        "phone_number",
        "case_type",
        "language_code",
        "owner_id",
        "closed",
    ];
    let expected = [
        [
            alice.as_str(),
            "E1",
            "Alice Akello",
            "+256772123456",
            "case",
            "",
            "",
            "false",
        ],
        [
            dan.as_str(),
            "E4",
            "Dan Opio",
            "+256701000004",
            "case",
            "",
            "",
            "true",
        ],
    ];
    let csv = f.path("members.csv");
    let xlsx = f.path("members.xlsx");
    let explicit = f.path("members.data");
    for (file, format) in [
        (&csv, None),
        (&xlsx, None),
        (&csv, Some("csv")),
        (&explicit, Some("xlsx")),
    ] {
        let mut args = vec!["groups", "export", "--project", "clinic", &group];
        if let Some(format) = format {
            args.extend(["--format", format]);
        }
        args.push(file);
        let out = f.run(&args).await;
        assert_eq!(out.ok().lines().count(), 1, "{out:?}");
        let bytes = std::fs::read(file).unwrap();
        let is_xlsx = bytes.starts_with(b"PK");
        assert_eq!(
            is_xlsx,
            file.ends_with(".xlsx") || format == Some("xlsx"),
            "{file} {format:?}"
        );
        // Read back as what it is, whatever its name.
        let name = if is_xlsx { "x.xlsx" } else { "x.csv" };
        let table = read_table(&bytes, name, &Limits::default()).unwrap();
        assert_eq!(table.headers.0, headers, "{file}");
        let cells: Vec<Vec<String>> = table.rows.into_iter().map(|r| r.cells).collect();
        assert_eq!(cells, expected, "{file} {format:?}");
    }
    // The phone number is written after an apostrophe (a spreadsheet would run `+256…` as a
    // formula); reading the file back above gave the number itself.
    let text = std::fs::read_to_string(&csv).unwrap();
    assert!(
        text.trim_start_matches('\u{feff}').starts_with(&format!(
            "case_id,external_id,name,phone_number,case_type,language_code,owner_id,closed\n{alice},E1,Alice Akello,'+256772123456,"
        )),
        "{text:?}"
    );

    // An empty group: the header row only.
    let empty = f.create("clinic", "Empty").await;
    let file = f.path("empty.csv");
    f.run(&["groups", "export", "--project", "clinic", &empty, &file])
        .await
        .ok();
    let (h, r) = read_back(&file);
    assert_eq!(h, headers);
    assert!(r.is_empty());

    // A bad format is a usage error; a folder that does not exist is a one-line error.
    let out = f
        .run(&[
            "groups",
            "export",
            "--project",
            "clinic",
            &group,
            "--format",
            "pdf",
            &csv,
        ])
        .await;
    assert_ne!(out.status.code(), Some(0), "{out:?}");
    let nowhere = f.path("no-such-folder/members.csv");
    f.run(&["groups", "export", "--project", "clinic", &group, &nowhere])
        .await
        .fails(&["no-such-folder"]);
}

// ---------------------------------------------------------------------------------------------
// another project's group
// ---------------------------------------------------------------------------------------------

async fn groups_of_another_project_are_not_found(engine: Dialect) {
    let f = Fixture::new(engine).await;
    let theirs = f.create("other", "Their group").await;
    let ours = f.create("clinic", "Our group").await;
    let sheet = f.path("sheet.csv");
    std::fs::write(&sheet, "case_identifier\nE1\n").unwrap();
    let out_file = f.path("out.csv");

    let attempts: Vec<Vec<&str>> = vec![
        vec!["rename", "--project", "clinic", &theirs, "Mine now"],
        vec!["delete", "--project", "clinic", &theirs],
        vec!["add", "--project", "clinic", &theirs, "E1"],
        vec!["remove", "--project", "clinic", &theirs, "E1"],
        vec!["upload", "--project", "clinic", &theirs, &sheet],
        vec!["export", "--project", "clinic", &theirs, &out_file],
    ];
    for args in attempts {
        let mut full = vec!["groups"];
        full.extend(args);
        f.run(&full)
            .await
            .fails(&[&format!("case group {theirs} not found"), "clinic"]);
    }
    assert!(!Path::new(&out_file).exists(), "nothing exported");

    // Each list shows its own groups only; theirs is untouched and empty.
    let out = f.run(&["groups", "list", "--project", "clinic"]).await;
    assert_eq!(rows(out.ok()), [[ours.as_str(), "Our group", "0"]]);
    let out = f.run(&["groups", "list", "--project", "other"]).await;
    assert_eq!(rows(out.ok()), [[theirs.as_str(), "Their group", "0"]]);
    assert!(f.members(f.other, &theirs).await.is_empty());

    // The other project's cases cannot be added to its group by identifiers of this project.
    let out = f
        .run(&["groups", "add", "--project", "other", &theirs, "E1"])
        .await;
    assert_eq!(rows(out.ok())[0][..2], ["E1", "not_found"], "{out:?}");

    // A project that does not exist.
    for sub in ["list", "export"] {
        let mut args = vec!["groups", sub, "--project", "nowhere"];
        if sub == "export" {
            args.extend([ours.as_str(), out_file.as_str()]);
        }
        f.run(&args).await.fails(&["nowhere"]);
    }
}

// ---------------------------------------------------------------------------------------------
// serve --demo: the demo case group
// ---------------------------------------------------------------------------------------------

async fn serve_demo_once(url: &str) {
    let mut server = Server::start(BIN, url, &["--demo"]).await;
    server.wait_for_line(|l| l.contains("Demo: log in")).await;
    let status = server.terminate().await;
    assert!(status.success(), "{status}\nstderr:\n{}", server.stderr());
}

const DEMO_GROUP: &str = "Gulu HIV+ participants";

/// The demo cases that belong in the demo group, by their properties.
async fn gulu_positive(db: &Db, project_id: i64) -> Vec<String> {
    let page = db
        .list_cases(project_id, &CaseFilter::default(), 1000, None)
        .await
        .unwrap();
    assert!(page.next_cursor.is_none());
    page.items
        .into_iter()
        .filter(|c| {
            c.properties.get("district").map(String::as_str) == Some("Gulu")
                && c.properties.get("hiv_status").map(String::as_str) == Some("positive")
        })
        .map(|c| c.external_id.unwrap())
        .collect()
}

async fn serve_demo_makes_the_demo_group(engine: Dialect) {
    let (url, _dir) = fresh_url(engine).await;
    serve_demo_once(&url).await;
    let db = Db::open(&url).await.unwrap();
    let demo = db.project_by_slug("demo").await.unwrap();
    let all = db.list_groups(demo.id).await.unwrap();
    // The smart group: the open cases of the intervention arm, as a count over the cases says.
    let smart: Vec<_> = all.iter().filter(|g| g.query.is_some()).collect();
    assert_eq!(smart.len(), 1, "{all:?}");
    assert_eq!(smart[0].name, "Intervention arm, open cases");
    let arm_b = db
        .list_cases(demo.id, &CaseFilter::default(), 1000, None)
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|c| {
            !c.closed && c.properties.get("study_arm").map(String::as_str) == Some("intervention")
        })
        .count() as i64;
    assert!(arm_b > 0);
    assert_eq!(smart[0].case_count, arm_b);
    let groups: Vec<_> = all.into_iter().filter(|g| g.query.is_none()).collect();
    assert_eq!(groups.len(), 1, "{groups:?}");
    let group = &groups[0];
    assert_eq!(group.name, DEMO_GROUP);
    let wanted = gulu_positive(&db, demo.id).await;
    assert!(group.case_count > 0, "{group:?}");
    assert_eq!(group.case_count, wanted.len() as i64);
    let members = db
        .group_members(demo.id, group.id, None, 1000, None)
        .await
        .unwrap();
    let mut members: Vec<String> = members
        .items
        .into_iter()
        .map(|c| c.external_id.unwrap())
        .collect();
    members.sort();
    let mut wanted = wanted;
    wanted.sort();
    assert_eq!(members, wanted);
    assert!(members.iter().all(|m| m.starts_with("GUL-")));

    // The CLI sees it too.
    let out = run(&url, &["groups", "list", "--project", "demo"]).await;
    assert!(
        out.ok().contains(&format!(
            "{}\t{DEMO_GROUP}\t{}\n",
            group.id, group.case_count
        )),
        "{out:?}"
    );

    // Again: the same groups, the same members.
    serve_demo_once(&url).await;
    let again = db.list_groups(demo.id).await.unwrap();
    assert_eq!(again.len(), 2, "{again:?}");
    let plain = again.iter().find(|g| g.query.is_none()).unwrap();
    assert_eq!(plain.id, group.id);
    assert_eq!(plain.case_count, group.case_count);

    // A group an operator changed is left as it is.
    run(
        &url,
        &[
            "groups",
            "remove",
            "--project",
            "demo",
            &group.id.to_string(),
            &wanted[0],
        ],
    )
    .await
    .ok();
    serve_demo_once(&url).await;
    let after = db.get_group(demo.id, group.id).await.unwrap();
    assert_eq!(after.case_count, group.case_count - 1);
    db.close().await;
}

/// `groups create --query` makes a smart group: the cases matching, hand changes refused, a
/// wrong query refused with its position.
async fn groups_create_smart(engine: Dialect) {
    let f = Fixture::new(engine).await;
    let out = f
        .run(&[
            "groups",
            "create",
            "--project",
            "clinic",
            "Shared phone",
            "--query",
            "phone_number = +256772000001 AND closed = false",
        ])
        .await;
    let line = out.ok().trim_end().to_string();
    let id = line
        .strip_prefix("created smart group ")
        .and_then(|rest| rest.split_once(' '))
        .map(|(id, _)| id.to_string())
        .unwrap_or_else(|| panic!("{out:?}"));
    assert!(line.ends_with("'Shared phone' with 2 cases"), "{line}");
    assert_eq!(f.members(f.clinic, &id).await, ["E2", "E3"]);
    f.run(&["groups", "add", "--project", "clinic", &id, "E1"])
        .await
        .fails(&["'Shared phone' is a smart group"]);
    f.run(&[
        "groups",
        "create",
        "--project",
        "clinic",
        "Broken",
        "--query",
        "name ~",
    ])
    .await
    .fails(&["query: at 7: expected a value after '~'"]);
    assert_eq!(f.members(f.clinic, &id).await, ["E2", "E3"]);
}

on_both_engines!(
    groups_create_smart,
    groups_create_list_rename_delete,
    groups_add_and_remove,
    groups_upload,
    groups_export,
    groups_of_another_project_are_not_found,
    serve_demo_makes_the_demo_group,
);
