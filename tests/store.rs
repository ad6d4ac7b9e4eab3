//! The SQLite store on its own: a state with every field of every object set is saved and
//! loaded again, and compared field by field under the same ids (ids are stable: a tombstone
//! is not stored and loads back as a tombstone), then through the canonical dump. A save after
//! a change of one object writes that object's rows only. Also the run history and the sync
//! errors of the last sync.

mod common;

use idflow::engine::Engine;
use idflow::engine::compile::Plan;
use idflow::engine::model::{
    CsId, CsObject, ExportOp, Key, Link, MvObject, PendingImport, ReadStamp, State, Values, dn_key,
};
use idflow::store::sqlite::SqliteStore;
use idflow::store::{ErrorRecord, RejectRecord, RunRecord, Store};
use idflow::value::Value;
use std::collections::{BTreeMap, BTreeSet};

const BUNDLE: &str = r#"
metaverse {
  object person {
    accountName    string
    manager        reference(person)
    proxyAddresses string multi
    age            integer
    enabled        boolean
    photo          binary
    hired          datetime
  }
  object group {
    displayName string
    member      reference multi
  }
}

connector "contoso.com" ad {
  object user anchor objectGUID {
    objectGUID     binary
    sAMAccountName string
    manager        reference(user)
    proxyAddresses string multi
    age            integer
    enabled        boolean
    hired          datetime
  }
  object group anchor objectGUID {
    objectGUID binary
    cn         string
    member     reference multi
  }
}

connector "cloud" entra {
  object user anchor cloudAnchor {
    cloudAnchor    string
    accountName    string
    manager        reference(user)
    proxyAddresses string multi unique
  }
}

inbound rule "In from AD - User" {
  connector "contoso.com"
  source user
  target person
  link provision
  precedence 1
  flow accountName <- [sAMAccountName]
}

inbound rule "In from AD - Group" {
  connector "contoso.com"
  source group
  target group
  link provision
  precedence 2
  flow displayName <- [cn]
}

outbound rule "Out to cloud - User" {
  connector "cloud"
  source person
  target user
  link provision
  precedence 10
  flow dn             <- "CN=" & [accountName] & ",OU=Users,DC=cloud"
  flow accountName    <- [accountName]
  flow manager        <- [manager]
  flow proxyAddresses <- [proxyAddresses]
}

outbound rule "Out to cloud - User Join" {
  connector "cloud"
  source person
  target user
  link join
  precedence 11
  join {
    accountName = accountName
  }
}
"#;

fn engine() -> Engine {
    Engine::new(
        &common::bundle("store.idf", BUNDLE),
        idflow::testrun::test_now(),
    )
}

fn rule(plan: &Plan, name: &str) -> usize {
    plan.rules
        .iter()
        .position(|r| r.name() == name)
        .unwrap_or_else(|| panic!("no rule {name}"))
}

/// Values by slot from (name, value) pairs.
fn values(plan: &Plan, connector: usize, ty: &str, pairs: &[(&str, Value)]) -> Values {
    let cp = &plan.connectors[connector];
    let t = &cp.types[cp.type_index(ty).unwrap()];
    let mut out = vec![Value::Null; t.names.len()];
    for (n, v) in pairs {
        out[t.slot(n).unwrap_or_else(|| panic!("no attribute {n}"))] = v.clone();
    }
    out.into()
}

fn mv_values(plan: &Plan, ty: &str, pairs: &[(&str, Value)]) -> Values {
    let t = &plan.metaverse[plan.mv_type_index(ty).unwrap()];
    let mut out = vec![Value::Null; t.names.len()];
    for (n, v) in pairs {
        out[t.slot(n).unwrap_or_else(|| panic!("no attribute {n}"))] = v.clone();
    }
    out.into()
}

fn guid(n: u8) -> Value {
    Value::bin(vec![n; 16])
}

fn many(items: &[&str]) -> Value {
    Value::many(items.iter().map(|s| Value::from(*s)).collect())
}

fn reference(dn: &str) -> Value {
    Value::Ref(dn.into())
}

fn obj(connector: usize, ty: usize, dn: &str) -> CsObject {
    CsObject {
        connector,
        object_type: ty,
        dn: dn.into(),
        anchor: None,
        imported: Values::default(),
        current: Values::default(),
        pending_import: None,
        export: None,
        new_dn: None,
        link: None,
        provisioned_by: None,
        placeholder: false,
        gone: false,
        read_as: None,
    }
}

const ANN: &str = "CN=Ann,OU=Users,DC=contoso,DC=com";
const BOB: &str = "CN=Bob,OU=Users,DC=contoso,DC=com";
const OLD: &str = "CN=Old,OU=Users,DC=contoso,DC=com";
const CAROL: &str = "CN=Carol,OU=Users,DC=contoso,DC=com";
const STAFF: &str = "CN=Staff,OU=Groups,DC=contoso,DC=com";

/// A state in which every field of every kind of object holds a value, and every set and map
/// of the state has entries. Metaverse ids are not contiguous and `next_mv` is beyond them.
fn full_state(plan: &Plan) -> State {
    let ad = plan.connector_index("contoso.com").unwrap();
    let cloud = plan.connector_index("cloud").unwrap();
    let ad_user = plan.connectors[ad].type_index("user").unwrap();
    let ad_group = plan.connectors[ad].type_index("group").unwrap();
    let cloud_user = plan.connectors[cloud].type_index("user").unwrap();
    let person = plan.mv_type_index("person").unwrap();
    let group = plan.mv_type_index("group").unwrap();
    let in_user = rule(plan, "In from AD - User");
    let in_group = rule(plan, "In from AD - Group");
    let out_user = rule(plan, "Out to cloud - User");
    let out_join = rule(plan, "Out to cloud - User Join");
    let hired: idflow::value::DateTime = "2021-03-04T05:06:07Z".parse().unwrap();
    let mut s = State::new(plan.connectors.len());

    // 0: Ann, linked by projection, with a pending update: imported and current values differ.
    let mut o = obj(ad, ad_user, ANN);
    o.anchor = Some(guid(1));
    o.imported = values(
        plan,
        ad,
        "user",
        &[
            ("objectGUID", guid(1)),
            ("sAMAccountName", Value::from("ann")),
            ("manager", reference(BOB)),
            ("proxyAddresses", many(&["SMTP:ann@contoso.com"])),
            ("age", Value::Num(-41)),
            ("enabled", Value::Bool(false)),
            ("hired", Value::Dt(hired)),
        ],
    );
    o.current = values(
        plan,
        ad,
        "user",
        &[
            ("objectGUID", guid(1)),
            ("sAMAccountName", Value::from("ann.lee")),
            ("manager", reference(BOB)),
            (
                "proxyAddresses",
                many(&["SMTP:ann@contoso.com", "smtp:a@contoso.com"]),
            ),
            ("age", Value::Num(i64::MIN)),
            ("enabled", Value::Bool(true)),
            ("hired", Value::Dt(hired)),
        ],
    );
    o.pending_import = Some(PendingImport::Update);
    o.link = Some(Link {
        mv: 3,
        rule: in_user,
        outbound: false,
    });
    o.read_as = Some(ReadStamp {
        record: [0xa5; 16],
        object: u64::MAX - 7,
    });
    s.add_cs(o);

    // 1: a tombstone (removed and processed): not stored, and the ids after it shift.
    let mut o = obj(ad, ad_user, OLD);
    o.anchor = Some(guid(2));
    o.imported = vec![Value::Null; plan.connectors[ad].types[ad_user].names.len()].into();
    o.current = o.imported.clone();
    o.gone = true;
    s.cs_mut().push(o);

    // 2: Bob, a placeholder: referenced by Ann before it was imported.
    let mut o = obj(ad, ad_user, BOB);
    o.imported = vec![Value::Null; plan.connectors[ad].types[ad_user].names.len()].into();
    o.current = o.imported.clone();
    o.placeholder = true;
    s.add_cs(o);

    // 3: a group with a pending add.
    let mut o = obj(ad, ad_group, STAFF);
    o.anchor = Some(guid(3));
    o.imported = values(
        plan,
        ad,
        "group",
        &[
            ("objectGUID", guid(3)),
            ("cn", Value::from("Staff")),
            (
                "member",
                Value::many(vec![reference(ANN), reference(CAROL)]),
            ),
        ],
    );
    o.current = o.imported.clone();
    o.pending_import = Some(PendingImport::Add);
    o.link = Some(Link {
        mv: 8,
        rule: in_group,
        outbound: false,
    });
    s.add_cs(o);

    // 4: Carol, removed in AD, the delete not processed yet.
    let mut o = obj(ad, ad_user, CAROL);
    o.anchor = Some(guid(4));
    o.imported = values(
        plan,
        ad,
        "user",
        &[
            ("objectGUID", guid(4)),
            ("sAMAccountName", Value::from("carol")),
        ],
    );
    o.current = o.imported.clone();
    o.pending_import = Some(PendingImport::Delete);
    s.add_cs(o);

    // 5: Ann's target object, provisioned and not exported yet: no anchor.
    let mut o = obj(cloud, cloud_user, "CN=ann,OU=Users,DC=cloud");
    o.imported = vec![Value::Null; plan.connectors[cloud].types[cloud_user].names.len()].into();
    o.current = values(
        plan,
        cloud,
        "user",
        &[
            ("accountName", Value::from("ann.lee")),
            ("manager", reference("CN=dan,OU=Users,DC=cloud")),
            ("proxyAddresses", many(&["SMTP:ann@contoso.com"])),
        ],
    );
    o.export = Some(ExportOp::Add);
    o.link = Some(Link {
        mv: 3,
        rule: out_user,
        outbound: true,
    });
    o.provisioned_by = Some(out_user);
    s.add_cs(o);

    // 6: Dan's target object, joined by the join rule and kept by the provision rule, with a
    // staged rename, and a changed object type seen by its last import.
    let mut o = obj(cloud, cloud_user, "CN=dan,OU=Users,DC=cloud");
    o.anchor = Some(Value::from("cloud-6"));
    o.imported = values(
        plan,
        cloud,
        "user",
        &[
            ("cloudAnchor", Value::from("cloud-6")),
            ("accountName", Value::from("dan")),
        ],
    );
    o.current = values(
        plan,
        cloud,
        "user",
        &[
            ("cloudAnchor", Value::from("cloud-6")),
            ("accountName", Value::from("daniel")),
        ],
    );
    o.pending_import = Some(PendingImport::DeleteAdd);
    o.export = Some(ExportOp::Update);
    o.new_dn = Some("CN=daniel,OU=Users,DC=cloud".into());
    o.link = Some(Link {
        mv: 5,
        rule: out_join,
        outbound: true,
    });
    o.provisioned_by = Some(out_user);
    s.add_cs(o);

    // 7: a deprovisioned target object whose delete is staged.
    let mut o = obj(cloud, cloud_user, "CN=eve,OU=Users,DC=cloud");
    o.anchor = Some(Value::from("cloud-7"));
    o.imported = values(
        plan,
        cloud,
        "user",
        &[
            ("cloudAnchor", Value::from("cloud-7")),
            ("accountName", Value::from("eve")),
        ],
    );
    o.current = o.imported.clone();
    o.export = Some(ExportOp::Delete);
    s.add_cs(o);

    s.mv_mut().insert(
        3,
        MvObject {
            id: 3,
            object_type: person,
            attrs: mv_values(
                plan,
                "person",
                &[
                    ("accountName", Value::from("ann.lee")),
                    ("manager", Value::Ref("mv:5".into())),
                    (
                        "proxyAddresses",
                        many(&["SMTP:ann@contoso.com", "smtp:a@contoso.com"]),
                    ),
                    ("age", Value::Num(i64::MAX)),
                    ("enabled", Value::Bool(true)),
                    ("photo", Value::bin(vec![0, 255, 1])),
                    ("hired", Value::Dt(hired)),
                ],
            ),
            links: vec![5, 0],
        },
    );
    s.mv_mut().insert(
        5,
        MvObject {
            id: 5,
            object_type: person,
            attrs: mv_values(plan, "person", &[("accountName", Value::from("daniel"))]),
            links: vec![6],
        },
    );
    s.mv_mut().insert(
        8,
        MvObject {
            id: 8,
            object_type: group,
            attrs: mv_values(
                plan,
                "group",
                &[
                    ("displayName", Value::from("Staff")),
                    ("member", Value::many(vec![Value::Ref("mv:3".into())])),
                ],
            ),
            links: vec![3],
        },
    );
    s.restore_next_mv(12);
    s.add_reference(ad, dn_key(BOB), 0);
    s.add_reference(ad, dn_key(BOB), 3);
    s.add_reference(ad, dn_key(CAROL), 3);
    s.add_outbound_ref(5, 3);
    s.add_awaiting_ref(9, 3);
    s.add_awaiting_ref(9, 5);
    s.withheld_mut().insert(5);
    s.withheld_mut().insert(8);
    s.set_in_error(BTreeSet::from([4, 6]), BTreeSet::from([3]));
    s
}

fn assert_same(plan: &Plan, a: &State, b: &State) {
    // Ids are stable: the loaded state holds every object under its id, and a tombstone (not
    // stored) loads as a tombstone, or not at all at the end.
    let live = |s: &State| -> Vec<CsId> {
        s.cs()
            .iter()
            .enumerate()
            .filter(|(_, o)| !o.gone)
            .map(|(i, _)| i as CsId)
            .collect()
    };
    assert_eq!(
        live(b),
        live(a),
        "the ids of the objects that are not tombstones"
    );
    for (id, o) in a.cs().iter().enumerate() {
        if o.gone {
            continue;
        }
        let l = &b.cs()[id];
        let what = format!("connector-space object {} ({id})", o.dn);
        assert_eq!(l.connector, o.connector, "{what}: connector");
        assert_eq!(l.object_type, o.object_type, "{what}: object type");
        assert_eq!(l.dn, o.dn, "{what}: dn");
        assert_eq!(l.anchor, o.anchor, "{what}: anchor");
        assert_eq!(l.imported, o.imported, "{what}: imported values");
        assert_eq!(l.current, o.current, "{what}: current values");
        assert_eq!(l.pending_import, o.pending_import, "{what}: pending import");
        assert_eq!(l.export, o.export, "{what}: export");
        assert_eq!(l.new_dn, o.new_dn, "{what}: new dn");
        assert_eq!(l.link, o.link, "{what}: link");
        assert_eq!(l.provisioned_by, o.provisioned_by, "{what}: provisioned by");
        assert_eq!(l.placeholder, o.placeholder, "{what}: placeholder");
        assert_eq!(l.gone, o.gone, "{what}: gone");
        assert_eq!(l.read_as, o.read_as, "{what}: what it was read from");
    }
    assert_eq!(
        b.mv().keys().collect::<Vec<_>>(),
        a.mv().keys().collect::<Vec<_>>(),
        "metaverse ids"
    );
    for (id, o) in a.mv().iter() {
        let l = &b.mv()[id];
        assert_eq!(l.id, o.id, "metaverse object {id}: id");
        assert_eq!(l.object_type, o.object_type, "metaverse object {id}: type");
        assert_eq!(l.attrs, o.attrs, "metaverse object {id}: values");
        assert_eq!(
            l.links, o.links,
            "metaverse object {id}: links, in link order"
        );
    }
    assert_eq!(b.next_mv(), a.next_mv(), "next metaverse id");
    for (id, o) in a.cs().iter().enumerate() {
        if o.gone {
            continue;
        }
        if let Some(k) = o.anchor.as_ref().and_then(Key::exact) {
            assert_eq!(
                b.cs_by_anchor(o.connector, &k),
                a.cs_by_anchor(o.connector, &k),
                "anchor index of {id}"
            );
        }
        assert_eq!(
            b.cs_by_dn(o.connector, &o.dn),
            a.cs_by_dn(o.connector, &o.dn),
            "DN index of {id}"
        );
    }
    let refs = |s: &State| -> BTreeMap<(usize, Box<str>), BTreeSet<CsId>> {
        s.references()
            .map(|(k, v)| (k.clone(), v.iter().copied().collect()))
            .collect()
    };
    assert_eq!(refs(b), refs(a), "inbound references");
    let sorted =
        |x: &std::collections::HashMap<u64, BTreeSet<u64>>| -> BTreeMap<u64, BTreeSet<u64>> {
            x.iter().map(|(k, v)| (*k, v.clone())).collect()
        };
    assert_eq!(
        sorted(b.outbound_refs()),
        sorted(a.outbound_refs()),
        "outbound references"
    );
    assert_eq!(
        sorted(b.awaiting_refs()),
        sorted(a.awaiting_refs()),
        "references awaiting their target"
    );
    assert_eq!(b.withheld(), a.withheld(), "withheld duplicates");
    assert_eq!(
        b.in_error_cs(),
        a.in_error_cs(),
        "connector-space objects in error"
    );
    assert_eq!(
        b.in_error_mv(),
        a.in_error_mv(),
        "metaverse objects in error"
    );
    // The join and uniqueness indexes are caches the next sync builds from the loaded values
    // (`ensure_indexes`); none is loaded half-built.
    assert!(b.mv_index().is_empty(), "no metaverse join index is loaded");
    assert!(
        b.cs_index().is_empty(),
        "no connector-space index is loaded"
    );
    assert_eq!(
        idflow::engine::dump::state(plan, b),
        idflow::engine::dump::state(plan, a),
        "canonical dump"
    );
}

#[test]
fn a_saved_state_loads_back_field_by_field() {
    let e = engine();
    let mut state = full_state(&e.plan);
    // Every part of the state holds something (a new part of State or a new field of
    // CsObject must be added here, and to the store).
    assert!(state.cs().iter().any(|o| o.gone) && state.cs().iter().any(|o| o.placeholder));
    for (empty, what) in [
        (state.mv().is_empty(), "metaverse"),
        (state.next_mv() == 0, "next metaverse id"),
        (state.references().next().is_none(), "references"),
        (state.outbound_refs().is_empty(), "outbound references"),
        (state.withheld().is_empty(), "withheld"),
        (state.awaiting_refs().is_empty(), "awaiting references"),
        (
            state.in_error_cs().is_empty(),
            "connector-space objects in error",
        ),
        (state.in_error_mv().is_empty(), "metaverse objects in error"),
    ] {
        assert!(!empty, "the test state leaves the {what} empty");
    }
    let path = std::env::temp_dir().join(format!("idflow-store-{}.db", std::process::id()));
    let _ = std::fs::remove_file(&path);
    {
        let mut store = SqliteStore::open(&path).unwrap();
        store.save_changes(&e.plan, &mut state, &[]).unwrap();
    }
    let mut store = SqliteStore::open(&path).unwrap();
    let (loaded, warnings) = store.load(&e.plan).unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_same(&e.plan, &state, &loaded);
    // A loaded state has nothing to save; a change of one object saves that object only.
    let mut loaded = loaded;
    assert!(loaded.changes().is_empty(), "{:?}", loaded.changes());
    let stats = store.save_changes(&e.plan, &mut loaded, &[]).unwrap();
    assert_eq!(stats.rows, 0, "a save with no change writes no row");
    loaded.cs_mut()[3].pending_import = None;
    let stats = store
        .save_changes(&e.plan, &mut loaded, &[("k", "v")])
        .unwrap();
    assert_eq!(
        (stats.objects, stats.rows),
        (1, 1),
        "one object changed, one row written"
    );
    assert_eq!(store.get_meta("k").unwrap().as_deref(), Some("v"));
    let (again, _) = store.load(&e.plan).unwrap();
    assert_same(&e.plan, &loaded, &again);
    drop(store);

    // A database of schema version 6 has no column of what objects were read from: read-only
    // it loads without (every record is read again); opened to write, it gains the column.
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch("ALTER TABLE cs_objects DROP COLUMN read_as; PRAGMA user_version = 6;")
        .unwrap();
    drop(conn);
    let mut unread = loaded.clone();
    for id in 0..unread.cs().len() {
        unread.cs_mut().set_read_as(id, None);
    }
    let (old, _) = SqliteStore::open_read_only(&path)
        .unwrap()
        .load(&e.plan)
        .unwrap();
    assert_same(&e.plan, &unread, &old);
    let mut store = SqliteStore::open(&path).unwrap();
    let (mut old, _) = store.load(&e.plan).unwrap();
    assert_same(&e.plan, &unread, &old);
    old.cs_mut().set_read_as(0, loaded.cs()[0].read_as);
    let stats = store.save_changes(&e.plan, &mut old, &[]).unwrap();
    assert_eq!((stats.objects, stats.rows), (1, 1));
    let (again, _) = store.load(&e.plan).unwrap();
    assert_same(&e.plan, &loaded, &again);
    drop(store);
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
}

#[test]
fn run_history_and_sync_errors_load_back() {
    let mut store = SqliteStore::memory().unwrap();
    store.set_meta("bundle_hash", "abc").unwrap();
    assert_eq!(
        store.get_meta("bundle_hash").unwrap().as_deref(),
        Some("abc")
    );
    assert_eq!(store.get_meta("nothing").unwrap(), None);
    let sync = RunRecord {
        id: 0,
        started: "2024-01-01T00:00:00Z".into(),
        step: "delta-sync".into(),
        connector: String::new(),
        status: "completed-sync-errors".into(),
        adds: 1,
        updates: 2,
        deletes: 3,
        renames: 4,
        errors: 1,
        duration_ms: 5,
        detail: "detail".into(),
        rejected: 0,
    };
    let error = ErrorRecord {
        run: 0,
        category: "Duplicate Attribute".into(),
        connector: "cloud".into(),
        dn: "CN=ann,OU=Users,DC=cloud".into(),
        rule: "Out to cloud - User".into(),
        code: String::new(),
        message: "proxyAddresses is already held".into(),
    };
    let id = store
        .record_run(&sync, std::slice::from_ref(&error), &[])
        .unwrap();
    let export = RunRecord {
        step: "export".into(),
        connector: "cloud".into(),
        status: "success".into(),
        ..sync.clone()
    };
    let id2 = store.record_run(&export, &[], &[]).unwrap();
    assert!(id2 > id);
    let runs = store.runs(10).unwrap();
    assert_eq!(
        runs,
        vec![
            RunRecord { id: id2, ..export },
            RunRecord { id, ..sync.clone() }
        ],
        "newest first"
    );
    assert_eq!(
        store.latest_errors().unwrap(),
        vec![ErrorRecord { run: id, ..error }]
    );
    // An import's rejected records, with and without a line.
    let import = RunRecord {
        step: "delta-import".into(),
        connector: "hr".into(),
        status: "completed-warnings".into(),
        errors: 2,
        rejected: 2,
        ..sync.clone()
    };
    let rejects = vec![
        RejectRecord {
            run: 0,
            source: "hr.csv".into(),
            line: Some(7),
            message: "a row with 3 fields where the header has 4".into(),
        },
        RejectRecord {
            run: 0,
            source: "CN=x,OU=HR".into(),
            line: None,
            message: "the anchor attribute has no value".into(),
        },
    ];
    let id3 = store.record_run(&import, &[], &rejects).unwrap();
    let latest = store.latest_rejects().unwrap();
    assert_eq!(latest.len(), 1, "{latest:?}");
    assert_eq!(latest[0].0.id, id3);
    assert_eq!(
        latest[0].1,
        rejects
            .iter()
            .map(|r| RejectRecord {
                run: id3,
                ..r.clone()
            })
            .collect::<Vec<_>>()
    );
}

/// A user of the AD connector, as an import reads it.
fn ad_user(n: u32, name: &str) -> idflow::engine::import::ImportChange {
    let mut g = vec![0u8; 16];
    g[..4].copy_from_slice(&n.to_be_bytes());
    idflow::engine::import::ImportChange::Upsert(idflow::engine::import::ImportObject {
        dn: format!("CN=u{n},OU=Users,DC=contoso,DC=com"),
        object_type: "user".into(),
        attrs: vec![
            ("objectGUID".into(), Value::bin(g)),
            ("sAMAccountName".into(), Value::from(name)),
        ],
    })
}

/// The cost of a save follows the change, not the state: after 2,000 users are imported,
/// projected and provisioned, a step that changes one user's name saves a handful of rows.
#[test]
fn a_save_writes_the_rows_of_what_changed_only() {
    use idflow::engine::sync::Mode;
    let mut e = engine();
    let ad = e.plan.connector_index("contoso.com").unwrap();
    let users: Vec<_> = (0..2000).map(|n| ad_user(n, &format!("user{n}"))).collect();
    let mut store = SqliteStore::memory().unwrap();
    e.import(ad, users.clone(), true);
    let first = store.save_changes(&e.plan, &mut e.state, &[]).unwrap();
    assert_eq!(first.objects, 2000, "every imported object is saved once");
    e.sync(Mode::Full);
    let sync = store.save_changes(&e.plan, &mut e.state, &[]).unwrap();
    assert!(sync.objects >= 4000, "{sync:?}: projected and provisioned");
    // A second full read of the same users changes nothing, and saves nothing.
    e.import(ad, users.clone(), true);
    let same = store.save_changes(&e.plan, &mut e.state, &[]).unwrap();
    assert_eq!(same.rows, 0, "{same:?}");
    e.sync(Mode::Delta);
    let nothing = store.save_changes(&e.plan, &mut e.state, &[]).unwrap();
    assert_eq!(nothing.rows, 0, "{nothing:?}");
    // One user renamed: its AD object, its metaverse object and its cloud object.
    let mut changed = users;
    changed[7] = ad_user(7, "renamed");
    e.import(ad, changed, true);
    let import = store.save_changes(&e.plan, &mut e.state, &[]).unwrap();
    assert_eq!(import.objects, 1, "{import:?}");
    e.sync(Mode::Delta);
    let sync = store.save_changes(&e.plan, &mut e.state, &[]).unwrap();
    assert!(
        (1..=4).contains(&sync.objects) && sync.rows <= 6,
        "a one-object change saved {sync:?}"
    );
    // What was saved is the state.
    let (loaded, _) = store.load(&e.plan).unwrap();
    assert_eq!(
        idflow::engine::dump::state(&e.plan, &loaded),
        idflow::engine::dump::state(&e.plan, &e.state)
    );
}

/// A save of many objects encodes their values on a thread of its own while it writes them
/// (`store::sqlite`, `ENCODE_APART`): every object's row is written in its place, removed
/// objects among them, and the state loads back as it was.
#[test]
fn a_large_save_writes_every_object_in_its_place() {
    use idflow::engine::sync::Mode;
    let mut e = engine();
    let ad = e.plan.connector_index("contoso.com").unwrap();
    let mut store = SqliteStore::memory().unwrap();
    let users: Vec<_> = (0..5000).map(|n| ad_user(n, &format!("u{n}"))).collect();
    e.import(ad, users, true);
    e.sync(Mode::Full);
    let first = store.save_changes(&e.plan, &mut e.state, &[]).unwrap();
    assert!(first.objects >= 10_000, "{first:?}");
    // In one step: every third user gone, every other one of the rest renamed.
    let next: Vec<_> = (0..5000)
        .filter(|n| n % 3 != 0)
        .map(|n| {
            let name = if n % 2 == 0 {
                format!("r{n}")
            } else {
                format!("u{n}")
            };
            ad_user(n, &name)
        })
        .collect();
    e.import(ad, next, true);
    e.sync(Mode::Delta);
    assert!(e.state.cs().iter().any(|o| o.gone));
    let step = store.save_changes(&e.plan, &mut e.state, &[]).unwrap();
    assert!(step.objects >= 4096, "{step:?}");
    let (loaded, _) = store.load(&e.plan).unwrap();
    assert_eq!(
        idflow::engine::dump::state(&e.plan, &loaded),
        idflow::engine::dump::state(&e.plan, &e.state)
    );
}

/// Rows rewritten as objects grow leave pages part-filled; once as many rows were written as
/// the state has objects, the database is compacted (and not again right after), and what it
/// holds is unchanged.
#[test]
fn the_database_is_compacted_once_its_rows_were_rewritten() {
    use idflow::engine::sync::Mode;
    let mut e = engine();
    let ad = e.plan.connector_index("contoso.com").unwrap();
    let mut store = SqliteStore::memory().unwrap();
    let objects = |e: &Engine| e.state.cs().len() + e.state.mv().len();
    let users: Vec<_> = (0..6000).map(|n| ad_user(n, &format!("u{n}"))).collect();
    e.import(ad, users, true);
    store.save_changes(&e.plan, &mut e.state, &[]).unwrap();
    assert_eq!(
        store.compact_if_due(objects(&e)).unwrap(),
        None,
        "6,000 rows written: fewer than the minimum"
    );
    e.sync(Mode::Full);
    store.save_changes(&e.plan, &mut e.state, &[]).unwrap();
    // Every user's name grows: every row is rewritten larger.
    let longer: Vec<_> = (0..6000)
        .map(|n| ad_user(n, &format!("u{n}-with-a-much-longer-account-name")))
        .collect();
    e.import(ad, longer, true);
    e.sync(Mode::Delta);
    store.save_changes(&e.plan, &mut e.state, &[]).unwrap();
    let (before, after) = store
        .compact_if_due(objects(&e))
        .unwrap()
        .expect("a compaction is due");
    assert!(after < before, "{before} bytes, then {after}");
    assert_eq!(
        store.compact_if_due(objects(&e)).unwrap(),
        None,
        "not again"
    );
    let (loaded, _) = store.load(&e.plan).unwrap();
    assert_eq!(
        idflow::engine::dump::state(&e.plan, &loaded),
        idflow::engine::dump::state(&e.plan, &e.state)
    );
}

#[test]
fn alerts_are_kept_and_a_version_4_database_gains_their_table() {
    let d = common::Dir::new("store-alerts");
    let path = d.path("idflow.db");
    let mut store = SqliteStore::open(&path).unwrap();
    store
        .record_run(
            &RunRecord {
                started: "2026-01-01T00:00:00Z".into(),
                step: "export".into(),
                connector: "HR".into(),
                status: "stopped-deletion-threshold-exceeded".into(),
                deletes: 7,
                ..Default::default()
            },
            &[],
            &[],
        )
        .unwrap();
    let alert = idflow::store::AlertRecord {
        key: "import_failed:HR".into(),
        kind: "import_failed".into(),
        title: "Import from HR failed".into(),
        severity: "error".into(),
        remediation: vec!["one".into(), "two".into()],
        raised_at: "2026-01-01T00:00:00Z".into(),
        ..Default::default()
    };
    let (id, new) = store.raise_alert(&alert).unwrap();
    assert!(new);
    assert_eq!(store.raise_alert(&alert).unwrap(), (id, false));
    assert!(
        store
            .acknowledge_alert(id, "alice", "2026-01-01T00:01:00Z")
            .unwrap()
    );
    assert_eq!(
        store
            .resolve_alert("import_failed:HR", "2026-01-01T00:02:00Z")
            .unwrap(),
        Some(id)
    );
    assert_eq!(
        store
            .resolve_alert("import_failed:HR", "2026-01-01T00:03:00Z")
            .unwrap(),
        None
    );
    let kept = store.alert(id).unwrap().unwrap();
    assert_eq!(kept.remediation, ["one", "two"]);
    assert_eq!(kept.acknowledged_by.as_deref(), Some("alice"));
    assert_eq!(kept.resolved_at.as_deref(), Some("2026-01-01T00:02:00Z"));
    assert!(store.alerts(true, 10).unwrap().is_empty());
    assert_eq!(store.alerts(false, 10).unwrap().len(), 1);
    let steps = store.latest_steps().unwrap();
    assert_eq!((steps.len(), steps[0].deletes), (1, 7));
    drop(store);

    // A database of schema version 5 (before the alerts): read-only, it has none; opened to
    // write, it gains the table.
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch("DROP TABLE alerts; PRAGMA user_version = 5;")
        .unwrap();
    drop(conn);
    let mut ro = SqliteStore::open_read_only(&path).unwrap();
    assert!(ro.alerts(false, 10).unwrap().is_empty());
    assert!(ro.alert(1).unwrap().is_none());
    drop(ro);
    let mut store = SqliteStore::open(&path).unwrap();
    assert!(store.raise_alert(&alert).unwrap().1);
    drop(store);
    let conn = rusqlite::Connection::open(&path).unwrap();
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(version, 7);
}
