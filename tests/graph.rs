//! The Microsoft Graph connector against a test double of Graph (tests/graph/double.rs, not
//! Microsoft Graph): users and groups with members from a generated AD, exported in `$batch`es
//! with throttled requests and an expiring token, read back with delta queries, changes in AD
//! and in the tenant, a refused client secret.

use idflow::runner::StepStatus;
use serde_json::Value as Json;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

mod common;
#[path = "graph/double.rs"]
mod double;
use common::{Dir, assert_settled, counts, cycle, runner, step};
use double::{CLIENT_ID, GraphDouble, SECRET, Settings};

const SECRET_ENV: &str = "IDFLOW_TEST_GRAPH_SECRET";
const DN_PROP: &str = "extension_0c8a_idflowDn";

fn set_secret() {
    static SET: std::sync::Once = std::sync::Once::new();
    // SAFETY: set once, before the first connector of any test reads it.
    SET.call_once(|| unsafe { std::env::set_var(SECRET_ENV, SECRET) });
}

const BUNDLE: &str = r#"bundle "graph"

metaverse {
  object person {
    accountName string
    sn          string
    title       string
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
    title          string
  }
  object group anchor objectGUID {
    objectGUID     binary
    sAMAccountName string
    member         reference multi
  }
}

connector "cloud" entra {
  object user anchor id {
    id                string
    userPrincipalName string
    displayName       string
    jobTitle          string
  }
  object group anchor id {
    id           string
    displayName  string
    mailNickname string
    member       reference multi
  }
}

inbound rule "In from AD" {
  connector "ad"  source user  target person  link provision  precedence 1
  scope { sn ISNOTNULL }
  join { sAMAccountName = accountName }
  flow accountName <- [sAMAccountName]
  flow sn          <- [sn]
  flow title       <- [title]
}

inbound rule "Groups from AD" {
  connector "ad"  source group  target group  link provision  precedence 2
  join { sAMAccountName = accountName }
  flow accountName <- [sAMAccountName]
  flow member      <- [member]
}

outbound rule "People to Graph" {
  connector "cloud"  source person  target user  link provision  precedence 10
  flow userPrincipalName <- [accountName] & "@contoso.test"
  flow displayName       <- [accountName]
  flow jobTitle          <- [title]
  flow dn                <- "CN=" & EscapeDNComponent([accountName]) & ",OU=Users,OU=Cloud"
}

outbound rule "Groups to Graph" {
  connector "cloud"  source group  target group  link provision  precedence 11
  flow displayName  <- [accountName]
  flow mailNickname <- Replace([accountName], " ", "")
  flow member       <- [member]
  flow dn           <- "CN=" & EscapeDNComponent([accountName]) & ",OU=Groups,OU=Cloud"
}
"#;

fn deployment(name: &str, graph: &GraphDouble, users: usize, groups: usize, extra: &str) -> Dir {
    set_secret();
    let dir = Dir::new(name);
    std::fs::create_dir_all(dir.path("bundle")).unwrap();
    dir.write("bundle/bundle.idf", BUNDLE);
    dir.write("ad.ldif", &idflow::r#gen::generate(users, groups, 5));
    dir.write(
        "idflow.toml",
        &format!(
            r#"bundle = "bundle"
state = "idflow.db"
delete_threshold = 100000

[connectors.ad]
kind = "ldif"
path = "ad.ldif"
[[connectors.ad.partitions]]
name = "DC=contoso,DC=com"
include = ["OU=Users,OU=CORP,DC=contoso,DC=com", "OU=Groups,OU=CORP,DC=contoso,DC=com"]

[connectors.cloud]
kind = "graph"
url = "{url}"
token_url = "{token}"
client_id = "{CLIENT_ID}"
secret_env = "{SECRET_ENV}"
concurrency = 4
retries = 6
{extra}
[connectors.cloud.mapping.user]
endpoint = "users"
dn = "{DN_PROP}"
attributes = {{ userPrincipalName = "userPrincipalName", displayName = "displayName", jobTitle = "jobTitle" }}

[connectors.cloud.mapping.group]
endpoint = "groups"
dn = "{DN_PROP}"
attributes = {{ displayName = "displayName", mailNickname = "mailNickname", member = "members" }}
"#,
            url = graph.url(),
            token = graph.token_url(),
        ),
    );
    dir
}

/// The tenant holds exactly the connector space: DNs, names, titles and members.
fn assert_tenant_matches(dir: &Dir, graph: &GraphDouble) -> (usize, usize) {
    let r = runner(dir);
    let c = r.engine.plan.connector_index("cloud").unwrap();
    let types = &r.engine.plan.connectors[c].types;
    let users = graph.objects("users");
    let groups = graph.objects("groups");
    let dn_of = |id: &str| -> String {
        users
            .get(id)
            .or_else(|| groups.get(id))
            .and_then(|(p, _)| p.get(DN_PROP).and_then(Json::as_str))
            .unwrap_or_default()
            .to_string()
    };
    let mut seen = 0;
    for o in r.engine.state.cs().iter() {
        if o.connector != c || o.gone || o.placeholder {
            continue;
        }
        seen += 1;
        let id = o.anchor.as_ref().and_then(|a| a.as_str()).unwrap();
        let t = &types[o.object_type];
        let get = |n: &str| o.current[t.slots[n]].clone();
        let (props, members) = users
            .get(id)
            .or_else(|| groups.get(id))
            .unwrap_or_else(|| panic!("{} ({id}) is not in the tenant", o.dn));
        assert_eq!(props[DN_PROP].as_str(), Some(&*o.dn));
        assert_eq!(props["displayName"].as_str(), get("displayName").as_str());
        if &*t.name == "group" {
            let want: BTreeSet<String> = get("member")
                .values()
                .iter()
                .filter_map(|v| v.as_str().map(str::to_lowercase))
                .collect();
            let have: BTreeSet<String> = members.iter().map(|m| dn_of(m).to_lowercase()).collect();
            assert_eq!(have, want, "{}", o.dn);
        } else {
            assert_eq!(
                props.get("jobTitle").and_then(Json::as_str),
                get("jobTitle").as_str()
            );
        }
    }
    assert_eq!(seen, users.len() + groups.len());
    (users.len(), groups.len())
}

#[test]
fn users_and_groups_through_batches_delta_queries_throttling_and_token_expiry() {
    let graph = GraphDouble::start(Settings {
        page_size: 7,
        token_ttl: Duration::from_secs(3),
        throttle_every: 9,
    });
    let dir = deployment("graph-round-trip", &graph, 60, 6, "");
    let reports = cycle(&dir);
    let export = step(&reports, "export", "cloud");
    assert_eq!(export.status, StepStatus::Success, "{export:#?}");
    let (users, groups) = assert_tenant_matches(&dir, &graph);
    assert_eq!(export.adds, users + groups);
    assert!(users >= 50 && groups == 6, "{users} users, {groups} groups");
    let stats = graph.stats();
    assert!(stats.throttled > 0, "{stats:?}");
    assert!(stats.batches > 0 && stats.largest_batch <= 20, "{stats:?}");

    // Read back with the deltaLink: Graph shows the objects written since, as they are.
    assert_settled(&cycle(&dir), groups);
    // The token lives 3 s: the next runs renew it.
    std::thread::sleep(Duration::from_millis(3200));
    let again = cycle(&dir);
    for r in &again {
        assert_eq!(counts(r), (0, 0, 0, 0), "{r:#?}");
    }
    assert!(graph.stats().token_requests >= 2, "{:?}", graph.stats());
    assert!(graph.stats().delta_rounds >= 4, "{:?}", graph.stats());

    // In the tenant: a user's name is changed. The delta read shows it; the rules own the
    // name, so the next export sets it back.
    let (renamed, (props, _)) = graph.objects("users").into_iter().next().unwrap();
    let name = props["displayName"].clone();
    graph.set(&renamed, "displayName", Json::from("Changed in the cloud"));
    let reports = cycle(&dir);
    assert_eq!(step(&reports, "import", "cloud").updates, 1, "{reports:#?}");
    assert_eq!(step(&reports, "export", "cloud").updates, 1, "{reports:#?}");
    assert_eq!(graph.objects("users")[&renamed].0["displayName"], name);

    // In AD: a title changes, a member leaves a group, a user is deleted.
    let ad = dir.read("ad.ldif");
    let title = ad
        .lines()
        .find(|l| l.starts_with("title: "))
        .unwrap()
        .to_string();
    let member = ad
        .lines()
        .find(|l| l.starts_with("member: CN=") && l.contains("OU=Users,OU=CORP"))
        .unwrap()
        .to_string();
    let ad = ad
        .replacen(&title, "title: Head of Graph", 1)
        .replacen(&format!("{member}\n"), "", 1);
    dir.write("ad.ldif", &ad);
    let export = step(&cycle(&dir), "export", "cloud").clone();
    assert_eq!(export.status, StepStatus::Success, "{export:#?}");
    assert!(export.updates >= 2, "{export:#?}");
    assert_tenant_matches(&dir, &graph);
    assert_settled(&cycle(&dir), groups);

    // In the tenant: a user is deleted behind idflow's back. The delta read shows it, and the
    // sync provisions it again.
    // A member of a group: the group changes with it.
    let users_now = graph.objects("users");
    let gone = graph
        .objects("groups")
        .values()
        .find_map(|(_, m)| m.iter().find(|id| users_now.contains_key(*id)).cloned())
        .unwrap();
    let gone = &gone;
    let gone_dn = users_now[gone].0[DN_PROP].as_str().unwrap().to_string();
    graph.delete(gone);
    let reports = cycle(&dir);
    assert_eq!(step(&reports, "import", "cloud").deletes, 1, "{reports:#?}");
    let export = step(&reports, "export", "cloud");
    assert_eq!(
        (export.adds, export.status),
        (1, StepStatus::Success),
        "{export:#?}"
    );
    let back: BTreeMap<String, String> = graph
        .objects("users")
        .into_iter()
        .map(|(id, (p, _))| (p[DN_PROP].as_str().unwrap().to_string(), id))
        .collect();
    assert_ne!(back[&gone_dn], *gone);
    assert_tenant_matches(&dir, &graph);
    assert_settled(&cycle(&dir), groups);

    // Nothing in the deployment holds the secret or a token.
    for e in std::fs::read_dir(&dir.0).unwrap() {
        let p = e.unwrap().path();
        if p.is_file() {
            let text = String::from_utf8_lossy(&std::fs::read(&p).unwrap()).into_owned();
            assert!(
                !text.contains(SECRET) && !text.contains("access-"),
                "{}",
                p.display()
            );
        }
    }
}

#[test]
fn a_refused_client_secret_stops_the_step_without_showing_it() {
    let graph = GraphDouble::start(Settings {
        page_size: 50,
        token_ttl: Duration::from_secs(60),
        throttle_every: 0,
    });
    let dir = deployment("graph-secret", &graph, 5, 1, "");
    dir.write("wrong.secret", "not-the-secret\n");
    dir.replace(
        &format!("secret_env = \"{SECRET_ENV}\""),
        "secret_file = \"wrong.secret\"",
    );
    let reports = cycle(&dir);
    let import = step(&reports, "import", "cloud");
    assert_eq!(
        import.status,
        StepStatus::StoppedConnectivity,
        "{import:#?}"
    );
    let notes = import.notes.join("\n");
    assert!(notes.contains("invalid_client"), "{notes}");
    assert!(!format!("{reports:?}").contains("not-the-secret"));
    assert!(graph.objects("users").is_empty());
}

#[test]
fn the_example_deployment_checks_clean() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let out = common::idflow(
        &root.join("examples/graph"),
        &["check", "--config", "idflow.toml", "--deny-warnings"],
    );
    assert_eq!(out.code, 0, "{}", out.all());
    // The attributes Graph does not take are left out, and said so.
    assert!(
        out.stderr.contains("`onPremisesSamAccountName`"),
        "{}",
        out.all()
    );
}
