//! `.xlsx` files zipped from fuzzed XML parts: a workbook skeleton whose worksheet (dimension,
//! rows, cells of every type), shared strings and workbook are built from the fuzzer's choices,
//! or are its raw text, through the reader of imports and uploads. A generator reaches deeper
//! than mutated zips, which mostly fail the zip's checksums.
#![no_main]

use std::io::Write;

use arbitrary::{Arbitrary, Unstructured};
use casecast_core::sheet::{read_sheet, Limits, Table};
use libfuzzer_sys::fuzz_target;
use zip::write::SimpleFileOptions;

#[derive(Arbitrary, Debug)]
enum Part {
    /// The skeleton's own part.
    Made,
    /// The fuzzer's text instead.
    Raw(String),
}

#[derive(Arbitrary, Debug)]
struct Cell {
    column: u8,
    /// A reference of the fuzzer's instead of the column's (`A1`, `XFD1048576`, `1A`, ``).
    reference: Option<String>,
    kind: u8,
    value: String,
    style: Option<u8>,
}

#[derive(Arbitrary, Debug)]
struct SheetRow {
    number: Option<u32>,
    cells: Vec<Cell>,
}

#[derive(Arbitrary, Debug)]
struct Book {
    dimension: Option<String>,
    rows: Vec<SheetRow>,
    shared: Vec<String>,
    sheet: Part,
    shared_part: Part,
    workbook: Part,
    content_types: Part,
    with_styles: bool,
}

const TYPES: [&str; 8] = ["", "s", "str", "inlineStr", "n", "b", "e", "d"];

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn column_name(mut n: u32) -> String {
    let mut name = String::new();
    n += 1;
    while n > 0 {
        let rem = (n - 1) % 26;
        name.insert(0, char::from(b'A' + rem as u8));
        n = (n - 1) / 26;
    }
    name
}

fn sheet_xml(book: &Book) -> String {
    let mut xml = String::from(
        r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?><worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">"#,
    );
    if let Some(d) = &book.dimension {
        xml.push_str(&format!(r#"<dimension ref="{}"/>"#, escape(d)));
    }
    xml.push_str("<sheetData>");
    for (i, row) in book.rows.iter().enumerate() {
        let number = row.number.unwrap_or(i as u32 + 1);
        xml.push_str(&format!(r#"<row r="{number}">"#));
        for cell in &row.cells {
            let reference = match &cell.reference {
                Some(r) => escape(r),
                None => format!("{}{number}", column_name(u32::from(cell.column))),
            };
            let kind = TYPES[usize::from(cell.kind) % TYPES.len()];
            let t = if kind.is_empty() {
                String::new()
            } else {
                format!(r#" t="{kind}""#)
            };
            let s = cell
                .style
                .map(|s| format!(r#" s="{s}""#))
                .unwrap_or_default();
            let value = escape(&cell.value);
            if kind == "inlineStr" {
                xml.push_str(&format!(
                    r#"<c r="{reference}"{t}{s}><is><t>{value}</t></is></c>"#
                ));
            } else {
                xml.push_str(&format!(r#"<c r="{reference}"{t}{s}><v>{value}</v></c>"#));
            }
        }
        xml.push_str("</row>");
    }
    xml.push_str("</sheetData></worksheet>");
    xml
}

fn shared_xml(book: &Book) -> String {
    let mut xml = format!(
        r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?><sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" count="{0}" uniqueCount="{0}">"#,
        book.shared.len()
    );
    for s in &book.shared {
        xml.push_str(&format!("<si><t>{}</t></si>", escape(s)));
    }
    xml.push_str("</sst>");
    xml
}

const WORKBOOK: &str = r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?><workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"><sheets><sheet name="Sheet1" sheetId="1" r:id="rId1"/></sheets></workbook>"#;
const WORKBOOK_RELS: &str = r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" Target="worksheets/sheet1.xml"/><Relationship Id="rId2" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/sharedStrings" Target="sharedStrings.xml"/><Relationship Id="rId3" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/styles" Target="styles.xml"/></Relationships>"#;
const RELS: &str = r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="xl/workbook.xml"/></Relationships>"#;
const CONTENT_TYPES: &str = r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/><Default Extension="xml" ContentType="application/xml"/><Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/><Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/><Override PartName="/xl/sharedStrings.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"/></Types>"#;
const STYLES: &str = r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?><styleSheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><numFmts count="1"><numFmt numFmtId="164" formatCode="yyyy-mm-dd"/></numFmts><cellXfs count="3"><xf numFmtId="0"/><xf numFmtId="14"/><xf numFmtId="164"/></cellXfs></styleSheet>"#;

fn part(p: &Part, made: impl FnOnce() -> String) -> String {
    match p {
        Part::Made => made(),
        Part::Raw(text) => text.clone(),
    }
}

fn zip_book(book: &Book) -> Vec<u8> {
    let mut out = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    let mut files = vec![
        (
            "[Content_Types].xml",
            part(&book.content_types, || CONTENT_TYPES.to_string()),
        ),
        ("_rels/.rels", RELS.to_string()),
        (
            "xl/workbook.xml",
            part(&book.workbook, || WORKBOOK.to_string()),
        ),
        ("xl/_rels/workbook.xml.rels", WORKBOOK_RELS.to_string()),
        (
            "xl/worksheets/sheet1.xml",
            part(&book.sheet, || sheet_xml(book)),
        ),
        (
            "xl/sharedStrings.xml",
            part(&book.shared_part, || shared_xml(book)),
        ),
    ];
    if book.with_styles {
        files.push(("xl/styles.xml", STYLES.to_string()));
    }
    for (name, text) in files {
        out.start_file(name, options).expect("a new zip entry");
        out.write_all(text.as_bytes()).expect("written to memory");
    }
    out.finish().expect("a zip in memory").into_inner()
}

fuzz_target!(|data: &[u8]| {
    casecast_fuzz::init();
    let Ok(book) = Book::arbitrary(&mut Unstructured::new(data)) else {
        return;
    };
    let bytes = zip_book(&book);
    let limits = Limits {
        max_file_bytes: 1 << 20,
        max_rows: 2_000,
        max_xlsx_uncompressed_bytes: 4 << 20,
        max_shared_strings: 10_000,
        max_shared_strings_bytes: 1 << 20,
    };
    let mut table = Table::default();
    if let Ok(count) = read_sheet(&bytes, "fuzz.xlsx", &limits, &mut table) {
        assert_eq!(count, table.rows.len());
        assert!(count <= limits.max_rows);
        assert!(
            table.rows.windows(2).all(|w| w[0].number < w[1].number),
            "rows in order"
        );
    }
});
