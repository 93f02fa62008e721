//! How the pages of one query follow each other, in each paging style, and what makes a query
//! stop: no next page, or a next page that cannot be right (another site, a URL or cursor seen
//! before, the same records again for the next offset).

use std::collections::HashSet;
use std::hash::{Hash, Hasher};

use reqwest::header::{HeaderMap, LINK};
use serde_json::value::RawValue;
use serde_json::Value;
use url::Url;

use super::super::link::next_link;
use crate::config::Paging;

/// A page as the pager reads it.
pub(super) struct Reply<'a> {
    /// The URL it came from.
    pub url: &'a Url,
    pub headers: &'a HeaderMap,
    /// The body, checked to be JSON.
    pub body: &'a RawValue,
    /// The body as received.
    pub raw: &'a [u8],
    /// How many records it held.
    pub records: usize,
    /// `X-Total-Count`, when sent.
    pub total: Option<u64>,
}

/// Why a query cannot go on to a next page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum PageStop {
    /// The pages go in a circle.
    Loops(String),
    /// The next page is somewhere this source's credentials must not go, or not a URL at all.
    BadNext(String),
}

/// Walks one query's pages.
pub(super) struct Pager<'a> {
    paging: &'a Paging,
    /// The page size of `link` paging's offset fallback.
    page_limit: u32,
    first: Url,
    /// Every URL of this query asked for so far.
    visited: HashSet<Url>,
    /// Every cursor token seen in this query.
    tokens: HashSet<String>,
    /// The offset or page number of the page last read.
    position: u64,
    /// A hash of the last page's body, to notice a source that ignores the offset or page.
    last_body: Option<u64>,
}

impl<'a> Pager<'a> {
    /// A pager for the query whose first page is `first` (its parameters already set with
    /// [`first_page_params`]).
    pub fn new(paging: &'a Paging, page_limit: u32, first: Url) -> Self {
        Self {
            paging,
            page_limit,
            visited: HashSet::from([first.clone()]),
            first,
            tokens: HashSet::new(),
            position: match paging {
                Paging::Page { .. } => 1,
                _ => 0,
            },
            last_body: None,
        }
    }

    /// The URL of the page after `reply`, or `None` when the query is complete.
    pub fn next(&mut self, reply: &Reply<'_>) -> Result<Option<Url>, PageStop> {
        let body_hash = hash(reply.raw);
        let repeated = self.last_body.replace(body_hash) == Some(body_hash) && reply.records > 0;
        let next = match self.paging {
            Paging::None {} => None,
            Paging::Link {} if reply.headers.contains_key(LINK) => {
                next_link(reply.headers, reply.url)
            }
            Paging::Link {} => {
                // No Link header: step the offset, bounded by the total (or by a short page).
                self.position += u64::from(self.page_limit);
                let more = reply.records > 0
                    && reply
                        .total
                        .map_or(reply.records >= self.page_limit as usize, |t| {
                            self.position < t
                        });
                more.then(|| with_param(&self.first, "offset", &self.position.to_string()))
            }
            Paging::Offset { param, limit, .. } | Paging::Page { param, limit, .. } => {
                let by_page = matches!(self.paging, Paging::Page { .. });
                if repeated {
                    return Err(PageStop::Loops(format!(
                        "the page at {param}={} holds the same records as the one before: the source does not take `{param}`",
                        self.position
                    )));
                }
                self.position += if by_page { 1 } else { reply.records as u64 };
                let more = reply.records > 0
                    && limit.is_none_or(|l| reply.records >= l as usize)
                    && (by_page || reply.total.is_none_or(|t| self.position < t));
                more.then(|| with_param(&self.first, param, &self.position.to_string()))
            }
            Paging::NextUrl { next } => {
                match super::body::value_at(reply.body, next.as_str()).as_ref() {
                    None | Some(Value::Null) => None,
                    Some(Value::String(s)) if s.is_empty() => None,
                    Some(Value::String(s)) => Some(reply.url.join(s).map_err(|_| {
                        PageStop::BadNext(format!("`{next}` holds \"{s}\", which is not a URL"))
                    })?),
                    Some(other) => {
                        return Err(PageStop::BadNext(format!(
                            "`{next}` holds {}, not the next page's URL",
                            super::super::excerpt(&other.to_string(), 40)
                        )))
                    }
                }
            }
            Paging::Cursor { token, param } => {
                let text = match super::body::value_at(reply.body, token.as_str()).as_ref() {
                    None | Some(Value::Null) => None,
                    Some(Value::String(s)) if s.is_empty() => None,
                    Some(Value::String(s)) => Some(s.clone()),
                    Some(Value::Number(n)) => Some(n.to_string()),
                    Some(other) => {
                        return Err(PageStop::BadNext(format!(
                            "`{token}` holds {}, not a cursor",
                            super::super::excerpt(&other.to_string(), 40)
                        )))
                    }
                };
                match text {
                    None => None,
                    Some(text) if !self.tokens.insert(text.clone()) => {
                        return Err(PageStop::Loops(format!(
                            "the cursor `{}` at `{token}` came back",
                            super::super::excerpt(&text, 40)
                        )))
                    }
                    Some(text) => Some(with_param(&self.first, param, &text)),
                }
            }
        };
        let Some(next) = next else { return Ok(None) };
        if next.origin() != self.first.origin() {
            return Err(PageStop::BadNext(format!(
                "the next page is on another site ({}); the source's credentials are not sent there",
                without_query(&next)
            )));
        }
        if !self.visited.insert(next.clone()) {
            return Err(PageStop::Loops(format!("the next page is {next} again")));
        }
        Ok(Some(next))
    }
}

/// The parameters of a query's first page: `link` paging's `limit`, a page size, page 1.
pub(super) fn first_page_params(paging: &Paging, page_limit: u32) -> Vec<(String, String)> {
    match paging {
        Paging::Link {} => vec![("limit".into(), page_limit.to_string())],
        Paging::Offset {
            limit_param, limit, ..
        } => page_size(limit_param, *limit),
        Paging::Page {
            param,
            limit_param,
            limit,
        } => {
            let mut params = page_size(limit_param, *limit);
            params.push((param.clone(), "1".into()));
            params
        }
        Paging::NextUrl { .. } | Paging::Cursor { .. } | Paging::None {} => Vec::new(),
    }
}

fn page_size(limit_param: &Option<String>, limit: Option<u32>) -> Vec<(String, String)> {
    match (limit_param, limit) {
        (Some(name), Some(limit)) => vec![(name.clone(), limit.to_string())],
        _ => Vec::new(),
    }
}

/// `url` with its parameter `name` set to `value` (replacing any it had).
pub(super) fn with_param(url: &Url, name: &str, value: &str) -> Url {
    let kept: Vec<(String, String)> = url
        .query_pairs()
        .filter(|(key, _)| key != name)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let mut next = url.clone();
    next.query_pairs_mut()
        .clear()
        .extend_pairs(kept)
        .append_pair(name, value);
    next
}

fn without_query(url: &Url) -> String {
    let mut shown = url.clone();
    shown.set_query(None);
    shown.to_string()
}

fn hash(bytes: &[u8]) -> u64 {
    let mut h = std::hash::DefaultHasher::new();
    bytes.hash(&mut h);
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::JsonPointer;
    use reqwest::header::HeaderValue;
    use serde_json::json;

    fn url(text: &str) -> Url {
        Url::parse(text).unwrap()
    }

    /// Feeds `pages` (body, record count) to a pager, returning the URLs it asks for next.
    fn walk(paging: &Paging, pages: &[(Value, usize)]) -> Result<Vec<Url>, PageStop> {
        let first = url("https://api.example.com/v1/items?x=1");
        let mut pager = Pager::new(paging, 50, first.clone());
        let mut at = first;
        let mut asked = Vec::new();
        for (body, records) in pages {
            let raw = body.to_string();
            let reply = Reply {
                url: &at,
                headers: &HeaderMap::new(),
                body: &serde_json::value::to_raw_value(body).unwrap(),
                raw: raw.as_bytes(),
                records: *records,
                total: None,
            };
            match pager.next(&reply)? {
                Some(next) => {
                    asked.push(next.clone());
                    at = next;
                }
                None => break,
            }
        }
        Ok(asked)
    }

    fn pointer(text: &str) -> JsonPointer {
        JsonPointer::parse(text).unwrap()
    }

    #[test]
    fn offsets_step_by_the_records_and_stop_at_a_short_page() {
        let paging = Paging::Offset {
            param: "skip".into(),
            limit_param: Some("take".into()),
            limit: Some(2),
        };
        let asked = walk(
            &paging,
            &[(json!([1, 2]), 2), (json!([3, 4]), 2), (json!([5]), 1)],
        )
        .unwrap();
        let skips: Vec<String> = asked
            .iter()
            .map(|u| {
                u.query_pairs()
                    .find(|(k, _)| k == "skip")
                    .unwrap()
                    .1
                    .into_owned()
            })
            .collect();
        assert_eq!(skips, ["2", "4"]);
        assert_eq!(
            first_page_params(&paging, 500),
            [("take".to_owned(), "2".to_owned())]
        );
    }

    #[test]
    fn an_offset_the_source_ignores_is_a_loop() {
        let paging = Paging::Offset {
            param: "offset".into(),
            limit_param: None,
            limit: None,
        };
        let err = walk(&paging, &[(json!([1, 2]), 2), (json!([1, 2]), 2)]).unwrap_err();
        assert!(
            matches!(&err, PageStop::Loops(m) if m.contains("does not take `offset`")),
            "{err:?}"
        );
    }

    #[test]
    fn pages_count_from_one_and_end_on_an_empty_page() {
        let paging = Paging::Page {
            param: "page".into(),
            limit_param: None,
            limit: None,
        };
        assert_eq!(
            first_page_params(&paging, 500),
            [("page".to_owned(), "1".to_owned())]
        );
        let asked = walk(&paging, &[(json!([1]), 1), (json!([2]), 1), (json!([]), 0)]).unwrap();
        assert_eq!(
            asked.iter().map(|u| u.as_str()).collect::<Vec<_>>(),
            [
                "https://api.example.com/v1/items?x=1&page=2",
                "https://api.example.com/v1/items?x=1&page=3"
            ]
        );
    }

    #[test]
    fn next_urls_are_followed_resolved_and_refused_when_they_repeat_or_leave() {
        let paging = Paging::NextUrl {
            next: pointer("/links/next"),
        };
        let asked = walk(
            &paging,
            &[
                (json!({"links": {"next": "/v1/items?p=2"}}), 5),
                (json!({"links": {"next": null}}), 5),
            ],
        )
        .unwrap();
        assert_eq!(asked, [url("https://api.example.com/v1/items?p=2")]);
        let again = walk(
            &paging,
            &[
                (json!({"links": {"next": "/v1/items?p=2"}}), 5),
                (json!({"links": {"next": "/v1/items?p=2"}, "n": 2}), 5),
            ],
        );
        assert!(matches!(again, Err(PageStop::Loops(_))), "{again:?}");
        let elsewhere = walk(
            &paging,
            &[(json!({"links": {"next": "https://evil.example/steal"}}), 5)],
        );
        assert!(
            matches!(&elsewhere, Err(PageStop::BadNext(m)) if m.contains("another site")),
            "{elsewhere:?}"
        );
        let number = walk(&paging, &[(json!({"links": {"next": 7}}), 5)]);
        assert!(matches!(number, Err(PageStop::BadNext(_))));
    }

    #[test]
    fn cursors_are_sent_back_until_there_is_none_and_a_repeat_is_a_loop() {
        let paging = Paging::Cursor {
            token: pointer("/next_token"),
            param: "next_token".into(),
        };
        let asked = walk(
            &paging,
            &[
                (json!({"next_token": "abc"}), 2),
                (json!({"next_token": 42}), 2),
                (json!({"next_token": null}), 2),
            ],
        )
        .unwrap();
        assert_eq!(
            asked.iter().map(|u| u.as_str()).collect::<Vec<_>>(),
            [
                "https://api.example.com/v1/items?x=1&next_token=abc",
                "https://api.example.com/v1/items?x=1&next_token=42"
            ]
        );
        let looping = walk(
            &paging,
            &[
                (json!({"next_token": "abc"}), 2),
                (json!({"next_token": "def"}), 2),
                (json!({"next_token": "abc"}), 2),
            ],
        );
        assert!(
            matches!(&looping, Err(PageStop::Loops(m)) if m.contains("`abc`")),
            "{looping:?}"
        );
    }

    #[test]
    fn link_headers_lead_and_without_them_the_offset_steps() {
        let first = url("https://h/a?x=1");
        let mut pager = Pager::new(&Paging::Link {}, 2, first.clone());
        let mut headers = HeaderMap::new();
        headers.insert(
            LINK,
            HeaderValue::from_static("</a?x=1&offset=2>; rel=\"next\""),
        );
        let body = serde_json::value::to_raw_value(&json!([1, 2])).unwrap();
        let reply = |headers, total| Reply {
            url: &first,
            headers,
            body: &body,
            raw: b"[1,2]",
            records: 2,
            total,
        };
        assert_eq!(
            pager.next(&reply(&headers, None)).unwrap(),
            Some(url("https://h/a?x=1&offset=2"))
        );
        let mut pager = Pager::new(&Paging::Link {}, 2, first.clone());
        let none = HeaderMap::new();
        assert_eq!(
            pager.next(&reply(&none, Some(3))).unwrap(),
            Some(url("https://h/a?x=1&offset=2"))
        );
        assert_eq!(pager.next(&reply(&none, Some(3))).unwrap(), None);
        assert!(Pager::new(&Paging::None {}, 2, first.clone())
            .next(&reply(&headers, None))
            .unwrap()
            .is_none());
    }

    #[test]
    fn a_parameter_is_replaced_not_repeated() {
        let u = url("https://h/a?x=1&offset=5&limit=50");
        assert_eq!(
            with_param(&u, "offset", "100").as_str(),
            "https://h/a?x=1&limit=50&offset=100"
        );
    }
}
