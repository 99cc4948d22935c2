//! Reading an uploaded CSV: encoding, header, preview and a structural check of every row
//! before anything is written, so a bad file changes nothing.

use csv::{ReaderBuilder, StringRecord};

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
    TooLarge(usize),
    #[error("the file has more than {0} rows")]
    TooManyRows(u64),
    #[error("row {row}: {message}")]
    Malformed { row: u64, message: String },
}

/// The file's text without a byte-order mark; refuses binary and non-UTF-8 files.
pub fn decode(bytes: &[u8], max_bytes: usize) -> Result<&str, FileError> {
    if bytes.len() > max_bytes {
        return Err(FileError::TooLarge(max_bytes));
    }
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(FileError::Empty);
    }
    if bytes.contains(&0) {
        return Err(FileError::NotText);
    }
    std::str::from_utf8(bytes).map_err(|_| FileError::NotUtf8)
}

fn reader(text: &str) -> csv::Reader<&[u8]> {
    ReaderBuilder::new()
        .flexible(true)
        .has_headers(true)
        .from_reader(text.as_bytes())
}

/// Column names, trimmed; blank names become `Column N`.
pub fn headers(text: &str) -> Result<Vec<String>, FileError> {
    let mut reader = reader(text);
    let record = reader.headers().map_err(|_| FileError::NoHeader)?;
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

/// The first `n` data rows.
pub fn preview(text: &str, n: usize) -> Vec<Vec<String>> {
    reader(text)
        .records()
        .take(n)
        .filter_map(Result::ok)
        .map(|r| r.iter().map(str::to_owned).collect())
        .collect()
}

/// Reads every row once; returns how many data rows there are.
pub fn check(text: &str, max_rows: u64) -> Result<u64, FileError> {
    let mut rows = 0u64;
    let mut record = StringRecord::new();
    let mut reader = reader(text);
    loop {
        match reader.read_record(&mut record) {
            Ok(true) => {
                rows += 1;
                if rows > max_rows {
                    return Err(FileError::TooManyRows(max_rows));
                }
            }
            Ok(false) => return Ok(rows),
            Err(e) => {
                return Err(FileError::Malformed {
                    row: rows + 1,
                    message: e.to_string(),
                });
            }
        }
    }
}

/// Data rows numbered from 1, starting after `skip` rows.
pub fn rows(text: &str, skip: u64) -> impl Iterator<Item = (u64, StringRecord)> + '_ {
    reader(text)
        .into_records()
        .enumerate()
        .skip(skip as usize)
        .filter_map(|(i, r)| r.ok().map(|r| (i as u64 + 1, r)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boms_are_dropped_and_binary_refused() {
        assert_eq!(
            decode(b"\xEF\xBB\xBFName,Phone\n", 100).unwrap(),
            "Name,Phone\n"
        );
        assert_eq!(decode(b"\x89PNG\0\0", 100), Err(FileError::NotText));
        assert_eq!(decode(b"Name\xff,Phone", 100), Err(FileError::NotUtf8));
        assert_eq!(decode(b"  \n", 100), Err(FileError::Empty));
        assert_eq!(decode(b"Name,Phone", 5), Err(FileError::TooLarge(5)));
    }

    #[test]
    fn headers_must_exist_and_be_distinct() {
        assert_eq!(
            headers("Name, Phone ,\n").unwrap(),
            vec!["Name", "Phone", "Column 3"]
        );
        assert_eq!(headers(",,\n"), Err(FileError::NoHeader));
        assert_eq!(
            headers("Name,name\n"),
            Err(FileError::DuplicateHeader("name".into()))
        );
    }

    #[test]
    fn rows_are_counted_and_numbered() {
        let text = "Name,Phone\nA,1\nB\n\"C, Jr\",3\n";
        assert_eq!(check(text, 10).unwrap(), 3);
        assert_eq!(check(text, 2), Err(FileError::TooManyRows(2)));
        let numbered: Vec<(u64, String)> =
            rows(text, 1).map(|(n, r)| (n, r[0].to_owned())).collect();
        assert_eq!(numbered, vec![(2, "B".into()), (3, "C, Jr".into())]);
        assert_eq!(preview(text, 1), vec![vec!["A".to_owned(), "1".to_owned()]]);
    }
}
