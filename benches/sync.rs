//! Sync engine benchmark: a FULL sync of N generated AD users through the shipped default
//! rules (rules/entra-default: AD connector "contoso.com", Entra connector
//! "contoso.onmicrosoft.com"), in memory.
//!
//! Each user has a value for every attribute of the AD `user` type (as in benches/eval.rs),
//! with realistic identity values: a unique 16-byte objectGUID (and the same bytes in
//! mS-DS-ConsistencyGuid, as after the source-anchor writeback), a valid objectSid,
//! sAMAccountName, userPrincipalName, mail, proxyAddresses, userAccountControl 512 (enabled)
//! or 514 (disabled, one in ten), department, displayName, givenName, sn, and a manager
//! hierarchy (user i reports to user i / 10); every other reference attribute points at the
//! manager too, so references resolve to real users.
//!
//! The criterion bench measures `sync(Mode::Full)` of N = 10,000 staged users (throughput in
//! users per second), each iteration from a clone of the staged engine: the first full sync
//! (which provisions every user) and a second one (nothing changed, every object linked),
//! each on one thread and on every core (`Engine::threads`). Before it, one timing of a larger
//! run (N = 100,000, or `SYNC_BENCH_LARGE_N`; 0 skips it) is printed: staging import, full
//! sync, a second full sync on one thread and on every core, a delta sync after 1% of the
//! users were re-imported with a changed department, and a delta sync with nothing pending.
//!
//! Sanity checks before timing: every user projected, one Entra add per user, no sync errors,
//! no unresolved references. Every user also gets an AD update export from "Out to AD - User
//! Exchange Hybrid" (proxyAddresses and msExchUCVoiceMailSettings removed: see
//! `bug_outbound_merge_replaces_target_values` in tests/delta_sync.rs); it is printed, not
//! asserted.
//!
//! Run: `cargo bench --bench sync`.

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use idflow::engine::Engine;
use idflow::engine::import::{ImportChange, ImportObject};
use idflow::engine::sync::{Mode, SyncReport};
use idflow::sema::Bundle;
use idflow::sema::schema::ObjectDef;
use idflow::sema::types::Base;
use idflow::value::Value;
use std::hint::black_box;
use std::path::PathBuf;
use std::time::{Duration, Instant};

const AD: &str = "contoso.com";
const ENTRA: &str = "contoso.onmicrosoft.com";
const N: usize = 10_000;
const LARGE_N: usize = 100_000;

fn bundle() -> Bundle {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("rules/entra-default");
    let files = idflow::source::collect_idf_files(&[dir]).expect("bundle");
    let map = idflow::source::load(&files).expect("bundle loads");
    let checked = idflow::frontend::check(&map);
    assert!(!checked.has_errors(), "the default bundle has errors");
    checked.bundle
}

fn dn(i: usize) -> String {
    format!("CN=User {i:06},OU=Users,OU=CORP,DC=contoso,DC=com")
}

/// 16 bytes unique per user (and per `kind` of binary attribute).
fn unique_bytes(kind: u8, i: usize) -> Vec<u8> {
    let mut b = vec![0u8; 16];
    let x = (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ u64::from(kind) << 56;
    b[..8].copy_from_slice(&x.to_le_bytes());
    b[8..].copy_from_slice(&(i as u64).to_le_bytes());
    b[15] = kind;
    b
}

/// S-1-5-21-1004336348-1177238915-682003330-<1000 + i> in binary form.
fn sid(i: usize) -> Vec<u8> {
    let mut sid = vec![1u8, 5, 0, 0, 0, 0, 0, 5];
    for sub in [
        21u32,
        1_004_336_348,
        1_177_238_915,
        682_003_330,
        1000 + i as u32,
    ] {
        sid.extend_from_slice(&sub.to_le_bytes());
    }
    sid
}

const DEPARTMENTS: &[&str] = &["Sales", "Engineering", "Finance", "Marketing", "Support"];
const GIVEN: &[&str] = &["Alice", "Bob", "Carol", "Dave", "Erin", "Frank", "Grace"];
const SURNAMES: &[&str] = &["Adams", "Brown", "Cole", "Dunn", "Evans", "Fox", "Green"];

/// A generated AD user: every attribute of the `user` type has a value.
fn user(obj: &ObjectDef, i: usize, department: &str) -> ImportObject {
    let sam = format!("user{i:06}");
    let given = GIVEN[i % GIVEN.len()];
    let sn = SURNAMES[(i / GIVEN.len()) % SURNAMES.len()];
    let manager = if i == 0 { None } else { Some(dn(i / 10)) };
    let mut attrs = Vec::with_capacity(obj.attrs.len());
    for a in obj.attrs.values() {
        let v = match (a.name.as_str(), a.base) {
            ("objectGUID" | "mS-DS-ConsistencyGuid", _) => Value::bin(unique_bytes(0, i)),
            ("objectSid" | "msExchMasterAccountSid" | "msRTCSIP-OriginatorSid", _) => {
                Value::bin(sid(i))
            }
            ("sAMAccountName" | "mailNickname", _) => Value::from(sam.clone()),
            ("cn", _) => Value::from(format!("User {i:06}")),
            ("userPrincipalName" | "mail", _) => Value::from(format!("{sam}@contoso.com")),
            ("proxyAddresses", _) => Value::many(vec![
                Value::from(format!("SMTP:{sam}@contoso.com")),
                Value::from(format!("smtp:{sam}@contoso.mail.onmicrosoft.com")),
                Value::from(format!("SIP:{sam}@contoso.com")),
            ]),
            ("userAccountControl", _) => Value::Num(if i % 10 == 3 { 514 } else { 512 }),
            ("department", _) => Value::from(department),
            ("displayName", _) => Value::from(format!("{given} {sn} ({i})")),
            ("givenName", _) => Value::from(given),
            ("sn", _) => Value::from(sn),
            ("pwdLastSet", _) => Value::Num(133_500_000_000_000_000 + i as i64),
            ("msExchRecipientTypeDetails", _) if i.is_multiple_of(3) => Value::Null,
            ("msExchRecipientTypeDetails", _) => Value::Num(1),
            ("isCriticalSystemObject", _) => Value::Null,
            ("adminDescription", _) => Value::Null,
            ("countryCode", _) => Value::Num(840),
            (_, Base::Ref) => match &manager {
                None => Value::Null,
                Some(m) if a.multi => Value::many(vec![Value::Ref(m.as_str().into())]),
                Some(m) => Value::Ref(m.as_str().into()),
            },
            (_, Base::Str) if a.multi => Value::many(vec![
                Value::from(format!("{} one", a.name)),
                Value::from("two"),
            ]),
            (_, Base::Str) => Value::from(format!("{} of {sam}", a.name)),
            (_, Base::Num) => Value::Num(i as i64),
            (_, Base::Bool) => Value::Bool(i.is_multiple_of(2)),
            (_, Base::Bin) if a.multi => Value::many(vec![Value::bin(unique_bytes(2, i))]),
            (_, Base::Bin) => Value::bin(unique_bytes(1, i)),
            _ => Value::Null,
        };
        if !v.is_null() {
            attrs.push((a.name.clone(), v));
        }
    }
    ImportObject {
        dn: dn(i),
        object_type: "user".into(),
        attrs,
    }
}

fn users(obj: &ObjectDef, n: usize) -> Vec<ImportChange> {
    (0..n)
        .map(|i| ImportChange::Upsert(user(obj, i, DEPARTMENTS[i % DEPARTMENTS.len()])))
        .collect()
}

fn engine(bundle: &Bundle) -> Engine {
    let mut e = Engine::new(bundle, idflow::testrun::test_now());
    for c in 0..e.plan.connectors.len() {
        let name = e.plan.connectors[c].name.clone();
        e.set_params(c, idflow::testrun::default_params(&name));
    }
    e
}

/// An engine with `n` users staged by a full import, and the time the import took.
fn staged(bundle: &Bundle, obj: &ObjectDef, n: usize) -> (Engine, Duration) {
    let mut e = engine(bundle);
    let ad = e.plan.connector_index(AD).expect("AD connector");
    let changes = users(obj, n);
    let t = Instant::now();
    let report = e.import(ad, changes, true);
    let took = t.elapsed();
    assert_eq!(
        report.adds, n,
        "every user is staged: {:?}",
        report.rejected
    );
    (e, took)
}

/// The synced result is sane: every user projected, one Entra add per user, no errors and no
/// unresolved references. (Exports to AD are not checked: the default rules' Exchange hybrid
/// writeback stages an update of every user, see [`ad_exports`].)
fn check(e: &Engine, r: &SyncReport, n: usize) {
    let person = e.plan.mv_type_index("person").expect("person");
    let persons = e
        .state
        .mv()
        .values()
        .filter(|m| m.object_type == person)
        .count();
    assert_eq!(persons, n, "every user is projected");
    assert_eq!(r.projections, n);
    let entra = e.plan.connector_index(ENTRA).expect("Entra");
    let adds = e
        .state
        .pending_exports(entra)
        .filter(|(_, _, op)| op.as_str() == "add")
        .count();
    assert_eq!(adds, n, "one Entra add per user");
    assert_eq!(
        e.state.pending_exports(entra).count(),
        n,
        "only adds to Entra"
    );
    let errors: Vec<String> = r
        .errors
        .iter()
        .take(5)
        .map(|e| format!("{}: {}", e.category.as_str(), e.message))
        .collect();
    assert!(
        r.errors.is_empty(),
        "{} sync errors: {errors:#?}",
        r.errors.len()
    );
    assert!(
        r.unresolved_references.is_empty(),
        "{} unresolved references, e.g. {:?}",
        r.unresolved_references.len(),
        r.unresolved_references.first()
    );
}

/// The number of exports staged to AD and the first of them.
fn ad_exports(e: &Engine) -> (usize, String) {
    let ad = e.plan.connector_index(AD).expect("AD");
    let first = e.state.pending_exports(ad).next().map(|(id, _, _)| id);
    (
        e.state.pending_exports(ad).count(),
        idflow::engine::dump::exports_of(&e.plan, &e.state, |id| Some(id) == first),
    )
}

fn per_sec(n: usize, d: Duration) -> String {
    format!("{:.0}", n as f64 / d.as_secs_f64())
}

/// One timing of a large run: staging import, full sync, delta sync after 1% changed.
fn large_run(bundle: &Bundle, obj: &ObjectDef) {
    let n = std::env::var("SYNC_BENCH_LARGE_N")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(LARGE_N);
    if n == 0 {
        return;
    }
    let (mut e, import) = staged(bundle, obj, n);
    eprintln!(
        "large run, {n} users: staging import {:.2?} ({} objects/s)",
        import,
        per_sec(n, import)
    );
    let t = Instant::now();
    let r = e.sync(Mode::Full);
    let full = t.elapsed();
    check(&e, &r, n);
    eprintln!(
        "large run, {n} users: full sync {:.2?} ({} objects/s)",
        full,
        per_sec(n, full)
    );
    // A second full sync: every object linked, nothing to change; one thread, then every core.
    let threads = e.threads;
    let mut times = Vec::new();
    for t in [1, threads] {
        let mut again = e.clone();
        again.threads = t;
        let started = Instant::now();
        let r = again.sync(Mode::Full);
        let took = started.elapsed();
        assert!(
            r.errors.is_empty(),
            "second full sync errors: {}",
            r.errors.len()
        );
        assert_eq!(r.mv_updates, 0);
        eprintln!(
            "large run, {n} users: second full sync, {t} thread(s) {took:.2?} ({} objects/s)",
            per_sec(n, took)
        );
        times.push(took);
    }
    eprintln!(
        "large run, {n} users: second full sync, 1 thread / {threads} threads time ratio {:.2}",
        times[0].as_secs_f64() / times[1].as_secs_f64()
    );

    // 1% of the users move to another department.
    let changed: Vec<usize> = (0..n).step_by(100).collect();
    let changes: Vec<ImportChange> = changed
        .iter()
        .map(|&i| ImportChange::Upsert(user(obj, i, "Reorganized")))
        .collect();
    let ad = e.plan.connector_index(AD).expect("AD");
    let t = Instant::now();
    let report = e.import(ad, changes, false);
    let reimport = t.elapsed();
    assert_eq!(report.updates, changed.len());
    let t = Instant::now();
    let r = e.sync(Mode::Delta);
    let delta = t.elapsed();
    assert!(r.errors.is_empty(), "delta sync errors: {}", r.errors.len());
    assert_eq!(
        r.processed,
        changed.len(),
        "the delta sync processes the changed users"
    );
    assert_eq!(r.mv_updates, changed.len());
    let entra = e.plan.connector_index(ENTRA).expect("Entra");
    let reorganized = e
        .state
        .pending_exports(entra)
        .filter(|(_, o, _)| o.current.iter().any(|v| v.as_str() == Some("Reorganized")))
        .count();
    assert_eq!(reorganized, changed.len(), "the new department is exported");
    eprintln!(
        "large run, {n} users: delta sync of {} changed users {:.2?} ({} objects/s; \
         re-import {:.2?}); delta/full time ratio {:.4}",
        changed.len(),
        delta,
        per_sec(changed.len(), delta),
        reimport,
        delta.as_secs_f64() / full.as_secs_f64()
    );
    // The fixed cost of a delta sync: nothing pending.
    let t = Instant::now();
    let r = e.sync(Mode::Delta);
    let idle = t.elapsed();
    assert_eq!(r.processed, 0);
    eprintln!("large run, {n} users: delta sync with nothing pending {idle:.2?}");
}

fn sync(c: &mut Criterion) {
    let bundle = bundle();
    let obj = bundle.schema.connectors[AD].objects["user"].clone();
    // Skipped when criterion only lists or tests the benchmarks.
    let quick = std::env::args().any(|a| a == "--list" || a == "--test");
    if !quick {
        large_run(&bundle, &obj);
    }

    let (staged, import) = staged(&bundle, &obj, N);
    {
        let mut e = staged.clone();
        let t = Instant::now();
        let r = e.sync(Mode::Full);
        let took = t.elapsed();
        check(&e, &r, N);
        let (to_ad, example) = ad_exports(&e);
        eprintln!(
            "{N} users: staging import {import:.2?}, full sync {took:.2?} ({} objects/s), \
             {} metaverse objects, {N} Entra adds, {to_ad} AD exports, e.g.\n{example}",
            per_sec(N, took),
            e.state.mv().len(),
        );
    }

    let mut synced = staged.clone();
    synced.sync(Mode::Full);
    let cores = staged.threads;
    let mut group = c.benchmark_group("sync");
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(25));
    group.throughput(Throughput::Elements(N as u64));
    for (what, from) in [("full sync", &staged), ("second full sync", &synced)] {
        for threads in [1, cores] {
            let name = format!("{what}, 10000 AD users, entra-default, {threads} thread(s)");
            group.bench_function(name, |b| {
                b.iter_batched(
                    || {
                        let mut e = from.clone();
                        e.threads = threads;
                        e
                    },
                    // The engine is returned, so dropping it is not timed.
                    |mut e| {
                        let r = e.sync(Mode::Full);
                        (black_box(r), e)
                    },
                    BatchSize::LargeInput,
                )
            });
        }
    }
    group.finish();
}

criterion_group!(benches, sync);
criterion_main!(benches);
