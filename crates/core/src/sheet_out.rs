//! Writing sheets for people: CSV and `.xlsx` tables (exports, upload results) and the example
//! upload sheet.

use rust_xlsxwriter::{Format, Workbook, XlsxError};

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

/// CSV lines for some rows (to stream a long file a page at a time).
pub fn csv_rows(rows: &[Vec<String>]) -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut w = csv::Writer::from_writer(&mut out);
        // Writing to a Vec cannot fail.
        for row in rows {
            let _ = w.write_record(row);
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
        })
    }

    /// Adds rows below the ones already written; refuses to go past Excel's row limit.
    pub fn append(&mut self, rows: &[Vec<String>]) -> Result<(), XlsxError> {
        if self.next_row as usize - 1 + rows.len() > XLSX_MAX_ROWS {
            return Err(XlsxError::RowColumnLimitError);
        }
        let ws = self.workbook.worksheet_from_index(0)?;
        for row in rows {
            for (c, v) in row.iter().enumerate() {
                if !v.is_empty() {
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
