//! The write endpoints: acquire, release, create, update and increment.
//!
//! Each takes a JSON array of at most 35 objects and judges every item on its own: the reply
//! lists `success` and `failed` (each failure echoing its item with `error_code` and `error`),
//! with status 200 when nothing failed and 202 otherwise. A body that is not such an array is
//! refused whole with 400 and changes nothing.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Map, Value as JsonValue};

use crate::exist::templates;
use crate::exist::types::{AttributeName, Day, Group, Value, ValueType, MAX_BATCH};

use super::api::attribute_json;
use super::observe::detail;
use super::params::Params;
use super::state::{strict_day, AttributeInfo, Owner, Shared, World};
use super::tokens::Caller;

type Item = Map<String, JsonValue>;

/// Why one item failed, as Exist's `error_code` and `error`.
#[derive(Debug)]
struct ItemError {
    code: &'static str,
    message: String,
}

impl ItemError {
    fn missing(field: &str) -> Self {
        Self {
            code: "missing_field",
            message: format!("Field '{field}' is required."),
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
            message: format!("{what} does not exist."),
        }
    }

    fn not_allowed(group: Group) -> Self {
        Self {
            code: "not_allowed",
            message: format!(
                "This client has no write scope for the '{group}' group ({}).",
                group.write_scope()
            ),
        }
    }

    fn unauthorised(name: &str) -> Self {
        Self {
            code: "unauthorised",
            message: format!("Attribute '{name}' does not belong to this service"),
        }
    }

    /// The failed object: the item as sent, plus the error.
    fn echo(self, item: &Item) -> JsonValue {
        let mut failed = item.clone();
        failed.insert("error_code".into(), self.code.into());
        failed.insert("error".into(), self.message.into());
        JsonValue::Object(failed)
    }
}

/// What every item of one call shares.
struct Context<'a> {
    caller: &'a Caller,
    /// `?success_objects=1`: reply with full attribute objects instead of echoing the items.
    full_objects: bool,
    /// The user's today, for increments without a date.
    today: Day,
}

type Apply = fn(&mut World, &Context<'_>, &Item) -> Result<JsonValue, ItemError>;

/// `POST attributes/acquire/`: makes this client the owner of attributes.
pub(crate) async fn acquire(
    State(shared): State<Arc<Shared>>,
    caller: Caller,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    batch(&shared, &caller, query, &headers, &body, acquire_item)
}

/// `POST attributes/release/`: gives attributes up.
pub(crate) async fn release(
    State(shared): State<Arc<Shared>>,
    caller: Caller,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    batch(&shared, &caller, query, &headers, &body, release_item)
}

/// `POST attributes/create/`: new attributes, from templates or custom.
pub(crate) async fn create(
    State(shared): State<Arc<Shared>>,
    caller: Caller,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    batch(&shared, &caller, query, &headers, &body, create_item)
}

/// `POST attributes/update/`: sets days' totals.
pub(crate) async fn update(
    State(shared): State<Arc<Shared>>,
    caller: Caller,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    batch(&shared, &caller, query, &headers, &body, update_item)
}

/// `POST attributes/increment/`: adds to days' totals.
pub(crate) async fn increment(
    State(shared): State<Arc<Shared>>,
    caller: Caller,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    batch(&shared, &caller, query, &headers, &body, increment_item)
}

/// Checks the body as a whole, then applies `apply` to each item under one lock, so a call's
/// items are applied together and in order.
fn batch(
    shared: &Shared,
    caller: &Caller,
    query: Option<String>,
    headers: &HeaderMap,
    body: &Bytes,
    apply: Apply,
) -> Response {
    if !is_json(headers) {
        return detail(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Unsupported media type: send Content-Type: application/json.",
        );
    }
    let items = match parse_items(body) {
        Ok(items) => items,
        Err(why) => return detail(StatusCode::BAD_REQUEST, &why),
    };
    let params = Params::parse(query.unwrap_or_default().as_bytes());
    let full_objects = params
        .get("success_objects")
        .is_some_and(|v| matches!(v, "1" | "true" | "True"));
    let mut world = shared.world();
    let context = Context {
        caller,
        full_objects,
        today: world.today(),
    };
    let mut success = Vec::new();
    let mut failed = Vec::new();
    for item in &items {
        match apply(&mut world, &context, item) {
            Ok(done) => success.push(done),
            Err(error) => failed.push(error.echo(item)),
        }
    }
    let status = if failed.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    (
        status,
        Json(json!({ "success": success, "failed": failed })),
    )
        .into_response()
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"))
}

/// The body as a list of at most [`MAX_BATCH`] objects, or why the whole body is refused.
fn parse_items(body: &[u8]) -> Result<Vec<Item>, String> {
    let parsed: JsonValue =
        serde_json::from_slice(body).map_err(|e| format!("JSON parse error - {e}"))?;
    let JsonValue::Array(items) = parsed else {
        return Err("Expected a list of items (a JSON array).".into());
    };
    if items.len() > MAX_BATCH {
        return Err(format!(
            "At most {MAX_BATCH} items per request; this one has {}. Nothing was applied.",
            items.len()
        ));
    }
    items
        .into_iter()
        .map(|item| match item {
            JsonValue::Object(object) => Ok(object),
            _ => Err("Every item must be a JSON object.".into()),
        })
        .collect()
}

fn acquire_item(
    world: &mut World,
    context: &Context<'_>,
    item: &Item,
) -> Result<JsonValue, ItemError> {
    // Exist's acquire treats an absent `manual` as false: data from a service.
    let manual = optional_bool(item, "manual")?.unwrap_or(false);
    let (name, template) = match (optional_str(item, "template")?, optional_str(item, "name")?) {
        (Some(template), _) => {
            let found = templates::find(template)
                .ok_or_else(|| ItemError::not_found(format!("Template '{template}'")))?;
            (template, Some(found))
        }
        (None, Some(name)) => (name, None),
        (None, None) => return Err(ItemError::missing("template' or 'name")),
    };
    let mut attribute = match (world.attributes.get(name), template) {
        (Some(existing), _) => existing.clone(),
        (None, Some(template)) => AttributeInfo::from_template(template, manual),
        // Only templates are created on acquire; any other name must exist already.
        (None, None) => return Err(ItemError::not_found(format!("Attribute '{name}'"))),
    };
    if !context.caller.scopes.may_write(attribute.group, manual) {
        return Err(ItemError::not_allowed(attribute.group));
    }
    attribute.manual = manual;
    attribute.owner = Owner::Client(context.caller.client_id.clone());
    let reply = success_object(context, item, Some(&attribute), Map::new());
    world.attributes.insert(attribute.name.clone(), attribute);
    Ok(reply)
}

fn release_item(
    world: &mut World,
    context: &Context<'_>,
    item: &Item,
) -> Result<JsonValue, ItemError> {
    let name = required_str(item, "name")?;
    let attribute = world
        .attributes
        .get_mut(name)
        .ok_or_else(|| ItemError::not_found(format!("Attribute '{name}'")))?;
    if !attribute.is_owned_by(&context.caller.client_id) {
        return Err(ItemError::unauthorised(name));
    }
    attribute.owner = Owner::Unowned;
    Ok(success_object(context, item, Some(attribute), Map::new()))
}

fn create_item(
    world: &mut World,
    context: &Context<'_>,
    item: &Item,
) -> Result<JsonValue, ItemError> {
    // Unlike acquire, Exist's create defaults `manual` to true: integrations must send false.
    let manual = optional_bool(item, "manual")?.unwrap_or(true);
    let mut attribute = match optional_str(item, "template")? {
        Some(template) => template_to_create(world, template, manual)?,
        None => custom_to_create(world, item, manual)?,
    };
    if !context.caller.scopes.may_write(attribute.group, manual) {
        return Err(ItemError::not_allowed(attribute.group));
    }
    attribute.owner = Owner::Client(context.caller.client_id.clone());
    // Without success_objects the reply still carries what the client cannot know in advance,
    // above all the name Exist chose.
    let mut created = Map::new();
    created.insert("name".into(), attribute.name.clone().into());
    created.insert("label".into(), attribute.label.clone().into());
    created.insert("group".into(), attribute.group.as_str().into());
    created.insert("value_type".into(), attribute.value_type.code().into());
    created.insert("manual".into(), attribute.manual.into());
    let reply = success_object(context, item, Some(&attribute), created);
    world.attributes.insert(attribute.name.clone(), attribute);
    Ok(reply)
}

fn template_to_create(
    world: &World,
    template: &str,
    manual: bool,
) -> Result<AttributeInfo, ItemError> {
    let found = templates::find(template)
        .ok_or_else(|| ItemError::not_found(format!("Template '{template}'")))?;
    if world.attributes.contains_key(found.name) {
        return Err(ItemError::validation(format!(
            "The user already has the attribute '{template}': acquire it instead."
        )));
    }
    Ok(AttributeInfo::from_template(found, manual))
}

fn custom_to_create(world: &World, item: &Item, manual: bool) -> Result<AttributeInfo, ItemError> {
    let label = required_str(item, "label")?.trim();
    let group_name = required_str(item, "group")?;
    let code = match item.get("value_type") {
        None | Some(JsonValue::Null) => return Err(ItemError::missing("value_type")),
        Some(code) => code,
    };
    if label.is_empty() {
        return Err(ItemError::validation("The label must not be empty."));
    }
    let group = Group::from_name(group_name)
        .ok_or_else(|| ItemError::validation(format!("Unknown group '{group_name}'.")))?;
    let value_type = code
        .as_u64()
        .and_then(|c| u8::try_from(c).ok())
        .and_then(ValueType::from_code)
        .filter(|t| *t != ValueType::TimeOfDayFromMidday)
        .ok_or_else(|| {
            ItemError::validation(format!(
                "Invalid value_type {code}: use 0-5, 7 or 8 (6 is for templates only)."
            ))
        })?;
    Ok(AttributeInfo {
        name: unique_name(world, label)?,
        label: label.to_owned(),
        group,
        value_type,
        manual,
        template: None,
        owner: Owner::Unowned,
    })
}

/// The slug of `label`, suffixed `_2`, `_3`, ... while the user has that name already or a
/// template claims it. Exist does not promise its naming either: clients read the name back.
fn unique_name(world: &World, label: &str) -> Result<String, ItemError> {
    let base = AttributeName::slug_of(label).map_err(|e| ItemError::validation(e.to_string()))?;
    let taken = |name: &str| world.attributes.contains_key(name) || templates::find(name).is_some();
    let mut name = base.as_str().to_owned();
    let mut suffix = 1;
    while taken(&name) {
        suffix += 1;
        name = format!("{base}_{suffix}");
    }
    AttributeName::new(name)
        .map(|n| n.as_str().to_owned())
        .map_err(|e| ItemError::validation(e.to_string()))
}

fn update_item(
    world: &mut World,
    context: &Context<'_>,
    item: &Item,
) -> Result<JsonValue, ItemError> {
    let name = required_str(item, "name")?;
    let day = required_day(item)?;
    let value = match item.get("value") {
        None => return Err(ItemError::missing("value")),
        Some(JsonValue::Null) => {
            return Err(ItemError::validation(
                "null is not a value: values cannot be set back to null.",
            ))
        }
        Some(value) => value,
    };
    let value_type = writable(world, context.caller, name)?;
    value_type
        .check(&typed(value_type, value)?)
        .map_err(|e| ItemError::validation(e.to_string()))?;
    world.values.insert((name.to_owned(), day), value.clone());
    Ok(success_object(context, item, None, Map::new()))
}

fn increment_item(
    world: &mut World,
    context: &Context<'_>,
    item: &Item,
) -> Result<JsonValue, ItemError> {
    let name = required_str(item, "name")?;
    let day = match optional_str(item, "date")? {
        Some(text) => strict_day(text).ok_or_else(bad_date)?,
        None => context.today,
    };
    let delta = match item.get("value") {
        None | Some(JsonValue::Null) => return Err(ItemError::missing("value")),
        Some(value) => value,
    };
    let value_type = writable(world, context.caller, name)?;
    if matches!(
        value_type,
        ValueType::String
            | ValueType::Scale
            | ValueType::TimeOfDay
            | ValueType::TimeOfDayFromMidday
    ) {
        return Err(ItemError::validation(format!(
            "A {value_type} attribute cannot be incremented: use update."
        )));
    }
    let delta = typed(value_type, delta)?;
    let key = (name.to_owned(), day);
    let current = match world.values.get(&key) {
        Some(stored) => typed(value_type, stored)?,
        None => Value::Int(0),
    };
    let total = add(&current, &delta)?;
    value_type
        .check(&total)
        .map_err(|e| ItemError::validation(format!("The new total {total} is invalid: {e}.")))?;
    let total = serde_json::to_value(&total).map_err(|e| ItemError::validation(e.to_string()))?;
    world.values.insert(key, total.clone());
    let mut extra = Map::new();
    extra.insert("current".into(), total);
    Ok(success_object(context, item, None, extra))
}

/// The attribute's value type, if this caller may write it: it exists, the caller has the
/// scope for it, and the caller owns it (checked in that order).
fn writable(world: &World, caller: &Caller, name: &str) -> Result<ValueType, ItemError> {
    let attribute = world
        .attributes
        .get(name)
        .ok_or_else(|| ItemError::not_found(format!("Attribute '{name}'")))?;
    if !caller.scopes.may_write(attribute.group, attribute.manual) {
        return Err(ItemError::not_allowed(attribute.group));
    }
    if !attribute.is_owned_by(&caller.client_id) {
        return Err(ItemError::unauthorised(name));
    }
    Ok(attribute.value_type)
}

/// A JSON value as a typed [`Value`], refusing what no value type accepts (booleans, lists,
/// objects) and fractions for whole-number types (`1.0` included, as JSON says it is a float).
fn typed(value_type: ValueType, json: &JsonValue) -> Result<Value, ItemError> {
    let wrong =
        || ItemError::validation(format!("Wrong kind of value for a {value_type} attribute."));
    let value: Value = serde_json::from_value(json.clone()).map_err(|_| wrong())?;
    match value {
        Value::Float(_) if value_type.is_whole() => Err(wrong()),
        Value::Text(_) if value_type != ValueType::String => Err(wrong()),
        value => Ok(value),
    }
}

fn add(current: &Value, delta: &Value) -> Result<Value, ItemError> {
    let overflow = || ItemError::validation("The new total is out of range.");
    match (current, delta) {
        (Value::Int(a), Value::Int(b)) => a.checked_add(*b).map(Value::Int).ok_or_else(overflow),
        _ => match (current.as_f64(), delta.as_f64()) {
            (Some(a), Some(b)) => Ok(Value::Float(a + b)),
            _ => Err(ItemError::validation("Text cannot be incremented.")),
        },
    }
}

/// A success entry: the full attribute object with `?success_objects=1`, otherwise the item as
/// sent plus `extra`.
fn success_object(
    context: &Context<'_>,
    item: &Item,
    attribute: Option<&AttributeInfo>,
    extra: Map<String, JsonValue>,
) -> JsonValue {
    if let (true, Some(attribute)) = (context.full_objects, attribute) {
        return attribute_json(attribute);
    }
    let mut echoed = item.clone();
    echoed.extend(extra);
    JsonValue::Object(echoed)
}

fn required_str<'a>(item: &'a Item, field: &str) -> Result<&'a str, ItemError> {
    optional_str(item, field)?.ok_or_else(|| ItemError::missing(field))
}

/// A text field; absent and `null` are the same.
fn optional_str<'a>(item: &'a Item, field: &str) -> Result<Option<&'a str>, ItemError> {
    match item.get(field) {
        None | Some(JsonValue::Null) => Ok(None),
        Some(JsonValue::String(text)) => Ok(Some(text)),
        Some(_) => Err(ItemError::validation(format!(
            "'{field}' must be a string."
        ))),
    }
}

fn optional_bool(item: &Item, field: &str) -> Result<Option<bool>, ItemError> {
    match item.get(field) {
        None | Some(JsonValue::Null) => Ok(None),
        Some(JsonValue::Bool(flag)) => Ok(Some(*flag)),
        Some(_) => Err(ItemError::validation(format!(
            "'{field}' must be true or false."
        ))),
    }
}

fn required_day(item: &Item) -> Result<Day, ItemError> {
    strict_day(required_str(item, "date")?).ok_or_else(bad_date)
}

fn bad_date() -> ItemError {
    ItemError::validation("'date' must be a date written YYYY-MM-DD.")
}
