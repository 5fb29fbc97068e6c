//! Raw bytes as an uploaded `.csv` (any encoding, BOM, separator, quoting) through the readers
//! of a case import and of a group upload: no panic, rows numbered in order, row limit kept.
#![no_main]

use casecast_core::case_sheet::ImportColumns;
use casecast_core::identifier::{classify, identifier_columns, IdentifierKind};
use casecast_core::sheet::{read_sheet, Headers, Limits, Row, RowSink, SheetError};
use casecast_core::CountryCode;
use libfuzzer_sys::fuzz_target;

/// What a case import does with each row.
struct Import {
    columns: Option<ImportColumns>,
    country: Option<CountryCode>,
    last: usize,
    rows: usize,
}

impl RowSink for Import {
    fn headers(&mut self, headers: &Headers) -> Result<(), SheetError> {
        let columns =
            ImportColumns::from_headers(headers).map_err(|e| SheetError::sink(e.to_string()))?;
        self.columns = Some(columns);
        Ok(())
    }
    fn row(&mut self, row: Row) -> Result<(), SheetError> {
        assert!(
            row.number > self.last,
            "row {} after row {}",
            row.number,
            self.last
        );
        self.last = row.number;
        self.rows += 1;
        let columns = self.columns.as_ref().expect("headers come first");
        if !row.is_blank() {
            if let Ok(parsed) = columns.parse_row(&row, self.country.as_ref()) {
                assert_eq!(parsed.number, row.number);
            }
        }
        Ok(())
    }
}

/// What a group upload does with each row.
#[derive(Default)]
struct Upload {
    columns: Vec<(usize, IdentifierKind)>,
    rows: usize,
}

impl RowSink for Upload {
    fn headers(&mut self, headers: &Headers) -> Result<(), SheetError> {
        self.columns = identifier_columns(headers)?;
        Ok(())
    }
    fn row(&mut self, row: Row) -> Result<(), SheetError> {
        self.rows += 1;
        for (col, kind) in &self.columns {
            let cell = row.get(*col);
            if !cell.trim().is_empty() {
                let _ = classify(cell, *kind, None);
            }
        }
        Ok(())
    }
}

fuzz_target!(|data: &[u8]| {
    casecast_fuzz::init();
    let limits = Limits {
        max_file_bytes: 1 << 20,
        max_rows: 2_000,
        ..Limits::default()
    };
    let mut import = Import {
        columns: None,
        country: CountryCode::parse("UG").ok(),
        last: 0,
        rows: 0,
    };
    if let Ok(count) = read_sheet(data, "fuzz.csv", &limits, &mut import) {
        assert_eq!(count, import.rows);
        assert!(count <= limits.max_rows);
    }
    let mut upload = Upload::default();
    if let Ok(count) = read_sheet(data, "fuzz.csv", &limits, &mut upload) {
        assert_eq!(count, upload.rows);
    }
});
