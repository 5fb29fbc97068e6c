//! Writing sheets for people: CSV and `.xlsx` tables (exports, upload results) and the example
//! upload sheet.

use std::borrow::Cow;

use rust_xlsxwriter::{Format, Workbook, XlsxError};

/// First characters that make a spreadsheet program read a CSV cell as a formula: OWASP's list
/// (`=`, `+`, `-`, `@`, tab and carriage return).
pub const FORMULA_STARTS: [char; 6] = ['=', '+', '-', '@', '\t', '\r'];

/// A CSV cell that spreadsheet programs show as text instead of running it (CSV injection): a
/// value that starts with one of [`FORMULA_STARTS`] gets a leading apostrophe, and so does one
/// that starts with apostrophes and then one of them, so that
/// [`crate::sheet::strip_formula_guard`] gives back exactly the value written. `.xlsx` needs
/// none of this: its cells are written as strings, which are never run.
pub fn guard_formula(value: &str) -> Cow<'_, str> {
    if formula_after_apostrophes(value) {
        Cow::Owned(format!("'{value}"))
    } else {
        Cow::Borrowed(value)
    }
}

/// Whether the value, past any leading apostrophes, starts with one of [`FORMULA_STARTS`].
pub(crate) fn formula_after_apostrophes(value: &str) -> bool {
    value.trim_start_matches('\'').starts_with(FORMULA_STARTS)
}

/// A table to write: headers, then rows of text.
pub struct Table<'a> {
    pub headers: &'a [&'a str],
    pub rows: Vec<Vec<String>>,
    /// Columns stored as text in `.xlsx`, so that IDs and phone numbers keep leading zeros and
    /// are never shown as numbers.
    pub text_columns: &'a [usize],
}

/// CSV text (UTF-8 with a BOM, so that Excel reads non-ASCII names correctly).
pub fn to_csv(table: &Table<'_>) -> Vec<u8> {
    let mut out = csv_start(table.headers);
    out.extend(csv_rows(&table.rows));
    out
}

/// The start of a CSV file: the byte-order mark and the header line.
pub fn csv_start(headers: &[&str]) -> Vec<u8> {
    let mut out = Vec::from(&b"\xEF\xBB\xBF"[..]);
    out.extend(csv_rows(&[headers.iter().map(|h| h.to_string()).collect()]));
    out
}

/// CSV lines for some rows, each cell guarded against formulas ([`guard_formula`]).
pub fn csv_rows(rows: &[Vec<String>]) -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut w = csv::Writer::from_writer(&mut out);
        // Writing to a Vec cannot fail.
        for row in rows {
            for v in row {
                let _ = w.write_field(guard_formula(v).as_bytes());
            }
            let _ = w.write_record(None::<&[u8]>);
        }
        let _ = w.flush();
    }
    out
}

/// An `.xlsx` workbook with one sheet.
pub fn to_xlsx(table: &Table<'_>, sheet_name: &str) -> Result<Vec<u8>, XlsxError> {
    let mut w = XlsxWriter::new(table.headers, table.text_columns, sheet_name)?;
    w.append(&table.rows)?;
    w.finish()
}

/// Writes an `.xlsx` sheet a page of rows at a time; rows go to a temporary file, not memory.
pub struct XlsxWriter {
    workbook: Workbook,
    next_row: u32,
    /// Columns whose cells that read as numbers are written as numbers.
    number_columns: Vec<usize>,
}

impl XlsxWriter {
    /// A workbook with one sheet and its bold header row.
    pub fn new(
        headers: &[&str],
        text_columns: &[usize],
        sheet_name: &str,
    ) -> Result<Self, XlsxError> {
        let mut workbook = Workbook::new();
        let ws = workbook.add_worksheet_with_constant_memory();
        ws.set_name(sheet_name)?;
        let bold = Format::new().set_bold();
        let text = Format::new().set_num_format("@");
        for (c, h) in headers.iter().enumerate() {
            ws.write_string_with_format(0, c as u16, *h, &bold)?;
            if text_columns.contains(&c) {
                ws.set_column_format(c as u16, &text)?;
            }
            ws.set_column_width(c as u16, 18)?;
        }
        Ok(XlsxWriter {
            workbook,
            next_row: 1,
            number_columns: Vec::new(),
        })
    }

    /// Writes the cells of these columns that read as finite numbers (`12`, `-3.5`) as number
    /// cells (a survey's number answers); other cells of them stay strings.
    pub fn with_number_columns(mut self, columns: &[usize]) -> Self {
        self.number_columns = columns.to_vec();
        self
    }

    /// Adds rows below the ones already written; refuses to go past Excel's row limit.
    pub fn append(&mut self, rows: &[Vec<String>]) -> Result<(), XlsxError> {
        if self.next_row as usize - 1 + rows.len() > XLSX_MAX_ROWS {
            return Err(XlsxError::RowColumnLimitError);
        }
        let ws = self.workbook.worksheet_from_index(0)?;
        for row in rows {
            for (c, v) in row.iter().enumerate() {
                let number = self
                    .number_columns
                    .contains(&c)
                    .then(|| v.parse::<f64>().ok().filter(|n| n.is_finite()))
                    .flatten();
                if let Some(n) = number {
                    ws.write_number(self.next_row, c as u16, n)?;
                } else if v.starts_with('\'') && formula_after_apostrophes(v) {
                    // Never run as a formula (a string cell), but every sheet read drops one
                    // apostrophe before a formula start: keep this value's own.
                    ws.write_string(self.next_row, c as u16, truncate_cell(&format!("'{v}")))?;
                } else if !v.is_empty() {
                    ws.write_string(self.next_row, c as u16, truncate_cell(v))?;
                }
            }
            self.next_row += 1;
        }
        Ok(())
    }

    /// The finished file.
    pub fn finish(mut self) -> Result<Vec<u8>, XlsxError> {
        self.workbook.save_to_buffer()
    }

    /// Writes the finished file to `path` (a long export, without holding it in memory).
    pub fn finish_to(mut self, path: &std::path::Path) -> Result<(), XlsxError> {
        self.workbook.save(path)
    }

    /// Data rows written so far.
    pub fn rows_written(&self) -> usize {
        self.next_row as usize - 1
    }
}

/// The most data rows an `.xlsx` sheet can hold (Excel's limit, less the header).
pub const XLSX_MAX_ROWS: usize = 1_048_575;

/// Excel cells hold at most 32,767 characters.
fn truncate_cell(v: &str) -> &str {
    match v.char_indices().nth(32_767) {
        Some((i, _)) => &v[..i],
        None => v,
    }
}

/// `cases_bulk_example.xlsx`: a `case_identifier` column formatted as text, example rows, and
/// a note on the typed columns.
pub fn example_sheet() -> Result<Vec<u8>, XlsxError> {
    let mut wb = Workbook::new();
    let ws = wb.add_worksheet();
    ws.set_name("cases")?;
    let text = Format::new().set_num_format("@");
    let bold = Format::new().set_bold();
    ws.set_column_format(0, &text)?;
    ws.set_column_width(0, 40)?;
    ws.write_string_with_format(0, 0, "case_identifier", &bold)?;
    let examples = [
        "6f1c2a9e-3b7d-4c41-9a0e-2f5d8c7b1a23",
        "GUL-0001",
        "+256 772 123 456",
        "0772123456",
        "256772123456",
    ];
    for (i, e) in examples.iter().enumerate() {
        ws.write_string_with_format(i as u32 + 1, 0, *e, &text)?;
    }
    let notes = wb.add_worksheet();
    notes.set_name("how to fill this sheet")?;
    notes.set_column_width(0, 110)?;
    let lines = [
        "Put one case per row under case_identifier, in the first sheet. Replace the example rows.",
        "A case identifier is a case ID, an external ID, or a phone number (+256 772 123 456, 0772123456 in the project's country, or 256772123456).",
        "The column is formatted as text so that leading zeros and long numbers are kept: keep it that way.",
        "Instead of (or beside) case_identifier you may use typed columns: case_id, external_id, phone_number.",
        "A value in a typed column is looked up only as that type, which avoids ambiguous matches.",
        "If an identifier matches several cases, the row is reported as ambiguous and nothing is changed for it: use the case ID.",
        "Blank rows are skipped. Upload the sheet as .xlsx or .csv; at most 1,000,000 rows and 50 MB.",
    ];
    for (i, l) in lines.iter().enumerate() {
        notes.write_string(i as u32, 0, *l)?;
    }
    wb.save_to_buffer()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sheet::{read_table, Limits};

    #[test]
    fn formulas_are_guarded_in_csv_and_read_back_unchanged() {
        let values = [
            "=HYPERLINK(\"http://evil.example\",\"x\")",
            "+256772123456",
            "-5",
            "@SUM(A1)",
            "\tcmd",
            "\r=1",
            "'=already quoted",
            "''=twice",
            "'+",
            "'plain apostrophe",
            "'",
            "a=b",
            "_x000D_ literal, and a CR\r in the middle",
            "",
            "Zoë",
        ];
        let headers = ["-odd"];
        let rows: Vec<Vec<String>> = values.iter().map(|v| vec![v.to_string()]).collect();
        let csv = to_csv(&Table {
            headers: &headers,
            rows: rows.clone(),
            text_columns: &[],
        });
        let text = String::from_utf8(csv.clone()).unwrap();
        let mut lines = csv::ReaderBuilder::new()
            .has_headers(false)
            .from_reader(&csv[3..]);
        for record in lines.records() {
            let cell = record.unwrap()[0].to_string();
            assert!(
                !cell.starts_with(FORMULA_STARTS),
                "a cell a spreadsheet would run: {cell:?} in {text}"
            );
        }
        let read = read_table(&csv, "x.csv", &Limits::default()).unwrap();
        assert_eq!(read.headers.0, ["-odd"]);
        let back: Vec<&str> = read.rows.iter().map(|r| r.get(0)).collect();
        // Blank rows are not data rows; every other value comes back exactly.
        let expected: Vec<&str> = values
            .iter()
            .copied()
            .filter(|v| !v.trim().is_empty())
            .collect();
        let back: Vec<&str> = back.into_iter().filter(|v| !v.trim().is_empty()).collect();
        assert_eq!(back, expected);
        // `.xlsx` holds strings, never formulas; apostrophes before a formula start survive.
        let xlsx = to_xlsx(
            &Table {
                headers: &headers,
                rows,
                text_columns: &[],
            },
            "x",
        )
        .unwrap();
        let read = read_table(&xlsx, "x.xlsx", &Limits::default()).unwrap();
        let back: Vec<&str> = read.rows.iter().map(|r| r.get(0)).collect();
        let back: Vec<&str> = back.into_iter().filter(|v| !v.trim().is_empty()).collect();
        assert_eq!(back, expected, "xlsx");
        assert_eq!(guard_formula("'plain"), "'plain", "left as it is");
        assert_eq!(guard_formula("'-1"), "''-1");
        assert_eq!(guard_formula("''=1"), "'''=1");
    }

    #[test]
    fn written_sheets_read_back() {
        let t = Table {
            headers: &["case_id", "phone_number", "name"],
            rows: vec![vec!["00123".into(), "+256772123456".into(), "Zoë".into()]],
            text_columns: &[0, 1],
        };
        for (bytes, name) in [
            (to_csv(&t), "x.csv"),
            (to_xlsx(&t, "members").unwrap(), "x.xlsx"),
        ] {
            let read = read_table(&bytes, name, &Limits::default()).unwrap();
            assert_eq!(read.headers.0, ["case_id", "phone_number", "name"]);
            assert_eq!(
                read.rows[0].cells,
                ["00123", "+256772123456", "Zoë"],
                "{name}"
            );
        }
        let example = read_table(
            &example_sheet().unwrap(),
            "cases_bulk_example.xlsx",
            &Limits::default(),
        )
        .unwrap();
        assert_eq!(example.headers.find("case_identifier"), Some(0));
        assert_eq!(example.rows.len(), 5);
        assert_eq!(example.rows[4].cells[0], "256772123456", "kept as text");
    }
}
