//! `exist-agent verify [--days N] [--fix]`: reads back what Exist holds for the attributes this
//! agent owns and lists every day where it differs from what the agent last sent (someone edited
//! it in Exist, another service wrote it, a value was lost). `--fix` queues the agent's values
//! again and sends them. One read per attribute (a page holds up to 100 days), counted in the
//! hour's budget like every request.

use clap::Args;
use serde::Serialize;

use crate::context::{run_lock, runtime, token_store, Context, Session};
use crate::error::{Error, ErrorKind, Result};
use crate::sync::{self, DayBasis};
use exist_api::types::{AttributeName, Day, Value};

/// Options of `verify`.
#[derive(Debug, Clone, Args)]
pub struct VerifyArgs {
    /// How many days back, today included
    #[arg(long, default_value_t = 14, value_parser = clap::value_parser!(u32).range(1..=366))]
    pub days: u32,
    /// Queue the agent's values again for the days that differ, and send them
    #[arg(long)]
    pub fix: bool,
    /// Print JSON instead of text
    #[arg(long)]
    pub json: bool,
}

/// One day where Exist and the agent disagree.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Difference {
    /// The attribute's Exist name.
    pub attribute: String,
    /// The day.
    pub day: Day,
    /// What Exist holds (`null`: nothing).
    pub exist: Option<Value>,
    /// What the agent last had acknowledged (`null`: it never sent one).
    pub agent: Option<Value>,
}

impl Difference {
    fn why(&self) -> &'static str {
        match (&self.exist, &self.agent) {
            (None, Some(_)) => "the value is gone from Exist",
            (Some(_), None) => "Exist holds a value this agent did not send",
            _ => "the value was changed in Exist or by another service",
        }
    }
}

/// Compares what Exist holds with the ledger, and fixes it if asked.
pub fn run(ctx: &Context, args: &VerifyArgs) -> Result<()> {
    let config = ctx.config()?;
    if !config.exist.verify {
        return Err(Error::usage(
            "verify reads back what Exist holds, which needs the read scopes of your attributes' groups",
        )
        .with_fix("set verify = true in [exist], run `exist-agent login` (it asks those scopes too), then verify again"));
    }
    let needed = config.scopes();
    let granted = token_store(&config)?
        .load()?
        .map(|p| p.scopes)
        .unwrap_or_default();
    let missing: Vec<&String> = needed.iter().filter(|s| !granted.contains(s)).collect();
    if !missing.is_empty() {
        let missing: Vec<&str> = missing.iter().map(|s| s.as_str()).collect();
        return Err(Error::new(
            ErrorKind::Auth,
            format!("the stored token lacks {} ", missing.join(" ")),
        )
        .with_fix("run `exist-agent login` to grant them"));
    }
    let _lock = run_lock(&config.state_dir())?;
    let mut session = Session::open(&config)?;
    let rt = runtime()?;
    let tz = rt.block_on(sync::user_timezone(
        &config,
        &mut session.store,
        &session.client,
    ))?;
    let today = DayBasis {
        tz,
        day_starts: config.agent.day_starts,
    }
    .today();
    let first = (1..args.days).fold(today, |d, _| d.pred());
    let owned = session.store.read().owned_attributes()?;
    let configured: Vec<AttributeName> = owned
        .iter()
        .filter(|o| config.attributes.iter().any(|a| a.key() == o.key))
        .map(|o| o.name.clone())
        .collect();
    let mut differences = Vec::new();
    for name in &configured {
        let held = rt.block_on(session.client.values(name, args.days, today))?;
        let ledger: std::collections::BTreeMap<Day, Value> = session
            .store
            .read()
            .ledger(name)?
            .into_iter()
            .filter(|(d, _)| (first..=today).contains(d))
            .collect();
        let mut days: std::collections::BTreeSet<Day> = ledger.keys().copied().collect();
        days.extend(held.iter().map(|h| h.date));
        for day in days {
            let exist = held
                .iter()
                .find(|h| h.date == day)
                .and_then(|h| h.value.clone());
            let agent = ledger.get(&day).cloned();
            if !same(exist.as_ref(), agent.as_ref()) {
                differences.push(Difference {
                    attribute: name.to_string(),
                    day,
                    exist,
                    agent,
                });
            }
        }
    }
    let mut fixed = 0;
    if args.fix {
        fixed = fix(&mut session, &rt, &differences)?;
    }
    if args.json {
        let doc = serde_json::json!({
            "from": first,
            "to": today,
            "attributes": configured.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "differences": differences,
            "fixed": fixed,
        });
        println!("{doc:#}");
    } else {
        print_text(
            &differences,
            first,
            today,
            configured.len(),
            args.fix,
            fixed,
        );
    }
    Ok(())
}

/// Whether Exist's value is the agent's: numbers compare as numbers (Exist may write `80.0` for
/// an `80` it stored as a float).
fn same(exist: Option<&Value>, agent: Option<&Value>) -> bool {
    match (exist, agent) {
        (Some(a), Some(b)) => match (a.as_f64(), b.as_f64()) {
            (Some(x), Some(y)) => (x - y).abs() < 1e-9,
            _ => a == b,
        },
        (None, None) => true,
        _ => false,
    }
}

/// Notes what Exist holds, queues the agent's values for the days it has one, and sends them.
fn fix(
    session: &mut Session,
    rt: &tokio::runtime::Runtime,
    differences: &[Difference],
) -> Result<usize> {
    let fixable: Vec<(AttributeName, &Difference)> = differences
        .iter()
        .filter(|d| d.agent.is_some())
        .filter_map(|d| {
            AttributeName::new(d.attribute.as_str())
                .ok()
                .map(|n| (n, d))
        })
        .collect();
    session.store.transaction(|tx| {
        for (name, d) in &fixable {
            tx.set_held(name, d.day, d.exist.as_ref())?;
            if let Some(value) = &d.agent {
                tx.enqueue(name, d.day, value)?;
            }
        }
        Ok(())
    })?;
    let report = rt.block_on(sync::outbox::flush(
        &mut session.store,
        &session.client,
        &sync::outbox::FlushControl::default(),
    ))?;
    Ok(report.acknowledged)
}

fn print_text(
    differences: &[Difference],
    first: Day,
    today: Day,
    attributes: usize,
    fixing: bool,
    fixed: usize,
) {
    let shown = |v: &Option<Value>| {
        v.as_ref()
            .map_or_else(|| "(none)".into(), ToString::to_string)
    };
    for d in differences {
        println!(
            "{} {}: Exist holds {}, the agent sent {} ({})",
            d.attribute,
            d.day,
            shown(&d.exist),
            shown(&d.agent),
            d.why()
        );
    }
    println!(
        "verify: {} day(s) differ across {attributes} attribute(s) from {first} to {today}",
        differences.len()
    );
    if fixing {
        println!("fixed: {fixed} value(s) sent again");
    } else if differences.iter().any(|d| d.agent.is_some()) {
        println!("run `exist-agent verify --fix` to send the agent's values again");
    }
}
