//! The `file` source: a CSV or JSON Lines file, read whole each run.

use std::path::PathBuf;

use chrono::Utc;

use super::buffer;
use super::record::RecordParser;
use super::{
    emit, ContentFingerprint, PullEvent, PullPlan, PullSummary, Sink, Source, SourceError,
};
use crate::config::{FileSourceConfig, RecordFormat, SourceConfig};

/// A CSV (with a header row) or JSON Lines file. A file holds its whole history, so every plan
/// reads all of it; de-duplication by id and the engine's per-day totals make that harmless.
#[derive(Debug)]
pub struct FileSource {
    name: String,
    path: PathBuf,
    format: RecordFormat,
    parser: RecordParser,
    /// The fingerprint of the content last reduced, if the engine's values still stand for it.
    known: Option<ContentFingerprint>,
}

impl FileSource {
    /// The same source, its records keeping only the fields `reads` names (beyond its own).
    pub fn reading(self, reads: &super::Projection) -> Self {
        Self {
            parser: self.parser.reading(reads),
            ..self
        }
    }

    /// The source a `kind = "file"` `[[source]]` describes.
    pub fn new(source: &SourceConfig, file: &FileSourceConfig) -> Self {
        Self {
            name: source.name.clone(),
            path: file.path.clone(),
            format: file.format,
            parser: RecordParser::new(
                &source.date_field,
                source.tz_offset_field.as_deref(),
                file.id_field.as_deref(),
                None,
            ),
            known: None,
        }
    }

    /// The same source, told the fingerprint of the content it gave last time: the same
    /// content again is not parsed (see [`PullEvent::Content`]).
    pub fn knowing_content(self, known: Option<ContentFingerprint>) -> Self {
        Self { known, ..self }
    }
}

impl Source for FileSource {
    fn name(&self) -> &str {
        &self.name
    }

    /// Reads the whole file (the plan does not matter), hands over its records, then a
    /// [`PullEvent::WindowDone`] with the time the read began.
    async fn pull(
        &self,
        _plan: &PullPlan,
        sink: &mut Sink<'_>,
    ) -> Result<PullSummary, SourceError> {
        let started = Utc::now();
        let io_error = |source| SourceError::Io {
            source_name: self.name.clone(),
            path: self.path.clone(),
            source,
        };
        // Fingerprinted first, without holding it: an unchanged file is not parsed (nor, for
        // CSV, read into memory) again.
        let input = buffer::Input::Stream {
            file: std::fs::File::open(&self.path).map_err(io_error)?,
            path: self.path.clone(),
        };
        let counts = buffer::deliver(
            &self.name,
            input,
            self.format,
            self.parser.clone(),
            self.known,
            sink,
        )
        .await?;
        emit(&self.name, sink, PullEvent::WindowDone { cursor: started })?;
        Ok(PullSummary {
            records: counts.records,
            malformed: counts.malformed,
            pages: 1,
            requests: 0,
        })
    }
}
