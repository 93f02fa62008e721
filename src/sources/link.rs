//! The `Link` header (RFC 8288), parsed with the algorithm of its Appendix B.
//!
//! Written here because the published crates get the cases that pagination depends on wrong
//! (see `reference/source-sync.md`): several relation types in one `rel`, commas and semicolons
//! inside URLs and quoted parameters, relative targets, upper-case relation types.

use std::fmt::{self, Write as _};

use reqwest::header::{HeaderMap, LINK};
use url::Url;

/// One link: a target and one relation type, with the link's other parameters.
///
/// As in RFC 8288, a header entry with `rel="next last"` gives two links, one per relation type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// The target, resolved against the URL of the request that returned it.
    pub target: Url,
    /// The relation type, lower-cased (relation types compare case-insensitively).
    pub rel: String,
    /// The link's other parameters (`title`, `type`, `anchor`...) in order, names lower-cased,
    /// values unquoted; `name*` values (RFC 8187) are decoded.
    pub params: Vec<(String, String)>,
}

impl fmt::Display for Link {
    /// Writes the link as one header entry, every value quoted (`name*` values RFC 8187-encoded).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<{}>; rel=", self.target)?;
        write_quoted(f, &self.rel)?;
        for (name, value) in &self.params {
            write!(f, "; {name}=")?;
            if name.ends_with('*') {
                write_ext_value(f, value)?;
            } else {
                write_quoted(f, value)?;
            }
        }
        Ok(())
    }
}

/// Writes `links` as one `Link` header value.
pub fn format_link_header(links: &[Link]) -> String {
    let mut header = String::new();
    for (i, link) in links.iter().enumerate() {
        if i > 0 {
            header.push_str(", ");
        }
        // Writing to a String cannot fail.
        let _ = write!(header, "{link}");
    }
    header
}

/// The `next` target among all `Link` headers of a response, if any.
pub fn next_link(headers: &HeaderMap, base: &Url) -> Option<Url> {
    headers
        .get_all(LINK)
        .iter()
        .flat_map(|value| parse_link_header(&String::from_utf8_lossy(value.as_bytes()), base))
        .find(|link| link.rel == "next")
        .map(|link| link.target)
}

/// Parses one `Link` header value (RFC 8288 Appendix B.2), resolving targets against `base`.
///
/// Like the RFC's algorithm it stops at the first entry it cannot read and returns the links
/// read so far; entries with an unresolvable target or no `rel` give no link.
pub fn parse_link_header(value: &str, base: &Url) -> Vec<Link> {
    let mut links = Vec::new();
    let mut rest = value;
    loop {
        // Leading whitespace and the list's commas (empty list elements are allowed).
        rest = rest.trim_start_matches([' ', '\t', ',']);
        let Some(after) = rest.strip_prefix('<') else {
            return links;
        };
        let Some(end) = after.find('>') else {
            return links;
        };
        let target = &after[..end];
        let (params, tail) = parse_params(&after[end + 1..]);
        rest = tail;
        let Ok(target) = base.join(target) else {
            continue;
        };
        // Only the first `rel` counts (RFC 8288 §3.3).
        let rels = params
            .iter()
            .find(|(name, _)| name == "rel")
            .map_or("", |(_, value)| value.as_str());
        let others: Vec<(String, String)> = params
            .iter()
            .filter(|(name, _)| name != "rel")
            .cloned()
            .collect();
        for rel in rels.split_ascii_whitespace() {
            links.push(Link {
                target: target.clone(),
                rel: rel.to_ascii_lowercase(),
                params: others.clone(),
            });
        }
    }
}

const OWS: [char; 2] = [' ', '\t'];

/// Link parameters (Appendix B.3): `; name=value` repeated; returns them and what follows.
fn parse_params(mut rest: &str) -> (Vec<(String, String)>, &str) {
    let mut params = Vec::new();
    loop {
        let trimmed = rest.trim_start_matches(OWS);
        let Some(after) = trimmed.strip_prefix(';') else {
            return (params, trimmed);
        };
        let after = after.trim_start_matches(OWS);
        let name_end = after
            .find(['=', ';', ',', ' ', '\t'])
            .unwrap_or(after.len());
        let name = after[..name_end].to_ascii_lowercase();
        let after = after[name_end..].trim_start_matches(OWS);
        let (value, tail) = match after.strip_prefix('=') {
            None => (String::new(), after),
            Some(value) => {
                let value = value.trim_start_matches(OWS);
                if value.starts_with('"') {
                    parse_quoted(value)
                } else {
                    let end = value.find([';', ',']).unwrap_or(value.len());
                    (value[..end].trim_end_matches(OWS).to_owned(), &value[end..])
                }
            }
        };
        rest = tail;
        if name.is_empty() {
            continue;
        }
        let value = match name.ends_with('*') {
            true => decode_ext_value(&value).unwrap_or(value),
            false => value,
        };
        params.push((name, value));
    }
}

/// A quoted string (Appendix B.4), starting at its opening quote; returns it unescaped and
/// what follows the closing quote (nothing, if it is never closed).
fn parse_quoted(text: &str) -> (String, &str) {
    let mut value = String::new();
    let mut chars = text.char_indices().skip(1);
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return (value, &text[i + 1..]),
            '\\' => value.extend(chars.next().map(|(_, escaped)| escaped)),
            _ => value.push(c),
        }
    }
    (value, "")
}

fn write_quoted(f: &mut impl fmt::Write, value: &str) -> fmt::Result {
    f.write_char('"')?;
    for c in value.chars() {
        if matches!(c, '"' | '\\') {
            f.write_char('\\')?;
        }
        f.write_char(c)?;
    }
    f.write_char('"')
}

/// RFC 8187: `charset'language'percent-encoded`; UTF-8 and ISO-8859-1 are understood.
fn decode_ext_value(value: &str) -> Option<String> {
    let mut parts = value.splitn(3, '\'');
    let (charset, _language, encoded) = (parts.next()?, parts.next()?, parts.next()?);
    let mut bytes = Vec::with_capacity(encoded.len());
    let mut rest = encoded.as_bytes();
    while let Some((&b, tail)) = rest.split_first() {
        if b == b'%' {
            let hex = std::str::from_utf8(tail.get(..2)?).ok()?;
            bytes.push(u8::from_str_radix(hex, 16).ok()?);
            rest = &tail[2..];
        } else {
            bytes.push(b);
            rest = tail;
        }
    }
    if charset.eq_ignore_ascii_case("utf-8") {
        String::from_utf8(bytes).ok()
    } else if charset.eq_ignore_ascii_case("iso-8859-1") {
        Some(bytes.into_iter().map(char::from).collect())
    } else {
        None
    }
}

fn write_ext_value(f: &mut impl fmt::Write, value: &str) -> fmt::Result {
    f.write_str("UTF-8''")?;
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
            f.write_char(char::from(b))?;
        } else {
            write!(f, "%{b:02X}")?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use reqwest::header::HeaderValue;

    fn base() -> Url {
        Url::parse("https://host/v1/human/activities?limit=50").unwrap()
    }

    fn rels_and_targets(header: &str) -> Vec<(String, String)> {
        parse_link_header(header, &base())
            .into_iter()
            .map(|l| (l.rel, l.target.to_string()))
            .collect()
    }

    fn pairs(expected: &[(&str, &str)]) -> Vec<(String, String)> {
        expected
            .iter()
            .map(|(r, t)| (r.to_string(), t.to_string()))
            .collect()
    }

    #[test]
    fn several_links_in_one_header() {
        let header = r#"<https://host/v1/human/activities?limit=50&offset=50>; rel="next", <https://host/v1/human/activities?limit=50&offset=100>; rel="last""#;
        assert_eq!(
            rels_and_targets(header),
            pairs(&[
                (
                    "next",
                    "https://host/v1/human/activities?limit=50&offset=50"
                ),
                (
                    "last",
                    "https://host/v1/human/activities?limit=50&offset=100"
                ),
            ])
        );
    }

    #[test]
    fn several_relation_types_in_one_rel() {
        let header = r#"<https://host/p2>; rel="next last""#;
        assert_eq!(
            rels_and_targets(header),
            pairs(&[("next", "https://host/p2"), ("last", "https://host/p2")])
        );
        let spaced = "<https://host/p2>; rel=\"  next \t last \"";
        assert_eq!(rels_and_targets(spaced).len(), 2);
    }

    #[test]
    fn commas_and_semicolons_inside_urls() {
        let header = "<https://host/v1/a;v=2?fields=a,b&limit=50>; rel=next, <https://host/v1/a?fields=a,b;c>; rel=last";
        assert_eq!(
            rels_and_targets(header),
            pairs(&[
                ("next", "https://host/v1/a;v=2?fields=a,b&limit=50"),
                ("last", "https://host/v1/a?fields=a,b;c"),
            ])
        );
    }

    #[test]
    fn relative_targets_resolve_against_the_request() {
        let header = r#"</v1/human/activities?offset=50>; rel="next", <?offset=100>; rel="last", <other>; rel="related""#;
        assert_eq!(
            rels_and_targets(header),
            pairs(&[
                ("next", "https://host/v1/human/activities?offset=50"),
                ("last", "https://host/v1/human/activities?offset=100"),
                ("related", "https://host/v1/human/other"),
            ])
        );
    }

    #[test]
    fn quoted_parameters_may_hold_commas_semicolons_and_escapes() {
        let header = r#"<https://host/a>; title="a, b; c"; rel="next", <https://host/b>; title="say \"hi\" \\ <x>"; rel=last"#;
        let links = parse_link_header(header, &base());
        assert_eq!(links.len(), 2);
        assert_eq!(links[0].rel, "next");
        assert_eq!(links[0].params, vec![("title".into(), "a, b; c".into())]);
        assert_eq!(links[1].rel, "last");
        assert_eq!(
            links[1].params,
            vec![("title".into(), r#"say "hi" \ <x>"#.into())]
        );
    }

    #[test]
    fn relation_types_are_case_insensitive_and_may_be_unquoted() {
        assert_eq!(
            rels_and_targets(r#"<https://host/a>; rel="NEXT""#)[0].0,
            "next"
        );
        assert_eq!(rels_and_targets("<https://host/a>; REL=Next")[0].0, "next");
        assert_eq!(rels_and_targets("<https://host/a>;rel=next")[0].0, "next");
        assert_eq!(
            rels_and_targets("<https://host/a> ; rel = \"next\" ")[0].0,
            "next"
        );
    }

    #[test]
    fn only_the_first_rel_counts_and_a_link_without_rel_is_no_link() {
        assert_eq!(
            rels_and_targets("<https://host/a>; rel=next; rel=last"),
            pairs(&[("next", "https://host/a")])
        );
        assert!(rels_and_targets(r#"<https://host/a>; title="x""#).is_empty());
    }

    #[test]
    fn parameters_without_values_and_extended_values() {
        let header =
            "<https://host/a>; crossorigin; rel=next; title*=UTF-8'de'n%C3%A4chste%20Seite";
        let links = parse_link_header(header, &base());
        assert_eq!(
            links[0].params,
            vec![
                ("crossorigin".into(), String::new()),
                ("title*".into(), "nächste Seite".into())
            ]
        );
        assert_eq!(
            links[0].to_string(),
            r#"<https://host/a>; rel="next"; crossorigin=""; title*=UTF-8''n%C3%A4chste%20Seite"#
        );
    }

    #[test]
    fn garbage_stops_parsing_and_keeps_what_was_read() {
        assert!(rels_and_targets("").is_empty());
        assert!(rels_and_targets("next").is_empty());
        assert!(rels_and_targets("<https://host/a; rel=next").is_empty());
        assert_eq!(
            rels_and_targets("<https://host/a>; rel=next, junk, <https://host/b>; rel=last"),
            pairs(&[("next", "https://host/a")])
        );
        assert_eq!(rels_and_targets(", , <https://host/a>; rel=next,").len(), 1);
        // An unterminated quoted value ends the header.
        assert_eq!(
            rels_and_targets(r#"<https://host/a>; rel="next"#)[0].0,
            "next"
        );
    }

    #[test]
    fn next_link_looks_through_every_link_header() {
        let mut headers = HeaderMap::new();
        headers.append(LINK, HeaderValue::from_static("</first>; rel=first"));
        headers.append(
            LINK,
            HeaderValue::from_static(r#"</prev>; rel="prev", </next?a=1,2>; rel="next""#),
        );
        assert_eq!(
            next_link(&headers, &base()).unwrap().as_str(),
            "https://host/next?a=1,2"
        );
        headers.remove(LINK);
        headers.append(LINK, HeaderValue::from_static("</last>; rel=last"));
        assert_eq!(next_link(&headers, &base()), None);
    }

    fn url_strategy() -> impl Strategy<Value = Url> {
        (
            prop_oneof![Just("http"), Just("https")],
            "[a-z]{1,10}(\\.[a-z]{2,5})?",
            proptest::option::of(1u16..65535),
            proptest::collection::vec("[a-zA-Z0-9,;=._~!$&'()*+@:-]{0,8}", 0..4),
            proptest::option::of("[a-zA-Z0-9,;=&._~/?:@!$'()*+-]{0,20}"),
        )
            .prop_filter_map("a valid URL", |(scheme, host, port, segments, query)| {
                let port = port.map(|p| format!(":{p}")).unwrap_or_default();
                let query = query.map(|q| format!("?{q}")).unwrap_or_default();
                Url::parse(&format!(
                    "{scheme}://{host}{port}/{}{query}",
                    segments.join("/")
                ))
                .ok()
            })
    }

    fn link_strategy() -> impl Strategy<Value = Link> {
        (
            url_strategy(),
            "[a-z][a-z0-9.-]{0,10}",
            proptest::collection::vec(
                (
                    "[a-z][a-z0-9-]{0,8}\\*?".prop_filter("not rel", |n| n != "rel"),
                    "[ -~]{0,16}|\\PC{0,6}",
                ),
                0..4,
            ),
        )
            .prop_map(|(target, rel, params)| Link {
                target,
                rel,
                params,
            })
    }

    proptest! {
        #[test]
        fn formatting_then_parsing_gives_the_links_back(links in proptest::collection::vec(link_strategy(), 0..5)) {
            let header = format_link_header(&links);
            prop_assert_eq!(parse_link_header(&header, &base()), links);
        }
    }
}
