//! Reading uploaded spreadsheets (.xlsx or .csv) into rows of cell text, safely and streaming.

use std::io::{self, Cursor, Read};
use std::panic::{catch_unwind, AssertUnwindSafe};

use calamine::{DataRef, ExcelDateTime, ExcelDateTimeType, Reader, SheetType, Xlsx};
use encoding_rs::{Encoding, UTF_16BE, UTF_16LE, UTF_8, WINDOWS_1252};
use jiff::{civil, SignedDuration};

const MIB: u64 = 1024 * 1024;
/// Excel's own column limit (XFD); anything beyond is a crafted file, not a spreadsheet.
const MAX_COLUMNS: usize = 16_384;
const OLE_MAGIC: &[u8] = &[0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1];

/// Undoes [`crate::sheet_out::guard_formula`]: drops the apostrophe that the exports put before
/// a cell starting with `=`, `+`, `-`, `@`, tab or carriage return, so that a re-imported export
/// reads the value that was exported (in CSV and `.xlsx` alike: a CSV opened and saved in a
/// spreadsheet program keeps the apostrophe).
pub fn strip_formula_guard(cell: &mut String) {
    if cell.starts_with('\'') && crate::sheet_out::formula_after_apostrophes(cell) {
        cell.remove(0);
    }
}

/// Size and row caps applied to every upload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_file_bytes: u64,
    pub max_rows: usize,
    pub max_xlsx_uncompressed_bytes: u64,
    /// Most entries in a workbook's shared strings (`xl/sharedStrings.xml`), which the reader
    /// holds in memory whole; besides, there may be no more of them than the worksheets have
    /// cells, give or take [`SHARED_STRINGS_SLACK`].
    pub max_shared_strings: u64,
    /// Most bytes of the shared-strings part, unpacked.
    pub max_shared_strings_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_file_bytes: 50 * MIB,
            max_rows: 1_000_000,
            max_xlsx_uncompressed_bytes: 500 * MIB,
            max_shared_strings: 3_000_000,
            max_shared_strings_bytes: 150 * MIB,
        }
    }
}

/// Shared strings a workbook may hold beyond one per cell of its worksheets: spreadsheet
/// programs can keep a few that no cell uses any more.
pub const SHARED_STRINGS_SLACK: u64 = 10_000;

/// The spreadsheet format detected from the file's bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Xlsx,
    Csv,
}

/// One row of cell text; `number` is the row number the user sees in Excel (header = 1).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Row {
    pub number: usize,
    pub cells: Vec<String>,
}

impl Row {
    /// True when every cell is empty after trimming.
    pub fn is_blank(&self) -> bool {
        self.cells.iter().all(|c| c.trim().is_empty())
    }

    /// The cell text at `col`, or "" when the row is shorter.
    pub fn get(&self, col: usize) -> &str {
        self.cells.get(col).map_or("", String::as_str)
    }
}

/// How a header is compared with a known column's name: ignoring case, spaces, underscores
/// and hyphens, so that `Phone Number`, `phone-number` and `PHONE_NUMBER` are `phone_number`.
pub fn header_key(name: &str) -> String {
    name.chars()
        .filter(|c| !c.is_whitespace() && *c != '_' && *c != '-')
        .flat_map(char::to_lowercase)
        .collect()
}

/// Trimmed header texts in column order (trailing empty headers dropped).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers(pub Vec<String>);

impl Headers {
    /// Column index of the header matching `name` by `header_key` (`Phone Number` is
    /// `phone_number`).
    pub fn find(&self, name: &str) -> Option<usize> {
        let key = header_key(name);
        self.0.iter().position(|h| header_key(h) == key)
    }

    /// The headers as `'a', 'b', 'c'` for user-facing messages.
    pub fn list(&self) -> String {
        self.0
            .iter()
            .map(|h| format!("'{h}'"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Receives the header row, then every data row in order.
pub trait RowSink {
    /// Called once with the header row.
    fn headers(&mut self, headers: &Headers) -> Result<(), SheetError>;
    /// Called for each data row, blank rows in the middle included.
    fn row(&mut self, row: Row) -> Result<(), SheetError>;
}

/// Why an upload could not be read; `Display` is a sentence meant for the uploader.
#[derive(Debug, thiserror::Error)]
pub enum SheetError {
    #[error("'{file}' is {} MB, more than the {} MB limit; split it into smaller files and upload them one by one", mb(.bytes), mb(.limit))]
    TooLarge {
        file: String,
        bytes: u64,
        limit: u64,
    },
    #[error("'{file}' is empty or has no header row; put the column names in the first row and upload it again")]
    Empty { file: String },
    #[error("'{file}' is an old Excel 97-2003 file (.xls); save it as an Excel Workbook (.xlsx) or as CSV and upload it again")]
    OldXls { file: String },
    #[error(
        "'{file}' is password-protected; remove the password in Excel, save it and upload it again"
    )]
    Encrypted { file: String },
    #[error(
        "'{file}' is {detected}, not a spreadsheet; upload an Excel Workbook (.xlsx) or a CSV file"
    )]
    NotSpreadsheet { file: String, detected: String },
    #[error("'{file}' could not be read; it may be damaged or only partly uploaded ({detail}); open it in Excel, save it again and upload it again")]
    Corrupt { file: String, detail: String },
    #[error("'{file}' unpacks to too much data (the limit is {} MB); delete unused sheets, images or formatting, or save it as CSV, and upload it again", mb(.limit))]
    XlsxTooLarge { file: String, limit: u64 },
    #[error("'{file}' has {detail}: more than Casecast reads from a workbook; open it in Excel, save it again (or save it as CSV) and upload it again")]
    SharedStrings { file: String, detail: String },
    #[error("'{file}' has more than {limit} data rows; split it into files of at most {limit} rows and upload them one by one")]
    TooManyRows { file: String, limit: usize },
    #[error(
        "'{file}' row {row} could not be read as CSV ({detail}); fix that row and upload it again"
    )]
    Csv {
        file: String,
        row: usize,
        detail: String,
    },
    /// A [`RowSink`] aborted the read; the text is shown as is.
    #[error("{0}")]
    Sink(String),
}

impl SheetError {
    /// Lets a [`RowSink`] abort with its own user-facing message.
    pub fn sink(message: impl Into<String>) -> Self {
        Self::Sink(message.into())
    }
}

fn mb(bytes: &u64) -> String {
    let text = format!("{:.2}", *bytes as f64 / MIB as f64);
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// Builds `Corrupt`, keeping the library's detail short: users see it.
fn corrupt(file: &str, detail: impl std::fmt::Display) -> SheetError {
    let mut detail = detail.to_string();
    if let Some((cut, _)) = detail.char_indices().nth(160) {
        detail.truncate(cut);
        detail.push('…');
    }
    SheetError::Corrupt {
        file: file.to_string(),
        detail,
    }
}

/// What the bytes are; CSV carries the encoding and BOM length picked for it.
enum Sniffed {
    Xlsx,
    Csv(&'static Encoding, usize),
}

/// Detects the format from magic numbers; `file_name` is only used in messages.
pub fn detect_format(bytes: &[u8], file_name: &str) -> Result<Format, SheetError> {
    Ok(match sniff(bytes, file_name)? {
        Sniffed::Xlsx => Format::Xlsx,
        Sniffed::Csv(..) => Format::Csv,
    })
}

fn sniff(bytes: &[u8], file: &str) -> Result<Sniffed, SheetError> {
    let not = |what: &str| SheetError::NotSpreadsheet {
        file: file.to_string(),
        detected: what.to_string(),
    };
    if bytes.is_empty() {
        return Err(SheetError::Empty {
            file: file.to_string(),
        });
    }
    if bytes.starts_with(OLE_MAGIC) {
        // Password-protected .xlsx files are also OLE containers; telling them apart
        // saves users from re-saving a file that is already .xlsx.
        let marker: Vec<u8> = "EncryptedPackage"
            .encode_utf16()
            .flat_map(u16::to_le_bytes)
            .collect();
        if bytes.windows(marker.len()).any(|w| w == marker.as_slice()) {
            return Err(SheetError::Encrypted {
                file: file.to_string(),
            });
        }
        return Err(SheetError::OldXls {
            file: file.to_string(),
        });
    }
    if bytes.starts_with(b"PK") {
        let zip = zip::ZipArchive::new(Cursor::new(bytes)).map_err(|e| corrupt(file, e))?;
        return if zip.index_for_name("xl/workbook.xml").is_some() {
            Ok(Sniffed::Xlsx)
        } else if zip.index_for_name("xl/workbook.bin").is_some() {
            Err(not("an Excel Binary Workbook (.xlsb)"))
        } else {
            Err(not("a zip archive that is not an Excel workbook"))
        };
    }
    // Other binary formats are caught below as "a binary file"; these get a friendlier name.
    const MAGICS: &[(usize, &[u8], &str)] = &[
        (0, b"\x89PNG\r\n\x1a\n", "a PNG image"),
        (0, b"\xFF\xD8\xFF", "a JPEG image"),
        (0, b"GIF8", "a GIF image"),
        (0, b"%PDF-", "a PDF document"),
        (0, b"\x1F\x8B", "a gzip archive"),
        (0, b"Rar!", "a RAR archive"),
        (0, b"7z\xBC\xAF", "a 7-Zip archive"),
        (0, b"{\\rtf", "a Rich Text (RTF) document"),
    ];
    for (at, magic, what) in MAGICS {
        if bytes.get(*at..).is_some_and(|b| b.starts_with(magic)) {
            return Err(not(what));
        }
    }
    let (encoding, bom) = pick_encoding(bytes);
    // A prefix is enough to tell text from binary; decoding all of it twice is not.
    let mut end = bytes.len().min(bom + 64 * 1024);
    if encoding != UTF_8 && encoding != WINDOWS_1252 {
        end -= (end - bom) % 2;
    }
    let (sample, _) = encoding.decode_without_bom_handling(&bytes[bom..end]);
    let controls = sample
        .chars()
        .filter(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r'))
        .count();
    // Real CSV has essentially no control characters; 10% is far beyond any text file.
    if sample.contains('\0') || controls * 10 > sample.chars().count() {
        return Err(not("a binary file"));
    }
    let head: String = sample.trim_start().chars().take(14).collect();
    let head = head.to_ascii_lowercase();
    if head.starts_with("<!doctype html") || head.starts_with("<html") {
        return Err(not("a web page (HTML)"));
    }
    if head.starts_with("<?xml") {
        return Err(not("an XML file"));
    }
    Ok(Sniffed::Csv(encoding, bom))
}

/// BOM first; then BOM-less UTF-16 (checked before UTF-8 because ASCII in UTF-16 is valid
/// UTF-8 full of NULs); then UTF-8; else Windows-1252, what Excel writes on Windows.
fn pick_encoding(bytes: &[u8]) -> (&'static Encoding, usize) {
    if let Some(found) = Encoding::for_bom(bytes) {
        return found;
    }
    let sample = &bytes[..bytes.len().min(4096) & !1];
    let pairs = sample.len() / 2;
    let nuls = |from| {
        sample
            .iter()
            .skip(from)
            .step_by(2)
            .filter(|b| **b == 0)
            .count()
    };
    let (even, odd) = (nuls(0), nuls(1));
    if pairs >= 2 && odd * 3 > pairs && even * 10 < odd {
        (UTF_16LE, 0)
    } else if pairs >= 2 && even * 3 > pairs && odd * 10 < even {
        (UTF_16BE, 0)
    } else if std::str::from_utf8(bytes).is_ok() {
        (UTF_8, 0)
    } else {
        (WINDOWS_1252, 0)
    }
}

/// Streams the first worksheet (xlsx) or the CSV: calls sink.headers once, then sink.row for every data row in order (blank rows included; consumers count them). Returns the number of data rows.
pub fn read_sheet(
    bytes: &[u8],
    file_name: &str,
    limits: &Limits,
    sink: &mut impl RowSink,
) -> Result<usize, SheetError> {
    let file = file_name;
    if bytes.len() as u64 > limits.max_file_bytes {
        return Err(SheetError::TooLarge {
            file: file.into(),
            bytes: bytes.len() as u64,
            limit: limits.max_file_bytes,
        });
    }
    let mut out = Emitter {
        file,
        limits,
        sink,
        header_seen: false,
        last: 0,
        count: 0,
    };
    match sniff(bytes, file)? {
        Sniffed::Xlsx => read_xlsx(bytes, &mut out)?,
        Sniffed::Csv(encoding, bom) => read_csv(&bytes[bom..], encoding, &mut out)?,
    }
    if !out.header_seen {
        return Err(SheetError::Empty { file: file.into() });
    }
    Ok(out.count)
}

/// Everything from a sheet, collected in memory.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Table {
    pub headers: Headers,
    pub rows: Vec<Row>,
}

impl RowSink for Table {
    fn headers(&mut self, headers: &Headers) -> Result<(), SheetError> {
        self.headers = headers.clone();
        Ok(())
    }
    fn row(&mut self, row: Row) -> Result<(), SheetError> {
        self.rows.push(row);
        Ok(())
    }
}

/// Convenience for small files and tests: collects everything.
pub fn read_table(bytes: &[u8], file_name: &str, limits: &Limits) -> Result<Table, SheetError> {
    let mut table = Table::default();
    read_sheet(bytes, file_name, limits, &mut table)?;
    Ok(table)
}

/// Shared by both formats: picks the header, numbers rows, enforces `max_rows`.
struct Emitter<'a, S> {
    file: &'a str,
    limits: &'a Limits,
    sink: &'a mut S,
    header_seen: bool,
    /// Number of the header or last non-blank row.
    last: usize,
    count: usize,
}

impl<S: RowSink> Emitter<'_, S> {
    /// Takes rows with increasing numbers; gaps are blank rows. Blank rows are only sent once a
    /// non-blank row follows, so formatted-but-empty rows at the end never count as data.
    fn push(&mut self, number: usize, mut cells: Vec<String>) -> Result<(), SheetError> {
        // NUL cannot be stored as text by PostgreSQL, and no one means it: drop it here, once.
        for cell in cells.iter_mut().filter(|c| c.contains('\0')) {
            cell.retain(|ch| ch != '\0');
        }
        for cell in cells.iter_mut() {
            strip_formula_guard(cell);
        }
        if cells.iter().all(|c| c.trim().is_empty()) {
            return Ok(());
        }
        if !self.header_seen {
            self.header_seen = true;
            self.last = number;
            let mut names: Vec<String> = cells.iter().map(|c| c.trim().to_string()).collect();
            while names.last().is_some_and(String::is_empty) {
                names.pop();
            }
            return self.sink.headers(&Headers(names));
        }
        for blank in self.last + 1..number {
            self.emit(Row {
                number: blank,
                cells: Vec::new(),
            })?;
        }
        self.last = number;
        self.emit(Row { number, cells })
    }

    fn emit(&mut self, row: Row) -> Result<(), SheetError> {
        self.count += 1;
        if self.count > self.limits.max_rows {
            return Err(SheetError::TooManyRows {
                file: self.file.into(),
                limit: self.limits.max_rows,
            });
        }
        self.sink.row(row)
    }
}

fn read_csv<S: RowSink>(
    body: &[u8],
    encoding: &'static Encoding,
    out: &mut Emitter<S>,
) -> Result<(), SheetError> {
    let (text, _) = encoding.decode_without_bom_handling(body);
    csv_rows(text.as_bytes(), delimiter_of(&text), out)
}

/// European Excel writes `;`, some exports use tabs; both only when the header (the first
/// line that is not blank) has no comma.
fn delimiter_of(text: &str) -> u8 {
    let first = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    let count = |d: u8| first.bytes().filter(|b| *b == d).count();
    match (count(b','), count(b';'), count(b'\t')) {
        (0, semi, tab) if semi > 0 && semi >= tab => b';',
        (0, _, tab) if tab > 0 => b'\t',
        _ => b',',
    }
}

/// The bytes a reader has handed over and not yet been done with: what the CSV loop reads back
/// between two records, however far the file is streamed.
#[derive(Default)]
struct Window {
    /// Offset in the stream of `bytes[0]`.
    base: usize,
    bytes: Vec<u8>,
}

/// Keeps a copy of what passes through in a shared [`Window`].
struct Tee<R> {
    inner: R,
    window: std::rc::Rc<std::cell::RefCell<Window>>,
}

impl<R: Read> Read for Tee<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.window.borrow_mut().bytes.extend_from_slice(&buf[..n]);
        Ok(n)
    }
}

/// Reads CSV records from UTF-8 text as it streams in, numbering rows as Excel shows them.
fn csv_rows<S: RowSink>(
    text: impl Read,
    delimiter: u8,
    out: &mut Emitter<S>,
) -> Result<(), SheetError> {
    let window = std::rc::Rc::new(std::cell::RefCell::new(Window::default()));
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .delimiter(delimiter)
        .from_reader(Tee {
            inner: text,
            window: window.clone(),
        });
    let mut record = csv::StringRecord::new();
    let (mut number, mut carry) = (0, Vec::new());
    loop {
        let start = reader.position().byte() as usize;
        let more = reader
            .read_record(&mut record)
            .map_err(|e| SheetError::Csv {
                file: out.file.into(),
                row: number + 1,
                detail: e.to_string(),
            })?;
        if !more {
            return Ok(());
        }
        // The csv crate silently skips empty lines, but Excel shows them as rows: count the
        // line breaks between the previous record's content and this one's (a CRLF may be
        // split across the two reads).
        let end = reader.position().byte() as usize;
        let mut w = window.borrow_mut();
        let consumed = &w.bytes[start - w.base..end - w.base];
        let lead = consumed
            .iter()
            .take_while(|b| matches!(b, b'\r' | b'\n'))
            .count();
        let trail = consumed
            .iter()
            .rev()
            .take_while(|b| matches!(b, b'\r' | b'\n'))
            .count();
        let mut prev = 0u8;
        let mut breaks = 0;
        for &b in carry.iter().chain(&consumed[..lead]) {
            breaks += usize::from(b == b'\r' || (b == b'\n' && prev != b'\r'));
            prev = b;
        }
        carry = consumed[consumed.len() - trail.min(consumed.len() - lead)..].to_vec();
        // What the parser is done with is dropped now and then, not at every record.
        if end - w.base > 1 << 20 {
            let done = end - w.base;
            w.bytes.drain(..done);
            w.base = end;
        }
        drop(w);
        number = if number == 0 {
            1 + breaks
        } else {
            number + breaks.max(1)
        };
        out.push(number, record.iter().map(str::to_string).collect())?;
    }
}

/// Decodes a stream of text in any encoding into UTF-8, a buffer at a time.
struct Decoding<R> {
    inner: R,
    decoder: encoding_rs::Decoder,
    input: Vec<u8>,
    output: Vec<u8>,
    at: usize,
    done: bool,
}

impl<R: Read> Read for Decoding<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.at == self.output.len() && !self.done {
            self.input.resize(16 * 1024, 0);
            let n = self.inner.read(&mut self.input)?;
            self.done = n == 0;
            self.output.clear();
            self.output.resize(
                self.decoder
                    .max_utf8_buffer_length(n)
                    .unwrap_or(64 * 1024)
                    .max(16),
                0,
            );
            let (_, _, written, _) =
                self.decoder
                    .decode_to_utf8(&self.input[..n], &mut self.output, self.done);
            self.output.truncate(written);
            self.at = 0;
        }
        let n = buf.len().min(self.output.len() - self.at);
        buf[..n].copy_from_slice(&self.output[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// Whether a whole stream is valid UTF-8, read a buffer at a time.
fn stream_is_utf8(mut reader: impl Read) -> io::Result<bool> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut kept = 0;
    loop {
        let n = reader.read(&mut buf[kept..])?;
        let filled = kept + n;
        match std::str::from_utf8(&buf[..filled]) {
            Ok(_) => kept = 0,
            // A character cut at the end of the buffer is completed by the next read.
            Err(e) if e.error_len().is_none() && n > 0 => {
                let valid = e.valid_up_to();
                buf.copy_within(valid..filled, 0);
                kept = filled - valid;
            }
            Err(_) => return Ok(false),
        }
        if n == 0 {
            return Ok(true);
        }
    }
}

/// Streams a sheet from a file, like [`read_sheet`]. A CSV is parsed as it is read, so
/// `limits.max_file_bytes` does not apply to it and memory stays flat however long it is (it
/// is read twice when it has no BOM: once to tell UTF-8 from Windows-1252). An `.xlsx` is read
/// into memory first (at most `limits.max_file_bytes`), then its cells are streamed.
pub fn read_sheet_file(
    path: &std::path::Path,
    file_name: &str,
    limits: &Limits,
    sink: &mut impl RowSink,
) -> Result<usize, SheetError> {
    let file = file_name;
    let unreadable = |e: io::Error| corrupt(file, e);
    let open = || std::fs::File::open(path).map_err(unreadable);
    let mut head = Vec::new();
    open()?
        .take(64 * 1024)
        .read_to_end(&mut head)
        .map_err(unreadable)?;
    if head.starts_with(b"PK") || head.starts_with(OLE_MAGIC) {
        // An .xlsx (or an old or encrypted Excel file, refused by `read_sheet`): read whole.
        let len = open()?.metadata().map_err(unreadable)?.len();
        if len > limits.max_file_bytes {
            return Err(SheetError::TooLarge {
                file: file.into(),
                bytes: len,
                limit: limits.max_file_bytes,
            });
        }
        let bytes = std::fs::read(path).map_err(unreadable)?;
        return read_sheet(&bytes, file, limits, sink);
    }
    let (encoding, bom) = match sniff(&head, file)? {
        Sniffed::Csv(encoding, bom) => (encoding, bom),
        Sniffed::Xlsx => return Err(corrupt(file, "it changed while it was read")),
    };
    // The start of the file said UTF-8 or Windows-1252; only the whole file can tell.
    let encoding = if bom == 0 && (encoding == UTF_8 || encoding == WINDOWS_1252) {
        if stream_is_utf8(io::BufReader::new(open()?)).map_err(unreadable)? {
            UTF_8
        } else {
            WINDOWS_1252
        }
    } else {
        encoding
    };
    let (sample, _) = encoding.decode_without_bom_handling(&head[bom..]);
    let delimiter = delimiter_of(&sample);
    let mut body = io::BufReader::new(open()?);
    io::copy(&mut (&mut body).take(bom as u64), &mut io::sink()).map_err(unreadable)?;
    let mut out = Emitter {
        file,
        limits,
        sink,
        header_seen: false,
        last: 0,
        count: 0,
    };
    if encoding == UTF_8 {
        csv_rows(body, delimiter, &mut out)?;
    } else {
        let text = Decoding {
            inner: body,
            decoder: encoding.new_decoder_without_bom_handling(),
            input: Vec::new(),
            output: Vec::new(),
            at: 0,
            done: false,
        };
        csv_rows(text, delimiter, &mut out)?;
    }
    if !out.header_seen {
        return Err(SheetError::Empty { file: file.into() });
    }
    Ok(out.count)
}

fn read_xlsx<S: RowSink>(bytes: &[u8], out: &mut Emitter<S>) -> Result<(), SheetError> {
    let file = out.file;
    check_zip(bytes, file, out.limits)?;
    // calamine indexes shared strings without bounds checks, so a crafted file can panic
    // it; turn that into a `Corrupt` error instead of taking down the request.
    let guard = |what: &str| {
        let detail = format!("the spreadsheet reader failed on {what}");
        move |_: Box<dyn std::any::Any + Send>| corrupt(file, detail)
    };
    let mut book: Xlsx<_> = catch_unwind(|| Xlsx::new(Cursor::new(bytes)))
        .map_err(guard("the workbook"))?
        .map_err(|e| corrupt(file, e))?;
    let Some(name) = book
        .sheets_metadata()
        .iter()
        .find(|s| s.typ == SheetType::WorkSheet)
        .map(|s| s.name.clone())
    else {
        return Err(SheetError::Empty { file: file.into() });
    };
    let reader = &mut book;
    // The closure takes `reader` (moves it), so the cell reader may borrow the book.
    let mut cells = catch_unwind(AssertUnwindSafe(move || {
        let book = reader;
        book.worksheet_cells_reader(&name)
    }))
    .map_err(guard("the sheet"))?
    .map_err(|e| corrupt(file, e))?;
    let mut current: Option<u32> = None;
    let mut row: Vec<String> = Vec::new();
    loop {
        let next = catch_unwind(AssertUnwindSafe(|| cells.next_cell())).map_err(guard("a cell"))?;
        let Some(cell) = next.map_err(|e| corrupt(file, e))? else {
            break;
        };
        let (r, c) = cell.get_position();
        if current != Some(r) {
            if let Some(prev) = current {
                if r < prev {
                    return Err(corrupt(file, "its rows are out of order"));
                }
                out.push(prev as usize + 1, std::mem::take(&mut row))?;
            }
            current = Some(r);
        }
        let c = c as usize;
        if c >= MAX_COLUMNS {
            return Err(corrupt(file, "it has a cell beyond Excel's last column"));
        }
        let text = cell_text(cell.get_value());
        if !text.is_empty() {
            if row.len() <= c {
                row.resize(c + 1, String::new());
            }
            row[c] = text;
        }
    }
    match current {
        Some(last) => out.push(last as usize + 1, row),
        None => Ok(()),
    }
}

/// Refuses zip bombs before calamine inflates anything, from the central directory's declared
/// sizes; then inflates each entry into a sink, capped at its declared size, because the zip
/// crate does not stop at the declared size and calamine buffers some entries whole. Counts
/// the worksheets' cells and the shared strings on the way: calamine holds every shared string
/// in memory, so a workbook with far more of them than cells is refused (a few megabytes of
/// zip can hold tens of millions of them).
fn check_zip(bytes: &[u8], file: &str, limits: &Limits) -> Result<(), SheetError> {
    let too_large = || SheetError::XlsxTooLarge {
        file: file.into(),
        limit: limits.max_xlsx_uncompressed_bytes,
    };
    let shared = |detail: String| SheetError::SharedStrings {
        file: file.into(),
        detail,
    };
    let mut zip = zip::ZipArchive::new(Cursor::new(bytes)).map_err(|e| corrupt(file, e))?;
    let mut total: u64 = 0;
    for i in 0..zip.len() {
        let entry = zip.by_index_raw(i).map_err(|e| corrupt(file, e))?;
        total = total.saturating_add(entry.size());
        let absurd =
            entry.size() > 10 * MIB && entry.size() / entry.compressed_size().max(1) > 1000;
        if absurd || total > limits.max_xlsx_uncompressed_bytes {
            return Err(too_large());
        }
        if Part::of(entry.name()) == Part::SharedStrings
            && entry.size() > limits.max_shared_strings_bytes
        {
            return Err(shared(format!(
                "{} MB of shared strings (xl/sharedStrings.xml; at most {} MB are read)",
                mb(&entry.size()),
                mb(&limits.max_shared_strings_bytes)
            )));
        }
    }
    let (mut cells, mut strings) = (0u64, 0u64);
    for i in 0..zip.len() {
        let entry = zip.by_index(i).map_err(|e| corrupt(file, e))?;
        let declared = entry.size();
        let part = Part::of(entry.name());
        let mut counter = TagCounter::new(match part {
            Part::Worksheet => b"c",
            Part::SharedStrings => b"si",
            Part::Other => b"",
        });
        let actual = io::copy(&mut entry.take(declared.saturating_add(1)), &mut counter)
            .map_err(|e| corrupt(file, e))?;
        if actual > declared {
            return Err(corrupt(
                file,
                "a part unpacks to more than its declared size",
            ));
        }
        match part {
            Part::Worksheet => cells = cells.saturating_add(counter.count),
            Part::SharedStrings => strings = strings.saturating_add(counter.count),
            Part::Other => {}
        }
    }
    if strings > limits.max_shared_strings {
        return Err(shared(format!(
            "{strings} shared strings (xl/sharedStrings.xml; at most {} are read)",
            limits.max_shared_strings
        )));
    }
    if strings > cells.saturating_add(SHARED_STRINGS_SLACK) {
        return Err(shared(format!(
            "{strings} shared strings (xl/sharedStrings.xml) for {cells} cells"
        )));
    }
    Ok(())
}

/// The parts of a workbook that [`check_zip`] counts in, named as calamine finds them
/// (ignoring case, `\` read as `/`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    Worksheet,
    SharedStrings,
    Other,
}

impl Part {
    fn of(name: &str) -> Part {
        let name = name.replace('\\', "/").to_ascii_lowercase();
        if name == "xl/sharedstrings.xml" {
            Part::SharedStrings
        } else if name.starts_with("xl/worksheets/")
            && name.ends_with(".xml")
            && !name["xl/worksheets/".len()..].contains('/')
        {
            Part::Worksheet
        } else {
            Part::Other
        }
    }
}

/// Counts, in streamed XML, the start tags of elements with one local name (`<c>`, `<c r="A1">`,
/// `<c/>`, `<x:c …>`), holding nothing but the name being read; an empty name counts nothing.
struct TagCounter {
    local: &'static [u8],
    /// The name after a `<`, while it is being read.
    name: Option<Vec<u8>>,
    count: u64,
}

impl TagCounter {
    fn new(local: &'static [u8]) -> Self {
        TagCounter {
            local,
            name: None,
            count: 0,
        }
    }
}

impl io::Write for TagCounter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.local.is_empty() {
            return Ok(buf.len());
        }
        for &b in buf {
            match &mut self.name {
                None => {
                    if b == b'<' {
                        self.name = Some(Vec::new());
                    }
                }
                Some(name) => {
                    if b.is_ascii_whitespace() || b == b'>' || b == b'/' {
                        // `</…`, `<?…` and `<!…` have no name here, so never count.
                        let local = name.rsplit(|c| *c == b':').next().unwrap_or_default();
                        if !name.is_empty() && local == self.local {
                            self.count += 1;
                        }
                        self.name = None;
                    } else if b == b'?' || b == b'!' || b == b'<' || name.len() > 64 {
                        self.name = (b == b'<').then(Vec::new);
                    } else {
                        name.push(b);
                    }
                }
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Cell text as the user typed or saw it; numbers never in scientific notation.
fn cell_text(value: &DataRef<'_>) -> String {
    match value {
        DataRef::Int(i) => i.to_string(),
        DataRef::Float(f) => float_text(*f),
        DataRef::String(s) => unescape_ooxml(s),
        DataRef::DateTimeIso(s) | DataRef::DurationIso(s) => s.clone(),
        DataRef::SharedString(s) => unescape_ooxml(s),
        DataRef::Bool(b) => if *b { "TRUE" } else { "FALSE" }.to_string(),
        DataRef::DateTime(dt) => date_text(dt),
        DataRef::Error(e) => e.to_string(),
        DataRef::Empty => String::new(),
    }
}

/// Decodes the `_xHHHH_` escapes of OOXML strings (Excel and rust_xlsxwriter write a carriage
/// return as `_x000D_`, and a literal `_x` sequence as `_x005F_x…`), which calamine leaves as
/// they are.
fn unescape_ooxml(s: &str) -> String {
    if !s.contains("_x") {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find("_x") {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        let code = tail
            .get(2..6)
            .filter(|h| h.bytes().all(|b| b.is_ascii_hexdigit()))
            .filter(|_| tail.as_bytes().get(6) == Some(&b'_'))
            .and_then(|h| u32::from_str_radix(h, 16).ok())
            .and_then(char::from_u32);
        match code {
            Some(c) => {
                out.push(c);
                rest = &tail[7..];
            }
            None => {
                out.push_str("_x");
                rest = &tail[2..];
            }
        }
    }
    out.push_str(rest);
    out
}

fn float_text(f: f64) -> String {
    if f.fract() == 0.0 && f.abs() < 1e15 {
        (f as i64).to_string()
    } else {
        // Rust's Display is the shortest round-trip text and never uses an exponent.
        f.to_string()
    }
}

fn date_text(dt: &ExcelDateTime) -> String {
    let v = dt.as_f64();
    // calamine exposes the 1904 flag and kind only behind its chrono feature; equality with
    // rebuilt values recovers them without pulling chrono in.
    let is = |kind, is_1904| *dt == ExcelDateTime::new(v, kind, is_1904);
    let is_1904 = is(ExcelDateTimeType::DateTime, true) || is(ExcelDateTimeType::TimeDelta, true);
    // Durations and time-only cells (no day part) read best as a clock time.
    if is(ExcelDateTimeType::TimeDelta, is_1904) || (0.0..1.0).contains(&v) {
        let secs = (v * 86_400.0).round() as i64;
        let sign = if secs < 0 { "-" } else { "" };
        let s = secs.unsigned_abs();
        return format!("{sign}{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60);
    }
    // Serial days from 1899-12-30; before 1900-03-01 Excel counts a 29 Feb 1900 that never was.
    let days = if is_1904 {
        v + 1462.0
    } else if v < 60.0 {
        v + 1.0
    } else {
        v
    };
    let secs = (days * 86_400.0).round();
    if !secs.is_finite() || secs.abs() > 1e12 {
        return float_text(v);
    }
    let epoch = civil::date(1899, 12, 30).at(0, 0, 0, 0);
    match epoch.checked_add(SignedDuration::from_secs(secs as i64)) {
        Ok(t) if t.time() == civil::Time::midnight() => t.date().to_string(),
        Ok(t) => t.strftime("%Y-%m-%dT%H:%M:%S").to_string(),
        Err(_) => float_text(v),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_xlsxwriter::{ExcelDateTime as XlDate, Format as XlFormat, Formula, Workbook};
    use std::io::Write;
    use zip::write::SimpleFileOptions;

    fn csv(bytes: &[u8]) -> Table {
        read_table(bytes, "people.csv", &Limits::default()).unwrap()
    }

    fn err(bytes: &[u8], name: &str, limits: &Limits) -> SheetError {
        let e = read_table(bytes, name, limits).unwrap_err();
        assert!(
            e.to_string().contains(&format!("'{name}'")),
            "message lacks file name: {e}"
        );
        e
    }

    fn cells(t: &Table) -> Vec<(usize, Vec<&str>)> {
        t.rows
            .iter()
            .map(|r| (r.number, r.cells.iter().map(String::as_str).collect()))
            .collect()
    }

    fn xlsx() -> Vec<u8> {
        let mut book = Workbook::new();
        let sheet = book.add_worksheet();
        for (col, name) in [" Name ", "PHONE number", "code", "born", "sum", "ok"]
            .iter()
            .enumerate()
        {
            sheet.write_string(0, col as u16, *name).unwrap();
        }
        sheet.write_string(1, 0, "Mukasa Zoë").unwrap();
        sheet.write_number(1, 1, 256772123456.0).unwrap();
        sheet.write_string(1, 2, "00123").unwrap();
        let date = XlFormat::new().set_num_format("yyyy-mm-dd");
        sheet
            .write_datetime_with_format(1, 3, XlDate::from_ymd(2024, 3, 5).unwrap(), &date)
            .unwrap();
        sheet
            .write_formula(1, 4, Formula::new("=1+1").set_result("2"))
            .unwrap();
        sheet.write_boolean(1, 5, true).unwrap();
        // Row 3 is left empty: it must come back as a blank row numbered 3.
        sheet.write_string(3, 0, "Akello").unwrap();
        sheet.write_number(3, 1, 2.5).unwrap();
        book.save_to_buffer().unwrap()
    }

    fn zip_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
        let options =
            SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
        for (name, data) in entries {
            zip.start_file(*name, options).unwrap();
            zip.write_all(data).unwrap();
        }
        zip.finish().unwrap().into_inner()
    }

    #[test]
    fn xlsx_cells_come_back_as_typed() {
        let bytes = xlsx();
        assert_eq!(detect_format(&bytes, "people.csv").unwrap(), Format::Xlsx);
        let t = read_table(&bytes, "people.xlsx", &Limits::default()).unwrap();
        assert_eq!(
            t.headers.0,
            ["Name", "PHONE number", "code", "born", "sum", "ok"]
        );
        assert_eq!(t.headers.find(" phone NUMBER "), Some(1));
        assert_eq!(t.headers.find("email"), None);
        assert_eq!(
            t.headers.list(),
            "'Name', 'PHONE number', 'code', 'born', 'sum', 'ok'"
        );
        assert_eq!(
            cells(&t),
            [
                (
                    2,
                    vec![
                        "Mukasa Zoë",
                        "256772123456",
                        "00123",
                        "2024-03-05",
                        "2",
                        "TRUE"
                    ]
                ),
                (3, vec![]),
                (4, vec!["Akello", "2.5"]),
            ]
        );
        assert!(t.rows[1].is_blank() && !t.rows[0].is_blank());
        assert_eq!((t.rows[2].get(1), t.rows[2].get(9)), ("2.5", ""));
    }

    /// The workbook of [`xlsx`] with its sheet's `<dimension>` replaced.
    fn with_dimension(dimension: &str) -> Vec<u8> {
        let bytes = xlsx();
        let mut zip = zip::ZipArchive::new(Cursor::new(&bytes)).unwrap();
        let mut entries: Vec<(String, Vec<u8>)> = Vec::new();
        for i in 0..zip.len() {
            let mut entry = zip.by_index(i).unwrap();
            let mut data = Vec::new();
            io::Read::read_to_end(&mut entry, &mut data).unwrap();
            if entry.name() == "xl/worksheets/sheet1.xml" {
                let text = String::from_utf8(data).unwrap();
                let start = text.find("<dimension ref=\"").unwrap() + "<dimension ref=\"".len();
                let end = start + text[start..].find('"').unwrap();
                data = format!("{}{dimension}{}", &text[..start], &text[end..]).into_bytes();
            }
            entries.push((entry.name().to_string(), data));
        }
        let refs: Vec<(&str, &[u8])> = entries
            .iter()
            .map(|(n, d)| (n.as_str(), d.as_slice()))
            .collect();
        zip_of(&refs)
    }

    /// Issue 18, finding 1: a `<dimension>` that runs backwards or is not a cell reference
    /// panicked calamine in debug builds (and wrapped in release). The dimension is a hint:
    /// the cells that are there are read.
    #[test]
    fn a_wrong_dimension_reads_the_cells_that_are_there() {
        let good = read_table(&xlsx(), "good.xlsx", &Limits::default()).unwrap();
        let want = cells(&good);
        for dimension in ["B2:A1", "NaNA1:F4", "A1:XFE1048577"] {
            let got = read_table(&with_dimension(dimension), "odd.xlsx", &Limits::default());
            match got {
                Ok(t) => assert_eq!(cells(&t), want, "{dimension}"),
                // A reference calamine cannot read at all is a corrupt file, said as such.
                Err(SheetError::Corrupt { .. }) => assert_eq!(dimension, "NaNA1:F4"),
                Err(e) => panic!("{dimension}: {e}"),
            }
        }
    }

    #[test]
    fn xlsx_header_is_first_non_empty_row() {
        let mut book = Workbook::new();
        let sheet = book.add_worksheet();
        sheet.write_string(2, 1, "name").unwrap();
        sheet.write_string(3, 1, "Okello").unwrap();
        let t = read_table(
            &book.save_to_buffer().unwrap(),
            "late.xlsx",
            &Limits::default(),
        )
        .unwrap();
        assert_eq!(t.headers.0, ["", "name"]);
        assert_eq!(cells(&t), [(4, vec!["", "Okello"])]);
    }

    #[test]
    fn cell_text_formats_numbers_and_dates() {
        assert_eq!(float_text(254712345678.0), "254712345678");
        assert_eq!(float_text(1e15), "1000000000000000");
        assert_eq!(float_text(0.1 + 0.2), "0.30000000000000004");
        let dt = |v, kind, is_1904| date_text(&ExcelDateTime::new(v, kind, is_1904));
        use ExcelDateTimeType::{DateTime, TimeDelta};
        assert_eq!(dt(45356.0, DateTime, false), "2024-03-05");
        assert_eq!(dt(45356.5, DateTime, false), "2024-03-05T12:00:00");
        assert_eq!(dt(43894.0, DateTime, true), "2024-03-05");
        assert_eq!(dt(1.0, DateTime, false), "1900-01-01");
        assert_eq!(dt(0.75, DateTime, false), "18:00:00");
        assert_eq!(dt(1.5, TimeDelta, false), "36:00:00");
        assert_eq!(
            cell_text(&DataRef::Error(calamine::CellErrorType::Div0)),
            "#DIV/0!"
        );
        assert_eq!(cell_text(&DataRef::Bool(false)), "FALSE");
        assert_eq!(cell_text(&DataRef::Int(-7)), "-7");
    }

    #[test]
    fn csv_encodings_are_decoded() {
        let plain = csv(b"name,phone\nMukasa Zo\xc3\xab,0772123456\n");
        let expected = [(2, vec!["Mukasa Zoë", "0772123456"])];
        assert_eq!(cells(&plain), expected);
        assert_eq!(
            cells(&csv(
                b"\xef\xbb\xbfname,phone\r\nMukasa Zo\xc3\xab,0772123456\r\n"
            )),
            expected
        );
        assert_eq!(plain.headers, csv(b"\xef\xbb\xbfname,phone\n").headers);
        assert_eq!(
            cells(&csv(b"name,phone\nMukasa Zo\xeb,0772123456\n")),
            expected
        );
        let text = "name,phone\nMukasa Zoë,0772123456\n";
        let le: Vec<u8> = text.encode_utf16().flat_map(u16::to_le_bytes).collect();
        let be: Vec<u8> = text.encode_utf16().flat_map(u16::to_be_bytes).collect();
        assert_eq!(cells(&csv(&[&[0xFF, 0xFE][..], &le].concat())), expected);
        assert_eq!(cells(&csv(&[&[0xFE, 0xFF][..], &be].concat())), expected);
        assert_eq!(cells(&csv(&le)), expected, "BOM-less UTF-16LE");
    }

    /// Reads `bytes` from a file, as the CLI does, and from memory, as an upload is read.
    fn from_file_and_memory(bytes: &[u8], name: &str) -> (Table, Table) {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "casecast-sheet-{}-{}-{name}",
            std::process::id(),
            N.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
        ));
        std::fs::write(&path, bytes).unwrap();
        let mut from_file = Table::default();
        let read = read_sheet_file(&path, name, &Limits::default(), &mut from_file);
        std::fs::remove_file(&path).unwrap();
        read.unwrap();
        (
            from_file,
            read_table(bytes, name, &Limits::default()).unwrap(),
        )
    }

    #[test]
    fn a_file_streams_as_its_bytes_read() {
        let text = "name;phone;note\nAkello;0772;\"two\nlines\"\n\nOkello;0773\n;;\n";
        let le: Vec<u8> = text.encode_utf16().flat_map(u16::to_le_bytes).collect();
        let samples: Vec<Vec<u8>> = vec![
            text.as_bytes().to_vec(),
            b"\xef\xbb\xbfname,phone\r\nMukasa Zo\xc3\xab,0772\r\n\r\n\rb,1\r\n".to_vec(),
            b"name,phone\nMukasa Zo\xeb,0772123456\n".to_vec(),
            [&[0xFF, 0xFE][..], &le].concat(),
            le.clone(),
        ];
        for bytes in samples {
            let (file, memory) = from_file_and_memory(&bytes, "people.csv");
            assert_eq!(file, memory, "{bytes:?}");
        }
        // Long: the reader drops what it is done with as it goes, rows straddle its buffers,
        // and a Windows-1252 letter far past the start still decides the encoding.
        let mut long = b"name,note\r\n".to_vec();
        for i in 0..60_000 {
            long.extend_from_slice(format!("person {i},{}\r\n", "x".repeat(i % 50)).as_bytes());
            if i % 7 == 0 {
                long.extend_from_slice(b"\r\n");
            }
        }
        long.extend_from_slice(b"Zo\xeb,last\r\n");
        let (file, memory) = from_file_and_memory(&long, "long.csv");
        assert_eq!(file.rows.len(), memory.rows.len());
        assert_eq!(file, memory);
        assert_eq!(file.rows.last().unwrap().cells, ["Zoë", "last"]);
        // An .xlsx is read whole, then the same.
        let mut book = Workbook::new();
        let sheet = book.add_worksheet();
        sheet.write_string(0, 0, "name").unwrap();
        sheet.write_string(2, 0, "Akello").unwrap();
        let bytes = book.save_to_buffer().unwrap();
        let (file, memory) = from_file_and_memory(&bytes, "people.xlsx");
        assert_eq!(file, memory);
        assert_eq!(file.rows.len(), 2);
    }

    #[test]
    fn csv_delimiters_quotes_and_numbering() {
        let t = csv(b"name;phone;note\nAkello;0772;\"two\nlines\"\n\nOkello;0773\n;;\n");
        assert_eq!(t.headers.0, ["name", "phone", "note"]);
        assert_eq!(
            cells(&t),
            [
                (2, vec!["Akello", "0772", "two\nlines"]),
                (3, vec![]),
                (4, vec!["Okello", "0773"])
            ]
        );
        let t = csv(b"name\r\na\r\n\r\n\r\nb\r\n\r\n");
        assert_eq!(
            cells(&t),
            [(2, vec!["a"]), (3, vec![]), (4, vec![]), (5, vec!["b"])]
        );
        let t = csv(b"name\tphone\n Akello \t0772");
        assert_eq!(cells(&t), [(2, vec![" Akello ", "0772"])]);
        let t = csv(b"name,note\n,,\n\"a\",\"b, \"\"c\"\"\"\n");
        assert_eq!(cells(&t), [(2, vec![]), (3, vec!["a", "b, \"c\""])]);
    }

    #[test]
    fn bad_files_are_refused_with_clear_messages() {
        let limits = Limits::default();
        assert!(matches!(
            err(b"", "a.csv", &limits),
            SheetError::Empty { .. }
        ));
        assert!(matches!(
            err(b"\n\n,,\n", "a.csv", &limits),
            SheetError::Empty { .. }
        ));
        let png = err(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR", "photo.csv", &limits);
        assert!(png.to_string().contains("a PNG image"), "{png}");
        let old = err(&[OLE_MAGIC, &[0; 64]].concat(), "people.xls", &limits);
        assert_eq!(
            old.to_string(),
            "'people.xls' is an old Excel 97-2003 file (.xls); save it as an Excel Workbook (.xlsx) or as CSV and upload it again"
        );
        let locked: Vec<u8> = "EncryptedPackage"
            .encode_utf16()
            .flat_map(u16::to_le_bytes)
            .collect();
        let locked = err(&[OLE_MAGIC, &locked].concat(), "locked.xlsx", &limits);
        assert!(matches!(locked, SheetError::Encrypted { .. }), "{locked}");
        let docx = err(
            &zip_of(&[("word/document.xml", b"<w/>")]),
            "letter.xlsx",
            &limits,
        );
        assert!(
            docx.to_string()
                .contains("a zip archive that is not an Excel workbook"),
            "{docx}"
        );
        let binary = err(&[1u8, 2, 3, 0, 4, 5, 6, 7].repeat(100), "blob.csv", &limits);
        assert!(binary.to_string().contains("a binary file"), "{binary}");
        let html = err(b"  <!DOCTYPE html><html></html>", "export.csv", &limits);
        assert!(matches!(html, SheetError::NotSpreadsheet { .. }));
        let full = xlsx();
        let cut = err(&full[..full.len() / 2], "cut.xlsx", &limits);
        assert!(
            matches!(cut, SheetError::Corrupt { ref detail, .. } if detail.len() < 200),
            "{cut}"
        );
        let big = err(
            b"name\nAkello\n",
            "big.csv",
            &Limits {
                max_file_bytes: 5,
                ..limits
            },
        );
        assert!(matches!(
            big,
            SheetError::TooLarge {
                bytes: 12,
                limit: 5,
                ..
            }
        ));
    }

    #[test]
    fn zip_bomb_is_refused_before_inflating() {
        let zeros = vec![0u8; 50 * 1024 * 1024];
        let bomb = zip_of(&[
            ("xl/workbook.xml", b"<workbook/>"),
            ("xl/worksheets/sheet1.xml", &zeros),
        ]);
        drop(zeros);
        assert!(bomb.len() < 1024 * 1024);
        let limits = Limits {
            max_xlsx_uncompressed_bytes: 10 * MIB,
            ..Limits::default()
        };
        let e = err(&bomb, "bomb.xlsx", &limits);
        assert!(matches!(e, SheetError::XlsxTooLarge { .. }), "{e}");
        assert!(e.to_string().contains("10 MB"), "{e}");
        // Within the total cap, a 1000:1 entry over 10 MB is still refused.
        let e = err(&bomb, "bomb.xlsx", &Limits::default());
        assert!(matches!(e, SheetError::XlsxTooLarge { .. }), "{e}");
    }

    /// A workbook whose one sheet has a header and a data row, both cells shared strings, and
    /// whose shared strings hold `extra` more entries no cell uses.
    fn shared_strings_workbook(extra: usize) -> Vec<u8> {
        let mut sst = String::from(
            r#"<?xml version="1.0"?><sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><si><t>name</t></si><si><t>Akello</t></si>"#,
        );
        for i in 0..extra {
            sst.push_str(&format!("<si><t>{i}</t></si>"));
        }
        sst.push_str("</sst>");
        zip_of(&[
            ("xl/workbook.xml", br#"<workbook xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"><sheets><sheet name="S" sheetId="1" r:id="rId1"/></sheets></workbook>"#),
            ("xl/_rels/workbook.xml.rels", br#"<Relationships><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" Target="worksheets/sheet1.xml"/></Relationships>"#),
            ("xl/worksheets/sheet1.xml", br#"<worksheet><sheetData><row r="1"><c r="A1" t="s"><v>0</v></c></row><row r="2"><x:c r="A2" t="s"><v>1</v></x:c></row></sheetData></worksheet>"#),
            ("xl/sharedStrings.xml", sst.as_bytes()),
        ])
    }

    #[test]
    fn shared_strings_beyond_the_cells_or_the_caps_are_refused_before_reading() {
        // Within the slack, the workbook reads as usual.
        let fine = shared_strings_workbook(SHARED_STRINGS_SLACK as usize - 10);
        let t = read_table(&fine, "fine.xlsx", &Limits::default()).unwrap();
        assert_eq!(t.headers.0, ["name"]);
        assert_eq!(cells(&t), [(2, vec!["Akello"])]);
        // Far more shared strings than cells: the bomb of issue 12, in small.
        let bomb = shared_strings_workbook(SHARED_STRINGS_SLACK as usize + 10);
        let e = err(&bomb, "bomb.xlsx", &Limits::default());
        assert!(matches!(e, SheetError::SharedStrings { .. }), "{e}");
        assert!(
            e.to_string()
                .contains("10012 shared strings (xl/sharedStrings.xml) for 2 cells"),
            "{e}"
        );
        // The absolute caps on their number and size hold even when there are cells enough.
        let limits = Limits {
            max_shared_strings: 100,
            ..Limits::default()
        };
        let e = err(&fine, "fine.xlsx", &limits);
        assert!(e.to_string().contains("at most 100 are read"), "{e}");
        let limits = Limits {
            max_shared_strings_bytes: 1024,
            ..Limits::default()
        };
        let e = err(&fine, "fine.xlsx", &limits);
        assert!(matches!(e, SheetError::SharedStrings { .. }), "{e}");
        assert!(e.to_string().contains("MB of shared strings"), "{e}");
    }

    #[test]
    fn tag_counter_counts_start_tags_by_local_name_across_writes() {
        use std::io::Write as _;
        let xml =
            br#"<?xml version="1.0"?><!-- a note --><sheetData><row><c r="A1"/><x:c>1</x:c><col/><c
t="s"></c><cc/></row></sheetData>"#;
        for split in 0..xml.len() {
            let mut counter = TagCounter::new(b"c");
            counter.write_all(&xml[..split]).unwrap();
            counter.write_all(&xml[split..]).unwrap();
            assert_eq!(counter.count, 3, "split at {split}");
        }
    }

    #[test]
    fn crafted_xlsx_that_panics_calamine_is_corrupt() {
        let bytes = zip_of(&[
            ("xl/workbook.xml", br#"<workbook xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"><sheets><sheet name="S" sheetId="1" r:id="rId1"/></sheets></workbook>"#),
            ("xl/_rels/workbook.xml.rels", br#"<Relationships><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" Target="worksheets/sheet1.xml"/></Relationships>"#),
            ("xl/worksheets/sheet1.xml", br#"<worksheet><sheetData><row r="1"><c r="A1" t="s"><v>99</v></c></row></sheetData></worksheet>"#),
        ]);
        let e = err(&bytes, "crafted.xlsx", &Limits::default());
        assert!(e.to_string().contains("reader failed"), "{e}");
    }

    #[test]
    fn row_limit_applies_to_csv_and_xlsx() {
        let limits = Limits {
            max_rows: 3,
            ..Limits::default()
        };
        assert_eq!(
            read_table(b"name\na\nb\nc\n", "ok.csv", &limits)
                .unwrap()
                .rows
                .len(),
            3
        );
        let e = err(b"name\na\nb\nc\nd\n", "four.csv", &limits);
        assert!(matches!(e, SheetError::TooManyRows { limit: 3, .. }), "{e}");
        let mut book = Workbook::new();
        let sheet = book.add_worksheet();
        for row in 0..5 {
            sheet.write_string(row, 0, format!("v{row}")).unwrap();
        }
        let e = err(&book.save_to_buffer().unwrap(), "four.xlsx", &limits);
        assert!(matches!(e, SheetError::TooManyRows { limit: 3, .. }), "{e}");
    }

    #[test]
    fn sink_errors_stop_the_read() {
        struct StopAt(usize, usize);
        impl RowSink for StopAt {
            fn headers(&mut self, _: &Headers) -> Result<(), SheetError> {
                Ok(())
            }
            fn row(&mut self, row: Row) -> Result<(), SheetError> {
                self.1 += 1;
                if row.number == self.0 {
                    return Err(SheetError::sink(format!(
                        "row {}: no phone number",
                        row.number
                    )));
                }
                Ok(())
            }
        }
        let mut sink = StopAt(3, 0);
        let e = read_sheet(b"name\na\nb\nc\n", "x.csv", &Limits::default(), &mut sink).unwrap_err();
        assert_eq!(
            (e.to_string().as_str(), sink.1),
            ("row 3: no phone number", 2)
        );
        let mut sink = StopAt(99, 0);
        assert_eq!(
            read_sheet(&xlsx(), "x.xlsx", &Limits::default(), &mut sink).unwrap(),
            3
        );
    }
}
