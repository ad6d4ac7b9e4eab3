//! The LDAP connector against real OpenLDAP servers (tests/ldap/slapd.rs starts a private one
//! per test): full import of 10,000 entries, syncrepl and modifyTimestamp deltas after adds,
//! modifies, deletes and renames, container filtering, an export round trip from a generated
//! Active Directory LDIF, and a server stopped in the middle of a run.

use idflow::runner::{CycleOptions, StepReport, StepStatus};
use ldap3::{Mod, Scope, SearchEntry};
use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;

mod common;
#[path = "ldap/slapd.rs"]
mod slapd;
use common::{Dir, counts, cycle, runner, step};
use slapd::{PASSWORD, SUFFIX, Slapd};

/// The environment variable the tests' idflow.toml names for the bind password.
const PW_ENV: &str = "IDFLOW_TEST_LDAP_PASSWORD";

fn set_password() {
    common::set_env_once(PW_ENV, PASSWORD);
}

const SOURCE_BUNDLE: &str = r#"bundle "ldap-source"

metaverse {
  object person {
    uid   string
    title string
    mail  string
    photo binary
  }
}

connector "dir" ldap {
  object inetOrgPerson anchor entryUUID {
    entryUUID string
    uid       string
    cn        string
    sn        string
    mail      string
    title     string
    jpegPhoto binary
  }
}

inbound rule "In from the directory" {
  connector "dir"
  source inetOrgPerson
  target person
  link provision
  precedence 1
  join {
    uid = uid
  }
  flow uid   <- [uid]
  flow title <- [title]
  flow mail  <- [mail]
  flow photo <- [jpegPhoto]
}
"#;

fn person(i: usize, ou: &str) -> String {
    format!(
        "dn: uid=user{i:05},{ou}\nobjectClass: inetOrgPerson\nuid: user{i:05}\ncn: User {i}\n\
         sn: Sur{i}\nmail: user{i:05}@example.com\ntitle: Engineer {}\n\n",
        i % 50
    )
}

fn people(n: usize) -> String {
    let ou = format!("ou=people,{SUFFIX}");
    (0..n).map(|i| person(i, &ou)).collect()
}

/// A deployment reading `server` with `extra` connector settings.
fn source_deployment(name: &str, server: &Slapd, extra: &str) -> Dir {
    set_password();
    let dir = Dir::new(name);
    std::fs::create_dir_all(dir.path("bundle")).unwrap();
    dir.write("bundle/bundle.idf", SOURCE_BUNDLE);
    dir.write(
        "idflow.toml",
        &format!(
            "bundle = \"bundle\"\nstate = \"idflow.db\"\ndelete_threshold = 100000\n\n\
             [connectors.dir]\nkind = \"ldap\"\nurl = \"{}\"\nbind_dn = \"{}\"\n\
             password_env = \"{PW_ENV}\"\npage_size = 500\n{extra}\n\
             [[connectors.dir.partitions]]\nname = \"ou=people,{SUFFIX}\"\n",
            server.url(),
            slapd::ADMIN
        ),
    );
    dir
}

/// A sync cycle (the import of the directory, a sync); the import's report.
fn import(dir: &Dir) -> StepReport {
    let reports = runner(dir).cycle(CycleOptions::default()).unwrap();
    step(&reports, "import", "dir").clone()
}

/// The objects of the connector space: DN → (anchor, title).
fn space(dir: &Dir) -> BTreeMap<String, (String, String)> {
    let r = runner(dir);
    let c = r.engine.plan.connector_index("dir").unwrap();
    let ty = &r.engine.plan.connectors[c].types[0];
    let title = ty.slots["title"];
    let mut out = BTreeMap::new();
    for o in r.engine.state.cs().iter() {
        if o.connector != c || o.gone {
            continue;
        }
        let anchor = o
            .anchor
            .as_ref()
            .and_then(|a| a.as_str())
            .unwrap_or_default()
            .to_string();
        let t = o.current[title].as_str().unwrap_or_default().to_string();
        out.insert(o.dn.to_string().to_lowercase(), (anchor, t));
    }
    out
}

/// Every file of the deployment holds no trace of the bind password.
fn assert_no_secret(dir: &Dir, reports: &[&StepReport]) {
    for e in std::fs::read_dir(&dir.0).unwrap() {
        let p = e.unwrap().path();
        if p.is_file() {
            let bytes = std::fs::read(&p).unwrap();
            assert!(
                !bytes
                    .windows(PASSWORD.len())
                    .any(|w| w == PASSWORD.as_bytes()),
                "{} holds the bind password",
                p.display()
            );
        }
    }
    for r in reports {
        assert!(!format!("{r:?}").contains(PASSWORD), "{r:#?}");
    }
}

#[test]
fn full_import_of_10000_entries_then_syncrepl_deltas() {
    let Some(server) = Slapd::start("full", &people(10_000)) else {
        return;
    };
    let dir = source_deployment("ldap-full", &server, "");
    let t = std::time::Instant::now();
    let r = import(&dir);
    eprintln!("full import of 10000 entries: {:?}", t.elapsed());
    assert_eq!(r.status, StepStatus::Success, "{r:#?}");
    assert_eq!(counts(&r), (10_000, 0, 0, 0), "{r:#?}");
    let s = space(&dir);
    assert_eq!(s.len(), 10_000);
    let (anchor, title) = &s[&format!("uid=user00007,ou=people,{SUFFIX}")];
    assert_eq!(title, "Engineer 7");
    assert_eq!(anchor.len(), 36, "an entryUUID: {anchor}");

    // Nothing changed: the delta (content synchronization from the stored cookie) is empty.
    let r = import(&dir);
    assert_eq!(counts(&r), (0, 0, 0, 0), "{r:#?}");
    assert_eq!(r.status, StepStatus::Success, "{r:#?}");

    // An add, a modify, a delete and a rename on the server.
    let mut ldap = server.admin();
    let new = format!("uid=fresh,ou=people,{SUFFIX}");
    ldap.add(
        &new,
        vec![
            (
                b"objectClass".to_vec(),
                HashSet::from([b"inetOrgPerson".to_vec()]),
            ),
            (b"uid".to_vec(), HashSet::from([b"fresh".to_vec()])),
            (b"cn".to_vec(), HashSet::from([b"Fresh".to_vec()])),
            (b"sn".to_vec(), HashSet::from([b"Fresh".to_vec()])),
            // Not UTF-8: the server hands it over as binary.
            (
                b"jpegPhoto".to_vec(),
                HashSet::from([vec![0xff, 0xd8, 0x00]]),
            ),
        ],
    )
    .unwrap()
    .success()
    .unwrap();
    ldap.modify(
        &format!("uid=user00001,ou=people,{SUFFIX}"),
        vec![Mod::Replace("title", HashSet::from(["Lead"]))],
    )
    .unwrap()
    .success()
    .unwrap();
    ldap.delete(&format!("uid=user00002,ou=people,{SUFFIX}"))
        .unwrap()
        .success()
        .unwrap();
    // The old RDN value goes, as in a directory whose naming attribute is single-valued:
    // kept, the entry would have two `uid`s, a data validation error for this bundle's
    // single-valued `uid` (the object would not be imported until it has one).
    ldap.modifydn(
        &format!("uid=user00003,ou=people,{SUFFIX}"),
        "uid=user00003-renamed",
        true,
        None,
    )
    .unwrap()
    .success()
    .unwrap();
    let before = s[&format!("uid=user00003,ou=people,{SUFFIX}")].0.clone();

    let t = std::time::Instant::now();
    let r = import(&dir);
    eprintln!("delta import: {:?}", t.elapsed());
    assert_eq!(r.status, StepStatus::Success, "{r:#?}");
    // The rename is an update of the same object (same anchor, new DN).
    assert_eq!(counts(&r), (1, 1, 1, 0), "{r:#?}");
    assert_eq!(r.renames, 1, "{r:#?}");
    let s = space(&dir);
    assert_eq!(s.len(), 10_000);
    assert_eq!(s[&format!("uid=user00001,ou=people,{SUFFIX}")].1, "Lead");
    assert!(!s.contains_key(&format!("uid=user00002,ou=people,{SUFFIX}")));
    assert!(!s.contains_key(&format!("uid=user00003,ou=people,{SUFFIX}")));
    assert_eq!(
        s[&format!("uid=user00003-renamed,ou=people,{SUFFIX}")].0,
        before
    );
    assert!(s.contains_key(&new));
    // The binary value stays binary.
    {
        let r = runner(&dir);
        let o = r
            .engine
            .state
            .cs()
            .iter()
            .find(|o| !o.gone && o.dn.eq_ignore_ascii_case(&new))
            .unwrap();
        let c = r.engine.plan.connector_index("dir").unwrap();
        let slot = r.engine.plan.connectors[c].types[0].slots["jpegPhoto"];
        assert!(
            matches!(&o.current[slot], idflow::value::Value::Bin(b) if b[..] == [0xff, 0xd8, 0x00]),
            "{:?}",
            o.current[slot]
        );
    }
    // ... and the next delta shows nothing new.
    assert_eq!(counts(&import(&dir)), (0, 0, 0, 0));
    assert_no_secret(&dir, &[&r]);
}

#[test]
fn container_filters_and_the_timestamp_delta_of_a_generic_directory() {
    let disabled = format!("ou=disabled,ou=people,{SUFFIX}");
    let seed = format!(
        "{}{}{}",
        people(20),
        person(100, &disabled),
        person(101, &disabled)
    );
    let Some(server) = Slapd::start("generic", &seed) else {
        return;
    };
    let dir = source_deployment(
        "ldap-generic",
        &server,
        "flavor = \"generic\"\nanchor_attribute = \"entryUUID\"\n",
    );
    let toml = dir.read("idflow.toml");
    dir.write(
        "idflow.toml",
        &format!("{toml}exclude = [\"{disabled}\"]\n"),
    );
    let r = import(&dir);
    assert_eq!(counts(&r), (20, 0, 0, 0), "{r:#?}");
    assert!(space(&dir).keys().all(|k| !k.contains("ou=disabled")));

    // modifyTimestamp has a resolution of a second: the change is made a second later.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let mut ldap = server.admin();
    ldap.modify(
        &format!("uid=user00004,ou=people,{SUFFIX}"),
        vec![Mod::Replace("title", HashSet::from(["Manager"]))],
    )
    .unwrap()
    .success()
    .unwrap();
    ldap.modify(
        &format!("uid=user00100,{disabled}"),
        vec![Mod::Replace("title", HashSet::from(["Manager"]))],
    )
    .unwrap()
    .success()
    .unwrap();
    let r = import(&dir);
    assert_eq!(r.status, StepStatus::Success, "{r:#?}");
    assert_eq!(counts(&r), (0, 1, 0, 0), "{r:#?}");
    assert_eq!(
        space(&dir)[&format!("uid=user00004,ou=people,{SUFFIX}")].1,
        "Manager"
    );
}

#[test]
fn a_stopped_server_fails_the_read_naming_it_and_a_restart_resumes() {
    let Some(mut server) = Slapd::start("stopped", &people(30)) else {
        return;
    };
    let dir = source_deployment(
        "ldap-stopped",
        &server,
        "connect_timeout = 2\ntimeout = 5\n",
    );
    assert_eq!(counts(&import(&dir)), (30, 0, 0, 0));
    server
        .admin()
        .delete(&format!("uid=user00005,ou=people,{SUFFIX}"))
        .unwrap()
        .success()
        .unwrap();
    server.stop();
    let r = import(&dir);
    assert_eq!(r.status, StepStatus::StoppedConnectivity, "{r:#?}");
    let notes = r.notes.join("\n");
    assert!(notes.contains(&server.url()), "{notes}");
    assert!(notes.contains("cannot connect"), "{notes}");
    assert_no_secret(&dir, &[&r]);
    // Nothing of the failed read was staged: the state is as it was.
    assert_eq!(space(&dir).len(), 30);

    server.restart();
    let r = import(&dir);
    assert_eq!(r.status, StepStatus::Success, "{r:#?}");
    assert_eq!(counts(&r), (0, 0, 1, 0), "{r:#?}");
    assert_eq!(space(&dir).len(), 29);
}

#[test]
fn bad_settings_are_located_and_a_wrong_password_names_the_server() {
    let Some(server) = Slapd::start("badpw", "") else {
        return;
    };
    let dir = source_deployment("ldap-badpw", &server, "");
    let toml = dir.read("idflow.toml");
    dir.write(
        "idflow.toml",
        &toml.replace(
            &format!("password_env = \"{PW_ENV}\""),
            "password_file = \"pw.txt\"",
        ),
    );
    dir.write("pw.txt", "not-the-password\n");
    let r = import(&dir);
    assert_eq!(r.status, StepStatus::StoppedConnectivity, "{r:#?}");
    let notes = r.notes.join("\n");
    assert!(notes.contains(&server.url()), "{notes}");
    assert!(notes.contains("invalidCredentials"), "{notes}");
    assert!(!notes.contains("not-the-password"), "{notes}");

    // Settings errors name their keys.
    dir.write(
        "idflow.toml",
        &toml.replace(&server.url(), "http://example.com").replace(
            "page_size = 500",
            "page_size = 0\nstarttls = true\nflavor = \"novell\"",
        ),
    );
    let errors = idflow::config::load(&PathBuf::from(dir.config())).unwrap_err();
    let shown: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
    for key in ["url", "page_size", "flavor"] {
        assert!(
            shown
                .iter()
                .any(|e| e.starts_with(&format!("connectors.\"dir\".{key}:"))),
            "{key}: {shown:#?}"
        );
    }
}

const ROUND_TRIP_BUNDLE: &str = r#"bundle "ldap-target"

metaverse {
  object person {
    accountName string
    givenName   string
    sn          string
    displayName string
    mail        string
  }
}

connector "ad" ad {
  object user anchor objectGUID {
    objectGUID         binary
    sAMAccountName     string
    givenName          string
    sn                 string
    displayName        string
    mail               string
    userAccountControl integer
  }
}

connector "dir" ldap {
  object inetOrgPerson anchor entryUUID {
    entryUUID   string
    uid         string
    cn          string
    sn          string
    givenName   string
    displayName string
    mail        string
  }
}

inbound rule "In from AD" {
  connector "ad"
  source user
  target person
  link provision
  precedence 1
  scope {
    sn ISNOTNULL
  }
  join {
    sAMAccountName = accountName
  }
  flow accountName <- [sAMAccountName]
  flow givenName   <- [givenName]
  flow sn          <- [sn]
  flow displayName <- [displayName]
  flow mail        <- [mail]
}

inbound rule "Join the directory" {
  connector "dir"
  source inetOrgPerson
  target person
  link join
  precedence 2
  join {
    uid = accountName
  }
}

outbound rule "Out to the directory" {
  connector "dir"
  source person
  target inetOrgPerson
  link provision
  precedence 10
  join {
    accountName = uid
  }
  flow uid         <- [accountName]
  flow cn          <- [displayName]
  flow sn          <- [sn]
  flow givenName   <- [givenName]
  flow displayName <- [displayName]
  flow mail        <- [mail]
  flow dn          <- "uid=" & EscapeDNComponent([accountName]) & ",ou=people,dc=example,dc=com"
}
"#;

/// The uid → (mail, entryUUID) of the people on the server.
fn server_people(server: &Slapd) -> BTreeMap<String, (String, String)> {
    let mut ldap = server.admin();
    let (entries, _) = ldap
        .search(
            &format!("ou=people,{SUFFIX}"),
            Scope::OneLevel,
            "(objectClass=inetOrgPerson)",
            vec!["uid", "mail", "entryUUID"],
        )
        .unwrap()
        .success()
        .unwrap();
    entries
        .into_iter()
        .map(|e| {
            let e = SearchEntry::construct(e);
            let one = |a: &str| {
                e.attrs
                    .get(a)
                    .and_then(|v| v.first())
                    .cloned()
                    .unwrap_or_default()
            };
            (one("uid"), (one("mail"), one("entryUUID")))
        })
        .collect()
}

#[test]
fn export_round_trip_from_a_generated_ad_to_slapd() {
    let Some(mut server) = Slapd::start("export", "") else {
        return;
    };
    let dir = export_deployment(
        "ldap-export",
        ROUND_TRIP_BUNDLE,
        &idflow::r#gen::generate(50, 5, 7),
        &server,
        &format!("name = \"ou=people,{SUFFIX}\"\n"),
    );
    let reports = cycle(&dir);
    let export = step(&reports, "export", "dir");
    assert_eq!(export.status, StepStatus::Success, "{export:#?}");
    let n = export.adds;
    assert!(n >= 50, "{export:#?}");
    let on_server = server_people(&server);
    assert_eq!(on_server.len(), n);
    // The applied adds were recorded with the anchors the server assigned.
    {
        let r = runner(&dir);
        let c = r.engine.plan.connector_index("dir").unwrap();
        let anchors: HashSet<String> = r
            .engine
            .state
            .cs()
            .iter()
            .filter(|o| o.connector == c && !o.gone)
            .filter_map(|o| o.anchor.as_ref()?.as_str().map(str::to_string))
            .collect();
        let uuids: HashSet<String> = on_server.values().map(|(_, u)| u.clone()).collect();
        assert_eq!(anchors, uuids);
    }
    // The next run reads the directory back and changes nothing.
    let reports = cycle(&dir);
    for r in &reports {
        assert_eq!(counts(r), (0, 0, 0, 0), "{r:#?}");
        assert_eq!(r.status, StepStatus::Success, "{r:#?}");
    }

    // A changed mail in AD flows to the directory as a modify; a user gone from AD is
    // deleted there. The server is stopped in the middle: the export fails naming it, and
    // the restart resumes.
    let ad = dir.read("ad.ldif");
    let (uid, (mail, _)) = on_server.iter().find(|(_, (m, _))| !m.is_empty()).unwrap();
    let uid = uid.clone();
    dir.write("ad.ldif", &ad.replace(mail.as_str(), "changed@example.com"));
    server.stop();
    let reports = cycle(&dir);
    let r = step(&reports, "import", "dir");
    assert_eq!(r.status, StepStatus::StoppedConnectivity, "{r:#?}");
    assert!(r.notes.join("\n").contains(&server.url()), "{r:#?}");
    server.restart();
    let reports = cycle(&dir);
    let export = step(&reports, "export", "dir");
    assert_eq!(export.status, StepStatus::Success, "{export:#?}");
    assert!(export.updates >= 1, "{export:#?}");
    assert_eq!(server_people(&server)[&uid].0, "changed@example.com");
    for r in &cycle(&dir) {
        assert_eq!(counts(r), (0, 0, 0, 0), "{r:#?}");
    }
    assert_no_secret(&dir, &[]);
}

const TREE_BUNDLE: &str = r#"bundle "ldap-tree"

metaverse {
  object person {
    uid string
  }
}

connector "dir" ldap {
  object organizationalUnit anchor entryUUID {
    entryUUID string
    ou        string
  }
  object inetOrgPerson anchor entryUUID {
    entryUUID string
    uid       string
    cn        string
    sn        string
    mail      string multi
    title     string
  }
}
"#;

/// A deployment exporting the generated AD export `ad` through `bundle` into `server`, in the
/// partition `partition` (the lines of its `[[connectors.dir.partitions]]` table).
fn export_deployment(name: &str, bundle: &str, ad: &str, server: &Slapd, partition: &str) -> Dir {
    set_password();
    let dir = Dir::new(name);
    std::fs::create_dir_all(dir.path("bundle")).unwrap();
    dir.write("bundle/bundle.idf", bundle);
    dir.write("ad.ldif", ad);
    dir.write(
        "idflow.toml",
        &format!(
            "bundle = \"bundle\"\nstate = \"idflow.db\"\n\n\
             [connectors.ad]\nkind = \"ldif\"\npath = \"ad.ldif\"\n\n\
             [connectors.dir]\nkind = \"ldap\"\nurl = \"{}\"\nbind_dn = \"{}\"\n\
             password_env = \"{PW_ENV}\"\n\
             [[connectors.dir.partitions]]\n{partition}",
            server.url(),
            slapd::ADMIN
        ),
    );
    dir
}

/// The connector of a deployment with [`TREE_BUNDLE`], opened as the runner would.
fn tree_connector(name: &str, server: &Slapd) -> (Dir, Box<dyn idflow::connector::Connector>) {
    set_password();
    let dir = Dir::new(name);
    std::fs::create_dir_all(dir.path("bundle")).unwrap();
    dir.write("bundle/bundle.idf", TREE_BUNDLE);
    dir.write(
        "idflow.toml",
        &format!(
            "bundle = \"bundle\"\n\n[connectors.dir]\nkind = \"ldap\"\nurls = [\"ldap://127.0.0.1:1/\", \"{}\"]\n\
             bind_dn = \"{}\"\npassword_env = \"{PW_ENV}\"\nconnect_timeout = 2\n\
             [[connectors.dir.partitions]]\nname = \"{SUFFIX}\"\n",
            server.url(),
            slapd::ADMIN
        ),
    );
    let r = runner(&dir);
    let c = r.engine.plan.connector_index("dir").unwrap();
    let cfg = r.deployment.connector("dir").unwrap().clone();
    let conn = idflow::connector::open(&cfg, &r.engine.plan.connectors[c]).unwrap();
    (dir, conn)
}

fn applied(r: &idflow::connector::ExportResult) -> bool {
    matches!(r, idflow::connector::ExportResult::Applied { .. })
}

#[test]
fn export_orders_the_tree_renames_and_maps_result_codes() {
    use idflow::connector::{ExportErrorCategory, ExportResult};
    use idflow::engine::export::{AttrOp, ExportDelta};
    use idflow::engine::model::ExportOp;
    use idflow::value::Value;
    let Some(server) = Slapd::start("tree", "") else {
        return;
    };
    // The first URL refuses connections: the connector fails over to the second.
    let (_dir, mut conn) = tree_connector("ldap-tree", &server);
    let ou = format!("ou=sales,{SUFFIX}");
    let alice = format!("uid=alice,{ou}");
    let person = |dn: &str, uid: &str| {
        ExportDelta::new(ExportOp::Add, "inetOrgPerson", dn)
            .with("uid", AttrOp::Replace(Value::from(uid)))
            .with("cn", AttrOp::Replace(Value::from(uid)))
            .with("sn", AttrOp::Replace(Value::from("S")))
            .with(
                "mail",
                AttrOp::Replace(Value::many(vec![
                    Value::from(format!("{uid}@a.example")),
                    Value::from(format!("{uid}@b.example")),
                ])),
            )
    };
    // The child comes first in the list: the parent is created first all the same.
    let deltas = vec![
        person(&alice, "alice"),
        ExportDelta::new(ExportOp::Add, "organizationalUnit", &ou)
            .with("ou", AttrOp::Replace(Value::from("sales"))),
        // No sn: the schema refuses it.
        ExportDelta::new(ExportOp::Add, "inetOrgPerson", &format!("uid=bad,{ou}"))
            .with("uid", AttrOp::Replace(Value::from("bad")))
            .with("cn", AttrOp::Replace(Value::from("bad"))),
    ];
    let results = conn.export(&deltas).unwrap();
    assert!(applied(&results[0]) && applied(&results[1]), "{results:#?}");
    let ExportResult::Applied {
        anchor: Some(Value::Str(a)),
    } = &results[0]
    else {
        panic!("{results:#?}")
    };
    assert_eq!(a.len(), 36);
    assert!(
        matches!(
            &results[2],
            ExportResult::Failed { category: ExportErrorCategory::ConstraintViolation, detail }
                if detail.contains("objectClassViolation")
        ),
        "{results:#?}"
    );

    // Sent again (a run killed before it recorded the results): the same adds are applied;
    // an add of an existing DN with other values is refused.
    let mut other = person(&alice, "alice");
    other.changes[3].op = AttrOp::Replace(Value::from("someone@else.example"));
    let results = conn.export(&[person(&alice, "alice"), other]).unwrap();
    assert!(applied(&results[0]), "{results:#?}");
    assert!(
        matches!(
            &results[1],
            ExportResult::Failed {
                category: ExportErrorCategory::DuplicateAttribute,
                detail,
            } if detail.contains("entryAlreadyExists")
        ),
        "{results:#?}"
    );

    // Value adds and deletes, a replace, a clear, and a move to another container.
    let mut ldap = server.admin();
    ldap.add(
        &format!("ou=east,{SUFFIX}"),
        vec![
            ("objectClass", HashSet::from(["organizationalUnit"])),
            ("ou", HashSet::from(["east"])),
        ],
    )
    .unwrap()
    .success()
    .unwrap();
    let moved = format!("uid=alice2,ou=east,{SUFFIX}");
    let mut update = ExportDelta::new(ExportOp::Update, "inetOrgPerson", &alice)
        .with("mail", AttrOp::Add(vec![Value::from("alice@c.example")]))
        .with("mail", AttrOp::Remove(vec![Value::from("alice@a.example")]))
        .with("title", AttrOp::Replace(Value::from("Lead")))
        .with("cn", AttrOp::Replace(Value::from("Alice")));
    update.new_dn = Some(moved.as_str().into());
    let results = conn.export(&[update.clone()]).unwrap();
    assert!(applied(&results[0]), "{results:#?}");
    let (entries, _) = ldap
        .search(
            &moved,
            Scope::Base,
            "(objectClass=*)",
            vec!["mail", "title", "cn", "uid"],
        )
        .unwrap()
        .success()
        .unwrap();
    let e = SearchEntry::construct(entries.into_iter().next().unwrap());
    let mut mail = e.attrs["mail"].clone();
    mail.sort();
    assert_eq!(mail, ["alice@b.example", "alice@c.example"]);
    assert_eq!(e.attrs["title"], ["Lead"]);
    assert_eq!(e.attrs["uid"], ["alice2"]);

    // Deletes: the parent is listed first, its child is deleted first. A delete of an entry
    // that is gone counts as applied.
    let east = format!("ou=east,{SUFFIX}");
    let results = conn
        .export(&[
            ExportDelta::new(ExportOp::Delete, "organizationalUnit", &east),
            ExportDelta::new(ExportOp::Delete, "inetOrgPerson", &moved),
            ExportDelta::new(
                ExportOp::Delete,
                "inetOrgPerson",
                &format!("uid=nobody,{ou}"),
            ),
        ])
        .unwrap();
    assert!(results.iter().all(applied), "{results:#?}");
    let (entries, _) = ldap
        .search(
            SUFFIX,
            Scope::Subtree,
            "(|(ou=east)(uid=alice2))",
            vec!["1.1"],
        )
        .unwrap()
        .success()
        .unwrap();
    assert!(entries.is_empty());

    // The server goes away: the changes are answered "retry" (nothing lost, nothing staged
    // as applied), or the export fails as a whole when no server answers at all.
    drop(server);
    let r = conn.export(&[person(&format!("uid=carol,{ou}"), "carol")]);
    match r {
        Err(e) => assert!(e.to_string().contains("cannot connect"), "{e}"),
        Ok(results) => assert!(
            matches!(&results[0], ExportResult::Retry { .. }),
            "{results:#?}"
        ),
    }
}

#[test]
fn starttls_and_ldaps_verify_the_server_against_the_ca_file() {
    let Some(server) = Slapd::start_tls("tls", &people(5)) else {
        return;
    };
    let ca = server.dir.join("ca.crt").display().to_string();
    let other = server.dir.join("other-ca.crt").display().to_string();
    let dir = source_deployment("ldap-tls", &server, "");
    let plain = dir.read("idflow.toml");
    let with = |url: &str, extra: &str| {
        let text = plain.replace(
            &format!("url = \"{}\"", server.url()),
            &format!("url = \"{url}\"\n{extra}"),
        );
        dir.write("idflow.toml", &text);
        let _ = std::fs::remove_file(dir.path("idflow.db"));
    };
    // ldaps:// and StartTLS, verified against the test authority.
    with(&server.ldaps_url(), &format!("ca_file = {ca:?}"));
    let r = import(&dir);
    assert_eq!(counts(&r), (5, 0, 0, 0), "{r:#?}");
    with(&server.url(), &format!("ca_file = {ca:?}\nstarttls = true"));
    let r = import(&dir);
    assert_eq!(counts(&r), (5, 0, 0, 0), "{r:#?}");
    // A certificate of another authority is refused, over ldaps:// and StartTLS alike; the
    // system's authorities do not know the test one either.
    for (url, extra) in [
        (server.ldaps_url(), format!("ca_file = {other:?}")),
        (
            server.url(),
            format!("ca_file = {other:?}\nstarttls = true"),
        ),
        (server.ldaps_url(), String::new()),
    ] {
        with(&url, &extra);
        let r = import(&dir);
        assert_eq!(
            r.status,
            StepStatus::StoppedConnectivity,
            "{url} {extra}: {r:#?}"
        );
        let notes = r.notes.join("\n");
        assert!(notes.contains(&url), "{notes}");
        assert!(notes.to_lowercase().contains("certificate"), "{notes}");
    }
    // tls_insecure (tests only) skips the verification.
    with(&server.ldaps_url(), "tls_insecure = true");
    let r = import(&dir);
    assert_eq!(counts(&r), (5, 0, 0, 0), "{r:#?}");
}

#[test]
fn idflow_run_and_state_output_never_show_the_bind_password() {
    let Some(server) = Slapd::start("cli", &people(3)) else {
        return;
    };
    let dir = source_deployment("ldap-cli", &server, "");
    let run = |args: &[&str]| {
        let out = std::process::Command::new(common::BIN)
            .args(args)
            .current_dir(&dir.0)
            .env("NO_COLOR", "1")
            .env(PW_ENV, PASSWORD)
            .output()
            .unwrap();
        let text = format!(
            "{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!text.contains(PASSWORD), "{args:?}: {text}");
        (out.status.code(), text)
    };
    let (code, text) = run(&["run"]);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("dir"), "{text}");
    for args in [
        &["state", "runs"][..],
        &["state", "errors"],
        &["state", "pending-exports"],
        &["state", "search", "user00001"],
    ] {
        run(args);
    }
    // A server that is gone: the error names it, and holds no secret either.
    drop(server);
    let (code, text) = run(&["run"]);
    assert_ne!(code, Some(0), "{text}");
    assert!(text.contains("cannot connect"), "{text}");
    assert_no_secret(&dir, &[]);
}

/// Counts what a read hands over and drops it.
#[derive(Default)]
struct Count(usize);

impl idflow::connector::ImportSink for Count {
    fn page(
        &mut self,
        changes: Vec<idflow::engine::import::ImportChange>,
    ) -> Result<(), idflow::connector::ConnectorError> {
        self.0 += changes.len();
        Ok(())
    }

    fn reject(&mut self, r: idflow::connector::Rejected) {
        panic!("{r:?}");
    }
}

/// The read speed of a 100,000-entry directory: a raw paged `ldapsearch` of the entries, the
/// connector's read alone, and idflow's full import into the state, in one run. Run it with
/// `cargo test --release --test ldap -- --ignored --nocapture import_speed`.
#[test]
#[ignore]
fn import_speed_100k() {
    let n: usize = std::env::var("IDFLOW_LDAP_PERF_ENTRIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let t = std::time::Instant::now();
    let Some(server) = Slapd::start("perf", &people(n)) else {
        return;
    };
    eprintln!("slapadd {n} entries and start: {:?}", t.elapsed());
    let dir = source_deployment("ldap-perf", &server, "");
    let raw = || {
        let t = std::time::Instant::now();
        let out = std::process::Command::new("ldapsearch")
            .args([
                "-x",
                "-LLL",
                "-H",
                &server.url(),
                "-D",
                slapd::ADMIN,
                "-w",
                PASSWORD,
            ])
            .args([
                "-b",
                &format!("ou=people,{SUFFIX}"),
                "-E",
                "pr=500/noprompt",
            ])
            .args(["(|(objectClass=inetOrgPerson))"])
            .args(["cn", "entryUUID", "jpegPhoto", "mail", "sn", "title", "uid"])
            .args(["objectClass", "structuralObjectClass"])
            .output()
            .expect("ldapsearch runs");
        assert!(out.status.success());
        let entries = out.stdout.windows(4).filter(|w| w == b"dn: ").count();
        assert_eq!(entries, n);
        t.elapsed()
    };
    let r = runner(&dir);
    let c = r.engine.plan.connector_index("dir").unwrap();
    let cfg = r.deployment.connector("dir").unwrap().clone();
    let mut conn = idflow::connector::open(&cfg, &r.engine.plan.connectors[c]).unwrap();
    drop(r);
    let read = |conn: &mut Box<dyn idflow::connector::Connector>| {
        let t = std::time::Instant::now();
        let mut count = Count::default();
        conn.import(idflow::connector::ImportMode::Full, &mut count)
            .unwrap();
        assert_eq!(count.0, n);
        t.elapsed()
    };
    // Warm the server's cache once. Then rounds of the raw read, the connector's read alone,
    // and the import step into a fresh state (read, stage, save; opening the deployment is not
    // counted), one after the other, so that each round measures the three under the same
    // load of the machine.
    raw();
    let rounds: usize = std::env::var("IDFLOW_LDAP_PERF_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5)
        .max(1);
    let fresh = || {
        for f in ["idflow.db", "idflow.db-wal", "idflow.db-shm"] {
            let _ = std::fs::remove_file(dir.path(f));
        }
    };
    let secs = |d: std::time::Duration| d.as_secs_f64();
    let mut table = Vec::new();
    for round in 1..=rounds {
        let before = server.cpu();
        let raw_t = raw();
        let raw_server = server.cpu() - before;
        let read_t = read(&mut conn);
        fresh();
        let mut r = runner(&dir);
        let (own, server_cpu) = (slapd::cpu_of("/proc/self/stat"), server.cpu());
        let t = std::time::Instant::now();
        let report = r.import("dir", true, 0).unwrap();
        let step_t = t.elapsed();
        let (own, server_cpu) = (
            slapd::cpu_of("/proc/self/stat") - own,
            server.cpu() - server_cpu,
        );
        assert_eq!(counts(&report), (n, 0, 0, 0));
        drop(r);
        eprintln!(
            "round {round}: raw paged ldapsearch {raw_t:.2?} (slapd CPU {raw_server:?}); \
             connector read {read_t:.2?} ({:.0}% of raw); import step (read, stage, save) \
             {step_t:.2?} ({:.0}% of raw; CPU idflow {own:?}, slapd {server_cpu:?})",
            100.0 * secs(raw_t) / secs(read_t),
            100.0 * secs(raw_t) / secs(step_t),
        );
        table.push([secs(raw_t), secs(read_t), secs(step_t)]);
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        let m = v.len() / 2;
        if v.len() % 2 == 1 {
            v[m]
        } else {
            (v[m - 1] + v[m]) / 2.0
        }
    };
    // The median of the rounds' ratios, and the best time of each kind.
    let share = |k: usize| median(table.iter().map(|r| 100.0 * r[0] / r[k]).collect());
    let best = |k: usize| table.iter().map(|r| r[k]).fold(f64::INFINITY, f64::min);
    let (raw_best, read_best, step_best) = (best(0), best(1), best(2));
    eprintln!(
        "{rounds} rounds, {n} entries. Median of the rounds' ratios: connector read {:.0}% of raw, \
         import step {:.0}% of raw.\nBest of the rounds: raw {raw_best:.3} s ({:.0}/s), connector \
         read {read_best:.3} s ({:.0}%), import step {step_best:.3} s ({:.0}/s, {:.0}% of raw)",
        share(1),
        share(2),
        n as f64 / raw_best,
        100.0 * raw_best / read_best,
        n as f64 / step_best,
        100.0 * raw_best / step_best,
    );
    // A whole first cycle (open, read, stage, sync, save), for scale.
    fresh();
    let t = std::time::Instant::now();
    let report = import(&dir);
    let import_t = t.elapsed();
    assert_eq!(counts(&report), (n, 0, 0, 0));
    eprintln!(
        "first cycle (open, read, stage, sync, save): {import_t:.2?} ({:.0}% of the best raw read)",
        100.0 * raw_best / secs(import_t)
    );
}

const GROUPS_BUNDLE: &str = r#"bundle "ldap-groups"

metaverse {
  object person {
    accountName string
    sn          string
  }
  object group {
    accountName string
    member      reference multi
  }
}

connector "ad" ad {
  object user anchor objectGUID {
    objectGUID     binary
    sAMAccountName string
    sn             string
  }
  object group anchor objectGUID {
    objectGUID     binary
    sAMAccountName string
    member         reference multi
  }
}

connector "dir" ldap {
  object inetOrgPerson anchor entryUUID {
    entryUUID string
    uid       string
    cn        string
    sn        string
  }
  object groupOfNames anchor entryUUID {
    entryUUID string
    cn        string
    member    reference multi
  }
}

inbound rule "In from AD" {
  connector "ad"
  source user
  target person
  link provision
  precedence 1
  scope {
    sn ISNOTNULL
  }
  join {
    sAMAccountName = accountName
  }
  flow accountName <- [sAMAccountName]
  flow sn          <- [sn]
}

inbound rule "Groups from AD" {
  connector "ad"
  source group
  target group
  link provision
  precedence 2
  join {
    sAMAccountName = accountName
  }
  flow accountName <- [sAMAccountName]
  flow member      <- [member]
}

inbound rule "Join people" {
  connector "dir"
  source inetOrgPerson
  target person
  link join
  precedence 3
  join {
    uid = accountName
  }
}

inbound rule "Join groups" {
  connector "dir"
  source groupOfNames
  target group
  link join
  precedence 4
  join {
    cn = accountName
  }
}

outbound rule "People to the directory" {
  connector "dir"
  source person
  target inetOrgPerson
  link provision
  precedence 10
  join {
    accountName = uid
  }
  flow uid <- [accountName]
  flow cn  <- [accountName]
  flow sn  <- [sn]
  flow dn  <- "uid=" & EscapeDNComponent([accountName]) & ",ou=people,dc=example,dc=com"
}

outbound rule "Groups to the directory" {
  connector "dir"
  source group
  target groupOfNames
  link provision
  precedence 11
  join {
    accountName = cn
  }
  flow cn     <- [accountName]
  flow member <- [member]
  flow dn     <- "cn=" & EscapeDNComponent([accountName]) & ",ou=groups,dc=example,dc=com"
}
"#;

#[test]
fn groups_export_with_member_references_and_read_back_unchanged() {
    let Some(server) = Slapd::start("groups", "") else {
        return;
    };
    let dir = export_deployment(
        "ldap-groups",
        GROUPS_BUNDLE,
        &idflow::r#gen::generate(40, 4, 3),
        &server,
        &format!(
            "name = \"{SUFFIX}\"\n\
             include = [\"ou=people,{SUFFIX}\", \"ou=groups,{SUFFIX}\"]\n"
        ),
    );
    let reports = cycle(&dir);
    let export = step(&reports, "export", "dir");
    assert_eq!(export.status, StepStatus::Success, "{export:#?}");
    let mut ldap = server.admin();
    let (groups, _) = ldap
        .search(
            &format!("ou=groups,{SUFFIX}"),
            Scope::OneLevel,
            "(objectClass=groupOfNames)",
            vec!["cn", "member"],
        )
        .unwrap()
        .success()
        .unwrap();
    assert!(!groups.is_empty(), "{export:#?}");
    let members: usize = groups
        .into_iter()
        .map(|g| {
            SearchEntry::construct(g)
                .attrs
                .get("member")
                .map_or(0, Vec::len)
        })
        .sum();
    assert!(members > 0);
    // Reading the groups back sends nothing. ldap3 hands a change's values over as a set, so
    // the server keeps multi-valued members in an order of its own: the first read records
    // that order (an update of each group with members, no export); after it, nothing changes.
    let second = cycle(&dir);
    for r in &second {
        assert_eq!((r.adds, r.deletes, r.errors), (0, 0, 0), "{r:#?}");
        assert_eq!(r.status, StepStatus::Success, "{r:#?}");
    }
    assert_eq!(counts(step(&second, "export", "dir")), (0, 0, 0, 0));
    assert!(step(&second, "import", "dir").updates <= 4, "{second:#?}");
    for r in &cycle(&dir) {
        assert_eq!(counts(r), (0, 0, 0, 0), "{r:#?}");
        assert_eq!(r.status, StepStatus::Success, "{r:#?}");
    }
}

#[test]
fn schema_pull_writes_the_connector_schema_from_the_subschema() {
    let Some(server) = Slapd::start("schema", "") else {
        return;
    };
    let dir = source_deployment("ldap-schema", &server, "");
    let out = std::process::Command::new(common::BIN)
        .args(["schema", "pull", "dir", "--out", "pulled"])
        .current_dir(&dir.0)
        .env("NO_COLOR", "1")
        .env(PW_ENV, PASSWORD)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(!text.contains(PASSWORD), "{text}");
    let schema = dir.read("pulled/dir.idf");
    let line = |l: &str| {
        schema
            .lines()
            .any(|x| x.split_whitespace().collect::<Vec<_>>().join(" ") == l)
    };
    assert!(schema.contains("connector \"dir\" ldap {"), "{schema}");
    assert!(line("object inetOrgPerson anchor entryUUID {"), "{schema}");
    // inetOrgPerson's own attributes and its superclasses' (organizationalPerson, person),
    // typed from their syntaxes (inherited through SUP: `title` is a `name`); the ones the
    // bundle declares keep their declared types.
    for want in [
        "cn string",
        "jpegPhoto binary",
        "mail string",
        "manager reference multi",
        "seeAlso reference multi",
        "title string",
        "telephoneNumber string multi",
        "userCertificate binary multi",
        "displayName string",
        "ou string multi",
        "entryUUID string",
    ] {
        assert!(line(want), "{want}: {schema}");
    }
    assert!(!schema.contains("objectClass"), "{schema}");
    assert!(!line("dn string"), "{schema}");
    // The bundle's own file is untouched.
    assert!(dir.read("bundle/bundle.idf").contains("jpegPhoto binary"));
}
