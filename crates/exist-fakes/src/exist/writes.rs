//! The write endpoints: acquire, release, create, update and increment.
//!
//! Each takes an array of at most 35 objects and judges every item on its own (D): the reply
//! lists `success` and `failed`, each failure echoing its item with `error_code` and `error`,
//! with status 200 when nothing failed and 202 otherwise. A body that is not such an array is
//! refused whole with 400 and changes nothing (the shape of that refusal is not documented; it
//! follows Django REST framework).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::NaiveDate;
use serde_json::{json, Map, Value};

use super::api::attribute_json;
use super::observe::{detail, Faulted};
use super::params::Params;
use super::rules::{self, ValueType, MAX_ITEMS};
use super::state::{strict_day, AttributeInfo, Fault, FaultStage, Misreport, Owner, Shared, World};
use super::tokens::Caller;

type Item = Map<String, Value>;

/// Why one item failed, as Exist's `error_code` and `error`.
///
/// Documented codes: `missing_field` and `validation` (D `writing_data.md`), `unauthorised`
/// (D `attribute_ownership.md`, for release; N2 says writes to attributes this client does not
/// own "fail into `failed`" without naming the code, and the same code is assumed). Guessed
/// codes: `exists` (N2: re-creating "fails with an "exists" error"; D's guide: "an error that
/// this attribute already exists"; Exist's codes are short snake_case words, and N2 quotes this
/// one as the error's name), `not_found` (an unknown attribute or template) and `not_allowed`
/// (no scope for the group): no source names these two.
#[derive(Debug)]
struct ItemError {
    code: &'static str,
    message: String,
}

impl ItemError {
    /// D's wording: "Object at index 0 missing field(s) 'value'".
    fn missing(index: usize, fields: &[&str]) -> Self {
        let fields: Vec<String> = fields.iter().map(|f| format!("'{f}'")).collect();
        Self {
            code: "missing_field",
            message: format!(
                "Object at index {index} missing field(s) {}",
                fields.join(", ")
            ),
        }
    }

    fn validation(message: impl Into<String>) -> Self {
        Self {
            code: "validation",
            message: message.into(),
        }
    }

    fn not_found(what: impl std::fmt::Display) -> Self {
        Self {
            code: "not_found",
            message: format!("{what} does not exist"),
        }
    }

    fn not_allowed(group: &str) -> Self {
        Self {
            code: "not_allowed",
            message: format!("This client has no write scope for the '{group}' group"),
        }
    }

    /// D's wording, recorded for release.
    fn unauthorised(name: &str) -> Self {
        Self {
            code: "unauthorised",
            message: format!("Attribute '{name}' does not belong to this service"),
        }
    }

    fn exists(name: &str) -> Self {
        Self {
            code: "exists",
            message: format!("Attribute '{name}' already exists"),
        }
    }

    /// The failed object: the item as sent, plus the error (D).
    fn echo(self, item: &Item) -> Value {
        let mut failed = item.clone();
        failed.insert("error_code".into(), self.code.into());
        failed.insert("error".into(), self.message.into());
        Value::Object(failed)
    }
}

/// What one item is judged with.
struct Context<'a> {
    caller: &'a Caller,
    /// `?success_objects=1`: reply with full attribute objects instead of echoing the items.
    full_objects: bool,
    /// The user's today, for increments without a date and new attributes.
    today: NaiveDate,
    /// The item's position in the array, for D's "Object at index N" messages.
    index: usize,
}

type Apply = fn(&mut World, &Context<'_>, &Item) -> Result<Value, ItemError>;

/// `POST attributes/acquire/`: makes this client the owner of attributes.
pub(crate) async fn acquire(
    State(shared): State<Arc<Shared>>,
    caller: Caller,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    let path = "/api/2/attributes/acquire/";
    batch(&shared, &caller, path, query, &body, acquire_item)
}

/// `POST attributes/release/`: gives attributes up.
pub(crate) async fn release(
    State(shared): State<Arc<Shared>>,
    caller: Caller,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    let path = "/api/2/attributes/release/";
    batch(&shared, &caller, path, query, &body, release_item)
}

/// `POST attributes/create/`: new attributes, from templates or custom.
pub(crate) async fn create(
    State(shared): State<Arc<Shared>>,
    caller: Caller,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    let path = "/api/2/attributes/create/";
    batch(&shared, &caller, path, query, &body, create_item)
}

/// `POST attributes/update/`: sets days' totals.
pub(crate) async fn update(
    State(shared): State<Arc<Shared>>,
    caller: Caller,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    let path = "/api/2/attributes/update/";
    batch(&shared, &caller, path, query, &body, update_item)
}

/// `POST attributes/increment/`: adds to days' totals.
pub(crate) async fn increment(
    State(shared): State<Arc<Shared>>,
    caller: Caller,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    let path = "/api/2/attributes/increment/";
    batch(&shared, &caller, path, query, &body, increment_item)
}

/// Checks the body as a whole, then applies `apply` to each item under one lock, so a call's
/// items are applied together and in order. A queued [`Fault::Misreport`] for `path` skips
/// its item and misreports it in the reply.
fn batch(
    shared: &Shared,
    caller: &Caller,
    path: &str,
    query: Option<String>,
    body: &Bytes,
    apply: Apply,
) -> Response {
    let items = match parse_items(body) {
        Ok(items) => items,
        Err(why) => return detail(StatusCode::BAD_REQUEST, &why),
    };
    let params = Params::parse(query.unwrap_or_default().as_bytes());
    let misreport = match shared.take_fault(path, FaultStage::Reply) {
        Some(Fault::Misreport { item, how, .. }) if item < items.len() => Some((item, how)),
        _ => None,
    };
    let full_objects = params.flag("success_objects");
    let mut world = shared.world();
    let today = world.today();
    let mut success = Vec::new();
    let mut failed = Vec::new();
    for (index, item) in items.iter().enumerate() {
        if let Some((target, how)) = misreport {
            if target == index {
                failed.extend(misreported(item, how));
                continue;
            }
        }
        let context = Context {
            caller,
            full_objects,
            today,
            index,
        };
        match apply(&mut world, &context, item) {
            Ok(done) => success.push(done),
            Err(error) => failed.push(error.echo(item)),
        }
    }
    drop(world);
    let status = if failed.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    let mut response = (
        status,
        Json(json!({ "success": success, "failed": failed })),
    )
        .into_response();
    if misreport.is_some() {
        response.extensions_mut().insert(Faulted);
    }
    response
}

/// The reply entry of an item a [`Fault::Misreport`] skipped, if it gets one.
fn misreported(item: &Item, how: Misreport) -> Option<Value> {
    let mut entry = item.clone();
    match how {
        Misreport::Omitted => return None,
        Misreport::MissingName => {
            entry.remove("name");
        }
        Misreport::MissingDate => {
            entry.remove("date");
        }
        Misreport::AlteredName => {
            if let Some(Value::String(name)) = entry.get_mut("name") {
                *name = name.to_uppercase();
            }
        }
        Misreport::AlteredDate => {
            if let Some(Value::String(date)) = entry.get_mut("date") {
                date.push_str("T00:00:00");
            }
        }
    }
    entry.insert("error_code".into(), "validation".into());
    entry.insert(
        "error".into(),
        "Fault injected: this failure does not echo its item faithfully".into(),
    );
    Some(Value::Object(entry))
}

/// The body as a list of at most [`MAX_ITEMS`] objects, or why the whole body is refused.
///
/// The body is read as JSON whatever its `Content-Type`: D's own update example sends JSON
/// with no `Content-Type` at all, and D's "important values" table allows
/// `application/x-www-form-urlencoded` (the default of many HTTP clients) as well as
/// `application/json`. A form of `key=value` fields cannot carry a list of items and is refused
/// like any other text that is not JSON.
fn parse_items(body: &[u8]) -> Result<Vec<Item>, String> {
    let parsed: Value =
        serde_json::from_slice(body).map_err(|e| format!("JSON parse error - {e}"))?;
    let Value::Array(items) = parsed else {
        return Err(format!(
            "Expected a list of items but got type \"{}\".",
            python_type(&parsed)
        ));
    };
    if items.len() > MAX_ITEMS {
        return Err(format!(
            "Ensure this field has no more than {MAX_ITEMS} elements; this request has {}. Nothing was applied.",
            items.len()
        ));
    }
    items
        .into_iter()
        .map(|item| match item {
            Value::Object(object) => Ok(object),
            other => Err(format!(
                "Invalid data. Expected a dictionary, but got {}.",
                python_type(&other)
            )),
        })
        .collect()
}

/// The name Python gives the type of a parsed JSON value, as DRF's messages use it.
fn python_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "NoneType",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_f64() => "float",
        Value::Number(_) => "int",
        Value::String(_) => "str",
        Value::Array(_) => "list",
        Value::Object(_) => "dict",
    }
}

/// Acquires by `template` (creating the template's attribute when the user lacks it, D) or by
/// `name` (an attribute the user has, custom ones included: N acquires the custom
/// `nango_registry_test` without D's `allow_user_defined` flag, so the flag is not required).
/// Acquiring an attribute this client already owns succeeds again (N: `steps`, written by the
/// same client moments before, acquired with 200).
fn acquire_item(world: &mut World, context: &Context<'_>, item: &Item) -> Result<Value, ItemError> {
    let manual = optional_bool(item, "manual")?;
    let mut attribute = match (optional_str(item, "template")?, optional_str(item, "name")?) {
        (Some(template), _) => {
            let found = rules::template(template)
                .ok_or_else(|| ItemError::not_found(format!("Template '{template}'")))?;
            match world.attributes.get(template) {
                Some(existing) => existing.clone(),
                // D does not say what `manual` a template created by acquire gets; acquire is
                // what services do, so false.
                None => AttributeInfo::from_template(found, false, context.today),
            }
        }
        (None, Some(name)) => world
            .attributes
            .get(name)
            .cloned()
            .ok_or_else(|| ItemError::not_found(format!("Attribute '{name}'")))?,
        (None, None) => return Err(ItemError::missing(context.index, &["name"])),
    };
    // Without `manual`, the attribute keeps the flag it has (D documents no default).
    let manual = manual.unwrap_or(attribute.manual);
    if !context.caller.scopes.may_write(&attribute.group, manual) {
        return Err(ItemError::not_allowed(&attribute.group));
    }
    attribute.manual = manual;
    attribute.owner = Owner::Client(context.caller.client_id.clone());
    // D's example success item is `{"name": "mood_note", "active": "true"}` (a string there).
    let reply = success_object(context, item, Some(&attribute), [("active", true.into())]);
    world.attributes.insert(attribute.name.clone(), attribute);
    Ok(reply)
}

/// Releases an attribute this client owns. D: ownership passes to another service "or
/// otherwise become\[s\] inactive"; here it always becomes inactive. N records the success item
/// `{"name": ..., "service": "", "active": false}`. No scope is checked: ownership suffices.
fn release_item(world: &mut World, context: &Context<'_>, item: &Item) -> Result<Value, ItemError> {
    let Some(name) = optional_str(item, "name")? else {
        return Err(ItemError::missing(context.index, &["name"]));
    };
    let attribute = world
        .attributes
        .get_mut(name)
        .ok_or_else(|| ItemError::not_found(format!("Attribute '{name}'")))?;
    if !attribute.is_owned_by(&context.caller.client_id) {
        return Err(ItemError::unauthorised(name));
    }
    attribute.owner = Owner::Unowned;
    Ok(success_object(
        context,
        item,
        Some(attribute),
        [("service", "".into()), ("active", false.into())],
    ))
}

/// Creates a template's attribute or a custom one, owned by this client. `manual` defaults to
/// true (D). Re-creating an existing template or label fails as "exists" (see [`ItemError`]):
/// never a second attribute.
fn create_item(world: &mut World, context: &Context<'_>, item: &Item) -> Result<Value, ItemError> {
    let manual = optional_bool(item, "manual")?.unwrap_or(true);
    let mut attribute = match optional_str(item, "template")? {
        Some(template) => {
            let found = rules::template(template)
                .ok_or_else(|| ItemError::not_found(format!("Template '{template}'")))?;
            if world.attributes.contains_key(found.name) {
                return Err(ItemError::exists(found.name));
            }
            AttributeInfo::from_template(found, manual, context.today)
        }
        None => custom_to_create(world, context, item, manual)?,
    };
    if !context.caller.scopes.may_write(&attribute.group, manual) {
        return Err(ItemError::not_allowed(&attribute.group));
    }
    attribute.owner = Owner::Client(context.caller.client_id.clone());
    // Without success_objects, D's guide shows the created attribute's fields with `group` as
    // a plain name: `{"group": "media", "label": "Time reading", "manual": false,
    // "name": "time_reading", "priority": 9, "value_type": 3}`.
    let reply = success_object(
        context,
        item,
        Some(&attribute),
        [
            ("name", attribute.name.clone().into()),
            ("label", attribute.label.clone().into()),
            ("group", attribute.group.clone().into()),
            ("value_type", attribute.value_type.code().into()),
            ("manual", attribute.manual.into()),
            ("priority", attribute.priority.into()),
        ],
    );
    world.attributes.insert(attribute.name.clone(), attribute);
    Ok(reply)
}

/// A custom attribute from `label`, `group` and `value_type`, named by Exist's rule
/// ([`rules::name_for_label`]).
fn custom_to_create(
    world: &World,
    context: &Context<'_>,
    item: &Item,
    manual: bool,
) -> Result<AttributeInfo, ItemError> {
    let absent: Vec<&str> = ["label", "group", "value_type"]
        .into_iter()
        .filter(|f| item.get(*f).is_none_or(Value::is_null))
        .collect();
    if !absent.is_empty() {
        return Err(ItemError::missing(context.index, &absent));
    }
    let label = optional_str(item, "label")?.unwrap_or_default().trim();
    let group_name = optional_str(item, "group")?.unwrap_or_default();
    let group = rules::group(group_name)
        .ok_or_else(|| ItemError::validation(format!("Group '{group_name}' does not exist")))?;
    let value_type = item
        .get("value_type")
        .and_then(Value::as_u64)
        .and_then(ValueType::from_code)
        .ok_or_else(|| ItemError::validation("'value_type' must be a value type from 0 to 8"))?;
    if value_type == ValueType::TimeFromMidday {
        // D: "value type 6 (minutes from midday) is reserved for attribute templates".
        return Err(ItemError::validation(
            "Value type 6 is reserved for templates and cannot be created",
        ));
    }
    let tags = group.name == "custom";
    if tags && value_type != ValueType::Boolean {
        // D: custom tags are booleans "within the custom group"; N2: the group "only accepts
        // value_type 7 (Boolean)". The code of the refusal is not recorded.
        return Err(ItemError::validation(
            "The 'custom' group (Daily tags) only holds booleans (value type 7)",
        ));
    }
    if label.is_empty() {
        return Err(ItemError::validation("'label' may not be blank"));
    }
    // N records the tag `nango_bool_test` with the label "nango bool test", and N2 says the
    // custom group "may return its label lowercased": tags are stored in lower case (the casing
    // of the recorded request is unknown, so this is a guess). Other groups keep the case (N:
    // "Nango Create Demo").
    let label = if tags {
        label.to_lowercase()
    } else {
        label.to_owned()
    };
    let name = rules::name_for_label(&label);
    if name.is_empty() {
        return Err(ItemError::validation(format!(
            "An attribute name cannot be made from the label '{label}'"
        )));
    }
    if world.attributes.contains_key(&name) {
        return Err(ItemError::exists(&name));
    }
    if rules::template(&name).is_some() {
        // A guess: Exist's behaviour for a custom label that names a template is not recorded.
        return Err(ItemError::validation(format!(
            "'{name}' is the name of a template: create or acquire it with {{\"template\": \"{name}\"}}"
        )));
    }
    Ok(AttributeInfo {
        name,
        label,
        group: group.name.to_owned(),
        value_type,
        manual,
        template: None,
        owner: Owner::Unowned,
        priority: rules::CUSTOM_PRIORITY,
        created: context.today,
    })
}

/// Sets one day's total. The value is checked only broadly by type ([`rules`]), and `null`
/// is refused (D: "Non-null values cannot be set back to null"; what Exist answers for a
/// `null` on a day without a value is unknown, and it is refused too).
fn update_item(world: &mut World, context: &Context<'_>, item: &Item) -> Result<Value, ItemError> {
    let absent: Vec<&str> = ["name", "date", "value"]
        .into_iter()
        .filter(|f| !item.contains_key(*f))
        .collect();
    if !absent.is_empty() {
        return Err(ItemError::missing(context.index, &absent));
    }
    let name = required_str(item, "name")?;
    let day = required_day(item)?;
    let value = item.get("value").unwrap_or(&Value::Null);
    if value.is_null() {
        return Err(ItemError::validation(
            "Values cannot be set back to null, to prevent accidental data loss",
        ));
    }
    let value_type = writable(world, context.caller, name)?;
    let stored = rules::coerce(value_type, value).map_err(ItemError::validation)?;
    world.values.insert((name.to_owned(), day), stored.clone());
    // N2: the success entry carries the value as stored ("booleans come back as 1/0").
    Ok(success_object(context, item, None, [("value", stored)]))
}

/// Adds a delta to one day's total (default: the user's today, as N records for an item
/// without `date`); the success entry adds `current`, the new total (D, N).
fn increment_item(
    world: &mut World,
    context: &Context<'_>,
    item: &Item,
) -> Result<Value, ItemError> {
    let absent: Vec<&str> = ["name", "value"]
        .into_iter()
        .filter(|f| item.get(*f).is_none_or(Value::is_null))
        .collect();
    if !absent.is_empty() {
        return Err(ItemError::missing(context.index, &absent));
    }
    let name = required_str(item, "name")?;
    let day = match optional_str(item, "date")? {
        Some(text) => strict_day(text).ok_or_else(bad_date)?,
        None => context.today,
    };
    let value_type = writable(world, context.caller, name)?;
    let delta = item.get("value").unwrap_or(&Value::Null);
    let key = (name.to_owned(), day);
    let total =
        rules::add(value_type, world.values.get(&key), delta).map_err(ItemError::validation)?;
    world.values.insert(key, total.clone());
    Ok(success_object(context, item, None, [("current", total)]))
}

/// The attribute's value type, if this caller may write it: it exists, the caller has the
/// scope for it, and the caller owns it (checked in that order).
fn writable(world: &World, caller: &Caller, name: &str) -> Result<ValueType, ItemError> {
    let attribute = world
        .attributes
        .get(name)
        .ok_or_else(|| ItemError::not_found(format!("Attribute '{name}'")))?;
    if !caller.scopes.may_write(&attribute.group, attribute.manual) {
        return Err(ItemError::not_allowed(&attribute.group));
    }
    if !attribute.is_owned_by(&caller.client_id) {
        return Err(ItemError::unauthorised(name));
    }
    Ok(attribute.value_type)
}

/// A success entry: the full attribute object with `?success_objects=1` (N), otherwise the
/// item as sent with `extra` set over it.
fn success_object<const N: usize>(
    context: &Context<'_>,
    item: &Item,
    attribute: Option<&AttributeInfo>,
    extra: [(&str, Value); N],
) -> Value {
    if let (true, Some(attribute)) = (context.full_objects, attribute) {
        return attribute_json(attribute);
    }
    let mut echoed = item.clone();
    for (key, value) in extra {
        echoed.insert(key.to_owned(), value);
    }
    Value::Object(echoed)
}

fn required_str<'a>(item: &'a Item, field: &str) -> Result<&'a str, ItemError> {
    optional_str(item, field)?
        .ok_or_else(|| ItemError::validation(format!("'{field}' may not be null")))
}

/// A text field; absent and `null` are the same.
fn optional_str<'a>(item: &'a Item, field: &str) -> Result<Option<&'a str>, ItemError> {
    match item.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Ok(Some(text)),
        Some(_) => Err(ItemError::validation(format!("'{field}' must be a string"))),
    }
}

fn optional_bool(item: &Item, field: &str) -> Result<Option<bool>, ItemError> {
    match item.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(flag)) => Ok(Some(*flag)),
        Some(_) => Err(ItemError::validation(format!(
            "'{field}' must be true or false"
        ))),
    }
}

fn required_day(item: &Item) -> Result<NaiveDate, ItemError> {
    strict_day(required_str(item, "date")?).ok_or_else(bad_date)
}

fn bad_date() -> ItemError {
    ItemError::validation("'date' must be a date of format YYYY-mm-dd")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_bodies_are_refused_as_drf_would() {
        assert!(parse_items(b"[]").unwrap().is_empty());
        assert!(parse_items(b"[{")
            .unwrap_err()
            .starts_with("JSON parse error"));
        assert_eq!(
            parse_items(b"{}").unwrap_err(),
            "Expected a list of items but got type \"dict\"."
        );
        assert!(parse_items(b"[{}, 5]").unwrap_err().contains("got int"));
        let many = format!("[{}]", vec!["{}"; 36].join(","));
        assert!(parse_items(many.as_bytes()).unwrap_err().contains("35"));
    }

    #[test]
    fn missing_fields_are_named_as_d_names_them() {
        let error = ItemError::missing(0, &["value"]);
        assert_eq!(error.code, "missing_field");
        assert_eq!(error.message, "Object at index 0 missing field(s) 'value'");
        assert_eq!(
            ItemError::missing(2, &["label", "group"]).message,
            "Object at index 2 missing field(s) 'label', 'group'"
        );
    }

    #[test]
    fn misreports_get_the_echo_wrong_as_asked() {
        let item: Item = serde_json::from_value(json!({
            "name": "steps", "date": "2025-12-01", "value": 3
        }))
        .unwrap();
        assert_eq!(misreported(&item, Misreport::Omitted), None);
        let entry = |how| misreported(&item, how).unwrap();
        assert!(entry(Misreport::MissingName).get("name").is_none());
        assert!(entry(Misreport::MissingDate).get("date").is_none());
        assert_eq!(entry(Misreport::AlteredName)["name"], "STEPS");
        assert_eq!(entry(Misreport::AlteredDate)["date"], "2025-12-01T00:00:00");
        assert_eq!(entry(Misreport::AlteredDate)["error_code"], "validation");
    }
}
