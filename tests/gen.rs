//! `idflow gen ad` and `idflow::gen`: a deterministic, schema-conforming synthetic AD export.

use idflow::connector::ldif::{self, AttrTypes, Entry, Record};
use idflow::r#gen::{self as generator, CONTACTS_OU, GROUPS_OU, SYSTEM_CONTAINER, USERS_OU};
use idflow::value::Value;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::process::Command;

/// The content records of an LDIF text (none rejected).
fn entries(text: &str, types: &AttrTypes) -> Vec<Entry> {
    let parsed = ldif::parse(text.as_bytes(), "gen.ldif", types).unwrap();
    assert!(parsed.rejected.is_empty(), "{:#?}", parsed.rejected);
    parsed
        .records
        .into_iter()
        .map(|(_, r)| match r {
            Record::Content(e) => e,
            other => panic!("not a content record: {other:?}"),
        })
        .collect()
}

fn of_type<'a>(es: &'a [Entry], ty: &str) -> Vec<&'a Entry> {
    es.iter().filter(|e| e.object_type() == ty).collect()
}

fn one_str<'a>(e: &'a Entry, name: &str) -> Option<&'a str> {
    e.get(name).and_then(|v| v[0].as_str())
}

fn contoso() -> idflow::sema::schema::ConnectorDef {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("rules/entra-default");
    let files = idflow::source::collect_idf_files(&[dir]).unwrap();
    let map = idflow::source::load(&files).unwrap();
    let checked = idflow::frontend::check(&map);
    assert!(!checked.has_errors(), "{:#?}", checked.diagnostics);
    checked.bundle.schema.connectors["contoso.com"].clone()
}

#[test]
fn same_seed_same_text_other_seed_other_text() {
    let a = generator::generate(40, 8, 7);
    assert_eq!(a, generator::generate(40, 8, 7));
    assert_ne!(a, generator::generate(40, 8, 8));
}

#[test]
fn counts() {
    for (users, groups) in [(0, 0), (1, 1), (120, 15)] {
        let es = entries(
            &generator::generate(users, groups, 3),
            &AttrTypes::default(),
        );
        let user_objects = of_type(&es, "user");
        let ordinary: Vec<_> = user_objects
            .iter()
            .filter(|e| e.dn.ends_with(USERS_OU) && !e.dn.contains("\\0ACNF:"))
            .collect();
        assert_eq!(ordinary.len(), users);
        assert_eq!(user_objects.len(), users + 3 + users.min(2));
        assert_eq!(of_type(&es, "group").len(), groups);
        assert!(
            of_type(&es, "group")
                .iter()
                .all(|g| g.dn.ends_with(GROUPS_OU))
        );
        let contacts = of_type(&es, "contact");
        assert_eq!(contacts.len(), users.div_ceil(50));
        assert!(contacts.iter().all(|c| c.dn.ends_with(CONTACTS_OU)));
        assert_eq!(
            es.len(),
            users + 3 + users.min(2) + groups + users.div_ceil(50)
        );
    }
}

/// Every attribute written is declared for its object type in the default bundle's schema, and
/// every value parses as the declared type.
#[test]
fn conforms_to_the_default_bundle_schema() {
    let conn = contoso();
    let text = generator::generate(300, 40, 11);
    let types = ldif::attr_types(conn.objects.values());
    for e in entries(&text, &types) {
        let ty = e.object_type();
        let obj = conn
            .objects
            .get(ty)
            .unwrap_or_else(|| panic!("`{}`: object type `{ty}` not in the schema", e.dn));
        for (name, values) in &e.attrs {
            let def = obj
                .attr(name)
                .unwrap_or_else(|| panic!("`{}`: `{name}` is not an attribute of `{ty}`", e.dn));
            assert!(
                def.multi || values.len() == 1,
                "`{}`: single-valued `{name}` has {} values",
                e.dn,
                values.len()
            );
        }
        let anchor = obj.anchor.as_deref().unwrap();
        assert!(e.get(anchor).is_some(), "`{}` has no anchor", e.dn);
    }
}

/// The binary SID `S-1-5-21-a-b-c-rid` → (domain, rid).
fn sid(bytes: &[u8]) -> ([u32; 3], u32) {
    assert_eq!(bytes.len(), 8 + 4 * 5, "{bytes:?}");
    assert_eq!(&bytes[..8], &[1, 5, 0, 0, 0, 0, 0, 5]);
    let sub = |i: usize| u32::from_le_bytes(bytes[8 + 4 * i..12 + 4 * i].try_into().unwrap());
    assert_eq!(sub(0), 21);
    ([sub(1), sub(2), sub(3)], sub(4))
}

fn bin(e: &Entry, name: &str) -> Vec<u8> {
    match &e.get(name).unwrap_or_else(|| panic!("{}: no {name}", e.dn))[0] {
        Value::Bin(b) => b.to_vec(),
        other => panic!("{}: {name} is {other:?}", e.dn),
    }
}

#[test]
fn a_realistic_directory() {
    let conn = contoso();
    let types = ldif::attr_types(conn.objects.values());
    let users = 400;
    let es = entries(&generator::generate(users, 60, 5), &types);
    let by_dn: HashMap<String, &Entry> = es.iter().map(|e| (e.dn.to_lowercase(), e)).collect();

    // Unique anchors, valid SIDs of one domain with unique RIDs.
    let mut guids = HashSet::new();
    let mut rids = HashSet::new();
    let mut domains = HashSet::new();
    for e in &es {
        assert_eq!(bin(e, "objectGUID").len(), 16);
        assert!(guids.insert(bin(e, "objectGUID")), "duplicate objectGUID");
        if e.object_type() != "contact" {
            let (d, rid) = sid(&bin(e, "objectSid"));
            domains.insert(d);
            assert!(rids.insert(rid), "duplicate RID {rid}");
        }
    }
    assert_eq!(domains.len(), 1);
    let sams: Vec<&str> = es
        .iter()
        .filter_map(|e| one_str(e, "sAMAccountName"))
        .collect();
    assert_eq!(
        sams.iter()
            .map(|s| s.to_lowercase())
            .collect::<HashSet<_>>()
            .len(),
        sams.len(),
        "sAMAccountNames are unique"
    );

    // Managers form a forest: every reference resolves to a user and no chain loops.
    let people: Vec<&Entry> = of_type(&es, "user")
        .into_iter()
        .filter(|e| e.dn.ends_with(USERS_OU) && !e.dn.contains("\\0ACNF:"))
        .collect();
    let mut tops = 0;
    for p in &people {
        let mut seen = HashSet::new();
        let mut cur = *p;
        while let Some(m) = cur.get("manager") {
            let Value::Ref(dn) = &m[0] else {
                panic!("manager is not a reference")
            };
            cur = by_dn[&dn.to_lowercase()];
            assert_eq!(cur.object_type(), "user");
            assert!(seen.insert(cur.dn.clone()), "manager cycle at {}", p.dn);
        }
        if p.get("manager").is_none() {
            tops += 1;
        }
    }
    assert!(tops >= 1 && tops < people.len() / 4, "{tops} top managers");

    // Mostly enabled, some disabled; some without UPN; mail with SMTP proxies.
    let uac = |e: &Entry| match e.get("userAccountControl").map(|v| &v[0]) {
        Some(Value::Num(n)) => *n,
        other => panic!("{other:?}"),
    };
    let disabled = people.iter().filter(|p| uac(p) & 2 != 0).count();
    assert!(disabled > 0 && disabled < users / 10, "{disabled} disabled");
    assert!(people.iter().any(|p| uac(p) == 66048));
    let no_upn = people
        .iter()
        .filter(|p| p.get("userPrincipalName").is_none())
        .count();
    assert!(no_upn > 0 && no_upn < users / 10, "{no_upn} without UPN");
    for p in &people {
        if let Some(mail) = one_str(p, "mail") {
            let proxies = p.get("proxyAddresses").unwrap();
            let primary: Vec<_> = proxies
                .iter()
                .filter_map(Value::as_str)
                .filter(|x| x.starts_with("SMTP:"))
                .collect();
            assert_eq!(primary, vec![format!("SMTP:{mail}")]);
        }
    }

    // Groups: both kinds, members resolve, nesting has no cycles.
    let groups = of_type(&es, "group");
    let gtype = |e: &Entry| match e.get("groupType").map(|v| &v[0]) {
        Some(Value::Num(n)) => *n,
        other => panic!("{other:?}"),
    };
    assert!(groups.iter().any(|g| gtype(g) == -2147483646));
    let distribution: Vec<_> = groups.iter().filter(|g| gtype(g) == 8).collect();
    assert!(!distribution.is_empty());
    assert!(distribution.iter().all(|g| g.get("mail").is_some()));
    let mut nested = 0;
    let mut edges: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for g in &groups {
        for m in g.get("member").unwrap_or_default() {
            let Value::Ref(dn) = m else {
                panic!("member is not a reference")
            };
            let target = by_dn[&dn.to_lowercase()];
            if target.object_type() == "group" {
                nested += 1;
                edges
                    .entry(g.dn.clone())
                    .or_default()
                    .push(target.dn.clone());
            }
        }
    }
    assert!(nested > 0);
    fn reaches(edges: &BTreeMap<String, Vec<String>>, from: &str, to: &str, depth: usize) -> bool {
        depth < 100
            && edges.get(from).is_some_and(|ns| {
                ns.iter()
                    .any(|n| n == to || reaches(edges, n, to, depth + 1))
            })
    }
    for g in edges.keys() {
        assert!(!reaches(&edges, g, g, 0), "group nesting cycle at {g}");
    }

    // System objects and replication conflicts.
    let system: Vec<_> = es
        .iter()
        .filter(|e| e.dn.ends_with(SYSTEM_CONTAINER))
        .collect();
    let krbtgt = system
        .iter()
        .find(|e| one_str(e, "sAMAccountName") == Some("krbtgt"))
        .unwrap();
    assert_eq!(
        krbtgt.get("isCriticalSystemObject"),
        Some(&[Value::Bool(true)][..])
    );
    assert_eq!(sid(&bin(krbtgt, "objectSid")).1, 502);
    let admin = system
        .iter()
        .find(|e| one_str(e, "sAMAccountName") == Some("Administrator"))
        .unwrap();
    assert_eq!(sid(&bin(admin, "objectSid")).1, 500);
    assert!(
        system
            .iter()
            .any(|e| one_str(e, "sAMAccountName").is_some_and(|s| s.starts_with("MSOL_")))
    );
    let conflicts: Vec<_> = es.iter().filter(|e| e.dn.contains("\\0ACNF:")).collect();
    assert_eq!(conflicts.len(), 2);
    for c in conflicts {
        assert!(
            one_str(c, "sAMAccountName")
                .unwrap()
                .starts_with("$DUPLICATE-")
        );
        assert!(one_str(c, "cn").unwrap().contains("\nCNF:"));
    }
}

#[test]
fn the_ldif_is_well_formed() {
    let text = generator::generate(50, 10, 2);
    assert!(text.starts_with("version: 1\n"));
    assert!(text.lines().all(|l| l.len() <= 76));
    // Binary attributes are always base64.
    assert!(text.lines().all(|l| !l.starts_with("objectGUID: ")));
    assert!(text.contains("objectGUID:: "));
}

#[test]
fn cli_prints_or_writes_the_export() {
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_idflow"))
            .args(args)
            .output()
            .expect("binary runs")
    };
    let out = run(&["gen", "ad", "--users", "12", "--groups", "3", "--seed", "9"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        generator::generate(12, 3, 9)
    );

    let dir = std::env::temp_dir().join(format!("idflow-gen-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("ad.ldif");
    let out = run(&[
        "gen",
        "ad",
        "--users",
        "5",
        "--groups",
        "2",
        "-o",
        file.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout.is_empty());
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        generator::generate(5, 2, 1)
    );

    let out = run(&[
        "gen",
        "ad",
        "--users",
        "5",
        "--groups",
        "2",
        "-o",
        dir.join("missing/ad.ldif").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing"));
    let _ = std::fs::remove_dir_all(&dir);
}

/// The export goes through the LDIF source into the engine with the default rules: every object
/// is staged (types and anchors fit the schema) and a full sync runs without errors.
#[test]
fn imports_and_syncs_with_the_default_rules() {
    use idflow::connector::{ImportMode, collect};
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("rules/entra-default");
    let files = idflow::source::collect_idf_files(&[dir]).unwrap();
    let map = idflow::source::load(&files).unwrap();
    let bundle = idflow::frontend::check(&map).bundle;
    let conn = &bundle.schema.connectors["contoso.com"];
    let types = ldif::attr_types(conn.objects.values());

    let tmp = std::env::temp_dir().join(format!("idflow-gen-sync-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).unwrap();
    let file = tmp.join("ad.ldif");
    std::fs::write(&file, generator::generate(200, 30, 4)).unwrap();
    let imported = collect(
        &mut ldif::LdifSource::new(&file).with_types(types),
        ImportMode::Full,
    )
    .unwrap();
    assert!(imported.rejected.is_empty(), "{:#?}", imported.rejected);
    let count = imported.changes.len();

    let mut engine = idflow::engine::Engine::new(&bundle, idflow::testrun::test_now());
    let ci = engine.plan.connector_index("contoso.com").unwrap();
    for c in 0..engine.plan.connectors.len() {
        let name = engine.plan.connectors[c].name.clone();
        engine.set_params(c, idflow::testrun::default_params(&name));
    }
    let report = engine.import(ci, imported.changes, true);
    assert!(report.rejected.is_empty(), "{:#?}", report.rejected);
    assert_eq!(report.adds, count);
    let sync = engine.sync(idflow::engine::sync::Mode::Full);
    assert!(sync.errors.is_empty(), "{:#?}", sync.errors);
    assert!(sync.projections > 200, "{sync:#?}");
    let _ = std::fs::remove_dir_all(&tmp);
}
