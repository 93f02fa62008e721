//! URL-encoded parameters (query strings and form bodies), read by hand so that malformed or
//! unexpected input is the handler's to judge (and answer as Exist would), never an extractor's.

use std::collections::BTreeMap;

/// Parameters in the order they came; for a repeated name, the first one counts (as Django's
/// `QueryDict.get` returns the last one, this only matters for requests no client sends).
#[derive(Debug, Clone, Default)]
pub(crate) struct Params(Vec<(String, String)>);

impl Params {
    /// Decodes `a=1&b=x+y` (plus signs and percent escapes included).
    pub(crate) fn parse(encoded: &[u8]) -> Self {
        Self(
            url::form_urlencoded::parse(encoded)
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    /// The first value of `name`.
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// A boolean flag as Django REST framework reads one: `true`, `True` or `1` (anything else,
    /// or absence, is false).
    pub(crate) fn flag(&self, name: &str) -> bool {
        self.get(name)
            .is_some_and(|v| matches!(v, "1" | "true" | "True"))
    }

    /// A comma-separated list (`groups=activity,mood`), empty entries dropped; `None` when the
    /// parameter is absent or empty.
    pub(crate) fn list(&self, name: &str) -> Option<Vec<&str>> {
        let list: Vec<&str> = self
            .get(name)?
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect();
        (!list.is_empty()).then_some(list)
    }

    /// The same parameters encoded again the way Django REST framework builds its paging links
    /// (`replace_query_param` / `remove_query_param`): every parameter kept, sorted by name,
    /// with `name` set to `value` (or removed when `value` is `None`). Exist's recorded links
    /// come out in this order (N: `...?attribute=steps&limit=2&page=2`).
    pub(crate) fn replaced(&self, name: &str, value: Option<&str>) -> String {
        let mut sorted: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for (k, v) in &self.0 {
            sorted.entry(k).or_default().push(v);
        }
        match value {
            Some(value) => {
                sorted.insert(name, vec![value]);
            }
            None => {
                sorted.remove(name);
            }
        }
        let mut encoded = url::form_urlencoded::Serializer::new(String::new());
        for (k, values) in sorted {
            for v in values {
                encoded.append_pair(k, v);
            }
        }
        encoded.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_value_wins_and_plus_is_a_space() {
        let params = Params::parse(b"scope=a+b&x=1&x=2");
        assert_eq!(params.get("scope"), Some("a b"));
        assert_eq!(params.get("x"), Some("1"));
        assert_eq!(params.get("y"), None);
    }

    #[test]
    fn links_are_sorted_with_the_page_replaced_or_removed() {
        let params = Params::parse(b"page=1&limit=2&attribute=steps");
        assert_eq!(
            params.replaced("page", Some("2")),
            "attribute=steps&limit=2&page=2"
        );
        assert_eq!(params.replaced("page", None), "attribute=steps&limit=2");
    }

    #[test]
    fn flags_and_lists_read_like_django() {
        let params = Params::parse(b"a=1&b=True&c=yes&groups=mood,,activity");
        assert!(params.flag("a") && params.flag("b") && !params.flag("c") && !params.flag("d"));
        assert_eq!(params.list("groups"), Some(vec!["mood", "activity"]));
        assert_eq!(params.list("none"), None);
    }
}
