//! Acquire once, and resolve once. The first run with a new attribute acquires it (templates,
//! existing names) or creates it (custom), in batched calls, and stores what Exist calls it;
//! later runs read the store and make no call at all. Either way the configured attributes are
//! resolved into [`Resolved`] values, which every later stage takes: the configuration, the
//! Exist name when it is owned, and the value type.

use std::fmt;

use crate::config::{AttributeConfig, AttributeTarget, Config};
use crate::store::{OwnedAttribute, Store, StoreError};
use exist_api::client::{
    AcquireItem, CreateItem, ExistClient, ExistError, ItemErrorCode, WriteItem,
};
use exist_api::types::{AttributeName, ValueType};

/// A configured attribute's stable identity in the state, independent of Exist's naming
/// (`template:steps`, `name:espresso_shots`, `custom:Espressos`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AttributeKey(String);

impl AttributeKey {
    /// The key of a configured attribute.
    pub fn of(attribute: &AttributeConfig) -> Self {
        Self(attribute.key())
    }

    /// The key as stored.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for AttributeKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where a configured attribute stands with Exist.
#[derive(Debug, Clone, PartialEq)]
pub enum Standing {
    /// This agent owns it under this name.
    Owned(AttributeName),
    /// Not owned yet; the next real run acquires it (a template or an existing name).
    WillAcquire,
    /// Not owned yet; the next real run creates it (a custom attribute).
    WillCreate,
    /// Exist would not give it to this agent this run; its values wait.
    Refused(AttributeProblem),
}

/// A configured attribute, resolved: what every stage after ownership works with.
#[derive(Debug, Clone)]
pub struct Resolved<'c> {
    /// As configured.
    pub config: &'c AttributeConfig,
    /// Its identity in the state.
    pub key: AttributeKey,
    /// Where it stands with Exist.
    pub standing: Standing,
    /// The type of its values: as Exist holds it when owned, else as configured.
    pub value_type: ValueType,
}

impl Resolved<'_> {
    /// Its Exist name, when owned.
    pub fn name(&self) -> Option<&AttributeName> {
        match &self.standing {
            Standing::Owned(name) => Some(name),
            _ => None,
        }
    }

    /// How it is shown: its Exist name when owned, else as configured.
    pub fn shown(&self) -> String {
        self.name()
            .map_or_else(|| self.config.display_name(), ToString::to_string)
    }

    /// How its records become a day's value, with days in `tz`.
    pub fn rule(&self, tz: chrono_tz::Tz) -> super::values::Rule {
        super::values::Rule {
            aggregate: self.config.aggregate,
            field: self.config.field.clone(),
            value_type: self.value_type,
            tz,
            transform: self.config.transform.clone(),
        }
    }

    /// Whether `name` (as configured, or its Exist name) means this attribute.
    pub fn is_called(&self, name: &str) -> bool {
        self.config.display_name() == name || self.name().is_some_and(|n| n.as_str() == name)
    }
}

/// A configured attribute Exist would not give this agent.
#[derive(Debug, Clone, PartialEq)]
pub struct AttributeProblem {
    /// The attribute, as configured.
    pub attribute: String,
    /// Exist's error code.
    pub code: ItemErrorCode,
    /// What to do about it.
    pub message: String,
}

/// Resolves the configured attributes against the attributes the state says this agent owns,
/// without asking Exist: what a dry run shows, and the start of [`ensure_owned`].
pub fn resolve<'c>(config: &'c Config, owned: &[OwnedAttribute]) -> Vec<Resolved<'c>> {
    resolve_all(&config.attributes, owned)
}

/// Resolves `attributes` (configured ones, or the tags a run found) against what the state says
/// this agent owns.
pub fn resolve_all<'c>(
    attributes: &'c [AttributeConfig],
    owned: &[OwnedAttribute],
) -> Vec<Resolved<'c>> {
    attributes
        .iter()
        .map(|a| {
            let key = AttributeKey::of(a);
            match owned.iter().find(|o| o.key == key.as_str()) {
                Some(o) => Resolved {
                    config: a,
                    key,
                    standing: Standing::Owned(o.name.clone()),
                    value_type: o.value_type,
                },
                None => Resolved {
                    config: a,
                    key,
                    standing: match a.target {
                        AttributeTarget::Custom { .. } | AttributeTarget::Tag { .. } => {
                            Standing::WillCreate
                        }
                        _ => Standing::WillAcquire,
                    },
                    value_type: a.value_type(),
                },
            }
        })
        .collect()
}

/// Acquires or creates the configured attributes the store does not list as owned yet, and
/// returns every attribute resolved (those Exist refused as [`Standing::Refused`]).
pub async fn ensure_owned<'c>(
    config: &'c Config,
    store: &mut Store,
    client: &ExistClient,
) -> Result<Vec<Resolved<'c>>, SyncStepError> {
    ensure_owned_all(&config.attributes, store, client).await
}

/// [`ensure_owned`] for `attributes`: configured ones, or the tags a run found. Every create
/// and acquire goes out in batched calls (at most 35 items each).
pub async fn ensure_owned_all<'c>(
    attributes: &'c [AttributeConfig],
    store: &mut Store,
    client: &ExistClient,
) -> Result<Vec<Resolved<'c>>, SyncStepError> {
    let mut resolved = resolve_all(attributes, &store.read().owned_attributes()?);
    let (mut to_create, mut to_acquire) = (Vec::new(), Vec::new());
    // Custom attributes that exist already and are acquired by a guess at their name.
    let mut guessed = Vec::new();
    for (i, r) in resolved.iter().enumerate() {
        match (&r.standing, &r.config.target) {
            (Standing::WillCreate, _) => to_create.push(i),
            (Standing::WillAcquire, target) => {
                to_acquire.extend(acquire_item(target).map(|a| (i, a)))
            }
            _ => {}
        }
    }
    if to_create.is_empty() && to_acquire.is_empty() {
        return Ok(resolved);
    }
    if !to_create.is_empty() {
        let items = to_create
            .iter()
            .map(|&i| create_item(resolved[i].config))
            .collect();
        let outcome = client.create(items).await?;
        let mut created = Vec::new();
        for (item, reply) in &outcome.succeeded {
            let Some(&i) = to_create
                .iter()
                .find(|&&i| resolved[i].config.display_name() == item.label)
            else {
                continue;
            };
            let name = reply
                .as_ref()
                .and_then(|r| r.get("name"))
                .and_then(|n| n.as_str())
                .map(AttributeName::new)
                .unwrap_or_else(|| AttributeName::slug_of(&item.label))
                .map_err(|e| {
                    SyncStepError::Protocol(format!("Exist named the new attribute oddly: {e}"))
                })?;
            created.push((i, name));
        }
        // A label Exist has already (the state was lost, or the user made it): find it by its
        // label in Exist's own list of what this agent owns, else acquire it by the name Exist
        // most likely gave it. Any other refusal is the attribute's problem, said as Exist said it.
        let mut existing = Vec::new();
        for failure in &outcome.failed {
            let Some(&i) = to_create
                .iter()
                .find(|&&i| resolved[i].config.display_name() == failure.item.label)
            else {
                continue;
            };
            if is_exists(&failure.code, &failure.error) {
                existing.push(i);
            } else {
                let p = problem(resolved[i].config, &failure.code, &failure.error);
                tracing::warn!(attribute = %p.attribute, code = %p.code, "{}", p.message);
                resolved[i].standing = Standing::Refused(p);
            }
        }
        if !existing.is_empty() {
            let listed = match client.owned().await {
                Ok(listed) => listed,
                Err(e) => {
                    tracing::debug!(
                        "cannot list the attributes this agent owns ({e}); acquiring by name"
                    );
                    Vec::new()
                }
            };
            for i in existing {
                let label = resolved[i].config.display_name();
                let found = listed
                    .iter()
                    .find(|o| o.label.trim().eq_ignore_ascii_case(label.trim()))
                    .and_then(|o| AttributeName::new(o.name.as_str()).ok());
                match found {
                    Some(name) => {
                        tracing::info!(%label, %name, "the attribute exists already and this agent owns it");
                        created.push((i, name));
                    }
                    None => {
                        if let Ok(name) = AttributeName::slug_of(&label) {
                            tracing::debug!(%label, %name, "the attribute exists already; acquiring it by the name Exist most likely gave it");
                            guessed.push(i);
                            to_acquire.push((
                                i,
                                AcquireItem::Name {
                                    name: name.to_string(),
                                    manual: false,
                                },
                            ));
                        }
                    }
                }
            }
        }
        for item in &outcome.unaccounted {
            tracing::warn!(label = %item.label, "Exist's reply to creating an attribute does not mention it; the next run tries again");
        }
        settle(store, &mut resolved, created)?;
    }
    if !to_acquire.is_empty() {
        let outcome = client
            .acquire(to_acquire.iter().map(|(_, item)| item.clone()).collect())
            .await?;
        let index_of = |item: &AcquireItem| {
            to_acquire
                .iter()
                .find(|(_, sent)| sent == item)
                .map(|(i, _)| *i)
        };
        let mut acquired = Vec::new();
        for (item, _) in &outcome.succeeded {
            if let (Some(i), Ok(name)) = (index_of(item), AttributeName::new(item.key())) {
                acquired.push((i, name));
            }
        }
        for failure in &outcome.failed {
            if let Some(i) = index_of(&failure.item) {
                let p = if guessed.contains(&i) {
                    exists_unknown_name(resolved[i].config, &failure.error)
                } else {
                    problem(resolved[i].config, &failure.code, &failure.error)
                };
                tracing::warn!(attribute = %p.attribute, code = %p.code, "{}", p.message);
                resolved[i].standing = Standing::Refused(p);
            }
        }
        for item in &outcome.unaccounted {
            if let Some(i) = index_of(item) {
                resolved[i].standing = Standing::Refused(AttributeProblem {
                    attribute: resolved[i].config.display_name(),
                    code: ItemErrorCode::Other("unaccounted".into()),
                    message: format!("Exist's reply to acquiring {} does not mention it; the next run tries again", resolved[i].config.display_name()),
                });
            }
        }
        settle(store, &mut resolved, acquired)?;
    }
    // Whatever was neither owned nor refused by now (a create that failed and whose acquire was
    // never answered) waits for the next run.
    for r in &mut resolved {
        if matches!(r.standing, Standing::WillAcquire | Standing::WillCreate) {
            r.standing = Standing::Refused(AttributeProblem {
                attribute: r.config.display_name(),
                code: ItemErrorCode::Other("not_owned".into()),
                message: format!(
                    "{} could not be acquired or created this run; the next run tries again",
                    r.config.display_name()
                ),
            });
        }
    }
    Ok(resolved)
}

/// Stores the attributes now owned and marks them owned in `resolved`.
fn settle(
    store: &mut Store,
    resolved: &mut [Resolved<'_>],
    owned: Vec<(usize, AttributeName)>,
) -> Result<(), StoreError> {
    store.transaction(|tx| {
        owned.iter().try_for_each(|(i, name)| {
            let a = resolved[*i].config;
            tx.set_owned(&OwnedAttribute {
                key: a.key(),
                name: name.clone(),
                group: a.group(),
                value_type: a.value_type(),
            })
        })
    })?;
    for (i, name) in owned {
        resolved[i].standing = Standing::Owned(name);
    }
    Ok(())
}

/// Re-acquires attributes Exist says this agent no longer owns: once per occurrence, as Exist
/// asks. Returns the names now owned again.
pub async fn reacquire(
    client: &ExistClient,
    names: &[AttributeName],
) -> Result<Vec<AttributeName>, ExistError> {
    let items = names
        .iter()
        .map(|n| AcquireItem::Name {
            name: n.to_string(),
            manual: false,
        })
        .collect();
    let outcome = client.acquire(items).await?;
    for f in &outcome.failed {
        tracing::warn!(attribute = %f.item.key(), code = %f.code, error = %f.error, "could not re-acquire an attribute another service took");
    }
    Ok(outcome
        .succeeded
        .into_iter()
        .filter_map(|(item, _)| AttributeName::new(item.key()).ok())
        .collect())
}

/// How a template or an existing attribute is acquired; custom attributes are created instead.
fn acquire_item(target: &AttributeTarget) -> Option<AcquireItem> {
    match target {
        AttributeTarget::Template(t) => Some(AcquireItem::Template {
            template: t.name.to_owned(),
            manual: false,
        }),
        AttributeTarget::Existing { name, .. } => Some(AcquireItem::Name {
            name: name.clone(),
            manual: false,
        }),
        AttributeTarget::Custom { .. } | AttributeTarget::Tag { .. } => None,
    }
}

fn create_item(a: &AttributeConfig) -> CreateItem {
    CreateItem {
        label: a.display_name(),
        group: a.group(),
        value_type: a.value_type(),
        manual: false,
    }
}

/// Whether a refused create says the attribute exists already: by code, or by Exist's words
/// (the code is not documented).
fn is_exists(code: &ItemErrorCode, error: &str) -> bool {
    *code == ItemErrorCode::Exists || error.to_ascii_lowercase().contains("exist")
}

/// A custom attribute Exist has already under a name this agent could not find.
fn exists_unknown_name(a: &AttributeConfig, error: &str) -> AttributeProblem {
    let label = a.display_name();
    AttributeProblem {
        attribute: label.clone(),
        code: ItemErrorCode::Exists,
        message: format!(
            "Exist has an attribute labelled \"{label}\" already, and this agent cannot tell its name ({error}); write name = \"<its name in Exist>\" (with its group and value_type) instead of label in the config, or set [exist] verify = true and run `exist-agent login` so the agent can look it up"
        ),
    }
}

fn problem(a: &AttributeConfig, code: &ItemErrorCode, error: &str) -> AttributeProblem {
    let scope = a.group().write_scope();
    let message = match code {
        ItemErrorCode::NotAllowed => format!("Exist says this agent may not write {} ({error}): the token lacks the {scope} scope; run `exist-agent login` to grant it", a.display_name()),
        ItemErrorCode::NotFound => format!("Exist has no attribute {} ({error}); check the name in your config", a.display_name()),
        _ => format!("Exist would not give {} to this agent: {code}: {error}", a.display_name()),
    };
    AttributeProblem {
        attribute: a.display_name(),
        code: code.clone(),
        message,
    }
}

/// A step of a sync that failed.
#[derive(Debug, thiserror::Error)]
pub enum SyncStepError {
    /// Exist failed as a whole.
    #[error(transparent)]
    Exist(#[from] ExistError),
    /// The state failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Exist answered something that cannot be used.
    #[error("{0}")]
    Protocol(String),
}

impl crate::error::Classify for SyncStepError {
    fn kind(&self) -> crate::error::ErrorKind {
        match self {
            Self::Exist(e) => e.kind(),
            Self::Store(e) => e.kind(),
            Self::Protocol(_) => crate::error::ErrorKind::Failed,
        }
    }

    fn fix(&self) -> Option<String> {
        match self {
            Self::Exist(e) => e.fix(),
            Self::Store(e) => e.fix(),
            Self::Protocol(_) => None,
        }
    }
}
