//! The alerts, notifications and bundle reload of `idflow serve`, driven as a library over
//! real runs of a copy of the quickstart: each scenario runs cycles (or steps) with a
//! `Runner`, evaluates the alerts as the service does after each, and looks at what was
//! raised and resolved in the state. The notifications go to a local webhook receiver and a
//! local SMTP sink (`common/sinks.rs`).

use idflow::config::{Email, Notify, Webhook};
use idflow::runner::{CycleOptions, Runner, StepStatus};
use idflow::serve::alerts::{self, Alert, Change, Context, Event, Kind, Severity};
use idflow::serve::notify::Notifier;
use idflow::serve::reload::{Outcome, Watcher};
use idflow::store::sqlite::SqliteStore;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

mod common;
use common::{Dir, runner};
#[path = "common/sinks.rs"]
mod sinks;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const AD: &str = "contoso.com";
const ENTRA: &str = "contoso.onmicrosoft.com";

/// A copy of the quickstart with its bundle given by absolute path (or, `own_bundle`, a copy
/// of the bundle in `bundle/`, for the tests that change it).
fn quickstart(name: &str, own_bundle: bool) -> Dir {
    let d = Dir::new(name);
    let src = Path::new(ROOT).join("examples/quickstart");
    std::fs::copy(src.join("ad.ldif"), d.path("ad.ldif")).unwrap();
    let toml = std::fs::read_to_string(src.join("idflow.toml")).unwrap();
    d.write("idflow.toml", &toml);
    let bundle = Path::new(ROOT).join("rules/entra-default");
    if own_bundle {
        copy_dir(&bundle, &d.path("bundle"));
        d.set("bundle", "\"bundle\"");
    } else {
        d.set("bundle", &format!("{:?}", bundle.display().to_string()));
    }
    d
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.path().is_dir() {
            copy_dir(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

/// The evaluation context of a service that started long ago (the "no successful cycle" alert
/// is left out unless `started` is given) and a disk threshold no test filesystem reaches.
fn context(d: &Dir, started: Option<jiff::Timestamp>, interval: Duration) -> Context {
    Context {
        started,
        interval,
        config: PathBuf::from(d.config()),
        disk_usage_percent: 100.0,
    }
}

fn evaluate(r: &mut Runner, ctx: &Context) -> Vec<Event> {
    alerts::evaluate(r, ctx).unwrap()
}

fn active(r: &mut Runner) -> Vec<Alert> {
    alerts::active(r.store()).unwrap()
}

fn active_keys(r: &mut Runner) -> BTreeSet<String> {
    active(r).into_iter().map(|a| a.key).collect()
}

fn find(r: &mut Runner, key: &str) -> Alert {
    active(r)
        .into_iter()
        .find(|a| a.key == key)
        .unwrap_or_else(|| panic!("no active alert {key}: {:#?}", active(r)))
}

/// The events' changes and keys, raised first.
fn events(events: &[Event]) -> Vec<(Change, String)> {
    let mut out: Vec<(Change, String)> = events
        .iter()
        .map(|e| (e.event, e.alert.key.clone()))
        .collect();
    out.sort_by_key(|(c, k)| (*c != Change::Raised, k.clone()));
    out
}

fn cycle(r: &mut Runner, allow_deletes: usize) -> Vec<idflow::runner::StepReport> {
    r.renew();
    r.cycle(CycleOptions {
        allow_deletes,
        ..Default::default()
    })
    .unwrap()
}

// ------------------------------------------------------------------------ the LDIF source

fn records(text: &str) -> Vec<String> {
    text.split("\n\n").map(str::to_string).collect()
}

fn value_of(record: &str, name: &str) -> Option<String> {
    record
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name}: ")).map(str::to_string))
}

/// Users with a department and a user principal name (synchronized to Entra).
fn synced_users(recs: &[String]) -> Vec<usize> {
    recs.iter()
        .enumerate()
        .filter(|(_, r)| {
            r.contains("objectClass: user")
                && value_of(r, "department").is_some()
                && value_of(r, "userPrincipalName").is_some()
                && value_of(r, "dn").is_some()
        })
        .map(|(i, _)| i)
        .collect()
}

/// Removes `n` synchronized users from ad.ldif, with the values that refer to them.
fn remove_users(d: &Dir, n: usize) {
    let recs = records(&d.read("ad.ldif"));
    let chosen: BTreeSet<String> = synced_users(&recs)
        .into_iter()
        .step_by(7)
        .take(n)
        .map(|i| value_of(&recs[i], "dn").unwrap().to_lowercase())
        .collect();
    assert_eq!(chosen.len(), n);
    let kept: Vec<String> = recs
        .iter()
        .filter(|r| value_of(r, "dn").is_none_or(|dn| !chosen.contains(&dn.to_lowercase())))
        .map(|r| {
            r.lines()
                .filter(|l| {
                    l.split_once(": ")
                        .is_none_or(|(k, v)| k == "dn" || !chosen.contains(&v.to_lowercase()))
                })
                .collect::<Vec<_>>()
                .join("\n")
        })
        .collect();
    d.write("ad.ldif", &kept.join("\n\n"));
}

/// Gives `n` synchronized users the user principal name of the first one: `n` duplicate
/// attribute errors in the sync.
fn duplicate_upns(d: &Dir, n: usize) {
    let mut recs = records(&d.read("ad.ldif"));
    let users = synced_users(&recs);
    let upn = value_of(&recs[users[0]], "userPrincipalName").unwrap();
    for &i in users.iter().skip(1).step_by(11).take(n) {
        let old = value_of(&recs[i], "userPrincipalName").unwrap();
        recs[i] = recs[i].replace(
            &format!("userPrincipalName: {old}"),
            &format!("userPrincipalName: {upn}"),
        );
    }
    d.write("ad.ldif", &recs.join("\n\n"));
}

// --------------------------------------------------------------------------------- scenarios

#[test]
fn delete_threshold_exceeded_then_allowed_resolves() {
    let d = quickstart("alerts-threshold", false);
    d.set("delete_threshold", "5");
    let mut r = runner(&d);
    let ctx = context(&d, None, Duration::from_secs(1800));
    cycle(&mut r, 0);
    assert!(evaluate(&mut r, &ctx).is_empty());
    assert!(active(&mut r).is_empty(), "{:#?}", active(&mut r));

    // Eight users gone from AD: more than the threshold of 5; the import stops.
    remove_users(&d, 8);
    let reports = cycle(&mut r, 0);
    let import = reports.iter().find(|s| s.connector == AD).unwrap();
    assert_eq!(import.status, StepStatus::StoppedDeletionThresholdExceeded);
    let raised = evaluate(&mut r, &ctx);
    let key = format!("delete_threshold_exceeded:import:{AD}");
    assert_eq!(events(&raised), [(Change::Raised, key.clone())]);
    let a = find(&mut r, &key);
    assert_eq!(a.kind, Kind::DeleteThresholdExceeded);
    assert_eq!(a.severity, Severity::Error);
    assert!(a.title.contains("8 deletes"), "{a:#?}");
    let command = format!(
        "idflow run --config {} --allow-deletes 8",
        ctx.config.display()
    );
    assert!(
        a.remediation.iter().any(|s| s.contains(&command)),
        "{command}: {a:#?}"
    );
    assert_eq!(a.docs, "docs/ALERTS.md#delete_threshold_exceeded");
    // Evaluated again (the minute's evaluation): the same alert, nothing new.
    assert!(evaluate(&mut r, &ctx).is_empty());

    // The import let through: the export to Entra holds the deletes and stops in turn.
    r.renew();
    r.import(AD, false, 8).unwrap();
    r.sync(idflow::engine::sync::Mode::Delta).unwrap();
    let export = r.export(ENTRA, 0).unwrap();
    assert_eq!(
        export.status,
        StepStatus::StoppedDeletionThresholdExceeded,
        "{export:#?}"
    );
    let n = export.deletes;
    let changed = evaluate(&mut r, &ctx);
    let export_key = format!("delete_threshold_exceeded:export:{ENTRA}");
    assert_eq!(
        events(&changed),
        [
            (Change::Raised, export_key.clone()),
            (Change::Resolved, key.clone())
        ]
    );
    let a = find(&mut r, &export_key);
    assert!(
        a.title.starts_with(&format!(
            "Export to {ENTRA} stopped: delete threshold exceeded"
        )),
        "{a:#?}"
    );
    assert!(a.detail.contains(&format!("--allow-deletes {n}")), "{a:#?}");

    // Allowed: the export goes through and the alert resolves.
    let export = r.export(ENTRA, n).unwrap();
    assert_eq!(export.status, StepStatus::Success, "{export:#?}");
    let resolved = evaluate(&mut r, &ctx);
    assert_eq!(events(&resolved), [(Change::Resolved, export_key.clone())]);
    assert!(resolved[0].alert.resolved_at.is_some());
    assert!(active(&mut r).is_empty(), "{:#?}", active(&mut r));
    let history = alerts::history(r.store(), 10).unwrap();
    assert_eq!(history.len(), 2);
    assert!(history.iter().all(|a| a.resolved_at.is_some()));
}

#[test]
fn an_unreadable_source_raises_import_failed_until_it_is_fixed() {
    let d = quickstart("alerts-unreadable", false);
    let mut r = runner(&d);
    let ctx = context(&d, None, Duration::from_secs(1800));
    cycle(&mut r, 0);
    evaluate(&mut r, &ctx);
    assert!(active(&mut r).is_empty(), "{:#?}", active(&mut r));

    std::fs::rename(d.path("ad.ldif"), d.path("ad.ldif.away")).unwrap();
    // Evaluated between the steps, as the service does: raised before the cycle ends.
    let mut raised = Vec::new();
    r.renew();
    let reports = r
        .cycle_until(CycleOptions::default(), &mut |r| {
            raised.extend(alerts::evaluate(r, &ctx).unwrap());
            false
        })
        .unwrap();
    let import = reports.iter().find(|s| s.connector == AD).unwrap();
    assert!(import.status.is_stopped(), "{import:#?}");
    assert!(evaluate(&mut r, &ctx).is_empty());
    let key = format!("import_failed:{AD}");
    assert_eq!(events(&raised), [(Change::Raised, key.clone())]);
    let a = find(&mut r, &key);
    assert_eq!(a.title, format!("Import from {AD} failed"));
    assert!(!a.remediation.is_empty());
    // The connector's own error, not a connection failure.
    assert!(
        !active_keys(&mut r).contains(&format!("connection_failed:{AD}")),
        "{:#?}",
        active(&mut r)
    );
    assert!(!a.detail.is_empty(), "{a:#?}");

    // Acknowledged: still active.
    let acked = alerts::acknowledge(r.store(), a.id, "operator@contoso.com")
        .unwrap()
        .unwrap();
    assert_eq!(
        acked.acknowledged_by.as_deref(),
        Some("operator@contoso.com")
    );
    assert!(acked.is_active());

    std::fs::rename(d.path("ad.ldif.away"), d.path("ad.ldif")).unwrap();
    cycle(&mut r, 0);
    let resolved = evaluate(&mut r, &ctx);
    assert_eq!(events(&resolved), [(Change::Resolved, key)]);
    assert!(active(&mut r).is_empty(), "{:#?}", active(&mut r));
}

#[test]
fn a_connection_failure_says_authentication_or_unreachable() {
    let d = quickstart("alerts-connection", false);
    // AD over LDAP, on a port nobody listens on, with a password file not there yet.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let password = d.path("ad.password");
    d.replace(
        "kind = \"ldif\"\npath = \"ad.ldif\"",
        &format!(
            "kind = \"ad\"\nurl = \"ldap://127.0.0.1:{port}\"\nbind_dn = \"CN=idflow,CN=Users,DC=contoso,DC=com\"\npassword_file = {:?}\nconnect_timeout = 2",
            password.display().to_string()
        ),
    );
    let ctx = context(&d, None, Duration::from_secs(1800));
    let key = format!("connection_failed:{AD}");
    let mut r = runner(&d);
    let reports = cycle(&mut r, 0);
    let raised = evaluate(&mut r, &ctx);
    assert_eq!(
        events(&raised),
        [(Change::Raised, key.clone())],
        "{reports:#?}"
    );
    let a = find(&mut r, &key);
    assert_eq!(
        a.title,
        format!("Connection to {AD} failed (authentication)")
    );
    assert!(a.detail.contains("password_file"), "{a:#?}");
    assert!(!active_keys(&mut r).contains(&format!("import_failed:{AD}")));

    // The password is there: now the server cannot be reached. The same alert says so.
    std::fs::write(&password, "secret\n").unwrap();
    cycle(&mut r, 0);
    assert!(evaluate(&mut r, &ctx).is_empty());
    let a = find(&mut r, &key);
    assert_eq!(a.title, format!("Connection to {AD} failed (unreachable)"));
    assert!(a.detail.contains("cannot connect"), "{a:#?}");

    // Back to the LDIF export: the import connects, the alert resolves.
    drop(r);
    let quick = quickstart("alerts-connection-back", false);
    d.write("idflow.toml", &quick.read("idflow.toml"));
    let mut r = runner(&d);
    cycle(&mut r, 0);
    let resolved = evaluate(&mut r, &ctx);
    assert_eq!(events(&resolved), [(Change::Resolved, key)]);
    assert!(active(&mut r).is_empty(), "{:#?}", active(&mut r));
}

#[test]
fn objects_in_error_rising_and_falling_and_the_error_limit() {
    let d = quickstart("alerts-errors", false);
    let original = d.read("ad.ldif");
    let mut r = runner(&d);
    let ctx = context(&d, None, Duration::from_secs(1800));
    cycle(&mut r, 0);
    evaluate(&mut r, &ctx);
    assert!(active(&mut r).is_empty(), "{:#?}", active(&mut r));
    let before = r.latest_errors().unwrap().len();

    // Three users take the first one's user principal name: three duplicate attribute errors.
    duplicate_upns(&d, 3);
    cycle(&mut r, 0);
    let after = r.latest_errors().unwrap().len();
    assert!(after > before, "{before} -> {after}");
    let raised = evaluate(&mut r, &ctx);
    assert_eq!(
        events(&raised),
        [(Change::Raised, "objects_in_error_increased".to_string())]
    );
    let a = find(&mut r, "objects_in_error_increased");
    assert_eq!(a.severity, Severity::Warning);
    assert_eq!(
        a.title,
        format!("Objects in error increased from {before} to {after}")
    );

    // Fixed: back to where it was, resolved.
    d.write("ad.ldif", &original);
    cycle(&mut r, 0);
    assert_eq!(r.latest_errors().unwrap().len(), before);
    let resolved = evaluate(&mut r, &ctx);
    assert_eq!(
        events(&resolved),
        [(Change::Resolved, "objects_in_error_increased".to_string())]
    );

    // The error limit: the same duplicates against a limit of 2 stop the sync.
    drop(r);
    d.replace("staging = false", "staging = false\nerror_limit = 2");
    let mut r = runner(&d);
    duplicate_upns(&d, 3);
    let reports = cycle(&mut r, 0);
    assert!(
        reports
            .iter()
            .any(|s| s.status == StepStatus::StoppedErrorLimit),
        "{reports:#?}"
    );
    let raised = evaluate(&mut r, &ctx);
    assert!(
        events(&raised).contains(&(Change::Raised, "error_limit_reached".to_string())),
        "{raised:#?}"
    );
    assert!(
        find(&mut r, "error_limit_reached")
            .title
            .contains("error limit of 2")
    );
    d.write("ad.ldif", &original);
    cycle(&mut r, 0);
    let resolved = evaluate(&mut r, &ctx);
    assert!(
        events(&resolved).contains(&(Change::Resolved, "error_limit_reached".to_string())),
        "{resolved:#?}"
    );
    assert!(active(&mut r).is_empty(), "{:#?}", active(&mut r));
}

#[test]
fn no_successful_cycle_in_twice_the_interval() {
    let d = quickstart("alerts-no-success", false);
    let mut r = runner(&d);
    let interval = Duration::from_secs(1);
    let ctx = context(&d, Some(jiff::Timestamp::now()), interval);
    // Just started: not yet.
    assert!(evaluate(&mut r, &ctx).is_empty());
    std::thread::sleep(interval * 2 + Duration::from_millis(100));
    let raised = evaluate(&mut r, &ctx);
    assert_eq!(
        events(&raised),
        [(Change::Raised, "no_successful_cycle".to_string())]
    );
    assert_eq!(
        find(&mut r, "no_successful_cycle").title,
        "No successful sync cycle in 2s"
    );
    // A successful cycle, recorded as the service records it, resolves it.
    cycle(&mut r, 0);
    let t = jiff::Timestamp::now().as_millisecond() as f64 / 1000.0;
    r.set_meta(idflow::serve::metrics::LAST_SUCCESS_KEY, &t.to_string())
        .unwrap();
    let resolved = evaluate(&mut r, &ctx);
    assert_eq!(
        events(&resolved),
        [(Change::Resolved, "no_successful_cycle".to_string())]
    );
}

#[test]
fn bundle_reload_takes_a_good_change_and_refuses_a_bad_one() {
    let d = quickstart("alerts-reload", true);
    let mut r = runner(&d);
    cycle(&mut r, 0);
    let mut w = Watcher::new(&r);
    let (outcome, ev) = w.check(&mut r).unwrap();
    assert_eq!((outcome, ev.len()), (Outcome::Unchanged, 0));
    let hash = r.bundle_hash().to_string();

    // A change that checks: taken, and the next sync is a full one.
    let file = d.path("bundle/bundle.idf");
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, format!("{text}\n# reviewed\n")).unwrap();
    let (outcome, ev) = w.check(&mut r).unwrap();
    assert_eq!((outcome, ev.len()), (Outcome::Reloaded, 0));
    assert_ne!(r.bundle_hash(), hash);
    let good = r.bundle_hash().to_string();
    let reports = cycle(&mut r, 0);
    assert!(
        reports.iter().any(|s| s.step == "full-sync"),
        "{reports:#?}"
    );

    // A change that does not check: refused, alerted, the bundle in use kept.
    std::fs::write(&file, format!("{text}\nthis is not a rule\n")).unwrap();
    let (outcome, ev) = w.check(&mut r).unwrap();
    let Outcome::Refused(summary) = outcome else {
        panic!("{outcome:?}")
    };
    assert!(summary.contains("bundle.idf:"), "{summary}");
    assert_eq!(
        events(&ev),
        [(Change::Raised, "bundle_change_refused".to_string())]
    );
    let a = find(&mut r, "bundle_change_refused");
    assert_eq!(a.detail, summary);
    assert_eq!(r.bundle_hash(), good);
    // Looked at again without a change: nothing new.
    assert_eq!(w.check(&mut r).unwrap().0, Outcome::Unchanged);
    // The service goes on with the bundle it had: a cycle that changes nothing.
    let reports = cycle(&mut r, 0);
    assert!(
        reports.iter().all(|s| !s.status.is_stopped()),
        "{reports:#?}"
    );
    assert!(
        reports.iter().all(|s| s.step != "full-sync"),
        "{reports:#?}"
    );

    // Fixed: taken, and the alert resolves.
    std::fs::write(&file, &text).unwrap();
    let (outcome, ev) = w.check(&mut r).unwrap();
    assert_eq!(outcome, Outcome::Reloaded);
    assert_eq!(
        events(&ev),
        [(Change::Resolved, "bundle_change_refused".to_string())]
    );
    assert_eq!(r.bundle_hash(), hash);
}

// ----------------------------------------------------------------------------- notifications

/// An event of an alert raised in a fresh in-memory store.
fn an_event() -> Event {
    let mut s = SqliteStore::memory().unwrap();
    alerts::raise(
        &mut s,
        alerts::Raise {
            kind: Kind::ImportFailed,
            key: "import_failed:HR".into(),
            title: "Import from HR failed".into(),
            description: "The latest delta-import of connector \"HR\" stopped.".into(),
            remediation: vec!["Fix the source.".into(), "Wait for the next cycle.".into()],
            detail: "hr.csv: cannot read: the file does not exist".into(),
        },
    )
    .unwrap()
    .unwrap()
}

fn email(port: u16, starttls: bool, ca: Option<PathBuf>) -> Email {
    Email {
        host: "localhost".into(),
        port,
        from: "idflow@contoso.com".into(),
        to: vec!["ops@contoso.com".into(), "oncall@contoso.com".into()],
        starttls,
        user: None,
        password: None,
        ca_file: ca,
    }
}

#[test]
fn notifications_reach_a_webhook_and_an_smtp_sink() {
    let hook = sinks::Webhook::start();
    let smtp = sinks::Smtp::start();
    let mut n = Notifier::new(&Notify {
        webhooks: vec![Webhook {
            url: hook.url.clone(),
        }],
        email: Some(email(smtp.port, false, None)),
    });
    let event = an_event();
    n.queue(event.clone());
    assert_eq!(n.deliver(), 2);
    assert_eq!(n.pending(), 0);

    let body = hook.next(10).expect("the webhook POST");
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["event"], "raised");
    assert_eq!(json["alert"]["key"], "import_failed:HR");
    assert_eq!(json["alert"]["severity"], "error");
    assert_eq!(json["alert"]["remediation"][1], "Wait for the next cycle.");
    assert_eq!(json["alert"]["docs"], "docs/ALERTS.md#import_failed");

    let mail = smtp.next(10).expect("the mail");
    assert_eq!(mail.from, "<idflow@contoso.com>");
    assert_eq!(mail.to, ["<ops@contoso.com>", "<oncall@contoso.com>"]);
    assert!(
        mail.data
            .contains("Subject: [idflow] error raised: Import from HR failed"),
        "{}",
        mail.data
    );
    assert!(mail.data.contains("1. Fix the source."), "{}", mail.data);
    assert!(!mail.tls);
}

#[test]
fn a_failed_notification_is_kept_and_sent_later() {
    // A port nobody listens on (taken, then freed), where the receiver starts later.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let mut n = Notifier::new(&Notify {
        webhooks: vec![Webhook {
            url: format!("http://{addr}/hook"),
        }],
        email: None,
    });
    n.queue(an_event());
    assert_eq!(n.deliver(), 0);
    assert_eq!(n.pending(), 1);
    let hook = sinks::Webhook::on(std::net::TcpListener::bind(addr).unwrap());
    assert_eq!(n.deliver(), 1);
    assert_eq!(n.pending(), 0);
    assert!(hook.next(10).unwrap().contains("import_failed:HR"));
}

#[test]
fn starttls_required_fails_against_a_sink_without_it() {
    let smtp = sinks::Smtp::start();
    let mut n = Notifier::new(&Notify {
        webhooks: Vec::new(),
        email: Some(email(smtp.port, true, None)),
    });
    n.queue(an_event());
    assert_eq!(n.deliver(), 0);
    assert_eq!(n.pending(), 1, "kept, to try again");
    assert!(smtp.next(1).is_none(), "nothing sent in clear");
}

#[test]
fn starttls_with_the_servers_authority() {
    let certs = Dir::new("alerts-smtp-tls");
    common::make_certificates(&certs.0);
    let smtp = sinks::Smtp::start_tls(&certs.0);
    // Without the test authority the server is not trusted.
    let mut n = Notifier::new(&Notify {
        webhooks: Vec::new(),
        email: Some(email(smtp.port, true, None)),
    });
    n.queue(an_event());
    assert_eq!(n.deliver(), 0);
    // With it: sent over TLS, signed in with the password of password_file.
    certs.write("smtp.password", "s3cret\n");
    let mut tls = email(smtp.port, true, Some(certs.path("ca.crt")));
    tls.user = Some("idflow".into());
    tls.password = Some(idflow::config::Secret::File(certs.path("smtp.password")));
    let mut n = Notifier::new(&Notify {
        webhooks: Vec::new(),
        email: Some(tls),
    });
    n.queue(an_event());
    assert_eq!(n.deliver(), 1);
    let mail = smtp.next(10).expect("the mail");
    assert!(mail.tls);
    assert_eq!(
        mail.auth,
        Some(("idflow".to_string(), "s3cret".to_string()))
    );
    assert!(mail.data.contains("Import from HR failed"), "{}", mail.data);
}
