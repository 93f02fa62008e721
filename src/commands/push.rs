//! `exist-agent push NAME VALUE`: one value by hand, through the same outbox as a sync. The value
//! is stored in the outbox before anything else, so that a busy lock or a network failure never
//! loses it; `--increment` is the exception, sent at once and never retried, since a retried
//! increment could count twice.

use clap::Args;

use crate::config::Config;
use crate::context::{run_lock, runtime, Context, Session};
use crate::error::{Error, ErrorKind, Result};
use crate::store::{OwnedAttribute, Store};
use crate::sync;
use crate::sync::attributes::Standing;
use exist_api::types::{Day, Value, ValueType};

/// Options of `push`.
#[derive(Debug, Clone, Args)]
pub struct PushArgs {
    /// The attribute (its Exist name, or a configured template or label)
    pub name: String,
    /// The value
    pub value: String,
    /// The day [default: today in your timezone]
    #[arg(long, value_name = "YYYY-MM-DD")]
    pub date: Option<Day>,
    /// Add VALUE to the day's total instead of setting it; sent at once and never retried,
    /// since a retry could count twice
    #[arg(long)]
    pub increment: bool,
}

/// Stores the value, then sends the outbox.
pub fn run(ctx: &Context, args: &PushArgs) -> Result<()> {
    let config = ctx.config()?;
    let mut store = Store::open(&config.state_dir())?;
    let owned = owned(&config, &store, &args.name)?;
    if owned.is_none() {
        check_configured(&config, &args.name)?;
    }
    // Stored before the lock: another run may hold it for a while, and the value must not wait
    // in this process's memory only.
    let mut stored = None;
    if !args.increment {
        if let Some(owned) = owned {
            let value = parse_value(&args.value, owned.value_type)?;
            if let Some(day) = args.date.or_else(|| cached_today(&config, &store)) {
                store.transaction(|tx| tx.enqueue(&owned.name, day, &value))?;
                stored = Some((owned.name.clone(), day, value));
            }
        }
    }
    drop(store);
    let lock = run_lock(&config.state_dir()).map_err(|e| match &stored {
        Some((name, day, value)) if e.kind() == ErrorKind::Temporary => Error::temporary(format!(
            "{name} {day} = {value} is kept in the outbox, but not sent yet: {}",
            e.message()
        ))
        .with_fix("nothing to do: the other run, or the next one, sends it"),
        _ => e,
    })?;
    let mut session = Session::open(&config)?;
    let rt = runtime()?;
    let pushed = push_value(&config, args, &rt, &mut session, stored);
    drop(lock);
    pushed
}

/// Refuses a name no configured attribute has (and no owned one), before anything is asked.
fn check_configured(config: &Config, name: &str) -> Result<()> {
    if config.attributes.iter().any(|a| a.display_name() == name) {
        return Ok(());
    }
    Err(Error::usage(format!(
        "no configured attribute is called {name}; push writes configured attributes only"
    ))
    .with_fix(format!(
        "write one of {}",
        config
            .attributes
            .iter()
            .map(|a| a.display_name())
            .collect::<Vec<_>>()
            .join(", ")
    )))
}

/// The owned attribute `name` stands for, if this agent owns it already.
fn owned(config: &Config, store: &Store, name: &str) -> Result<Option<OwnedAttribute>> {
    let owned = store.read().owned_attributes()?;
    Ok(config.attributes.iter().find_map(|a| {
        let o = owned.iter().find(|o| o.key == a.key())?;
        (a.display_name() == name || o.name.as_str() == name).then(|| o.clone())
    }))
}

/// Today in the user's timezone, when it is known without asking Exist.
fn cached_today(config: &Config, store: &Store) -> Option<Day> {
    let tz = sync::known_timezone(config, store)?;
    Some(
        sync::DayBasis {
            tz,
            day_starts: config.agent.day_starts,
        }
        .today(),
    )
}

fn push_value(
    config: &Config,
    args: &PushArgs,
    rt: &tokio::runtime::Runtime,
    session: &mut Session,
    stored: Option<(exist_api::types::AttributeName, Day, Value)>,
) -> Result<()> {
    let resolved = rt.block_on(sync::attributes::ensure_owned(
        config,
        &mut session.store,
        &session.client,
    ))?;
    let attribute = resolved
        .iter()
        .find(|r| r.is_called(&args.name))
        .ok_or_else(|| Error::usage(format!("no configured attribute is called {}", args.name)))?;
    let owned = match &attribute.standing {
        Standing::Owned(name) => OwnedAttribute {
            key: attribute.key.to_string(),
            name: name.clone(),
            group: attribute.config.group(),
            value_type: attribute.value_type,
        },
        Standing::Refused(p) => return Err(Error::failed(p.message.clone())),
        Standing::WillAcquire | Standing::WillCreate => {
            return Err(Error::temporary(format!(
                "{} could not be acquired this run",
                args.name
            )))
        }
    };
    let value = parse_value(&args.value, owned.value_type)?;
    let day = match args.date {
        Some(d) => d,
        None => {
            let tz = rt.block_on(sync::user_timezone(
                config,
                &mut session.store,
                &session.client,
            ))?;
            sync::DayBasis {
                tz,
                day_starts: config.agent.day_starts,
            }
            .today()
        }
    };
    if args.increment {
        return increment(rt, session, owned, day, value);
    }
    if stored.is_none() {
        session
            .store
            .transaction(|tx| tx.enqueue(&owned.name, day, &value))?;
    }
    let report = rt.block_on(sync::outbox::flush(
        &mut session.store,
        &session.client,
        &sync::outbox::FlushControl::default(),
    ))?;
    println!(
        "{} {} = {} sent ({} value(s) acknowledged).",
        owned.name, day, value, report.acknowledged
    );
    if report.rejected > 0 {
        return Err(Error::failed("Exist refused the value")
            .with_fix("see `exist-agent status` for Exist's reason"));
    }
    Ok(())
}

/// `push --increment`: one delta, sent at once, outside the outbox, because a retried
/// increment could count twice. The new total Exist reports goes into the ledger.
fn increment(
    rt: &tokio::runtime::Runtime,
    session: &mut Session,
    owned: OwnedAttribute,
    day: Day,
    value: Value,
) -> Result<()> {
    use exist_api::client::IncrementItem;
    if !owned.value_type.is_incrementable() {
        return Err(Error::usage(format!(
            "{} is a {} attribute, which Exist does not increment",
            owned.name, owned.value_type
        ))
        .with_fix("push the day's value instead, without --increment"));
    }
    let item = IncrementItem {
        name: owned.name.clone(),
        date: day,
        value,
    };
    let outcome = rt.block_on(session.client.increment(vec![item]))?;
    if let Some(failure) = outcome.failed.first() {
        return Err(Error::failed(format!(
            "Exist refused the increment of {} on {day}: {}: {}",
            owned.name, failure.code, failure.error
        )));
    }
    let Some((sent, reply)) = outcome.succeeded.first() else {
        return Ok(());
    };
    let current = reply
        .as_ref()
        .and_then(|r| r.get("current").cloned())
        .and_then(|c| serde_json::from_value::<Value>(c).ok());
    match current {
        Some(total) => {
            session
                .store
                .transaction(|tx| tx.acknowledge(&owned.name, day, &total))?;
            println!("{} {day}: +{} = {total}.", owned.name, sent.value);
        }
        None => println!("{} {day}: incremented.", owned.name),
    }
    Ok(())
}

/// Parses a value typed on the command line for an attribute of `value_type`.
pub fn parse_value(text: &str, value_type: ValueType) -> Result<Value> {
    let value = match value_type {
        ValueType::String => Value::Text(text.to_owned()),
        ValueType::Float | ValueType::Percentage => text
            .trim()
            .parse()
            .map(Value::Float)
            .map_err(|_| Error::usage(format!("`{text}` is not a number")))?,
        _ => text.trim().parse().map(Value::Int).map_err(|_| {
            Error::usage(format!(
                "`{text}` is not a whole number (the attribute is of type {value_type})"
            ))
        })?,
    };
    value_type
        .check(&value)
        .map_err(|e| Error::usage(format!("`{text}`: {e}")))?;
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_typed_on_the_command_line() {
        assert_eq!(
            parse_value("12", ValueType::Integer).unwrap(),
            Value::Int(12)
        );
        assert_eq!(
            parse_value("0.5", ValueType::Percentage).unwrap(),
            Value::Float(0.5)
        );
        assert!(parse_value("1.5", ValueType::Integer).is_err());
        assert!(parse_value("10", ValueType::Scale).is_err());
        assert_eq!(
            parse_value("fine", ValueType::String).unwrap(),
            Value::Text("fine".into())
        );
    }
}
