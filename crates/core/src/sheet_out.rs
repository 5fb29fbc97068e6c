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
    let mut out = Vec::from(&b"\xEF\xBB\xBF"[..]);
    {
        let mut w = csv::Writer::from_writer(&mut out);
        // Writing to a Vec cannot fail.
        let _ = w.write_record(table.headers);
        for row in &table.rows {
            let _ = w.write_record(row);
        }
        let _ = w.flush();
    }
    out
}

/// An `.xlsx` workbook with one sheet.
pub fn to_xlsx(table: &Table<'_>, sheet_name: &str) -> Result<Vec<u8>, XlsxError> {
    if table.rows.len() > XLSX_MAX_ROWS {
        return Err(XlsxError::RowColumnLimitError);
    }
    let mut wb = Workbook::new();
    // Rows go to a temporary file as they are written instead of staying in memory.
    let ws = wb.add_worksheet_with_constant_memory();
    ws.set_name(sheet_name)?;
    let bold = Format::new().set_bold();
    let text = Format::new().set_num_format("@");
    for (c, h) in table.headers.iter().enumerate() {
        ws.write_string_with_format(0, c as u16, *h, &bold)?;
        if table.text_columns.contains(&c) {
            ws.set_column_format(c as u16, &text)?;
        }
        ws.set_column_width(c as u16, 18)?;
    }
    for (r, row) in table.rows.iter().enumerate() {
        for (c, v) in row.iter().enumerate() {
            if !v.is_empty() {
                ws.write_string(r as u32 + 1, c as u16, truncate_cell(v))?;
            }
        }
    }
    wb.save_to_buffer()
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
