//! The bodies of the fuzz targets. They use only `exist-agent`'s public API and crates the main
//! crate also depends on, so the main crate's smoke test (`tests/fuzz_smoke.rs`) compiles and
//! runs this very file on the seeds: the targets cannot rot while nightly is not at hand.
//!
//! Each body panics only when it finds a bug: a panic inside `exist-agent`, or a broken
//! promise checked here (an error line outside the file, a record time the store cannot read
//! back, a record neither parsed nor reported).

use std::cell::RefCell;
use std::path::{Path, PathBuf};

use exist_agent::config::{
    Aggregate, Config, FileSourceConfig, RecordFormat, SourceConfig, SourceKind,
};
use exist_agent::sources::{FileSource, PullEvent, PullPlan, Record, RecordTime, Source};
use exist_agent::sync::values::{aggregate, decode_time, encode_time, DayRecord};
use exist_api::types::ValueType;

/// The configuration reader: any bytes (read as UTF-8, lossily) give a configuration or an
/// error naming the file and, if it names a line, a line of the file.
pub fn config(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let path = Path::new("/fuzz/config.toml");
    match Config::parse(path, &text) {
        Ok(config) => {
            assert!(config.agent.resync_days >= 2);
            let _ = config.scopes();
        }
        Err(e) => {
            assert_eq!(e.file, path);
            let lines = text.matches('\n').count() + 1;
            if let Some(line) = e.line {
                assert!((1..=lines).contains(&line), "line {line} of {lines}: {e}");
            }
            assert!(!e.problem.is_empty(), "{e}");
            let _ = e.to_string();
        }
    }
}

struct Scratch {
    _dir: tempfile::TempDir,
    path: PathBuf,
    rt: tokio::runtime::Runtime,
}

thread_local! {
    static SCRATCH: RefCell<Option<Scratch>> = const { RefCell::new(None) };
}

/// A file source over any bytes, read as JSON Lines and as CSV: the pull finishes, every record
/// it hands over can be placed on a day in any zone, survives the store, and aggregates without
/// panicking; there are never more records and reports than lines.
pub fn records(data: &[u8]) {
    SCRATCH.with(|scratch| {
        let mut scratch = scratch.borrow_mut();
        let scratch = scratch.get_or_insert_with(|| {
            let dir = tempfile::tempdir().expect("a scratch directory");
            Scratch {
                path: dir.path().join("records"),
                _dir: dir,
                rt: tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("a runtime"),
            }
        });
        std::fs::write(&scratch.path, data).expect("the scratch file is writable");
        let lines = data.iter().filter(|&&b| b == b'\n' || b == b'\r').count() + 1;
        for format in [RecordFormat::JsonLines, RecordFormat::Csv] {
            let (records, reports) = pull(&scratch.rt, &scratch.path, format);
            assert!(
                records.len() + reports <= lines,
                "{} records and {reports} reports from {lines} lines",
                records.len()
            );
            check(&records);
        }
    });
}

fn pull(rt: &tokio::runtime::Runtime, path: &Path, format: RecordFormat) -> (Vec<Record>, usize) {
    let file = FileSourceConfig {
        path: path.to_owned(),
        format,
        id_field: Some("id".into()),
    };
    let config = SourceConfig {
        name: "fuzz".into(),
        date_field: "date".into(),
        tz_offset_field: Some("tzOffset".into()),
        every: None,
        stale_after: None,
        kind: SourceKind::File(file.clone()),
    };
    let source = FileSource::new(&config, &file);
    let (mut records, mut reports) = (Vec::new(), 0);
    let mut sink = |event: PullEvent| {
        match event {
            PullEvent::Records(r) => records.extend(r),
            PullEvent::Malformed(_) => reports += 1,
            PullEvent::Total(_) | PullEvent::WindowDone { .. } | PullEvent::Content { .. } => {}
        }
        Ok(())
    };
    rt.block_on(source.pull(&PullPlan::Incremental { since: None }, &mut sink))
        .expect("a readable file always gives a finished pull");
    (records, reports)
}

/// Epoch seconds before 0000-01-01 and offsets with seconds (local mean time) are known not to
/// survive the store (ignored tests in `tests/properties.rs`); the fuzzer looks for new bugs.
fn known_not_to_survive(time: &RecordTime) -> bool {
    match time {
        RecordTime::Instant(at) => {
            at.offset().local_minus_utc() % 60 != 0 || chrono::Datelike::year(&at.naive_utc()) < 0
        }
        _ => false,
    }
}

fn check(records: &[Record]) {
    let midnight = chrono::NaiveTime::MIN;
    let five = chrono::NaiveTime::from_hms_opt(5, 0, 0).expect("a time");
    for record in records {
        for tz in [
            chrono_tz::UTC,
            chrono_tz::Pacific::Kiritimati,
            chrono_tz::Etc::GMTPlus12,
        ] {
            record.time.day(tz, midnight);
            record.time.day(tz, five);
        }
        if !known_not_to_survive(&record.time) {
            assert_eq!(
                decode_time(&encode_time(&record.time)),
                Some(record.time),
                "{record:?}"
            );
        }
    }
    let day: Vec<DayRecord> = records
        .iter()
        .map(|r| DayRecord {
            time: r.time,
            fields: r.fields.clone(),
        })
        .collect();
    for a in [
        Aggregate::Sum,
        Aggregate::Count,
        Aggregate::Max,
        Aggregate::Min,
        Aggregate::Mean,
        Aggregate::Last,
    ] {
        for vt in [
            ValueType::Integer,
            ValueType::Float,
            ValueType::Percentage,
            ValueType::Scale,
        ] {
            if let Ok(Some(value)) = aggregate(&day, a, Some("n"), vt, chrono_tz::Europe::Berlin) {
                let _ = vt.check(&value);
            }
        }
        let _ = aggregate(
            &day,
            Aggregate::Last,
            Some("n"),
            ValueType::String,
            chrono_tz::UTC,
        );
    }
}
