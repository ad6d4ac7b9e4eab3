//! The connector contract through the runner, with a connector of the kind the server
//! connectors will be: an in-memory directory with change tracking. Its delta reads resume
//! from a watermark and report changes as partial entries and deletes by anchor only; its
//! exports assign anchors to new objects and answer one result per change, which the runner
//! trusts (no confirming re-import). `Runner::set_connector` puts it in place of the connector
//! idflow.toml would open.

use idflow::connector::{
    Connector, ConnectorError, ExportErrorCategory, ExportResult, ImportEnd, ImportKind,
    ImportMode, ImportSink,
};
use idflow::engine::export::{AttrOp, ExportDelta};
use idflow::engine::import::{ImportChange, ImportObject};
use idflow::engine::model::ExportOp;
use idflow::runner::{CycleOptions, Runner, StepReport, StepStatus};
use idflow::value::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

mod common;
use common::{Dir, counts, step};

const BUNDLE: &str = r#"bundle "contract"

metaverse {
  object person {
    employeeId string
    title      string
  }
}

connector "src" scim {
  object user anchor uid {
    uid        string
    employeeId string
    title      string
  }
}

connector "dst" scim {
  object account anchor guid {
    guid       string
    employeeId string
    title      string
  }
}

inbound rule "In from src" {
  connector "src"  source user  target person  link provision  precedence 1
  join { employeeId = employeeId }
  flow employeeId <- [employeeId]
  flow title      <- [title]
}

inbound rule "Join dst" {
  connector "dst"  source account  target person  link join  precedence 2
  join { employeeId = employeeId }
}

outbound rule "Out to dst" {
  connector "dst"  source person  target account  link provision  precedence 10
  join { employeeId = employeeId }
  flow employeeId <- [employeeId]
  flow title      <- [title]
  flow dn         <- "CN=" & [employeeId] & ",OU=Dst"
}
"#;

/// One change of the directory's log.
#[derive(Debug, Clone)]
enum Logged {
    /// A new object (reported whole).
    Added(String),
    /// Attributes of an object changed (reported as a partial entry).
    Changed(String, Vec<String>),
    /// An object deleted (reported by anchor only).
    Deleted(String),
}

/// An in-memory directory: objects by anchor, a change log (the watermark is a position in
/// it), and what the connector was asked to do.
#[derive(Debug, Default)]
struct Directory {
    object_type: String,
    anchor: String,
    objects: BTreeMap<String, (String, BTreeMap<String, Value>)>,
    log: Vec<Logged>,
    next: usize,
    /// Each import: "full", or "delta <watermark>".
    imports: Vec<String>,
    exports: usize,
    /// The largest page handed over.
    page: usize,
    /// Adds of these DNs are answered "retry".
    throttled: BTreeSet<String>,
    /// Adds of these DNs are refused, with this category.
    refused: BTreeMap<String, ExportErrorCategory>,
    /// A read fails (the server goes away) after handing over this many pages.
    fail_after_pages: Option<usize>,
}

impl Directory {
    fn new(object_type: &str, anchor: &str) -> Arc<Mutex<Directory>> {
        Arc::new(Mutex::new(Directory {
            object_type: object_type.into(),
            anchor: anchor.into(),
            ..Directory::default()
        }))
    }

    fn object(&self, anchor: &str, only: Option<&[String]>) -> ImportObject {
        let (dn, attrs) = &self.objects[anchor];
        let mut out = vec![(self.anchor.clone(), Value::from(anchor))];
        for (n, v) in attrs {
            if only.is_none_or(|names| names.contains(n)) {
                out.push((n.clone(), v.clone()));
            }
        }
        ImportObject {
            dn: dn.clone(),
            object_type: self.object_type.clone(),
            attrs: out,
        }
    }

    fn add(&mut self, anchor: &str, dn: &str, attrs: &[(&str, &str)]) {
        let attrs = attrs
            .iter()
            .map(|(n, v)| (n.to_string(), Value::from(*v)))
            .collect();
        self.objects.insert(anchor.into(), (dn.into(), attrs));
        self.log.push(Logged::Added(anchor.into()));
    }

    fn set(&mut self, anchor: &str, attr: &str, value: &str) {
        let o = self.objects.get_mut(anchor).expect("an object");
        o.1.insert(attr.into(), Value::from(value));
        self.log
            .push(Logged::Changed(anchor.into(), vec![attr.to_string()]));
    }

    fn delete(&mut self, anchor: &str) {
        self.objects.remove(anchor);
        self.log.push(Logged::Deleted(anchor.into()));
    }

    fn by_dn(&self, dn: &str) -> Option<String> {
        self.objects
            .iter()
            .find(|(_, (d, _))| d.eq_ignore_ascii_case(dn))
            .map(|(a, _)| a.clone())
    }

    /// Applies one export delta.
    fn apply(&mut self, d: &ExportDelta) -> ExportResult {
        let failed = |category, detail: &str| ExportResult::Failed {
            category,
            detail: detail.into(),
        };
        let anchor = d
            .anchor
            .as_ref()
            .and_then(Value::as_str)
            .map(str::to_string);
        match d.kind {
            ExportOp::Add => {
                if self.throttled.contains(&*d.dn) {
                    return ExportResult::Retry {
                        after: Some(Duration::from_secs(30)),
                        reason: "throttled".into(),
                    };
                }
                if self.by_dn(&d.dn).is_some() {
                    return failed(ExportErrorCategory::AlreadyExists, "the DN exists");
                }
                if let Some(&category) = self.refused.get(&*d.dn) {
                    return failed(category, "employeeNumber is held by another account");
                }
                self.next += 1;
                let id = format!("g{}", self.next);
                let mut attrs = BTreeMap::new();
                for c in &d.changes {
                    if let AttrOp::Replace(v) = &c.op {
                        attrs.insert(c.attr.to_string(), v.clone());
                    }
                }
                self.objects.insert(id.clone(), (d.dn.to_string(), attrs));
                self.log.push(Logged::Added(id.clone()));
                ExportResult::Applied {
                    anchor: Some(Value::from(id)),
                }
            }
            ExportOp::Update => {
                let Some(a) = anchor.filter(|a| self.objects.contains_key(a)) else {
                    return failed(ExportErrorCategory::NoSuchObject, "no such object");
                };
                let o = self.objects.get_mut(&a).expect("an object");
                if let Some(n) = &d.new_dn {
                    o.0 = n.to_string();
                }
                let mut names = Vec::new();
                for c in &d.changes {
                    match &c.op {
                        AttrOp::Replace(v) => {
                            o.1.insert(c.attr.to_string(), v.clone());
                        }
                        AttrOp::Clear => {
                            o.1.remove(&*c.attr);
                        }
                        other => panic!("not used here: {other:?}"),
                    }
                    names.push(c.attr.to_string());
                }
                self.log.push(Logged::Changed(a, names));
                ExportResult::Applied { anchor: None }
            }
            ExportOp::Delete => match anchor.filter(|a| self.objects.contains_key(a)) {
                Some(a) => {
                    self.delete(&a);
                    ExportResult::Applied { anchor: None }
                }
                None => failed(ExportErrorCategory::NoSuchObject, "no such object"),
            },
        }
    }
}

/// The connector: a handle on a directory that outlives the run.
struct Mem(Arc<Mutex<Directory>>);

impl Connector for Mem {
    fn import(
        &mut self,
        mode: ImportMode<'_>,
        sink: &mut dyn ImportSink,
    ) -> Result<ImportEnd, ConnectorError> {
        let mut d = self.0.lock().unwrap();
        let since = match mode {
            ImportMode::Full => None,
            ImportMode::Delta { watermark } => watermark.map(|w| w.parse::<usize>().unwrap()),
        };
        d.imports.push(match since {
            None => "full".into(),
            Some(w) => format!("delta {w}"),
        });
        let changes: Vec<ImportChange> = match since {
            None => d
                .objects
                .keys()
                .map(|a| ImportChange::Upsert(d.object(a, None)))
                .collect(),
            Some(w) => d.log[w..]
                .iter()
                .filter_map(|l| match l {
                    Logged::Added(a) => d
                        .objects
                        .contains_key(a)
                        .then(|| ImportChange::Upsert(d.object(a, None))),
                    Logged::Changed(a, names) => d
                        .objects
                        .contains_key(a)
                        .then(|| ImportChange::Partial(d.object(a, Some(names.as_slice())))),
                    Logged::Deleted(a) => {
                        Some(ImportChange::delete_anchor(Value::from(a.as_str())))
                    }
                })
                .collect(),
        };
        // Pages of two, as a server hands out pages of results.
        for (i, page) in changes.chunks(2).enumerate() {
            if d.fail_after_pages == Some(i) {
                return Err(ConnectorError {
                    source: "mem://src".into(),
                    line: None,
                    message: "the connection was reset".into(),
                });
            }
            d.page = d.page.max(page.len());
            sink.page(page.to_vec())?;
        }
        Ok(ImportEnd {
            kind: if since.is_some() {
                ImportKind::Delta
            } else {
                ImportKind::Full
            },
            watermark: Some(d.log.len().to_string()),
        })
    }

    fn export(&mut self, deltas: &[ExportDelta]) -> Result<Vec<ExportResult>, ConnectorError> {
        let mut d = self.0.lock().unwrap();
        d.exports += 1;
        Ok(deltas.iter().map(|x| d.apply(x)).collect())
    }

    fn confirms_by_reimport(&self) -> bool {
        false
    }
}

struct Deployment {
    dir: Dir,
    src: Arc<Mutex<Directory>>,
    dst: Arc<Mutex<Directory>>,
}

impl Deployment {
    fn new(name: &str) -> Deployment {
        let dir = Dir::new(name);
        std::fs::create_dir_all(dir.path("bundle")).unwrap();
        dir.write("bundle/contract.idf", BUNDLE);
        dir.write(
            "idflow.toml",
            // SCIM settings (never used: the in-memory connectors take their place) that map
            // every attribute, so no flow is left out.
            r#"bundle = "bundle"
state = "idflow.db"

[connectors.src]
kind = "scim"
url = "https://src.example.com/v2"
[connectors.src.mapping.user]
endpoint = "Users"
attributes = { employeeId = "employeeNumber", title = "title" }

[connectors.dst]
kind = "scim"
url = "https://dst.example.com/v2"
[connectors.dst.mapping.account]
endpoint = "Accounts"
schemas = ["urn:example:params:scim:schemas:core:2.0:Account"]
attributes = { employeeId = "employeeNumber", title = "title" }
"#,
        );
        let src = Directory::new("user", "uid");
        {
            let mut s = src.lock().unwrap();
            for i in 1..=5 {
                let id = i.to_string();
                s.add(
                    &id,
                    &format!("CN={i},OU=Src"),
                    &[("employeeId", &id), ("title", "Engineer")],
                );
            }
        }
        Deployment {
            dir,
            src,
            dst: Directory::new("account", "guid"),
        }
    }

    /// One `idflow run` (a sync cycle) with the in-memory connectors.
    fn cycle(&self) -> Vec<StepReport> {
        let config = PathBuf::from(self.dir.config());
        let mut runner = Runner::open(&config, idflow::eval::EngineKind::Interp).unwrap();
        runner.set_connector("src", Box::new(Mem(self.src.clone())));
        runner.set_connector("dst", Box::new(Mem(self.dst.clone())));
        let reports = runner.cycle(CycleOptions::default()).unwrap();
        let dst = runner.engine.plan.connector_index("dst").unwrap();
        // What stays staged is what the directory did not apply.
        let staged: Vec<String> = runner
            .export_changes(dst)
            .iter()
            .map(|d| d.dn.to_string())
            .collect();
        let unapplied: BTreeSet<String> = {
            let t = self.dst.lock().unwrap();
            t.throttled
                .iter()
                .chain(t.refused.keys())
                .cloned()
                .collect()
        };
        assert_eq!(
            staged.into_iter().collect::<BTreeSet<_>>(),
            unapplied,
            "{reports:#?}"
        );
        reports
    }

    fn imports(&self, d: &Arc<Mutex<Directory>>) -> Vec<String> {
        d.lock().unwrap().imports.clone()
    }
}

fn assert_no_changes(reports: &[StepReport]) {
    for r in reports {
        assert_eq!(counts(r), (0, 0, 0, 0), "{r:#?}");
        assert_eq!(r.status, StepStatus::Success, "{r:#?}");
    }
}

#[test]
fn trusted_exports_are_confirmed_without_a_reimport_and_deltas_resume_from_the_watermark() {
    let d = Deployment::new("contract");
    d.dst.lock().unwrap().throttled.insert("CN=5,OU=Dst".into());

    // First run: nothing is stored, so the delta requests carry no watermark and the reads
    // are full; five accounts are provisioned, one of them throttled.
    let reports = d.cycle();
    assert_eq!(counts(step(&reports, "import", "src")), (5, 0, 0, 0));
    let export = step(&reports, "export", "dst");
    assert_eq!(counts(export), (5, 0, 0, 1), "{export:#?}");
    assert_eq!(export.status, StepStatus::CompletedExportErrors);
    assert!(
        export
            .notes
            .iter()
            .any(|n| n.starts_with("CN=5,OU=Dst: not applied, to retry after 30 s: throttled")),
        "{export:#?}"
    );
    // The applied adds were recorded from the results: no confirming read of the target.
    assert_eq!(d.imports(&d.dst), vec!["full"]);
    assert_eq!(d.imports(&d.src), vec!["full"]);
    assert_eq!(d.dst.lock().unwrap().page, 0);
    assert_eq!(d.src.lock().unwrap().page, 2);

    // Second run: the throttled add goes through; the target's delta shows the exports of the
    // first run, which change nothing (they were confirmed as applied).
    d.dst.lock().unwrap().throttled.clear();
    let reports = d.cycle();
    assert_eq!(counts(step(&reports, "import", "src")), (0, 0, 0, 0));
    assert_eq!(counts(step(&reports, "import", "dst")), (0, 0, 0, 0));
    assert_eq!(counts(step(&reports, "export", "dst")), (1, 0, 0, 0));
    assert_eq!(d.imports(&d.src), vec!["full", "delta 5"]);
    assert_eq!(d.imports(&d.dst), vec!["full", "delta 0"]);

    // Nothing changed anywhere: a third run changes nothing.
    assert_no_changes(&d.cycle());

    // A partial change and a delete by anchor in the source flow through to the target.
    {
        let mut s = d.src.lock().unwrap();
        s.set("2", "title", "Lead");
        s.delete("3");
    }
    let reports = d.cycle();
    assert_eq!(counts(step(&reports, "import", "src")), (0, 1, 1, 0));
    assert_eq!(counts(step(&reports, "export", "dst")), (0, 1, 1, 0));
    {
        let t = d.dst.lock().unwrap();
        let two = t.by_dn("CN=2,OU=Dst").expect("account 2");
        assert_eq!(t.objects[&two].1["title"], Value::from("Lead"));
        assert!(t.by_dn("CN=3,OU=Dst").is_none());
        assert_eq!(t.objects.len(), 4);
    }
    // ... and, once confirmed, they are not sent again.
    assert_no_changes(&d.cycle());
    assert_eq!(d.dst.lock().unwrap().imports.len(), 5);
    assert!(
        d.imports(&d.dst)
            .iter()
            .skip(1)
            .all(|i| i.starts_with("delta")),
        "{:?}",
        d.imports(&d.dst)
    );
}

/// A change the target refuses is an error of the export step kept in the run history
/// (`idflow state errors`, the service's error report and metrics) under its sync-error
/// category, for as long as the latest export of the connector refuses it.
#[test]
fn refused_exports_are_listed_with_the_sync_errors_until_they_go_through() {
    use idflow::store::ErrorRecord;
    let d = Deployment::new("contract-refused");
    {
        let mut t = d.dst.lock().unwrap();
        t.refused.insert(
            "CN=4,OU=Dst".into(),
            ExportErrorCategory::DuplicateAttribute,
        );
        t.refused.insert(
            "CN=5,OU=Dst".into(),
            ExportErrorCategory::ConstraintViolation,
        );
    }
    let latest = || {
        let config = PathBuf::from(d.dir.config());
        let mut r = Runner::open_read_only(&config, idflow::eval::EngineKind::Interp).unwrap();
        let mut e: Vec<(String, String, String, String)> = r
            .latest_errors()
            .unwrap()
            .into_iter()
            .map(|e: ErrorRecord| (e.category, e.connector, e.dn, e.code))
            .collect();
        e.sort();
        e
    };
    let reports = d.cycle();
    let export = step(&reports, "export", "dst");
    assert_eq!(
        export.status,
        StepStatus::CompletedExportErrors,
        "{export:#?}"
    );
    assert_eq!(export.errors, 2, "{export:#?}");
    let row = |cat: &str, dn: &str, code: &str| {
        (
            cat.to_string(),
            "dst".to_string(),
            dn.to_string(),
            code.to_string(),
        )
    };
    assert_eq!(
        latest(),
        vec![
            row(
                "Data Validation Failure",
                "CN=5,OU=Dst",
                "constraint-violation"
            ),
            row("Duplicate Attribute", "CN=4,OU=Dst", "duplicate-attribute"),
        ]
    );
    // The state command shows them with their message.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_idflow"))
        .args(["state", "--config", &d.dir.config(), "errors"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("Duplicate Attribute: 1\n    dst \"CN=4,OU=Dst\": export duplicate-attribute: employeeNumber is held by another account"),
        "{text}"
    );

    // Still refused: sent again, listed again (once each).
    d.cycle();
    assert_eq!(latest().len(), 2);

    // One goes through: only the other is listed; then none.
    d.dst.lock().unwrap().refused.remove("CN=4,OU=Dst");
    d.cycle();
    assert_eq!(
        latest(),
        vec![row(
            "Data Validation Failure",
            "CN=5,OU=Dst",
            "constraint-violation"
        )]
    );
    d.dst.lock().unwrap().refused.clear();
    let reports = d.cycle();
    assert_eq!(counts(step(&reports, "export", "dst")), (1, 0, 0, 0));
    assert_eq!(latest(), vec![]);
    assert_no_changes(&d.cycle());
}

#[test]
fn a_changed_bundle_makes_the_next_delta_read_start_over() {
    let d = Deployment::new("contract-basis");
    d.cycle();
    assert_no_changes(&d.cycle());
    assert_eq!(d.imports(&d.src), vec!["full", "delta 5"]);
    // A watermark belongs to the bundle and the settings it was read with.
    let bundle = d.dir.read("bundle/contract.idf");
    d.dir
        .write("bundle/contract.idf", &format!("{bundle}\n# changed\n"));
    let reports = d.cycle();
    assert_eq!(counts(step(&reports, "import", "src")), (0, 0, 0, 0));
    assert_eq!(d.imports(&d.src), vec!["full", "delta 5", "full"]);
}

#[test]
fn a_first_read_that_fails_after_some_pages_stages_and_saves_nothing() {
    let d = Deployment::new("contract-first-read-fails");
    let config = PathBuf::from(d.dir.config());
    let open = || {
        let mut runner = Runner::open(&config, idflow::eval::EngineKind::Interp).unwrap();
        runner.set_connector("src", Box::new(Mem(d.src.clone())));
        runner
    };
    // The connector space is empty, so the read's pages are staged and written as they
    // arrive; the read fails after two of its three pages.
    d.src.lock().unwrap().fail_after_pages = Some(2);
    let mut runner = open();
    let r = runner.import("src", true, 0).unwrap();
    assert_eq!(r.status, StepStatus::StoppedConnectivity, "{r:#?}");
    assert!(
        r.notes
            .iter()
            .any(|n| n.contains("the connection was reset")),
        "{r:#?}"
    );
    assert_eq!(counts(&r), (0, 0, 0, 0), "{r:#?}");
    // Nothing of it is in the state in memory, nor in the database.
    assert_eq!(runner.engine.state.cs().len(), 0);
    drop(runner);
    let mut runner = open();
    assert_eq!(runner.engine.state.cs().len(), 0);
    // The runner goes on from the state as it was: the next read stages everything once.
    d.src.lock().unwrap().fail_after_pages = None;
    let r = runner.import("src", true, 0).unwrap();
    assert_eq!(r.status, StepStatus::Success, "{r:#?}");
    assert_eq!(counts(&r), (5, 0, 0, 0), "{r:#?}");
    drop(runner);
    let mut runner = open();
    assert_eq!(runner.engine.state.cs().len(), 5);
    let r = runner.import("src", true, 0).unwrap();
    assert_eq!(counts(&r), (0, 0, 0, 0), "{r:#?}");
}
