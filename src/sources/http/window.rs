//! Which queries a pull makes, and how each says its window: the health-data `updated_since`
//! cursor, or spans of the user's days written as dates or as instants.
//!
//! Windows of days end today (in the user's timezone). The last `lookback_days` days and today
//! are always asked for as one query, the same one all day long, so that an unchanged source
//! answers the same records to every run of a day (a service that adds a synthetic record at
//! its window's start, as Home Assistant does with the state in effect then, cannot make an
//! unchanged day look changed). Older days, when a cursor is behind or a backfill asks for
//! them, come first, in windows of at most `window_days`.

use chrono::{DateTime, Days, NaiveDate, NaiveTime, TimeDelta, TimeZone, Timelike, Utc};
use chrono_tz::Tz;

use super::super::PullPlan;
use crate::config::{TimeFormat, Window, END_IN_PATH, START_IN_PATH};

/// How far an open-ended pull's cursor stays behind its start: clock skew between the source
/// and this machine must not lose records; de-duplication by id makes the overlap harmless.
pub const OVERLAP: TimeDelta = TimeDelta::minutes(5);

/// How much shorter than `window_days` a window of change times is kept: a source whose clock
/// runs ahead of this machine's would otherwise see a window of exactly 31 days as a little
/// longer, and refuse it.
pub const WINDOW_MARGIN: TimeDelta = TimeDelta::hours(1);

/// The format of `updated_since` and `updated_before`: UTC, `YYYYMMDDTHHmmssZ`.
const QUERY_TIME_FORMAT: &str = "%Y%m%dT%H%M%SZ";

/// Writes a time the way `updated_since` and `updated_before` take it (`20140110T000000Z`).
pub fn format_query_time(at: DateTime<Utc>) -> String {
    at.format(QUERY_TIME_FORMAT).to_string()
}

/// One query: the span it asks for and the cursor that is safe once all of it is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Query {
    pub span: Span,
    pub cursor: DateTime<Utc>,
}

/// What a query asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Span {
    /// Records changed in `since..before` (open-ended without `before`).
    Changed {
        since: DateTime<Utc>,
        before: Option<DateTime<Utc>>,
    },
    /// Records of the days `first..=last`.
    Days { first: NaiveDate, last: NaiveDate },
}

/// Where a window's bound goes in a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Place {
    /// A query parameter of this name.
    Param(String),
    /// This placeholder of the URL's path.
    Path(&'static str),
}

/// The queries of a pull of a source with `window`, started at `now`, for a user in `tz`.
pub(super) fn plan(
    window: &Window,
    plan: &PullPlan,
    now: DateTime<Utc>,
    tz: Tz,
    window_days: u32,
) -> Vec<Query> {
    match window {
        Window::Updated { .. } => changed_queries(
            plan,
            now,
            TimeDelta::days(i64::from(window_days)) - WINDOW_MARGIN,
        ),
        Window::Dates { lookback_days, .. } | Window::Timestamps { lookback_days, .. } => {
            day_queries(plan, now, tz, window_days.max(1), *lookback_days)
        }
    }
}

/// A query's bounds as `window` writes them, with where each goes.
pub(super) fn bounds(window: &Window, span: &Span, tz: Tz) -> Vec<(Place, String)> {
    let place = |param: &Option<String>, placeholder: &'static str| match param {
        Some(name) => Place::Param(name.clone()),
        None => Place::Path(placeholder),
    };
    match (window, *span) {
        (
            Window::Updated {
                since: s,
                before: b,
            },
            Span::Changed { since, before },
        ) => {
            let mut out = vec![(Place::Param(s.clone()), format_query_time(since))];
            if let Some(before) = before {
                out.push((Place::Param(b.clone()), format_query_time(before)));
            }
            out
        }
        (
            Window::Dates {
                start,
                end,
                end_exclusive,
                ..
            },
            Span::Days { first, last },
        ) => {
            let end_day = if *end_exclusive { next_day(last) } else { last };
            vec![
                (place(start, START_IN_PATH), first.to_string()),
                (place(end, END_IN_PATH), end_day.to_string()),
            ]
        }
        (
            Window::Timestamps {
                start, end, format, ..
            },
            Span::Days { first, last },
        ) => vec![
            (
                place(start, START_IN_PATH),
                write_instant(start_of(first, tz), format, tz),
            ),
            (
                place(end, END_IN_PATH),
                write_instant(start_of(next_day(last), tz), format, tz),
            ),
        ],
        // A window of one style never plans spans of the other (see `plan`).
        (Window::Updated { .. }, Span::Days { .. })
        | (Window::Dates { .. } | Window::Timestamps { .. }, Span::Changed { .. }) => Vec::new(),
    }
}

fn write_instant(at: DateTime<Utc>, format: &TimeFormat, tz: Tz) -> String {
    match format {
        TimeFormat::Rfc3339 => at.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        TimeFormat::Epoch => at.timestamp().to_string(),
        TimeFormat::Pattern(pattern) => at.with_timezone(&tz).format(pattern).to_string(),
    }
}

/// The queries of a window of change times.
///
/// Times are whole seconds (the query format has no fractions) and windows are contiguous.
/// A cursor is never later than `now - OVERLAP`: a record changed just before `now` may carry a
/// slightly earlier time from the source's clock.
fn changed_queries(plan: &PullPlan, now: DateTime<Utc>, window: TimeDelta) -> Vec<Query> {
    let settled = now - OVERLAP;
    match *plan {
        PullPlan::Incremental { since } => {
            let since = whole_seconds(since.unwrap_or(now - window));
            let mut queries = closed_windows(since, whole_seconds(now - window), window, settled);
            let open_since = queries
                .last()
                .and_then(|q| match q.span {
                    Span::Changed { before, .. } => before,
                    Span::Days { .. } => None,
                })
                .unwrap_or(since);
            queries.push(Query {
                span: Span::Changed {
                    since: open_since,
                    before: None,
                },
                cursor: settled,
            });
            queries
        }
        PullPlan::Windows { from, to } => {
            closed_windows(whole_seconds(from), whole_seconds(to), window, settled)
        }
    }
}

/// Consecutive windows of at most `window` covering `from..to`.
fn closed_windows(
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    window: TimeDelta,
    settled: DateTime<Utc>,
) -> Vec<Query> {
    let mut queries = Vec::new();
    let mut start = from;
    while start < to {
        let end = (start + window).min(to);
        queries.push(Query {
            span: Span::Changed {
                since: start,
                before: Some(end),
            },
            cursor: end.min(settled),
        });
        start = end;
    }
    queries
}

/// The queries of a window of days. An incremental pull starts `lookback_days` before the day
/// of its cursor (or `window_days` back, the first time) and ends today; a full pull or a
/// backfill covers its days.
fn day_queries(
    plan: &PullPlan,
    now: DateTime<Utc>,
    tz: Tz,
    window_days: u32,
    lookback_days: u32,
) -> Vec<Query> {
    let day_of = |at: DateTime<Utc>| at.with_timezone(&tz).date_naive();
    let today = day_of(now);
    let back =
        |day: NaiveDate, n: u32| day.checked_sub_days(Days::new(u64::from(n))).unwrap_or(day);
    let recent = back(today, lookback_days);
    let (first, last) = match *plan {
        PullPlan::Incremental { since } => {
            let first = since.map_or(back(today, window_days - 1), |s| {
                back(day_of(s), lookback_days)
            });
            (first.min(recent), today)
        }
        PullPlan::Windows { from, to } => (day_of(from), day_of(to).min(today)),
    };
    let mut queries = day_windows(first, last.min(back(recent, 1)), window_days, now, tz);
    queries.extend(day_windows(first.max(recent), last, window_days, now, tz));
    queries
}

/// Consecutive spans of at most `window_days` days covering `first..=last`; each one's cursor is
/// the start of the day after it (or `now`, for the span that reaches today).
fn day_windows(
    first: NaiveDate,
    last: NaiveDate,
    window_days: u32,
    now: DateTime<Utc>,
    tz: Tz,
) -> Vec<Query> {
    let mut queries = Vec::new();
    let mut start = first;
    while start <= last {
        let end = start
            .checked_add_days(Days::new(u64::from(window_days - 1)))
            .unwrap_or(last)
            .min(last);
        queries.push(Query {
            span: Span::Days {
                first: start,
                last: end,
            },
            cursor: start_of(next_day(end), tz).min(now),
        });
        if end == NaiveDate::MAX {
            break;
        }
        start = next_day(end);
    }
    queries
}

fn next_day(day: NaiveDate) -> NaiveDate {
    day.succ_opt().unwrap_or(day)
}

/// The instant a day begins in `tz` (the earliest, around daylight-saving changes).
fn start_of(day: NaiveDate, tz: Tz) -> DateTime<Utc> {
    let midnight = day.and_time(NaiveTime::MIN);
    tz.from_local_datetime(&midnight)
        .earliest()
        .map(|t| t.to_utc())
        // A zone that skips midnight (a few do, at daylight-saving changes) starts its day at
        // the first instant after the gap.
        .unwrap_or_else(|| tz.from_utc_datetime(&midnight).to_utc())
}

fn whole_seconds(at: DateTime<Utc>) -> DateTime<Utc> {
    at.with_nanosecond(0).unwrap_or(at)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    fn d(text: &str) -> NaiveDate {
        text.parse().unwrap()
    }

    fn changed(queries: &[Query]) -> Vec<(DateTime<Utc>, Option<DateTime<Utc>>)> {
        queries
            .iter()
            .map(|q| match q.span {
                Span::Changed { since, before } => (since, before),
                Span::Days { .. } => panic!("a window of change times"),
            })
            .collect()
    }

    fn days(queries: &[Query]) -> Vec<(NaiveDate, NaiveDate)> {
        queries
            .iter()
            .map(|q| match q.span {
                Span::Days { first, last } => (first, last),
                Span::Changed { .. } => panic!("a window of days"),
            })
            .collect()
    }

    fn updated() -> Window {
        Window::default()
    }

    fn dates(lookback_days: u32) -> Window {
        Window::Dates {
            start: Some("start_date".into()),
            end: Some("end_date".into()),
            lookback_days,
            end_exclusive: false,
        }
    }

    #[test]
    fn query_times_are_written_as_the_api_wants() {
        let at = t("2014-01-10T00:00:00Z");
        assert_eq!(format_query_time(at), "20140110T000000Z");
    }

    #[test]
    fn incremental_pulls_are_one_open_query() {
        let now = t("2026-11-20T12:00:00.750Z");
        let plan = PullPlan::Incremental {
            since: Some(t("2026-11-20T10:00:00.5Z")),
        };
        let queries = plan_(&updated(), &plan, now, 31);
        assert_eq!(changed(&queries), vec![(t("2026-11-20T10:00:00Z"), None)]);
        assert_eq!(queries[0].cursor, now - OVERLAP);
        // No cursor yet: the last window.
        let first = plan_(&updated(), &PullPlan::Incremental { since: None }, now, 3);
        assert_eq!(changed(&first)[0].0, t("2026-11-17T13:00:00Z"));
    }

    fn plan_(window: &Window, plan: &PullPlan, now: DateTime<Utc>, days: u32) -> Vec<Query> {
        super::plan(window, plan, now, chrono_tz::UTC, days)
    }

    #[test]
    fn an_old_cursor_is_caught_up_in_windows() {
        let now = t("2026-11-20T12:00:00Z");
        let plan = PullPlan::Incremental {
            since: Some(t("2026-09-01T00:00:00Z")),
        };
        let queries = changed_queries(&plan, now, TimeDelta::days(31));
        assert_eq!(
            changed(&queries),
            vec![
                (t("2026-09-01T00:00:00Z"), Some(t("2026-10-02T00:00:00Z"))),
                (t("2026-10-02T00:00:00Z"), Some(t("2026-10-20T12:00:00Z"))),
                (t("2026-10-20T12:00:00Z"), None),
            ]
        );
    }

    #[test]
    fn windows_are_contiguous_bounded_and_their_cursors_settled() {
        let now = t("2026-11-20T12:00:00Z");
        let plan = PullPlan::Windows {
            from: now - TimeDelta::days(100),
            to: now,
        };
        let queries = changed_queries(&plan, now, TimeDelta::days(31));
        let spans = changed(&queries);
        assert_eq!(spans.len(), 4);
        assert_eq!(spans[0].0, now - TimeDelta::days(100));
        for (pair, query) in spans.windows(2).zip(&queries) {
            assert_eq!(pair[0].1, Some(pair[1].0));
            assert_eq!(query.cursor, pair[1].0);
        }
        assert!(spans
            .iter()
            .all(|(since, before)| before.unwrap() - *since <= TimeDelta::days(31)));
        assert_eq!(spans.last().unwrap().1, Some(now));
        assert_eq!(queries.last().unwrap().cursor, now - OVERLAP);
        let empty = PullPlan::Windows { from: now, to: now };
        assert!(changed_queries(&empty, now, TimeDelta::days(31)).is_empty());
    }

    #[test]
    fn days_end_today_in_the_users_timezone_and_the_recent_days_are_one_query() {
        let berlin: Tz = "Europe/Berlin".parse().unwrap();
        // 23:30 UTC on the 20th is already the 21st in Berlin.
        let now = t("2026-11-20T23:30:00Z");
        let first = super::plan(
            &dates(2),
            &PullPlan::Incremental { since: None },
            now,
            berlin,
            31,
        );
        assert_eq!(
            days(&first),
            vec![
                (d("2026-10-22"), d("2026-11-18")),
                (d("2026-11-19"), d("2026-11-21")),
            ]
        );
        assert_eq!(
            first[0].cursor,
            t("2026-11-18T23:00:00Z"),
            "Berlin's midnight"
        );
        assert_eq!(first[1].cursor, now);
        // Later the same day: the very same recent query, and nothing else.
        let again = super::plan(
            &dates(2),
            &PullPlan::Incremental {
                since: Some(first[1].cursor),
            },
            now + TimeDelta::minutes(20),
            berlin,
            31,
        );
        assert_eq!(days(&again), vec![(d("2026-11-19"), d("2026-11-21"))]);
    }

    #[test]
    fn a_cursor_days_behind_is_caught_up_before_the_recent_query() {
        let now = t("2026-11-20T08:00:00Z");
        let plan = PullPlan::Incremental {
            since: Some(t("2026-11-01T08:00:00Z")),
        };
        let queries = plan_(&dates(1), &plan, now, 7);
        assert_eq!(
            days(&queries),
            vec![
                (d("2026-10-31"), d("2026-11-06")),
                (d("2026-11-07"), d("2026-11-13")),
                (d("2026-11-14"), d("2026-11-18")),
                (d("2026-11-19"), d("2026-11-20")),
            ]
        );
        // A lookback longer than a window is split too, and nothing is asked twice.
        let queries = plan_(
            &dates(9),
            &PullPlan::Incremental { since: Some(now) },
            now,
            7,
        );
        assert_eq!(
            days(&queries),
            vec![
                (d("2026-11-11"), d("2026-11-17")),
                (d("2026-11-18"), d("2026-11-20")),
            ]
        );
    }

    #[test]
    fn a_backfill_covers_its_days_and_stops_today() {
        let now = t("2026-11-20T08:00:00Z");
        let plan = PullPlan::Windows {
            from: t("2026-11-01T00:00:00Z"),
            to: t("2026-11-21T00:00:00Z"),
        };
        let queries = plan_(&dates(2), &plan, now, 10);
        assert_eq!(
            days(&queries),
            vec![
                (d("2026-11-01"), d("2026-11-10")),
                (d("2026-11-11"), d("2026-11-17")),
                (d("2026-11-18"), d("2026-11-20")),
            ]
        );
    }

    #[test]
    fn bounds_are_written_in_each_style() {
        let berlin: Tz = "Europe/Berlin".parse().unwrap();
        let span = Span::Days {
            first: d("2026-11-19"),
            last: d("2026-11-20"),
        };
        let param = |n: &str| Place::Param(n.into());
        assert_eq!(
            bounds(&dates(0), &span, berlin),
            vec![
                (param("start_date"), "2026-11-19".into()),
                (param("end_date"), "2026-11-20".into())
            ]
        );
        let exclusive = Window::Dates {
            start: None,
            end: Some("until".into()),
            lookback_days: 0,
            end_exclusive: true,
        };
        assert_eq!(
            bounds(&exclusive, &span, berlin),
            vec![
                (Place::Path(START_IN_PATH), "2026-11-19".into()),
                (param("until"), "2026-11-21".into())
            ]
        );
        let stamps = |format: TimeFormat| Window::Timestamps {
            start: Some("from".into()),
            end: Some("to".into()),
            format,
            lookback_days: 0,
        };
        let written = |format| {
            bounds(&stamps(format), &span, berlin)
                .into_iter()
                .map(|(_, v)| v)
                .collect::<Vec<_>>()
        };
        assert_eq!(
            written(TimeFormat::Rfc3339),
            ["2026-11-18T23:00:00Z", "2026-11-20T23:00:00Z"]
        );
        assert_eq!(written(TimeFormat::Epoch), ["1795042800", "1795215600"]);
        assert_eq!(
            written(TimeFormat::Pattern("%Y-%m-%d %H:%M%z".into())),
            ["2026-11-19 00:00+0100", "2026-11-21 00:00+0100"]
        );
        let change = Span::Changed {
            since: t("2026-11-19T10:00:00Z"),
            before: None,
        };
        let renamed = Window::Updated {
            since: "modified_since".into(),
            before: "modified_before".into(),
        };
        assert_eq!(
            bounds(&renamed, &change, berlin),
            vec![(param("modified_since"), "20261119T100000Z".into())]
        );
    }
}
