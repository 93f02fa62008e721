//! What the demo prints: aligned tables of the values Exist holds and of the requests each step
//! made, against the fewest a client that behaves as Exist asks can make.

use std::collections::{BTreeMap, BTreeSet};

use chrono::NaiveDate;

use exist_fakes::exist::RequestRecord;

/// The values Exist holds, keyed by (attribute name, `YYYY-MM-DD`), as the sandbox reports them.
pub(super) type Values = BTreeMap<(String, String), serde_json::Value>;

/// How a column lines up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Align {
    /// Text.
    Left,
    /// Numbers.
    Right,
}

/// Renders `rows` in aligned columns, two spaces between them and before each line. Trailing
/// blanks are trimmed so that empty last columns leave no invisible tail.
pub(super) fn table(aligns: &[Align], rows: &[Vec<String>]) -> String {
    let widths: Vec<usize> = (0..aligns.len())
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|cell| cell.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for ((cell, align), width) in row.iter().zip(aligns).zip(&widths) {
            line.push_str("  ");
            match align {
                Align::Left => line.push_str(&format!("{cell:<width$}")),
                Align::Right => line.push_str(&format!("{cell:>width$}")),
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// The table of what Exist holds: one row per day Exist has a value of `attributes` on, one
/// value column per attribute (by its Exist name), each followed by a note on values the second
/// sync changed (`* was OLD`).
pub(super) fn values_table(attributes: &[String], after_first: &Values, now: &Values) -> String {
    let days: BTreeSet<&str> = now
        .keys()
        .filter(|(name, _)| attributes.contains(name))
        .map(|(_, day)| day.as_str())
        .collect();
    let mut aligns = vec![Align::Left];
    let mut header = vec!["day".to_owned()];
    for name in attributes {
        aligns.extend([Align::Right, Align::Left]);
        header.extend([name.clone(), String::new()]);
    }
    let mut rows = vec![header];
    for day in days {
        let mut row = vec![with_weekday(day)];
        for name in attributes {
            let key = (name.clone(), day.to_owned());
            let (before, after) = (after_first.get(&key), now.get(&key));
            row.push(after.map_or_else(|| "-".to_owned(), shown));
            row.push(match before {
                _ if before == after => String::new(),
                Some(old) => format!("* was {}", shown(old)),
                None => "* new".to_owned(),
            });
        }
        rows.push(row);
    }
    table(&aligns, &rows)
}

/// `YYYY-MM-DD` with its weekday, which is how people find "yesterday" in a table.
fn with_weekday(day: &str) -> String {
    match NaiveDate::parse_from_str(day, "%Y-%m-%d") {
        Ok(date) => date.format("%Y-%m-%d %a").to_string(),
        Err(_) => day.to_owned(),
    }
}

/// A value as a person reads it: numbers and text without JSON quotes.
fn shown(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

/// The values that differ between two snapshots of Exist (added or changed).
pub(super) fn changed(before: &Values, after: &Values) -> usize {
    after
        .iter()
        .filter(|(key, value)| before.get(*key) != Some(*value))
        .count()
}

/// A kind of request the agent makes to Exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Call {
    /// `oauth2/access_token` with an authorization code (the end of a login).
    CodeExchange,
    /// `oauth2/access_token` with a refresh token.
    Refresh,
    /// `accounts/profile/` (the user's timezone).
    Profile,
    /// `attributes/acquire/`.
    Acquire,
    /// `attributes/create/`.
    Create,
    /// `attributes/update/`.
    Update,
    /// Anything else the agent asked.
    Other,
}

impl Call {
    const ALL: [Call; 7] = [
        Call::CodeExchange,
        Call::Refresh,
        Call::Profile,
        Call::Acquire,
        Call::Create,
        Call::Update,
        Call::Other,
    ];

    fn label(self) -> &'static str {
        match self {
            Call::CodeExchange => "token: code exchange",
            Call::Refresh => "token: refresh",
            Call::Profile => "profile",
            Call::Acquire => "acquire",
            Call::Create => "create",
            Call::Update => "update",
            Call::Other => "other",
        }
    }

    /// What kind of call `request` was; `None` for the authorize page, which the browser (here:
    /// the demo playing it) asks for, not the agent.
    fn of(request: &RequestRecord) -> Option<Call> {
        let path = request.path.trim_end_matches('/');
        Some(match path {
            "/oauth2/authorize" => return None,
            "/oauth2/access_token" if request.grant_type.as_deref() == Some("refresh_token") => {
                Call::Refresh
            }
            "/oauth2/access_token" => Call::CodeExchange,
            "/api/2/accounts/profile" => Call::Profile,
            "/api/2/attributes/acquire" => Call::Acquire,
            "/api/2/attributes/create" => Call::Create,
            "/api/2/attributes/update" => Call::Update,
            _ => Call::Other,
        })
    }
}

/// One step of the demo: the requests Exist saw during it and the fewest it needed.
pub(super) struct Phase {
    /// The column's title.
    pub title: &'static str,
    /// Requests made, by kind.
    made: BTreeMap<Call, usize>,
    /// Values written by its update calls.
    values_sent: usize,
    /// The fewest requests of each kind (absent: none).
    minimum: BTreeMap<Call, usize>,
    /// Values that had to be written (those that changed in Exist).
    values_needed: usize,
}

impl Phase {
    /// A phase that saw `requests`, needed `minimum` calls and changed `values_needed` values.
    pub fn new(
        title: &'static str,
        requests: &[RequestRecord],
        minimum: &[(Call, usize)],
        values_needed: usize,
    ) -> Self {
        let mut made = BTreeMap::new();
        let mut values_sent = 0;
        for request in requests {
            let Some(call) = Call::of(request) else {
                continue;
            };
            *made.entry(call).or_default() += 1;
            if call == Call::Update {
                values_sent += request.items;
            }
        }
        Self {
            title,
            made,
            values_sent,
            minimum: minimum.iter().copied().collect(),
            values_needed,
        }
    }

    fn made(&self, call: Call) -> usize {
        self.made.get(&call).copied().unwrap_or(0)
    }

    fn minimum(&self, call: Call) -> usize {
        self.minimum.get(&call).copied().unwrap_or(0)
    }

    /// The kinds of request made more often than needed.
    pub fn excess(&self) -> Vec<&'static str> {
        let mut excess: Vec<&'static str> = Call::ALL
            .iter()
            .filter(|c| self.made(**c) > self.minimum(**c))
            .map(|c| c.label())
            .collect();
        if self.values_sent > self.values_needed {
            excess.push("values sent");
        }
        excess
    }
}

/// The table of requests: one row per kind, `made / minimum` per phase.
pub(super) fn calls_table(phases: &[Phase]) -> String {
    let mut aligns = vec![Align::Left];
    aligns.extend(phases.iter().map(|_| Align::Right));
    let mut header = vec!["made / minimum".to_owned()];
    header.extend(phases.iter().map(|p| p.title.to_owned()));
    let mut rows = vec![header];
    for call in Call::ALL {
        let mut row = vec![call.label().to_owned()];
        row.extend(
            phases
                .iter()
                .map(|p| format!("{} / {}", p.made(call), p.minimum(call))),
        );
        rows.push(row);
    }
    let mut sent = vec!["values sent".to_owned()];
    sent.extend(
        phases
            .iter()
            .map(|p| format!("{} / {}", p.values_sent, p.values_needed)),
    );
    rows.push(sent);
    table(&aligns, &rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_line_up_and_lines_have_no_trailing_blanks() {
        let rows = vec![
            vec!["a".to_owned(), "1".to_owned(), String::new()],
            vec!["long".to_owned(), "100".to_owned(), "x".to_owned()],
        ];
        let text = table(&[Align::Left, Align::Right, Align::Left], &rows);
        assert_eq!(text, "  a       1\n  long  100  x\n");
    }

    #[test]
    fn changed_values_are_marked_with_what_exist_held() {
        let key = |name: &str| (name.to_owned(), "2026-05-01".to_owned());
        let before: Values = [(key("steps"), 10.into())].into();
        let after: Values = [(key("steps"), 12.into()), (key("coffees"), 1.into())].into();
        let text = values_table(&["steps".into(), "coffees".into()], &before, &after);
        assert!(
            text.contains("2026-05-01 Fri     12  * was 10        1  * new"),
            "{text}"
        );
        assert_eq!(changed(&before, &after), 2);
    }
}
