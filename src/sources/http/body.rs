//! A reply's JSON body, read without building it: the body is checked once, JSON pointers are
//! followed through borrowed raw values, and only what is asked for is parsed (the records, by
//! the parser's projection; a cursor; a status code). A page of a thousand records never
//! becomes a thousand generic maps.

use std::collections::BTreeMap;

use serde_json::value::RawValue;
use serde_json::Value;

use super::super::excerpt;

/// The reply's body as JSON.
pub(super) fn parse(body: &[u8]) -> Result<&RawValue, String> {
    serde_json::from_slice(body).map_err(|e| {
        format!(
            "the answer is not JSON ({e}): {:?}",
            excerpt(&String::from_utf8_lossy(body), 100)
        )
    })
}

/// What a raw JSON value is, by its first character.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Object,
    Array,
    Null,
    Other,
}

pub(super) fn kind(value: &RawValue) -> Kind {
    match value.get().trim_start().as_bytes().first() {
        Some(b'{') => Kind::Object,
        Some(b'[') => Kind::Array,
        Some(b'n') => Kind::Null,
        _ => Kind::Other,
    }
}

/// The members of an object (none for anything else).
pub(super) fn members(value: &RawValue) -> BTreeMap<String, &RawValue> {
    match kind(value) {
        Kind::Object => serde_json::from_str(value.get()).unwrap_or_default(),
        _ => BTreeMap::new(),
    }
}

/// The items of an array (none for anything else).
pub(super) fn items(value: &RawValue) -> Vec<&RawValue> {
    match kind(value) {
        Kind::Array => serde_json::from_str(value.get()).unwrap_or_default(),
        _ => Vec::new(),
    }
}

/// The value at JSON pointer `pointer` (RFC 6901: `""` is the whole value, `/a/0` the first
/// item of member `a`), as `serde_json::Value::pointer` finds it.
pub(super) fn pointer<'a>(value: &'a RawValue, pointer: &str) -> Option<&'a RawValue> {
    if pointer.is_empty() {
        return Some(value);
    }
    let tokens = pointer.strip_prefix('/')?;
    let mut at = value;
    for token in tokens.split('/') {
        let token = token.replace("~1", "/").replace("~0", "~");
        at = match kind(at) {
            Kind::Object => *members(at).get(&token)?,
            Kind::Array => {
                let index = array_index(&token)?;
                items(at).get(index).copied()?
            }
            Kind::Null | Kind::Other => return None,
        };
    }
    Some(at)
}

/// The value at `pointer`, parsed (for small values: a cursor, a URL, a status).
pub(super) fn value_at(value: &RawValue, at: &str) -> Option<Value> {
    serde_json::from_str(pointer(value, at)?.get()).ok()
}

/// An array index as a pointer writes it: digits, no leading zero.
fn array_index(token: &str) -> Option<usize> {
    if token.starts_with('+') || (token.starts_with('0') && token.len() > 1) {
        return None;
    }
    token.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pointers_find_what_serde_json_finds() {
        let whole = json!({
            "data": [{"a": 1}, {"b": [true, null]}],
            "a/b": {"m~n": "x"},
            "next": null,
            "": 5
        });
        let text = whole.to_string();
        let raw = parse(text.as_bytes()).unwrap();
        for at in [
            "",
            "/data",
            "/data/0",
            "/data/1/b/1",
            "/data/2",
            "/data/01",
            "/a~1b/m~0n",
            "/next",
            "/",
            "/nope",
            "/data/x",
            "/next/x",
            "data",
        ] {
            let ours = pointer(raw, at).map(|r| serde_json::from_str::<Value>(r.get()).unwrap());
            assert_eq!(ours.as_ref(), whole.pointer(at), "{at:?}");
        }
        assert_eq!(items(pointer(raw, "/data").unwrap()).len(), 2);
        assert!(parse(b"{\"a\": [1,}").unwrap_err().contains("not JSON"));
    }
}
