//! An HTTP source's credentials: read once when a pull starts (from the environment, or from a
//! command's output), put on each request, and never written anywhere else. Secrets stay
//! [`Secret`]s, which print as `***`, and a secret sent as a query parameter is added to the
//! request only, never to a URL that a log line or an error could show.

use std::time::Duration;

use reqwest::header::{HeaderName, HeaderValue};
use reqwest::RequestBuilder;

use super::super::command::{run_program, RunError};
use super::super::{excerpt, SourceError};
use crate::config::{HttpAuth, SecretFrom};
use exist_api::Secret;

/// How long a command printing a secret may run (a password manager asking for its unlock
/// passphrase would hold the pull forever).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// The credentials of one pull.
#[derive(Debug)]
pub(super) enum Credentials {
    None,
    Bearer(Secret),
    Basic(Secret, Option<Secret>),
    Header(HeaderName, Secret),
    Query(String, Secret),
}

impl Credentials {
    /// Reads the secrets `auth` names; an OAuth2 token comes from `oauth`.
    pub async fn resolve(
        source: &str,
        auth: &HttpAuth,
        oauth: Option<&crate::sources::oauth2::SourceAuth>,
    ) -> Result<Self, SourceError> {
        let read = |from| read_secret(source, from);
        Ok(match auth {
            HttpAuth::None => Self::None,
            HttpAuth::Bearer(from) => Self::Bearer(read(from).await?),
            HttpAuth::Basic { user, password } => {
                let password = match password {
                    Some(from) => Some(read(from).await?),
                    None => None,
                };
                Self::Basic(read(user).await?, password)
            }
            HttpAuth::Header { name, value } => {
                // The name was checked when the configuration was read.
                let name =
                    HeaderName::from_bytes(name.as_bytes()).map_err(|e| SourceError::Client {
                        source_name: source.to_owned(),
                        detail: format!("the auth header's name: {e}"),
                    })?;
                Self::Header(name, read(value).await?)
            }
            HttpAuth::Query { param, value } => Self::Query(param.clone(), read(value).await?),
            HttpAuth::OAuth2(_) => match oauth {
                Some(oauth) => Self::Bearer(oauth.access_token().await?),
                None => {
                    return Err(SourceError::Client {
                        source_name: source.to_owned(),
                        detail: "its OAuth2 tokens are not set up".into(),
                    })
                }
            },
        })
    }

    /// `request` with these credentials. reqwest marks both Authorization headers sensitive,
    /// so they never show in its logs; a header of its own is marked so here.
    pub fn apply(&self, request: RequestBuilder) -> RequestBuilder {
        match self {
            Self::None => request,
            Self::Bearer(token) => request.bearer_auth(token.expose()),
            Self::Basic(user, password) => request.basic_auth(
                user.expose(),
                Some(password.as_ref().map_or("", |p| p.expose())),
            ),
            Self::Header(name, value) => match HeaderValue::from_str(value.expose()) {
                Ok(mut value) => {
                    value.set_sensitive(true);
                    request.header(name.clone(), value)
                }
                // Not a valid header value: the request goes without it and the service says
                // 401, which names the credentials as the thing to check.
                Err(_) => request,
            },
            Self::Query(param, value) => request.query(&[(param.as_str(), value.expose())]),
        }
    }
}

/// One secret: an environment variable's value, or what a command prints.
async fn read_secret(source: &str, from: &SecretFrom) -> Result<Secret, SourceError> {
    match from {
        SecretFrom::Env(var) => match std::env::var(var) {
            Ok(value) if !value.is_empty() => Ok(Secret::new(value)),
            _ => Err(SourceError::MissingEnv {
                source_name: source.to_owned(),
                var: var.clone(),
            }),
        },
        SecretFrom::Command(argv) => run_command(source, argv).await,
    }
}

/// Runs `argv`; its standard output, trimmed, is the secret.
async fn run_command(source: &str, argv: &[String]) -> Result<Secret, SourceError> {
    let program = argv.first().cloned().unwrap_or_default();
    let failed = |problem: String| SourceError::AuthCommand {
        source_name: source.to_owned(),
        program: program.clone(),
        problem,
    };
    let finished = run_program(argv, COMMAND_TIMEOUT)
        .await
        .map_err(|e| match e {
            RunError::Start(e) => failed(format!("cannot be started: {e}")),
            RunError::Read(e) => failed(format!("could not be read: {e}")),
            RunError::TimedOut => failed(format!(
                "did not finish within {}",
                humantime::format_duration(COMMAND_TIMEOUT)
            )),
        })?;
    let (status, out, err) = (finished.status, finished.stdout, finished.stderr);
    if !status.success() {
        return Err(failed(format!(
            "failed ({status}); its standard error says \"{}\"",
            excerpt(&String::from_utf8_lossy(&err), 200)
        )));
    }
    let secret = String::from_utf8(out)
        .map_err(|_| failed("printed something that is not text".into()))?
        .trim()
        .to_owned();
    if secret.is_empty() {
        return Err(failed("printed nothing on its standard output".into()));
    }
    Ok(Secret::new(secret))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn command(script: &str) -> HttpAuth {
        HttpAuth::Bearer(SecretFrom::Command(vec![
            "sh".into(),
            "-c".into(),
            script.into(),
        ]))
    }

    #[tokio::test]
    async fn a_command_prints_the_secret_and_its_failures_are_named() {
        let Credentials::Bearer(token) = Credentials::resolve("s", &command("echo ' tok '"), None)
            .await
            .unwrap()
        else {
            panic!("a bearer token")
        };
        assert_eq!(token.expose(), "tok");
        for (script, says) in [
            (
                "echo locked >&2; exit 3",
                "its standard error says \"locked\"",
            ),
            ("true", "printed nothing"),
        ] {
            let err = Credentials::resolve("s", &command(script), None)
                .await
                .unwrap_err();
            assert!(err.to_string().contains(says), "{err}");
            assert!(err.to_string().contains("auth command `sh`"), "{err}");
        }
        let missing = HttpAuth::Bearer(SecretFrom::Command(vec!["/no/such/program".into()]));
        let err = Credentials::resolve("s", &missing, None).await.unwrap_err();
        assert!(err.to_string().contains("cannot be started"), "{err}");
    }

    #[tokio::test]
    async fn an_unset_variable_is_named() {
        let auth = HttpAuth::Query {
            param: "api_key".into(),
            value: SecretFrom::Env("EXIST_AGENT_TEST_SURELY_UNSET".into()),
        };
        let err = Credentials::resolve("s", &auth, None).await.unwrap_err();
        assert!(
            matches!(&err, SourceError::MissingEnv { var, .. } if var == "EXIST_AGENT_TEST_SURELY_UNSET"),
            "{err}"
        );
    }
}
