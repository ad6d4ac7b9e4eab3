//! The dashboard's pages: HTML rendered on the server, no script, charts as inline SVG.
//!
//! Consumes: a [`Snapshot`], the principal of the request (what it may do), the session's
//! CSRF token (put in every form that changes something), the audit trail and the alerts.
//! Produces: the login page, the overview, the sync error report (and its CSV), sync insight,
//! run history, the alerts page and an object's lineage, and the JSON of `/api/status`. Every
//! value from the state is HTML-escaped; CSV cells a spreadsheet would evaluate are prefixed
//! with `'`.

use super::alert_view::{self, Alerts};
use super::auth::{Principal, Role};
use super::snapshot::{self, ErrorItem, Snapshot, Step};
use crate::runner::StepStatus;
use crate::store::audit::AuditRecord;
use std::fmt::Write;

/// What every page needs.
pub struct Ctx<'a> {
    pub who: &'a Principal,
    /// The session's CSRF token (empty for a bearer-token request).
    pub csrf: &'a str,
    pub snap: &'a Snapshot,
}

/// `s` escaped for HTML text and attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `s` percent-encoded for a query string.
fn url(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:0;color:#1b1f24;background:#f6f7f9}\
header{background:#12324f;color:#fff;padding:.6em 1.2em;display:flex;gap:1.2em;align-items:center;flex-wrap:wrap}\
header a{color:#fff;text-decoration:none}header a.on{text-decoration:underline}header .who{margin-left:auto}\
main{padding:1em 1.5em;max-width:1200px}section{background:#fff;border:1px solid #d8dde3;border-radius:6px;padding:.6em 1em;margin:0 0 1em}\
table{border-collapse:collapse;width:100%;font-size:.92em}th,td{text-align:left;padding:.25em .5em;border-bottom:1px solid #e6e9ed;vertical-align:top}\
td.dn,td.conflicting,td.msg{overflow-wrap:anywhere;min-width:9em}\
th{background:#eef1f4}.bad{color:#a1121a;font-weight:600}.warn{color:#8a5a00;font-weight:600}.ok{color:#1a6b2b}\
.stop{border-left:5px solid #a1121a;background:#fdf0f0}.muted{color:#667}code{font-size:.95em}\
form.inline{display:inline}button{cursor:pointer}.mono{font-family:ui-monospace,monospace;white-space:pre-wrap}";

fn head(title: &str) -> String {
    format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{} · idflow</title>\
         <meta name=\"viewport\" content=\"width=device-width\"><style>{STYLE}</style></head><body>",
        esc(title)
    )
}

fn csrf_field(ctx: &Ctx) -> String {
    format!(
        "<input type=\"hidden\" name=\"csrf\" value=\"{}\">",
        esc(ctx.csrf)
    )
}

fn frame(ctx: &Ctx, at: &str, title: &str, body: &str) -> String {
    let mut out = head(title);
    out.push_str("<header><strong>idflow</strong>");
    for (path, name) in [
        ("/", "Overview"),
        ("/errors", "Sync errors"),
        ("/insight", "Sync insight"),
        ("/runs", "Run history"),
        ("/alerts", "Alerts"),
        ("/objects", "Objects"),
    ] {
        let on = if path == at { " class=\"on\"" } else { "" };
        let _ = write!(out, "<a href=\"{path}\"{on}>{name}</a>");
    }
    let _ = write!(
        out,
        "<span class=\"who\">{} ({})</span>",
        esc(&ctx.who.name),
        ctx.who.role.as_str()
    );
    if !ctx.csrf.is_empty() {
        let _ = write!(
            out,
            "<form class=\"inline\" method=\"post\" action=\"/logout\">{}<button>Log out</button></form>",
            csrf_field(ctx)
        );
    }
    let _ = write!(
        out,
        "</header><main><h1>{}</h1>{body}<p class=\"muted\">State as of {}.</p></main></body></html>",
        esc(title),
        esc(&ctx.snap.taken)
    );
    out
}

/// The login page, with a message after a failed attempt.
pub fn login(message: Option<&str>) -> String {
    let mut out = head("Log in");
    out.push_str("<main><h1>idflow: log in</h1><section>");
    if let Some(m) = message {
        let _ = write!(out, "<p class=\"bad\" id=\"login-error\">{}</p>", esc(m));
    }
    out.push_str(
        "<form method=\"post\" action=\"/login\"><p><label>Access token (from <code>idflow token \
         create</code>)<br><input type=\"password\" name=\"token\" size=\"60\" autocomplete=\"off\" \
         autofocus></label></p><p><button>Log in</button></p></form></section></main></body></html>",
    );
    out
}

fn status_class(status: &str) -> &'static str {
    match StepStatus::parse(status) {
        Some(s) if s.is_stopped() => "bad",
        Some(s) if s.is_warning() => "warn",
        _ => "ok",
    }
}

fn step_cells(s: Option<&Step>) -> String {
    match s {
        None => "<td class=\"muted\">none yet</td>".into(),
        Some(s) => format!(
            "<td><span class=\"{}\">{}</span> <span class=\"muted\">{}</span><br>{} adds, {} updates, {} deletes, {} renames, {} errors, {} ms</td>",
            status_class(&s.status),
            esc(&s.status),
            esc(&s.started),
            s.adds,
            s.updates,
            s.deletes,
            s.renames,
            s.errors,
            s.duration_ms
        ),
    }
}

fn steps_table(steps: &[Step], with_id: bool) -> String {
    let mut out = String::from("<table><tr>");
    if with_id {
        out.push_str("<th>#</th>");
    }
    out.push_str("<th>Started</th><th>Step</th><th>Connector</th><th>Status</th><th>Adds</th><th>Updates</th><th>Deletes</th><th>Renames</th><th>Errors</th><th>ms</th></tr>");
    for s in steps {
        out.push_str("<tr class=\"step\">");
        if with_id {
            let _ = write!(out, "<td>{}</td>", s.id.unwrap_or_default());
        }
        let _ = write!(
            out,
            "<td>{}</td><td>{}</td><td>{}</td><td class=\"{}\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&s.started),
            esc(&s.step),
            esc(&s.connector),
            status_class(&s.status),
            esc(&s.status),
            s.adds,
            s.updates,
            s.deletes,
            s.renames,
            s.errors,
            s.duration_ms
        );
    }
    out.push_str("</table>");
    out
}

/// The steps that stopped on the delete threshold: the latest import and export of each
/// connector.
fn threshold_stops(snap: &Snapshot) -> Vec<&Step> {
    snap.connectors
        .iter()
        .flat_map(|c| [c.last_import.as_ref(), c.last_export.as_ref()])
        .flatten()
        .filter(|s| s.over_threshold())
        .collect()
}

/// The alerts: the active ones (with their remediation, and an acknowledge button for an
/// operator), or all of `a` when `active_only` is false.
fn alerts_section(ctx: &Ctx, a: &Alerts, active_only: bool) -> String {
    let operator = ctx.who.role >= Role::Operator;
    let mut out = String::from("<section id=\"alerts\"><h2>Active alerts</h2>");
    if let Some(p) = &a.problem {
        let _ = write!(out, "<p class=\"bad\">{}</p>", esc(p));
    }
    if !a.engine {
        out.push_str(
            "<p class=\"muted\" id=\"no-alert-engine\">This service does not run the cycles \
             (<code>--no-schedule</code>): the alerts below are those the cycling process recorded.</p>",
        );
    }
    let active: Vec<&alert_view::Alert> =
        a.alerts.iter().filter(|x| x.resolved.is_none()).collect();
    if active.is_empty() {
        out.push_str("<p class=\"ok\" id=\"no-active-alert\">No active alert.</p>");
    }
    for x in active {
        let _ = write!(
            out,
            "<div class=\"alert {sev}\" data-kind=\"{kind}\"><strong class=\"alert-title\">{title}</strong> \
             ({sev}) raised {raised}{ack}<p>{desc}</p>",
            sev = esc(&x.severity),
            kind = esc(&x.kind),
            title = esc(&x.title),
            raised = esc(&x.raised),
            ack = x
                .acknowledged_by
                .as_deref()
                .map(|w| format!(", acknowledged by {}", esc(w)))
                .unwrap_or_default(),
            desc = esc(&x.description),
        );
        if !x.detail.is_empty() {
            let _ = write!(out, "<pre class=\"mono\">{}</pre>", esc(&x.detail));
        }
        if !x.remediation.is_empty() {
            out.push_str("<ol class=\"remediation\">");
            for step in &x.remediation {
                let _ = write!(out, "<li>{}</li>", esc(step));
            }
            out.push_str("</ol>");
        }
        let _ = write!(out, "<p class=\"muted\">See {}.</p>", esc(&x.docs));
        if operator && x.acknowledged_by.is_none() {
            let _ = write!(
                out,
                "<form class=\"inline\" method=\"post\" action=\"/api/alerts/{}/ack\">{}<button>Acknowledge</button></form>",
                url(&x.id),
                csrf_field(ctx)
            );
        }
        out.push_str("</div>");
    }
    out.push_str("</section>");
    if !active_only {
        out.push_str("<section id=\"alert-history\"><h2>History</h2><table><tr><th>Severity</th><th>Title</th><th>Raised</th><th>Resolved</th><th>Acknowledged</th></tr>");
        for x in &a.alerts {
            let _ = write!(
                out,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&x.severity),
                esc(&x.title),
                esc(&x.raised),
                esc(x.resolved.as_deref().unwrap_or("")),
                esc(x.acknowledged_by.as_deref().unwrap_or(""))
            );
        }
        out.push_str("</table></section>");
    }
    out
}

/// The overview.
pub fn overview(ctx: &Ctx, audit: &[AuditRecord], alerts: &Alerts) -> String {
    let s = ctx.snap;
    let operator = ctx.who.role >= Role::Operator;
    let mut b = String::new();
    if let Some(p) = &s.problem {
        let _ = write!(
            b,
            "<section class=\"stop\"><p class=\"bad\">{}</p></section>",
            esc(p)
        );
    }
    // Delete-threshold stops, first: nothing of those steps was done.
    for st in threshold_stops(s) {
        let check = if st.step.contains("import") {
            format!(
                "Check why the read of {} no longer has those objects",
                esc(&st.connector)
            )
        } else {
            format!(
                "Check the deletes (<code>idflow state pending-exports --connector {}</code>)",
                esc(&st.connector)
            )
        };
        let _ = write!(
            b,
            "<section class=\"stop\" id=\"threshold-stop\"><h2 class=\"bad\">{} {} stopped: delete threshold exceeded</h2>\
             <p><span class=\"deletes\">{}</span> deletes; the delete threshold is <span class=\"threshold\">{}</span>. \
             Nothing of the step was done. {check}; \
             when they are right, allow them once (<code>idflow run --allow-deletes {}</code>)",
            esc(&st.step),
            esc(&st.connector),
            st.deletes,
            s.delete_threshold,
            st.deletes
        );
        if operator && s.scheduled {
            let _ = write!(
                b,
                " or here: <form class=\"inline\" method=\"post\" action=\"/api/allow-deletes\">{}<input type=\"hidden\" name=\"count\" value=\"{}\"><button>Allow {} deletes in the next cycle</button></form>",
                csrf_field(ctx),
                st.deletes,
                st.deletes
            );
        }
        b.push_str(".</p></section>");
    }
    b.push_str(&alerts_section(ctx, alerts, true));
    b.push_str("<section id=\"last-cycle\"><h2>Last cycle</h2>");
    match &s.last_cycle {
        Some(c) => {
            let _ = write!(
                b,
                "<p>Started {} · {:.1} s · <span class=\"{}\">{}</span></p>",
                esc(&c.started),
                c.seconds,
                if c.ok { "ok" } else { "bad" },
                if c.ok {
                    "no step stopped"
                } else {
                    "a step stopped or the cycle failed"
                }
            );
            if let Some(e) = &c.error {
                let _ = write!(b, "<p class=\"bad\">{}</p>", esc(e));
            }
            b.push_str(&steps_table(&c.steps, false));
        }
        None => b.push_str("<p class=\"muted\">No cycle run by this service yet.</p>"),
    }
    let _ = write!(
        b,
        "<p>Last successful cycle: {}. Mode: {}. Schedule: {}.</p>",
        s.last_successful_cycle
            .as_deref()
            .map(esc)
            .unwrap_or_else(|| "never".into()),
        if s.staging {
            "<strong class=\"warn\" id=\"staging\">staging (exports are computed, not sent)</strong>"
        } else {
            "<span id=\"staging\">active (exports are sent)</span>"
        },
        if s.scheduled {
            format!("a cycle every {} s", s.interval_seconds)
        } else {
            "none (--no-schedule)".to_string()
        }
    );
    if operator && s.scheduled {
        let _ = write!(
            b,
            "<form method=\"post\" action=\"/api/cycle\">{}<button id=\"run-cycle\">Run a cycle now</button></form>",
            csrf_field(ctx)
        );
    }
    b.push_str("</section>");
    let _ = write!(
        b,
        "<section id=\"connectors\"><h2>Connectors</h2><p>Delete threshold: <strong id=\"delete-threshold\">{}</strong> deletes per step · error limit {}</p>\
         <table><tr><th>Connector</th><th>Objects</th><th>Last import</th><th>Last export</th><th>Pending exports</th></tr>",
        s.delete_threshold, s.error_limit
    );
    for c in &s.connectors {
        let p = &c.pending;
        let _ = write!(
            b,
            "<tr class=\"connector\" data-connector=\"{}\"><td>{}</td><td>{}</td>{}{}<td class=\"pending\">{} adds, {} updates, <span class=\"{}\">{} deletes</span>, {} renames</td></tr>",
            esc(&c.name),
            esc(&c.name),
            c.objects,
            step_cells(c.last_import.as_ref()),
            step_cells(c.last_export.as_ref()),
            p.add,
            p.update,
            if p.delete > s.delete_threshold {
                "bad"
            } else {
                ""
            },
            p.delete,
            p.rename
        );
    }
    b.push_str("</table>");
    let _ = write!(
        b,
        "<p>Last sync: </p><table><tr>{}</tr></table></section>",
        step_cells(s.last_sync.as_ref())
    );
    b.push_str("<section id=\"error-summary\"><h2>Objects in error</h2><table><tr><th>Category</th><th>Objects</th></tr>");
    for (cat, list) in snapshot::by_category(&s.errors) {
        let _ = write!(
            b,
            "<tr><td><a href=\"/errors#{}\">{}</a></td><td class=\"count\" data-category=\"{}\">{}</td></tr>",
            url(&cat),
            esc(&cat),
            esc(&cat),
            list.len()
        );
    }
    b.push_str("</table></section>");
    b.push_str("<section id=\"audit\"><h2>Operator actions</h2>");
    if audit.is_empty() {
        b.push_str("<p class=\"muted\">None recorded.</p>");
    } else {
        b.push_str("<table><tr><th>When</th><th>Who</th><th>Role</th><th>Action</th><th>Detail</th><th>Outcome</th></tr>");
        for a in audit {
            let _ = write!(
                b,
                "<tr class=\"audit\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&a.at),
                esc(&a.who),
                esc(&a.role),
                esc(&a.action),
                esc(&a.detail),
                esc(&a.outcome)
            );
        }
        b.push_str("</table>");
    }
    b.push_str("</section>");
    frame(ctx, "/", "Overview", &b)
}

fn object_link(connector: &str, dn: &str) -> String {
    if dn.is_empty() {
        return String::new();
    }
    format!(
        "<a href=\"/objects?connector={}&amp;dn={}\">{}</a>",
        url(connector),
        url(dn),
        esc(dn)
    )
}

/// The sync error report.
pub fn errors(ctx: &Ctx) -> String {
    let s = ctx.snap;
    let groups = snapshot::by_category(&s.errors);
    let mut b = format!(
        "<section><p><strong id=\"error-total\">{}</strong> objects in error (the latest sync and the latest import of each connector). \
         <a href=\"/api/errors.csv\" download>Download CSV</a> · <a href=\"/api/errors\">JSON</a></p>\
         <table id=\"categories\"><tr><th>Category</th><th>Objects</th></tr>",
        s.errors.len()
    );
    for (cat, list) in &groups {
        let _ = write!(
            b,
            "<tr><td><a href=\"#{}\">{}</a></td><td class=\"count\" data-category=\"{}\">{}</td></tr>",
            url(cat),
            esc(cat),
            esc(cat),
            list.len()
        );
    }
    b.push_str("</table></section>");
    for (cat, list) in &groups {
        if list.is_empty() {
            continue;
        }
        let dup = cat == "Duplicate Attribute";
        let _ = write!(
            b,
            "<section class=\"category\" id=\"{}\" data-category=\"{}\"><h2>{} ({})</h2><table><tr><th>Connector</th><th>DN</th><th>Attribute</th><th>Value</th><th>Rule</th>{}<th>Detail</th></tr>",
            url(cat),
            esc(cat),
            esc(cat),
            list.len(),
            if dup {
                "<th>Conflicting object</th>"
            } else {
                ""
            }
        );
        for e in list {
            let _ = write!(
                b,
                "<tr class=\"error\"><td>{}</td><td class=\"dn\">{}</td><td>{}</td><td>{}</td><td>{}</td>",
                esc(&e.connector),
                object_link(&e.connector, &e.dn),
                esc(&e.attribute),
                esc(&e.value),
                esc(&e.rule)
            );
            if dup {
                // The holder of a value is an object of the same connector; of a DN, a
                // metaverse object.
                let holder = if e.conflicting.contains('=') {
                    object_link(&e.connector, &e.conflicting)
                } else {
                    esc(&e.conflicting)
                };
                let _ = write!(b, "<td class=\"conflicting\">{holder}</td>");
            }
            let _ = write!(b, "<td class=\"msg\">{}</td></tr>", esc(&e.message));
        }
        b.push_str("</table></section>");
    }
    frame(ctx, "/errors", "Sync error report", &b)
}

/// A CSV cell a spreadsheet does not evaluate.
fn cell(s: &str) -> String {
    if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{s}")
    } else {
        s.to_string()
    }
}

/// The error report as CSV.
pub fn errors_csv(errors: &[ErrorItem]) -> String {
    let mut w = csv::Writer::from_writer(Vec::new());
    let _ = w.write_record([
        "category",
        "connector",
        "dn",
        "attribute",
        "value",
        "rule",
        "conflicting_object",
        "code",
        "message",
        "run",
    ]);
    for e in errors {
        let run = e.run.to_string();
        let _ = w.write_record(
            [
                &e.category,
                &e.connector,
                &e.dn,
                &e.attribute,
                &e.value,
                &e.rule,
                &e.conflicting,
                &e.code,
                &e.message,
                &run,
            ]
            .map(|c| cell(c)),
        );
    }
    String::from_utf8(w.into_inner().unwrap_or_default()).unwrap_or_default()
}

const PALETTE: [&str; 8] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
];

/// A line chart as inline SVG: each series its points (time in seconds, value), drawn on
/// common scales (time left to right), with a legend.
fn chart(id: &str, unit: &str, series: &[(String, Vec<(f64, f64)>)]) -> String {
    let (w, h, pad) = (760.0, 220.0, 36.0);
    let all = || series.iter().flat_map(|(_, v)| v.iter().copied());
    let max = all().map(|(_, y)| y).fold(0.0f64, f64::max).max(1.0);
    let t0 = all().map(|(t, _)| t).fold(f64::INFINITY, f64::min);
    let t1 = all().map(|(t, _)| t).fold(f64::NEG_INFINITY, f64::max);
    let span = if t1 > t0 { t1 - t0 } else { 1.0 };
    let mut out = format!(
        "<svg id=\"{id}\" role=\"img\" width=\"{w}\" height=\"{}\" viewBox=\"0 0 {w} {}\" xmlns=\"http://www.w3.org/2000/svg\">\
         <line x1=\"{pad}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"#999\"/><line x1=\"{pad}\" y1=\"8\" x2=\"{pad}\" y2=\"{}\" stroke=\"#999\"/>\
         <text x=\"2\" y=\"14\" font-size=\"11\">{} {}</text><text x=\"2\" y=\"{}\" font-size=\"11\">0</text>",
        h + 20.0 * series.len() as f64,
        h + 20.0 * series.len() as f64,
        h - pad,
        w - 8.0,
        h - pad,
        h - pad,
        max.round(),
        esc(unit),
        h - pad
    );
    for (i, (name, values)) in series.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        let points: Vec<String> = values
            .iter()
            .map(|(t, v)| {
                let x = pad + (w - pad - 8.0) * (t - t0) / span;
                let y = (h - pad) - (h - pad - 8.0) * v / max;
                format!("{x:.1},{y:.1}")
            })
            .collect();
        let _ = write!(
            out,
            "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"2\" points=\"{}\"><title>{}</title></polyline>\
             <rect x=\"{pad}\" y=\"{}\" width=\"12\" height=\"4\" fill=\"{color}\"/><text x=\"{}\" y=\"{}\" font-size=\"12\" class=\"legend\">{}</text>",
            points.join(" "),
            esc(name),
            h - 8.0 + 20.0 * i as f64,
            pad + 18.0,
            h - 2.0 + 20.0 * i as f64,
            esc(name)
        );
    }
    out.push_str("</svg>");
    out
}

/// An RFC 3339 time in seconds since the epoch (0 when it does not parse).
fn seconds(t: &str) -> f64 {
    t.parse::<jiff::Timestamp>()
        .map(|t| t.as_millisecond() as f64 / 1000.0)
        .unwrap_or(0.0)
}

/// Sync insight: step latency per connector over time, and the object change trend.
pub fn insight(ctx: &Ctx) -> String {
    let i = snapshot::insight(ctx.snap);
    let mut b = String::from("<section><h2>Step latency per connector</h2>");
    if i.latency.is_empty() {
        b.push_str("<p class=\"muted\">No run history yet.</p>");
    } else {
        let series: Vec<(String, Vec<(f64, f64)>)> = i
            .latency
            .iter()
            .map(|s| {
                let name = if s.connector.is_empty() {
                    s.step.clone()
                } else {
                    format!("{} {}", s.step, s.connector)
                };
                let points = s.points.iter().map(|(t, ms)| (seconds(t), *ms as f64));
                (name, points.collect())
            })
            .collect();
        b.push_str(&chart("latency", "ms", &series));
        let first = i.changes.first().map(|c| c.started.as_str()).unwrap_or("");
        let last = i.changes.last().map(|c| c.started.as_str()).unwrap_or("");
        let _ = write!(
            b,
            "<p class=\"muted\">From {} to {} (oldest left).</p>",
            esc(first),
            esc(last)
        );
    }
    b.push_str("</section><section><h2>Object change trend</h2>");
    if !i.changes.is_empty() {
        // The changes of each step, at its start.
        let pick = |f: fn(&snapshot::ChangePoint) -> i64| -> Vec<(f64, f64)> {
            i.changes
                .iter()
                .map(|c| (seconds(&c.started), f(c) as f64))
                .collect()
        };
        let series = vec![
            ("adds".to_string(), pick(|c| c.adds)),
            ("updates".to_string(), pick(|c| c.updates)),
            ("deletes".to_string(), pick(|c| c.deletes)),
            ("renames".to_string(), pick(|c| c.renames)),
        ];
        b.push_str(&chart("changes", "objects", &series));
    }
    b.push_str("<p><a href=\"/api/insight\">JSON</a></p></section>");
    frame(ctx, "/insight", "Sync insight", &b)
}

/// The run history.
pub fn runs(ctx: &Ctx) -> String {
    let b = format!(
        "<section><p>The newest {} steps of the run history. <a href=\"/api/runs\">JSON</a></p>{}</section>",
        ctx.snap.runs.len(),
        steps_table(&ctx.snap.runs, true)
    );
    frame(ctx, "/runs", "Run history", &b)
}

/// The alerts and their history.
pub fn alerts(ctx: &Ctx, alerts: &Alerts) -> String {
    let b = format!(
        "{}<section><p><a href=\"/api/alerts\">JSON</a></p></section>",
        alerts_section(ctx, alerts, false)
    );
    frame(ctx, "/alerts", "Alerts", &b)
}

/// An object's lineage (what `idflow state show` prints), with the search form.
pub fn object(
    ctx: &Ctx,
    dn: &str,
    connector: Option<&str>,
    found: Option<&Result<Vec<String>, String>>,
) -> String {
    let mut b = format!(
        "<section><form method=\"get\" action=\"/objects\"><label>DN <input name=\"dn\" size=\"70\" value=\"{}\"></label> \
         <label>Connector <input name=\"connector\" value=\"{}\"></label> <button>Show</button></form></section>",
        esc(dn),
        esc(connector.unwrap_or(""))
    );
    match found {
        None => {}
        Some(Ok(lines)) => {
            let _ = write!(
                b,
                "<section><pre class=\"mono\" id=\"lineage\">{}</pre><p><a href=\"/api/objects?dn={}{}\">JSON</a></p></section>",
                esc(&lines.join("\n")),
                url(dn),
                connector
                    .map(|c| format!("&amp;connector={}", url(c)))
                    .unwrap_or_default()
            );
        }
        Some(Err(e)) => {
            let _ = write!(b, "<section><p class=\"bad\">{}</p></section>", esc(e));
        }
    }
    frame(ctx, "/objects", "Object lineage", &b)
}

/// `/api/status`: the overview's content.
pub fn status_json(s: &Snapshot, alerts: &Alerts) -> serde_json::Value {
    let categories: Vec<serde_json::Value> = snapshot::by_category(&s.errors)
        .iter()
        .map(|(c, l)| serde_json::json!({"category": c, "count": l.len()}))
        .collect();
    let stops: Vec<&Step> = threshold_stops(s);
    serde_json::json!({
        "taken": s.taken,
        "staging": s.staging,
        "scheduled": s.scheduled,
        "interval_seconds": s.interval_seconds,
        "delete_threshold": s.delete_threshold,
        "error_limit": s.error_limit,
        "last_successful_cycle": s.last_successful_cycle,
        "last_cycle": s.last_cycle,
        "last_sync": s.last_sync,
        "connectors": s.connectors,
        "delete_threshold_stops": stops,
        "errors_by_category": categories,
        "alerts": alerts,
    })
}

#[cfg(test)]
mod tests {
    use super::status_class;
    use crate::runner::StepStatus;

    #[test]
    fn a_status_is_shown_as_stopped_warning_or_ok() {
        for s in StepStatus::ALL {
            let want = if s.is_stopped() {
                "bad"
            } else if s.is_warning() {
                "warn"
            } else {
                "ok"
            };
            assert_eq!(status_class(s.as_str()), want, "{s}");
        }
        assert_eq!(status_class("stopped-error-limit"), "bad");
        assert_eq!(status_class("completed-export-errors"), "warn");
        assert_eq!(status_class("staged"), "ok");
    }
}
