//! Configuration errors that point at the file, the line and the key, and say what to write.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// A configuration that cannot be used, with where and how to fix it.
#[derive(Debug, thiserror::Error)]
pub struct ConfigError {
    /// The configuration file.
    pub file: PathBuf,
    /// The 1-based line of the offending key, when it is in the file.
    pub line: Option<usize>,
    /// The key, written as a path (`source[2].page_limit`).
    pub key: String,
    /// What is wrong.
    pub problem: String,
    /// What to write instead.
    pub fix: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        write!(f, ": ")?;
        if !self.key.is_empty() {
            write!(f, "key `{}`: ", self.key)?;
        }
        write!(f, "{}", self.problem)?;
        if !self.fix.is_empty() {
            crate::error::write_fix(f, &self.fix)?;
        }
        Ok(())
    }
}

/// A configuration error is always the user's to fix; its message already carries the fix.
impl crate::error::Classify for ConfigError {
    fn kind(&self) -> crate::error::ErrorKind {
        crate::error::ErrorKind::Config
    }
}

/// One step of a key path: a table key or an index into an array of tables.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Seg<'a> {
    Key(&'a str),
    Index(usize),
}

/// Finds where keys are in the file, so that errors found after parsing can name a line.
pub(crate) struct Locator<'a> {
    file: &'a Path,
    text: &'a str,
    doc: Option<toml_edit::Document<&'a str>>,
}

impl<'a> Locator<'a> {
    pub fn new(file: &'a Path, text: &'a str) -> Self {
        let doc = toml_edit::Document::parse(text).ok();
        Self { file, text, doc }
    }

    /// An error about the key at `path` (its line when found, else its table's).
    pub fn error(
        &self,
        path: &[Seg<'_>],
        problem: impl Into<String>,
        fix: impl Into<String>,
    ) -> ConfigError {
        ConfigError {
            file: self.file.to_owned(),
            line: self.span_of(path).map(|s| self.line_of(s.start)),
            key: display_path(path),
            problem: problem.into(),
            fix: fix.into(),
        }
    }

    /// An error at a byte span of the file, e.g. from the TOML parser.
    pub fn error_at(
        &self,
        span: Option<Range<usize>>,
        key: String,
        problem: String,
        fix: String,
    ) -> ConfigError {
        ConfigError {
            file: self.file.to_owned(),
            line: span.map(|s| self.line_of(s.start)),
            key,
            problem,
            fix,
        }
    }

    /// The key path written at a byte offset: the key on that line inside its table header.
    pub fn key_at(&self, offset: usize) -> String {
        let before = &self.text[..offset.min(self.text.len())];
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let line_end = self.text[line_start..]
            .find('\n')
            .map_or(self.text.len(), |i| line_start + i);
        let line = self.text[line_start..line_end].trim();
        let key = line.split('=').next().unwrap_or("").trim();
        let table = before[..line_start]
            .lines()
            .rev()
            .map(str::trim)
            .find(|l| l.starts_with('['))
            .map(|l| l.trim_matches(|c| c == '[' || c == ']').trim().to_owned());
        match (table, key.starts_with('[')) {
            (_, true) => key.trim_matches(|c| c == '[' || c == ']').to_owned(),
            (Some(t), false) if !key.is_empty() => format!("{t}.{key}"),
            (_, false) => key.to_owned(),
        }
    }

    fn line_of(&self, offset: usize) -> usize {
        self.text[..offset.min(self.text.len())]
            .matches('\n')
            .count()
            + 1
    }

    /// The value at `path` (a table becomes an inline table), spans kept, to deserialize a part
    /// of the file on its own.
    pub fn value_at(&self, path: &[Seg<'_>]) -> Option<toml_edit::Value> {
        let mut item: &toml_edit::Item = self.doc.as_ref()?.as_item();
        for seg in path {
            item = match *seg {
                Seg::Key(k) => item.as_table_like()?.get(k)?,
                Seg::Index(i) => item.get(i)?,
            };
        }
        match item.clone() {
            toml_edit::Item::Table(t) => Some(toml_edit::Value::InlineTable(t.into_inline_table())),
            toml_edit::Item::Value(v) => Some(v),
            _ => None,
        }
    }

    fn span_of(&self, path: &[Seg<'_>]) -> Option<Range<usize>> {
        let doc = self.doc.as_ref()?;
        let mut item: &toml_edit::Item = doc.as_item();
        let mut best = None;
        // A key that is not there (a missing one is what the error is about) points at the
        // table it belongs in.
        for seg in path {
            match *seg {
                Seg::Key(k) => {
                    let Some((key, value)) = item.as_table_like().and_then(|t| t.get_key_value(k))
                    else {
                        return best;
                    };
                    best = key.span().or(best);
                    item = value;
                }
                Seg::Index(i) => {
                    let Some(table) = item.as_array_of_tables().and_then(|a| a.get(i)) else {
                        return best;
                    };
                    best = table.span().or(best);
                    item = &item[i];
                }
            }
        }
        best
    }
}

fn display_path(path: &[Seg<'_>]) -> String {
    let mut out = String::new();
    for seg in path {
        match seg {
            Seg::Key(k) if out.is_empty() => out.push_str(k),
            Seg::Key(k) => {
                out.push('.');
                out.push_str(k);
            }
            Seg::Index(i) => out.push_str(&format!("[{}]", i + 1)),
        }
    }
    out
}
