//! Acquire once: the first run with a new attribute acquires it (templates, existing names) or
//! creates it (custom), in batched calls, and stores what Exist calls it. Later runs read the
//! store and make no call at all.

use std::collections::HashMap;

use crate::config::{AttributeConfig, AttributeTarget, Config};
use crate::exist::client::{AcquireItem, CreateItem, ExistClient, ExistError, WriteItem};
use crate::exist::types::AttributeName;
use crate::store::{OwnedAttribute, Store, StoreError};

/// A configured attribute Exist would not give this agent.
#[derive(Debug, Clone, PartialEq)]
pub struct AttributeProblem {
    /// The attribute, as configured.
    pub attribute: String,
    /// Exist's error code.
    pub code: String,
    /// What to do about it.
    pub message: String,
}

/// The result of making sure every configured attribute is owned.
#[derive(Debug, Default)]
pub struct Ownership {
    /// Owned attributes, by configuration key.
    pub owned: HashMap<String, OwnedAttribute>,
    /// Attributes that could not be owned this run (their values wait).
    pub problems: Vec<AttributeProblem>,
}

impl Ownership {
    /// The owned attribute for a configured one.
    pub fn get(&self, attribute: &AttributeConfig) -> Option<&OwnedAttribute> {
        self.owned.get(&attribute.key())
    }
}

/// Acquires or creates the configured attributes the store does not list as owned yet.
pub async fn ensure_owned(
    config: &Config,
    store: &mut Store,
    client: &ExistClient,
) -> Result<Ownership, SyncStepError> {
    let mut ownership = Ownership {
        owned: store
            .read()
            .owned_attributes()?
            .into_iter()
            .map(|a| (a.key.clone(), a))
            .collect(),
        ..Ownership::default()
    };
    let missing: Vec<&AttributeConfig> = config
        .attributes
        .iter()
        .filter(|a| !ownership.owned.contains_key(&a.key()))
        .collect();
    if missing.is_empty() {
        return Ok(ownership);
    }
    let (custom, acquired): (Vec<_>, Vec<_>) = missing
        .into_iter()
        .partition(|a| matches!(a.target, AttributeTarget::Custom { .. }));

    let mut to_acquire: Vec<(&AttributeConfig, AcquireItem)> =
        acquired.into_iter().map(|a| (a, acquire_item(a))).collect();
    if !custom.is_empty() {
        let items = custom.iter().map(|a| create_item(a)).collect();
        let outcome = client.create(items).await?;
        let mut created = Vec::new();
        for (item, reply) in outcome.succeeded {
            let attribute = custom
                .iter()
                .find(|a| a.display_name() == item.label)
                .expect("reply items come from our request");
            let name = reply
                .as_ref()
                .and_then(|r| r.get("name"))
                .and_then(|n| n.as_str())
                .map(AttributeName::new)
                .unwrap_or_else(|| AttributeName::slug_of(&item.label))
                .map_err(|e| {
                    SyncStepError::Protocol(format!("Exist named the new attribute oddly: {e}"))
                })?;
            created.push(owned(attribute, name));
        }
        // A label that exists already (e.g. the state was lost): acquire it by its slug instead.
        for failure in outcome.failed {
            let attribute = custom
                .iter()
                .find(|a| a.display_name() == failure.item.label)
                .expect("reply items come from our request");
            tracing::debug!(label = %failure.item.label, code = %failure.code, "create refused; acquiring by name instead");
            let name = AttributeName::slug_of(&failure.item.label)
                .expect("labels are checked when the config is read");
            to_acquire.push((
                attribute,
                AcquireItem::Name {
                    name: name.to_string(),
                    manual: false,
                },
            ));
        }
        store.transaction(|tx| created.iter().try_for_each(|a| tx.set_owned(a)))?;
        ownership
            .owned
            .extend(created.into_iter().map(|a| (a.key.clone(), a)));
    }
    if !to_acquire.is_empty() {
        let outcome = client
            .acquire(to_acquire.iter().map(|(_, i)| i.clone()).collect())
            .await?;
        let mut acquired = Vec::new();
        for (item, _) in outcome.succeeded {
            let (attribute, _) = to_acquire
                .iter()
                .find(|(_, i)| *i == item)
                .expect("reply items come from our request");
            let name =
                AttributeName::new(item.key()).expect("names are checked when the config is read");
            acquired.push(owned(attribute, name));
        }
        for failure in outcome.failed {
            let (attribute, _) = to_acquire
                .iter()
                .find(|(_, i)| *i == failure.item)
                .expect("reply items come from our request");
            ownership
                .problems
                .push(problem(attribute, &failure.code, &failure.error));
        }
        store.transaction(|tx| acquired.iter().try_for_each(|a| tx.set_owned(a)))?;
        ownership
            .owned
            .extend(acquired.into_iter().map(|a| (a.key.clone(), a)));
    }
    for a in &ownership.problems {
        tracing::warn!(attribute = %a.attribute, code = %a.code, "{}", a.message);
    }
    Ok(ownership)
}

/// Re-acquires attributes Exist says this agent no longer owns (`unauthorised`): once per
/// occurrence, as Exist asks. Returns the names now owned again.
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

fn acquire_item(a: &AttributeConfig) -> AcquireItem {
    match &a.target {
        AttributeTarget::Template(t) => AcquireItem::Template {
            template: t.name.to_owned(),
            manual: false,
        },
        AttributeTarget::Existing { name, .. } => AcquireItem::Name {
            name: name.clone(),
            manual: false,
        },
        AttributeTarget::Custom { .. } => {
            unreachable!("custom attributes are created, not acquired")
        }
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

fn owned(a: &AttributeConfig, name: AttributeName) -> OwnedAttribute {
    OwnedAttribute {
        key: a.key(),
        name,
        group: a.group(),
        value_type: a.value_type(),
    }
}

fn problem(a: &AttributeConfig, code: &str, error: &str) -> AttributeProblem {
    let scope = a.group().write_scope();
    let message = match code {
        "not_allowed" => format!("Exist says this agent may not write {} ({error}): the token lacks the {scope} scope; run `exist-agent login` to grant it", a.display_name()),
        "not_found" => format!("Exist has no attribute {} ({error}); check the name in your config", a.display_name()),
        _ => format!("Exist would not give {} to this agent: {code}: {error}", a.display_name()),
    };
    AttributeProblem {
        attribute: a.display_name(),
        code: code.to_owned(),
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
