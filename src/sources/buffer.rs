//! Records out of a whole JSON Lines or CSV input (a file, a command's output).
//!
//! Parsing runs on a blocking thread and hands chunks to the async side through a small bounded
//! channel, so a million-line file neither stalls the runtime nor sits in memory: a file is read
//! as a stream, and only the fields the configuration reads are built.

use std::io::{BufRead, Read};

use tokio::sync::mpsc;

use super::content::{ContentFingerprint, Fingerprinting};
use super::record::{Malformed, Origin, Record, RecordParser, Unparsed};
use super::{emit, Sink, SourceError};
use crate::config::RecordFormat;

/// Records per [`super::PullEvent::Records`] chunk: large enough to make the sink's per-call cost
/// negligible, small enough to keep memory flat.
const CHUNK: usize = 4096;

/// What the parser hands over.
#[derive(Debug)]
enum Parsed {
    Records(Vec<Record>),
    Malformed(Malformed),
    /// Reading the input failed midway; nothing after it was parsed.
    ReadFailed(std::io::Error),
    /// The whole input was read: its fingerprint, and whether it is the one the caller knew
    /// (then nothing was parsed).
    Content(ContentFingerprint, bool),
}

/// What a whole source's records are read from.
pub(crate) enum Input {
    /// Bytes already in memory (a command's output).
    Bytes(Vec<u8>),
    /// An open file, read as a stream, so a large file never sits in memory.
    Stream {
        /// The file, at its start.
        file: std::fs::File,
        /// Its path, for errors.
        path: std::path::PathBuf,
    },
}

/// How many records and malformed records were handed over.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Counts {
    pub records: usize,
    pub malformed: usize,
}

/// Parses `input` and hands records and malformed-record reports to `sink` as they come, then
/// the fingerprint of what was parsed ([`super::PullEvent::Content`]). When the input's
/// fingerprint is `known` (the content last reduced), nothing is parsed: only that event comes.
pub(crate) async fn deliver(
    source_name: &str,
    input: Input,
    format: RecordFormat,
    parser: RecordParser,
    known: Option<ContentFingerprint>,
    sink: &mut Sink<'_>,
) -> Result<Counts, SourceError> {
    let (tx, mut rx) = mpsc::channel(4);
    let name = source_name.to_owned();
    let path = match &input {
        Input::Stream { path, .. } => Some(path.clone()),
        Input::Bytes(_) => None,
    };
    // When the sink fails, `rx` is dropped: the next send fails and the parser stops.
    let parsing = tokio::task::spawn_blocking(move || {
        let mut out = |parsed| tx.blocking_send(parsed).is_ok();
        let parsed = match (input, format) {
            (Input::Stream { mut file, .. }, format) => {
                // A first pass only fingerprints (at memory speed), so that an unchanged file
                // is never parsed; the parse fingerprints again exactly the bytes it reads.
                match ContentFingerprint::of_file(&mut file) {
                    Ok(fingerprint) if Some(fingerprint) == known => {
                        out(Parsed::Content(fingerprint, true));
                        return;
                    }
                    Ok(_) => {}
                    Err(e) => {
                        out(Parsed::ReadFailed(e));
                        return;
                    }
                }
                let mut reader = Fingerprinting::new(file);
                let whole = match format {
                    RecordFormat::JsonLines => parse_json_lines(
                        std::io::BufReader::with_capacity(1 << 16, &mut reader),
                        &parser,
                        &name,
                        &mut out,
                    ),
                    RecordFormat::Csv => parse_csv(&mut reader, &parser, &name, &mut out),
                };
                whole.then(|| reader.fingerprint())
            }
            (Input::Bytes(bytes), format) => {
                let fingerprint = ContentFingerprint::of_bytes(&bytes);
                if Some(fingerprint) == known {
                    out(Parsed::Content(fingerprint, true));
                    return;
                }
                let done = match format {
                    RecordFormat::JsonLines => {
                        parse_json_lines(&bytes[..], &parser, &name, &mut out)
                    }
                    RecordFormat::Csv => parse_csv(&bytes[..], &parser, &name, &mut out),
                };
                done.then_some(fingerprint)
            }
        };
        if let Some(fingerprint) = parsed {
            out(Parsed::Content(fingerprint, false));
        }
    });
    let mut counts = Counts::default();
    while let Some(parsed) = rx.recv().await {
        let event = match parsed {
            Parsed::Records(records) => {
                counts.records += records.len();
                super::PullEvent::Records(records)
            }
            Parsed::Malformed(malformed) => {
                counts.malformed += 1;
                super::PullEvent::Malformed(malformed)
            }
            Parsed::Content(fingerprint, unchanged) => super::PullEvent::Content {
                fingerprint,
                unchanged,
            },
            Parsed::ReadFailed(source) => {
                return Err(SourceError::Io {
                    source_name: source_name.to_owned(),
                    path: path.unwrap_or_default(),
                    source,
                })
            }
        };
        emit(source_name, sink, event)?;
    }
    if let Err(e) = parsing.await {
        if e.is_panic() {
            std::panic::resume_unwind(e.into_panic());
        }
    }
    Ok(counts)
}

/// Collects records into chunks and reports malformed ones; `out` returns false to stop.
struct Batcher<'a> {
    source: &'a str,
    chunk: Vec<Record>,
    out: &'a mut dyn FnMut(Parsed) -> bool,
}

impl Batcher<'_> {
    /// Adds one parse result; false when the receiver is gone.
    fn push(&mut self, result: Result<Record, Unparsed>) -> bool {
        match result {
            Ok(record) => {
                self.chunk.push(record);
                self.chunk.len() < CHUNK || self.flush()
            }
            Err(Unparsed { location, reason }) => self.malformed(location, reason),
        }
    }

    fn malformed(&mut self, location: String, reason: String) -> bool {
        // Keep the order of the input: records before this report go first.
        self.flush()
            && (self.out)(Parsed::Malformed(Malformed {
                source: self.source.to_owned(),
                location,
                reason,
            }))
    }

    fn flush(&mut self) -> bool {
        self.chunk.is_empty()
            || (self.out)(Parsed::Records(std::mem::replace(
                &mut self.chunk,
                Vec::with_capacity(CHUNK),
            )))
    }
}

/// Parses JSON Lines; true when the whole input was read (the receiver stayed, no read failed).
fn parse_json_lines(
    mut reader: impl BufRead,
    parser: &RecordParser,
    source: &str,
    out: &mut dyn FnMut(Parsed) -> bool,
) -> bool {
    let mut batch = Batcher {
        source,
        chunk: Vec::with_capacity(CHUNK),
        out,
    };
    let mut text = Vec::new();
    for line in 1u64.. {
        text.clear();
        match reader.read_until(b'\n', &mut text) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => return read_failed(&mut batch, e),
        }
        let mut content = text.trim_ascii();
        if line == 1 {
            content = content.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(content);
        }
        if content.is_empty() {
            continue;
        }
        if !batch.push(parser.parse_json(content, Origin::Line(line))) {
            return false;
        }
    }
    batch.flush()
}

/// Parses CSV as a stream; true when the whole input was read (the receiver stayed, no read
/// failed). Only the columns the configuration reads are built.
fn parse_csv(
    input: impl Read,
    parser: &RecordParser,
    source: &str,
    out: &mut dyn FnMut(Parsed) -> bool,
) -> bool {
    // Flexible: field counts are checked here, so that whitespace-only lines can be skipped.
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(Retaining::new(input));
    let mut batch = Batcher {
        source,
        chunk: Vec::with_capacity(CHUNK),
        out,
    };
    let headers = match reader.headers() {
        Ok(headers) => headers.clone(),
        Err(e) => {
            return match e.kind() {
                csv::ErrorKind::Io(io) => read_failed(&mut batch, copied(io)),
                _ => batch.malformed("line 1".to_owned(), format!("unreadable header row: {e}")),
            };
        }
    };
    let columns = parser.csv_columns(&headers);
    let mut row = csv::StringRecord::new();
    loop {
        let going = match reader.read_record(&mut row) {
            Ok(false) => break,
            Ok(true) if row.iter().all(str::is_empty) => continue,
            Ok(true) => {
                let line = row.position().map_or(0, |p| reader.get_ref().line_of(p));
                if let Some(p) = row.position() {
                    reader.get_mut().forget_before(p.byte());
                }
                if row.len() == headers.len() {
                    let fields = parser.csv_fields(&columns, &row);
                    batch.push(parser.parse(fields, None, Origin::Line(line)))
                } else {
                    let reason = format!(
                        "{} fields where the header row has {}",
                        row.len(),
                        headers.len()
                    );
                    batch.malformed(format!("line {line}"), reason)
                }
            }
            Err(e) => {
                let line = e.position().map_or(0, |p| reader.get_ref().line_of(p));
                let reason = match e.kind() {
                    csv::ErrorKind::Io(io) => return read_failed(&mut batch, copied(io)),
                    csv::ErrorKind::Utf8 { .. } => "not valid UTF-8".to_owned(),
                    _ => e.to_string(),
                };
                batch.malformed(format!("line {line}"), reason)
            }
        };
        if !going {
            return false;
        }
    }
    batch.flush()
}
/// Reports a read that failed midway; always false (the input was not read whole).
fn read_failed(batch: &mut Batcher<'_>, e: std::io::Error) -> bool {
    batch.flush();
    (batch.out)(Parsed::ReadFailed(e));
    false
}

/// A read error the CSV reader holds, as an error of its own.
fn copied(e: &std::io::Error) -> std::io::Error {
    std::io::Error::new(e.kind(), e.to_string())
}

/// A reader that keeps the bytes read since the row being parsed began, so that the row's line
/// can be told exactly: the CSV reader's position points at the blank lines before a row.
struct Retaining<R> {
    inner: R,
    /// The bytes from offset `start` of the input on.
    kept: Vec<u8>,
    start: u64,
}

/// Bytes of rows already told are dropped in blocks of at least this, not row by row.
const RETAIN_BLOCK: usize = 1 << 16;

impl<R: Read> Retaining<R> {
    fn new(inner: R) -> Self {
        Self {
            inner,
            kept: Vec::new(),
            start: 0,
        }
    }

    /// The line the row at `position` is on.
    fn line_of(&self, position: &csv::Position) -> u64 {
        let from = position
            .byte()
            .checked_sub(self.start)
            .and_then(|at| usize::try_from(at).ok())
            .unwrap_or(usize::MAX);
        let blank = self
            .kept
            .get(from..)
            .unwrap_or_default()
            .iter()
            .take_while(|&&b| b == b'\r' || b == b'\n')
            .filter(|&&b| b == b'\n')
            .count();
        position.line() + blank as u64
    }

    /// Forgets the bytes before offset `byte` (a row already told).
    fn forget_before(&mut self, byte: u64) {
        let done = usize::try_from(byte.saturating_sub(self.start)).unwrap_or(usize::MAX);
        if done >= RETAIN_BLOCK && done <= self.kept.len() {
            self.kept.drain(..done);
            self.start = byte;
        }
    }
}

impl<R: Read> Read for Retaining<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.kept.extend_from_slice(&buf[..n]);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(bytes: &[u8], format: RecordFormat) -> (Vec<Record>, Vec<Malformed>) {
        let parser = RecordParser::new("date", None, Some("id"), None);
        let (mut records, mut malformed) = (Vec::new(), Vec::new());
        let mut out = |parsed| {
            match parsed {
                Parsed::Records(r) => records.extend(r),
                Parsed::Malformed(m) => malformed.push(m),
                Parsed::ReadFailed(e) => panic!("reading from memory failed: {e}"),
                Parsed::Content(..) => {}
            }
            true
        };
        let whole = match format {
            RecordFormat::JsonLines => parse_json_lines(bytes, &parser, "s", &mut out),
            RecordFormat::Csv => parse_csv(bytes, &parser, "s", &mut out),
        };
        assert!(whole, "the whole input was read");
        (records, malformed)
    }

    fn locations(malformed: &[Malformed]) -> Vec<(&str, &str)> {
        malformed
            .iter()
            .map(|m| (m.location.as_str(), m.reason.as_str()))
            .collect()
    }

    #[test]
    fn json_lines_skip_blank_lines_and_report_bad_ones_by_line() {
        let text = b"\xEF\xBB\xBF{\"date\":\"2026-11-20\",\"n\":1}\r\n\n   \n[1,2]\n{\"date\":\n{\"id\":\"x\",\"date\":\"nope\"}\n{\"date\":\"2026-11-21\"}";
        let (records, malformed) = parse(text, RecordFormat::JsonLines);
        assert_eq!(records.len(), 2);
        assert_eq!(records[0].fields["n"], 1);
        let found = locations(&malformed);
        assert_eq!(found[0], ("line 4", "not a JSON object"));
        assert_eq!(found[1].0, "line 5");
        assert!(
            found[1].1.starts_with("not valid JSON (EOF while parsing"),
            "{}",
            found[1].1
        );
        assert_eq!(found[2].0, "line 6 (id x)");
    }

    #[test]
    fn csv_rows_report_their_line() {
        let text =
            b"id, date ,n\r\n1,2026-11-20,5\r\n\r\n2,2026-11-21\n3,bad,7\n  \n\n\n4,2026-11-22,8\n";
        let (records, malformed) = parse(text, RecordFormat::Csv);
        assert_eq!(records.len(), 2);
        assert_eq!(records[0].id.as_deref(), Some("1"));
        assert_eq!(records[0].fields["n"], 5);
        assert_eq!(records[1].fields["n"], 8);
        assert_eq!(records[1].id.as_deref(), Some("4"));
        assert_eq!(
            locations(&malformed),
            vec![
                ("line 4", "2 fields where the header row has 3"),
                ("line 5 (id 3)", malformed[1].reason.as_str())
            ]
        );
    }

    #[test]
    fn csv_lines_stay_exact_far_into_a_stream() {
        // Well past the bytes kept for telling lines (RETAIN_BLOCK), with blank lines between.
        let mut text = String::from("id,date,n\n");
        let mut line = 1;
        for i in 0..20_000 {
            if i % 997 == 0 {
                text.push_str("\n\r\n");
                line += 2;
            }
            text.push_str(&format!("{i},2026-11-20,{i}\n"));
            line += 1;
        }
        text.push_str("last,not-a-date,1\n");
        line += 1;
        assert!(text.len() > 4 * RETAIN_BLOCK);
        let (records, malformed) = parse(text.as_bytes(), RecordFormat::Csv);
        assert_eq!(records.len(), 20_000);
        assert_eq!(records[19_999].fields["n"], 19_999);
        assert_eq!(
            records[19_999].location(),
            format!("line {} (id 19999)", line - 1)
        );
        assert_eq!(locations(&malformed)[0].0, format!("line {line} (id last)"));
    }

    #[test]
    fn a_read_that_fails_midway_is_reported_not_taken_as_the_end() {
        /// Gives `good`, then fails.
        struct Failing(std::io::Cursor<Vec<u8>>);
        impl Read for Failing {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                match self.0.read(buf)? {
                    0 => Err(std::io::Error::other("the disk went away")),
                    n => Ok(n),
                }
            }
        }
        let good = b"id,date,n\n1,2026-11-20,5\n2,2026-11-21,6\n".to_vec();
        let parser = RecordParser::new("date", None, Some("id"), None);
        let (mut records, mut failed) = (0, None);
        let whole = parse_csv(
            Failing(std::io::Cursor::new(good)),
            &parser,
            "s",
            &mut |p| {
                match p {
                    Parsed::Records(r) => records += r.len(),
                    Parsed::ReadFailed(e) => failed = Some(e.to_string()),
                    _ => {}
                }
                true
            },
        );
        assert!(!whole);
        assert_eq!(
            records, 2,
            "what was read before the failure is handed over"
        );
        assert_eq!(failed.as_deref(), Some("the disk went away"));
    }

    #[test]
    fn chunks_keep_their_size_and_order() {
        let text: String = (0..CHUNK + 10)
            .map(|i| format!("{{\"id\":\"{i}\",\"date\":\"2026-11-20\"}}\n"))
            .collect();
        let parser = RecordParser::new("date", None, Some("id"), None);
        let mut sizes = Vec::new();
        parse_json_lines(text.as_bytes(), &parser, "s", &mut |parsed| {
            if let Parsed::Records(r) = parsed {
                sizes.push(r.len());
            }
            true
        });
        assert_eq!(sizes, vec![CHUNK, 10]);
    }
}
