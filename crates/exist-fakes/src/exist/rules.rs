//! Exist's own rules, as its documentation and its recorded replies state them: value types,
//! groups, scopes, templates, how a new attribute is named, and how broadly values are checked.
//!
//! Nothing here comes from the agent: a rule shared with the agent would pass on both sides when
//! it is wrong. Sources are named in the comments: "D" is Hello Code's documentation repository
//! (`hellocodeco/exist-api-docs`), "N" the real exist.io replies recorded in
//! `NangoHQ/integration-templates` (`integrations/exist/tests/*.test.json`), "N2" that
//! integration author's notes, "L" the OAuth library Exist very probably runs on
//! (`caffeinehit/django-oauth2-provider`). See the table at the top of [`super`].

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Number, Value};

/// The most items one write call may carry (D, every write endpoint).
pub const MAX_ITEMS: usize = 35;

/// A value type, by Exist's code (D `object_types.md`, "Attribute value types").
///
/// Serialized as its code, the way Exist writes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(into = "u8", try_from = "u8")]
pub enum ValueType {
    /// 0: a whole number (a quantity).
    Integer,
    /// 1: a decimal number.
    Float,
    /// 2: text.
    String,
    /// 3: minutes, whole.
    Duration,
    /// 4: minutes from midnight, whole.
    TimeOfDay,
    /// 5: a decimal from 0.0 to 1.0 (Exist does not check the range).
    Percentage,
    /// 6: minutes from midday, whole; templates only (D: cannot be created through the API).
    TimeFromMidday,
    /// 7: 0 or 1 (Exist does not check the range); the type of custom tags.
    Boolean,
    /// 8: 1 to 9, whole (Exist does not check the range).
    Scale,
}

impl ValueType {
    /// Every value type, by code.
    pub const ALL: [ValueType; 9] = [
        Self::Integer,
        Self::Float,
        Self::String,
        Self::Duration,
        Self::TimeOfDay,
        Self::Percentage,
        Self::TimeFromMidday,
        Self::Boolean,
        Self::Scale,
    ];

    /// Exist's code for the type.
    pub fn code(self) -> u8 {
        match self {
            Self::Integer => 0,
            Self::Float => 1,
            Self::String => 2,
            Self::Duration => 3,
            Self::TimeOfDay => 4,
            Self::Percentage => 5,
            Self::TimeFromMidday => 6,
            Self::Boolean => 7,
            Self::Scale => 8,
        }
    }

    /// The type with Exist's code `code`.
    pub fn from_code(code: u64) -> Option<Self> {
        Self::ALL.into_iter().find(|t| u64::from(t.code()) == code)
    }

    /// How the API describes the type in `value_type_description`. Recorded (N): "Integer",
    /// "Float", "Period (min)", "Boolean", "Integer scale (1-9)". The other four are not
    /// recorded anywhere; they are written in the same style (a guess).
    pub fn description(self) -> &'static str {
        match self {
            Self::Integer => "Integer",
            Self::Float => "Float",
            Self::String => "String",
            Self::Duration => "Period (min)",
            Self::TimeOfDay => "Time of day (min from midnight)",
            Self::Percentage => "Percentage",
            Self::TimeFromMidday => "Time of day (min from midday)",
            Self::Boolean => "Boolean",
            Self::Scale => "Integer scale (1-9)",
        }
    }

    /// How the documentation's table of value types describes it (D `object_types.md`).
    pub fn documented_description(self) -> &'static str {
        match self {
            Self::Integer => "Integer quantity",
            Self::Float => "Decimal",
            Self::String => "String",
            Self::Duration => "Duration (minutes as integer)",
            Self::TimeOfDay => "Time of day (minutes from midnight as integer)",
            Self::Percentage => "Percentage (float, 0.0 to 1.0)",
            Self::TimeFromMidday => "Time of day (minutes from midday as integer)",
            Self::Boolean => "Boolean",
            Self::Scale => "Scale (1-9 as integer)",
        }
    }

    /// What kind of JSON value the type holds: that is all Exist checks (D `writing_data.md`:
    /// "values are only validated broadly by type").
    fn kind(self) -> Kind {
        match self {
            Self::Float | Self::Percentage => Kind::Decimal,
            Self::String => Kind::Text,
            _ => Kind::Whole,
        }
    }

    /// Whether `attributes/increment/` takes the type. D: "will not allow incrementing string,
    /// scale, or time of day attributes" (both times of day, 4 and 6). N2 claims only integers
    /// and floats, but D's guide increments durations too; booleans and percentages are not
    /// mentioned anywhere and are allowed here (a guess).
    pub fn can_increment(self) -> bool {
        !matches!(
            self,
            Self::String | Self::Scale | Self::TimeOfDay | Self::TimeFromMidday
        )
    }
}

impl fmt::Display for ValueType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.description())
    }
}

impl From<ValueType> for u8 {
    fn from(value_type: ValueType) -> Self {
        value_type.code()
    }
}

impl TryFrom<u8> for ValueType {
    type Error = String;

    fn try_from(code: u8) -> Result<Self, String> {
        Self::from_code(code.into()).ok_or_else(|| format!("{code} is not an Exist value type"))
    }
}

/// The three shapes of value behind the nine types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Whole,
    Decimal,
    Text,
}

/// An attribute group: its name (used in `group` fields and scope names), the label Exist shows,
/// and its sorting priority.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Group {
    /// As in `group` fields and scope names, e.g. `food`.
    pub name: &'static str,
    /// As Exist shows it, e.g. "Food and drink".
    pub label: &'static str,
    /// Sorting order, lowest first.
    pub priority: u32,
    /// Whether the group has `{name}_read` and `{name}_write` scopes.
    pub scoped: bool,
}

const fn g(name: &'static str, label: &'static str, priority: u32) -> Group {
    Group {
        name,
        label,
        priority,
        scoped: true,
    }
}

/// Every group. Names: D's scope table (`oauth2.md`), which gained `symptoms` and `medication`
/// on 2025-10-22 (per the audit, D commit `ef70dd9`). Labels: D's scope table ("Food and
/// drink", "Health and body"), except `custom`, which real replies label "Daily tags" (N; D
/// calls it "Custom tags"). Priorities recorded in N or D: activity 1, productivity 2, mood 3,
/// custom 3, media 7, social 7; the others are guesses that keep D's order.
///
/// `twitter` is D's group for `tweets`, `twitter_mentions` and `twitter_username` (the template
/// table says "Twitter"), yet D lists no `twitter_*` scope: here those templates can only be
/// owned as manual attributes with `manual_write`. Its real name is unconfirmed.
pub const GROUPS: &[Group] = &[
    g("activity", "Activity", 1),
    g("productivity", "Productivity", 2),
    g("mood", "Mood", 3),
    g("custom", "Daily tags", 3),
    g("sleep", "Sleep", 4),
    g("workouts", "Workouts", 5),
    g("events", "Events", 6),
    g("media", "Media", 7),
    g("social", "Social", 7),
    g("food", "Food and drink", 8),
    g("finance", "Finance", 9),
    g("health", "Health and body", 10),
    g("location", "Location", 11),
    g("weather", "Weather", 12),
    g("symptoms", "Symptoms", 13),
    g("medication", "Medication", 14),
    Group {
        name: "twitter",
        label: "Twitter",
        priority: 15,
        scoped: false,
    },
];

/// The group called `name`.
pub fn group(name: &str) -> Option<&'static Group> {
    GROUPS.iter().find(|g| g.name == name)
}

/// Whether Exist knows `scope`: `{group}_read` or `{group}_write` of a scoped group, or
/// `manual_read` / `manual_write` (D `oauth2.md`, "Scopes").
pub fn is_known_scope(scope: &str) -> bool {
    let Some((subject, access)) = scope.rsplit_once('_') else {
        return false;
    };
    matches!(access, "read" | "write")
        && (subject == "manual" || group(subject).is_some_and(|g| g.scoped))
}

/// One attribute template.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Template {
    /// The attribute name it gives, e.g. `steps`.
    pub name: &'static str,
    /// The label Exist shows.
    pub label: &'static str,
    /// Its group's name.
    pub group: &'static str,
    /// Its value type.
    pub value_type: ValueType,
}

const fn t(name: &'static str, label: &'static str, group: &'static str, code: u8) -> Template {
    let value_type = match code {
        0 => ValueType::Integer,
        1 => ValueType::Float,
        2 => ValueType::String,
        3 => ValueType::Duration,
        4 => ValueType::TimeOfDay,
        5 => ValueType::Percentage,
        6 => ValueType::TimeFromMidday,
        7 => ValueType::Boolean,
        _ => ValueType::Scale,
    };
    Template {
        name,
        label,
        group,
        value_type,
    }
}

/// Every documented template, in the documentation's order (D `object_types.md`, "List of
/// attribute templates"): 86 rows.
///
/// Transcribed from the stored D version of the table (80 rows), plus the six rows the audit
/// read in D's HEAD (`dac19c37`) that the stored version lacks: `heartrate_variability`,
/// `movies_min` and `mastodon_posts`, `_replies`, `_boosts`, `_favourites`. `keystrokes` is an
/// integer (0) as in D's HEAD; older versions said 3. A live `attributes/templates/` answered
/// `count: 79` (N): which documented rows Exist does not list is unconfirmed, so all are served.
///
/// Labels recorded in N or D: Steps, Active minutes, Elevation, Floors, Active energy burned,
/// Energy level, Mood, Tracks played, Facebook reactions, and (D's read guide) Productive time,
/// Neutral time, Distracting time, Time gaming, Tweets, Twitter mentions, Max temp, Min temp,
/// Precipitation, Cloud cover, Wind speed, Day length, Weather summary, Weather icon. The rest
/// are guesses in the same style; clients should not rely on labels.
pub const TEMPLATES: &[Template] = &[
    t("steps", "Steps", "activity", 0),
    t("steps_active_min", "Active minutes", "activity", 3),
    t("steps_elevation", "Elevation", "activity", 1),
    t("floors", "Floors", "activity", 0),
    t("steps_distance", "Distance", "activity", 1),
    t("stand_hours", "Stand hours", "activity", 0),
    t("cycle_min", "Time cycling", "activity", 3),
    t("cycle_distance", "Cycling distance", "activity", 1),
    t("active_energy", "Active energy burned", "activity", 1),
    t("workouts", "Workouts", "workouts", 0),
    t("workouts_min", "Workout time", "workouts", 3),
    t("workouts_distance", "Workout distance", "workouts", 1),
    t("productive_min", "Productive time", "productivity", 3),
    t("neutral_min", "Neutral time", "productivity", 3),
    t("distracting_min", "Distracting time", "productivity", 3),
    t("commits", "Commits", "productivity", 0),
    t("tasks_completed", "Tasks completed", "productivity", 0),
    t("words_written", "Words written", "productivity", 0),
    t("emails_sent", "Emails sent", "productivity", 0),
    t("emails_received", "Emails received", "productivity", 0),
    t("pomodoros_min", "Pomodoro time", "productivity", 3),
    t("keystrokes", "Keystrokes", "productivity", 0),
    t("coffees", "Coffees", "food", 0),
    t("alcoholic_drinks", "Alcoholic drinks", "food", 0),
    t("energy", "Energy consumed", "food", 1),
    t("water", "Water", "food", 0),
    t("carbohydrates", "Carbohydrates", "food", 1),
    t("fat", "Fat", "food", 1),
    t("fibre", "Fibre", "food", 1),
    t("protein", "Protein", "food", 1),
    t("sugar", "Sugar", "food", 1),
    t("sodium", "Sodium", "food", 1),
    t("cholesterol", "Cholesterol", "food", 1),
    t("caffeine", "Caffeine", "food", 1),
    t("money_spent", "Money spent", "finance", 1),
    t("mood", "Mood", "mood", 8),
    t("mood_note", "Mood note", "mood", 2),
    t("energy_level", "Energy level", "mood", 8),
    t("stress_level", "Stress level", "mood", 8),
    t("sleep", "Time asleep", "sleep", 3),
    t("time_in_bed", "Time in bed", "sleep", 3),
    t("sleep_light", "Light sleep", "sleep", 3),
    t("sleep_deep", "Deep sleep", "sleep", 3),
    t("sleep_rem", "REM sleep", "sleep", 3),
    t("sleep_start", "Bedtime", "sleep", 6),
    t("sleep_end", "Wake time", "sleep", 4),
    t("sleep_awakenings", "Awakenings", "sleep", 0),
    t("events", "Events", "events", 0),
    t("events_duration", "Time in events", "events", 3),
    t("weight", "Weight", "health", 1),
    t("body_fat", "Body fat", "health", 5),
    t("lean_mass", "Lean mass", "health", 1),
    t("heartrate", "Heart rate", "health", 0),
    t("heartrate_max", "Max heart rate", "health", 0),
    t("heartrate_resting", "Resting heart rate", "health", 0),
    t(
        "heartrate_variability",
        "Heart rate variability",
        "health",
        0,
    ),
    t("meditation_min", "Meditation", "health", 3),
    t("menstrual_flow", "Menstrual flow", "health", 0),
    t("sexual_activity", "Sexual activity", "health", 0),
    t("checkins", "Check-ins", "location", 0),
    t("location", "Location", "location", 2),
    t("tracks", "Tracks played", "media", 0),
    t("articles_read", "Articles read", "media", 0),
    t("pages_read", "Pages read", "media", 0),
    t("mobile_screen_min", "Phone screen time", "media", 3),
    t("gaming_min", "Time gaming", "media", 3),
    t("tv_min", "Time watching TV", "media", 3),
    t("movies_min", "Time watching movies", "media", 3),
    t("facebook_posts", "Facebook posts", "social", 0),
    t("facebook_comments", "Facebook comments", "social", 0),
    t("facebook_reactions", "Facebook reactions", "social", 0),
    t("mastodon_posts", "Mastodon posts", "social", 0),
    t("mastodon_replies", "Mastodon replies", "social", 0),
    t("mastodon_boosts", "Mastodon boosts", "social", 0),
    t("mastodon_favourites", "Mastodon favourites", "social", 0),
    t("tweets", "Tweets", "twitter", 0),
    t("twitter_mentions", "Twitter mentions", "twitter", 0),
    t("twitter_username", "Twitter username", "twitter", 2),
    t("weather_temp_max", "Max temp", "weather", 1),
    t("weather_temp_min", "Min temp", "weather", 1),
    t("weather_precipitation", "Precipitation", "weather", 1),
    t("weather_cloud_cover", "Cloud cover", "weather", 5),
    t("weather_wind_speed", "Wind speed", "weather", 1),
    t("weather_summary", "Weather summary", "weather", 2),
    t("weather_icon", "Weather icon", "weather", 2),
    t("day_length", "Day length", "weather", 3),
];

/// The template called `name`.
pub fn template(name: &str) -> Option<&'static Template> {
    TEMPLATES.iter().find(|t| t.name == name)
}

impl Template {
    /// Its sorting priority: its position within its group, from 1. Exist's own priorities are
    /// recorded for a handful only (N: steps 1, steps_active_min 2, steps_elevation 3, floors 3,
    /// active_energy 4), so this is an approximation that keeps the documented order.
    pub fn priority(&self) -> u32 {
        let position = TEMPLATES
            .iter()
            .filter(|t| t.group == self.group)
            .position(|t| t.name == self.name)
            .unwrap_or(0);
        u32::try_from(position).unwrap_or(u32::MAX - 1) + 1
    }
}

/// The priority Exist gives a custom attribute: every one recorded has 9 (N), except a tag in
/// `custom` that had 2 (why is unknown, so 9 is used everywhere).
pub const CUSTOM_PRIORITY: u32 = 9;

/// The name Exist gives a custom attribute created with `label`: D's guide calls it a
/// "slugified" label ("Time reading" became `time_reading`), and N shows the same
/// ("Nango Create Demo" became `nango_create_demo`). This follows Django's `slugify`, which a
/// Django service most likely uses, with `_` for its `-`: accents folded to ASCII, everything
/// but letters, digits, `_`, `-` and spaces dropped, lower case, runs of spaces and hyphens
/// made one `_`, leading and trailing `_`/`-` trimmed. The accent folding covers Latin-1 and
/// Latin Extended-A (Django's NFKD reaches further; other letters are dropped here).
///
/// The result may be empty (a label of emoji only): what Exist names such an attribute is
/// unknown, and the create endpoint refuses it here.
pub fn name_for_label(label: &str) -> String {
    let mut ascii = String::with_capacity(label.len());
    for c in label.chars() {
        if c.is_ascii() {
            ascii.push(c);
        } else if let Some(folded) = fold_accent(c) {
            ascii.push_str(folded);
        }
    }
    let mut slug = String::with_capacity(ascii.len());
    let mut pending_separator = false;
    for c in ascii.chars().map(|c| c.to_ascii_lowercase()) {
        if c == '-' || c.is_ascii_whitespace() {
            pending_separator = true;
        } else if c.is_ascii_alphanumeric() || c == '_' {
            if pending_separator && !slug.is_empty() {
                slug.push('_');
            }
            pending_separator = false;
            slug.push(c);
        }
        // Anything else is dropped without separating its neighbours, as Django does.
    }
    slug.trim_matches('_').to_owned()
}

/// What a letter of Latin-1 or Latin Extended-A becomes once its accents are removed (NFKD,
/// then ASCII only), or `None` for letters with no ASCII base (æ, ø, ß, ł, ...).
fn fold_accent(c: char) -> Option<&'static str> {
    // One entry per code point from U+00C0 to U+017F; '.' means "no ASCII base".
    const TABLE: &str = concat!(
        "AAAAAA.CEEEEIIII.NOOOOO..UUUUY..aaaaaa.ceeeeiiii.nooooo..uuuuy.y",
        "AaAaAaCcCcCcCcDd..EeEeEeEeEeGgGgGgGgHh..IiIiIiIiI...JjKk.LlLlLlL",
        "l..NnNnNnn..OoOoOo..RrRrRrSsSsSsSsTtTt..UuUuUuUuUuUuWwYyYZzZzZzs",
    );
    let code = u32::from(c);
    match code {
        0x132 => Some("IJ"),
        0x133 => Some("ij"),
        0xC0..=0x17F => {
            let index = usize::try_from(code - 0xC0).ok()?;
            TABLE.get(index..=index).filter(|s| *s != ".")
        }
        _ => None,
    }
}

/// A value as Exist stores it for an attribute of `value_type`, or why it is refused.
///
/// Only the broad type is checked (D): a whole number for whole types (a JSON float, even
/// `1.0`, is refused with D's message "Cannot apply a float to an integer type"), any number for
/// decimal types (stored as a float), a string for strings. No range is checked: a scale of 12,
/// a percentage of 1.5 or a negative duration is stored (D: "Do not rely on Exist to validate
/// your values beyond enforcing the correct type"). JSON booleans count as 1 and 0 (N2:
/// "booleans are coerced to 1/0"; in Python, Exist's language, `True` is an `int`). Strings are
/// not length-checked: D documents `mood_note`'s 1000 characters but not that Exist enforces it.
pub(crate) fn coerce(value_type: ValueType, value: &Value) -> Result<Value, String> {
    let value = match value {
        Value::Bool(flag) => Value::from(i64::from(*flag)),
        other => other.clone(),
    };
    let refuse = |what: &str| {
        let kind = match value_type.kind() {
            Kind::Whole => "an integer",
            Kind::Decimal => "a float",
            Kind::Text => "a string",
        };
        Err(format!("Cannot apply {what} to {kind} type"))
    };
    match (value_type.kind(), &value) {
        (Kind::Whole, Value::Number(n)) if n.is_i64() => Ok(value),
        (Kind::Whole, Value::Number(n)) if n.is_u64() => refuse("an integer this large"),
        (Kind::Whole, Value::Number(_)) => refuse("a float"),
        (Kind::Decimal, Value::Number(n)) => n
            .as_f64()
            .and_then(Number::from_f64)
            .map(Value::Number)
            .map_or_else(|| refuse("this number"), Ok),
        (Kind::Text, Value::String(_)) => Ok(value),
        (_, Value::String(_)) => refuse("a string"),
        (_, Value::Number(_)) => refuse("a number"),
        (_, Value::Array(_)) => refuse("a list"),
        (_, Value::Object(_)) => refuse("an object"),
        (_, Value::Null | Value::Bool(_)) => refuse("null"),
    }
}

/// The new total when `delta` is added to `current` (absent: nothing stored yet) for an
/// attribute of `value_type`, or why the increment is refused.
pub(crate) fn add(
    value_type: ValueType,
    current: Option<&Value>,
    delta: &Value,
) -> Result<Value, String> {
    if !value_type.can_increment() {
        return Err(format!(
            "Cannot increment an attribute of type '{value_type}': send the total to update instead"
        ));
    }
    let delta = coerce(value_type, delta)?;
    let Some(current) = current else {
        return Ok(delta);
    };
    let sum = match (current.as_i64(), delta.as_i64()) {
        (Some(a), Some(b)) if value_type.kind() == Kind::Whole => a.checked_add(b).map(Value::from),
        _ => match (current.as_f64(), delta.as_f64()) {
            (Some(a), Some(b)) => Number::from_f64(a + b).map(Value::Number),
            _ => None,
        },
    };
    sum.ok_or_else(|| "The new total is out of range".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn there_are_86_templates_with_unique_names_in_known_groups() {
        assert_eq!(TEMPLATES.len(), 86);
        for (i, template) in TEMPLATES.iter().enumerate() {
            assert!(group(template.group).is_some(), "{}", template.name);
            assert!(
                TEMPLATES[..i].iter().all(|t| t.name != template.name),
                "{} twice",
                template.name
            );
            assert_eq!(name_for_label(template.name), template.name);
        }
    }

    #[test]
    fn codes_round_trip() {
        for value_type in ValueType::ALL {
            assert_eq!(
                ValueType::from_code(value_type.code().into()),
                Some(value_type)
            );
        }
        assert_eq!(ValueType::from_code(9), None);
        assert_eq!(serde_json::to_value(ValueType::Scale).unwrap(), json!(8));
    }

    #[test]
    fn scopes_are_group_read_and_write_and_manual() {
        assert!(is_known_scope("activity_write"));
        assert!(is_known_scope("custom_read"));
        assert!(is_known_scope("medication_write"));
        assert!(is_known_scope("manual_write"));
        assert!(!is_known_scope("steps_write"));
        assert!(!is_known_scope("twitter_write"));
        assert!(!is_known_scope("activity_delete"));
        assert!(!is_known_scope("write"));
    }

    #[test]
    fn names_are_slugs_of_labels_the_django_way() {
        assert_eq!(name_for_label("Time reading"), "time_reading");
        assert_eq!(name_for_label("Nango Create Demo"), "nango_create_demo");
        assert_eq!(name_for_label("  Espressos!  "), "espressos");
        assert_eq!(name_for_label("Café au lait"), "cafe_au_lait");
        assert_eq!(name_for_label("Wake-up time"), "wake_up_time");
        assert_eq!(name_for_label("a - b"), "a_b");
        assert_eq!(name_for_label("don't"), "dont");
        assert_eq!(name_for_label("Łódź"), "odz");
        assert_eq!(name_for_label("☕"), "");
        assert_eq!(name_for_label("_x_"), "x");
        assert_eq!(name_for_label("Ĳssel"), "ijssel");
    }

    #[test]
    fn values_are_checked_only_broadly_by_type() {
        use ValueType as V;
        assert_eq!(coerce(V::Scale, &json!(12)), Ok(json!(12)));
        assert_eq!(coerce(V::Percentage, &json!(1.5)), Ok(json!(1.5)));
        assert_eq!(coerce(V::Float, &json!(3)), Ok(json!(3.0)));
        assert_eq!(coerce(V::Boolean, &json!(true)), Ok(json!(1)));
        assert_eq!(coerce(V::Integer, &json!(false)), Ok(json!(0)));
        assert_eq!(coerce(V::Duration, &json!(-5)), Ok(json!(-5)));
        assert_eq!(
            coerce(V::Integer, &json!(1.0)),
            Err("Cannot apply a float to an integer type".into())
        );
        assert!(coerce(V::Integer, &json!("12")).is_err());
        assert!(coerce(V::String, &json!(3)).is_err());
        assert!(coerce(V::Integer, &json!([1])).is_err());
        assert!(coerce(V::Integer, &json!(u64::MAX)).is_err());
        assert_eq!(coerce(V::String, &json!("x")), Ok(json!("x")));
    }

    #[test]
    fn increments_add_and_refuse_what_d_refuses() {
        use ValueType as V;
        assert_eq!(add(V::Integer, Some(&json!(2)), &json!(3)), Ok(json!(5)));
        assert_eq!(add(V::Integer, None, &json!(3)), Ok(json!(3)));
        assert_eq!(add(V::Float, Some(&json!(0.5)), &json!(1)), Ok(json!(1.5)));
        assert!(add(V::Integer, Some(&json!(1)), &json!(0.5)).is_err());
        assert!(add(V::Integer, Some(&json!(i64::MAX)), &json!(1)).is_err());
        for refused in [V::String, V::Scale, V::TimeOfDay, V::TimeFromMidday] {
            assert!(add(refused, None, &json!(1)).is_err());
        }
    }
}
