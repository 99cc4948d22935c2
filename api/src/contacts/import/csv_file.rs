//! Reading an uploaded CSV as a stream: encoding, header, preview and a structural check of
//! every row before anything is kept, so a bad file changes nothing; then its rows for the
//! import. Nothing here holds more of the file than a buffer's worth.

use std::io::{self, Read};

use csv::{ByteRecord, ReaderBuilder, StringRecord};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FileError {
    #[error("the file is empty")]
    Empty,
    #[error("the file is not UTF-8 text (save it as CSV UTF-8)")]
    NotUtf8,
    #[error("the file is not a CSV text file")]
    NotText,
    #[error("the file has no header row")]
    NoHeader,
    #[error("the column {0} appears twice in the header")]
    DuplicateHeader(String),
    #[error("the file is larger than {0} bytes")]
    TooLarge(u64),
    #[error("the file has more than {0} rows")]
    TooManyRows(u64),
    #[error("row {row}: {message}")]
    Malformed { row: u64, message: String },
}

const BOM: &[u8] = b"\xEF\xBB\xBF";

pub struct Limits {
    pub max_bytes: u64,
    pub max_rows: u64,
    pub preview_rows: usize,
}

/// What the check of a good file found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked {
    pub headers: Vec<String>,
    /// Data rows, the header not counted.
    pub rows: u64,
    /// The first data rows.
    pub preview: Vec<Vec<String>>,
}

/// Reads an upload once, start to end, and says whether it can be imported. Meanwhile
/// `store` receives the file's bytes unchanged, in pieces of `piece_bytes` (the last one
/// shorter), for as long as the file still looks good: the caller keeps them only if the
/// verdict is `Ok`.
///
/// The reasons a file is refused rank as they always have: its size, then its encoding
/// (empty, binary, not UTF-8: judged on the whole file), then its header, then its rows.
/// The outer error is a failure to read the file or to store a piece.
pub fn check<R: Read>(
    file: R,
    limits: &Limits,
    piece_bytes: usize,
    store: impl FnMut(Vec<u8>) -> io::Result<()>,
) -> io::Result<Result<Checked, FileError>> {
    let mut tee = Tee {
        inner: file,
        seen: 0,
        max_bytes: limits.max_bytes,
        too_large: false,
        text: TextCheck::default(),
        piece: Vec::new(),
        piece_bytes: piece_bytes.max(1),
        store,
        storing: true,
        failure: None,
    };
    let structure = {
        let mut csv = reader(SkipBom::new(&mut tee));
        read_structure(&mut csv, limits)
    };
    if let Some(failure) = tee.failure.take() {
        return Err(failure);
    }
    if structure.is_err() {
        // Refused whatever the rest holds; the rest is still read for the encoding checks,
        // which rank first.
        tee.storing = false;
        io::copy(&mut tee, &mut io::sink())?;
    }
    if tee.too_large {
        return Ok(Err(FileError::TooLarge(limits.max_bytes)));
    }
    if let Err(e) = tee.text.finish() {
        return Ok(Err(e));
    }
    let checked = match structure {
        Ok(checked) => checked,
        Err(e) => return Ok(Err(e)),
    };
    tee.flush_piece()?;
    Ok(Ok(checked))
}

fn read_structure<R: Read>(
    csv: &mut csv::Reader<R>,
    limits: &Limits,
) -> Result<Checked, FileError> {
    let headers = header_names(csv.headers().map_err(|_| FileError::NoHeader)?)?;
    let mut rows = 0u64;
    let mut preview = Vec::new();
    let mut record = StringRecord::new();
    loop {
        match csv.read_record(&mut record) {
            Ok(true) => {
                rows += 1;
                if rows > limits.max_rows {
                    return Err(FileError::TooManyRows(limits.max_rows));
                }
                if preview.len() < limits.preview_rows {
                    preview.push(record.iter().map(str::to_owned).collect());
                }
            }
            Ok(false) => {
                return Ok(Checked {
                    headers,
                    rows,
                    preview,
                });
            }
            Err(e) => {
                return Err(FileError::Malformed {
                    row: rows + 1,
                    message: e.to_string(),
                });
            }
        }
    }
}

fn reader<R: Read>(source: R) -> csv::Reader<R> {
    ReaderBuilder::new()
        .flexible(true)
        .has_headers(true)
        .buffer_capacity(64 * 1024)
        .from_reader(source)
}

/// Column names, trimmed; blank names become `Column N`.
fn header_names(record: &StringRecord) -> Result<Vec<String>, FileError> {
    if record.iter().all(|h| h.trim().is_empty()) {
        return Err(FileError::NoHeader);
    }
    let headers: Vec<String> = record
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let h = h.trim();
            if h.is_empty() {
                format!("Column {}", i + 1)
            } else {
                h.to_owned()
            }
        })
        .collect();
    let mut seen = std::collections::HashSet::new();
    for h in &headers {
        if !seen.insert(h.to_lowercase()) {
            return Err(FileError::DuplicateHeader(h.clone()));
        }
    }
    Ok(headers)
}

/// Data rows of a checked file numbered from 1, starting after `skip` rows (those already
/// imported); ends at the first error.
pub fn rows<R: Read>(source: R, skip: u64) -> Rows<R> {
    Rows {
        csv: reader(SkipBom::new(source)),
        skip,
        row: 0,
        done: false,
    }
}

pub struct Rows<R: Read> {
    csv: csv::Reader<SkipBom<R>>,
    skip: u64,
    row: u64,
    done: bool,
}

impl<R: Read> Rows<R> {
    fn end(&mut self, error: Option<csv::Error>) -> Option<csv::Result<(u64, StringRecord)>> {
        self.done = true;
        error.map(Err)
    }
}

impl<R: Read> Iterator for Rows<R> {
    type Item = csv::Result<(u64, StringRecord)>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        if self.row < self.skip {
            // Skipped rows are only delimited, not decoded.
            let mut skipped = ByteRecord::new();
            while self.row < self.skip {
                match self.csv.read_byte_record(&mut skipped) {
                    Ok(true) => self.row += 1,
                    Ok(false) => return self.end(None),
                    Err(e) => return self.end(Some(e)),
                }
            }
        }
        let mut record = StringRecord::new();
        match self.csv.read_record(&mut record) {
            Ok(true) => {
                self.row += 1;
                Some(Ok((self.row, record)))
            }
            Ok(false) => self.end(None),
            Err(e) => self.end(Some(e)),
        }
    }
}

/// Drops a UTF-8 byte-order mark at the start of what it reads.
pub struct SkipBom<R> {
    inner: R,
    head: [u8; 3],
    head_len: usize,
    head_pos: usize,
    started: bool,
}

impl<R: Read> SkipBom<R> {
    pub fn new(inner: R) -> Self {
        Self {
            inner,
            head: [0; 3],
            head_len: 0,
            head_pos: 0,
            started: false,
        }
    }
}

impl<R: Read> Read for SkipBom<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if !self.started {
            // The mark may arrive split over reads.
            let mut n = 0;
            while n < BOM.len() {
                match self.inner.read(&mut self.head[n..]) {
                    Ok(0) => break,
                    Ok(m) => n += m,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
            self.started = true;
            self.head_len = if &self.head[..n] == BOM { 0 } else { n };
        }
        if self.head_pos < self.head_len {
            let n = (self.head_len - self.head_pos).min(buf.len());
            buf[..n].copy_from_slice(&self.head[self.head_pos..self.head_pos + n]);
            self.head_pos += n;
            return Ok(n);
        }
        self.inner.read(buf)
    }
}

/// The encoding checks, fed the file's bytes in pieces of any size: a character split
/// between two pieces is judged whole.
#[derive(Default)]
struct TextCheck {
    seen: u64,
    /// The first bytes, where a byte-order mark may be.
    head: Vec<u8>,
    /// Anything but whitespace after the first three bytes.
    content: bool,
    nul: bool,
    invalid_utf8: bool,
    /// The start of a character whose end is in the next piece.
    partial: Vec<u8>,
}

impl TextCheck {
    fn feed(&mut self, bytes: &[u8]) {
        let head_room = BOM
            .len()
            .saturating_sub(self.seen as usize)
            .min(bytes.len());
        self.head.extend_from_slice(&bytes[..head_room]);
        self.seen += bytes.len() as u64;
        if !self.content {
            self.content = bytes[head_room..].iter().any(|b| !b.is_ascii_whitespace());
        }
        if !self.nul {
            self.nul = bytes.contains(&0);
        }
        if !self.invalid_utf8 {
            self.check_utf8(bytes);
        }
    }

    fn check_utf8(&mut self, mut bytes: &[u8]) {
        // First the character the previous piece began, a byte at a time (at most three).
        while !self.partial.is_empty() {
            let Some((&first, rest)) = bytes.split_first() else {
                return;
            };
            self.partial.push(first);
            bytes = rest;
            match std::str::from_utf8(&self.partial) {
                Ok(_) => self.partial.clear(),
                Err(e) if e.error_len().is_some() => {
                    self.invalid_utf8 = true;
                    return;
                }
                Err(_) => {}
            }
        }
        if let Err(e) = std::str::from_utf8(bytes) {
            match e.error_len() {
                Some(_) => self.invalid_utf8 = true,
                None => self.partial.extend_from_slice(&bytes[e.valid_up_to()..]),
            }
        }
    }

    fn failed(&self) -> bool {
        self.nul || self.invalid_utf8
    }

    fn finish(&self) -> Result<(), FileError> {
        let blank_head = self.head == BOM || self.head.iter().all(|b| b.is_ascii_whitespace());
        if !self.content && blank_head {
            return Err(FileError::Empty);
        }
        if self.nul {
            return Err(FileError::NotText);
        }
        if self.invalid_utf8 || !self.partial.is_empty() {
            return Err(FileError::NotUtf8);
        }
        Ok(())
    }
}

/// Passes the file through unchanged, checking its bytes and handing them on in pieces.
struct Tee<R, S> {
    inner: R,
    seen: u64,
    max_bytes: u64,
    too_large: bool,
    text: TextCheck,
    piece: Vec<u8>,
    piece_bytes: usize,
    store: S,
    storing: bool,
    /// Why reading or storing failed, kept apart from what the CSV reader makes of it.
    failure: Option<io::Error>,
}

impl<R: Read, S: FnMut(Vec<u8>) -> io::Result<()>> Tee<R, S> {
    fn fail(&mut self, error: io::Error) -> io::Error {
        let reported = io::Error::new(error.kind(), error.to_string());
        self.failure.get_or_insert(error);
        reported
    }

    fn flush_piece(&mut self) -> io::Result<()> {
        if self.storing && !self.piece.is_empty() {
            (self.store)(std::mem::take(&mut self.piece))?;
        }
        Ok(())
    }

    fn keep(&mut self, mut bytes: &[u8]) -> io::Result<()> {
        while !bytes.is_empty() {
            if self.piece.capacity() == 0 {
                self.piece.reserve_exact(self.piece_bytes);
            }
            let room = self.piece_bytes - self.piece.len();
            let (now, later) = bytes.split_at(room.min(bytes.len()));
            self.piece.extend_from_slice(now);
            bytes = later;
            if self.piece.len() == self.piece_bytes {
                self.flush_piece()?;
            }
        }
        Ok(())
    }
}

impl<R: Read, S: FnMut(Vec<u8>) -> io::Result<()>> Read for Tee<R, S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.too_large || self.failure.is_some() {
            return Ok(0);
        }
        let n = match self.inner.read(buf) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Err(e),
            Err(e) => return Err(self.fail(e)),
        };
        self.seen += n as u64;
        if self.seen > self.max_bytes {
            // Refused at once, whatever else it holds.
            self.too_large = true;
            self.storing = false;
            return Ok(0);
        }
        let bytes = &buf[..n];
        self.text.feed(bytes);
        if self.text.failed() {
            self.storing = false;
        }
        if self.storing
            && let Err(e) = self.keep(bytes)
        {
            return Err(self.fail(e));
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        max_bytes: 10_000,
        max_rows: 10,
        preview_rows: 2,
    };

    /// Hands out its bytes a few at a time, as a slow file or network would.
    struct Trickle<'a> {
        bytes: &'a [u8],
        step: usize,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.step.min(buf.len()).min(self.bytes.len());
            buf[..n].copy_from_slice(&self.bytes[..n]);
            self.bytes = &self.bytes[n..];
            Ok(n)
        }
    }

    /// The verdict and the pieces stored, reading `bytes` `step` at a time.
    fn check_in(
        bytes: &[u8],
        limits: &Limits,
        step: usize,
        piece_bytes: usize,
    ) -> (Result<Checked, FileError>, Vec<Vec<u8>>) {
        let mut pieces = Vec::new();
        let verdict = check(Trickle { bytes, step }, limits, piece_bytes, |p| {
            pieces.push(p);
            Ok(())
        })
        .unwrap();
        (verdict, pieces)
    }

    fn verdict(bytes: &[u8], limits: &Limits) -> Result<Checked, FileError> {
        // The same verdict however the file arrives.
        let whole = check_in(bytes, limits, usize::MAX, 1024).0;
        for step in [1, 2, 3, 5] {
            assert_eq!(
                check_in(bytes, limits, step, 4).0,
                whole,
                "{step} bytes at a time"
            );
        }
        whole
    }

    fn cells(rows: &[&[&str]]) -> Vec<Vec<String>> {
        rows.iter()
            .map(|r| r.iter().map(|c| (*c).to_owned()).collect())
            .collect()
    }

    #[test]
    fn boms_are_dropped_and_binary_refused() {
        let checked = verdict(b"\xEF\xBB\xBFName,Phone\nA,1\n", &LIMITS).unwrap();
        assert_eq!(checked.headers, vec!["Name", "Phone"]);
        assert_eq!(verdict(b"\x89PNG\0\0", &LIMITS), Err(FileError::NotText));
        assert_eq!(
            verdict(b"Name\xff,Phone\nA,1\n", &LIMITS),
            Err(FileError::NotUtf8)
        );
        // A character cut off by the end of the file.
        assert_eq!(
            verdict(b"Name,Phone\nJos\xc3", &LIMITS),
            Err(FileError::NotUtf8)
        );
        assert_eq!(verdict(b"  \n", &LIMITS), Err(FileError::Empty));
        assert_eq!(verdict(b"\xEF\xBB\xBF\r\n", &LIMITS), Err(FileError::Empty));
        assert_eq!(verdict(b"", &LIMITS), Err(FileError::Empty));
        let small = Limits {
            max_bytes: 5,
            ..LIMITS
        };
        assert_eq!(verdict(b"Name,Phone", &small), Err(FileError::TooLarge(5)));
    }

    #[test]
    fn encoding_outranks_header_and_rows_wherever_it_is_found() {
        let many_rows = [b"Name,Phone\n".to_vec(), b"A,1\n".repeat(20)].concat();
        assert_eq!(
            verdict(&many_rows, &LIMITS),
            Err(FileError::TooManyRows(10))
        );
        let late_nul = [many_rows.clone(), b"\0".to_vec()].concat();
        assert_eq!(verdict(&late_nul, &LIMITS), Err(FileError::NotText));
        let late_latin1 = [many_rows, b"Jos\xe9,2\n".to_vec()].concat();
        assert_eq!(verdict(&late_latin1, &LIMITS), Err(FileError::NotUtf8));
        assert_eq!(
            verdict(b"Phone,phone\n1,\xff\n", &LIMITS),
            Err(FileError::NotUtf8)
        );
    }

    #[test]
    fn headers_must_exist_and_be_distinct() {
        assert_eq!(
            verdict(b"Name, Phone ,\n", &LIMITS).unwrap().headers,
            vec!["Name", "Phone", "Column 3"]
        );
        assert_eq!(verdict(b",,\n", &LIMITS), Err(FileError::NoHeader));
        assert_eq!(
            verdict(b"Name,name\n", &LIMITS),
            Err(FileError::DuplicateHeader("name".into()))
        );
    }

    #[test]
    fn rows_are_counted_previewed_and_numbered() {
        let text = b"Name,Phone\nA,1\nB\n\"C, Jr\",3\n";
        let checked = verdict(text, &LIMITS).unwrap();
        assert_eq!(checked.rows, 3);
        assert_eq!(checked.preview, cells(&[&["A", "1"], &["B"]]));
        let two = Limits {
            max_rows: 2,
            ..LIMITS
        };
        assert_eq!(verdict(text, &two), Err(FileError::TooManyRows(2)));
        let numbered: Vec<(u64, String)> = rows(&text[..], 1)
            .map(|r| r.unwrap())
            .map(|(n, r)| (n, r[0].to_owned()))
            .collect();
        assert_eq!(numbered, vec![(2, "B".into()), (3, "C, Jr".into())]);
        assert_eq!(rows(&text[..], 3).count(), 0);
        assert_eq!(rows(&text[..], 7).count(), 0);
    }

    #[test]
    fn the_stored_pieces_are_the_file_unchanged() {
        let text = "\u{feff}Name,City\r\nZoë,\"Köln\r\nNord\"\r\nA,1\r\n".as_bytes();
        for piece_bytes in [1, 2, 3, 7, 1024] {
            let (verdict, pieces) = check_in(text, &LIMITS, 5, piece_bytes);
            assert_eq!(verdict.unwrap().rows, 2);
            assert!(
                pieces[..pieces.len() - 1]
                    .iter()
                    .all(|p| p.len() == piece_bytes)
            );
            assert_eq!(pieces.concat(), text, "pieces of {piece_bytes}");
        }
        // A refused file is not handed on whole.
        let bad = [b"Name\n".repeat(10), b"\xff".to_vec(), b"A\n".repeat(10)].concat();
        let (verdict, pieces) = check_in(&bad, &LIMITS, 4, 4);
        assert_eq!(verdict, Err(FileError::NotUtf8));
        assert!(pieces.concat().len() < bad.len());
    }

    #[test]
    fn a_store_that_fails_stops_the_check_with_its_error() {
        let text = [b"Name,Phone\n".to_vec(), b"A,1\n".repeat(5)].concat();
        let result = check(&text[..], &LIMITS, 4, |_| {
            Err(io::Error::other("the database went away"))
        });
        assert_eq!(result.unwrap_err().to_string(), "the database went away");
    }

    /// A quoted field with a line break, a multi-byte character and CRLF line ends, each
    /// cut between two pieces wherever the cut falls.
    #[test]
    fn rows_split_anywhere_read_the_same() {
        let text = "\u{feff}Name,Phone,Note\r\n\"Zoë \"\"Z\"\" Ünal\",98123,\"line one\r\nline two, 東京\"\r\nB,2,€\r\n";
        let bytes = text.as_bytes();
        let expected = cells(&[
            &["Zoë \"Z\" Ünal", "98123", "line one\r\nline two, 東京"],
            &["B", "2", "€"],
        ]);
        for step in 1..=bytes.len() {
            let checked = check_in(bytes, &LIMITS, step, step).0.unwrap();
            assert_eq!(checked.preview, expected, "pieces of {step}");
            let read: Vec<Vec<String>> = rows(Trickle { bytes, step }, 0)
                .map(|r| r.unwrap().1.iter().map(str::to_owned).collect())
                .collect();
            assert_eq!(read, expected, "pieces of {step}");
            let resumed: Vec<u64> = rows(Trickle { bytes, step }, 1)
                .map(|r| r.unwrap().0)
                .collect();
            assert_eq!(resumed, vec![2], "pieces of {step}");
        }
    }

    #[test]
    fn a_read_error_ends_the_rows_with_it() {
        struct Failing;
        impl Read for Failing {
            fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
                Err(io::Error::other("gone"))
            }
        }
        let mut read = rows(Failing, 0);
        assert!(read.next().unwrap().is_err());
        assert!(read.next().is_none());
    }
}
