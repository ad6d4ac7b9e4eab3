//! Crash safety of `idflow run`: a run killed (SIGKILL) at any point, then run again to
//! completion, ends exactly where one uninterrupted run ends.
//!
//! `kills_at_random_points_end_like_an_uninterrupted_run`: an AD export of about 10,000
//! objects (`idflow gen ad --users 9500 --groups 400 --seed 3`) synchronized with the
//! quickstart configuration. Directory A runs once, uninterrupted: the reference. Directory B
//! starts the same run 5 to 8 times and kills it (SIGKILL) at a seeded random point: once the
//! run has recorded a random number (0 to 8; 0 to 2 once a run has completed) of its steps in
//! the state database, after a random 50 to 1,500 ms more, so that every phase can be hit (import, sync, the state saves,
//! the exports, the confirming imports); then it runs to completion twice; the second run must change nothing. B's target
//! and AD files must equal A's (the target's lines sorted; its DNs are derived from the
//! anchors, so they match) with no duplicated object, and the state must open.
//! `IDFLOW_CRASH_SEED` picks another seed; the kill points are printed
//! (`cargo test --test crash -- --nocapture`).
//!
//! `kill_right_after_a_changed_bundle_is_marked_synced`: the bundle changes, and the run is
//! killed as soon as the state database records the new bundle hash. The next runs must still
//! apply the new rules to every object.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::{BIN, Out, idflow};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

struct Dir(PathBuf);

impl Dir {
    fn new(name: &str) -> Dir {
        let p = std::env::temp_dir().join(format!("idflow-crash-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        Dir(p)
    }

    fn sub(&self, name: &str) -> PathBuf {
        let p = self.0.join(name);
        std::fs::create_dir_all(&p).unwrap();
        p
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn run(dir: &Path) -> Out {
    idflow(dir, &["run", "--config", "idflow.toml"])
}

/// Whether every step summary of a run reports no change.
fn no_changes(out: &Out) -> bool {
    out.code == 0
        && !out.stdout.is_empty()
        && out.stdout.lines().all(|l| {
            (l.contains(": 0 adds, 0 updates, 0 deletes, 0 renames, 0 errors, ")
                && l.ends_with(" [success]"))
                || l == "    unchanged since the last import: nothing to read"
        })
}

/// The quickstart configuration with `bundle` in `dir` (AD in `ad.ldif`, Entra in
/// `entra.jsonl`, state in `idflow.db`).
fn configure(dir: &Path, bundle: &Path) {
    let toml =
        std::fs::read_to_string(Path::new(ROOT).join("examples/quickstart/idflow.toml")).unwrap();
    let toml: Vec<String> = toml
        .lines()
        .map(|l| {
            if l.starts_with("bundle =") {
                format!("bundle = {:?}", bundle.display().to_string())
            } else {
                l.to_string()
            }
        })
        .collect();
    std::fs::write(dir.join("idflow.toml"), toml.join("\n") + "\n").unwrap();
}

/// The target's lines, sorted; panics on a duplicated DN.
fn sorted_target(dir: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(dir.join("entra.jsonl")).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    lines.sort();
    let mut dns = BTreeSet::new();
    for l in &lines {
        let j: serde_json::Value = serde_json::from_str(l).unwrap();
        let dn = j["dn"].as_str().unwrap().to_lowercase();
        assert!(
            dns.insert(dn.clone()),
            "duplicated object {dn} in {}",
            dir.display()
        );
    }
    lines
}

fn assert_same_target(reference: &[String], got: &[String], what: &str) {
    if reference == got {
        return;
    }
    let r: BTreeSet<&String> = reference.iter().collect();
    let g: BTreeSet<&String> = got.iter().collect();
    let missing: Vec<&&String> = r.difference(&g).take(3).collect();
    let extra: Vec<&&String> = g.difference(&r).take(3).collect();
    panic!(
        "{what}: the target differs from the reference ({} vs {} lines; {} only in the reference, {} only here)\nfirst only in the reference: {missing:#?}\nfirst only here: {extra:#?}",
        reference.len(),
        got.len(),
        r.difference(&g).count(),
        g.difference(&r).count(),
    );
}

/// splitmix64.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }
}

/// The number of recorded run steps and the last one, read from the state database.
fn progress(dir: &Path) -> String {
    let db = dir.join("idflow.db");
    if !db.exists() {
        return "no state yet".into();
    }
    let Ok(conn) = rusqlite::Connection::open(&db) else {
        return "state not readable".into();
    };
    let n: i64 = conn
        .query_row("SELECT count(*) FROM runs", [], |r| r.get(0))
        .unwrap_or(-1);
    let last: String = conn
        .query_row(
            "SELECT step || ' ' || connector || ' [' || status || ']' FROM runs ORDER BY id DESC LIMIT 1",
            [],
            |r| r.get(0),
        )
        .unwrap_or_else(|_| "-".into());
    format!("{n} step(s) recorded, last: {last}")
}

/// The number of recorded run steps (0 without a state, None when it cannot be read now).
fn steps_recorded(dir: &Path) -> Option<i64> {
    let db = dir.join("idflow.db");
    if !db.exists() {
        return Some(0);
    }
    let conn = rusqlite::Connection::open(&db).ok()?;
    conn.query_row("SELECT count(*) FROM runs", [], |r| r.get(0))
        .ok()
}

/// Leftover temporary files of atomic writes (a killed write leaves its temporary file).
fn leftovers(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp-"))
        .collect()
}

#[test]
fn kills_at_random_points_end_like_an_uninterrupted_run() {
    let started = Instant::now();
    let root = Dir::new("random");
    let (a, b) = (root.sub("a"), root.sub("b"));
    let bundle = Path::new(ROOT).join("rules/entra-default");
    let generated = idflow(
        &root.0,
        &[
            "gen", "ad", "--users", "9500", "--groups", "400", "--seed", "3", "-o", "ad.ldif",
        ],
    );
    assert_eq!(generated.code, 0, "{}", generated.all());
    for d in [&a, &b] {
        std::fs::copy(root.0.join("ad.ldif"), d.join("ad.ldif")).unwrap();
        configure(d, &bundle);
    }

    // A: the reference.
    let t = Instant::now();
    let reference = run(&a);
    let reference_ms = t.elapsed().as_millis() as u64;
    assert_eq!(reference.code, 0, "{}", reference.all());
    println!("reference run: {reference_ms} ms\n{}", reference.stdout);
    let t_ref = sorted_target(&a);
    assert!(t_ref.len() > 9000, "{} objects", t_ref.len());

    // B: killed runs. Each waits until the run has recorded `after` more steps (0: still in
    // its first import; a cycle records up to 9: two imports, the sync, and per connector the
    // export with its confirming import and sync), then a random 50-1500 ms, then SIGKILL.
    let seed: u64 = std::env::var("IDFLOW_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20_261_126);
    let mut rng = Rng(seed);
    let kills = rng.range(5, 8);
    println!("seed {seed}: {kills} killed runs");
    let mut completed = false;
    for k in 0..kills {
        // Once a run has completed, the next ones have nothing to export: kill them in their
        // imports or sync (a later point would let them finish, at the cost of a whole run).
        let after = rng.range(0, if completed { 2 } else { 8 }) as i64;
        let delay = rng.range(50, 1500);
        let base = steps_recorded(&b).unwrap();
        let log = root.0.join(format!("run-{}.log", k + 1));
        let mut child = Command::new(BIN)
            .args(["run", "--config", "idflow.toml"])
            .current_dir(&b)
            .env("NO_COLOR", "1")
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(std::fs::File::create(log.with_extension("err")).unwrap())
            .spawn()
            .unwrap();
        let t = Instant::now();
        let mut finished = None;
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                finished = Some(status);
                break;
            }
            if steps_recorded(&b).is_some_and(|n| n >= base + after) {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let reached = t.elapsed().as_millis();
        if finished.is_none() {
            std::thread::sleep(Duration::from_millis(delay));
            finished = child.try_wait().unwrap();
        }
        let outcome = match finished {
            Some(status) => format!("finished by itself ({status})"),
            None => {
                child.kill().unwrap();
                child.wait().unwrap();
                format!("killed at {} ms", t.elapsed().as_millis())
            }
        };
        println!(
            "run {}: kill point: {after} step(s) of this run recorded (at {reached} ms) + {delay} ms: {outcome}; state: {}",
            k + 1,
            progress(&b)
        );
        if let Some(status) = finished {
            completed = true;
            let out = std::fs::read_to_string(&log).unwrap_or_default();
            let err = std::fs::read_to_string(log.with_extension("err")).unwrap_or_default();
            assert!(
                status.success(),
                "run {} failed ({status}):\n--- stdout\n{out}--- stderr\n{err}",
                k + 1
            );
        }
    }
    let left = leftovers(&b);
    if !left.is_empty() {
        println!("leftover temporary files: {left:?}");
    }

    let first = run(&b);
    assert_eq!(first.code, 0, "{}", first.all());
    println!("completing run:\n{}", first.stdout);
    let second = run(&b);
    assert!(
        no_changes(&second),
        "the second completing run changed something:\n{}",
        second.all()
    );

    assert_same_target(&t_ref, &sorted_target(&b), "after the killed runs");
    assert!(
        std::fs::read(a.join("ad.ldif")).unwrap() == std::fs::read(b.join("ad.ldif")).unwrap(),
        "ad.ldif differs from the reference's"
    );
    let runs = idflow(&b, &["state", "--config", "idflow.toml", "runs"]);
    assert_eq!(runs.code, 0, "{}", runs.all());
    let pending = idflow(&b, &["state", "--config", "idflow.toml", "pending-exports"]);
    assert_eq!(pending.code, 0, "{}", pending.all());
    assert_eq!(pending.stdout.trim(), "0 object(s) with pending exports");
    println!("total: {} ms", started.elapsed().as_millis());
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.path().is_dir() {
            copy_dir(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

fn bundle_hash(db: &Path) -> Option<String> {
    let conn = rusqlite::Connection::open(db).ok()?;
    conn.query_row(
        "SELECT value FROM meta WHERE key = 'bundle_hash'",
        [],
        |r| r.get(0),
    )
    .ok()
}

/// The quickstart with its own copy of the default bundle, synchronized once; then the
/// inbound department flows change (upper case).
fn changed_bundle_deployment(dir: &Path) {
    std::fs::copy(
        Path::new(ROOT).join("examples/quickstart/ad.ldif"),
        dir.join("ad.ldif"),
    )
    .unwrap();
    copy_dir(
        &Path::new(ROOT).join("rules/entra-default"),
        &dir.join("rules"),
    );
    configure(dir, &dir.join("rules"));
    let first = run(dir);
    assert_eq!(first.code, 0, "{}", first.all());
    let file = dir.join("rules/inbound/contoso-com-user.idf");
    let text = std::fs::read_to_string(&file).unwrap();
    let changed = text.replace("<- Trim([department])", "<- UCase(Trim([department]))");
    assert_ne!(changed, text);
    std::fs::write(&file, changed).unwrap();
}

#[test]
fn kill_right_after_a_changed_bundle_is_marked_synced() {
    let root = Dir::new("bundle");
    let (a, b) = (root.sub("a"), root.sub("b"));
    changed_bundle_deployment(&a);
    changed_bundle_deployment(&b);

    // A: the reference.
    let r = run(&a);
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(r.stdout.contains("full-sync: "), "{}", r.all());
    let t_ref = sorted_target(&a);
    assert!(
        t_ref
            .iter()
            .any(|l| l.contains("\"department\":\"MARKETING\""))
    );

    // B: killed as soon as the new bundle hash is committed.
    let db = b.join("idflow.db");
    let old = bundle_hash(&db);
    assert!(old.is_some());
    let mut child = Command::new(BIN)
        .args(["run", "--config", "idflow.toml"])
        .current_dir(&b)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let t = Instant::now();
    let mut killed = false;
    while t.elapsed() < Duration::from_secs(120) {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if bundle_hash(&db).is_some_and(|h| Some(&h) != old.as_ref()) {
            child.kill().unwrap();
            killed = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    child.wait().unwrap();
    println!(
        "killed: {killed} after {} ms; {}",
        t.elapsed().as_millis(),
        progress(&b)
    );

    let first = run(&b);
    assert_eq!(first.code, 0, "{}", first.all());
    let second = run(&b);
    assert!(no_changes(&second), "{}", second.all());
    assert_same_target(&t_ref, &sorted_target(&b), "after the kill");
}
