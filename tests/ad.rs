//! The Active Directory side of the LDAP connector against a Samba AD domain controller
//! (tests/ad/samba.rs runs one for the whole test binary; the tests take turns): objectGUID
//! anchors and userAccountControl from a full import, DirSync deltas after adds, modifies,
//! deletes, renames and moves, ranged retrieval of a large group, the ms-DS-ConsistencyGuid
//! writeback of the default rules, and a password set by an export.

use idflow::runner::{CycleOptions, StepReport, StepStatus};
use ldap3::{Mod, Scope, SearchEntry};
use std::collections::{BTreeMap, HashSet};

mod common;
#[path = "ad/samba.rs"]
mod samba;
use common::{Dir, counts, runner, step};
use samba::{BASE, PASSWORD, Samba};

/// The environment variable the tests' idflow.toml names for the bind password.
const PW_ENV: &str = "IDFLOW_TEST_AD_PASSWORD";

fn set_password() {
    common::set_env_once(PW_ENV, PASSWORD);
}

const BUNDLE: &str = r#"bundle "ad-source"

metaverse {
  object person {
    account     string
    description string
    uac         integer
  }
  object team {
    account string
    members reference multi
  }
}

connector "ad" ad {
  object user anchor objectGUID {
    objectGUID         binary
    sAMAccountName     string
    cn                 string
    description        string
    userAccountControl integer
  }
  object group anchor objectGUID {
    objectGUID     binary
    sAMAccountName string
    member         reference multi
  }
}

inbound rule "In from AD - users" {
  connector "ad"
  source user
  target person
  link provision
  precedence 1
  join {
    sAMAccountName = account
  }
  flow account     <- [sAMAccountName]
  flow description <- [description]
  flow uac         <- [userAccountControl]
}

inbound rule "In from AD - groups" {
  connector "ad"
  source group
  target team
  link provision
  precedence 1
  join {
    sAMAccountName = account
  }
  flow account <- [sAMAccountName]
  flow members <- [member]
}
"#;

/// A deployment reading the OU `ou` (under the domain) of the domain controller.
fn deployment(name: &str, ou: &str) -> Dir {
    set_password();
    let dir = Dir::new(name);
    std::fs::create_dir_all(dir.path("bundle")).unwrap();
    dir.write("bundle/bundle.idf", BUNDLE);
    dir.write(
        "idflow.toml",
        &format!(
            "bundle = \"bundle\"\nstate = \"idflow.db\"\ndelete_threshold = 100000\n\n\
             [connectors.ad]\nkind = \"ad\"\nurl = \"{}\"\nbind_dn = \"{}\"\n\
             password_env = \"{PW_ENV}\"\npage_size = 200\n\n\
             [[connectors.ad.partitions]]\nname = \"{BASE}\"\ninclude = [\"{ou}\"]\n",
            samba::URL,
            samba::ADMIN
        ),
    );
    dir
}

fn import(dir: &Dir) -> StepReport {
    let reports = runner(dir).cycle(CycleOptions::default()).unwrap();
    let r = step(&reports, "import", "ad").clone();
    assert_eq!(r.status, StepStatus::Success, "{r:#?}");
    r
}

/// The objects of the connector space: lower-cased DN → (anchor bytes, attribute → value
/// as text).
fn space(dir: &Dir) -> BTreeMap<String, (Vec<u8>, BTreeMap<String, String>)> {
    let r = runner(dir);
    let c = r.engine.plan.connector_index("ad").unwrap();
    let mut out = BTreeMap::new();
    for o in r.engine.state.cs().iter() {
        if o.connector != c || o.gone {
            continue;
        }
        let ty = &r.engine.plan.connectors[c].types[o.object_type];
        let anchor = match o.anchor.as_ref() {
            Some(idflow::value::Value::Bin(b)) => b.to_vec(),
            other => panic!("not a binary anchor: {other:?}"),
        };
        let mut attrs = BTreeMap::new();
        for (name, slot) in &ty.slots {
            let v = &o.current[*slot];
            if !v.is_null() {
                attrs.insert(name.clone(), text(v));
            }
        }
        out.insert(o.dn.to_string().to_lowercase(), (anchor, attrs));
    }
    out
}

/// A value as text (several values joined with `|`).
fn text(v: &idflow::value::Value) -> String {
    use idflow::value::Value;
    match v {
        Value::Str(s) | Value::Ref(s) => s.to_string(),
        Value::Num(n) => n.to_string(),
        Value::Many(vs) => vs.iter().map(text).collect::<Vec<_>>().join("|"),
        other => format!("{other:?}"),
    }
}

/// Adds users `name0..name{n}` (sAMAccountName `{name}{i}`) under `ou`, with one connection.
fn add_users(l: &mut ldap3::LdapConn, ou: &str, name: &str, n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            let dn = format!("CN={name} {i},{ou}");
            let sam = format!("{name}{i}");
            l.add(
                &dn,
                vec![
                    ("objectClass", HashSet::from(["user"])),
                    ("sAMAccountName", HashSet::from([sam.as_str()])),
                    ("description", HashSet::from(["seeded"])),
                ],
            )
            .unwrap()
            .success()
            .unwrap();
            dn
        })
        .collect()
}

fn add_ou(l: &mut ldap3::LdapConn, dn: &str) {
    l.add(
        dn,
        vec![("objectClass", HashSet::from(["organizationalUnit"]))],
    )
    .unwrap()
    .success()
    .unwrap();
}

/// The objectGUID of an entry, as the server reads it.
fn guid(l: &mut ldap3::LdapConn, dn: &str) -> Vec<u8> {
    let (rs, _) = l
        .search(dn, Scope::Base, "(objectClass=*)", vec!["objectGUID"])
        .unwrap()
        .success()
        .unwrap();
    let e = SearchEntry::construct(rs.into_iter().next().unwrap());
    e.bin_attrs["objectGUID"][0].clone()
}

#[test]
fn full_import_gives_guid_anchors_then_dirsync_deltas_follow_changes() {
    let Some((_lock, dc)) = Samba::get() else {
        return;
    };
    let t = std::time::Instant::now();
    let mut l = dc.admin();
    let ou = format!("OU=Delta,{BASE}");
    let sub = format!("OU=Sub,{ou}");
    let out = format!("OU=Elsewhere,{BASE}");
    add_ou(&mut l, &ou);
    add_ou(&mut l, &sub);
    add_ou(&mut l, &out);
    let users = add_users(&mut l, &ou, "dsu", 200);
    let outside = add_users(&mut l, &out, "dso", 3);
    let group = format!("CN=Delta Group,{ou}");
    l.add(
        &group,
        vec![
            ("objectClass", HashSet::from(["group"])),
            ("sAMAccountName", HashSet::from(["deltagroup"])),
            (
                "member",
                HashSet::from([users[0].as_str(), users[1].as_str()]),
            ),
        ],
    )
    .unwrap()
    .success()
    .unwrap();
    eprintln!("seeded 205 objects: {:?}", t.elapsed());

    let dir = deployment("ad-delta", &ou);
    // The first read (no cookie yet): every object in the OU, and only those.
    let r = import(&dir);
    assert_eq!(counts(&r), (201, 0, 0, 0), "{r:#?}");
    let s = space(&dir);
    assert_eq!(s.len(), 201);
    let u0 = &s[&users[0].to_lowercase()];
    assert_eq!(
        u0.0,
        guid(&mut l, &users[0]),
        "the anchor is the objectGUID"
    );
    assert_eq!(u0.0.len(), 16);
    // Created without a password: a normal account, disabled, password not required.
    assert_eq!(u0.1["userAccountControl"], "546", "{u0:?}");
    assert_eq!(u0.1["description"], "seeded");
    let g = &s[&group.to_lowercase()];
    assert_eq!(g.1["sAMAccountName"], "deltagroup");
    assert!(g.1["member"].contains("dsu 1"), "{g:?}");

    // Nothing changed: an empty delta.
    let r = import(&dir);
    assert_eq!(counts(&r), (0, 0, 0, 0), "{r:#?}");

    // An add, modifies (a description, a cleared description, a userAccountControl, a
    // member), a delete, a rename, a move within the OU, a move out of it and one into it.
    let fresh = add_users(&mut l, &ou, "fresh", 1);
    l.modify(
        &users[2],
        vec![Mod::Replace("description", HashSet::from(["changed"]))],
    )
    .unwrap()
    .success()
    .unwrap();
    l.modify(&users[3], vec![Mod::Delete("description", HashSet::new())])
        .unwrap()
        .success()
        .unwrap();
    l.modify(
        &users[4],
        vec![Mod::Replace("userAccountControl", HashSet::from(["66082"]))],
    )
    .unwrap()
    .success()
    .unwrap();
    l.modify(
        &group,
        vec![Mod::Add("member", HashSet::from([users[9].as_str()]))],
    )
    .unwrap()
    .success()
    .unwrap();
    l.delete(&users[5]).unwrap().success().unwrap();
    l.modifydn(&users[6], "CN=Renamed Six", true, None)
        .unwrap()
        .success()
        .unwrap();
    l.modifydn(&users[7], "CN=dsu 7", true, Some(&sub))
        .unwrap()
        .success()
        .unwrap();
    l.modifydn(&users[8], "CN=dsu 8", true, Some(&out))
        .unwrap()
        .success()
        .unwrap();
    l.modifydn(&outside[0], "CN=dso 0", true, Some(&ou))
        .unwrap()
        .success()
        .unwrap();
    let guid6 = s[&users[6].to_lowercase()].0.clone();
    let guid7 = s[&users[7].to_lowercase()].0.clone();

    let r = import(&dir);
    // Adds: the new user and the one moved in; updates: 2, 3, 4 and the group; renames: the
    // rename and the move within; deletes: the deleted one and the one moved out.
    assert_eq!(counts(&r), (2, 4, 2, 0), "{r:#?}");
    assert_eq!(r.renames, 2, "{r:#?}");
    let s = space(&dir);
    assert_eq!(s.len(), 201);
    assert!(s.contains_key(&fresh[0].to_lowercase()));
    assert!(s.contains_key(&format!("cn=dso 0,{ou}").to_lowercase()));
    assert_eq!(s[&users[2].to_lowercase()].1["description"], "changed");
    assert!(!s[&users[3].to_lowercase()].1.contains_key("description"));
    assert_eq!(
        s[&users[3].to_lowercase()].1["sAMAccountName"],
        "dsu3",
        "a partial update keeps what it does not give"
    );
    assert_eq!(s[&users[4].to_lowercase()].1["userAccountControl"], "66082");
    assert!(s[&group.to_lowercase()].1["member"].contains("dsu 9"));
    assert!(!s.contains_key(&users[5].to_lowercase()));
    assert!(!s.contains_key(&users[8].to_lowercase()));
    assert_eq!(s[&format!("cn=renamed six,{ou}").to_lowercase()].0, guid6);
    assert_eq!(s[&format!("cn=dsu 7,{sub}").to_lowercase()].0, guid7);

    // And again nothing.
    let r = import(&dir);
    assert_eq!(counts(&r), (0, 0, 0, 0), "{r:#?}");
    // A full import agrees with the deltas.
    let r = runner(&dir).import("ad", true, 0).unwrap();
    assert_eq!(r.status, StepStatus::Success, "{r:#?}");
    assert_eq!(counts(&r), (0, 0, 0, 0), "{r:#?}");
    // And the delta after it (from the cookie the full read took first) is empty.
    let r = import(&dir);
    assert_eq!(counts(&r), (0, 0, 0, 0), "{r:#?}");
    eprintln!("the DirSync test took {:?}", t.elapsed());
}

const WRITE_BUNDLE: &str = r#"bundle "ad-target"

metaverse {
  object person {
    account string
  }
}

connector "ad" ad {
  object user anchor objectGUID {
    objectGUID             binary
    sAMAccountName         string
    cn                     string
    unicodePwd             string
    userAccountControl     integer
    mS-DS-ConsistencyGuid  binary
  }
}
"#;

/// The `ad` connector of a deployment with [`WRITE_BUNDLE`] at `url` (`extra` settings), opened
/// as the runner would.
fn write_connector(
    name: &str,
    url: &str,
    extra: &str,
) -> (Dir, Box<dyn idflow::connector::Connector>) {
    set_password();
    let dir = Dir::new(name);
    std::fs::create_dir_all(dir.path("bundle")).unwrap();
    dir.write("bundle/bundle.idf", WRITE_BUNDLE);
    dir.write(
        "idflow.toml",
        &format!(
            "bundle = \"bundle\"\n\n[connectors.ad]\nkind = \"ad\"\nurl = \"{url}\"\n\
             bind_dn = \"{}\"\npassword_env = \"{PW_ENV}\"\n{extra}\n\
             [[connectors.ad.partitions]]\nname = \"{BASE}\"\n",
            samba::ADMIN
        ),
    );
    let r = runner(&dir);
    let c = r.engine.plan.connector_index("ad").unwrap();
    let cfg = r.deployment.connector("ad").unwrap().clone();
    let conn = idflow::connector::open(&cfg, &r.engine.plan.connectors[c]).unwrap();
    (dir, conn)
}

/// Whether a simple bind as `dn` with `password` succeeds.
fn binds(dn: &str, password: &str) -> bool {
    let mut c = ldap3::LdapConn::new(samba::URL).unwrap();
    c.simple_bind(dn, password).is_ok_and(|r| r.rc == 0)
}

#[test]
fn exports_set_a_password_over_tls_only_and_write_numbers_and_binary_values() {
    use idflow::connector::{ExportErrorCategory, ExportResult};
    use idflow::engine::export::{AttrOp, ExportDelta};
    use idflow::engine::model::ExportOp;
    use idflow::value::Value;
    let Some((_lock, dc)) = Samba::get() else {
        return;
    };
    let mut l = dc.admin();
    let ou = format!("OU=Pw,{BASE}");
    add_ou(&mut l, &ou);
    let (_d, mut conn) = write_connector("ad-pw", samba::LDAPS_URL, "tls_insecure = true");
    let dn = format!("CN=Pat Doe,{ou}");
    let first = "Xy9-first-Pass!";
    let consistency: Vec<u8> = (0xf0..=0xff).collect();
    let add = ExportDelta::new(ExportOp::Add, "user", &dn)
        .with("sAMAccountName", AttrOp::Replace(Value::from("patdoe")))
        .with("cn", AttrOp::Replace(Value::from("Pat Doe")))
        .with("unicodePwd", AttrOp::Replace(Value::from(first)))
        .with("userAccountControl", AttrOp::Replace(Value::Num(512)))
        .with(
            "mS-DS-ConsistencyGuid",
            AttrOp::Replace(Value::bin(consistency.clone())),
        );
    let results = conn.export(std::slice::from_ref(&add)).unwrap();
    let ExportResult::Applied {
        anchor: Some(Value::Bin(anchor)),
    } = &results[0]
    else {
        panic!("{results:#?}")
    };
    assert_eq!(anchor.to_vec(), guid(&mut l, &dn));
    assert!(binds(&dn, first), "the password the export set");
    assert!(!binds(&dn, "Xy9-wrong-Pass!"));
    let (rs, _) = l
        .search(
            &dn,
            Scope::Base,
            "(objectClass=*)",
            vec!["userAccountControl", "mS-DS-ConsistencyGuid"],
        )
        .unwrap()
        .success()
        .unwrap();
    let e = SearchEntry::construct(rs.into_iter().next().unwrap());
    assert_eq!(e.attrs["userAccountControl"], ["512"], "{e:?}");
    assert_eq!(e.bin_attrs["mS-DS-ConsistencyGuid"], [consistency], "{e:?}");

    // Sent again (a run killed before it recorded the result): applied, the password is not
    // compared.
    let results = conn.export(std::slice::from_ref(&add)).unwrap();
    assert!(
        matches!(results[0], ExportResult::Applied { .. }),
        "{results:#?}"
    );

    // A new password, by an update.
    let second = "Xy9-second-Pass!";
    let mut update = ExportDelta::new(ExportOp::Update, "user", &dn)
        .with("unicodePwd", AttrOp::Replace(Value::from(second)));
    update.anchor = Some(Value::bin(anchor.to_vec()));
    let results = conn.export(std::slice::from_ref(&update)).unwrap();
    assert!(
        matches!(results[0], ExportResult::Applied { .. }),
        "{results:#?}"
    );
    // (Samba still takes the old password for a while: its "old password allowed period".)
    assert!(binds(&dn, second), "the new password");

    // Over plain ldap:// a password is refused before anything is sent.
    let (_d, mut plain) = write_connector("ad-pw-plain", samba::URL, "");
    let third = "Xy9-third-Pass!";
    let update = ExportDelta::new(ExportOp::Update, "user", &dn)
        .with("unicodePwd", AttrOp::Replace(Value::from(third)));
    let results = plain.export(&[update]).unwrap();
    match &results[0] {
        ExportResult::Failed {
            category: ExportErrorCategory::PermissionDenied,
            detail,
        } => {
            assert!(detail.contains("only sent over TLS"), "{detail}");
            assert!(!detail.contains(third), "{detail}");
        }
        other => panic!("{other:#?}"),
    }
    assert!(binds(&dn, second));
}

/// A deployment of the Entra Connect default rules (rules/entra-default) with the domain
/// controller as the forest (`OU=Sync` only) and a JSON-lines file standing for Entra ID.
fn default_rules_deployment(name: &str, ou: &str) -> Dir {
    set_password();
    let dir = Dir::new(name);
    let bundle = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("rules/entra-default");
    dir.write(
        "idflow.toml",
        &format!(
            "bundle = \"{}\"\nstate = \"idflow.db\"\ndelete_threshold = 1000\nstaging = false\n\n\
             [connectors.\"contoso.com\"]\nkind = \"ad\"\nurl = \"{}\"\nbind_dn = \"{}\"\n\
             password_env = \"{PW_ENV}\"\n\n\
             [connectors.\"contoso.com\".parameters]\n\"Forest.FQDN\" = \"idflow.test\"\n\
             \"Forest.LDAP\" = \"{BASE}\"\n\"Forest.Netbios\" = \"{}\"\n\n\
             [[connectors.\"contoso.com\".partitions]]\nname = \"{BASE}\"\ninclude = [\"{ou}\"]\n\n\
             [connectors.\"contoso.com\".partitions.parameters]\n\"Domain.FQDN\" = \"idflow.test\"\n\
             \"Domain.LDAP\" = \"{BASE}\"\n\"Domain.Netbios\" = \"{}\"\n\n\
             [connectors.\"contoso.onmicrosoft.com\"]\nkind = \"jsonl\"\npath = \"entra.jsonl\"\n",
            bundle.display(),
            samba::URL,
            samba::ADMIN,
            samba::NETBIOS,
            samba::NETBIOS,
        ),
    );
    dir
}

#[test]
fn the_default_rules_write_the_consistency_guid_back_to_samba() {
    let Some((_lock, dc)) = Samba::get() else {
        return;
    };
    let t = std::time::Instant::now();
    let mut l = dc.admin();
    let ou = format!("OU=Sync,{BASE}");
    add_ou(&mut l, &ou);
    let users = add_users(&mut l, &ou, "syn", 20);
    let dir = default_rules_deployment("ad-default-rules", &ou);
    let mut all = Vec::new();
    for _ in 0..3 {
        let reports = runner(&dir).cycle(CycleOptions::default()).unwrap();
        for r in &reports {
            assert!(!r.status.is_stopped(), "{r:#?}");
            assert_eq!(r.errors, 0, "{r:#?}");
        }
        all.push(reports);
    }
    let export = step(&all[0], "export", "contoso.com");
    assert_eq!(counts(export).1, 20, "{export:#?}");
    // Every user has its objectGUID as its ms-DS-ConsistencyGuid.
    for dn in &users {
        let (rs, _) = l
            .search(
                dn,
                Scope::Base,
                "(objectClass=*)",
                vec!["objectGUID", "mS-DS-ConsistencyGuid"],
            )
            .unwrap()
            .success()
            .unwrap();
        let e = SearchEntry::construct(rs.into_iter().next().unwrap());
        let consistency = e
            .bin_attrs
            .get("mS-DS-ConsistencyGuid")
            .cloned()
            .or_else(|| {
                e.attrs
                    .get("mS-DS-ConsistencyGuid")
                    .map(|v| v.iter().map(|s| s.as_bytes().to_vec()).collect())
            });
        assert_eq!(
            consistency,
            Some(e.bin_attrs["objectGUID"].clone()),
            "{dn}: {e:?}"
        );
    }
    // Entra ID (the file) has the users, their source anchor the GUID in base64.
    let entra = dir.read("entra.jsonl");
    assert!(entra.contains("syn1"), "{entra}");
    // The last cycle changes nothing.
    common::assert_settled(&all[2], 0);
    eprintln!("the default rules against Samba: {:?}", t.elapsed());
}

#[test]
fn a_group_of_1600_members_is_read_whole() {
    let Some((_lock, dc)) = Samba::get() else {
        return;
    };
    let t = std::time::Instant::now();
    let mut l = dc.admin();
    let ou = format!("OU=Big,{BASE}");
    add_ou(&mut l, &ou);
    let members: Vec<String> = (0..1600)
        .map(|i| {
            let dn = format!("CN=Contact {i},{ou}");
            l.add(&dn, vec![("objectClass", HashSet::from(["contact"]))])
                .unwrap()
                .success()
                .unwrap();
            dn
        })
        .collect();
    let group = format!("CN=Big Group,{ou}");
    l.add(
        &group,
        vec![
            ("objectClass", HashSet::from(["group"])),
            ("sAMAccountName", HashSet::from(["biggroup"])),
            (
                "member",
                members.iter().map(String::as_str).collect::<HashSet<_>>(),
            ),
        ],
    )
    .unwrap()
    .success()
    .unwrap();
    eprintln!("seeded 1600 contacts and a group: {:?}", t.elapsed());
    // What Samba sends for a plain read of `member`.
    let (rs, _) = l
        .search(&group, Scope::Base, "(objectClass=*)", vec!["member"])
        .unwrap()
        .success()
        .unwrap();
    let e = SearchEntry::construct(rs.into_iter().next().unwrap());
    let keys: Vec<(&String, usize)> = e.attrs.iter().map(|(k, v)| (k, v.len())).collect();
    eprintln!("Samba answers a read of `member` with {keys:?}");

    // Samba does not cut a plain read at MaxValRange (1500), as Active Directory does: the
    // follow-up reads are tested on a first range asked for explicitly.
    let (rs, _) = l
        .search(
            &group,
            Scope::Base,
            "(objectClass=*)",
            vec!["member;range=0-1499"],
        )
        .unwrap()
        .success()
        .unwrap();
    let mut e = SearchEntry::construct(rs.into_iter().next().unwrap());
    assert_eq!(
        e.attrs["member;range=0-1499"].len(),
        1500,
        "{:?}",
        e.attrs.keys()
    );
    let dir = deployment("ad-big-ranges", &ou);
    let r = runner(&dir);
    let cfg = r.deployment.connector("ad").unwrap().clone();
    let mut conn =
        idflow::connector::ldap::conn::Connection::open(&cfg, cfg.ldap.as_ref().unwrap()).unwrap();
    idflow::connector::ldap::read::complete_ranges(&mut conn, &mut e).unwrap();
    assert_eq!(e.attrs.keys().collect::<Vec<_>>(), ["member"]);
    let got: HashSet<&str> = e.attrs["member"].iter().map(String::as_str).collect();
    assert_eq!(got.len(), 1600);
    assert!(members.iter().all(|m| got.contains(m.as_str())));

    let dir = deployment("ad-big", &ou);
    // The first (DirSync) read, then a full (paged) read: both see every member.
    for full in [false, true] {
        let r = runner(&dir).import("ad", full, 0).unwrap();
        assert_eq!(r.status, StepStatus::Success, "{r:#?}");
        let s = space(&dir);
        let g = &s[&group.to_lowercase()];
        assert_eq!(g.1["member"].split('|').count(), 1600, "full = {full}");
    }
    eprintln!("the large group test took {:?}", t.elapsed());
}

/// Runs the idflow binary in `dir` with the bind password in the environment; its exit code
/// and output, which never hold the password.
fn idflow_cli(dir: &std::path::Path, args: &[&str]) -> (Option<i32>, String) {
    let out = std::process::Command::new(common::BIN)
        .args(args)
        .current_dir(dir)
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
}

/// No file under `dir` holds the bind password.
fn assert_no_secret(dir: &std::path::Path) {
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                todo.push(p);
            } else {
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
    }
}

#[test]
fn init_ad_writes_a_deployment_that_checks_and_runs_a_cycle() {
    let Some((_lock, dc)) = Samba::get() else {
        return;
    };
    let mut l = dc.admin();
    let ou = format!("OU=Init,{BASE}");
    add_ou(&mut l, &ou);
    let users = add_users(&mut l, &ou, "ini", 5);
    let tmp = Dir::new("ad-init");
    let deploy = tmp.path("deploy");
    let init = [
        "init",
        "ad",
        "--url",
        samba::URL,
        "--bind-dn",
        samba::ADMIN,
        "--password-env",
        PW_ENV,
        "--ou",
        &ou,
        "--dir",
        deploy.to_str().unwrap(),
    ];
    let (code, text) = idflow_cli(&tmp.0, &init);
    assert_eq!(code, Some(0), "{text}");
    let toml = std::fs::read_to_string(deploy.join("idflow.toml")).unwrap();
    for want in [
        "\"Forest.FQDN\" = \"idflow.test\"",
        &format!("\"Forest.LDAP\" = \"{BASE}\""),
        "\"Forest.Netbios\" = \"IDFLOW\"",
        "\"Domain.FQDN\" = \"idflow.test\"",
        "\"Domain.Netbios\" = \"IDFLOW\"",
        &format!("include = [\"{ou}\"]"),
        "kind = \"jsonl\"",
    ] {
        assert!(toml.contains(want), "{want}: {toml}");
    }
    // The schema pulled from the server: the user class with Samba's attributes.
    let schema = std::fs::read_to_string(deploy.join("bundle/schema/contoso-com.idf")).unwrap();
    assert!(schema.contains("Pulled from"), "{schema}");
    assert!(schema.contains("object user anchor objectGUID"), "{schema}");
    assert!(schema.contains("userAccountControl"), "{schema}");
    let line = |want: &str| {
        schema
            .lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>().join(" ") == want)
    };
    // Attributes the default bundle does not declare, typed from Samba's schema partition:
    // DN, integer, octet string syntaxes, single- and multi-valued.
    for want in [
        "member reference multi",
        "directReports reference multi",
        "badPwdCount integer",
        "logonHours binary",
    ] {
        assert!(line(want), "{want}: {schema}");
    }
    assert!(
        !schema.contains("tokenGroups"),
        "a constructed attribute: {schema}"
    );
    // A wrong password: the error names the server and holds no password.
    let wrong = "Zq7-wrong-secret-4Lm";
    let out = std::process::Command::new(common::BIN)
        .args(init.iter().map(|a| {
            a.replace(PW_ENV, "IDFLOW_TEST_AD_WRONG")
                .replace("/deploy", "/deploy-wrong")
        }))
        .current_dir(&tmp.0)
        .env("NO_COLOR", "1")
        .env("IDFLOW_TEST_AD_WRONG", wrong)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(
        text.contains("127.0.0.1:389") && text.contains("invalidCredentials"),
        "{text}"
    );
    assert!(!text.contains(wrong) && !text.contains(PASSWORD), "{text}");
    // Never twice into the same directory.
    let (code, text) = idflow_cli(&tmp.0, &init);
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("replaces nothing"), "{text}");

    let (code, text) = idflow_cli(&deploy, &["check", "--config", "idflow.toml"]);
    assert_eq!(code, Some(0), "{text}");
    let (code, text) = idflow_cli(&deploy, &["run"]);
    assert_eq!(code, Some(0), "{text}");
    let entra = std::fs::read_to_string(deploy.join("entra.jsonl")).unwrap();
    assert!(entra.contains("ini3"), "{entra}");
    // The writeback reached the directory.
    let (rs, _) = l
        .search(
            &users[0],
            Scope::Base,
            "(objectClass=*)",
            vec!["mS-DS-ConsistencyGuid"],
        )
        .unwrap()
        .success()
        .unwrap();
    let e = SearchEntry::construct(rs.into_iter().next().unwrap());
    assert!(
        e.bin_attrs.contains_key("mS-DS-ConsistencyGuid")
            || e.attrs.contains_key("mS-DS-ConsistencyGuid"),
        "{e:?}"
    );
    for args in [&["state", "runs"][..], &["state", "errors"]] {
        idflow_cli(&deploy, args);
    }
    assert_no_secret(&deploy);
}
