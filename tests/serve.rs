//! `idflow serve` end to end, through the real binary.
//!
//! Each test starts the service on a copy of the quickstart (the bundle pointed at the absolute
//! path of `rules/entra-default`) with a short `[schedule] interval`, on port 0 of the loopback
//! address (the service prints the port it took), talks to it over a plain `TcpStream`, parses
//! `/metrics` line by line (the text exposition format: `name{label="value",...} number`), and
//! stops it with SIGTERM.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::{BIN, Dir, idflow};
#[path = "common/sinks.rs"]
mod sinks;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// A copy of the quickstart whose cycles run every `interval`.
fn quickstart(name: &str, interval: &str) -> Dir {
    let d = Dir::new(name);
    let src = Path::new(ROOT).join("examples/quickstart");
    std::fs::copy(src.join("ad.ldif"), d.path("ad.ldif")).unwrap();
    let toml = std::fs::read_to_string(src.join("idflow.toml")).unwrap();
    d.write(
        "idflow.toml",
        &format!("{toml}\n[schedule]\ninterval = \"{interval}\"\n"),
    );
    let bundle = Path::new(ROOT).join("rules/entra-default");
    d.set("bundle", &format!("{:?}", bundle.display().to_string()));
    d
}

/// A running `idflow serve` (killed on drop if a test fails before stopping it).
struct Service {
    child: Child,
    addr: String,
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `idflow serve --listen 127.0.0.1:0 extra...` in `dir` (logs in `serve.log`) and
/// waits for the address it listens on.
fn start(dir: &Dir, extra: &[&str]) -> Service {
    let log = std::fs::File::create(dir.path("serve.log")).unwrap();
    let config = dir.config();
    let mut child = Command::new(BIN)
        .args(["serve", "--config", &config, "--listen", "127.0.0.1:0"])
        .args(extra)
        .current_dir(&dir.0)
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .strip_prefix("listening on http://")
        .unwrap_or_else(|| panic!("no address: {line:?}\n{}", dir.read("serve.log")))
        .to_string();
    Service { child, addr }
}

/// A response: status, headers (lowercased names), body.
struct Response {
    status: u16,
    headers: BTreeMap<String, String>,
    body: String,
}

fn get(addr: &str, path: &str) -> Response {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").expect("a complete response");
    let mut lines = head.lines();
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Response {
        status,
        headers,
        body: body.to_string(),
    }
}

/// One sample of the exposition: the metric name and its labels, and the value.
type Samples = BTreeMap<(String, BTreeMap<String, String>), f64>;

/// Parses the text exposition format (comments skipped; label values without escapes).
fn parse(text: &str) -> Samples {
    let mut out = Samples::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (series, value) = line.rsplit_once(' ').unwrap();
        let value: f64 = value.parse().unwrap_or_else(|_| panic!("{line}"));
        let (name, labels) = match series.split_once('{') {
            None => (series.to_string(), BTreeMap::new()),
            Some((name, rest)) => {
                let rest = rest.strip_suffix('}').unwrap();
                let labels = rest
                    .split(',')
                    .filter(|p| !p.is_empty())
                    .map(|p| {
                        let (k, v) = p.split_once('=').unwrap();
                        (k.to_string(), v.trim_matches('"').to_string())
                    })
                    .collect();
                (name.to_string(), labels)
            }
        };
        assert!(out.insert((name, labels), value).is_none(), "{line}");
    }
    out
}

/// The value of a sample.
fn sample(s: &Samples, name: &str, labels: &[(&str, &str)]) -> f64 {
    let key = (
        name.to_string(),
        labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    );
    *s.get(&key)
        .unwrap_or_else(|| panic!("no sample {name}{labels:?} in {:#?}", s.keys()))
}

/// Waits until the metrics show `cycles` cycles.
fn wait_for_cycles(svc: &Service, dir: &Dir, cycles: f64) -> Samples {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let m = parse(&get(&svc.addr, "/metrics").body);
        let done = m
            .get(&(
                "idflow_cycle_duration_seconds_count".into(),
                BTreeMap::new(),
            ))
            .copied()
            .unwrap_or(0.0);
        if done >= cycles {
            return m;
        }
        assert!(
            Instant::now() < deadline,
            "no {cycles} cycles:\n{}",
            dir.read("serve.log")
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Sends SIGTERM and waits for the exit code.
fn terminate(mut svc: Service, dir: &Dir) -> i32 {
    let pid = svc.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = svc.child.try_wait().unwrap() {
            return status.code().unwrap_or(-1);
        }
        assert!(
            Instant::now() < deadline,
            "still running after SIGTERM:\n{}",
            dir.read("serve.log")
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn scheduled_cycles_health_metrics_and_a_clean_shutdown() {
    let dir = quickstart("serve", "2s");
    let svc = start(&dir, &[]);
    // The first cycle runs at start, the second an interval later.
    let m = wait_for_cycles(&svc, &dir, 2.0);

    let health = get(&svc.addr, "/healthz");
    assert_eq!(health.status, 200);
    assert_eq!(health.body, "ok\n");
    assert_eq!(get(&svc.addr, "/nothing").status, 404);

    let r = get(&svc.addr, "/metrics");
    assert_eq!(r.status, 200);
    assert!(
        r.headers["content-type"].starts_with("application/openmetrics-text"),
        "{:?}",
        r.headers
    );
    for family in [
        "idflow_cycle_duration_seconds histogram",
        "idflow_step_duration_seconds histogram",
        "idflow_step_objects counter",
        "idflow_last_successful_cycle_timestamp_seconds gauge",
        "idflow_connector_objects gauge",
        "idflow_pending_exports gauge",
    ] {
        assert!(r.body.contains(&format!("# TYPE {family}\n")), "{family}");
    }

    const AD: &str = "contoso.com";
    const ENTRA: &str = "contoso.onmicrosoft.com";
    // The first cycle: AD read whole, a full sync (the bundle is new), every user and group
    // provisioned to Entra; the later cycles change nothing.
    let read = sample(
        &m,
        "idflow_step_objects_total",
        &[
            ("step", "delta-import"),
            ("connector", AD),
            ("change", "add"),
        ],
    );
    assert!(read > 1000.0, "{read}");
    assert_eq!(
        sample(&m, "idflow_connector_objects", &[("connector", AD)]),
        read
    );
    let exported = sample(
        &m,
        "idflow_step_objects_total",
        &[("step", "export"), ("connector", ENTRA), ("change", "add")],
    );
    assert!(exported > 1000.0, "{exported}");
    assert_eq!(
        sample(&m, "idflow_connector_objects", &[("connector", ENTRA)]),
        exported
    );
    assert!(
        sample(
            &m,
            "idflow_step_objects_total",
            &[("step", "full-sync"), ("connector", ""), ("change", "add")]
        ) > 0.0
    );
    assert_eq!(
        sample(
            &m,
            "idflow_step_duration_seconds_count",
            &[("step", "full-sync"), ("connector", "")]
        ),
        1.0
    );
    assert!(
        sample(
            &m,
            "idflow_step_duration_seconds_count",
            &[("step", "export"), ("connector", ENTRA)]
        ) >= 2.0
    );
    for c in [AD, ENTRA] {
        for change in ["add", "update", "delete", "rename"] {
            assert_eq!(
                sample(
                    &m,
                    "idflow_pending_exports",
                    &[("connector", c), ("change", change)]
                ),
                0.0,
                "{c} {change}"
            );
        }
    }
    let last = sample(&m, "idflow_last_successful_cycle_timestamp_seconds", &[]);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(last > now - 600.0 && last <= now + 1.0, "{last} {now}");

    // A hand-started run is refused: the service holds the run lock.
    let config = dir.config();
    let run = idflow(&dir.0, &["run", "--config", &config]);
    assert_eq!(run.code, 2, "{}", run.all());
    assert!(run.stderr.contains("run lock"), "{}", run.all());

    assert_eq!(terminate(svc, &dir), 0, "{}", dir.read("serve.log"));
    // The state is consistent: readable, and a run finds nothing to do.
    let runs = idflow(&dir.0, &["state", "--config", &config, "runs"]);
    assert_eq!(runs.code, 0, "{}", runs.all());
    assert!(runs.stdout.contains("full-sync"), "{}", runs.all());
    let run = idflow(&dir.0, &["run", "--config", &config]);
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(
        run.stdout
            .contains(&format!("export {ENTRA}: 0 adds, 0 updates, 0 deletes")),
        "{}",
        run.all()
    );
}

/// Waits until the metrics satisfy `done`; returns them.
fn wait_for_metrics(svc: &Service, dir: &Dir, done: impl Fn(&Samples) -> bool) -> Samples {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let m = parse(&get(&svc.addr, "/metrics").body);
        if done(&m) {
            return m;
        }
        assert!(
            Instant::now() < deadline,
            "{m:#?}\n{}",
            dir.read("serve.log")
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Waits for a webhook notification of `event` (`raised`, `resolved`) for the alert `key`,
/// skipping the others; returns it.
fn wait_for_event(hook: &sinks::Webhook, dir: &Dir, event: &str, key: &str) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline {
        if let Some(body) = hook.next(1) {
            let json: serde_json::Value = serde_json::from_str(&body).unwrap();
            if json["event"] == event && json["alert"]["key"] == key {
                return json;
            }
        }
    }
    panic!(
        "no {event} notification for {key}:\n{}",
        dir.read("serve.log")
    )
}

#[test]
fn alerts_are_raised_notified_and_resolved_by_the_service() {
    const AD: &str = "contoso.com";
    let dir = quickstart("serve-alerts", "2s");
    let hook = sinks::Webhook::start();
    let toml = dir.read("idflow.toml");
    dir.write(
        "idflow.toml",
        &format!("{toml}\n[[notify.webhook]]\nurl = \"{}\"\n", hook.url),
    );
    let svc = start(&dir, &[]);
    // Two cycles: the first writes back to ad.ldif (the consistency GUIDs), the second finds
    // nothing to do; from then on the service only reads the file.
    wait_for_cycles(&svc, &dir, 2.0);

    // The source goes missing: the import fails at every cycle, and after twice the interval
    // without a successful cycle that is an alert too.
    std::fs::rename(dir.path("ad.ldif"), dir.path("ad.ldif.away")).unwrap();
    let key = format!("import_failed:{AD}");
    let raised = wait_for_event(&hook, &dir, "raised", &key);
    assert_eq!(raised["alert"]["severity"], "error");
    assert_eq!(raised["alert"]["title"], format!("Import from {AD} failed"));
    assert_eq!(raised["alert"]["resolved_at"], serde_json::Value::Null);
    wait_for_event(&hook, &dir, "raised", "no_successful_cycle");
    let m = wait_for_metrics(&svc, &dir, |m| {
        sample(m, "idflow_alerts_active", &[("severity", "error")]) >= 2.0
    });
    assert_eq!(
        sample(
            &m,
            "idflow_alert_active",
            &[
                ("kind", "import_failed"),
                ("connector", AD),
                ("severity", "error")
            ]
        ),
        1.0
    );

    // Back: the next cycle succeeds and both resolve.
    std::fs::rename(dir.path("ad.ldif.away"), dir.path("ad.ldif")).unwrap();
    let resolved = wait_for_event(&hook, &dir, "resolved", &key);
    assert!(resolved["alert"]["resolved_at"].is_string(), "{resolved}");
    wait_for_event(&hook, &dir, "resolved", "no_successful_cycle");
    let m = wait_for_metrics(&svc, &dir, |m| {
        sample(m, "idflow_alerts_active", &[("severity", "error")]) == 0.0
    });
    assert!(
        !m.keys().any(|(name, _)| name == "idflow_alert_active"),
        "{m:#?}"
    );
    assert_eq!(terminate(svc, &dir), 0, "{}", dir.read("serve.log"));
}

#[test]
fn an_invalid_interval_is_refused() {
    let dir = quickstart("serve-interval", "soon");
    let config = dir.config();
    let out = idflow(
        &dir.0,
        &["serve", "--config", &config, "--listen", "127.0.0.1:0"],
    );
    assert_eq!(out.code, 2, "{}", out.all());
    assert!(out.stderr.contains("schedule.interval"), "{}", out.all());
}
