//! What `init` asked, as data, and the configuration file it makes: pure, so that every answer
//! can be checked by the configuration's own checks before the next question.

use std::fmt::Write;
use std::path::Path;

use crate::config::{Config, ConfigError};

/// Everything `init` asked.
#[derive(Debug, Clone, Default)]
pub struct Setup {
    /// Exist's host, when it is not exist.io (e.g. a local sandbox).
    pub base_url: Option<String>,
    /// The app's client id.
    pub client_id: String,
    /// Where the client secret lives.
    pub secret: SecretAnswer,
    /// The redirect URI registered for the app.
    pub redirect_uri: String,
    /// The sources, in order.
    pub sources: Vec<SourceAnswer>,
    /// The attributes, in order.
    pub attributes: Vec<AttributeAnswer>,
    /// `[agent] on_failure`.
    pub on_failure: Option<Vec<String>>,
    /// `[agent] ping_url`.
    pub ping_url: Option<String>,
}

/// Where the client secret lives.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum SecretAnswer {
    /// In this environment variable.
    Env(String),
    /// In the file itself (which is then written readable by its owner only).
    Inline(String),
    /// Nowhere: a personal token will be given to `login --token`.
    #[default]
    None,
}

/// One `[[source]]`.
#[derive(Debug, Clone)]
pub struct SourceAnswer {
    /// Its unique name.
    pub name: String,
    /// Its kind and the kind's own keys.
    pub kind: KindAnswer,
    /// The field with each record's date or timestamp.
    pub date_field: String,
    /// `stale_after`, as written.
    pub stale_after: Option<String>,
}

/// A source's kind with its own keys.
#[derive(Debug, Clone)]
pub enum KindAnswer {
    /// A file, read whole.
    File {
        /// Its path (`~/` allowed).
        path: String,
        /// `format`, when the extension does not say it.
        format: Option<&'static str>,
    },
    /// A shell line whose output is JSON Lines or CSV.
    Command {
        /// The line, run with `sh -c`.
        line: String,
    },
    /// A health-data style HTTP API.
    Http {
        /// The collection's URL.
        url: String,
        /// The variable holding its Bearer token.
        token_env: Option<String>,
        /// The id field.
        id_field: String,
        /// The last-change field.
        updated_field: String,
    },
}

impl KindAnswer {
    /// The kind as written in the file.
    pub fn name(&self) -> &'static str {
        match self {
            Self::File { .. } => "file",
            Self::Command { .. } => "command",
            Self::Http { .. } => "http",
        }
    }
}

/// One `[[attribute]]`.
#[derive(Debug, Clone)]
pub struct AttributeAnswer {
    /// Which Exist attribute.
    pub target: TargetAnswer,
    /// The source it reads.
    pub source: String,
    /// The record field aggregated; `None` counts records.
    pub field: Option<String>,
    /// How a day's records become its value.
    pub aggregate: &'static str,
}

/// Which Exist attribute an answer writes.
#[derive(Debug, Clone)]
pub enum TargetAnswer {
    /// An Exist template.
    Template(&'static str),
    /// A custom attribute.
    Custom {
        /// Its label.
        label: String,
        /// Its group.
        group: &'static str,
        /// Its value type.
        value_type: &'static str,
    },
}

/// `text` as a TOML string, quoted and escaped.
fn quote(text: &str) -> String {
    toml_edit::Value::from(text).to_string().trim().to_owned()
}

fn quote_list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|i| quote(i)).collect();
    format!("[{}]", quoted.join(", "))
}

impl Setup {
    /// Whether the file will hold a secret (and so must be readable by its owner only).
    pub fn holds_secret(&self) -> bool {
        matches!(self.secret, SecretAnswer::Inline(_))
    }

    /// The configuration file.
    pub fn to_toml(&self) -> String {
        let mut out = String::from(
            "# Written by `exist-agent init`. config.example.toml (and the README) document every\n# key; `exist-agent doctor` checks this file.\n\n[exist]\n",
        );
        if let Some(url) = &self.base_url {
            let _ = writeln!(out, "base_url = {}", quote(url));
        }
        let _ = writeln!(out, "client_id = {}", quote(&self.client_id));
        match &self.secret {
            SecretAnswer::Env(var) => {
                let _ = writeln!(out, "client_secret_env = {}", quote(var));
            }
            SecretAnswer::Inline(secret) => {
                let _ = writeln!(out, "client_secret = {}", quote(secret));
            }
            SecretAnswer::None => {}
        }
        let _ = writeln!(out, "redirect_uri = {}", quote(&self.redirect_uri));
        if self.on_failure.is_some() || self.ping_url.is_some() {
            out.push_str("\n[agent]\n");
            if let Some(argv) = &self.on_failure {
                let _ = writeln!(out, "on_failure = {}", quote_list(argv));
            }
            if let Some(url) = &self.ping_url {
                let _ = writeln!(out, "ping_url = {}", quote(url));
            }
        }
        for s in &self.sources {
            let _ = write!(
                out,
                "\n[[source]]\nname = {}\nkind = {}\n",
                quote(&s.name),
                quote(s.kind.name())
            );
            match &s.kind {
                KindAnswer::File { path, format } => {
                    let _ = writeln!(out, "path = {}", quote(path));
                    if let Some(format) = format {
                        let _ = writeln!(out, "format = {}", quote(format));
                    }
                }
                KindAnswer::Command { line } => {
                    let argv = ["sh".to_owned(), "-c".to_owned(), line.clone()];
                    let _ = writeln!(out, "command = {}", quote_list(&argv));
                }
                KindAnswer::Http {
                    url,
                    token_env,
                    id_field,
                    updated_field,
                } => {
                    let _ = writeln!(out, "url = {}", quote(url));
                    if let Some(var) = token_env {
                        let _ = writeln!(out, "token_env = {}", quote(var));
                    }
                    let _ = writeln!(out, "id_field = {}", quote(id_field));
                    let _ = writeln!(out, "updated_field = {}", quote(updated_field));
                }
            }
            let _ = writeln!(out, "date_field = {}", quote(&s.date_field));
            if let Some(after) = &s.stale_after {
                let _ = writeln!(out, "stale_after = {}", quote(after));
            }
        }
        for a in &self.attributes {
            out.push_str("\n[[attribute]]\n");
            match &a.target {
                TargetAnswer::Template(name) => {
                    let _ = writeln!(out, "template = {}", quote(name));
                }
                TargetAnswer::Custom {
                    label,
                    group,
                    value_type,
                } => {
                    let _ = writeln!(
                        out,
                        "label = {}\ngroup = {}\nvalue_type = {}",
                        quote(label),
                        quote(group),
                        quote(value_type)
                    );
                }
            }
            let _ = writeln!(out, "source = {}", quote(&a.source));
            if let Some(field) = &a.field {
                let _ = writeln!(out, "field = {}", quote(field));
            }
            let _ = writeln!(out, "aggregate = {}", quote(a.aggregate));
        }
        out
    }

    /// Checks the file as `exist-agent` will read it from `path`.
    pub fn check(&self, path: &Path) -> Result<Config, ConfigError> {
        Config::parse(path, &self.to_toml())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() -> Setup {
        Setup {
            base_url: None,
            client_id: "abc \"quoted\"".into(),
            secret: SecretAnswer::Env("EXIST_CLIENT_SECRET".into()),
            redirect_uri: "http://localhost:8000/".into(),
            sources: vec![
                SourceAnswer {
                    name: "coffee".into(),
                    kind: KindAnswer::File {
                        path: "~/coffee log.txt".into(),
                        format: Some("csv"),
                    },
                    date_field: "date".into(),
                    stale_after: Some("3d".into()),
                },
                SourceAnswer {
                    name: "commits".into(),
                    kind: KindAnswer::Command {
                        line: "git log --format='{\"date\":\"%cI\"}'".into(),
                    },
                    date_field: "date".into(),
                    stale_after: None,
                },
                SourceAnswer {
                    name: "health".into(),
                    kind: KindAnswer::Http {
                        url: "https://api.example.com/v1/activities".into(),
                        token_env: Some("HEALTH_TOKEN".into()),
                        id_field: "id".into(),
                        updated_field: "updatedAt".into(),
                    },
                    date_field: "startTime".into(),
                    stale_after: None,
                },
            ],
            attributes: vec![
                AttributeAnswer {
                    target: TargetAnswer::Template("coffees"),
                    source: "coffee".into(),
                    field: None,
                    aggregate: "count",
                },
                AttributeAnswer {
                    target: TargetAnswer::Custom {
                        label: "Late commits".into(),
                        group: "productivity",
                        value_type: "integer",
                    },
                    source: "commits".into(),
                    field: None,
                    aggregate: "count",
                },
                AttributeAnswer {
                    target: TargetAnswer::Template("steps"),
                    source: "health".into(),
                    field: Some("steps".into()),
                    aggregate: "sum",
                },
            ],
            on_failure: Some(vec!["notify-send".into(), "{message}".into()]),
            ping_url: Some("https://hc-ping.com/x".into()),
        }
    }

    #[test]
    fn every_answer_lands_in_a_valid_configuration() {
        let s = setup();
        let config = s.check(Path::new("config.toml")).unwrap_or_else(|e| {
            panic!("{e}\n{}", s.to_toml());
        });
        assert_eq!(config.exist.client_id, "abc \"quoted\"");
        assert_eq!(config.sources.len(), 3);
        assert_eq!(config.attributes.len(), 3);
        assert_eq!(
            config.agent.alerts.on_failure.as_deref(),
            Some(&["notify-send".to_owned(), "{message}".to_owned()][..])
        );
        assert_eq!(
            config.sources[0].stale_after,
            Some(std::time::Duration::from_secs(3 * 86400))
        );
        match &config.sources[1].kind {
            crate::config::SourceKind::Command(c) => {
                assert_eq!(c.argv[2], "git log --format='{\"date\":\"%cI\"}'")
            }
            other => panic!("{other:?}"),
        }
        assert!(!s.holds_secret());
    }

    #[test]
    fn an_inline_secret_is_a_secret_the_file_holds() {
        let s = Setup {
            secret: SecretAnswer::Inline("s3cr3t".into()),
            ..setup()
        };
        assert!(s.holds_secret());
        assert!(s.to_toml().contains("client_secret = \"s3cr3t\""));
        assert!(s.check(Path::new("c.toml")).is_ok());
    }

    #[test]
    fn a_wrong_answer_is_caught_by_the_configuration_checks() {
        let mut s = setup();
        s.attributes.push(AttributeAnswer {
            target: TargetAnswer::Template("coffees"),
            source: "coffee".into(),
            field: None,
            aggregate: "count",
        });
        let e = s.check(Path::new("c.toml")).unwrap_err();
        assert!(e.problem.contains("configured twice"), "{e}");
    }
}
