//! Data that is pushed: records POSTed to a running daemon's inbox are stored before the 2xx,
//! synced at once (debounced), and reach Exist on the right days; wrong tokens, oversized and
//! malformed bodies are refused without storing anything.

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::mpsc::Receiver;
use std::time::Duration;

use crate::common::{free_port, World};
use chrono::{FixedOffset, TimeZone};
use exist_fakes::services::health_auto_export::{Export, Metric};

const TOKEN: &str = "inbox-token-0123456789abcdef";

/// A world with an inbox `phone` of `format` feeding `steps` (sum of `qty`), listening on a
/// free port, in the user's timezone `tz`.
fn inbox_world(format: &str, tz: &str) -> (World, u16) {
    let port = free_port();
    let world = World::new("");
    world.write_config(&format!(
        "[[source]]\nname = \"phone\"\nkind = \"inbox\"\nformat = \"{format}\"\ntoken_env = \"PHONE_TOKEN\"\ndate_field = \"date\"\n\n[[attribute]]\ntemplate = \"steps\"\nsource = \"phone\"\nfield = \"qty\"\naggregate = \"sum\"\n"
    ));
    let config = std::fs::read_to_string(&world.config_path).unwrap();
    let config = config.replacen(
        "[agent]\n",
        &format!("[agent]\nlisten = \"127.0.0.1:{port}\"\n"),
        1,
    );
    let config = config.replacen("[exist]\n", &format!("[exist]\ntimezone = \"{tz}\"\n"), 1);
    std::fs::write(&world.config_path, config).unwrap();
    world.login_with(&["activity_write"]);
    (world, port)
}

/// A running daemon and the lines of its log.
struct Running {
    child: Child,
    lines: Receiver<String>,
}

impl Running {
    fn start(world: &World) -> Self {
        let mut child = world
            .std_cmd()
            .arg("run")
            .env("PHONE_TOKEN", TOKEN)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = BufReader::new(child.stderr.take().unwrap());
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            stderr
                .lines()
                .map_while(Result::ok)
                .for_each(|l| drop(tx.send(l)))
        });
        let running = Self { child, lines };
        running.wait_for("accepting deliveries");
        running
    }

    fn wait_for(&self, needle: &str) {
        loop {
            let line = self
                .lines
                .recv_timeout(Duration::from_secs(30))
                .unwrap_or_else(|_| panic!("no daemon line with {needle:?}"));
            if line.contains(needle) {
                return;
            }
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn post(world: &World, port: u16, token: Option<&str>, body: String) -> (u16, String) {
    let mut request = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{port}/inbox/phone"))
        .header("content-type", "application/json")
        .body(body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    world.rt.block_on(async {
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.text().await.unwrap())
    })
}

fn at(offset_hours: i32, date: &str, time: &str) -> chrono::DateTime<FixedOffset> {
    let offset = FixedOffset::east_opt(offset_hours * 3600).unwrap();
    let naive =
        chrono::NaiveDateTime::parse_from_str(&format!("{date} {time}"), "%Y-%m-%d %H:%M").unwrap();
    offset.from_local_datetime(&naive).unwrap()
}

/// Three days of steps from a trip: New York (-05:00) on the first two, Berlin (+01:00) on the
/// third. The late evening in New York is the next morning in Berlin.
fn travel_steps() -> Export {
    Export::new().metric(
        Metric::new("step_count", "count")
            .point_from(at(-5, "2026-11-16", "09:00"), 4000.0, "iPhone")
            .point_from(at(-5, "2026-11-16", "21:30"), 500.0, "iPhone")
            .point_from(at(-5, "2026-11-17", "12:00"), 3000.0, "iPhone")
            .point_from(at(1, "2026-11-18", "08:00"), 6200.0, "iPhone"),
    )
}

#[test]
fn a_health_auto_export_delivery_reaches_exist_on_the_users_days() {
    let (world, port) = inbox_world("health-auto-export", "Europe/Berlin");
    let daemon = Running::start(&world);
    daemon.wait_for("sync finished");

    let (status, reply) = post(&world, port, Some(TOKEN), travel_steps().to_body());
    assert_eq!(status, 200, "{reply}");
    let reply: serde_json::Value = serde_json::from_str(&reply).unwrap();
    assert_eq!(reply["stored"], 4);
    // The delivery starts a sync on its own (after the debounce window).
    daemon.wait_for("sync finished");
    // In Berlin, 21:30 in New York on the 16th is 03:30 on the 17th.
    assert_eq!(world.value("steps", "2026-11-16"), Some(4000.into()));
    assert_eq!(world.value("steps", "2026-11-17"), Some(3500.into()));
    assert_eq!(world.value("steps", "2026-11-18"), Some(6200.into()));

    // The app re-sends the whole period with one more point: nothing counts twice.
    let again = travel_steps().metric(Metric::new("step_count", "count").point_from(
        at(1, "2026-11-18", "18:00"),
        800.0,
        "iPhone",
    ));
    let (status, _) = post(&world, port, Some(TOKEN), again.to_body());
    assert_eq!(status, 200);
    daemon.wait_for("sync finished");
    assert_eq!(world.value("steps", "2026-11-17"), Some(3500.into()));
    assert_eq!(world.value("steps", "2026-11-18"), Some(7000.into()));

    let status = world.cmd().args(["status", "--json"]).output().unwrap();
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    let phone = &status["sources"][0];
    assert_eq!(phone["kind"], "inbox");
    assert_eq!(phone["records"], 5);
    assert_eq!(phone["last_delivery"]["records"], 5, "{phone:#}");
}

#[test]
fn a_wrong_token_an_oversized_body_and_a_bad_body_store_nothing() {
    let (world, port) = inbox_world("records", "UTC");
    let _daemon = Running::start(&world);
    let body = r#"[{"id": "a", "date": "2026-11-20", "qty": 10}]"#.to_owned();

    let (status, reply) = post(&world, port, None, body.clone());
    assert_eq!(status, 401, "{reply}");
    let (status, _) = post(
        &world,
        port,
        Some("inbox-token-0123456789abcdeX"),
        body.clone(),
    );
    assert_eq!(status, 401);

    let huge = format!(
        "[{}]",
        "{\"id\": \"x\", \"date\": \"2026-11-20\"},".repeat(1_200_000)
    );
    let (status, reply) = post(&world, port, Some(TOKEN), huge);
    assert_eq!(status, 413, "{reply}");

    let (status, reply) = post(&world, port, Some(TOKEN), "{\"records\": 5}".into());
    assert_eq!(status, 400);
    assert!(reply.contains("`records` is not an array"), "{reply}");

    let unknown = world.rt.block_on(async {
        reqwest::Client::new()
            .post(format!("http://127.0.0.1:{port}/inbox/nobody"))
            .bearer_auth(TOKEN)
            .body(body.clone())
            .send()
            .await
            .unwrap()
            .status()
    });
    assert_eq!(unknown, 404);

    let status = world.cmd().args(["status", "--json"]).output().unwrap();
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(status["sources"][0]["records"], 0, "nothing was stored");
    assert!(status["sources"][0]["last_delivery"].is_null());

    // A record that cannot be placed is skipped and named; the rest is stored.
    let (status, reply) = post(
        &world,
        port,
        Some(TOKEN),
        r#"[{"id": "a", "date": "2026-11-20", "qty": 10}, {"id": "b", "date": "someday", "qty": 1}]"#
            .into(),
    );
    assert_eq!(status, 200, "{reply}");
    let reply: serde_json::Value = serde_json::from_str(&reply).unwrap();
    assert_eq!(reply["stored"], 1);
    assert_eq!(reply["skipped"][0]["location"], "item 2 (id b)");
}

#[test]
fn kill_9_right_after_the_reply_loses_nothing() {
    let (world, port) = inbox_world("records", "UTC");
    let mut daemon = Running::start(&world);
    daemon.wait_for("sync finished");
    let today = crate::common::today_utc();
    let lines: Vec<String> = (0..3)
        .map(|d| {
            let day = today - chrono::Duration::days(d);
            format!(
                "{{\"id\": \"walk-{d}\", \"date\": \"{day}\", \"qty\": {}}}",
                1000 + d
            )
        })
        .collect();
    let (status, reply) = post(&world, port, Some(TOKEN), lines.join("\n"));
    assert_eq!(status, 200, "{reply}");
    // Before the debounced sync can start.
    daemon.child.kill().unwrap();
    daemon.child.wait().unwrap();
    assert!(world.sandbox.values().is_empty(), "nothing was sent yet");

    world
        .cmd()
        .env("PHONE_TOKEN", TOKEN)
        .args(["run", "--once"])
        .assert()
        .success();
    for d in 0..3 {
        let day = (today - chrono::Duration::days(d)).to_string();
        assert_eq!(world.value("steps", &day), Some((1000 + d).into()), "{day}");
    }
}

#[test]
fn an_inbox_reachable_from_other_machines_must_be_asked_for() {
    let world = World::new("");
    world.write_config(
        "[[source]]\nname = \"phone\"\nkind = \"inbox\"\ntoken_env = \"PHONE_TOKEN\"\ndate_field = \"date\"\n\n[[attribute]]\ntemplate = \"steps\"\nsource = \"phone\"\nfield = \"qty\"\naggregate = \"sum\"\n",
    );
    let config = std::fs::read_to_string(&world.config_path).unwrap();
    std::fs::write(
        &world.config_path,
        config.replacen("[agent]\n", "[agent]\nlisten = \"0.0.0.0:8765\"\n", 1),
    )
    .unwrap();
    let output = world.cmd().arg("doctor").output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("agent.listen") && stderr.contains("listen_remote = true"),
        "{stderr}"
    );

    // Without a listener at all, an inbox cannot receive anything.
    std::fs::write(&world.config_path, config).unwrap();
    let output = world.cmd().arg("doctor").output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("needs the agent's listener"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}
