//! Case imports from real-world files: refused files write nothing; cells and encodings read
//! as the user sees them.

use std::io::{Cursor, Write};
use std::sync::OnceLock;

use casecast_core::sheet::SheetError;
use casecast_store::case_import::ImportError;
use casecast_store::Db;
use casecast_testkit::{on_both_engines, Dialect, TestDb};
use rust_xlsxwriter::{ExcelDateTime, Format, Formula, Workbook};

use crate::{by_external_id, import, project};

on_both_engines!(
    import_refuses_an_empty_file,
    import_of_a_header_only_file_is_an_empty_report,
    import_refuses_a_png_renamed_xlsx,
    import_refuses_an_old_xls,
    import_refuses_a_zip_bomb,
    import_refuses_a_sheet_without_a_name_column_listing_its_headers,
    xlsx_numeric_phone_and_external_id_cells_read_as_integer_text,
    xlsx_text_external_id_keeps_its_leading_zeros,
    xlsx_formula_and_date_cells_become_their_shown_text,
    csv_with_and_without_utf8_bom,
    csv_in_windows_1252,
    csv_in_utf16le_with_bom,
);

/// Imports a file that must be refused; checks that it wrote nothing and returns the error.
async fn refused(db: &Db, bytes: &[u8], file_name: &str) -> SheetError {
    let p = project(db, "demo", Some("UG")).await;
    let err = match import(db, &p, bytes, file_name).await {
        Err(ImportError::Sheet(e)) => e,
        other => panic!("expected {file_name} to be refused, got {other:?}"),
    };
    assert!(
        err.to_string().contains(file_name) || matches!(err, SheetError::Sink(_)),
        "the message names the file: {err}"
    );
    assert_eq!(db.count_cases(p.id).await.unwrap(), 0, "nothing written");
    err
}

async fn import_refuses_an_empty_file(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let err = refused(&t.db, b"", "empty.csv").await;
    assert!(matches!(err, SheetError::Empty { .. }), "{err}");
    let t = TestDb::new(engine).await;
    let err = refused(&t.db, b"\r\n\r\n,,\r\n", "blank.csv").await;
    assert!(matches!(err, SheetError::Empty { .. }), "{err}");
}

async fn import_of_a_header_only_file_is_an_empty_report(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    let p = project(db, "demo", Some("UG")).await;
    let report = import(db, &p, b"name,external_id\n", "header.csv")
        .await
        .unwrap();
    assert_eq!((report.rows, report.created), (0, 0));
    assert!(report.errors.is_empty());
}

async fn import_refuses_a_png_renamed_xlsx(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0\x1f\x15\xc4\x89";
    let err = refused(&t.db, png, "photo.xlsx").await;
    assert!(matches!(err, SheetError::NotSpreadsheet { .. }), "{err}");
    assert!(err.to_string().contains("PNG"), "{err}");
}

async fn import_refuses_an_old_xls(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let mut xls = vec![0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1];
    xls.resize(4096, 0);
    let err = refused(&t.db, &xls, "people.xls").await;
    assert!(matches!(err, SheetError::OldXls { .. }), "{err}");
    assert!(
        err.to_string().contains(".xlsx"),
        "it says what to do: {err}"
    );
}

/// A workbook-looking zip whose sheet entry unpacks to 600 MB of zeros (a few hundred KB
/// packed); built once and shared by both engines' tests.
fn zip_bomb() -> &'static [u8] {
    static BOMB: OnceLock<Vec<u8>> = OnceLock::new();
    BOMB.get_or_init(|| {
        let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        zip.start_file("xl/workbook.xml", options).unwrap();
        zip.write_all(b"<workbook/>").unwrap();
        zip.start_file("xl/worksheets/sheet1.xml", options).unwrap();
        let zeros = vec![0u8; 1024 * 1024];
        for _ in 0..600 {
            zip.write_all(&zeros).unwrap();
        }
        zip.finish().unwrap().into_inner()
    })
}

async fn import_refuses_a_zip_bomb(engine: Dialect) {
    let bomb = zip_bomb();
    assert!(bomb.len() < 5 * 1024 * 1024, "{} bytes packed", bomb.len());
    let t = TestDb::new(engine).await;
    let err = refused(&t.db, bomb, "bomb.xlsx").await;
    assert!(
        matches!(err, SheetError::XlsxTooLarge { limit, .. } if limit == 500 * 1024 * 1024),
        "{err}"
    );
    assert!(err.to_string().contains("500 MB"), "{err}");
}

async fn import_refuses_a_sheet_without_a_name_column_listing_its_headers(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let err = refused(
        &t.db,
        b"full name,phone,external_id\nAber,0772123456,E-1\n",
        "people.csv",
    )
    .await;
    let text = err.to_string();
    assert!(text.contains("'name'"), "{text}");
    assert!(
        text.contains("'full name', 'phone', 'external_id'"),
        "lists the headers found: {text}"
    );
}

async fn xlsx_numeric_phone_and_external_id_cells_read_as_integer_text(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    let p = project(db, "demo", Some("UG")).await;
    let mut book = Workbook::new();
    let sheet = book.add_worksheet();
    for (c, h) in ["external_id", "name", "phone_number", "household_size"]
        .iter()
        .enumerate()
    {
        sheet.write_string(0, c as u16, *h).unwrap();
    }
    sheet.write_number(1, 0, 1234567.0).unwrap();
    sheet.write_string(1, 1, "Aber").unwrap();
    sheet.write_number(1, 2, 256772123456.0).unwrap();
    sheet.write_number(1, 3, 5.0).unwrap();
    sheet.write_number(2, 0, 98765432101.0).unwrap();
    sheet.write_string(2, 1, "Okello").unwrap();
    sheet.write_number(2, 2, 772345678.0).unwrap();
    sheet.write_number(2, 3, 2.5).unwrap();
    let bytes = book.save_to_buffer().unwrap();
    let report = import(db, &p, &bytes, "numbers.xlsx").await.unwrap();
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert_eq!(report.created, 2);
    let cases = by_external_id(db, p.id).await;
    assert_eq!(
        cases.keys().collect::<Vec<_>>(),
        ["1234567", "98765432101"],
        "never 1.234567E6 or 1234567.0"
    );
    let aber = &cases["1234567"];
    assert_eq!(
        aber.phone_number.as_ref().unwrap().as_str(),
        "+256772123456"
    );
    assert_eq!(aber.properties["household_size"], "5");
    let okello = &cases["98765432101"];
    // A national number that lost its leading 0 in Excel still reads in the project's country.
    assert_eq!(
        okello.phone_number.as_ref().unwrap().as_str(),
        "+256772345678"
    );
    assert_eq!(okello.properties["household_size"], "2.5");
}

async fn xlsx_text_external_id_keeps_its_leading_zeros(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    let p = project(db, "demo", Some("UG")).await;
    let mut book = Workbook::new();
    let sheet = book.add_worksheet();
    sheet.write_string(0, 0, "external_id").unwrap();
    sheet.write_string(0, 1, "name").unwrap();
    sheet.write_string(1, 0, "00123").unwrap();
    sheet.write_string(1, 1, "Aber").unwrap();
    let bytes = book.save_to_buffer().unwrap();
    let report = import(db, &p, &bytes, "zeros.xlsx").await.unwrap();
    assert_eq!(report.created, 1);
    let cases = by_external_id(db, p.id).await;
    assert_eq!(cases.keys().collect::<Vec<_>>(), ["00123"]);
    // The same text again finds the same case.
    let again = import(db, &p, &bytes, "zeros.xlsx").await.unwrap();
    assert_eq!((again.created, again.unchanged), (0, 1));
}

async fn xlsx_formula_and_date_cells_become_their_shown_text(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    let p = project(db, "demo", Some("UG")).await;
    let mut book = Workbook::new();
    let sheet = book.add_worksheet();
    for (c, h) in ["external_id", "name", "visit_date", "total"]
        .iter()
        .enumerate()
    {
        sheet.write_string(0, c as u16, *h).unwrap();
    }
    sheet.write_string(1, 0, "E-1").unwrap();
    sheet.write_string(1, 1, "Aber").unwrap();
    let date = Format::new().set_num_format("dd/mm/yyyy");
    sheet
        .write_datetime_with_format(1, 2, ExcelDateTime::from_ymd(2024, 3, 5).unwrap(), &date)
        .unwrap();
    sheet
        .write_formula(1, 3, Formula::new("=40+2").set_result("42"))
        .unwrap();
    let bytes = book.save_to_buffer().unwrap();
    let report = import(db, &p, &bytes, "cells.xlsx").await.unwrap();
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    let case = &by_external_id(db, p.id).await["E-1"];
    assert_eq!(case.properties["visit_date"], "2024-03-05");
    assert_eq!(
        case.properties["total"], "42",
        "the formula's value, not its text"
    );
}

async fn csv_with_and_without_utf8_bom(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    let p = project(db, "demo", Some("UG")).await;
    let plain = "name,external_id\r\nZoë Akello,E-1\r\n";
    let with_bom = [
        &b"\xEF\xBB\xBF"[..],
        "name,external_id\r\nZoë Okello,E-2\r\n".as_bytes(),
    ]
    .concat();
    let a = import(db, &p, plain.as_bytes(), "plain.csv").await.unwrap();
    let b = import(db, &p, &with_bom, "bom.csv").await.unwrap();
    assert_eq!((a.created, b.created), (1, 1), "{a:?} {b:?}");
    let cases = by_external_id(db, p.id).await;
    assert_eq!(cases["E-1"].name, "Zoë Akello");
    assert_eq!(
        cases["E-2"].name, "Zoë Okello",
        "the BOM is not part of the name header"
    );
}

async fn csv_in_windows_1252(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    let p = project(db, "demo", Some("UG")).await;
    let report = import(
        db,
        &p,
        b"name,external_id,note\nZo\xEB,E-1,caf\xE9 \x80 5\n",
        "excel.csv",
    )
    .await
    .unwrap();
    assert_eq!(report.created, 1);
    let case = &by_external_id(db, p.id).await["E-1"];
    assert_eq!(case.name, "Zoë");
    assert_eq!(case.properties["note"], "café € 5");
}

async fn csv_in_utf16le_with_bom(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    let p = project(db, "demo", Some("UG")).await;
    let text = "name\texternal_id\tphone_number\r\nZoë\tE-1\t0772 123456\r\n";
    let mut bytes = vec![0xFF, 0xFE];
    bytes.extend(text.encode_utf16().flat_map(u16::to_le_bytes));
    let report = import(db, &p, &bytes, "unicode.csv").await.unwrap();
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert_eq!(report.created, 1);
    let case = &by_external_id(db, p.id).await["E-1"];
    assert_eq!(case.name, "Zoë");
    assert_eq!(
        case.phone_number.as_ref().unwrap().as_str(),
        "+256772123456"
    );
}
