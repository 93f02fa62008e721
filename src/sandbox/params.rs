//! URL-encoded parameters (query strings and form bodies), read by hand so that malformed or
//! unexpected input is the handler's to judge (and answer with a 400), never an extractor's.

/// Parameters in the order they came; for a repeated name, the first one counts.
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

    /// The same parameters with `name` set to `value` (replacing every earlier `name`),
    /// encoded again.
    pub(crate) fn with(&self, name: &str, value: &str) -> String {
        let mut encoded = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in self.0.iter().filter(|(k, _)| k != name) {
            encoded.append_pair(k, v);
        }
        encoded.append_pair(name, value);
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
    fn with_replaces_a_parameter() {
        let params = Params::parse(b"page=1&limit=2");
        assert_eq!(params.with("page", "2"), "limit=2&page=2");
    }
}
