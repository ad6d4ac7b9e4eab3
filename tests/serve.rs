//! `idflow serve` end to end, through the real binary.
//!
//! Each test starts the service on a copy of the quickstart (the bundle pointed at the absolute
//! path of `rules/entra-default`) with a short `[schedule] interval`, on port 0 of the loopback
//! address (the service prints the port it took), talks to it over a plain `TcpStream`, parses
//! `/metrics` line by line (the text exposition format: `name{label="value",...} number`), and
//! stops it with SIGTERM. Each service gets a reader and an operator token from `idflow token
//! create` before it starts.
//!
//! The access tests check every endpoint with no token, a wrong one, a reader's and an
//! operator's, the browser login with its session cookie and CSRF token, and the audit trail;
//! the TLS test talks HTTPS with rustls to a certificate of a test authority; the browser test
//! loads the dashboard and the error report in headless Chromium (skipped with a message when
//! it is not installed, except under CI, where it fails).

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
    reader: String,
    operator: String,
}

/// `idflow token create --role ROLE --name NAME` in `dir`: the token (its last line).
fn create_token(dir: &Dir, role: &str, name: &str) -> String {
    let config = dir.config();
    let out = idflow(
        &dir.0,
        &[
            "token", "create", "--config", &config, "--role", role, "--name", name,
        ],
    );
    assert_eq!(out.code, 0, "{}", out.all());
    out.stdout.lines().last().unwrap().trim().to_string()
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
    let (reader, operator) = (
        create_token(dir, "reader", "test-reader"),
        create_token(dir, "operator", "test-operator"),
    );
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
        .or_else(|| line.trim().strip_prefix("listening on https://"))
        .unwrap_or_else(|| panic!("no address: {line:?}\n{}", dir.read("serve.log")))
        .to_string();
    Service {
        child,
        addr,
        reader,
        operator,
    }
}

/// A response: status, headers (lowercased names), body.
struct Response {
    status: u16,
    headers: BTreeMap<String, String>,
    body: String,
}

/// Parses a whole HTTP/1.1 response (the connection closed after it).
fn response(text: &str) -> Response {
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
    let mut headers = BTreeMap::new();
    for (k, v) in lines.filter_map(|l| l.split_once(':')) {
        let k = k.trim().to_ascii_lowercase();
        // Several Set-Cookie headers: kept joined.
        let e: &mut String = headers.entry(k).or_default();
        if !e.is_empty() {
            e.push('\n');
        }
        e.push_str(v.trim());
    }
    Response {
        status,
        headers,
        body: body.to_string(),
    }
}

/// The text of a request.
fn request_text(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> String {
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if !body.is_empty() || method == "POST" {
        req.push_str(&format!(
            "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    req.push_str("\r\n");
    req.push_str(body);
    req
}

/// Sends a request over plain HTTP.
fn request(addr: &str, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Response {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    s.write_all(request_text(addr, method, path, headers, body).as_bytes())
        .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    response(&text)
}

fn get(addr: &str, path: &str) -> Response {
    request(addr, "GET", path, &[], "")
}

/// A GET with a bearer token.
fn get_as(addr: &str, path: &str, token: &str) -> Response {
    let auth = format!("Bearer {token}");
    request(addr, "GET", path, &[("Authorization", &auth)], "")
}

/// A POST with a bearer token.
fn post_as(addr: &str, path: &str, token: &str, body: &str) -> Response {
    let auth = format!("Bearer {token}");
    request(addr, "POST", path, &[("Authorization", &auth)], body)
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
        let m = parse(&get_as(&svc.addr, "/metrics", &svc.reader).body);
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

    let r = get_as(&svc.addr, "/metrics", &svc.reader);
    assert_eq!(r.status, 200);
    assert!(
        r.headers["content-type"].starts_with("application/openmetrics-text"),
        "{:?}",
        r.headers
    );
    // The Grafana dashboard charts metrics the service registers. A family without samples
    // is not exposed: the registrations are read from the source.
    let registered = std::fs::read_to_string(Path::new(ROOT).join("src/serve/metrics.rs")).unwrap();
    let grafana =
        std::fs::read_to_string(Path::new(ROOT).join("deploy/grafana-dashboard.json")).unwrap();
    let mut rest = grafana.as_str();
    let mut charted = 0;
    while let Some(at) = rest.find("idflow_") {
        let name: String = rest[at..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        rest = &rest[at + name.len()..];
        charted += 1;
        let family = name
            .strip_suffix("_bucket")
            .or_else(|| name.strip_suffix("_total"))
            .unwrap_or(&name);
        assert!(
            registered.contains(&format!("\"{family}\"")),
            "the Grafana dashboard charts {name}, which /metrics does not have"
        );
    }
    assert!(charted >= 7, "{charted}");
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
        let m = parse(&get_as(&svc.addr, "/metrics", &svc.reader).body);
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

/// The value of the cookie a response sets, with its attributes.
fn set_cookie(r: &Response) -> String {
    r.headers
        .get("set-cookie")
        .cloned()
        .unwrap_or_else(|| panic!("no Set-Cookie: {:?}", r.headers))
}

/// `name=value` of a Set-Cookie header.
fn cookie_pair(set: &str) -> String {
    set.split(';').next().unwrap().trim().to_string()
}

/// The hidden CSRF field of a page.
fn csrf_of(page: &str) -> String {
    let at = page
        .find("name=\"csrf\" value=\"")
        .unwrap_or_else(|| panic!("no CSRF field in {page}"));
    let rest = &page[at + "name=\"csrf\" value=\"".len()..];
    rest[..rest.find('"').unwrap()].to_string()
}

/// The JSON of an answer.
fn body_json(r: &Response) -> serde_json::Value {
    serde_json::from_str(&r.body).unwrap_or_else(|e| panic!("{e}: {}", r.body))
}

const PAGES: [&str; 6] = ["/", "/errors", "/insight", "/runs", "/alerts", "/objects"];
const APIS: [&str; 8] = [
    "/api/status",
    "/api/errors",
    "/api/errors.csv",
    "/api/runs",
    "/api/insight",
    "/api/alerts",
    "/api/audit",
    "/api/objects?dn=CN%3DAdministrator%2CCN%3DUsers%2CDC%3Dcontoso%2CDC%3Dcom",
];
const ACTIONS: [&str; 3] = [
    "/api/cycle",
    "/api/allow-deletes?count=5",
    "/api/alerts/no-such-alert/ack",
];

/// Every endpoint with no token, a wrong token, a reader's and an operator's; the operator's
/// actions are audited; a revoked token is refused at once.
#[test]
fn endpoints_and_role_checks() {
    let dir = quickstart("serve-access", "1h");
    let svc = start(&dir, &[]);
    wait_for_cycles(&svc, &dir, 1.0);
    let a = svc.addr.as_str();

    assert_eq!(get(a, "/healthz").status, 200, "health needs no token");
    let wrong = "idf_not-a-token-of-this-service";
    for path in APIS.iter().chain(&["/metrics"]) {
        let r = get(a, path);
        assert_eq!(r.status, 401, "no token: {path}");
        assert!(r.headers.contains_key("www-authenticate"), "{path}");
        assert_eq!(get_as(a, path, wrong).status, 401, "wrong token: {path}");
        let r = get_as(a, path, &svc.reader);
        assert_eq!(r.status, 200, "reader: {path}: {}", r.body);
        if path.starts_with("/api/") && !path.ends_with(".csv") {
            body_json(&r);
        }
    }
    for path in PAGES {
        let r = get(a, path);
        assert_eq!(
            (r.status, r.headers["location"].as_str()),
            (303, "/login"),
            "{path}"
        );
        assert_eq!(get_as(a, path, wrong).status, 303, "{path}");
        let r = get_as(a, path, &svc.reader);
        assert_eq!(r.status, 200, "{path}");
        assert!(r.headers["content-type"].starts_with("text/html"), "{path}");
        assert!(r.headers["content-security-policy"].contains("default-src 'none'"));
        assert!(r.body.contains("test-reader (reader)"), "{path}");
    }
    assert_eq!(request(a, "POST", "/healthz", &[], "").status, 405);
    assert_eq!(get_as(a, "/api/cycle", &svc.operator).status, 405);
    assert_eq!(get_as(a, "/api/nothing", &svc.reader).status, 404);
    for path in ACTIONS {
        assert_eq!(request(a, "POST", path, &[], "").status, 401, "{path}");
        assert_eq!(post_as(a, path, wrong, "").status, 401, "{path}");
        assert_eq!(
            post_as(a, path, &svc.reader, "").status,
            403,
            "reader: {path}"
        );
    }

    // What the API shows.
    let status = body_json(&get_as(a, "/api/status", &svc.reader));
    assert_eq!(status["delete_threshold"], 500);
    assert_eq!(status["staging"], false);
    assert_eq!(status["connectors"].as_array().unwrap().len(), 2);
    assert_eq!(status["last_cycle"]["ok"], true, "{status}");
    assert_eq!(status["alerts"]["engine"], true);
    let runs = body_json(&get_as(a, "/api/runs", &svc.reader));
    assert!(
        runs.as_array()
            .unwrap()
            .iter()
            .any(|r| r["step"] == "full-sync")
    );
    let charts = get_as(a, "/insight", &svc.reader).body;
    for id in ["latency", "changes"] {
        assert!(charts.contains(&format!("<svg id=\"{id}\"")), "{charts}");
    }
    assert!(charts.contains("<polyline"), "{charts}");
    let insight = body_json(&get_as(a, "/api/insight", &svc.reader));
    assert!(
        !insight["latency"].as_array().unwrap().is_empty(),
        "{insight}"
    );
    let csv = get_as(a, "/api/errors.csv", &svc.reader);
    assert!(
        csv.body
            .starts_with("category,connector,dn,attribute,value,rule,conflicting_object")
    );
    let lineage = body_json(&get_as(a, APIS[7], &svc.reader));
    let lines: Vec<&str> = lineage["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap())
        .collect();
    assert!(lines.contains(&"lineage:"), "{lineage}");
    // The same as `idflow state show` prints (the service holds the lock: the CLI reads anyway).
    let config = dir.config();
    let show = idflow(
        &dir.0,
        &[
            "state",
            "--config",
            &config,
            "show",
            "--dn",
            "CN=Administrator,CN=Users,DC=contoso,DC=com",
        ],
    );
    assert_eq!(show.stdout.lines().collect::<Vec<_>>(), lines);
    let missing = get_as(a, "/api/objects?dn=CN%3Dnobody", &svc.reader);
    assert_eq!(missing.status, 404);

    // The operator runs a cycle now (the interval is an hour): accepted, audited, and run.
    let r = post_as(a, "/api/cycle", &svc.operator, "");
    assert_eq!(r.status, 202, "{}", r.body);
    wait_for_cycles(&svc, &dir, 2.0);
    let r = post_as(a, "/api/allow-deletes", &svc.operator, "count=3");
    assert_eq!(r.status, 202, "{}", r.body);
    assert_eq!(
        post_as(a, "/api/allow-deletes", &svc.operator, "count=none").status,
        400
    );
    let r = post_as(a, "/api/alerts/a1/ack", &svc.operator, "");
    assert_eq!(r.status, 404, "no such alert: {}", r.body);
    let audit = body_json(&get_as(a, "/api/audit", &svc.reader));
    let seen: Vec<(String, String, String, String)> = audit
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let f = |k: &str| e[k].as_str().unwrap().to_string();
            (f("who"), f("action"), f("detail"), f("outcome"))
        })
        .rev()
        .collect();
    let want = |who: &str, action: &str, detail: &str, outcome: &str| {
        (
            who.to_string(),
            action.to_string(),
            detail.to_string(),
            outcome.to_string(),
        )
    };
    assert_eq!(
        seen,
        vec![
            want("test-operator", "cycle", "", "accepted"),
            want("test-operator", "allow-deletes", "3", "accepted"),
            want(
                "test-operator",
                "acknowledge-alert",
                "a1",
                "refused: `a1` is not an alert id"
            ),
        ]
    );
    assert!(audit[0]["at"].as_str().unwrap().starts_with("20"));
    let overview = get_as(a, "/", &svc.reader).body;
    assert!(overview.contains("<td>test-operator</td><td>operator</td><td>cycle</td>"));
    // Tokens never reach the log.
    let log = dir.read("serve.log");
    assert!(!log.contains(&svc.operator) && !log.contains(&svc.reader));

    // A revoked token is refused at once.
    let out = idflow(
        &dir.0,
        &["token", "--config", &config, "revoke", "test-reader"],
    );
    assert_eq!(out.code, 0, "{}", out.all());
    assert_eq!(get_as(a, "/api/status", &svc.reader).status, 401);

    assert_eq!(terminate(svc, &dir), 0, "{}", dir.read("serve.log"));
}

/// The browser's way in: the login page sets an HttpOnly, SameSite=Strict session cookie;
/// a page's actions need the session's CSRF token; a one-time login link works once.
#[test]
fn browser_sessions_and_csrf() {
    let dir = quickstart("serve-session", "1h");
    let svc = start(&dir, &[]);
    wait_for_cycles(&svc, &dir, 1.0);
    let a = svc.addr.as_str();

    assert_eq!(get(a, "/login").status, 200);
    let bad = request(a, "POST", "/login", &[], "token=idf_wrong");
    assert_eq!(bad.status, 401);
    assert!(bad.body.contains("not valid"));
    let form = format!("token={}", svc.operator);
    let elsewhere = request(
        a,
        "POST",
        "/login",
        &[("Origin", "http://evil.example")],
        &form,
    );
    assert_eq!(elsewhere.status, 403, "a login from another site's page");
    let here = format!("http://{a}");
    let ok = request(a, "POST", "/login", &[("Origin", &here)], &form);
    assert_eq!((ok.status, ok.headers["location"].as_str()), (303, "/"));
    let set = set_cookie(&ok);
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set.contains(attr), "{set}");
    }
    assert!(!set.contains("Secure"), "no TLS, no Secure: {set}");
    let cookie = cookie_pair(&set);
    let page = request(a, "GET", "/", &[("Cookie", &cookie)], "");
    assert_eq!(page.status, 200);
    assert!(page.body.contains("test-operator (operator)"));
    let csrf = csrf_of(&page.body);

    // An action from the page without the CSRF token, or with a wrong one: refused.
    let r = request(a, "POST", "/api/cycle", &[("Cookie", &cookie)], "");
    assert_eq!(r.status, 403, "{}", r.body);
    let r = request(
        a,
        "POST",
        "/api/cycle",
        &[("Cookie", &cookie)],
        "csrf=wrong",
    );
    assert_eq!(r.status, 403, "{}", r.body);
    let r = request(
        a,
        "POST",
        "/api/cycle",
        &[("Cookie", &cookie)],
        &format!("csrf={csrf}"),
    );
    assert_eq!(
        (r.status, r.headers["location"].as_str()),
        (303, "/"),
        "{}",
        r.body
    );
    let audit = body_json(&get_as(a, "/api/audit", &svc.reader));
    assert_eq!(audit.as_array().unwrap().len(), 1, "{audit}");
    assert_eq!(audit[0]["who"], "test-operator");

    // A one-time login link, made with a bearer token.
    let link = body_json(&post_as(a, "/api/login-link", &svc.reader, ""));
    let path = format!("{}&next=/errors", link["path"].as_str().unwrap());
    let r = get(a, &path);
    assert_eq!((r.status, r.headers["location"].as_str()), (303, "/errors"));
    let reader_cookie = cookie_pair(&set_cookie(&r));
    let page = request(a, "GET", "/errors", &[("Cookie", &reader_cookie)], "");
    assert!(page.body.contains("test-reader (reader)"));
    assert_eq!(get(a, &path).status, 401, "a link works once");
    let offsite = body_json(&post_as(a, "/api/login-link", &svc.reader, ""));
    let r = get(
        a,
        &format!("{}&next=//evil.example/", offsite["path"].as_str().unwrap()),
    );
    assert_eq!(r.headers["location"], "/", "only paths of this site");
    let tab = body_json(&post_as(a, "/api/login-link", &svc.reader, ""));
    let r = get(
        a,
        &format!("{}&next=/%09/evil.example/", tab["path"].as_str().unwrap()),
    );
    assert_eq!(r.headers["location"], "/", "a tab a browser would drop");
    // A reader's session cannot act, with or without the CSRF token.
    let csrf = csrf_of(&page.body);
    let r = request(
        a,
        "POST",
        "/api/cycle",
        &[("Cookie", &reader_cookie)],
        &format!("csrf={csrf}"),
    );
    assert_eq!(r.status, 403);

    // Logging out ends the session.
    let logout = request(
        a,
        "POST",
        "/logout",
        &[("Cookie", &reader_cookie)],
        &format!("csrf={csrf}"),
    );
    assert_eq!(logout.status, 303);
    let r = request(a, "GET", "/api/status", &[("Cookie", &reader_cookie)], "");
    assert_eq!(r.status, 401);

    assert_eq!(terminate(svc, &dir), 0, "{}", dir.read("serve.log"));
}

/// `idflow token`: a token printed once as the last line, only its hash in the file (mode
/// 0600), listed by name, revoked by name.
#[test]
fn token_commands() {
    let dir = quickstart("serve-tokens", "1h");
    let config = dir.config();
    let out = idflow(
        &dir.0,
        &[
            "token", "create", "--config", &config, "--role", "operator", "--name", "ops",
        ],
    );
    assert_eq!(out.code, 0, "{}", out.all());
    let token = out.stdout.lines().last().unwrap().to_string();
    assert!(token.starts_with("idf_") && token.len() > 40, "{token}");
    assert_eq!(out.stdout.matches(&token).count(), 1, "printed once");
    let file = dir.read("tokens");
    assert!(!file.contains(&token), "the file keeps no token");
    let hash: String = {
        use sha2::Digest;
        sha2::Sha256::digest(token.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    };
    assert!(file.contains(&format!("ops operator {hash} ")), "{file}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path("tokens"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let again = idflow(
        &dir.0,
        &[
            "token", "create", "--config", &config, "--role", "reader", "--name", "ops",
        ],
    );
    assert_eq!(again.code, 2, "{}", again.all());
    let bad = idflow(
        &dir.0,
        &[
            "token", "create", "--config", &config, "--role", "reader", "--name", "a b",
        ],
    );
    assert_eq!(bad.code, 2, "{}", bad.all());
    let reader = create_token(&dir, "reader", "dash");
    assert_ne!(reader, token);
    let list = idflow(&dir.0, &["token", "list", "--config", &config]);
    assert_eq!(list.code, 0);
    let names: Vec<&str> = list
        .stdout
        .lines()
        .map(|l| l.split(' ').take(2).last().unwrap())
        .collect();
    assert_eq!(names, ["operator", "reader"], "{}", list.stdout);
    assert!(!list.stdout.contains(&hash));
    let out = idflow(&dir.0, &["token", "revoke", "--config", &config, "ops"]);
    assert_eq!(out.code, 0, "{}", out.all());
    assert!(!dir.read("tokens").contains(&hash));
    assert!(dir.read("tokens").contains("dash reader "));
    let out = idflow(&dir.0, &["token", "revoke", "--config", &config, "ops"]);
    assert_eq!(out.code, 1, "{}", out.all());
}

/// HTTPS from `[serve] tls_cert` and `tls_key`: a client trusting the test authority gets
/// the pages; the session cookie is Secure.
#[test]
fn tls_from_a_certificate_and_key() {
    let dir = quickstart("serve-tls", "1h");
    common::make_certificates(&dir.0);
    let toml = dir.read("idflow.toml");
    dir.write(
        "idflow.toml",
        &format!(
            "{toml}\n[serve]\ntls_cert = \"tls.crt\"\ntls_key = \"tls.key\"\nmetrics_public = true\n"
        ),
    );
    // Without a schedule the service reads a state made by a run.
    let config = dir.config();
    let run = idflow(&dir.0, &["run", "--config", &config]);
    assert_eq!(run.code, 0, "{}", run.all());
    let svc = start(&dir, &["--no-schedule"]);
    let a = svc.addr.clone();
    let mut roots = rustls::RootCertStore::empty();
    use rustls::pki_types::{CertificateDer, ServerName, pem::PemObject};
    for c in CertificateDer::pem_file_iter(dir.path("ca.crt")).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let config = std::sync::Arc::new(
        rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    );
    let https = |method: &str, path: &str, headers: &[(&str, &str)], body: &str| -> Response {
        let conn = rustls::ClientConnection::new(
            config.clone(),
            ServerName::try_from("localhost").unwrap(),
        )
        .unwrap();
        let tcp = TcpStream::connect(&a).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut tls = rustls::StreamOwned::new(conn, tcp);
        tls.write_all(request_text(&a, method, path, headers, body).as_bytes())
            .unwrap();
        let mut bytes = Vec::new();
        // The server may close without close_notify once the answer is sent.
        let _ = tls.read_to_end(&mut bytes);
        response(&String::from_utf8_lossy(&bytes))
    };
    assert_eq!(https("GET", "/healthz", &[], "").status, 200);
    let auth = format!("Bearer {}", svc.reader);
    assert_eq!(
        https("GET", "/api/runs", &[("Authorization", &auth)], "").status,
        200
    );
    assert_eq!(https("GET", "/api/runs", &[], "").status, 401);
    // metrics_public: /metrics without a token, and nothing else.
    assert_eq!(https("GET", "/metrics", &[], "").status, 200);
    assert_eq!(https("GET", "/api/status", &[], "").status, 401);
    // Without a schedule there is no cycle to run.
    let op = format!("Bearer {}", svc.operator);
    assert_eq!(
        https("POST", "/api/cycle", &[("Authorization", &op)], "").status,
        409
    );
    let login = https("POST", "/login", &[], &format!("token={}", svc.reader));
    assert_eq!(login.status, 303);
    assert!(
        set_cookie(&login).contains("; Secure"),
        "{}",
        set_cookie(&login)
    );
    // Plain HTTP on the HTTPS port gets no answer.
    let mut s = TcpStream::connect(&a).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    let _ = s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    let mut text = String::new();
    let _ = s.read_to_string(&mut text);
    assert!(!text.contains("200 OK"), "{text}");
    assert_eq!(terminate(svc, &dir), 0, "{}", dir.read("serve.log"));
}

/// The Chromium of this machine, if any.
fn chromium() -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH")?;
    for name in ["chromium", "chromium-browser", "google-chrome"] {
        for d in std::env::split_paths(&path) {
            let p = d.join(name);
            if p.is_file() {
                return Some(p);
            }
        }
    }
    None
}

/// Where the browser test keeps its screenshots: `target/test-artifacts/`.
fn artifacts() -> std::path::PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap()
        .join("test-artifacts");
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Headless Chromium on `url` with `mode` (`--dump-dom` or `--screenshot=PATH`), in a fresh
/// profile; its standard output (the DOM for `--dump-dom`).
fn headless(browser: &Path, url: &str, mode: &str) -> String {
    let profile = Dir::new("chromium-profile");
    let user_data = format!("--user-data-dir={}", profile.0.display());
    let mut child = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--window-size=1280,2200",
            &user_data,
            mode,
            url,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("chromium {mode} {url}: no answer in 90 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    reader.join().unwrap()
}

/// Replaces the `userPrincipalName` of the first two users under an OU with one value: the
/// second user's value is withheld in Entra (a Duplicate Attribute error). Returns their DNs.
fn duplicate_upn(ldif: &str, upn: &str) -> (String, Vec<String>) {
    let mut records: Vec<String> = ldif.split("\n\n").map(str::to_string).collect();
    let mut dns = Vec::new();
    for r in records.iter_mut() {
        let first = r.lines().next().unwrap_or("").to_string();
        if dns.len() < 2
            && first.contains(",OU=")
            && r.contains("\nobjectClass: user")
            && r.contains("\nuserPrincipalName: ")
        {
            *r = r
                .lines()
                .map(|l| {
                    if l.starts_with("userPrincipalName: ") {
                        format!("userPrincipalName: {upn}")
                    } else {
                        l.to_string()
                    }
                })
                .collect::<Vec<_>>()
                .join("\n");
            dns.push(first.trim_start_matches("dn: ").to_string());
        }
    }
    (records.join("\n\n"), dns)
}

/// Removes `n` users under an OU (other than `keep`) and the `member` values naming them.
fn remove_users(ldif: &str, n: usize, keep: &[String]) -> String {
    let records: Vec<&str> = ldif.split("\n\n").collect();
    let mut gone: Vec<String> = Vec::new();
    for r in &records {
        let dn = r.lines().next().unwrap_or("").trim_start_matches("dn: ");
        if gone.len() < n
            && dn.contains(",OU=")
            && r.contains("\nobjectClass: user")
            && !keep.iter().any(|k| k == dn)
        {
            gone.push(dn.to_string());
        }
    }
    records
        .iter()
        .filter(|r| {
            let dn = r.lines().next().unwrap_or("").trim_start_matches("dn: ");
            !gone.iter().any(|g| g == dn)
        })
        .map(|r| {
            r.lines()
                .filter(|l| {
                    !l.strip_prefix("member: ")
                        .is_some_and(|m| gone.iter().any(|g| g.eq_ignore_ascii_case(m)))
                })
                .collect::<Vec<_>>()
                .join("\n")
        })
        .collect::<Vec<_>>()
        .join("\n\n")
}

/// The dashboard and the error report in a real browser: a quickstart with a duplicate
/// userPrincipalName (a Duplicate Attribute error) and 11 users removed under a delete
/// threshold of 10 (the AD import stops). A one-time login link logs headless Chromium in;
/// the rendered DOM shows the categories with their counts, the conflicting objects and the
/// delete-threshold stop. Screenshots are kept in target/test-artifacts/.
#[test]
fn the_dashboard_in_a_real_browser() {
    let Some(browser) = chromium() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "chromium is not installed: .ci/run installs it"
        );
        eprintln!("skipped: chromium is not installed (apt-get install chromium)");
        return;
    };
    let dir = quickstart("serve-browser", "1h");
    dir.set("delete_threshold", "10");
    let upn = "dup.person@contoso.com";
    let (ldif, dup) = duplicate_upn(&dir.read("ad.ldif"), upn);
    assert_eq!(dup.len(), 2);
    dir.write("ad.ldif", &ldif);
    let config = dir.config();
    let first = idflow(&dir.0, &["run", "--config", &config]);
    assert_eq!(first.code, 1, "sync errors: {}", first.all());
    dir.write("ad.ldif", &remove_users(&dir.read("ad.ldif"), 11, &dup));
    let svc = start(&dir, &[]);
    wait_for_cycles(&svc, &dir, 1.0);
    let a = svc.addr.as_str();

    // What the API says, to compare the pages with.
    let status = body_json(&get_as(a, "/api/status", &svc.reader));
    let stops = status["delete_threshold_stops"].as_array().unwrap();
    assert_eq!(stops.len(), 1, "{status}");
    assert_eq!(stops[0]["connector"], "contoso.com");
    assert_eq!(stops[0]["deletes"], 11);
    let errors = body_json(&get_as(a, "/api/errors", &svc.reader));
    let count = |cat: &str| -> u64 {
        errors["categories"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["category"] == cat)
            .unwrap()["count"]
            .as_u64()
            .unwrap()
    };
    let duplicates = count("Duplicate Attribute");
    assert!(duplicates >= 1, "{errors}");
    let holders: Vec<String> = errors["errors"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["category"] == "Duplicate Attribute")
        .map(|e| e["conflicting"].as_str().unwrap().to_string())
        .collect();
    assert!(holders.iter().all(|h| h.starts_with("CN=")), "{holders:?}");

    let visit = |next: &str, name: &str| -> String {
        let link = |n: &str| {
            let r = post_as(a, "/api/login-link", &svc.reader, "");
            format!(
                "http://{a}{}&next={n}",
                body_json(&r)["path"].as_str().unwrap()
            )
        };
        let dom = headless(&browser, &link(next), "--dump-dom");
        let shot = artifacts().join(format!("serve-{name}.png"));
        let _ = std::fs::remove_file(&shot);
        headless(
            &browser,
            &link(next),
            &format!("--screenshot={}", shot.display()),
        );
        let png = std::fs::read(&shot).unwrap_or_default();
        assert!(
            png.starts_with(b"\x89PNG"),
            "no screenshot at {}",
            shot.display()
        );
        dom
    };

    let overview = visit("/", "overview");
    assert!(
        overview.contains("test-reader (reader)"),
        "not logged in:\n{overview}"
    );
    assert!(overview.contains("id=\"threshold-stop\""), "{overview}");
    assert!(
        overview.contains("delta-import contoso.com stopped: delete threshold exceeded"),
        "{overview}"
    );
    assert!(overview.contains("<span class=\"deletes\">11</span> deletes; the delete threshold is <span class=\"threshold\">10</span>"));
    assert!(overview.contains(&format!(
        "data-category=\"Duplicate Attribute\">{duplicates}</td>"
    )));
    // The alert the stop raised, with its remediation.
    assert!(
        overview.contains("<div class=\"alert error\" data-kind=\"delete_threshold_exceeded\">"),
        "the active alert:\n{overview}"
    );
    assert!(
        overview
            .contains("Import from contoso.com stopped: delete threshold exceeded (11 deletes)"),
        "{overview}"
    );
    assert!(overview.contains("--allow-deletes 11"), "{overview}");
    assert!(
        !overview.contains("<button>Acknowledge</button>"),
        "a reader cannot acknowledge"
    );
    assert!(
        !overview.contains("Allow 11 deletes"),
        "a reader gets no action"
    );

    let report = visit("/errors", "errors");
    for cat in [
        "Duplicate Attribute",
        "Data Mismatch",
        "Data Validation Failure",
        "Federated Domain Change",
        "Large Attribute",
        "Other",
    ] {
        let n = count(cat);
        assert!(
            report.contains(&format!("data-category=\"{cat}\">{n}</td>")),
            "{cat} {n}:\n{report}"
        );
    }
    assert!(
        report.contains(&format!("<td>userPrincipalName</td><td>\"{upn}\"</td>")),
        "{report}"
    );
    // The conflicting objects, each linked to its lineage.
    for h in &holders {
        let cell = "<td class=\"conflicting\"><a href=\"/objects?connector=contoso.onmicrosoft.com&amp;dn=";
        let at = report.find(cell).unwrap_or_else(|| panic!("{report}"));
        let link = &report[at..report[at..].find("</td>").unwrap() + at];
        assert!(link.ends_with(&format!("\">{h}</a>")), "{h}: {link}");
    }
    assert!(report.contains("Download CSV"));

    // The operator acknowledges the alert: recorded with who, still active (only its success
    // condition resolves it), shown on the alerts page and audited.
    let alerts = body_json(&get_as(a, "/api/alerts", &svc.reader));
    let alert = alerts["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["kind"] == "delete_threshold_exceeded")
        .unwrap_or_else(|| panic!("{alerts}"))
        .clone();
    assert_eq!(alert["connector"], "contoso.com");
    assert_eq!(alert["resolved"], serde_json::Value::Null);
    let id = alert["id"].as_str().unwrap();
    let r = post_as(a, &format!("/api/alerts/{id}/ack"), &svc.reader, "");
    assert_eq!(r.status, 403, "a reader cannot acknowledge: {}", r.body);
    let r = post_as(a, &format!("/api/alerts/{id}/ack"), &svc.operator, "");
    assert_eq!(r.status, 200, "{}", r.body);
    let alerts = body_json(&get_as(a, "/api/alerts", &svc.reader));
    let acked = alerts["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["id"] == id)
        .unwrap()
        .clone();
    assert_eq!(acked["acknowledged_by"], "test-operator", "{acked}");
    assert_eq!(acked["resolved"], serde_json::Value::Null);
    let page = visit("/alerts", "alerts");
    assert!(page.contains("acknowledged by test-operator"), "{page}");
    assert!(page.contains("id=\"alert-history\""), "{page}");
    let audit = body_json(&get_as(a, "/api/audit", &svc.reader));
    assert!(
        audit
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "acknowledge-alert"
                && e["detail"] == id
                && e["outcome"] == "accepted"),
        "{audit}"
    );

    assert_eq!(terminate(svc, &dir), 0, "{}", dir.read("serve.log"));
}
