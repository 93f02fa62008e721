//! Exist's attribute templates: the attributes Exist understands, with their group and value
//! type. A configured `template` must be one of these; acquiring it creates it for the user if
//! they lack it. Source: Exist's developer documentation (API v2), "List of attribute
//! templates"; a test compares this table with a transcription of that list.

use super::types::{Group, ValueType};

/// One template: its name, its group and its value type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Template {
    /// The attribute name the template gives, e.g. `steps`.
    pub name: &'static str,
    /// The group it belongs to (and so the write scope it needs).
    pub group: Group,
    /// The type of its values.
    pub value_type: ValueType,
}

const fn t(name: &'static str, group: Group, value_type: ValueType) -> Template {
    Template {
        name,
        group,
        value_type,
    }
}

use Group as G;
use ValueType as V;

/// Every template Exist documents (its developer documentation's list of attribute templates),
/// in the documentation's order.
pub const TEMPLATES: &[Template] = &[
    t("steps", G::Activity, V::Integer),
    t("steps_active_min", G::Activity, V::Duration),
    t("steps_elevation", G::Activity, V::Float),
    t("floors", G::Activity, V::Integer),
    t("steps_distance", G::Activity, V::Float),
    t("stand_hours", G::Activity, V::Integer),
    t("cycle_min", G::Activity, V::Duration),
    t("cycle_distance", G::Activity, V::Float),
    t("active_energy", G::Activity, V::Float),
    t("workouts", G::Workouts, V::Integer),
    t("workouts_min", G::Workouts, V::Duration),
    t("workouts_distance", G::Workouts, V::Float),
    t("productive_min", G::Productivity, V::Duration),
    t("neutral_min", G::Productivity, V::Duration),
    t("distracting_min", G::Productivity, V::Duration),
    t("commits", G::Productivity, V::Integer),
    t("tasks_completed", G::Productivity, V::Integer),
    t("words_written", G::Productivity, V::Integer),
    t("emails_sent", G::Productivity, V::Integer),
    t("emails_received", G::Productivity, V::Integer),
    t("pomodoros_min", G::Productivity, V::Duration),
    t("keystrokes", G::Productivity, V::Integer),
    t("coffees", G::Food, V::Integer),
    t("alcoholic_drinks", G::Food, V::Integer),
    t("energy", G::Food, V::Float),
    t("water", G::Food, V::Integer),
    t("carbohydrates", G::Food, V::Float),
    t("fat", G::Food, V::Float),
    t("fibre", G::Food, V::Float),
    t("protein", G::Food, V::Float),
    t("sugar", G::Food, V::Float),
    t("sodium", G::Food, V::Float),
    t("cholesterol", G::Food, V::Float),
    t("caffeine", G::Food, V::Float),
    t("money_spent", G::Finance, V::Float),
    t("mood", G::Mood, V::Scale),
    t("mood_note", G::Mood, V::String),
    t("energy_level", G::Mood, V::Scale),
    t("stress_level", G::Mood, V::Scale),
    t("sleep", G::Sleep, V::Duration),
    t("time_in_bed", G::Sleep, V::Duration),
    t("sleep_light", G::Sleep, V::Duration),
    t("sleep_deep", G::Sleep, V::Duration),
    t("sleep_rem", G::Sleep, V::Duration),
    t("sleep_start", G::Sleep, V::TimeOfDayFromMidday),
    t("sleep_end", G::Sleep, V::TimeOfDay),
    t("sleep_awakenings", G::Sleep, V::Integer),
    t("events", G::Events, V::Integer),
    t("events_duration", G::Events, V::Duration),
    t("weight", G::Health, V::Float),
    t("body_fat", G::Health, V::Percentage),
    t("lean_mass", G::Health, V::Float),
    t("heartrate", G::Health, V::Integer),
    t("heartrate_max", G::Health, V::Integer),
    t("heartrate_resting", G::Health, V::Integer),
    t("heartrate_variability", G::Health, V::Integer),
    t("meditation_min", G::Health, V::Duration),
    t("menstrual_flow", G::Health, V::Integer),
    t("sexual_activity", G::Health, V::Integer),
    t("checkins", G::Location, V::Integer),
    t("location", G::Location, V::String),
    t("tracks", G::Media, V::Integer),
    t("articles_read", G::Media, V::Integer),
    t("pages_read", G::Media, V::Integer),
    t("mobile_screen_min", G::Media, V::Duration),
    t("gaming_min", G::Media, V::Duration),
    t("tv_min", G::Media, V::Duration),
    t("movies_min", G::Media, V::Duration),
    t("facebook_posts", G::Social, V::Integer),
    t("facebook_comments", G::Social, V::Integer),
    t("facebook_reactions", G::Social, V::Integer),
    t("mastodon_posts", G::Social, V::Integer),
    t("mastodon_replies", G::Social, V::Integer),
    t("mastodon_boosts", G::Social, V::Integer),
    t("mastodon_favourites", G::Social, V::Integer),
    t("tweets", G::Twitter, V::Integer),
    t("twitter_mentions", G::Twitter, V::Integer),
    t("twitter_username", G::Twitter, V::String),
    t("weather_temp_max", G::Weather, V::Float),
    t("weather_temp_min", G::Weather, V::Float),
    t("weather_precipitation", G::Weather, V::Float),
    t("weather_cloud_cover", G::Weather, V::Percentage),
    t("weather_wind_speed", G::Weather, V::Float),
    t("weather_summary", G::Weather, V::String),
    t("weather_icon", G::Weather, V::String),
    t("day_length", G::Weather, V::Duration),
];

/// The template called `name`, if Exist has one.
pub fn find(name: &str) -> Option<&'static Template> {
    TEMPLATES.iter().find(|t| t.name == name)
}

/// The template names closest to `name`, for "did you mean" hints.
pub fn suggest(name: &str) -> Vec<&'static str> {
    let mut close: Vec<_> = TEMPLATES
        .iter()
        .map(|t| (edit_distance(name, t.name), t.name))
        .filter(|(d, n)| *d <= 3 || n.contains(name) || name.contains(n))
        .collect();
    close.sort();
    close.into_iter().take(3).map(|(_, n)| n).collect()
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let next = (prev + usize::from(ca != *cb))
                .min(row[j] + 1)
                .min(row[j + 1] + 1);
            prev = row[j + 1];
            row[j + 1] = next;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::AttributeName;

    #[test]
    fn template_names_are_unique_valid_attribute_names() {
        let mut names: Vec<_> = TEMPLATES.iter().map(|t| t.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), TEMPLATES.len());
        assert!(names.iter().all(|n| AttributeName::new(*n).is_ok()));
    }

    /// The documented list, transcribed by hand from Exist's documentation (the Exist fake's
    /// test reads the same transcription against its own, separately written table).
    const DOCUMENTED: &str = include_str!("../../exist-fakes/src/exist/fixtures/templates.txt");

    #[test]
    fn every_documented_template_is_known_with_its_group_and_type() {
        let group_of = |label: &str| match label {
            "Food and drink" => Some(Group::Food),
            other => Group::from_name(&other.to_ascii_lowercase()),
        };
        let documented: Vec<(String, Group, ValueType)> = DOCUMENTED
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            .map(|l| {
                let cells: Vec<&str> = l.split('|').map(str::trim).collect();
                (
                    cells[0].to_owned(),
                    group_of(cells[1]).unwrap_or_else(|| panic!("group {}", cells[1])),
                    ValueType::from_code(cells[2].parse().unwrap()).unwrap(),
                )
            })
            .collect();
        assert_eq!(documented.len(), 86);
        let ours: Vec<(String, Group, ValueType)> = TEMPLATES
            .iter()
            .map(|t| (t.name.to_owned(), t.group, t.value_type))
            .collect();
        assert_eq!(ours, documented);
        for name in [
            "protein",
            "heartrate",
            "sleep_deep",
            "movies_min",
            "weather_temp_max",
        ] {
            assert!(find(name).is_some(), "{name}");
        }
    }

    #[test]
    fn lookups_and_suggestions() {
        assert_eq!(find("mood").unwrap().value_type, ValueType::Scale);
        assert_eq!(find("steps").unwrap().group, Group::Activity);
        assert!(find("stepz").is_none());
        assert_eq!(suggest("stepz")[0], "steps");
        assert!(suggest("completely_unrelated_thing_here").is_empty());
    }
}
