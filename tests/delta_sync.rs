//! Delta sync versus full sync: a delta sync must leave the same metaverse and staged exports as
//! a full sync over the same imports.
//!
//! A small purpose-built bundle (AD-like source, HR-like source joining on employeeId and
//! winning `department` by precedence, a target connector provisioned from the metaverse with
//! reference flows) is driven by seeded random import batches. Two engines run in lockstep on
//! the same batches: D runs `sync(Mode::Delta)` after each batch, F runs `sync(Mode::Full)`.
//! After every step the canonical dumps (`engine::dump::state`) and the sync errors of both
//! must be equal; a mismatch panics with the seed, the step, the batch and a line diff.
//!
//! The random model behaves like a directory read by delta imports: each step mutates the
//! model (adds, attribute updates, manager and member reference changes, renames, deletes,
//! re-adds), and the batch holds every object whose imported form changed (a renamed object
//! changes the reference values of the objects pointing at it, as AD rewrites them). Export
//! confirmation is simulated on the target connector: staged adds are imported with their
//! exported values and a fresh anchor, staged updates with their exported values, staged
//! deletes as deletes. Some users share an address, so the target's unique proxyAddresses
//! withholds duplicates.
//!
//! `delta_sync_equals_full_sync` runs every kind of input (300 seeds x 30 steps). Each engine
//! bug this test found has a minimal reproduction kept as a regression test (`regression_*`);
//! one known limitation (which of two new objects keeps a duplicate unique value) and one known
//! bug (a new target object holding a unique value another object's staged export claims) are
//! ignored tests. Also here: a second sync without imports changes nothing, and the comparison
//! detects a real difference.
//!
//! Environment, for investigating: `DELTA_SYNC_SEED=n` (one seed), `DELTA_SYNC_SEEDS=n`,
//! `DELTA_SYNC_STEPS=n`, `DELTA_SYNC_RELAX=hr_follows_ad,stable_reference_targets,...` (lift
//! restrictions), `DELTA_SYNC_SHRINK=<text of the difference>` (minimize the failing batches
//! of the seed), `DELTA_SYNC_TRACE=1` (print both dumps after every step; with
//! `-- --nocapture`).

mod common;

use idflow::engine::Engine;
use idflow::engine::import::{ImportChange, ImportObject};
use idflow::engine::model::ExportOp;
use idflow::engine::sync::{Mode, RunStatus, SyncReport};
use idflow::sema::Bundle;
use idflow::value::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

/// The bundle under test. The connectors are declared in alphabetical order ("cloud",
/// "contoso.com", "hr"), which is the order a sync processes them in: target confirmations
/// first, and HR objects after the AD objects they join to.
const BUNDLE: &str = r#"
bundle "delta-sync"

metaverse {
  object person {
    accountName    string
    displayName    string
    employeeId     string
    department     string
    title          string
    mail           string
    proxyAddresses string multi
    accountEnabled boolean
    filtered       boolean
    manager        reference(person)
  }
  object group {
    displayName string
    member      reference multi
  }
}

connector "cloud" entra {
  object user anchor cloudAnchor {
    cloudAnchor    string
    accountName    string
    displayName    string
    department     string
    title          string
    mail           string
    proxyAddresses string multi unique
    accountEnabled boolean
    manager        reference(user)
  }
  object group anchor cloudAnchor {
    cloudAnchor string
    displayName string
    member      reference multi
  }
}

connector "contoso.com" ad {
  object user anchor objectGUID {
    objectGUID         binary
    sAMAccountName     string
    displayName        string
    employeeID         string
    department         string
    mail               string
    proxyAddresses     string multi
    userAccountControl integer
    manager            reference(user)
  }
  object group anchor objectGUID {
    objectGUID binary
    cn         string
    member     reference multi
  }
}

connector "hr" csv {
  object worker anchor employeeId {
    employeeId string
    department string
    title      string
  }
}

inbound rule "In from AD - User Join" {
  connector "contoso.com"
  source user
  target person
  link provision
  precedence 100
  scope {
    sAMAccountName NOTSTARTSWITH "svc_"
  }
  flow accountName <- [sAMAccountName]
  flow employeeId  <- [employeeID]
  flow filtered    <- IIF([department] = "Contractors", True, False)
}

inbound rule "In from AD - User AccountEnabled" {
  connector "contoso.com"
  source user
  target person
  link join
  precedence 101
  scope {
    userAccountControl ISNOTBITSET "2"
  }
  flow accountEnabled <- True
}

inbound rule "In from AD - User Common" {
  connector "contoso.com"
  source user
  target person
  link join
  precedence 110
  flow displayName    <- [displayName]
  flow department     <- [department]
  flow mail           <- [mail]
  flow proxyAddresses <- [proxyAddresses]
  flow accountEnabled <- False
  flow manager        <- [manager]
}

inbound rule "In from AD - Group" {
  connector "contoso.com"
  source group
  target group
  link provision
  precedence 200
  flow displayName <- [cn]
  flow member      <- [member]
}

inbound rule "In from HR - Worker" {
  connector "hr"
  source worker
  target person
  link join
  precedence 50
  join {
    employeeId = employeeId
  }
  flow department <- [department]
  flow title      <- [title]
}

outbound rule "Out to Cloud - User" {
  connector "cloud"
  source person
  target user
  link provision
  precedence 100
  scope {
    filtered NOTEQUAL "True"
  }
  flow dn             <- "CN=" & [accountName] & ",OU=Users,DC=cloud"
  flow accountName    <- [accountName]
  flow displayName    <- [displayName]
  flow department     <- [department]
  flow title          <- [title]
  flow mail           <- [mail]
  flow proxyAddresses <- [proxyAddresses]
  flow accountEnabled <- [accountEnabled]
  flow manager        <- [manager]
}

outbound rule "Out to Cloud - Group" {
  connector "cloud"
  source group
  target group
  link provision
  precedence 100
  flow dn          <- "CN=" & [displayName] & ",OU=Groups,DC=cloud"
  flow displayName <- [displayName]
  flow member      <- [member]
}
"#;

const CLOUD: &str = "cloud";
const AD: &str = "contoso.com";
const HR: &str = "hr";

/// The bundle; without `outbound_refs`, the outbound manager and member flows are left out.
fn bundle(outbound_refs: bool) -> Bundle {
    let mut text = BUNDLE.to_string();
    if !outbound_refs {
        for flow in [
            "  flow manager        <- [manager]\n}",
            "  flow member      <- [member]\n}",
        ] {
            let at = text.rfind(flow).expect("outbound reference flow");
            text.replace_range(at..at + flow.len() - 1, "");
        }
    }
    common::bundle("delta-sync.idf", &text)
}

fn engine(bundle: &Bundle) -> Engine {
    let mut e = Engine::new(bundle, idflow::testrun::test_now());
    for c in 0..e.plan.connectors.len() {
        let name = e.plan.connectors[c].name.clone();
        e.set_params(c, idflow::testrun::default_params(&name));
    }
    e
}

// ---------------------------------------------------------------------------------- PRNG

/// splitmix64: small, deterministic, good enough to drive a generator.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x5DEE_CE66_D1CE_4E5B)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// True with probability `percent`/100.
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

// ---------------------------------------------------------------------------------- model

const USERS: usize = 10;
const GROUPS: usize = 3;
const WORKERS: usize = 10;

const DEPARTMENTS: &[Option<&str>] = &[
    None,
    Some("Sales"),
    Some("Engineering"),
    Some("Contractors"),
    Some("contractors"),
];
const TITLES: &[Option<&str>] = &[None, Some("Engineer"), Some("Manager")];
const UACS: &[i64] = &[512, 514, 66048, 66050];

/// A reference held by the model: to a user by key (its current DN, whether the user is
/// imported, not imported yet or deleted) or to a fixed DN nobody holds.
#[derive(Clone, Debug, PartialEq)]
enum Ref {
    User(usize),
    Dangling(String),
}

#[derive(Clone, Debug)]
struct User {
    present: bool,
    /// The RDN generation: a rename increments it.
    rdn: u32,
    sam: String,
    display: Option<String>,
    employee_id: Option<String>,
    department: Option<String>,
    mail: Option<String>,
    proxies: Vec<String>,
    uac: i64,
    manager: Option<Ref>,
}

#[derive(Clone, Debug)]
struct Group {
    present: bool,
    rdn: u32,
    members: Vec<Ref>,
}

#[derive(Clone, Debug)]
struct Worker {
    /// Whether the worker exists in HR (see [`Model::settle`]).
    wanted: bool,
    present: bool,
    department: Option<String>,
    title: Option<String>,
}

/// Which inputs the generator makes: the restricted profile leaves out the inputs that trigger
/// the known engine bugs (each has an ignored reproduction below).
#[derive(Clone, Copy, Debug)]
struct Profile {
    /// HR workers exist only while the AD user with their employeeId is in scope, and AD
    /// employeeIDs do not change, so an HR worker never has to join a person that appeared
    /// after it (`bug_delta_never_rejoins_disconnectors`).
    hr_follows_ad: bool,
    /// A person's target object stays put while others reference it: when a user's target DN
    /// changes (its sAMAccountName changes) or it becomes filtered (deprovisioned), the step
    /// also removes every reference to it, so no outbound reference has to follow a renamed
    /// or deprovisioned target object (`bug_outbound_reference_to_deprovisioned_object_kept`,
    /// `bug_delta_keeps_old_dn_in_outbound_reference_after_rename`); and no new reference
    /// points at a user whose target rename is not confirmed yet (the reference would carry
    /// the old DN until the confirmation). Provisioning of a referenced person (first time,
    /// or no longer filtered) still happens.
    stable_reference_targets: bool,
    /// When a user is deleted or moves out of the provisioning rule's scope, the step also
    /// removes every reference to it (as AD does for the linked attributes of a deleted
    /// object), so no reference outlives the object or person it points at
    /// (`bug_delta_keeps_reference_to_deleted_mv_object`,
    /// `bug_delta_misses_reference_to_readded_object`). References to deleted users made
    /// later (dangling DNs) remain.
    unreferenced_before_delete: bool,
    // Not avoided: `bug_duplicate_winner_differs_between_delta_and_full` needs a rare
    // combination the fixed seeds do not produce; `bug_delta_does_not_correct_target_drift`
    // never happens, since confirmations import exactly the exported values.
}

const RESTRICTED: Profile = Profile {
    hr_follows_ad: true,
    stable_reference_targets: true,
    unreferenced_before_delete: true,
};
const UNRESTRICTED: Profile = Profile {
    hr_follows_ad: false,
    stable_reference_targets: false,
    unreferenced_before_delete: false,
};

#[derive(Clone, Debug, Default)]
struct UserState {
    present: bool,
    in_metaverse: bool,
    sam: String,
    filtered: bool,
}

/// The connected directories, and what the engines were last told about them.
struct Model {
    profile: Profile,
    users: Vec<User>,
    groups: Vec<Group>,
    workers: Vec<Worker>,
    /// Per (connector name, key): the DN and rendering of the last imported form.
    last: BTreeMap<(&'static str, String), (String, String)>,
    next_cloud_anchor: u64,
    /// Per user: its [`UserState`] at the end of the previous step.
    before: Vec<UserState>,
    /// Users whose target object has a staged rename (see [`renaming`]).
    renaming: BTreeSet<usize>,
}

fn user_dn(k: usize, rdn: u32) -> String {
    format!("CN=User{k}-{rdn},OU=Users,DC=contoso,DC=com")
}

fn group_dn(k: usize, rdn: u32) -> String {
    format!("CN=Group{k}-{rdn},OU=Groups,DC=contoso,DC=com")
}

fn guid(kind: u8, k: usize) -> Value {
    let mut b = [0u8; 16];
    b[0] = kind;
    b[1] = k as u8;
    b[15] = 0xA5;
    Value::bin(b.to_vec())
}

fn opt_str(v: &Option<String>) -> Value {
    v.as_deref().map(Value::from).unwrap_or(Value::Null)
}

impl Model {
    fn new(profile: Profile) -> Model {
        Model {
            profile,
            users: (0..USERS)
                .map(|k| User {
                    present: false,
                    rdn: 0,
                    sam: format!("u{k}"),
                    display: Some(format!("User {k}")),
                    employee_id: Some(format!("E{k}")),
                    department: Some("Sales".into()),
                    mail: Some(format!("u{k}@contoso.com")),
                    proxies: if k % 3 == 0 {
                        // A shared address: the target's proxyAddresses are unique.
                        vec![
                            format!("SMTP:u{k}@contoso.com"),
                            "smtp:shared0@contoso.com".into(),
                        ]
                    } else {
                        vec![format!("SMTP:u{k}@contoso.com")]
                    },
                    uac: 512,
                    manager: None,
                })
                .collect(),
            groups: (0..GROUPS)
                .map(|_| Group {
                    present: false,
                    rdn: 0,
                    members: Vec::new(),
                })
                .collect(),
            workers: (0..WORKERS)
                .map(|_| Worker {
                    wanted: false,
                    present: false,
                    department: Some("Engineering".into()),
                    title: Some("Engineer".into()),
                })
                .collect(),
            last: BTreeMap::new(),
            next_cloud_anchor: 0,
            before: vec![UserState::default(); USERS],
            renaming: BTreeSet::new(),
        }
    }

    fn ref_dn(&self, r: &Ref) -> String {
        match r {
            Ref::User(k) => user_dn(*k, self.users[*k].rdn),
            Ref::Dangling(dn) => dn.clone(),
        }
    }

    fn user_object(&self, k: usize) -> ImportObject {
        let u = &self.users[k];
        let mut attrs = vec![
            ("objectGUID".to_string(), guid(1, k)),
            ("sAMAccountName".to_string(), Value::from(u.sam.clone())),
            ("displayName".to_string(), opt_str(&u.display)),
            ("employeeID".to_string(), opt_str(&u.employee_id)),
            ("department".to_string(), opt_str(&u.department)),
            ("mail".to_string(), opt_str(&u.mail)),
            (
                "proxyAddresses".to_string(),
                Value::many(u.proxies.iter().map(|p| Value::from(p.clone())).collect()),
            ),
            ("userAccountControl".to_string(), Value::Num(u.uac)),
        ];
        if let Some(m) = &u.manager {
            attrs.push(("manager".into(), Value::Ref(self.ref_dn(m).into())));
        }
        attrs.retain(|(_, v)| !v.is_null());
        ImportObject {
            dn: user_dn(k, u.rdn),
            object_type: "user".into(),
            attrs,
        }
    }

    fn group_object(&self, k: usize) -> ImportObject {
        let g = &self.groups[k];
        let cn = if g.rdn.is_multiple_of(2) {
            format!("G{k}")
        } else {
            format!("G{k}r{}", g.rdn)
        };
        let members: Vec<Value> = g
            .members
            .iter()
            .map(|m| Value::Ref(self.ref_dn(m).into()))
            .collect();
        let mut attrs = vec![
            ("objectGUID".to_string(), guid(2, k)),
            ("cn".to_string(), Value::from(cn)),
        ];
        if !members.is_empty() {
            attrs.push(("member".into(), Value::many(members)));
        }
        ImportObject {
            dn: group_dn(k, g.rdn),
            object_type: "group".into(),
            attrs,
        }
    }

    fn worker_object(&self, k: usize) -> ImportObject {
        let w = &self.workers[k];
        let mut attrs = vec![
            ("employeeId".to_string(), Value::from(format!("E{k}"))),
            ("department".to_string(), opt_str(&w.department)),
            ("title".to_string(), opt_str(&w.title)),
        ];
        attrs.retain(|(_, v)| !v.is_null());
        ImportObject {
            dn: format!("employeeId=E{k}"),
            object_type: "worker".into(),
            attrs,
        }
    }

    /// Every present object of a source connector, by key.
    fn objects(&self, connector: &'static str) -> Vec<(String, ImportObject)> {
        let mut out = Vec::new();
        match connector {
            AD => {
                for k in 0..USERS {
                    if self.users[k].present {
                        out.push((format!("user{k}"), self.user_object(k)));
                    }
                }
                for k in 0..GROUPS {
                    if self.groups[k].present {
                        out.push((format!("group{k}"), self.group_object(k)));
                    }
                }
            }
            HR => {
                for k in 0..WORKERS {
                    if self.workers[k].present {
                        out.push((format!("worker{k}"), self.worker_object(k)));
                    }
                }
            }
            _ => unreachable!(),
        }
        out
    }

    /// A delta import of a source connector: every object whose imported form changed since
    /// the last import, deletes of the removed ones; with `noise`, some unchanged objects are
    /// repeated (a delta import may report an object that did not change). With `full`, every
    /// present object (a full import).
    fn import_batch(
        &mut self,
        rng: &mut Rng,
        connector: &'static str,
        full: bool,
    ) -> Vec<ImportChange> {
        let mut changes = Vec::new();
        let objects = self.objects(connector);
        let keys: BTreeSet<String> = objects.iter().map(|(k, _)| k.clone()).collect();
        for (key, obj) in objects {
            let shown = show_object(&obj);
            let prev = self.last.get(&(connector, key.clone()));
            let changed = prev.is_none_or(|(_, s)| *s != shown);
            if full || changed || rng.chance(5) {
                self.last.insert((connector, key), (obj.dn.clone(), shown));
                changes.push(ImportChange::Upsert(obj));
            }
        }
        let gone: Vec<(&'static str, String)> = self
            .last
            .keys()
            .filter(|(c, k)| *c == connector && !keys.contains(k))
            .cloned()
            .collect();
        for key in gone {
            let (dn, _) = self.last.remove(&key).expect("listed");
            if !full {
                changes.push(ImportChange::delete_dn(dn));
            }
        }
        // Import order is not meaningful: shuffle (it changes connector-space ids).
        for i in (1..changes.len()).rev() {
            let j = rng.below(i + 1);
            changes.swap(i, j);
        }
        changes
    }

    fn random_ref(&self, rng: &mut Rng) -> Ref {
        if rng.chance(10) {
            Ref::Dangling(format!(
                "CN=Nobody{},OU=Users,DC=contoso,DC=com",
                rng.below(3)
            ))
        } else {
            // Any user: imported, not imported yet, or deleted.
            let k = rng.below(USERS);
            if self.profile.stable_reference_targets && self.renaming.contains(&k) {
                // Its target object is being renamed: see `Profile`.
                return Ref::Dangling("CN=Nobody0,OU=Users,DC=contoso,DC=com".into());
            }
            Ref::User(k)
        }
    }

    /// One random change of the directories.
    fn mutate(&mut self, rng: &mut Rng) {
        match rng.below(16) {
            // Add a user, or re-add a deleted one (same objectGUID, maybe renamed).
            0 | 1 => {
                let k = rng.below(USERS);
                if !self.users[k].present {
                    self.users[k].present = true;
                    if rng.chance(30) {
                        self.users[k].rdn += 1;
                    }
                }
            }
            // Attribute updates, including the ones that move scopes.
            2 => {
                let k = rng.below(USERS);
                self.users[k].department = rng.pick(DEPARTMENTS).map(str::to_string);
            }
            3 => {
                let k = rng.below(USERS);
                self.users[k].uac = *rng.pick(UACS);
            }
            4 => {
                let k = rng.below(USERS);
                let u = &mut self.users[k];
                match rng.below(5) {
                    0 => u.mail = None,
                    1 => u.mail = Some(format!("{}.{}@contoso.com", u.sam, rng.below(4))),
                    2 => u.display = Some(format!("User {k} v{}", rng.below(4))),
                    3 => u.display = None,
                    _ => {
                        let n = rng.below(4);
                        // Some addresses are shared: the target withholds duplicates of its
                        // unique proxyAddresses.
                        u.proxies = (0..n)
                            .map(|i| {
                                let p = if i == 0 { "SMTP" } else { "smtp" };
                                if rng.chance(40) {
                                    format!("{p}:shared{}@contoso.com", rng.below(2))
                                } else {
                                    format!("{p}:{}.{}@contoso.com", u.sam, rng.below(5))
                                }
                            })
                            .collect();
                    }
                }
            }
            5 if self.profile.hr_follows_ad => {}
            5 => {
                // employeeID: its own, another worker's, or none (join key changes).
                let k = rng.below(USERS);
                self.users[k].employee_id = match rng.below(4) {
                    0 => None,
                    1 => Some(format!("E{}", rng.below(WORKERS))),
                    _ => Some(format!("E{k}")),
                };
            }
            6 => {
                // sAMAccountName: the cloud DN changes; svc_ takes the user out of the
                // provisioning rule's scope.
                let k = rng.below(USERS);
                self.users[k].sam = match rng.below(3) {
                    0 => format!("svc_u{k}"),
                    1 => format!("u{k}x{}", rng.below(3)),
                    _ => format!("u{k}"),
                };
            }
            // Manager references.
            7 | 8 => {
                let k = rng.below(USERS);
                self.users[k].manager = if rng.chance(20) {
                    None
                } else {
                    Some(self.random_ref(rng))
                };
            }
            // Rename (same anchor, new DN): AD rewrites the references to it.
            9 => {
                let k = rng.below(USERS);
                self.users[k].rdn += 1;
            }
            // Delete: AD removes the references to it, or (sometimes) the reference stays.
            10 => {
                let k = rng.below(USERS);
                self.users[k].present = false;
                if rng.chance(60) {
                    self.unreference(k);
                }
            }
            // Groups: add/re-add, delete, rename, members.
            11 => {
                let k = rng.below(GROUPS);
                let g = &mut self.groups[k];
                match rng.below(4) {
                    0 => g.present = !g.present,
                    1 => g.rdn += 1,
                    _ => {
                        g.present = true;
                    }
                }
            }
            12 => {
                let k = rng.below(GROUPS);
                let r = self.random_ref(rng);
                let g = &mut self.groups[k];
                if let Some(i) = g.members.iter().position(|m| *m == r) {
                    g.members.remove(i);
                } else {
                    g.members.push(r);
                }
            }
            // HR workers.
            13 => {
                let k = rng.below(WORKERS);
                self.workers[k].wanted = !self.workers[k].wanted;
            }
            14 => {
                let k = rng.below(WORKERS);
                self.workers[k].department = rng.pick(DEPARTMENTS).map(str::to_string);
            }
            _ => {
                let k = rng.below(WORKERS);
                self.workers[k].title = rng.pick(TITLES).map(str::to_string);
            }
        }
    }

    /// Removes the references to user `k`.
    fn unreference(&mut self, k: usize) {
        for u in &mut self.users {
            if u.manager == Some(Ref::User(k)) {
                u.manager = None;
            }
        }
        for g in &mut self.groups {
            g.members.retain(|m| *m != Ref::User(k));
        }
    }

    /// Whether user `k` has a person in the metaverse (present and in scope).
    fn in_metaverse(&self, k: usize) -> bool {
        let u = &self.users[k];
        u.present && !u.sam.starts_with("svc_")
    }

    /// What the restrictions of [`Profile`] compare from one step to the next.
    fn user_state(&self, k: usize) -> UserState {
        let u = &self.users[k];
        UserState {
            present: u.present,
            in_metaverse: self.in_metaverse(k),
            sam: u.sam.clone(),
            // The rule's `=` is case-sensitive: "contractors" is not filtered.
            filtered: u.department.as_deref() == Some("Contractors"),
        }
    }

    /// Derived state after the changes of a step.
    fn settle(&mut self) {
        for k in 0..USERS {
            let now = self.user_state(k);
            let was = &self.before[k];
            let left = (was.present && !now.present) || (was.in_metaverse && !now.in_metaverse);
            let moved = was.in_metaverse && (was.sam != now.sam || (!was.filtered && now.filtered));
            if (self.profile.unreferenced_before_delete && left)
                || (self.profile.stable_reference_targets && moved)
            {
                self.unreference(k);
            }
            self.before[k] = now;
        }
        for k in 0..WORKERS {
            let w = &mut self.workers[k];
            w.present = w.wanted;
            if self.profile.hr_follows_ad {
                let u = self.users.get(k);
                w.present &= u.is_some_and(|u| {
                    u.present
                        && !u.sam.starts_with("svc_")
                        && u.employee_id.as_deref() == Some(&format!("E{k}"))
                });
            }
        }
    }

    /// Export confirmation: what the target connector shows after the staged exports were
    /// exported (an add gets a fresh anchor). Only some of the exports are confirmed.
    fn confirmation(&mut self, rng: &mut Rng, e: &Engine) -> Vec<ImportChange> {
        let mut out = Vec::new();
        for mut change in staged_confirmations(e) {
            if !rng.chance(70) {
                continue;
            }
            fresh_anchor(&mut change, &mut self.next_cloud_anchor);
            out.push(change);
        }
        out
    }
}

/// [`staged_confirmations`] with the anchors the target assigns to added objects.
fn anchored_confirmations(e: &Engine) -> Vec<ImportChange> {
    let mut anchors = 0;
    let mut confirm = staged_confirmations(e);
    confirm
        .iter_mut()
        .for_each(|c| fresh_anchor(c, &mut anchors));
    confirm
}

/// What the target connector shows once every staged export of it is done, in operation and
/// DN order (independent of connector-space ids): an add with its exported values and no
/// anchor yet (see [`fresh_anchor`]), an update with its exported values and DN, a delete.
fn staged_confirmations(e: &Engine) -> Vec<ImportChange> {
    let c = e.plan.connector_index(CLOUD).expect("cloud connector");
    let cp = &e.plan.connectors[c];
    let mut pending: Vec<(String, ImportChange)> = Vec::new();
    for (_, o, op) in e.state.pending_exports(c) {
        let t = &cp.types[o.object_type];
        let dn = o.new_dn.as_deref().unwrap_or(&o.dn).to_string();
        let values = |anchor: Value| {
            let mut attrs: Vec<(String, Value)> = Vec::new();
            for (slot, v) in o.current.iter().enumerate() {
                if Some(slot) == t.dn || Some(slot) == t.anchor || v.is_null() {
                    continue;
                }
                attrs.push((t.names[slot].to_string(), v.clone()));
            }
            attrs.push((t.names[t.anchor.expect("anchor")].to_string(), anchor));
            ImportChange::Upsert(ImportObject {
                dn: dn.clone(),
                object_type: t.name.to_string(),
                attrs,
            })
        };
        let change = match op {
            ExportOp::Add => values(Value::Null),
            ExportOp::Update => values(o.anchor.clone().unwrap_or(Value::Null)),
            ExportOp::Delete => ImportChange::delete_dn(o.dn.to_string()),
        };
        pending.push((format!("{} {dn}", op.as_str()), change));
    }
    pending.sort_by(|a, b| a.0.cmp(&b.0));
    pending.into_iter().map(|(_, c)| c).collect()
}

/// The users whose target object has a staged rename (its new DN not confirmed yet), from
/// the target DNs `CN=<sAMAccountName>,...` (`u<k>`, `u<k>x<n>`).
fn renaming(e: &Engine) -> BTreeSet<usize> {
    let c = e.plan.connector_index(CLOUD).expect("cloud connector");
    e.state
        .pending_exports(c)
        .filter(|(_, o, _)| o.new_dn.is_some())
        .filter_map(|(_, o, _)| {
            let sam = o.dn.strip_prefix("CN=")?.split(',').next()?;
            let k = sam.strip_prefix('u')?.split('x').next()?;
            k.parse().ok()
        })
        .collect()
}

/// Gives a confirmed add (anchor still NULL, last attribute) a fresh anchor.
fn fresh_anchor(change: &mut ImportChange, next: &mut u64) {
    if let ImportChange::Upsert(obj) = change
        && let Some((_, v)) = obj.attrs.last_mut()
        && v.is_null()
    {
        *next += 1;
        *v = Value::from(format!("cloud-{next}"));
    }
}

// ---------------------------------------------------------------------------------- running

/// One import of one connector.
#[derive(Clone)]
struct Import {
    connector: &'static str,
    changes: Vec<ImportChange>,
    full: bool,
}

fn show_value(v: &Value) -> String {
    idflow::eval::json::to_json(v).to_string()
}

fn show_object(o: &ImportObject) -> String {
    let mut s = format!("{} \"{}\"", o.object_type, o.dn);
    for (n, v) in &o.attrs {
        let _ = write!(s, " {n}={}", show_value(v));
    }
    s
}

fn show_batch(batch: &[Import]) -> String {
    let mut s = String::new();
    for imp in batch {
        let _ = writeln!(
            s,
            "  import \"{}\"{}:",
            imp.connector,
            if imp.full { " (full)" } else { "" }
        );
        for c in &imp.changes {
            match c {
                ImportChange::Upsert(o) => {
                    let _ = writeln!(s, "    upsert {}", show_object(o));
                }
                ImportChange::Partial(o) => {
                    let _ = writeln!(s, "    partial {}", show_object(o));
                }
                ImportChange::Delete { anchor, dn } => {
                    let _ = writeln!(s, "    delete {anchor:?} {dn:?}");
                }
                ImportChange::Record(d, o) => {
                    let _ = writeln!(s, "    record {d:?} {}", show_object(o));
                }
                ImportChange::Unchanged(k) => {
                    let _ = writeln!(s, "    unchanged {k:?}");
                }
            }
        }
    }
    s
}

fn apply(e: &mut Engine, batch: &[Import], mode: Mode) -> SyncReport {
    for imp in batch {
        let c = e.plan.connector_index(imp.connector).expect("connector");
        let report = e.import(c, imp.changes.clone(), imp.full);
        assert!(
            report.rejected.is_empty(),
            "rejected: {:?}",
            report.rejected
        );
    }
    e.sync(mode)
}

fn errors(r: &SyncReport) -> Vec<String> {
    let mut v: Vec<String> = r
        .errors
        .iter()
        .map(|e| format!("{}: {}", e.category.as_str(), e.message))
        .collect();
    v.sort();
    v
}

fn dump(e: &Engine) -> String {
    idflow::engine::dump::state(&e.plan, &e.state)
}

/// A line diff (longest common subsequence), `-` for D only, `+` for F only.
fn diff(a: &str, b: &str) -> String {
    let a: Vec<&str> = a.lines().collect();
    let b: Vec<&str> = b.lines().collect();
    let (n, m) = (a.len(), b.len());
    let mut lcs = vec![vec![0u32; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j) = (0, 0);
    let mut out = String::new();
    while i < n || j < m {
        if i < n && j < m && a[i] == b[j] {
            let _ = writeln!(out, "  {}", a[i]);
            i += 1;
            j += 1;
        } else if j < m && (i == n || lcs[i][j + 1] >= lcs[i + 1][j]) {
            let _ = writeln!(out, "+ {}", b[j]);
            j += 1;
        } else {
            let _ = writeln!(out, "- {}", a[i]);
            i += 1;
        }
    }
    out
}

/// The batches of one step: the changes of the directories, then an import per connector.
fn step_batch(
    model: &mut Model,
    rng: &mut Rng,
    d: &Engine,
    f: &Engine,
) -> Result<Vec<Import>, String> {
    let mut batch = Vec::new();
    if rng.chance(50) {
        // The staged exports of D and F are the same when their dumps were, so what their
        // confirmation imports must be too: computed from both, with the same random draws.
        let anchor = model.next_cloud_anchor;
        let from_f = model.confirmation(&mut Rng(rng.0), f);
        model.next_cloud_anchor = anchor;
        let confirm = model.confirmation(rng, d);
        let (sd, sf) = (
            show_batch(&[Import {
                connector: CLOUD,
                changes: confirm.clone(),
                full: false,
            }]),
            show_batch(&[Import {
                connector: CLOUD,
                changes: from_f,
                full: false,
            }]),
        );
        if sd != sf {
            return Err(format!(
                "export confirmation differs (- delta, + full):\n{}",
                diff(&sd, &sf)
            ));
        }
        if !confirm.is_empty() {
            batch.push(Import {
                connector: CLOUD,
                changes: confirm,
                full: false,
            });
        }
    }
    model.renaming = renaming(d);
    for _ in 0..1 + rng.below(5) {
        model.mutate(rng);
    }
    model.settle();
    for connector in [AD, HR] {
        let full = rng.chance(5);
        let changes = model.import_batch(rng, connector, full);
        if !changes.is_empty() || full {
            batch.push(Import {
                connector,
                changes,
                full,
            });
        }
    }
    // The connectors' imports come in a random order.
    if batch.len() > 1 && rng.chance(50) {
        batch.reverse();
    }
    Ok(batch)
}

/// The difference between the delta engine (and its last report) and the full one, if any:
/// their dumps and their sync errors.
fn compare(d: &Engine, rd: &SyncReport, f: &Engine, rf: &SyncReport) -> Option<String> {
    let (dd, df) = (dump(d), dump(f));
    let (ed, ef) = (errors(rd), errors(rf));
    if dd == df && ed == ef {
        return None;
    }
    let mut message = String::new();
    if dd != df {
        let _ = write!(
            message,
            "state differs (- delta, + full):\n{}",
            diff(&dd, &df)
        );
    }
    if ed != ef {
        let _ = write!(
            message,
            "sync errors differ:\n  delta: {ed:#?}\n  full: {ef:#?}\n"
        );
    }
    Some(message)
}

struct Mismatch {
    seed: u64,
    step: usize,
    message: String,
    /// The batches up to the mismatching one.
    batches: Vec<Vec<Import>>,
}

/// Runs one seed; returns the first mismatch.
fn run_seed(bundle: &Bundle, profile: Profile, seed: u64, steps: usize) -> Result<(), Mismatch> {
    let mut rng = Rng::new(seed);
    let mut model = Model::new(profile);
    let mut d = engine(bundle);
    let mut f = engine(bundle);
    let mut history = String::new();
    let mut batches = Vec::new();
    for step in 0..steps {
        let batch = match step_batch(&mut model, &mut rng, &d, &f) {
            Ok(b) => b,
            Err(message) => {
                return Err(Mismatch {
                    seed,
                    step,
                    message: format!("batches so far:\n{history}{message}"),
                    batches,
                });
            }
        };
        batches.push(batch.clone());
        let rd = apply(&mut d, &batch, Mode::Delta);
        let rf = apply(&mut f, &batch, Mode::Full);
        let _ = writeln!(history, "step {step}:\n{}", show_batch(&batch));
        if std::env::var_os("DELTA_SYNC_TRACE").is_some() {
            eprintln!(
                "== seed {seed} step {step}\n{}-- delta {rd:?}\n{}-- full {rf:?}\n{}",
                show_batch(&batch),
                dump(&d),
                dump(&f)
            );
        }
        if let Some(difference) = compare(&d, &rd, &f, &rf) {
            return Err(Mismatch {
                seed,
                step,
                message: format!("batches so far:\n{history}{difference}"),
                batches,
            });
        }
    }
    Ok(())
}

/// The first difference of delta and full sync over fixed batches.
fn first_difference(bundle: &Bundle, batches: &[Vec<Import>]) -> Option<String> {
    let mut d = engine(bundle);
    let mut f = engine(bundle);
    for batch in batches {
        let rd = apply_lenient(&mut d, batch, Mode::Delta);
        let rf = apply_lenient(&mut f, batch, Mode::Full);
        if let Some(difference) = compare(&d, &rd, &f, &rf) {
            return Some(difference);
        }
    }
    None
}

fn apply_lenient(e: &mut Engine, batch: &[Import], mode: Mode) -> SyncReport {
    for imp in batch {
        let c = e.plan.connector_index(imp.connector).expect("connector");
        e.import(c, imp.changes.clone(), imp.full);
    }
    e.sync(mode)
}

/// Shrinks failing batches: drops whole steps, then single changes, as long as delta and full
/// still differ with a difference containing `needle`. The batches are replayed as recorded,
/// so export confirmations may stop matching the staged exports: the needle keeps the search
/// on the original difference.
fn shrink(bundle: &Bundle, mut batches: Vec<Vec<Import>>, needle: &str) -> Vec<Vec<Import>> {
    let fails = |b: &[Vec<Import>]| first_difference(bundle, b).is_some_and(|d| d.contains(needle));
    assert!(
        fails(&batches),
        "the recorded batches do not fail with `{needle}`"
    );
    loop {
        let mut progress = false;
        let mut i = 0;
        while i < batches.len() {
            let mut candidate = batches.clone();
            candidate.remove(i);
            if fails(&candidate) {
                batches = candidate;
                progress = true;
            } else {
                i += 1;
            }
        }
        for step in 0..batches.len() {
            let mut imp = 0;
            while imp < batches[step].len() {
                let mut change = 0;
                while change < batches[step][imp].changes.len() {
                    let mut candidate = batches.clone();
                    candidate[step][imp].changes.remove(change);
                    if fails(&candidate) {
                        batches = candidate;
                        progress = true;
                    } else {
                        change += 1;
                    }
                }
                if batches[step][imp].changes.is_empty() && !batches[step][imp].full {
                    let mut candidate = batches.clone();
                    candidate[step].remove(imp);
                    if fails(&candidate) {
                        batches = candidate;
                        progress = true;
                        continue;
                    }
                }
                imp += 1;
            }
        }
        if !progress {
            return batches;
        }
    }
}

const SEEDS: u64 = 300;
const STEPS: usize = 30;

/// Runs every seed (or the one in `DELTA_SYNC_SEED`) and panics with the shortest mismatch.
fn property(mut profile: Profile, seeds: u64, steps: usize) {
    // DELTA_SYNC_RELAX lifts restrictions, e.g. `stable_reference_targets,hr_follows_ad` (to
    // whether an engine fix makes one unnecessary).
    for flag in std::env::var("DELTA_SYNC_RELAX")
        .unwrap_or_default()
        .split(',')
    {
        match flag.trim() {
            "" => {}
            "hr_follows_ad" => profile.hr_follows_ad = false,
            "stable_reference_targets" => profile.stable_reference_targets = false,
            "unreferenced_before_delete" => profile.unreferenced_before_delete = false,
            other => panic!("DELTA_SYNC_RELAX: unknown restriction `{other}`"),
        }
    }
    let bundle = bundle(true);
    let only: Option<u64> = std::env::var("DELTA_SYNC_SEED")
        .ok()
        .and_then(|s| s.parse().ok());
    // DELTA_SYNC_SEEDS and DELTA_SYNC_STEPS widen the search.
    let env = |name: &str| std::env::var(name).ok().and_then(|s| s.parse::<u64>().ok());
    let seeds = env("DELTA_SYNC_SEEDS").unwrap_or(seeds);
    let steps = env("DELTA_SYNC_STEPS").map_or(steps, |s| s as usize);
    let seeds: Vec<u64> = match only {
        Some(s) => vec![s],
        None => (0..seeds).collect(),
    };
    let mut failures: Vec<Mismatch> = Vec::new();
    for seed in seeds {
        if let Err(m) = run_seed(&bundle, profile, seed, steps) {
            failures.push(m);
        }
    }
    // DELTA_SYNC_SHRINK=<text in the difference> minimizes the failing batches of the seed.
    if let (Ok(needle), Some(first)) = (std::env::var("DELTA_SYNC_SHRINK"), failures.first()) {
        let small = shrink(&bundle, first.batches.clone(), &needle);
        let mut text = String::new();
        for (i, b) in small.iter().enumerate() {
            let _ = writeln!(text, "step {i}:\n{}", show_batch(b));
        }
        panic!(
            "seed {} shrunk to:\n{text}{}",
            first.seed,
            first_difference(&bundle, &small).unwrap_or_default()
        );
    }
    if let Some(first) = failures.iter().min_by_key(|m| (m.step, m.message.len())) {
        let seeds: Vec<String> = failures
            .iter()
            .map(|m| format!("{}@{}", m.seed, m.step))
            .collect();
        panic!(
            "delta and full sync differ for {} seed(s) (seed@step): {}\n\
             smallest: seed {} step {} (rerun with DELTA_SYNC_SEED={})\n{}",
            failures.len(),
            seeds.join(" "),
            first.seed,
            first.step,
            first.seed,
            first.message
        );
    }
}

#[test]
fn delta_sync_equals_full_sync() {
    property(UNRESTRICTED, SEEDS, STEPS);
}

/// The restricted profile avoids the inputs of the engine bugs this test found (now fixed and
/// kept as `regression_*` tests); it stays for investigating (`DELTA_SYNC_RELAX`).
#[test]
fn delta_sync_equals_full_sync_restricted() {
    property(RESTRICTED, SEEDS / 4, STEPS);
}

/// After any step, a second delta sync with no new imports changes nothing: same dump, no
/// projection, join, metaverse update or provisioning. A second full sync changes nothing
/// either.
#[test]
fn second_sync_without_imports_changes_nothing() {
    let bundle = bundle(true);
    for seed in 0..60 {
        let mut rng = Rng::new(seed);
        let mut model = Model::new(RESTRICTED);
        let mut d = engine(&bundle);
        let mut f = engine(&bundle);
        for step in 0..STEPS {
            let batch = step_batch(&mut model, &mut rng, &d, &f).expect("no mismatch");
            apply(&mut d, &batch, Mode::Delta);
            apply(&mut f, &batch, Mode::Full);
            for (e, mode) in [(&d, Mode::Delta), (&f, Mode::Full)] {
                let before = dump(e);
                let mut again = e.clone();
                let r = again.sync(mode);
                let after = dump(&again);
                assert!(
                    before == after,
                    "seed {seed} step {step}: a second {mode:?} sync changed the state \
                     (- first, + second):\n{}",
                    diff(&before, &after)
                );
                let counts = [
                    ("projections", r.projections),
                    ("joins", r.joins),
                    ("disconnects", r.disconnects),
                    ("deletes", r.deletes),
                    ("mv_updates", r.mv_updates),
                    ("mv_deletes", r.mv_deletes),
                    ("provisions", r.provisions),
                    ("deprovisions", r.deprovisions),
                ];
                let nonzero: Vec<_> = counts.iter().filter(|(_, n)| *n != 0).collect();
                assert!(
                    nonzero.is_empty(),
                    "seed {seed} step {step}: a second {mode:?} sync did work: {nonzero:?}"
                );
                if mode == Mode::Delta {
                    // A delta sync only looks at disconnectors (which may join objects that
                    // arrived since) and objects in error (retried), never at other joined
                    // objects without a pending import.
                    let disconnectors = e
                        .state
                        .cs()
                        .iter()
                        .enumerate()
                        .filter(|(i, o)| {
                            !o.gone
                                && !o.placeholder
                                && (o.link.is_none()
                                    || e.state.in_error_cs().contains(&(*i as u32)))
                        })
                        .count();
                    assert!(
                        r.processed == disconnectors,
                        "seed {seed} step {step}: a second delta sync processed {} object(s), {disconnectors} disconnector(s)",
                        r.processed
                    );
                }
            }
        }
    }
}

/// The comparison detects a real difference: F misses one import of D's batch.
#[test]
fn comparison_detects_a_dropped_import() {
    let bundle = bundle(true);
    let mut rng = Rng::new(7);
    let mut model = Model::new(RESTRICTED);
    let mut d = engine(&bundle);
    let mut f = engine(&bundle);
    // Two users, one the manager of the other, and a worker.
    for k in [1, 2] {
        model.users[k].present = true;
        model.workers[k].wanted = true;
    }
    model.users[1].manager = Some(Ref::User(2));
    model.settle();
    let batch = vec![
        Import {
            connector: AD,
            changes: model.import_batch(&mut rng, AD, false),
            full: false,
        },
        Import {
            connector: HR,
            changes: model.import_batch(&mut rng, HR, false),
            full: false,
        },
    ];
    let rd = apply(&mut d, &batch, Mode::Delta);
    let rf = apply(&mut f, &batch, Mode::Full);
    assert_eq!(compare(&d, &rd, &f, &rf), None, "same batch, same state");

    // One more change; F misses it.
    model.users[2].department = Some("Engineering".into());
    model.users[2].rdn += 1;
    let changes = model.import_batch(&mut rng, AD, false);
    assert!(
        changes.len() == 2,
        "the rename rewrites the manager reference"
    );
    let full_batch = vec![Import {
        connector: AD,
        changes: changes.clone(),
        full: false,
    }];
    let mut dropped = full_batch.clone();
    let renamed = dropped[0]
        .changes
        .iter()
        .position(|c| matches!(c, ImportChange::Upsert(o) if o.dn.starts_with("CN=User2-")))
        .expect("the renamed user");
    dropped[0].changes.remove(renamed);
    let rd = apply(&mut d, &full_batch, Mode::Delta);
    let rf = apply(&mut f, &dropped, Mode::Full);
    let difference = compare(&d, &rd, &f, &rf).expect("the dumps differ");
    assert!(
        difference.contains(
            "- metaverse person [cloud:CN=u2,OU=Users,DC=cloud | contoso.com:CN=User2-1,"
        ),
        "the diff shows D's renamed person:\n{difference}"
    );
    assert!(
        difference.contains(
            "+ metaverse person [cloud:CN=u2,OU=Users,DC=cloud | contoso.com:CN=User2-0,"
        ),
        "the diff shows F's person under its old DN:\n{difference}"
    );

    // An error only one side reports is a difference too.
    let mut rf2 = rf.clone();
    rf2.errors.push(idflow::engine::model::SyncError {
        category: idflow::engine::model::ErrorCategory::DataMismatch,
        cs: None,
        mv: None,
        rule: None,
        code: None,
        message: "made up".into(),
    });
    let mut f2 = engine(&bundle);
    f2.state = d.state.clone();
    let difference = compare(&d, &rd, &f2, &rf2).expect("the errors differ");
    assert!(
        difference.contains("Data Mismatch: made up"),
        "{difference}"
    );
}

// ---------------------------------------------------------------------------------- reproductions
//
// Minimal reproductions of the differences the unrestricted generator found. The `bug_` ones
// are ignored until the engine is fixed (the restricted profile of the property test avoids
// their input); the others were fixed and stay as regression tests.

fn one(connector: &'static str, changes: Vec<ImportChange>) -> Vec<Import> {
    vec![Import {
        connector,
        changes,
        full: false,
    }]
}

fn upsert(o: ImportObject) -> ImportChange {
    ImportChange::Upsert(o)
}

/// Runs the steps on a delta engine and a full engine and panics at the first difference.
/// Returns the delta engine.
fn assert_lockstep(bundle: &Bundle, steps: &[Vec<Import>]) -> Engine {
    let mut d = engine(bundle);
    let mut f = engine(bundle);
    let mut history = String::new();
    for (i, batch) in steps.iter().enumerate() {
        let _ = writeln!(history, "step {i}:\n{}", show_batch(batch));
        let rd = apply(&mut d, batch, Mode::Delta);
        let rf = apply(&mut f, batch, Mode::Full);
        if let Some(difference) = compare(&d, &rd, &f, &rf) {
            panic!("delta and full sync differ after step {i}:\n{history}{difference}");
        }
    }
    d
}

/// The staged export of the target object with this DN, as (operation, attribute = value).
fn cloud_export(e: &Engine, dn: &str) -> Option<(ExportOp, Vec<(String, Value)>)> {
    let c = e.plan.connector_index(CLOUD)?;
    let (_, o, op) = e
        .state
        .pending_exports(c)
        .find(|(_, o, _)| o.new_dn.as_deref().unwrap_or(&o.dn) == dn)?;
    let t = &e.plan.connectors[c].types[o.object_type];
    let values = o
        .current
        .iter()
        .enumerate()
        .filter(|(_, v)| !v.is_null())
        .map(|(s, v)| (t.names[s].to_string(), v.clone()))
        .collect();
    Some((op, values))
}

/// An HR worker imported before the AD user it joins is a disconnector; when the user arrives
/// later, a full sync joins the worker (HR's department wins by precedence), a delta sync
/// never looks at the worker again.
#[test]

fn regression_delta_never_rejoins_disconnectors() {
    let bundle = bundle(false);
    let mut m = Model::new(UNRESTRICTED);
    m.users[1].present = true;
    m.workers[1].present = true;
    assert_lockstep(
        &bundle,
        &[
            one(HR, vec![upsert(m.worker_object(1))]),
            one(AD, vec![upsert(m.user_object(1))]),
        ],
    );
}

/// Regression (fixed in 2790190, found here first): outbound visits metaverse objects in id
/// order, so a reference to a person provisioned later in the same sync used to be dropped
/// until a later full sync. Both modes.
#[test]
fn outbound_reference_to_object_provisioned_later_in_the_same_sync() {
    let bundle = bundle(true);
    let mut m = Model::new(UNRESTRICTED);
    m.users[1].present = true;
    m.users[2].present = true;
    m.users[1].manager = Some(Ref::User(2));
    for mode in [Mode::Delta, Mode::Full] {
        let mut e = engine(&bundle);
        // User 1 comes first: it is projected (and visited by outbound) before user 2.
        let batch = one(AD, vec![upsert(m.user_object(1)), upsert(m.user_object(2))]);
        let r = apply(&mut e, &batch, mode);
        let (op, values) = cloud_export(&e, "CN=u1,OU=Users,DC=cloud").expect("u1 is exported");
        assert_eq!(op, ExportOp::Add);
        let manager = values.iter().find(|(n, _)| n == "manager").map(|(_, v)| v);
        assert_eq!(
            manager,
            Some(&Value::Ref("CN=u2,OU=Users,DC=cloud".into())),
            "{mode:?}: u1's manager is u2, provisioned in the same sync; unresolved: {:?}\n{}",
            r.unresolved_references,
            dump(&e)
        );
    }
}

/// Regression (fixed in 2790190): a person is provisioned to the target in a later run (it
/// stops being filtered); the objects whose outbound references point at it must be
/// revisited by a delta sync too.
#[test]
fn delta_revisits_outbound_references_when_their_target_is_provisioned() {
    let bundle = bundle(true);
    let mut m = Model::new(UNRESTRICTED);
    m.users[1].present = true;
    m.users[2].present = true;
    m.users[1].manager = Some(Ref::User(2));
    m.users[2].department = Some("Contractors".into()); // filtered: not provisioned
    // User 2 first: it has the lower metaverse id, so a full sync provisions it before it
    // visits user 1.
    let first = one(AD, vec![upsert(m.user_object(2)), upsert(m.user_object(1))]);
    m.users[2].department = Some("Sales".into());
    let second = one(AD, vec![upsert(m.user_object(2))]);
    assert_lockstep(&bundle, &[first, second]);
}

/// The other direction: a person whose manager is exported to the target stops being
/// provisioned (it becomes filtered). A delta sync does not revisit the referrer, whose
/// export keeps the DN of the target object that is going away. (A full sync drops the
/// reference when it visits the referrer after the deprovisioning, as here; visited before,
/// it too keeps it until the next run.)
#[test]

fn regression_outbound_reference_to_deprovisioned_object_kept() {
    let bundle = bundle(true);
    for mode in [Mode::Delta, Mode::Full] {
        let mut m = Model::new(UNRESTRICTED);
        m.users[1].present = true;
        m.users[2].present = true;
        m.users[1].manager = Some(Ref::User(2));
        let mut e = engine(&bundle);
        // User 2 first: the reference resolves in the first run whatever the visiting order.
        let first = one(AD, vec![upsert(m.user_object(2)), upsert(m.user_object(1))]);
        apply(&mut e, &first, mode);
        let manager = |e: &Engine| {
            cloud_export(e, "CN=u1,OU=Users,DC=cloud")
                .and_then(|(_, v)| v.into_iter().find(|(n, _)| n == "manager"))
                .map(|(_, v)| v)
        };
        assert_eq!(
            manager(&e),
            Some(Value::Ref("CN=u2,OU=Users,DC=cloud".into())),
            "{mode:?}: first run"
        );
        m.users[2].department = Some("Contractors".into());
        apply(&mut e, &one(AD, vec![upsert(m.user_object(2))]), mode);
        assert_eq!(
            cloud_export(&e, "CN=u2,OU=Users,DC=cloud").map(|x| x.0),
            None,
            "{mode:?}: CN=u2 was never exported, so it simply disappears"
        );
        assert_eq!(
            manager(&e),
            None,
            "{mode:?}: u1's export still names CN=u2, which is no longer provisioned:\n{}",
            dump(&e)
        );
    }
}

/// A provisioned person's target DN changes (its sAMAccountName changes, so the `dn` flow
/// gives a new DN): the objects whose outbound references point at it keep exporting the old
/// DN in a delta sync, which does not revisit them; a full sync re-resolves them to the new
/// DN. (The same happens to group members.)
#[test]

fn regression_delta_keeps_old_dn_in_outbound_reference_after_rename() {
    let bundle = bundle(true);
    let mut m = Model::new(UNRESTRICTED);
    m.users[1].present = true;
    m.users[2].present = true;
    m.users[1].manager = Some(Ref::User(2));
    let first = one(AD, vec![upsert(m.user_object(2)), upsert(m.user_object(1))]);
    m.users[2].sam = "u2x0".into();
    let second = one(AD, vec![upsert(m.user_object(2))]);
    assert_lockstep(&bundle, &[first, second]);
}

/// Regression (fixed in 2790190): a user deleted in AD and restored (same objectGUID and DN)
/// before the target's staged delete is exported. The new person joins the deprovisioned
/// target object by its DN; its staged delete must be cancelled (it used to stay, so the
/// export would delete an object the metaverse wants).
#[test]
fn reprovision_cancels_a_pending_delete() {
    let bundle = bundle(false);
    let mut m = Model::new(UNRESTRICTED);
    m.users[1].present = true;
    let mut e = engine(&bundle);
    apply(
        &mut e,
        &one(AD, vec![upsert(m.user_object(1))]),
        Mode::Delta,
    );
    let confirm = anchored_confirmations(&e);
    apply(&mut e, &one(CLOUD, confirm), Mode::Delta);
    assert!(
        cloud_export(&e, "CN=u1,OU=Users,DC=cloud").is_none(),
        "confirmed"
    );
    let dn = m.user_object(1).dn;
    apply(
        &mut e,
        &one(AD, vec![ImportChange::delete_dn(dn)]),
        Mode::Delta,
    );
    assert_eq!(
        cloud_export(&e, "CN=u1,OU=Users,DC=cloud").map(|x| x.0),
        Some(ExportOp::Delete)
    );
    // Restored before the delete was exported.
    apply(
        &mut e,
        &one(AD, vec![upsert(m.user_object(1))]),
        Mode::Delta,
    );
    let export = cloud_export(&e, "CN=u1,OU=Users,DC=cloud").map(|x| x.0);
    assert_ne!(
        export,
        Some(ExportOp::Delete),
        "the restored person is linked to CN=u1, whose staged export is still a delete:\n{}",
        dump(&e)
    );
}

/// Regression (fixed in 2790190): a provisioned and confirmed target object is deleted in the
/// target while its person is still in scope. A full sync provisions it again; a delta sync
/// must too (it used not to: the person's values did not change, so outbound never visited
/// it).
#[test]
fn delta_reprovisions_after_a_target_delete() {
    let bundle = bundle(false);
    let mut m = Model::new(UNRESTRICTED);
    m.users[1].present = true;
    let add = one(AD, vec![upsert(m.user_object(1))]);
    let mut e = engine(&bundle);
    apply(&mut e, &add, Mode::Delta);
    let confirm = anchored_confirmations(&e);
    let delete = one(
        CLOUD,
        vec![ImportChange::delete_dn("CN=u1,OU=Users,DC=cloud")],
    );
    assert_lockstep(&bundle, &[add, one(CLOUD, confirm), delete]);
}

/// A person leaves the metaverse (its AD user moves out of the provisioning rule's scope; the
/// same happens when it is deleted) while another person's manager points at it. A full
/// sync recomputes the referrer and drops the reference; a delta sync leaves it pointing at
/// the deleted metaverse object.
#[test]

fn regression_delta_keeps_reference_to_deleted_mv_object() {
    let bundle = bundle(false);
    let mut m = Model::new(UNRESTRICTED);
    m.users[1].present = true;
    m.users[2].present = true;
    m.users[1].manager = Some(Ref::User(2));
    let first = one(AD, vec![upsert(m.user_object(2)), upsert(m.user_object(1))]);
    m.users[2].sam = "svc_u2".into();
    let second = one(AD, vec![upsert(m.user_object(2))]);
    let d = assert_lockstep(&bundle, &[first, second]);
    let dangling: Vec<String> = d
        .state
        .mv()
        .values()
        .flat_map(|o| o.attrs.iter().flat_map(|v| v.values().iter().cloned()))
        .filter_map(|v| match v {
            Value::Ref(r) => r
                .strip_prefix("mv:")
                .and_then(|id| id.parse::<u64>().ok())
                .filter(|id| !d.state.mv().contains_key(id))
                .map(|id| format!("mv:{id}")),
            _ => None,
        })
        .collect();
    assert!(
        dangling.is_empty(),
        "references to deleted metaverse objects: {dangling:?}"
    );
}

/// A reference to a deleted AD object stays in another object (a DN-valued attribute AD
/// does not maintain, or a source that keeps stale DNs); the object is later restored with
/// the same DN. The referrer was registered on the old, removed connector-space object, so a
/// delta sync does not re-resolve it when the restored object is projected; a full sync does.
#[test]

fn regression_delta_misses_reference_to_readded_object() {
    let bundle = bundle(false);
    let mut m = Model::new(UNRESTRICTED);
    m.users[1].present = true;
    m.users[2].present = true;
    m.users[1].manager = Some(Ref::User(2));
    m.users[2].sam = "svc_u2".into(); // out of scope: no person yet
    let first = one(AD, vec![upsert(m.user_object(2)), upsert(m.user_object(1))]);
    let delete = one(AD, vec![ImportChange::delete_dn(m.user_object(2).dn)]);
    m.users[2].sam = "u2".into();
    let restored = one(AD, vec![upsert(m.user_object(2))]);
    assert_lockstep(&bundle, &[first, delete, restored]);
}

/// Not a delta-sync difference, found by the sync benchmark on the shipped default rules: "Out
/// to AD - User Exchange Hybrid" flows `proxyAddresses <- IIF(IsNullOrEmpty(
/// [cloudLegacyExchangeDN]), NULL, "x500:" & [cloudLegacyExchangeDN]) merge-case-insensitive`
/// back to AD, where only the x500 address is meant to be added to the user's addresses.
/// The engine resolves the outbound merge from the rule contributions alone: a NULL
/// contribution stages the removal of every existing address (for every AD user), and an
/// x500 value replaces the existing addresses instead of being merged into them.
#[test]

fn regression_outbound_merge_replaces_target_values() {
    let text = r#"
metaverse {
  object person {
    legacy string
  }
}
connector "ad" ad {
  object user anchor id {
    id               string
    legacyExchangeDN string
    proxyAddresses   string multi
  }
}
inbound rule "In from AD" {
  connector "ad"
  source user
  target person
  link provision
  precedence 1
  flow legacy <- [legacyExchangeDN]
}
outbound rule "Out to AD - x500" {
  connector "ad"
  source person
  target user
  link join
  precedence 2
  flow proxyAddresses <- IIF(IsNullOrEmpty([legacy]), NULL, "x500:" & [legacy]) merge-case-insensitive
}
"#;
    let mut e = engine(&common::bundle("merge.idf", text));
    let user = |legacy: Option<&str>| {
        let mut attrs = vec![
            ("id".to_string(), Value::from("1")),
            (
                "proxyAddresses".to_string(),
                Value::many(vec![Value::from("SMTP:a@contoso.com")]),
            ),
        ];
        if let Some(l) = legacy {
            attrs.push(("legacyExchangeDN".into(), Value::from(l)));
        }
        vec![upsert(ImportObject {
            dn: "CN=A,DC=contoso,DC=com".into(),
            object_type: "user".into(),
            attrs,
        })]
    };
    let ad = e.plan.connector_index("ad").expect("ad");
    e.import(ad, user(None), false);
    e.sync(Mode::Delta);
    let exports = idflow::engine::dump::exports(&e.plan, &e.state);
    assert!(
        exports.is_empty(),
        "no x500 address to add, so nothing to export; staged:\n{exports}"
    );
    e.import(ad, user(Some("/o=Org/cn=A")), false);
    e.sync(Mode::Delta);
    let exports = idflow::engine::dump::exports(&e.plan, &e.state);
    assert_eq!(
        exports,
        "export ad update user \"CN=A,DC=contoso,DC=com\"\n  proxyAddresses += \
         [\"x500:/o=Org/cn=A\"]\n",
        "the x500 address is added to the existing ones (one value add)"
    );
}

/// Two new users claim the same address of the target's unique proxyAddresses; the one
/// visited first keeps it, the other's value is withheld (Duplicate Attribute). The visiting
/// order is the metaverse id order, which follows the order the objects were projected, which
/// follows the connector-space ids of their placeholders, which are created in a different
/// order by the two modes: a full sync recomputes the metaverse objects linked to the target
/// connector first (it comes first), a delta sync in AD order. So delta and full give the
/// value to different users.
#[test]
#[ignore = "known limitation: among new objects, the first in processing order keeps a unique value; processing order follows metaverse ids, which differ between delta and full sync"]
fn known_limitation_duplicate_winner_differs_between_delta_and_full() {
    let bundle = bundle(false);
    let mut m = Model::new(UNRESTRICTED);
    // User 8 is imported before group 1 but projected after it (it starts out of scope), so
    // its AD object comes first and its target object second.
    m.users[8].present = true;
    m.users[8].sam = "svc_u8".into();
    m.groups[1].present = true;
    let s0 = one(
        AD,
        vec![upsert(m.user_object(8)), upsert(m.group_object(1))],
    );
    m.users[8].sam = "u8".into();
    let s1 = one(AD, vec![upsert(m.user_object(8))]);
    // References to users 3 and 6, not imported yet: placeholders.
    m.users[8].manager = Some(Ref::User(3));
    m.groups[1].members = vec![Ref::User(6)];
    let s2 = one(
        AD,
        vec![upsert(m.user_object(8)), upsert(m.group_object(1))],
    );
    // Users 3 and 6 arrive with the same address.
    for k in [3, 6] {
        m.users[k].present = true;
        m.users[k].proxies = vec![
            format!("SMTP:u{k}@contoso.com"),
            "smtp:shared0@contoso.com".into(),
        ];
    }
    let s3 = one(AD, vec![upsert(m.user_object(6)), upsert(m.user_object(3))]);
    assert_lockstep(&bundle, &[s0, s1, s2, s3]);
}

/// The target shows a value other than the exported one (changed there, or exported
/// differently). A full sync visits every metaverse object and stages an update that puts the
/// value back; a delta sync processes the imported target object but, the metaverse object's
/// values being unchanged, never runs outbound for it. (This may be meant, as in MIM, where
/// export flow follows metaverse changes; it is still a delta/full difference.)
#[test]

fn regression_delta_does_not_correct_target_drift() {
    let bundle = bundle(false);
    let mut m = Model::new(UNRESTRICTED);
    m.users[1].present = true;
    let add = one(AD, vec![upsert(m.user_object(1))]);
    let mut e = engine(&bundle);
    apply(&mut e, &add, Mode::Delta);
    let mut confirm = anchored_confirmations(&e);
    // The target shows another department.
    for c in &mut confirm {
        if let ImportChange::Upsert(o) = c {
            for (n, v) in &mut o.attrs {
                if n == "department" {
                    *v = Value::from("Changed in the cloud");
                }
            }
        }
    }
    assert_lockstep(&bundle, &[add, one(CLOUD, confirm)]);
}

/// A's manager B is deleted in AD while A itself does not change. A full sync recomputes A:
/// its manager reference no longer resolves, so the metaverse and the target drop it. A delta
/// sync processes only B's delete; it must revisit A, which refers to the removed object (in
/// the metaverse through B's connector-space object, in the target through B's target
/// object). With and without outbound reference flows, and with the target confirmed first
/// (so A's target object holds the manager before B goes).
#[test]
fn regression_delta_revisits_referrers_of_a_deleted_manager() {
    for outbound_refs in [false, true] {
        let bundle = bundle(outbound_refs);
        let mut m = Model::new(UNRESTRICTED);
        m.users[1].present = true;
        m.users[2].present = true;
        m.users[1].manager = Some(Ref::User(2));
        let add = one(AD, vec![upsert(m.user_object(2)), upsert(m.user_object(1))]);
        let mut e = engine(&bundle);
        apply(&mut e, &add, Mode::Delta);
        let confirm = anchored_confirmations(&e);
        let delete = one(AD, vec![ImportChange::delete_dn(m.user_object(2).dn)]);
        let d = assert_lockstep(&bundle, &[add, one(CLOUD, confirm), delete]);
        let person = |sam: &str| {
            d.state.mv().values().find(|o| {
                let t = &d.plan.metaverse[o.object_type];
                t.slot("accountName")
                    .is_some_and(|s| o.attrs[s] == Value::from(sam))
            })
        };
        assert!(
            person("u2").is_none(),
            "B's person is deleted:\n{}",
            dump(&d)
        );
        let a = person("u1").expect("A's person stays");
        let slot = d.plan.metaverse[a.object_type].slot("manager").unwrap();
        assert!(
            a.attrs[slot].is_null(),
            "A's manager is dropped with B:\n{}",
            dump(&d)
        );
        if outbound_refs {
            assert!(
                cloud_export(&d, "CN=u1,OU=Users,DC=cloud").is_some(),
                "the removal of A's manager is exported:\n{}",
                dump(&d)
            );
        }
    }
}

/// A group imported before its members resolves its member references once, after every
/// inbound change of the sync, not each time one of its members is projected
/// (docs/DECISIONS.md 37): the sync counts one update of the group besides its own
/// recomputation, and the group holds every member, in a full and in a delta sync alike. A
/// bundle with a random inbound flow resolves them as each member is linked, as before.
#[test]
fn a_group_resolves_its_members_once_when_they_are_linked_after_it() {
    let mut m = Model::new(UNRESTRICTED);
    for k in 0..4 {
        m.users[k].present = true;
    }
    m.groups[0].present = true;
    m.groups[0].members = (0..4).map(Ref::User).collect();
    let mut changes = vec![upsert(m.group_object(0))];
    changes.extend((0..4).map(|k| upsert(m.user_object(k))));
    let batch = one(AD, changes);
    for (bundle, updates) in [(bundle(false), 5 + 1), (random_bundle(), 5 + 4)] {
        for mode in [Mode::Full, Mode::Delta] {
            let mut e = engine(&bundle);
            let r = apply(&mut e, &batch, mode);
            assert_eq!(r.projections, 5, "{}", dump(&e));
            assert_eq!(
                r.mv_updates,
                updates,
                "{mode:?}: the group's own update and its references' (random flows: {})\n{}",
                !e.plan.references_apart,
                dump(&e)
            );
            let group = e
                .state
                .mv()
                .values()
                .find(|o| e.plan.metaverse[o.object_type].name == "group".into())
                .expect("the group is projected");
            let slot = e.plan.metaverse[group.object_type].slot("member").unwrap();
            assert_eq!(group.attrs[slot].values().len(), 4, "{}", dump(&e));
        }
    }
}

/// A person is provisioned with an address of the target's unique proxyAddresses (staged, not
/// exported yet); then an object the engine did not provision appears in the target holding
/// the same address. A full sync revisits the person and withholds the address (Duplicate
/// Attribute); a delta sync once processed only the new target object (a disconnector) and
/// left the duplicate in the person's staged export: it now revisits the objects whose unique
/// values an imported object collides with. Found while checking which mutations the property
/// test catches; its generator only imports confirmations into the target, so it never
/// produces this input.
#[test]
fn regression_delta_revisits_holders_of_a_unique_value_a_new_target_object_takes() {
    let bundle = bundle(true);
    let mut m = Model::new(UNRESTRICTED);
    m.users[6].present = true;
    m.users[6].proxies = vec![
        "SMTP:u6@contoso.com".into(),
        "smtp:shared0@contoso.com".into(),
    ];
    let first = one(AD, vec![upsert(m.user_object(6))]);
    let holder = one(
        CLOUD,
        vec![upsert(ImportObject {
            dn: "CN=u3,OU=Users,DC=cloud".into(),
            object_type: "user".into(),
            attrs: vec![
                ("accountName".into(), Value::from("u3")),
                (
                    "proxyAddresses".into(),
                    Value::many(vec![Value::from("smtp:shared0@contoso.com")]),
                ),
                ("cloudAnchor".into(), Value::from("cloud-4")),
            ],
        })],
    );
    assert_lockstep(&bundle, &[first, holder]);
}

// ---------------------------------------------------------------------------------- parallel sync
//
// A sync computes outbound sync on several threads and applies the updates in the serial
// order (`Engine::threads`). The same generator drives a serial engine (one thread) and a
// parallel one (three threads, whatever the machine has) in lockstep; after every step their
// canonical dumps, their reports (exactly: counts, errors in order, unresolved references)
// and their change logs must be equal. `PARALLEL_SYNC_SEEDS=n` widens the search.

/// The test bundle, with flows that draw random values (`Guid`, `RandomNum`): seeded per
/// object, so they do not depend on the thread that computes them.
fn random_bundle() -> Bundle {
    edited(
        "delta-sync-random.idf",
        &[
            (
                "  flow mail           <- [mail]\n  flow proxyAddresses <- [proxyAddresses]",
                "  flow mail           <- IIF(IsPresent([mail]), [mail], \"r\" & RandomNum(1, 1000000) & \"@contoso.com\")\n  flow proxyAddresses <- [proxyAddresses]",
            ),
            (
                "  flow title          <- [title]\n  flow mail           <- [mail]",
                "  flow title          <- IIF(IsPresent([title]), [title], \"t-\" & Guid())\n  flow mail           <- [mail]",
            ),
        ],
    )
}

/// The test bundle with `edits` made, each replacing text the bundle must have.
fn edited(name: &str, edits: &[(&str, &str)]) -> Bundle {
    let mut text = BUNDLE.to_string();
    for (from, to) in edits {
        assert!(text.contains(from), "the bundle has `{from}`");
        text = text.replacen(from, to, 1);
    }
    common::bundle(name, &text)
}

/// The test bundle with an inbound flow of the projected users that fails for some values:
/// objects not projected (their projection computed ahead of their turn is dropped), errors
/// in the reports.
fn failing_projection_bundle() -> Bundle {
    edited(
        "delta-sync-failing-projection.idf",
        &[(
            "  flow department     <- [department]\n  flow mail",
            "  flow department     <- IIF([department] = \"Sales\", Error(\"sales is kept apart\"), [department])\n  flow mail",
        )],
    )
}

/// The test bundle, with flows that fail for some values (inbound from HR, outbound to the
/// cloud): objects in error, errors in the reports.
fn failing_bundle() -> Bundle {
    edited(
        "delta-sync-failing.idf",
        &[
            (
                "  flow title      <- [title]",
                "  flow title      <- IIF([title] = \"Manager\", Error(\"managers are kept in HR\"), [title])",
            ),
            (
                "  flow department     <- [department]\n  flow title          <- [title]",
                "  flow department     <- IIF([department] = \"contractors\", Error(\"no contractors\"), [department])\n  flow title          <- [title]",
            ),
        ],
    )
}

fn engine_with_threads(bundle: &Bundle, threads: usize) -> Engine {
    let mut e = engine(bundle);
    e.threads = threads;
    e
}

/// The difference between the serial engine (and its last report) and the parallel one, if
/// any: their dumps, their reports and their change logs.
fn compare_parallel(s: &Engine, rs: &SyncReport, p: &Engine, rp: &SyncReport) -> Option<String> {
    let (ds, dp) = (dump(s), dump(p));
    let mut message = String::new();
    if ds != dp {
        let _ = write!(
            message,
            "state differs (- serial, + parallel):\n{}",
            diff(&ds, &dp)
        );
    }
    if rs != rp {
        let _ = write!(
            message,
            "reports differ:\n  serial: {rs:#?}\n  parallel: {rp:#?}\n"
        );
    }
    let (cs, cp) = (s.state.changes(), p.state.changes());
    if cs != cp {
        let _ = write!(
            message,
            "change logs differ:\n  serial: {cs:?}\n  parallel: {cp:?}\n"
        );
    }
    (!message.is_empty()).then_some(message)
}

/// Runs one seed on a serial and a parallel engine; returns the first difference.
fn run_parallel_seed(
    bundle: &Bundle,
    profile: Profile,
    mode: Mode,
    seed: u64,
    steps: usize,
) -> Result<(), String> {
    let mut rng = Rng::new(seed);
    let mut model = Model::new(profile);
    let mut s = engine_with_threads(bundle, 1);
    let mut p = engine_with_threads(bundle, 3);
    let mut history = String::new();
    for step in 0..steps {
        let batch =
            step_batch(&mut model, &mut rng, &s, &p).map_err(|m| format!("step {step}: {m}"))?;
        let _ = writeln!(history, "step {step}:\n{}", show_batch(&batch));
        let rs = apply(&mut s, &batch, mode);
        let rp = apply(&mut p, &batch, mode);
        if let Some(difference) = compare_parallel(&s, &rs, &p, &rp) {
            return Err(format!(
                "step {step}\nbatches so far:\n{history}{difference}"
            ));
        }
    }
    Ok(())
}

#[test]
fn parallel_sync_equals_serial_sync() {
    let seeds: u64 = std::env::var("PARALLEL_SYNC_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    let cases = [
        ("outbound references", bundle(true), UNRESTRICTED),
        ("outbound references, restricted", bundle(true), RESTRICTED),
        ("no outbound references", bundle(false), UNRESTRICTED),
        ("random flows", random_bundle(), UNRESTRICTED),
        ("failing flows", failing_bundle(), UNRESTRICTED),
        (
            "failing projections",
            failing_projection_bundle(),
            UNRESTRICTED,
        ),
    ];
    let mut failures = Vec::new();
    for (name, bundle, profile) in &cases {
        for mode in [Mode::Full, Mode::Delta] {
            for seed in 0..seeds {
                if let Err(m) = run_parallel_seed(bundle, *profile, mode, seed, STEPS) {
                    failures.push((format!("{name}, {mode:?}, seed {seed}"), m));
                }
            }
        }
    }
    if let Some((first, message)) = failures.iter().min_by_key(|(_, m)| m.len()) {
        let all: Vec<&str> = failures.iter().map(|(n, _)| n.as_str()).collect();
        panic!(
            "parallel and serial sync differ in {} run(s): {}\nsmallest: {first}\n{message}",
            failures.len(),
            all.join("; ")
        );
    }
}

/// The comparison detects a real difference: in the state, in the report (an error out of
/// order) and in the change log.
#[test]
fn parallel_comparison_detects_a_difference() {
    let bundle = bundle(true);
    let mut rng = Rng::new(3);
    let mut model = Model::new(UNRESTRICTED);
    let mut s = engine_with_threads(&bundle, 1);
    let mut p = engine_with_threads(&bundle, 3);
    for k in 0..4 {
        model.users[k].present = true;
    }
    model.users[1].manager = Some(Ref::User(2));
    model.settle();
    let batch = vec![Import {
        connector: AD,
        changes: model.import_batch(&mut rng, AD, false),
        full: false,
    }];
    let rs = apply(&mut s, &batch, Mode::Full);
    let rp = apply(&mut p, &batch, Mode::Full);
    assert_eq!(
        compare_parallel(&s, &rs, &p, &rp),
        None,
        "same batch, same result"
    );
    // As if both were saved.
    s.state.clear_changes();
    p.state.clear_changes();

    // The parallel engine misses a change of user 2.
    model.users[2].display = Some("Renamed".into());
    let changes = model.import_batch(&mut rng, AD, false);
    let rs = apply(
        &mut s,
        &[Import {
            connector: AD,
            changes,
            full: false,
        }],
        Mode::Full,
    );
    let rp = p.sync(Mode::Full);
    let difference = compare_parallel(&s, &rs, &p, &rp).expect("the dumps differ");
    assert!(
        difference.contains("state differs") && difference.contains("Renamed"),
        "the diff shows the new display name:\n{difference}"
    );
    assert!(
        difference.contains("change logs differ"),
        "the change logs differ too:\n{difference}"
    );

    // Two errors in another order are a difference.
    let error = |message: &str| idflow::engine::model::SyncError {
        category: idflow::engine::model::ErrorCategory::DataMismatch,
        cs: None,
        mv: None,
        rule: None,
        code: None,
        message: message.into(),
    };
    let mut r1 = rs.clone();
    r1.errors = vec![error("one"), error("two")];
    let mut r2 = rs.clone();
    r2.errors = vec![error("two"), error("one")];
    let difference = compare_parallel(&s, &r1, &s, &r2).expect("the reports differ");
    assert!(difference.contains("reports differ"), "{difference}");
}

/// A sync that stops at the error limit visits no metaverse object outbound (or stops part of
/// the way through the outbound pass); the next delta sync visits what it left, so the
/// exports end as a full sync stages them. Before, the users renamed ahead of the errors kept
/// their old names in the target until they changed again.
#[test]
fn a_delta_sync_after_a_stop_at_the_error_limit_visits_what_the_stop_left() {
    let text = r#"
metaverse {
  object person {
    name string
    code integer
  }
}
connector "src" csv {
  object user anchor id {
    id   string
    name string
    code string
  }
}
connector "tgt" jsonl {
  object user anchor id {
    id   string
    name string
  }
}
inbound rule "In" {
  connector "src"  source user  target person  link provision  precedence 1
  flow name <- [name]
  flow code <- CNum([code])
}
outbound rule "Out" {
  connector "tgt"  source person  target user  link provision  precedence 1
  flow dn   <- "CN=" & [code] & ",DC=t"
  flow name <- IIF([name] = "bad", CStr(CNum([name])), [name])
}
"#;
    let bundle = common::bundle("stop.idf", text);
    // Users below `renamed` get a new name, those from `10 - broken` a code that is not a
    // number (an inbound error), users 3 and 4 with `bad` a name the outbound flow fails on.
    let users = |renamed: usize, broken: usize, bad: bool| -> Vec<ImportChange> {
        (0..10)
            .map(|i| {
                let name = if bad && (i == 3 || i == 4) {
                    "bad".to_string()
                } else if i < renamed {
                    format!("new{i}")
                } else {
                    format!("u{i}")
                };
                let code = if i >= 10 - broken {
                    "x".to_string()
                } else {
                    i.to_string()
                };
                upsert(ImportObject {
                    dn: format!("CN=u{i},DC=s"),
                    object_type: "user".into(),
                    attrs: vec![
                        ("id".into(), Value::from(format!("{i}"))),
                        ("name".into(), Value::from(name)),
                        ("code".into(), Value::from(code)),
                    ],
                })
            })
            .collect()
    };
    let run = |stop_at: Option<usize>, renamed: usize, broken: usize, bad: bool| {
        let mut e = engine(&bundle);
        let src = e.plan.connector_index("src").expect("src");
        e.import(src, users(0, 0, false), true);
        e.sync(Mode::Full);
        e.import(src, users(renamed, broken, bad), true);
        if let Some(limit) = stop_at {
            e.error_limit = limit;
            let r = e.sync(Mode::Delta);
            assert_eq!(r.status, RunStatus::StoppedErrorLimit, "{r:#?}");
            e.error_limit = idflow::engine::DEFAULT_ERROR_LIMIT;
        }
        e.sync(Mode::Delta);
        e
    };
    let exports = |e: &Engine| idflow::engine::dump::exports(&e.plan, &e.state);
    // Six users renamed, then four whose code is not a number: two errors stop the sync
    // before its outbound pass. Then every user renamed, two of them to a name the outbound
    // flow fails on: the outbound pass stops at the second.
    for (renamed, broken, bad) in [(6, 4, false), (10, 0, true)] {
        let stopped = run(Some(2), renamed, broken, bad);
        let straight = run(None, renamed, broken, bad);
        assert!(
            exports(&straight).contains("new5"),
            "{}",
            exports(&straight)
        );
        assert_eq!(exports(&stopped), exports(&straight));
        assert_eq!(
            idflow::engine::dump::state(&stopped.plan, &stopped.state),
            idflow::engine::dump::state(&straight.plan, &straight.state)
        );
    }
}
