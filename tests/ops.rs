//! Operating safety of `idflow run` and `idflow state`, end to end through the real binary: the
//! run lock, read-only state commands, pending-exports output, rejected records and run-history
//! retention, configuration errors, file writes through links, stale temporary files, the
//! bundle loader's refusals, `gen ad` counts, private state files and unconfigured connectors.
//!
//! Every test works in its own temporary directory (removed afterwards) with the small HR
//! deployment of `tests/fixtures/run/hr/` (a CSV source and a JSON-lines target).

use std::path::Path;
use std::process::Command;

mod common;
use common::{BIN, Dir, Out, idflow};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

const CLEAN_HR: &str = "id,name,department,grade\n\
1001,Alice Smith,Finance,3\n\
1002,Bob Jones,Sales,2\n";

/// The HR deployment with `csv` as the HR file, the directory kept in `directory.jsonl`, and
/// `extra` top-level settings.
fn hr(name: &str, csv: &str, extra: &str) -> Dir {
    let d = Dir::new(name);
    d.write("hr.csv", csv);
    let bundle = Path::new(ROOT).join("tests/fixtures/run/hr/bundle");
    d.write(
        "idflow.toml",
        &format!(
            r#"bundle = {:?}
state = "idflow.db"
{extra}

[connectors.hr]
kind = "csv"
path = "hr.csv"
object_type = "worker"
anchor = "id"
dn = "CN={{id}},OU=HR"

[connectors.directory]
kind = "jsonl"
path = "directory.jsonl"
"#,
            bundle.display().to_string()
        ),
    );
    d
}

fn run(d: &Dir, extra: &[&str]) -> Out {
    let config = d.config();
    let mut args = vec!["run", "--config", config.as_str()];
    args.extend_from_slice(extra);
    idflow(&d.0, &args)
}

fn state(d: &Dir, args: &[&str]) -> Out {
    let config = d.config();
    let mut all = vec!["state", "--config", config.as_str()];
    all.extend_from_slice(args);
    idflow(&d.0, &all)
}

/// Runs `idflow args` in `dir`; kills it and fails after `secs` seconds.
fn idflow_within(dir: &Path, args: &[&str], secs: u64) -> Out {
    let mut child = Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed().as_secs() >= secs {
            let _ = child.kill();
            let _ = child.wait();
            panic!("idflow {args:?} did not finish within {secs} s");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

// ---------------------------------------------------------------------------------------------
// 5. One run at a time; state commands read only

#[test]
fn a_run_is_refused_while_another_holds_the_state() {
    let d = hr("lock", CLEAN_HR, "");
    assert_eq!(run(&d, &[]).code, 0);
    // This process stands for a run in progress.
    let lock = idflow::store::lock::StateLock::acquire(&d.path("idflow.db")).unwrap();
    let lock_file = d.path("idflow.db.lock").display().to_string();
    for profile in ["cycle", "full-import", "delta-sync", "export"] {
        let out = run(&d, &["--profile", profile]);
        assert_eq!(out.code, 2, "{profile}: {}", out.all());
        assert!(out.stdout.is_empty(), "{profile}: {}", out.all());
        assert!(out.stderr.contains(&lock_file), "{}", out.all());
        assert!(
            out.stderr
                .contains(&format!("pid {}, started ", std::process::id())),
            "{}",
            out.all()
        );
    }
    // Looking at the state needs no lock.
    for args in [
        &["runs"][..],
        &["errors"],
        &["pending-exports"],
        &["search", "--dn", "1001"],
    ] {
        let out = state(&d, args);
        assert_eq!(out.code, 0, "{args:?}: {}", out.all());
    }
    drop(lock);
    let again = run(&d, &[]);
    assert_eq!(again.code, 0, "{}", again.all());
    // The lock was released at the end of that run.
    let held = idflow::store::lock::StateLock::acquire(&d.path("idflow.db"));
    assert!(held.is_ok(), "{held:?}");
}

#[test]
fn two_runs_at_once_one_is_refused_and_state_commands_read_meanwhile() {
    // Enough workers that the first run is still working when the second starts.
    let mut csv = String::from("id,name,department,grade\n");
    for i in 0..12_000 {
        csv.push_str(&format!(
            "{},Worker {i},Dept {},{}\n",
            10_000 + i,
            i % 40,
            i % 9
        ));
    }
    let d = hr("twice", &csv, "delete_threshold = 0");
    let config = d.config();
    let mut first = Command::new(BIN)
        .args(["run", "--config", config.as_str()])
        .current_dir(&d.0)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The first run holds the lock once it has written its process id into the lock file.
    let holder = format!("pid {}, started ", first.id());
    let start = std::time::Instant::now();
    while !std::fs::read_to_string(d.path("idflow.db.lock")).is_ok_and(|t| t.contains(&holder)) {
        assert!(
            first.try_wait().unwrap().is_none(),
            "the first run ended early"
        );
        assert!(
            start.elapsed().as_secs() < 60,
            "the first run never took the lock"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let second = run(&d, &[]);
    // The state can be read while the first run writes it, once it has recorded a step.
    let mut read = false;
    while first.try_wait().unwrap().is_none() {
        let reads = state(&d, &["runs"]);
        if reads.code == 0 && reads.stdout.contains("delta-import hr: success") {
            read = true;
            break;
        }
        // Only the moments before the database has its schema are allowed to fail.
        assert!(
            reads.code == 0
                || reads.stderr.contains("no state yet")
                || reads.stderr.contains("not an idflow state database"),
            "{}",
            reads.all()
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let first = first.wait_with_output().unwrap();
    let first_out = String::from_utf8_lossy(&first.stdout);
    assert_eq!(second.code, 2, "{}", second.all());
    assert!(second.stderr.contains(&holder), "{}", second.all());
    assert!(second.stderr.contains("idflow.db.lock"), "{}", second.all());
    assert!(second.stdout.is_empty(), "{}", second.all());
    assert!(read, "no read of the state succeeded during the run");
    assert_eq!(first.status.code(), Some(0), "{first_out}");
    assert!(
        first_out
            .contains("export directory: 12000 adds, 0 updates, 0 deletes, 0 renames, 0 errors"),
        "{first_out}"
    );
}

/// Whether `nobody` can reach and read every path (each folder above it searchable, files
/// readable and the binary executable by others).
#[cfg(unix)]
fn others_can_use(paths: &[&Path]) -> bool {
    use std::os::unix::fs::PermissionsExt;
    paths.iter().all(|p| {
        let Ok(p) = std::fs::canonicalize(p) else {
            return false;
        };
        let mode = |q: &Path| std::fs::metadata(q).map_or(0, |m| m.permissions().mode());
        let own = if p.is_dir() { 0o005 } else { 0o004 };
        let exe = if p == Path::new(BIN).canonicalize().unwrap_or_default() {
            0o001
        } else {
            0
        };
        mode(&p) & (own | exe) == own | exe && p.ancestors().skip(1).all(|a| mode(a) & 0o001 != 0)
    })
}

/// Runs `idflow args` in `dir` as a user who cannot write the state: the tests' user when it
/// is not root (the file mode then stops it), else `nobody` when it can reach the binary, the
/// folder and the bundle (root ignores file modes; without `nobody` the test proves less).
fn idflow_unprivileged(dir: &Path, args: &[&str]) -> Out {
    let mut cmd = Command::new(BIN);
    cmd.args(args).current_dir(dir).env("NO_COLOR", "1");
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        let root = std::fs::metadata("/proc/self")
            .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
            .unwrap_or(false);
        let bundle = Path::new(ROOT).join("tests/fixtures/run/hr/bundle/hr.idf");
        if root && others_can_use(&[Path::new(BIN), dir, &dir.join("idflow.toml"), &bundle]) {
            cmd.uid(65534).gid(65534);
        }
    }
    let out = cmd.output().unwrap();
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[cfg(unix)]
#[test]
fn state_commands_work_on_a_read_only_state() {
    use std::os::unix::fs::PermissionsExt;
    let d = hr("readonly", CLEAN_HR, "");
    // Two pending exports are left: imported and synchronized, not exported.
    let out = run(&d, &["--profile", "delta-import", "--connector", "hr"]);
    assert_eq!(out.code, 0, "{}", out.all());
    let out = run(&d, &["--profile", "delta-sync"]);
    assert_eq!(out.code, 0, "{}", out.all());
    let before = std::fs::read(d.path("idflow.db")).unwrap();
    std::fs::set_permissions(d.path("idflow.db"), std::fs::Permissions::from_mode(0o444)).unwrap();
    let config = d.config();
    for (args, expect) in [
        (&["runs"][..], "full-sync: success"),
        (&["errors"], "no sync errors"),
        (&["pending-exports"], "2 object(s) with pending exports"),
        (
            &["search", "--connector", "hr", "--dn", "1001"],
            "1 object(s)",
        ),
    ] {
        let mut all = vec!["state", "--config", config.as_str()];
        all.extend_from_slice(args);
        let out = idflow_unprivileged(&d.0, &all);
        assert_eq!(out.code, 0, "{args:?}: {}", out.all());
        assert!(out.stdout.contains(expect), "{args:?}: {}", out.all());
    }
    assert_eq!(std::fs::read(d.path("idflow.db")).unwrap(), before);
}

// ---------------------------------------------------------------------------------------------
// 6 and 12. pending-exports shows values as they are, safely

fn pending_json(d: &Dir) -> Vec<serde_json::Value> {
    let out = state(d, &["pending-exports", "--format", "json"]);
    assert_eq!(out.code, 0, "{}", out.all());
    serde_json::from_str::<serde_json::Value>(&out.stdout)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

fn pending_csv(d: &Dir) -> Vec<Vec<String>> {
    let out = state(d, &["pending-exports", "--format", "csv"]);
    assert_eq!(out.code, 0, "{}", out.all());
    csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(out.stdout.as_bytes())
        .records()
        .map(|r| r.unwrap().iter().map(str::to_string).collect())
        .collect()
}

#[test]
fn pending_exports_keep_values_holding_u0001() {
    let d = hr(
        "u0001",
        "id,name,department,grade\n1001,Al\u{1}ice,Fin\u{1}ance,3\n",
        "",
    );
    let out = run(&d, &[]);
    assert_eq!(out.code, 0, "{}", out.all());
    // A change imported and synchronized but not exported: old and new both hold U+0001.
    d.write(
        "hr.csv",
        "id,name,department,grade\n1001,B\u{1}ob,Fin\u{1}ance,3\n",
    );
    for args in [
        &["--profile", "delta-import", "--connector", "hr"][..],
        &["--profile", "delta-sync"],
    ] {
        let out = run(&d, args);
        assert_eq!(out.code, 0, "{}", out.all());
    }
    let json = pending_json(&d);
    assert_eq!(json.len(), 1, "{json:?}");
    assert_eq!(json[0]["attribute"], "displayName");
    assert_eq!(json[0]["change"], "replace");
    assert_eq!(json[0]["old"], "Al\u{1}ice");
    assert_eq!(json[0]["values"], "B\u{1}ob");

    let rows = pending_csv(&d);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0][5], "displayName");
    assert_eq!(
        (rows[0][8].as_str(), rows[0][7].as_str()),
        ("Al\u{1}ice", "B\u{1}ob")
    );

    let text = state(&d, &["pending-exports"]);
    assert_eq!(text.code, 0, "{}", text.all());
    assert!(
        text.stdout
            .contains("    replace displayName: Al\\u{1}ice -> B\\u{1}ob\n"),
        "{}",
        text.all()
    );
    assert!(!text.stdout.contains('\u{1}'), "{}", text.all());
}

#[test]
fn pending_exports_neutralise_formulas_and_escape_controls() {
    let d = hr(
        "formula",
        "id,name,department,grade\n1001,=HYPERLINK(1),\u{1b}[31mRed,3\n1002,@SUM(A1),-2+3,2\n",
        "",
    );
    for args in [
        &["--profile", "delta-import", "--connector", "hr"][..],
        &["--profile", "delta-sync"],
    ] {
        let out = run(&d, args);
        assert_eq!(out.code, 0, "{}", out.all());
    }
    let rows = pending_csv(&d);
    let new_of = |attr: &str| -> Vec<String> {
        rows.iter()
            .filter(|r| r[5] == attr)
            .map(|r| r[7].clone())
            .collect()
    };
    assert_eq!(
        new_of("displayName"),
        ["'=HYPERLINK(1)", "'@SUM(A1)"],
        "{rows:?}"
    );
    assert_eq!(new_of("department"), ["\u{1b}[31mRed", "'-2+3"], "{rows:?}");
    for r in &rows {
        for cell in r {
            assert!(
                !cell.starts_with(['=', '+', '-', '@', '\t', '\r']),
                "{cell:?}"
            );
        }
    }
    // JSON keeps the values as they are.
    let json = pending_json(&d);
    assert!(json.iter().any(|r| r["values"] == "=HYPERLINK(1)"));
    let text = state(&d, &["pending-exports"]);
    assert!(!text.stdout.contains('\u{1b}'), "{}", text.all());
    assert!(text.stdout.contains("\\u{1b}[31mRed"), "{}", text.all());
}

// ---------------------------------------------------------------------------------------------
// 11. Rejected records as capped rows, shown by `state errors`; run-history retention

fn db(d: &Dir) -> rusqlite::Connection {
    rusqlite::Connection::open_with_flags(
        d.path("idflow.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap()
}

fn count(conn: &rusqlite::Connection, sql: &str) -> i64 {
    conn.query_row(sql, [], |r| r.get(0)).unwrap()
}

#[test]
fn rejected_records_are_capped_rows_shown_by_state_errors() {
    let mut csv = String::from(CLEAN_HR);
    for i in 0..10_000 {
        csv.push_str(&format!("garbage {i} with no fields\n"));
    }
    let d = hr("rejects", &csv, "");
    let out = run(&d, &[]);
    assert_eq!(out.code, 1, "{}", out.all());
    assert!(
        out.stdout.contains("hr.csv:4: expected 4 fields"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("more (see `idflow state errors`)"),
        "{}",
        out.stdout
    );
    let conn = db(&d);
    assert_eq!(count(&conn, "SELECT COUNT(*) FROM rejects"), 1000);
    assert_eq!(
        count(
            &conn,
            "SELECT rejected FROM runs WHERE connector = 'hr' AND step LIKE '%import'"
        ),
        10_000
    );
    let detail = count(&conn, "SELECT MAX(length(detail)) FROM runs");
    assert!(detail < 10_000, "run-history detail of {detail} bytes");
    drop(conn);

    let errors = state(&d, &["errors"]);
    assert_eq!(errors.code, 0, "{}", errors.all());
    assert!(
        errors
            .stdout
            .starts_with("no sync errors\nimport rejects: hr (#"),
        "{}",
        errors.stdout
    );
    assert!(
        errors
            .stdout
            .contains("hr.csv:4: expected 4 fields (as in the header), found 1 (record skipped)\n"),
        "{}",
        errors.stdout
    );
    assert!(
        errors
            .stdout
            .ends_with("    ... 9000 more (only the first 1000 of an import are kept)\n"),
        "{}",
        errors.stdout
    );
    assert_eq!(errors.stdout.lines().count(), 1 + 1 + 1000 + 1);

    // A clean import of the connector clears the section.
    d.write("hr.csv", CLEAN_HR);
    let out = run(&d, &[]);
    assert_eq!(out.code, 0, "{}", out.all());
    assert_eq!(state(&d, &["errors"]).stdout, "no sync errors\n");
}

#[test]
fn the_run_history_is_pruned_to_keep_runs() {
    let d = hr("retention", CLEAN_HR, "keep_runs = 3");
    for i in 0..4 {
        d.write(
            "hr.csv",
            &format!("{CLEAN_HR}100{},Worker {i},IT,1\n", i + 3),
        );
        let out = run(&d, &[]);
        assert_eq!(out.code, 0, "{}", out.all());
    }
    let conn = db(&d);
    let total = count(&conn, "SELECT MAX(id) FROM runs");
    assert!(total >= 4 * 5, "{total} steps run");
    let kept = count(&conn, "SELECT COUNT(*) FROM runs");
    // The newest 3, and the latest sync, and import and export of each connector.
    assert!((3..=8).contains(&kept), "{kept} entries kept");
    assert_eq!(
        count(
            &conn,
            "SELECT COUNT(*) FROM runs WHERE id > (SELECT MAX(id) - 3 FROM runs)"
        ),
        3
    );
    assert_eq!(
        count(
            &conn,
            "SELECT COUNT(*) FROM runs WHERE id = (SELECT MAX(id) FROM runs WHERE step LIKE '%sync')"
        ),
        1
    );
    assert_eq!(
        count(
            &conn,
            "SELECT COUNT(DISTINCT connector) FROM runs WHERE step LIKE '%import'"
        ),
        2
    );
    let runs = state(&d, &["runs", "--limit", "100"]);
    assert_eq!(runs.stdout.lines().count() as i64, kept, "{}", runs.all());

    // Errors and rejects of pruned entries go with them.
    d.write(
        "hr.csv",
        &format!("{CLEAN_HR}broken row\n1009,Bad Grade,IT,10\n"),
    );
    let out = run(&d, &[]);
    assert_eq!(out.code, 1, "{}", out.all());
    assert!(
        out.stdout.contains("grade 10 is out of range"),
        "{}",
        out.all()
    );
    assert!(count(&conn, "SELECT COUNT(*) FROM sync_errors") > 0);
    assert!(count(&conn, "SELECT COUNT(*) FROM rejects") > 0);
    d.write("hr.csv", CLEAN_HR);
    for _ in 0..2 {
        run(&d, &[]);
    }
    // The errors were recorded, and left with their entries.
    assert!(count(&conn, "SELECT MAX(id) FROM runs") > total);
    assert_eq!(count(&conn, "SELECT COUNT(*) FROM sync_errors"), 0);
    assert_eq!(count(&conn, "SELECT COUNT(*) FROM rejects"), 0);
}

// ---------------------------------------------------------------------------------------------
// 12. Configuration errors, file writes, the bundle loader, gen counts, modes, warnings

#[test]
fn config_syntax_errors_do_not_print_values() {
    let d = hr("secret", CLEAN_HR, "");
    let text = d.read("idflow.toml");
    d.write(
        "idflow.toml",
        &text.replace(
            "[connectors.directory]",
            "[connectors.directory]\npassword = hunter2-Secret!",
        ),
    );
    let line = d
        .read("idflow.toml")
        .lines()
        .position(|l| l.starts_with("password"))
        .unwrap()
        + 1;
    let out = run(&d, &[]);
    assert_eq!(out.code, 2, "{}", out.all());
    assert!(!out.stderr.contains("hunter2"), "{}", out.all());
    assert!(
        out.stderr
            .contains(&format!("idflow.toml: TOML error at line {line}, column ")),
        "{}",
        out.all()
    );
}

#[test]
fn stale_temporary_files_are_removed_at_start() {
    let d = hr("stale", CLEAN_HR, "");
    // Left by killed writes (the old and the new name pattern) of a process that is gone.
    let old = d.path(".directory.jsonl.tmp-4194304-0");
    let new = d.path(".directory.jsonl.idflow-tmp.4194304.1");
    let unrelated = d.path(".notes.txt.idflow-tmp.4194304.1");
    for p in [&old, &new, &unrelated] {
        std::fs::write(p, "partial").unwrap();
    }
    let out = run(&d, &[]);
    assert_eq!(out.code, 0, "{}", out.all());
    assert!(!old.exists() && !new.exists(), "{}", out.all());
    assert!(unrelated.exists());
    assert!(
        out.stderr.contains("left by an interrupted write"),
        "{}",
        out.all()
    );
}

#[cfg(unix)]
#[test]
fn exports_write_through_a_symlink_and_refuse_a_hard_link() {
    let d = hr("links", CLEAN_HR, "");
    std::fs::create_dir_all(d.path("real")).unwrap();
    std::fs::write(d.path("real/directory.jsonl"), "").unwrap();
    std::os::unix::fs::symlink("real/directory.jsonl", d.path("directory.jsonl")).unwrap();
    let out = run(&d, &[]);
    assert_eq!(out.code, 0, "{}", out.all());
    assert!(
        std::fs::symlink_metadata(d.path("directory.jsonl"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(d.read("real/directory.jsonl").lines().count(), 2);

    let e = hr("hardlink", CLEAN_HR, "");
    std::fs::write(e.path("other.jsonl"), "").unwrap();
    std::fs::hard_link(e.path("other.jsonl"), e.path("directory.jsonl")).unwrap();
    let out = run(&e, &[]);
    assert_eq!(out.code, 1, "{}", out.all());
    assert!(out.stdout.contains("hard links"), "{}", out.all());
    assert!(
        out.stdout.contains("[stopped-connectivity]"),
        "{}",
        out.all()
    );
    assert_eq!(e.read("other.jsonl"), "");
    assert_eq!(e.read("directory.jsonl"), "");
}

#[cfg(unix)]
#[test]
fn the_bundle_loader_refuses_fifos_and_links_out_of_the_bundle() {
    let d = Dir::new("loader");
    let bundle = d.path("bundle");
    std::fs::create_dir_all(&bundle).unwrap();
    std::fs::copy(
        Path::new(ROOT).join("tests/fixtures/run/hr/bundle/hr.idf"),
        bundle.join("hr.idf"),
    )
    .unwrap();
    let b = bundle.display().to_string();
    assert_eq!(idflow(&d.0, &["check", &b]).code, 0);

    // A link out of the bundle.
    d.write("outside.idf", "# outside\n");
    std::os::unix::fs::symlink(d.path("outside.idf"), bundle.join("z.idf")).unwrap();
    let out = idflow_within(&d.0, &["check", &b], 30);
    assert_eq!(out.code, 2, "{}", out.all());
    assert!(out.stderr.contains("out of the bundle"), "{}", out.all());
    std::fs::remove_file(bundle.join("z.idf")).unwrap();

    // A link inside the bundle is fine, and read once.
    std::os::unix::fs::symlink("hr.idf", bundle.join("again.idf")).unwrap();
    assert_eq!(idflow(&d.0, &["check", &b]).code, 0);

    // A named pipe would block the read forever.
    let fifo = bundle.join("pipe.idf");
    let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success());
    let out = idflow_within(&d.0, &["check", &b], 30);
    assert_eq!(out.code, 2, "{}", out.all());
    assert!(out.stderr.contains("not a regular file"), "{}", out.all());
}

#[test]
fn gen_counts_are_validated() {
    let d = Dir::new("gen");
    for args in [
        &[
            "gen",
            "ad",
            "--users",
            "18446744073709551615",
            "--groups",
            "1",
        ][..],
        &["gen", "ad", "--users", "1", "--groups", "1000001"],
    ] {
        let out = idflow_within(&d.0, args, 30);
        assert_eq!(out.code, 2, "{}", out.all());
        assert!(!out.stderr.contains("panicked"), "{}", out.all());
        assert!(out.stderr.contains("1000000"), "{}", out.all());
    }
}

#[cfg(unix)]
#[test]
fn the_state_database_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let d = hr("mode", CLEAN_HR, "");
    let out = run(&d, &[]);
    assert_eq!(out.code, 0, "{}", out.all());
    for name in [
        "idflow.db",
        "idflow.db-wal",
        "idflow.db-shm",
        "idflow.db.lock",
    ] {
        if let Ok(m) = std::fs::metadata(d.path(name)) {
            assert_eq!(m.permissions().mode() & 0o077, 0, "{name}");
        } else {
            assert_ne!(name, "idflow.db");
        }
    }
}

#[test]
fn a_bundle_connector_missing_from_the_config_is_a_warning() {
    let d = hr("missing", CLEAN_HR, "");
    let text = d.read("idflow.toml");
    let cut = text.find("[connectors.directory]").unwrap();
    d.write("idflow.toml", &text[..cut]);
    let out = run(&d, &[]);
    assert_eq!(out.code, 0, "{}", out.all());
    assert!(
        out.stderr
            .contains("warning: connector \"directory\" of the bundle has no settings in"),
        "{}",
        out.all()
    );
}

/// A state of schema version 2 (no rejected records) is read as it is by `idflow state` and
/// migrated by the next run.
#[test]
fn a_state_from_before_the_rejects_table_is_read_and_migrated() {
    let d = hr("schema2", CLEAN_HR, "");
    assert_eq!(run(&d, &[]).code, 0);
    {
        let conn = rusqlite::Connection::open(d.path("idflow.db")).unwrap();
        conn.execute_batch(
            "DROP TABLE rejects; ALTER TABLE runs DROP COLUMN rejected; PRAGMA user_version = 2;",
        )
        .unwrap();
    }
    let runs = state(&d, &["runs"]);
    assert_eq!(runs.code, 0, "{}", runs.all());
    assert!(runs.stdout.contains("full-sync: success"), "{}", runs.all());
    assert_eq!(state(&d, &["errors"]).stdout, "no sync errors\n");
    d.write("hr.csv", &format!("{CLEAN_HR}broken row\n"));
    let out = run(&d, &[]);
    assert_eq!(out.code, 1, "{}", out.all());
    let errors = state(&d, &["errors"]);
    assert!(
        errors.stdout.contains("hr.csv:4: expected 4 fields"),
        "{}",
        errors.all()
    );
    let conn = db(&d);
    assert_eq!(count(&conn, "PRAGMA user_version"), 7);
}

/// A copy of `tests/fixtures/state-v2` (see below) in a new directory, and the fixture's path.
fn schema2_state(name: &str) -> (Dir, std::path::PathBuf) {
    fixture_state(name, "state-v2")
}

/// A copy of the state fixture `tests/fixtures/NAME` in a new directory, and its path.
fn fixture_state(name: &str, fixture: &str) -> (Dir, std::path::PathBuf) {
    let fixture = Path::new(ROOT).join("tests/fixtures").join(fixture);
    let d = Dir::new(name);
    for f in ["ad.ldif", "entra.jsonl", "idflow.db"] {
        std::fs::copy(fixture.join(f), d.path(f)).unwrap();
    }
    let bundle = Path::new(ROOT).join("rules/entra-default");
    let toml = std::fs::read_to_string(fixture.join("idflow.toml"))
        .unwrap()
        .replace(
            "bundle = \"../../../rules/entra-default\"",
            &format!("bundle = {:?}", bundle.display().to_string()),
        );
    d.write("idflow.toml", &toml);
    (d, fixture)
}

/// A state of schema version 1 (references kept by object id): its references are dropped
/// and the next run synchronizes fully, rebuilding them.
#[test]
fn a_state_from_before_the_refs_change_is_migrated() {
    let (d, _) = schema2_state("schema1-state");
    {
        let conn = rusqlite::Connection::open(d.path("idflow.db")).unwrap();
        conn.execute_batch(
            "DROP TABLE refs; CREATE TABLE refs (target INTEGER NOT NULL, source INTEGER NOT NULL); PRAGMA user_version = 0;",
        )
        .unwrap();
    }
    let r = run(&d, &[]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(r.stdout.contains("full-sync: "), "{}", r.all());
    assert!(
        r.stdout
            .contains("export contoso.onmicrosoft.com: 0 adds, 1 updates, 0 deletes"),
        "{}",
        r.all()
    );
}

/// A state written by idflow with schema version 4 (values unframed, never compressed;
/// `tests/fixtures/state-v4`, the state of `state-v2` rewritten by that version: one staged
/// export): read-only commands read it as it is, and the first run frames its rows in one
/// transaction, exports the staged change once, and compresses the rows it saves.
#[test]
fn a_state_of_schema_4_is_read_and_framed_without_loss() {
    let (d, fixture) = fixture_state("schema4-state", "state-v4");
    let expected = std::fs::read_to_string(fixture.join("pending-exports.txt")).unwrap();
    let pending = state(&d, &["pending-exports"]);
    assert_eq!(pending.code, 0, "{}", pending.all());
    assert_eq!(pending.stdout, expected);
    let unchanged = [
        "show",
        "--dn",
        "CN=Daniel Adams,OU=Users,OU=CORP,DC=contoso,DC=com",
    ];
    let show = state(&d, &unchanged);
    assert_eq!(show.code, 0, "{}", show.all());
    assert_eq!(
        count(&db(&d), "PRAGMA user_version"),
        4,
        "a read changes nothing"
    );
    let out = run(&d, &[]);
    assert_eq!(out.code, 0, "{}", out.all());
    assert!(
        out.stdout
            .contains("export contoso.onmicrosoft.com: 0 adds, 1 updates, 0 deletes"),
        "{}",
        out.all()
    );
    let conn = db(&d);
    assert_eq!(count(&conn, "PRAGMA user_version"), 7);
    assert_eq!(count(&conn, "SELECT COUNT(*) FROM cs_objects"), 37);
    let frames = |column: &str, frame: &str| {
        count(
            &conn,
            &format!("SELECT COUNT(*) FROM cs_objects WHERE substr({column}, 1, 1) = X'{frame}'"),
        )
    };
    assert_eq!(
        frames("imported", "00") + frames("imported", "01"),
        37,
        "every row is framed"
    );
    drop(conn);
    // The same state after the upgrade: nothing to do, and a full sync agrees.
    let again = run(&d, &[]);
    assert_eq!(again.code, 0, "{}", again.all());
    assert!(
        again
            .stdout
            .contains("export contoso.onmicrosoft.com: 0 adds, 0 updates, 0 deletes"),
        "{}",
        again.all()
    );
    let full = run(&d, &["--profile", "full-sync"]);
    assert!(
        full.stdout
            .contains("full-sync: 0 adds, 0 updates, 0 deletes"),
        "{}",
        full.all()
    );
    assert!(
        show.stdout.contains("title = \"Architect\""),
        "{}",
        show.all()
    );
    assert_eq!(
        show.stdout,
        state(&d, &unchanged).stdout,
        "an object the run did not change reads the same"
    );
}

/// A state written by idflow with schema version 2 (values as JSON keyed by attribute name,
/// ids renumbered at each load; `tests/fixtures/state-v2`, made by that version from a
/// generated export of 12 users, then one title changed, imported and synchronized, not
/// exported): read-only commands read it as it is, and the first run rewrites it in the
/// current schema without losing the staged export.
#[test]
fn a_state_of_schema_2_is_read_and_rewritten_without_loss() {
    let (d, fixture) = schema2_state("schema2-state");
    let expected = std::fs::read_to_string(fixture.join("pending-exports.txt")).unwrap();
    // Read-only: the old tables as they are.
    let pending = state(&d, &["pending-exports"]);
    assert_eq!(pending.code, 0, "{}", pending.all());
    assert_eq!(pending.stdout, expected);
    assert_eq!(
        count(&db(&d), "PRAGMA user_version"),
        2,
        "a read changes nothing"
    );
    // The first run upgrades the state and exports the staged change, exactly once.
    let out = run(&d, &[]);
    assert_eq!(out.code, 0, "{}", out.all());
    assert!(
        out.stdout
            .contains("export contoso.onmicrosoft.com: 0 adds, 1 updates, 0 deletes"),
        "{}",
        out.all()
    );
    assert!(
        d.read("entra.jsonl")
            .contains("Principal Software Engineer"),
        "the staged change reached the target"
    );
    let conn = db(&d);
    assert_eq!(count(&conn, "PRAGMA user_version"), 7);
    assert_eq!(
        count(
            &conn,
            "SELECT COUNT(*) FROM sqlite_master WHERE name IN ('cs', 'mv', 'refs', 'mv_refs')"
        ),
        0,
        "the tables of the old schema are gone"
    );
    assert_eq!(count(&conn, "SELECT COUNT(*) FROM cs_objects"), 37);
    assert_eq!(count(&conn, "SELECT COUNT(*) FROM mv_objects"), 19);
    drop(conn);
    // And the upgraded state is the same state: nothing to do.
    let again = run(&d, &[]);
    assert_eq!(again.code, 0, "{}", again.all());
    for line in again.stdout.lines().filter(|l| !l.starts_with(" ")) {
        assert!(
            line.contains(": 0 adds, 0 updates, 0 deletes, 0 renames, 0 errors"),
            "{}",
            again.all()
        );
    }
    assert_eq!(
        state(&d, &["pending-exports"]).stdout,
        "0 object(s) with pending exports\n"
    );
}

/// Runs `idflow args` in `dir` with its stdout a pipe whose reader is already closed, as
/// `idflow ... | head` leaves it once `head` has what it wants.
fn closed_stdout(dir: &Path, args: &[&str]) -> Out {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .stdin(std::process::Stdio::null())
        .stdout(writer)
        .stderr(std::process::Stdio::piped())
        .output()
        .expect("the idflow binary runs");
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::new(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[test]
fn every_printing_command_exits_quietly_on_a_closed_stdout() {
    let d = hr("closed-stdout", CLEAN_HR, "");
    // A state with history and pending exports: imported and synchronized, not exported.
    let out = run(&d, &["--profile", "delta-import", "--connector", "hr"]);
    assert_eq!(out.code, 0, "{}", out.all());
    let out = run(&d, &["--profile", "delta-sync"]);
    assert_eq!(out.code, 0, "{}", out.all());
    std::fs::create_dir_all(d.path("bundle")).unwrap();
    for f in [
        "bundle.idf",
        "schema/contoso-com.idf",
        "schema/contoso-onmicrosoft-com.idf",
    ] {
        let to = d.path("bundle").join(f);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(Path::new(ROOT).join("rules/entra-default").join(f), to).unwrap();
    }
    let config = d.config();
    let rules = format!("{ROOT}/rules/entra-default");
    let bundle_file = format!("{ROOT}/rules/entra-default/bundle.idf");
    let objects = format!("{ROOT}/tests/fixtures/preview/objects.json");
    let script = format!("{ROOT}/tests/fixtures/import/connectors.ps1");
    let state = |rest: &[&'static str]| -> Vec<String> {
        ["state", "--config", config.as_str()]
            .iter()
            .chain(rest)
            .map(|s| s.to_string())
            .collect()
    };
    let owned = |args: &[&str]| -> Vec<String> { args.iter().map(|s| s.to_string()).collect() };
    let commands: Vec<Vec<String>> = vec![
        owned(&["check", "--format", "json", &rules]),
        owned(&["check", "--format", "sarif", &rules]),
        owned(&["eval", "Trim(\" x \")"]),
        owned(&["explain"]),
        owned(&["explain", "E0201"]),
        owned(&["fmt", &bundle_file]),
        owned(&["functions"]),
        owned(&["functions", "Trim"]),
        owned(&["gen", "ad", "--users", "200", "--groups", "5"]),
        owned(&["parse", &bundle_file]),
        owned(&[
            "preview",
            &rules,
            "--objects",
            &objects,
            "--dn",
            "CN=Bob Brown,OU=Users,OU=CORP,DC=contoso,DC=com",
        ]),
        owned(&["test", &rules]),
        owned(&["import", "entra", &script, "-o", "bundle", "--dry-run"]),
        state(&["pending-exports"]),
        state(&["pending-exports", "--format", "json"]),
        state(&["pending-exports", "--format", "csv"]),
        state(&["search", "--dn", "1001"]),
        state(&["show", "--dn", "CN=1001,OU=HR"]),
        state(&["errors"]),
        state(&["runs"]),
        owned(&[
            "run",
            "--config",
            config.as_str(),
            "--profile",
            "delta-sync",
        ]),
    ];
    for args in &commands {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let open = idflow(&d.0, &args);
        assert!(
            !open.stdout.is_empty(),
            "{args:?} prints nothing: {}",
            open.all()
        );
        let closed = closed_stdout(&d.0, &args);
        // The same exit code as with a reader, and nothing about the pipe on stderr.
        assert_eq!(closed.code, open.code, "{args:?}: {}", closed.all());
        for noise in [
            "panicked",
            "Broken pipe",
            "failed printing",
            "backtrace",
            "error: writing",
        ] {
            assert!(!closed.stderr.contains(noise), "{args:?}: {}", closed.all());
        }
    }
}
