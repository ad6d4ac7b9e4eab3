//! Parallel sync of a generated directory with the shipped default rules: a serial engine (one
//! thread) and a parallel one (three threads) run the same steps — a first full sync that
//! provisions everything, the confirmation of every export, a full sync with nothing to do,
//! then churn (changed attributes, shared unique addresses, renames, deletes) with delta and
//! full syncs — and after every sync their canonical dumps, their reports and their change
//! logs must be equal. The directory is large enough for outbound sync to be computed in
//! several groups. The random-input property test is in `tests/delta_sync.rs`
//! (`parallel_sync_equals_serial_sync`).

use idflow::connector::{self, ImportMode, ldif};
use idflow::engine::Engine;
use idflow::engine::import::{ImportChange, ImportObject};
use idflow::engine::model::ExportOp;
use idflow::engine::sync::{Mode, SyncReport};
use idflow::sema::Bundle;
use idflow::value::Value;
use std::path::Path;

const AD: &str = "contoso.com";

fn bundle() -> Bundle {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("rules/entra-default");
    let files = idflow::source::collect_idf_files(&[dir]).unwrap();
    let map = idflow::source::load(&files).unwrap();
    let checked = idflow::frontend::check(&map);
    assert!(!checked.has_errors(), "the default bundle has errors");
    checked.bundle
}

fn engine(bundle: &Bundle, threads: usize) -> Engine {
    let mut e = Engine::new(bundle, idflow::testrun::test_now());
    for c in 0..e.plan.connectors.len() {
        let name = e.plan.connectors[c].name.clone();
        e.set_params(c, idflow::testrun::default_params(&name));
    }
    e.threads = threads;
    e
}

/// The generated AD export, read through the LDIF source.
fn generated(bundle: &Bundle, users: usize, groups: usize) -> Vec<ImportChange> {
    let types = ldif::attr_types(bundle.schema.connectors[AD].objects.values());
    let tmp = std::env::temp_dir().join(format!("idflow-parallel-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).unwrap();
    let file = tmp.join("ad.ldif");
    std::fs::write(&file, idflow::r#gen::generate(users, groups, 11)).unwrap();
    let mut source = ldif::LdifSource::new(&file).with_types(types);
    let read = connector::collect(&mut source, ImportMode::Full).unwrap();
    let _ = std::fs::remove_dir_all(&tmp);
    assert!(read.rejected.is_empty(), "{:#?}", read.rejected);
    read.changes
}

/// What every connector shows once its staged exports are done: adds with their exported
/// values and a fresh anchor, updates with their exported values and DN, deletes.
fn confirmations(e: &Engine, anchors: &mut u64) -> Vec<(usize, Vec<ImportChange>)> {
    let mut out = Vec::new();
    for c in 0..e.plan.connectors.len() {
        let cp = &e.plan.connectors[c];
        let mut changes = Vec::new();
        for (_, o, op) in e.state.pending_exports(c) {
            let t = &cp.types[o.object_type];
            let dn = o.new_dn.as_deref().unwrap_or(&o.dn).to_string();
            let anchor_slot = t.anchor.expect("anchor");
            let change = match op {
                ExportOp::Delete => ImportChange::delete_dn(o.dn.to_string()),
                ExportOp::Add | ExportOp::Update => {
                    let mut attrs: Vec<(String, Value)> = o
                        .current
                        .iter()
                        .enumerate()
                        .filter(|(s, v)| Some(*s) != t.dn && *s != anchor_slot && !v.is_null())
                        .map(|(s, v)| (t.names[s].to_string(), v.clone()))
                        .collect();
                    let anchor = match &o.anchor {
                        Some(a) => a.clone(),
                        None => {
                            *anchors += 1;
                            Value::from(format!("anchor-{anchors}"))
                        }
                    };
                    attrs.push((t.names[anchor_slot].to_string(), anchor));
                    ImportChange::Upsert(ImportObject {
                        dn,
                        object_type: t.name.to_string(),
                        attrs,
                    })
                }
            };
            changes.push(change);
        }
        if !changes.is_empty() {
            out.push((c, changes));
        }
    }
    out
}

fn compare(what: &str, s: &Engine, rs: &SyncReport, p: &Engine, rp: &SyncReport) {
    let (ds, dp) = (
        idflow::engine::dump::state(&s.plan, &s.state),
        idflow::engine::dump::state(&p.plan, &p.state),
    );
    if ds != dp {
        let first = ds
            .lines()
            .zip(dp.lines())
            .find(|(a, b)| a != b)
            .map(|(a, b)| format!("- {a}\n+ {b}"))
            .unwrap_or_else(|| "(one dump is longer)".into());
        panic!("{what}: the states differ (- serial, + parallel); first difference:\n{first}");
    }
    assert_eq!(rs, rp, "{what}: the reports differ");
    assert_eq!(
        s.state.changes(),
        p.state.changes(),
        "{what}: the change logs differ"
    );
}

/// Imports the same changes into both engines.
fn import_both(s: &mut Engine, p: &mut Engine, connector: usize, changes: Vec<ImportChange>) {
    let rs = s.import(connector, changes.clone(), false);
    let rp = p.import(connector, changes, false);
    assert!(rs.rejected.is_empty(), "{:#?}", rs.rejected);
    assert_eq!(rs.adds, rp.adds);
}

fn sync_both(what: &str, s: &mut Engine, p: &mut Engine, mode: Mode) -> SyncReport {
    let rs = s.sync(mode);
    let rp = p.sync(mode);
    compare(what, s, &rs, p, &rp);
    s.state.clear_changes();
    p.state.clear_changes();
    rs
}

fn confirm_both(s: &mut Engine, p: &mut Engine, anchors: &mut u64) {
    let mut other = *anchors;
    let from_p = confirmations(p, &mut other);
    let from_s = confirmations(s, anchors);
    assert_eq!(
        format!("{from_s:?}"),
        format!("{from_p:?}"),
        "the staged exports differ"
    );
    for (c, changes) in from_s {
        import_both(s, p, c, changes);
    }
}

fn set(obj: &mut ImportObject, name: &str, value: Value) {
    obj.attrs.retain(|(n, _)| n != name);
    if !value.is_null() {
        obj.attrs.push((name.into(), value));
    }
}

#[test]
fn parallel_sync_of_a_generated_directory_equals_serial_sync() {
    let bundle = bundle();
    let mut s = engine(&bundle, 1);
    let mut p = engine(&bundle, 3);
    let ad = s.plan.connector_index(AD).unwrap();
    let changes = generated(&bundle, 900, 40);
    let rs = s.import(ad, changes.clone(), true);
    let rp = p.import(ad, changes.clone(), true);
    assert_eq!(rs.adds, rp.adds);
    let mut anchors = 0;

    let first = sync_both("first full sync", &mut s, &mut p, Mode::Full);
    assert!(first.provisions > 900, "{first:#?}");
    confirm_both(&mut s, &mut p, &mut anchors);
    sync_both("confirming delta sync", &mut s, &mut p, Mode::Delta);
    let settled = sync_both("full sync with nothing to do", &mut s, &mut p, Mode::Full);
    assert!(settled.processed > 1800, "{settled:#?}");

    // Churn: departments and display names change, some users share an address (the target's
    // proxyAddresses are unique), some are renamed, some deleted.
    let mut users: Vec<ImportObject> = changes
        .into_iter()
        .filter_map(|c| match c {
            ImportChange::Upsert(o) if o.object_type == "user" => Some(o),
            _ => None,
        })
        .collect();
    for round in 0..3 {
        let mut batch = Vec::new();
        for (i, u) in users.iter_mut().enumerate() {
            match (i + round * 7) % 23 {
                0 => set(u, "department", Value::from(format!("Dept {round}"))),
                1 => set(u, "displayName", Value::from(format!("User {i} r{round}"))),
                2 => set(
                    u,
                    "proxyAddresses",
                    Value::many(vec![
                        Value::from(format!("SMTP:u{i}.{round}@contoso.com")),
                        Value::from(format!("smtp:shared{}@contoso.com", i % 3)),
                    ]),
                ),
                3 if round > 0 => {
                    u.dn = u.dn.replacen("CN=", &format!("CN=R{round} "), 1);
                }
                _ => continue,
            }
            batch.push(ImportChange::Upsert(u.clone()));
        }
        for u in users.iter().skip(round * 5 + 2).step_by(97) {
            batch.push(ImportChange::delete_dn(u.dn.clone()));
        }
        import_both(&mut s, &mut p, ad, batch);
        let churn = sync_both(
            &format!("delta sync, churn {round}"),
            &mut s,
            &mut p,
            Mode::Delta,
        );
        assert!(churn.mv_updates > 0, "{churn:#?}");
        confirm_both(&mut s, &mut p, &mut anchors);
        sync_both(
            &format!("full sync, churn {round}"),
            &mut s,
            &mut p,
            Mode::Full,
        );
    }
}

/// A provisioning is computed ahead only where no join condition finds an object to join:
/// target objects that exist before the first sync, under other DNs, that the provision rule's
/// join condition (`sourceAnchor`) finds are joined by the parallel sync as by the serial one.
#[test]
fn a_provisioning_computed_ahead_yields_to_a_join() {
    const CLOUD: &str = "contoso.onmicrosoft.com";
    let bundle = bundle();
    let changes = generated(&bundle, 600, 20);
    // The anchors a first sync gives the users, from a serial run.
    let mut probe = engine(&bundle, 1);
    let ad = probe.plan.connector_index(AD).unwrap();
    let cloud = probe.plan.connector_index(CLOUD).unwrap();
    probe.import(ad, changes.clone(), true);
    probe.sync(Mode::Full);
    let cp = &probe.plan.connectors[cloud];
    let existing: Vec<ImportChange> = probe
        .state
        .pending_exports(cloud)
        .filter(|(_, o, op)| *op == ExportOp::Add && &*cp.types[o.object_type].name == "user")
        .step_by(5)
        .enumerate()
        .map(|(i, (_, o, _))| {
            let t = &cp.types[o.object_type];
            let anchor = t.slot("sourceAnchor").expect("sourceAnchor");
            let id = t.names[t.anchor.expect("anchor")].to_string();
            ImportChange::Upsert(ImportObject {
                dn: format!("CN=existing{i}"),
                object_type: "user".into(),
                attrs: vec![
                    ("sourceAnchor".into(), o.current[anchor].clone()),
                    (id, Value::from(format!("existing-{i}"))),
                ],
            })
        })
        .collect();
    assert!(existing.len() > 100, "{}", existing.len());

    let mut s = engine(&bundle, 1);
    let mut p = engine(&bundle, 3);
    import_both(&mut s, &mut p, ad, changes);
    import_both(&mut s, &mut p, cloud, existing.clone());
    let first = sync_both("first full sync", &mut s, &mut p, Mode::Full);
    assert!(first.joins >= existing.len(), "{first:#?}");
}
