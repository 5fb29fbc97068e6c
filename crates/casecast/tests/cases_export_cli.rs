//! `casecast cases export` as an operator runs it: the file reads back into `cases import`
//! without a change, a second export is the same file, the filters narrow it, a bad filter
//! leaves no file, and the case_id column fills a case group through `groups upload`. Every
//! test runs on SQLite and on PostgreSQL (`CASECAST_TEST_PG`).

// Helpers of a test crate are test code too, though clippy's allow-unwrap-in-tests (clippy.toml)
// spares only #[test] functions and #[cfg(test)] modules.
#![allow(clippy::unwrap_used)]

use std::path::Path;

use casecast_core::sheet::{read_table, Limits, Table};
use casecast_testkit::cli::{self, Run};
use casecast_testkit::{on_both_engines, Dialect, TestDb};

const BIN: &str = env!("CARGO_BIN_EXE_casecast");

/// `casecast --db URL ARGS…`.
async fn run(url: &str, args: &[&str]) -> Run {
    cli::run(cli::command(BIN, Some(url)), args, None).await
}

/// Tricky values: leading zeros, cells a spreadsheet would run (`=1+2`, `-5`, `@x`, `+7`), an
/// apostrophe before one (`'=y`, which imports read as the CSV guard: the case holds `=y`),
/// non-ASCII text, commas and quotes, a closed case, a case without a phone number, and a case
/// ID that starts with `-`.
const CASES: &str = "case_id,external_id,name,phone_number,case_type,closed,district,score,note\n\
c-001,007,\"Akello, Zoë\",0772 100001,patient,false,\"Gulu, North\",-5,=1+2\n\
c-002,0099,\"Okello \"\"Moses\"\"\",+256 772 100002,patient,true,Kitgum,0042,@x\n\
-003,E-3,Auma Joan,,contact,false,,,'=y\n\
c-004,E-4,Nakato Sarah,0772 100004,contact,false,Kampala,+7,ünïcödé\n";

/// The header an export of [`CASES`] has.
const HEADERS: [&str; 12] = [
    "case_id",
    "external_id",
    "name",
    "phone_number",
    "case_type",
    "language_code",
    "owner_id",
    "closed",
    "modified_at",
    "district",
    "note",
    "score",
];

/// The rows of [`CASES`] as exported, without `modified_at`.
const ROWS: [[&str; 11]; 4] = [
    [
        "c-001",
        "007",
        "Akello, Zoë",
        "+256772100001",
        "patient",
        "",
        "",
        "false",
        "Gulu, North",
        "=1+2",
        "-5",
    ],
    [
        "c-002",
        "0099",
        "Okello \"Moses\"",
        "+256772100002",
        "patient",
        "",
        "",
        "true",
        "Kitgum",
        "@x",
        "0042",
    ],
    [
        "-003",
        "E-3",
        "Auma Joan",
        "",
        "contact",
        "",
        "",
        "false",
        "",
        "=y",
        "",
    ],
    [
        "c-004",
        "E-4",
        "Nakato Sarah",
        "+256772100004",
        "contact",
        "",
        "",
        "false",
        "Kampala",
        "ünïcödé",
        "+7",
    ],
];

/// A database with project `clinic` (Uganda) holding [`CASES`], and project `other` with a
/// case of its own; and a folder for files.
struct Fixture {
    t: TestDb,
    dir: tempfile::TempDir,
}

impl Fixture {
    async fn new(engine: Dialect) -> Fixture {
        let t = TestDb::new(engine).await;
        let f = Fixture {
            t,
            dir: tempfile::tempdir().unwrap(),
        };
        for project in ["clinic", "other"] {
            f.run(&["project", "create", project, "--country", "UG"])
                .await
                .ok();
        }
        let out = f.import("clinic", "cases.csv", CASES).await;
        assert_eq!(
            out.ok(),
            "4 rows: 4 created, 0 updated, 0 unchanged, 0 blank, 0 with errors\n",
            "{out:?}"
        );
        let out = f
            .import(
                "other",
                "other.csv",
                "case_id,external_id,name,phone_number\no-1,007,Other Person,0772 100001\n",
            )
            .await;
        assert!(out.ok().contains("1 created"), "{out:?}");
        f
    }

    async fn run(&self, args: &[&str]) -> Run {
        run(&self.t.url, args).await
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).to_str().unwrap().to_string()
    }

    /// Writes `text` to the file `name` and imports it into `project`.
    async fn import(&self, project: &str, name: &str, text: &str) -> Run {
        let path = self.path(name);
        std::fs::write(&path, text).unwrap();
        self.run(&["cases", "import", "--project", project, &path])
            .await
    }

    /// `cases import --project clinic FILE`, which must succeed; its report line.
    async fn import_file(&self, path: &str) -> String {
        let out = self
            .run(&["cases", "import", "--project", "clinic", path])
            .await;
        out.ok().to_string()
    }

    /// `cases export --project clinic EXTRA… FILE`, which must succeed; asserts what it says.
    async fn export(&self, name: &str, extra: &[&str]) -> String {
        let path = self.path(name);
        let mut args = vec!["cases", "export", "--project", "clinic"];
        args.extend_from_slice(extra);
        args.push(&path);
        let out = self.run(&args).await;
        let said = out.ok();
        assert!(
            said.starts_with("wrote ") && said.ends_with(&format!(" to '{path}'\n")),
            "{out:?}"
        );
        path
    }

    /// The case IDs of an export with these filters (a CSV).
    async fn exported_ids(&self, extra: &[&str]) -> Vec<String> {
        let path = self.export("filtered.csv", extra).await;
        let table = read(&path);
        assert_eq!(table.headers.0[0], "case_id");
        table.rows.iter().map(|r| r.get(0).to_string()).collect()
    }

    /// Creates a case group of clinic; returns its ID as printed.
    async fn create_group(&self, name: &str) -> String {
        let out = self
            .run(&["groups", "create", "--project", "clinic", name])
            .await;
        let line = out.ok().trim_end().to_string();
        let rest = line
            .strip_prefix("created case group ")
            .unwrap_or_else(|| panic!("{out:?}"));
        let id = rest.split(' ').next().unwrap().to_string();
        id.parse::<i64>().unwrap_or_else(|_| panic!("{out:?}"));
        id
    }

    /// The case IDs of a clinic group's members, in order.
    async fn members(&self, group: &str) -> Vec<String> {
        let clinic = self.t.db.project_by_slug("clinic").await.unwrap();
        let page = self
            .t
            .db
            .group_members(clinic.id, group.parse().unwrap(), None, 100, None)
            .await
            .unwrap();
        page.items
            .into_iter()
            .map(|c| c.case_id.as_str().to_string())
            .collect()
    }
}

/// A written sheet read back.
fn read(path: &str) -> Table {
    let bytes = std::fs::read(path).unwrap();
    read_table(&bytes, path, &Limits::default()).unwrap()
}

/// Every row as `width` cells (a shorter row is padded with empty cells).
fn cells(table: &Table) -> Vec<Vec<String>> {
    let width = table.headers.0.len();
    table
        .rows
        .iter()
        .map(|r| (0..width).map(|c| r.get(c).to_string()).collect())
        .collect()
}

/// Asserts that an export of every clinic case holds [`ROWS`] under [`HEADERS`].
fn assert_holds_the_cases(table: &Table, what: &str) {
    assert_eq!(table.headers.0, HEADERS, "{what}");
    let modified = table.headers.find("modified_at").unwrap();
    let rows: Vec<Vec<String>> = cells(table)
        .into_iter()
        .map(|mut r| {
            let at = r.remove(modified);
            assert!(
                casecast_core::time::parse_rfc3339(&at).is_some() && at.ends_with('Z'),
                "{what}: modified_at {at:?}"
            );
            r
        })
        .collect();
    assert_eq!(rows, ROWS, "{what}");
}

const UNCHANGED: &str = "4 rows: 0 created, 0 updated, 4 unchanged, 0 blank, 0 with errors\n";

async fn export_reads_back_without_a_change(engine: Dialect) {
    let f = Fixture::new(engine).await;

    // CSV: UTF-8 with a BOM, cells a spreadsheet would run written after an apostrophe.
    let csv = f.export("cases.csv", &[]).await;
    let bytes = std::fs::read(&csv).unwrap();
    assert!(bytes.starts_with(b"\xEF\xBB\xBF"), "a BOM");
    let text = std::str::from_utf8(&bytes[3..]).unwrap();
    for guarded in [
        "'-003,",
        ",'=1+2",
        ",'-5",
        ",'@x",
        ",'+7",
        ",'+256772100001,",
        ",'=y",
    ] {
        assert!(text.contains(guarded), "{guarded:?} in {text}");
    }
    for line in text.lines() {
        assert!(
            !line.starts_with(['=', '+', '-', '@']),
            "a line a spreadsheet would run: {line:?}"
        );
        assert!(
            !line.contains(",=") && !line.contains(",-") && !line.contains(",@"),
            "an unguarded cell: {line:?}"
        );
    }
    let table = read(&csv);
    assert_holds_the_cases(&table, "CSV");
    assert!(
        !cells(&table).iter().flatten().any(|c| c == "Other Person"),
        "another project's case"
    );

    // Imported again: nothing changes; exported again: the same file, byte for byte.
    assert_eq!(f.import_file(&csv).await, UNCHANGED);
    let again = f.export("again.csv", &[]).await;
    assert_eq!(
        std::fs::read(&again).unwrap(),
        bytes,
        "the second export is the same file"
    );

    // .xlsx (from the file name): the same rows, read back the same way.
    let xlsx = f.export("cases.xlsx", &[]).await;
    let book = read(&xlsx);
    assert!(
        std::fs::read(&xlsx).unwrap().starts_with(b"PK"),
        "a workbook"
    );
    assert_eq!(book.headers, table.headers);
    assert_eq!(cells(&book), cells(&table));
    assert_eq!(f.import_file(&xlsx).await, UNCHANGED);
    let again = f.export("again.xlsx", &[]).await;
    assert_eq!(cells(&read(&again)), cells(&table));
    // The CSV, after the .xlsx went in, is still the same file.
    let third = f.export("third.csv", &[]).await;
    assert_eq!(std::fs::read(&third).unwrap(), bytes);

    // --format wins over the file name.
    let as_xlsx = f.export("cases.dat", &["--format", "xlsx"]).await;
    assert!(std::fs::read(&as_xlsx).unwrap().starts_with(b"PK"));
    assert_eq!(cells(&read(&as_xlsx)), cells(&table));
    let as_csv = f.export("cases-csv.xlsx", &["--format", "csv"]).await;
    assert_eq!(std::fs::read(&as_csv).unwrap(), bytes);

    let clinic = f.t.db.project_by_slug("clinic").await.unwrap();
    assert_eq!(f.t.db.count_cases(clinic.id).await.unwrap(), 4);
    let other = f.t.db.project_by_slug("other").await.unwrap();
    assert_eq!(f.t.db.count_cases(other.id).await.unwrap(), 1);
}

async fn filters_narrow_the_export(engine: Dialect) {
    let f = Fixture::new(engine).await;
    let mothers = f.create_group("Mothers").await;
    f.run(&[
        "groups",
        "add",
        "--project",
        "clinic",
        &mothers,
        "c-001",
        "E-3",
    ])
    .await
    .ok();
    let every = ["c-001", "c-002", "-003", "c-004"];
    for (filters, want) in [
        (vec![], every.to_vec()),
        (vec!["--case-type", "contact"], vec!["-003", "c-004"]),
        (vec!["--case-type", "patient"], vec!["c-001", "c-002"]),
        (vec!["--closed", "true"], vec!["c-002"]),
        (vec!["--closed", "false"], vec!["c-001", "-003", "c-004"]),
        (vec!["--group", mothers.as_str()], vec!["c-001", "-003"]),
        (
            vec!["--group", mothers.as_str(), "--has-phone", "true"],
            vec!["c-001"],
        ),
        (vec!["--has-phone", "false"], vec!["-003"]),
        (vec!["--search", "00"], vec!["c-001", "c-002"]),
        (vec!["--search", "zoë"], vec!["c-001"]),
        (vec!["--search", "0772 100004"], vec!["c-004"]),
        (
            vec![
                "--case-type",
                "contact",
                "--closed",
                "false",
                "--has-phone",
                "true",
            ],
            vec!["c-004"],
        ),
        (vec!["--modified-since", "2000-01-01"], every.to_vec()),
        (
            vec!["--modified-since", "2000-01-01T00:00:00Z"],
            every.to_vec(),
        ),
        (vec!["--modified-since", "2999-01-01"], vec![]),
        (vec!["--case-type", "nothing"], vec![]),
    ] {
        assert_eq!(f.exported_ids(&filters).await, want, "{filters:?}");
    }
    // A narrowed export has the columns of its cases only, and holds their rows.
    let path = f
        .export(
            "closed.xlsx",
            &["--closed", "true", "--case-type", "patient"],
        )
        .await;
    let table = read(&path);
    assert_eq!(
        table.headers.0[9..],
        ["district", "note", "score"],
        "the properties of the exported case"
    );
    let path = f.export("no-phone.csv", &["--has-phone", "false"]).await;
    let table = read(&path);
    assert_eq!(table.headers.0[9..], ["note"]);
    assert_eq!(cells(&table)[0][2], "Auma Joan");
    // An empty export is a header alone.
    let path = f
        .export("none.csv", &["--modified-since", "2999-01-01"])
        .await;
    let table = read(&path);
    assert_eq!(table.headers.0.len(), 9);
    assert!(table.rows.is_empty());
}

async fn bad_filters_leave_no_file(engine: Dialect) {
    let f = Fixture::new(engine).await;
    let other_group = {
        let out = f
            .run(&["groups", "create", "--project", "other", "Theirs"])
            .await;
        let line = out.ok().to_string();
        line.trim_start_matches("created case group ")
            .split(' ')
            .next()
            .unwrap()
            .to_string()
    };
    let path = f.path("out.csv");
    let export = |extra: Vec<&str>, project: &str| {
        let mut args = vec!["cases", "export", "--project", project];
        args.extend(extra);
        args.push(path.as_str());
        let args: Vec<String> = args.into_iter().map(str::to_string).collect();
        let url = f.t.url.clone();
        async move {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            run(&url, &args).await
        }
    };
    export(vec!["--group", "999"], "clinic")
        .await
        .fails(&["case group 999", "clinic"]);
    assert!(!Path::new(&path).exists(), "no file is left behind");
    export(vec!["--group", &other_group], "clinic")
        .await
        .fails(&[&format!("case group {other_group}")]);
    assert!(!Path::new(&path).exists());
    export(vec!["--modified-since", "yesterday"], "clinic")
        .await
        .fails(&["modified_since", "yesterday"]);
    export(vec!["--case-type", "not a type"], "clinic")
        .await
        .fails(&["case_type"]);
    export(vec![], "nowhere").await.fails(&["nowhere"]);
    assert!(!Path::new(&path).exists());
    // Nor is nothing left over beside it.
    let mut left: Vec<String> = std::fs::read_dir(f.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    left.sort();
    assert_eq!(left, ["cases.csv", "other.csv"], "files in the folder");

    // A failed export leaves an existing file as it was.
    std::fs::write(&path, "keep me").unwrap();
    export(vec!["--group", "999"], "clinic")
        .await
        .fails(&["999"]);
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "keep me");
    // A good one replaces it.
    export(vec!["--closed", "true"], "clinic").await.ok();
    let ids: Vec<String> = read(&path)
        .rows
        .iter()
        .map(|r| r.get(0).to_string())
        .collect();
    assert_eq!(ids, ["c-002"]);
}

async fn exported_case_ids_fill_a_group(engine: Dialect) {
    let f = Fixture::new(engine).await;
    let group = f.create_group("From the export").await;
    assert!(f.members(&group).await.is_empty());
    let path = f.export("open.xlsx", &["--closed", "false"]).await;
    let ids: Vec<String> = read(&path)
        .rows
        .iter()
        .map(|r| r.get(0).to_string())
        .collect();
    assert_eq!(ids, ["c-001", "-003", "c-004"]);
    // The case_id column alone, as a person copies it into a sheet of its own.
    let sheet = f.path("ids.csv");
    std::fs::write(&sheet, format!("case_id\n{}\n", ids.join("\n"))).unwrap();
    let out = f
        .run(&["groups", "upload", "--project", "clinic", &group, &sheet])
        .await;
    assert_eq!(out.ok(), "3 added\n", "{out:?}");
    assert_eq!(f.members(&group).await, ids);
    // The group filter now exports exactly those cases.
    assert_eq!(f.exported_ids(&["--group", &group]).await, ids);
}

/// A value that starts with an apostrophe and then a formula character (`''=z` in a sheet,
/// `'=z` in the case) goes through a CSV or `.xlsx` export and back unchanged.
async fn apostrophes_round_trip(engine: Dialect) {
    let f = Fixture::new(engine).await;
    let out = f
        .import(
            "clinic",
            "quoted.csv",
            "external_id,name,note\nQ-1,Quoted,''=z\nQ-2,Plain,'plain\n",
        )
        .await;
    assert!(out.ok().starts_with("2 rows: 2 created"), "{out:?}");
    let csv = f.export("quoted-out.csv", &["--search", "Q-"]).await;
    let table = read(&csv);
    let note = table.headers.find("note").unwrap();
    let notes: Vec<&str> = table.rows.iter().map(|r| r.get(note)).collect();
    assert_eq!(notes, ["'=z", "'plain"]);
    assert!(std::fs::read_to_string(&csv).unwrap().contains(",''=z"));
    let out = f.import_file(&csv).await;
    assert!(out.contains(" 0 created, 0 updated, 2 unchanged"), "{out}");
    let again = f.export("quoted-again.csv", &["--search", "Q-"]).await;
    assert_eq!(std::fs::read(&again).unwrap(), std::fs::read(&csv).unwrap());
    // And through an .xlsx export: the workbook reads back the same.
    let xlsx = f.export("quoted.xlsx", &["--search", "Q-"]).await;
    assert_eq!(cells(&read(&xlsx)), cells(&table));
    let out = f.import_file(&xlsx).await;
    assert!(out.contains(" 0 created, 0 updated, 2 unchanged"), "{out}");
    let again = f.export("quoted-third.csv", &["--search", "Q-"]).await;
    assert_eq!(std::fs::read(&again).unwrap(), std::fs::read(&csv).unwrap());
}

on_both_engines!(
    export_reads_back_without_a_change,
    filters_narrow_the_export,
    bad_filters_leave_no_file,
    exported_case_ids_fill_a_group,
    apostrophes_round_trip,
);
