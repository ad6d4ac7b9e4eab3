//! The SCIM connector against real scim2-server instances (tests/scim/harness.rs starts a
//! private one per test): a generated Active Directory of 1,000 users and 100 groups through
//! the Entra Connect default rules and the shipped SCIM mapping (examples/scim/mapping.toml)
//! into the server and read back, modify and delete round trips, a uniqueness conflict, a
//! server stopped in the middle of an export, a refused token.

use idflow::runner::{CycleOptions, Runner, StepReport, StepStatus};
use serde_json::{Value as Json, json};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::time::Instant;

mod common;
#[path = "scim/harness.rs"]
mod harness;
use common::{Dir, assert_settled, counts, cycle, runner, step};
use harness::{ScimServer, TOKEN};

/// The environment variable the tests' idflow.toml names for the bearer token.
const TOKEN_ENV: &str = "IDFLOW_TEST_SCIM_TOKEN";
/// The Entra ID connector of the default rules, kept in the SCIM server.
const ENTRA: &str = "contoso.onmicrosoft.com";

fn set_token() {
    static SET: std::sync::Once = std::sync::Once::new();
    // SAFETY: set once, before the first connector of any test reads it.
    SET.call_once(|| unsafe { std::env::set_var(TOKEN_ENV, TOKEN) });
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A deployment of the default rules: a generated AD of `users` and `groups` (contacts left
/// out: SCIM has no contact resource) and the Entra ID connector in `server`, with the
/// shipped mapping and `extra` settings.
fn deployment(name: &str, server: &ScimServer, users: usize, groups: usize, extra: &str) -> Dir {
    set_token();
    let dir = Dir::new(name);
    dir.write("ad.ldif", &idflow::r#gen::generate(users, groups, 11));
    dir.write(
        "idflow.toml",
        &format!(
            r#"bundle = "{bundle}"
state = "idflow.db"
delete_threshold = 100000

[connectors."contoso.com"]
kind = "ldif"
path = "ad.ldif"
parameters = {{ "Forest.FQDN" = "contoso.com", "Forest.LDAP" = "DC=contoso,DC=com", "Forest.Netbios" = "CONTOSO" }}

[[connectors."contoso.com".partitions]]
name = "DC=contoso,DC=com"
include = ["OU=Users,OU=CORP,DC=contoso,DC=com", "OU=Groups,OU=CORP,DC=contoso,DC=com", "CN=Users,DC=contoso,DC=com"]
parameters = {{ "Domain.FQDN" = "contoso.com", "Domain.LDAP" = "DC=contoso,DC=com", "Domain.Netbios" = "CONTOSO" }}

[connectors."{ENTRA}"]
kind = "scim"
url = "{url}"
token_env = "{TOKEN_ENV}"
mapping = "{mapping}"
{extra}
"#,
            bundle = root().join("rules/entra-default").display(),
            url = server.url(),
            mapping = root().join("examples/scim/mapping.toml").display(),
        ),
    );
    dir
}

/// Every step of a cycle changed nothing.
fn assert_unchanged(reports: &[StepReport]) {
    for r in reports {
        assert_eq!(counts(r), (0, 0, 0, 0), "{r:#?}");
        assert_eq!(r.status, StepStatus::Success, "{r:#?}");
    }
}

/// One connector-space object of the SCIM connector, as the state holds it.
#[derive(Debug)]
struct Held {
    ty: String,
    dn: String,
    upn: Option<String>,
    manager: Option<String>,
    members: BTreeSet<String>,
}

/// The SCIM connector's objects, by anchor (the SCIM id).
fn connector_space(dir: &Dir) -> BTreeMap<String, Held> {
    let r = runner(dir);
    let c = r.engine.plan.connector_index(ENTRA).unwrap();
    let types = &r.engine.plan.connectors[c].types;
    let mut out = BTreeMap::new();
    for o in r.engine.state.cs().iter() {
        if o.connector != c || o.gone || o.placeholder {
            continue;
        }
        let Some(id) = o.anchor.as_ref().and_then(|a| a.as_str()) else {
            continue;
        };
        let t = &types[o.object_type];
        let get = |n: &str| t.slots.get(n).map(|&s| o.current[s].clone());
        out.insert(
            id.to_string(),
            Held {
                ty: t.name.to_string(),
                dn: o.dn.to_string(),
                upn: get("userPrincipalName").and_then(|v| v.as_str().map(str::to_string)),
                manager: get("manager").and_then(|v| v.as_str().map(str::to_string)),
                members: get("member")
                    .map(|v| {
                        v.values()
                            .iter()
                            .filter_map(|m| m.as_str().map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_default(),
            },
        );
    }
    out
}

const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

/// The server holds exactly the connector space: one resource per object, with its DN in
/// externalId, its userName, its manager and its members by id. Returns (users, groups).
fn assert_server_matches(dir: &Dir, server: &ScimServer) -> (usize, usize) {
    let space = connector_space(dir);
    let id_of: HashMap<String, String> = space
        .iter()
        .map(|(id, h)| (h.dn.to_lowercase(), id.clone()))
        .collect();
    let users = server.all("Users");
    let groups = server.all("Groups");
    let on_server: HashMap<String, &Json> = users
        .iter()
        .chain(&groups)
        .map(|r| (r["id"].as_str().unwrap().to_string(), r))
        .collect();
    assert_eq!(
        on_server.len(),
        space.len(),
        "resources on the server vs connector space"
    );
    let external: BTreeSet<&str> = on_server
        .values()
        .map(|r| r["externalId"].as_str().unwrap())
        .collect();
    assert_eq!(external.len(), on_server.len(), "an externalId held twice");
    for (id, h) in &space {
        let r = on_server
            .get(id)
            .unwrap_or_else(|| panic!("{} ({id}) is not on the server", h.dn));
        assert_eq!(r["externalId"].as_str(), Some(h.dn.as_str()));
        if h.ty == "user" {
            assert_eq!(r["userName"].as_str(), h.upn.as_deref(), "{r}");
            let manager = r[ENTERPRISE]["manager"]["value"].as_str();
            let want = h
                .manager
                .as_ref()
                .map(|dn| id_of[&dn.to_lowercase()].as_str());
            assert_eq!(manager, want, "{r}");
        } else {
            let members: BTreeSet<String> = r["members"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|m| m["value"].as_str().unwrap().to_string())
                        .collect()
                })
                .unwrap_or_default();
            let want: BTreeSet<String> = h
                .members
                .iter()
                .map(|dn| id_of[&dn.to_lowercase()].clone())
                .collect();
            assert_eq!(members, want, "{}", h.dn);
        }
    }
    (users.len(), groups.len())
}

/// Every file of the deployment and every report holds no trace of the bearer token.
fn assert_no_secret(dir: &Dir, reports: &[StepReport]) {
    for e in std::fs::read_dir(&dir.0).unwrap() {
        let p = e.unwrap().path();
        if p.is_file() {
            let bytes = std::fs::read(&p).unwrap();
            assert!(
                !bytes.windows(TOKEN.len()).any(|w| w == TOKEN.as_bytes()),
                "{} holds the token",
                p.display()
            );
        }
    }
    assert!(!format!("{reports:?}").contains(TOKEN));
}

/// The LDIF block of the entry `dn` (a plain `dn:` line), edited by `f`.
fn edit_entry(ldif: &str, dn: &str, f: impl FnOnce(&str) -> String) -> String {
    let head = format!("dn: {dn}\n");
    let start = ldif.find(&head).unwrap_or_else(|| panic!("no {dn}"));
    let end = ldif[start..]
        .find("\n\n")
        .map_or(ldif.len(), |e| start + e + 1);
    format!("{}{}{}", &ldif[..start], f(&ldif[start..end]), &ldif[end..])
}

/// The plain DNs of the entries with `objectClass: class`.
fn entries_of(ldif: &str, class: &str) -> Vec<String> {
    ldif.split("\n\n")
        .filter(|b| b.contains(&format!("objectClass: {class}\n")))
        .filter_map(|b| b.lines().next()?.strip_prefix("dn: ").map(str::to_string))
        .filter(|dn| dn.contains("OU=CORP"))
        .collect()
}

#[test]
fn users_and_groups_from_a_generated_ad_round_trip() {
    let Some(server) = ScimServer::start("round-trip") else {
        return;
    };
    let dir = deployment("scim-round-trip", &server, 1000, 100, "concurrency = 8");
    let t = Instant::now();
    let reports = cycle(&dir);
    eprintln!("first cycle (1,000 users, 100 groups): {:?}", t.elapsed());
    let export = step(&reports, "export", ENTRA);
    assert_eq!(export.status, StepStatus::Success, "{export:#?}");
    let (users, groups) = assert_server_matches(&dir, &server);
    assert_eq!(export.adds, users + groups, "{export:#?}");
    assert!(
        users >= 950 && groups == 100,
        "{users} users, {groups} groups"
    );

    // The next cycle reads the server back and changes nothing.
    let t = Instant::now();
    let again = cycle(&dir);
    eprintln!("second cycle: {:?}", t.elapsed());
    assert_unchanged(&again);

    // In AD: a title changes, a user is deleted, a member is added to the largest group and
    // another one removed from it.
    let ad = dir.read("ad.ldif");
    let people = entries_of(&ad, "user");
    let retitled = people[3].clone();
    let deleted = people[7].clone();
    let groups_dn = entries_of(&ad, "group");
    let largest = groups_dn
        .iter()
        .max_by_key(|g| edit_count(&ad, g))
        .unwrap()
        .clone();
    let block = edit_entry(&ad, &largest, |b| b.to_string());
    let joining = people
        .iter()
        .find(|p| **p != deleted && !block.contains(&format!("member: {p}\n")))
        .unwrap()
        .clone();
    let leaving = block
        .lines()
        .filter_map(|l| l.strip_prefix("member: "))
        .find(|m| *m != deleted)
        .unwrap()
        .to_string();
    let mut ad = edit_entry(&ad, &retitled, |b| {
        let mut out: String = b
            .lines()
            .filter(|l| !l.starts_with("title:"))
            .map(|l| format!("{l}\n"))
            .collect();
        out.push_str("title: Chief Round Trip Officer\n");
        out
    });
    ad = edit_entry(&ad, &largest, |b| {
        let mut out = b.replace(&format!("member: {leaving}\n"), "");
        out.push_str(&format!("member: {joining}\n"));
        out
    });
    ad = edit_entry(&ad, &deleted, |_| String::new());
    ad = ad
        .replace(&format!("member: {deleted}\n"), "")
        .replace(&format!("manager: {deleted}\n"), "");
    dir.write("ad.ldif", &ad);
    let reports = cycle(&dir);
    let export = step(&reports, "export", ENTRA);
    assert_eq!(export.status, StepStatus::Success, "{export:#?}");
    assert_eq!(export.deletes, 1, "{export:#?}");
    assert_eq!(export.adds, 0, "{export:#?}");
    assert!(export.updates >= 2, "{export:#?}");
    let (u, g) = assert_server_matches(&dir, &server);
    assert_eq!((u, g), (users - 1, groups));
    let titled = server
        .all("Users")
        .into_iter()
        .filter(|u| u["title"] == "Chief Round Trip Officer")
        .count();
    assert_eq!(titled, 1);
    assert_settled(&cycle(&dir), 1);
    assert_unchanged(&cycle(&dir));
    assert_no_secret(&dir, &reports);
}

/// The number of members of a group entry.
fn edit_count(ldif: &str, dn: &str) -> usize {
    let block = edit_entry(ldif, dn, |b| b.to_string());
    let start = block.find(&format!("dn: {dn}\n")).unwrap();
    block[start..]
        .split("\n\n")
        .next()
        .unwrap()
        .lines()
        .filter(|l| l.starts_with("member:"))
        .count()
}

#[test]
fn a_taken_user_name_is_a_duplicate_attribute_error() {
    let Some(server) = ScimServer::start("unique") else {
        return;
    };
    let dir = deployment("scim-unique", &server, 30, 3, "");
    // Someone else's account holds the userName one of the AD users will get.
    let ad = dir.read("ad.ldif");
    let upn = ad
        .lines()
        .filter_map(|l| l.strip_prefix("userPrincipalName: "))
        .nth(5)
        .unwrap()
        .to_string();
    let (status, other) = server.request(
        "POST",
        "/Users",
        Some(&json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "userName": upn,
            "externalId": "not-from-idflow"
        })),
    );
    assert_eq!(status, 201, "{other}");
    let reports = cycle(&dir);
    let export = step(&reports, "export", ENTRA);
    assert_eq!(
        export.status,
        StepStatus::CompletedExportErrors,
        "{export:#?}"
    );
    let notes = export.notes.join("\n");
    let duplicates: Vec<&String> = export
        .notes
        .iter()
        .filter(|n| n.contains("duplicate-attribute"))
        .collect();
    assert_eq!(duplicates.len(), 1, "{notes}");
    assert!(duplicates[0].contains("uniqueness"), "{notes}");
    // The other users are there, the conflicting one is not.
    let users = server.all("Users");
    assert_eq!(
        users
            .iter()
            .filter(|u| u["userName"] == upn.as_str())
            .count(),
        1
    );
    // The account goes away: the next cycle creates the user, nothing twice.
    let id = other["id"].as_str().unwrap();
    assert_eq!(
        server.request("DELETE", &format!("/Users/{id}"), None).0,
        204
    );
    let reports = cycle(&dir);
    let export = step(&reports, "export", ENTRA);
    assert_eq!(export.status, StepStatus::Success, "{export:#?}");
    assert_server_matches(&dir, &server);
    assert_settled(&cycle(&dir), 3);
    assert_unchanged(&cycle(&dir));
}

#[test]
fn a_server_stopped_mid_export_resumes_with_nothing_lost_or_duplicated() {
    let Some(mut server) = ScimServer::start("stop") else {
        return;
    };
    let dir = deployment(
        "scim-stop",
        &server,
        400,
        40,
        "concurrency = 4\nretries = 1\nconnect_timeout = 2\ntimeout = 10",
    );
    // Stop the server once it holds 100 users, while the export runs.
    let port = server.port;
    let watcher = std::thread::spawn(move || {
        let start = Instant::now();
        loop {
            let probe = ScimProbe(port);
            if probe.users() >= 100 || start.elapsed().as_secs() > 60 {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    });
    let cycling = {
        let config = dir.config();
        std::thread::spawn(move || {
            Runner::open(Path::new(&config), idflow::eval::EngineKind::Interp)
                .unwrap()
                .cycle(CycleOptions::default())
                .unwrap()
        })
    };
    watcher.join().unwrap();
    server.stop();
    let reports = cycling.join().unwrap();
    let export = step(&reports, "export", ENTRA);
    assert_ne!(export.status, StepStatus::Success, "{export:#?}");
    let held = server_users_after_restart(&mut server);
    assert!(
        (100..400).contains(&held),
        "{held} users when the server stopped"
    );

    // Started again with what it held: the next cycle reads it (the objects created before the
    // stop are found by their DN) and sends the rest.
    let reports = cycle(&dir);
    let export = step(&reports, "export", ENTRA);
    assert_eq!(export.status, StepStatus::Success, "{export:#?}");
    let (users, groups) = assert_server_matches(&dir, &server);
    assert!(
        users >= 380 && groups == 40,
        "{users} users, {groups} groups"
    );
    assert_unchanged(&cycle(&dir));
}

/// The users the stopped server kept, once it is started again.
fn server_users_after_restart(server: &mut ScimServer) -> usize {
    server.restart();
    server.count("Users")
}

/// Counts a server's users without a handle on it (for a watcher thread).
struct ScimProbe(u16);

impl ScimProbe {
    fn users(&self) -> usize {
        use std::io::{Read, Write};
        let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", self.0)) else {
            return 0;
        };
        let req = format!(
            "GET /v2/Users?count=0 HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {TOKEN}\r\nConnection: close\r\n\r\n"
        );
        if s.write_all(req.as_bytes()).is_err() {
            return 0;
        }
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        let body = out.split_once("\r\n\r\n").map_or("", |(_, b)| b);
        serde_json::from_str::<Json>(body)
            .ok()
            .and_then(|j| j["totalResults"].as_u64())
            .unwrap_or(0) as usize
    }
}

#[test]
fn a_refused_token_stops_the_steps_naming_the_service_never_the_token() {
    let Some(server) = ScimServer::start("token") else {
        return;
    };
    let dir = deployment("scim-token", &server, 10, 1, "");
    dir.write("wrong.token", "not-the-token\n");
    dir.replace(
        &format!("token_env = \"{TOKEN_ENV}\""),
        "token_file = \"wrong.token\"",
    );
    let reports = cycle(&dir);
    let import = step(&reports, "import", ENTRA);
    assert_eq!(
        import.status,
        StepStatus::StoppedConnectivity,
        "{import:#?}"
    );
    let notes = import.notes.join("\n");
    assert!(
        notes.contains("401") && notes.contains(&server.url()),
        "{notes}"
    );
    assert_eq!(server.count("Users"), 0);
    assert_no_secret(&dir, &reports);
}

#[test]
fn check_config_checks_the_mapping_against_the_bundle() {
    // The shipped example: no error; the flows its mapping leaves out are listed.
    let out = common::idflow(
        &root().join("examples/scim"),
        &["check", "--config", "idflow.toml", "--deny-warnings"],
    );
    assert_eq!(out.code, 0, "{}", out.all());
    assert!(
        out.stderr
            .contains("the mapping of `user` holds no `assistant`"),
        "{}",
        out.all()
    );
    // A mapping naming what the bundle does not declare.
    let dir = Dir::new("scim-check");
    dir.write(
        "idflow.toml",
        &format!(
            r#"bundle = "{}"
[connectors."{ENTRA}"]
kind = "scim"
url = "https://scim.example.com/v2"
token_env = "SCIM_TOKEN"
[connectors."{ENTRA}".mapping.user]
endpoint = "Users"
[connectors."{ENTRA}".mapping.user.attributes]
titel = "title"
cloudAnchor = "nickName"
[connectors."{ENTRA}".mapping.printer]
endpoint = "Printers"
schemas = ["urn:example:Printer"]
"#,
            root().join("rules/entra-default").display()
        ),
    );
    let out = common::idflow(&dir.0, &["check", "--config", "idflow.toml"]);
    assert_eq!(out.code, 1, "{}", out.all());
    for want in [
        "declares no attribute `titel`",
        "`cloudAnchor` is the anchor",
        "declares no such object type (it has contact, device, group, user)",
    ] {
        assert!(out.stderr.contains(want), "{want}: {}", out.all());
    }
}

#[test]
fn https_verifies_the_service_against_the_ca_file() {
    let Some(server) = ScimServer::start_tls("tls") else {
        return;
    };
    let ca = server.dir.join("ca.crt").display().to_string();
    let dir = deployment("scim-tls", &server, 10, 2, &format!("ca_file = \"{ca}\""));
    let reports = cycle(&dir);
    let export = step(&reports, "export", ENTRA);
    assert_eq!(export.status, StepStatus::Success, "{export:#?}");
    assert!(export.adds >= 10, "{export:#?}");
    assert_unchanged(&cycle(&dir));
    // Another authority, or the system's: the server's certificate is refused.
    let other = server.dir.join("other-ca.crt").display().to_string();
    for (from, to) in [
        (
            format!("ca_file = \"{ca}\""),
            format!("ca_file = \"{other}\""),
        ),
        (format!("ca_file = \"{other}\""), String::new()),
    ] {
        dir.replace(&from, &to);
        let reports = cycle(&dir);
        let import = step(&reports, "import", ENTRA);
        assert_eq!(
            import.status,
            StepStatus::StoppedConnectivity,
            "{import:#?}"
        );
        let notes = import.notes.join("\n");
        assert!(
            notes.contains(&server.url()) && notes.contains("certificate"),
            "{notes}"
        );
    }
    // Without verification (tests only) it is accepted.
    dir.replace("mapping = ", "tls_insecure = true\nmapping = ");
    assert_unchanged(&cycle(&dir));
}

const SMALL_BUNDLE: &str = r#"bundle "scim-small"

metaverse {
  object person {
    uid  string
    name string
    mail string
  }
}

connector "hr" csv {
  object worker anchor id {
    id   string
    name string
    mail string
  }
}

connector "cloud" scim {
  object user anchor id {
    id          string
    userName    string
    displayName string
    email       string
  }
}

inbound rule "In from HR" {
  connector "hr"  source worker  target person  link provision  precedence 1
  join { id = uid }
  flow uid  <- [id]
  flow name <- [name]
  flow mail <- [mail]
}

inbound rule "Join cloud" {
  connector "cloud"  source user  target person  link join  precedence 2
  join { userName = uid }
}

outbound rule "Out to cloud" {
  connector "cloud"  source person  target user  link provision  precedence 10
  flow dn          <- "CN=" & [name] & ",OU=Cloud"
  flow userName    <- [uid]
  flow displayName <- [name]
  flow email       <- [mail]
}
"#;

fn worker(id: &str, name: &str, mail: &str) -> String {
    format!(
        "{{\"dn\":\"uid={id},ou=hr\",\"type\":\"worker\",\"attrs\":{{\"id\":\"{id}\",\"name\":\"{name}\",\"mail\":\"{mail}\"}}}}\n"
    )
}

/// The server's users by userName: (id, externalId, displayName, active, work email).
fn users_by_name(server: &ScimServer) -> BTreeMap<String, (String, String, String, bool, String)> {
    server
        .all("Users")
        .into_iter()
        .map(|u| {
            let s = |v: &Json| v.as_str().unwrap_or_default().to_string();
            (
                s(&u["userName"]),
                (
                    s(&u["id"]),
                    s(&u["externalId"]),
                    s(&u["displayName"]),
                    u["active"].as_bool().unwrap_or(true),
                    s(&u["emails"][0]["value"]),
                ),
            )
        })
        .collect()
}

#[test]
fn renames_deactivation_and_an_object_deleted_behind_our_back() {
    let Some(server) = ScimServer::start("small") else {
        return;
    };
    set_token();
    let dir = Dir::new("scim-small");
    std::fs::create_dir_all(dir.path("bundle")).unwrap();
    dir.write("bundle/bundle.idf", SMALL_BUNDLE);
    let source = |ws: &[(&str, &str, &str)]| -> String {
        ws.iter().map(|(i, n, m)| worker(i, n, m)).collect()
    };
    dir.write(
        "hr.jsonl",
        &source(&[
            ("1", "Ann", "ann@x.com"),
            ("2", "Bob", "bob@x.com"),
            ("3", "Cy", "cy@x.com"),
        ]),
    );
    dir.write(
        "idflow.toml",
        &format!(
            r#"bundle = "bundle"
state = "idflow.db"
[connectors.hr]
kind = "jsonl"
path = "hr.jsonl"
[connectors.cloud]
kind = "scim"
url = "{}"
token_env = "{TOKEN_ENV}"
[connectors.cloud.mapping.user]
endpoint = "Users"
delete = "deactivate"
[connectors.cloud.mapping.user.attributes]
userName = "userName"
displayName = "displayName"
email = 'emails[type eq "work"].value'
"#,
            server.url()
        ),
    );
    let export = step(&cycle(&dir), "export", "cloud").clone();
    assert_eq!(
        (export.adds, export.status),
        (3, StepStatus::Success),
        "{export:#?}"
    );
    let before = users_by_name(&server);
    assert_eq!(before["1"].1, "CN=Ann,OU=Cloud");
    assert_unchanged(&cycle(&dir));

    // A rename: the same resource, its DN (externalId) and name replaced.
    dir.write(
        "hr.jsonl",
        &source(&[
            ("1", "Anna", "ann@x.com"),
            ("2", "Bob", "bob@x.com"),
            ("3", "Cy", "cy@x.com"),
        ]),
    );
    let export = step(&cycle(&dir), "export", "cloud").clone();
    assert_eq!((export.updates, export.renames), (1, 1), "{export:#?}");
    let after = users_by_name(&server);
    assert_eq!(after["1"].0, before["1"].0);
    assert_eq!(
        (after["1"].1.as_str(), after["1"].2.as_str()),
        ("CN=Anna,OU=Cloud", "Anna")
    );
    assert_unchanged(&cycle(&dir));

    // A delete deactivates: the resource stays, inactive; read back, it joins nothing.
    dir.write(
        "hr.jsonl",
        &source(&[("1", "Anna", "ann@x.com"), ("3", "Cy", "cy@x.com")]),
    );
    let export = step(&cycle(&dir), "export", "cloud").clone();
    assert_eq!(export.deletes, 1, "{export:#?}");
    let users = users_by_name(&server);
    assert_eq!((users.len(), users["2"].3), (3, false));
    let reports = cycle(&dir);
    assert_eq!(step(&reports, "import", "cloud").adds, 1, "{reports:#?}");
    assert_eq!(counts(step(&reports, "export", "cloud")), (0, 0, 0, 0));
    assert_unchanged(&cycle(&dir));

    // Cy's resource is deleted on the server behind idflow's back while a change to it is
    // staged: the update is answered 404, the object is taken as gone and provisioned again.
    dir.write(
        "hr.jsonl",
        &source(&[("1", "Anna", "ann@x.com"), ("3", "Cy", "cy@new.com")]),
    );
    let mut r = runner(&dir);
    r.import("hr", false, 0).unwrap();
    r.sync(idflow::engine::sync::Mode::Delta).unwrap();
    let cy = users_by_name(&server)["3"].0.clone();
    assert_eq!(
        server.request("DELETE", &format!("/Users/{cy}"), None).0,
        204
    );
    let export = r.export("cloud", 0).unwrap();
    assert_eq!(export.errors, 1, "{export:#?}");
    let notes = export.notes.join("\n");
    assert!(
        notes.contains("no-such-object") && notes.contains("provisioned again"),
        "{notes}"
    );
    drop(r);
    let export = step(&cycle(&dir), "export", "cloud").clone();
    assert_eq!(
        (export.adds, export.status),
        (1, StepStatus::Success),
        "{export:#?}"
    );
    let users = users_by_name(&server);
    assert_ne!(users["3"].0, cy);
    assert_eq!(users["3"].4, "cy@new.com");
    assert_unchanged(&cycle(&dir));
}

#[test]
fn a_service_that_offers_cursors_is_read_with_them() {
    let Some(server) = ScimServer::start_with_cursors("cursor") else {
        return;
    };
    let dir = deployment("scim-cursor", &server, 250, 10, "page_size = 100");
    let export = step(&cycle(&dir), "export", ENTRA).clone();
    assert_eq!(export.status, StepStatus::Success, "{export:#?}");
    assert_server_matches(&dir, &server);
    assert_unchanged(&cycle(&dir));
    let log = std::fs::read_to_string(server.dir.join("server.log")).unwrap();
    let cursor_pages = log
        .lines()
        .filter(|l| l.contains("GET /v2/Users?cursor="))
        .count();
    // Two reads (the listing of ids, then the objects) of three pages each, per cycle.
    assert!(cursor_pages >= 6, "{cursor_pages} pages read by cursor");
    // idflow's listings ask for `attributes`; the test's own reads do not.
    let by_index: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("startIndex=") && l.contains("attributes="))
        .collect();
    assert!(by_index.is_empty(), "index paging was used: {by_index:?}");
}
