//! The `command` source: a program whose standard output is JSON Lines or CSV.

use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use chrono::Utc;
use tokio::io::{AsyncRead, AsyncReadExt};

use super::buffer;
use super::record::RecordParser;
use super::{
    emit, excerpt, ContentFingerprint, PullEvent, PullPlan, PullSummary, Sink, Source, SourceError,
};
use crate::config::{CommandSourceConfig, RecordFormat, SourceConfig};

/// How much of a command's standard error goes into a message.
const STDERR_EXCERPT: usize = 500;

/// A program run without a shell (`argv[0]` with the other arguments), with a timeout.
#[derive(Debug)]
pub struct CommandSource {
    name: String,
    argv: Vec<String>,
    format: RecordFormat,
    timeout: Duration,
    parser: RecordParser,
    /// The fingerprint of the output last reduced, if the engine's values still stand for it.
    known: Option<ContentFingerprint>,
}

/// What a finished command left behind.
pub(super) struct Finished {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl CommandSource {
    /// The same source, its records keeping only the fields `reads` names (beyond its own).
    pub fn reading(self, reads: &super::Projection) -> Self {
        Self {
            parser: self.parser.reading(reads),
            ..self
        }
    }

    /// The source a `kind = "command"` `[[source]]` describes.
    pub fn new(source: &SourceConfig, command: &CommandSourceConfig) -> Self {
        Self {
            name: source.name.clone(),
            argv: command.argv.clone(),
            format: command.format,
            timeout: command.timeout,
            parser: RecordParser::new(
                &source.date_field,
                source.tz_offset_field.as_deref(),
                command.id_field.as_deref(),
                None,
            ),
            known: None,
        }
    }

    /// The same source, told the fingerprint of the output it gave last time: the same output
    /// again is not parsed (see [`PullEvent::Content`]).
    pub fn knowing_content(self, known: Option<ContentFingerprint>) -> Self {
        Self { known, ..self }
    }

    /// Runs the command to its end, within the source's timeout.
    async fn run(&self) -> Result<Finished, SourceError> {
        let program = self.argv.first().map_or("", String::as_str);
        run_program(&self.argv, self.timeout)
            .await
            .map_err(|e| match e {
                RunError::Start(source) | RunError::Read(source) => SourceError::Spawn {
                    source_name: self.name.clone(),
                    program: program.to_owned(),
                    source,
                },
                RunError::TimedOut => SourceError::Timeout {
                    source_name: self.name.clone(),
                    after: self.timeout,
                },
            })
    }
}

/// Why a program run by [`run_program`] left nothing to look at.
#[derive(Debug)]
pub(super) enum RunError {
    /// It could not be started.
    Start(std::io::Error),
    /// Its outputs could not be read, or its end awaited.
    Read(std::io::Error),
    /// It was still running when the timeout passed, and was killed.
    TimedOut,
}

/// Runs `argv` (no shell) with nothing on its standard input, reading both outputs at once (a
/// child blocked on a full stderr pipe would never finish its stdout), and kills it when
/// `timeout` passes. Used by the `command` source and by an HTTP source's `auth.command`.
pub(super) async fn run_program(argv: &[String], timeout: Duration) -> Result<Finished, RunError> {
    let program = argv.first().map_or("", String::as_str);
    let mut child = tokio::process::Command::new(program)
        .args(argv.iter().skip(1))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(RunError::Start)?;
    let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
        unreachable!("both outputs are piped");
    };
    let finish = async {
        let (stdout, stderr) = tokio::try_join!(read_all(stdout), read_all(stderr))?;
        let status = child.wait().await?;
        Ok::<_, std::io::Error>(Finished {
            status,
            stdout,
            stderr,
        })
    };
    match tokio::time::timeout(timeout, finish).await {
        Ok(finished) => finished.map_err(RunError::Read),
        Err(_elapsed) => {
            // Errors here mean the child is already gone, which is what we want.
            let _ = child.kill().await;
            Err(RunError::TimedOut)
        }
    }
}

async fn read_all(mut pipe: impl AsyncRead + Unpin) -> std::io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    pipe.read_to_end(&mut bytes).await?;
    Ok(bytes)
}

impl Source for CommandSource {
    fn name(&self) -> &str {
        &self.name
    }

    /// Runs the command (the plan does not matter: the command decides what it prints), hands
    /// over its records, then a [`PullEvent::WindowDone`] with the time it was started.
    /// A non-zero exit is an error quoting its standard error; standard error output with a
    /// zero exit is logged as a warning and the output is used.
    async fn pull(
        &self,
        _plan: &PullPlan,
        sink: &mut Sink<'_>,
    ) -> Result<PullSummary, SourceError> {
        let started = Utc::now();
        let finished = self.run().await?;
        let stderr = excerpt(&String::from_utf8_lossy(&finished.stderr), STDERR_EXCERPT);
        if !finished.status.success() {
            return Err(SourceError::Command {
                source_name: self.name.clone(),
                status: finished.status.to_string(),
                stderr,
            });
        }
        if !stderr.is_empty() {
            tracing::warn!(source = %self.name, %stderr, "the source's command wrote to standard error; its output is used anyway");
        }
        let counts = buffer::deliver(
            &self.name,
            buffer::Input::Bytes(finished.stdout),
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
