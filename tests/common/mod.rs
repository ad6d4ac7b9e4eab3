//! Shared by the end-to-end tests that drive the real `idflow` binary: running it in a
//! directory and capturing its exit code and output, and the temporary directories they run in.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The `idflow` binary built for the tests.
pub const BIN: &str = env!("CARGO_BIN_EXE_idflow");

/// What one `idflow` invocation printed and returned.
#[derive(Debug)]
pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    /// The exit code and both streams, for assertion messages.
    pub fn all(&self) -> String {
        format!(
            "exit {}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// Runs `idflow args` in `dir` (no colors) and waits for it.
pub fn idflow(dir: &Path, args: &[&str]) -> Out {
    let out = Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .output()
        .expect("the idflow binary runs");
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A temporary directory, removed on drop.
pub struct Dir(pub PathBuf);

impl Dir {
    pub fn new(name: &str) -> Dir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let p = std::env::temp_dir().join(format!(
            "idflow-test-{name}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        Dir(p)
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.0.join(rel)
    }

    pub fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.path(rel))
            .unwrap_or_else(|e| panic!("{}: {e}", self.path(rel).display()))
    }

    pub fn write(&self, rel: &str, text: &str) {
        std::fs::write(self.path(rel), text).unwrap();
    }

    pub fn config(&self) -> String {
        self.path("idflow.toml").display().to_string()
    }

    /// Replaces text of idflow.toml (which must hold it).
    pub fn replace(&self, from: &str, to: &str) {
        let text = self.read("idflow.toml");
        assert!(text.contains(from), "idflow.toml has no `{from}`");
        self.write("idflow.toml", &text.replacen(from, to, 1));
    }

    /// Sets a top-level key of idflow.toml (the line `key = ...` must exist).
    pub fn set(&self, key: &str, value: &str) {
        let text = self.read("idflow.toml");
        let mut found = false;
        let out: Vec<String> = text
            .lines()
            .map(|l| {
                if l.split('=').next().is_some_and(|k| k.trim() == key) && !found {
                    found = true;
                    format!("{key} = {value}")
                } else {
                    l.to_string()
                }
            })
            .collect();
        assert!(found, "idflow.toml has no `{key}` line");
        self.write("idflow.toml", &(out.join("\n") + "\n"));
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        #[cfg(unix)]
        {
            // A test may have made a subdirectory read-only.
            use std::os::unix::fs::PermissionsExt;
            if let Ok(entries) = std::fs::read_dir(&self.0) {
                for e in entries.flatten() {
                    if e.path().is_dir() {
                        let _ = std::fs::set_permissions(
                            e.path(),
                            std::fs::Permissions::from_mode(0o755),
                        );
                    }
                }
            }
        }
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The checked bundle of one rule file's text; fails the test on any check error.
pub fn bundle(name: &str, text: &str) -> idflow::sema::Bundle {
    let mut map = idflow::source::SourceMap::new();
    map.add(name, text);
    let checked = idflow::frontend::check(&map);
    let errors: Vec<String> = checked
        .diagnostics
        .iter()
        .filter(|d| d.is_error())
        .map(|d| format!("{}: {}", d.code, d.message))
        .collect();
    assert!(errors.is_empty(), "the test bundle has errors: {errors:#?}");
    checked.bundle
}

// ------------------------------------------------------------------ runs through the library

/// A runner of the deployment in `dir`, with the interpreter (no JIT compile per test).
pub fn runner(dir: &Dir) -> idflow::runner::Runner {
    idflow::runner::Runner::open(
        &PathBuf::from(dir.config()),
        idflow::eval::EngineKind::Interp,
    )
    .unwrap()
}

/// One sync cycle of the deployment in `dir`: its step reports.
pub fn cycle(dir: &Dir) -> Vec<idflow::runner::StepReport> {
    runner(dir)
        .cycle(idflow::runner::CycleOptions::default())
        .unwrap()
}

/// The report of `step` (`import`, `export`, ...) of `connector`.
pub fn step<'a>(
    reports: &'a [idflow::runner::StepReport],
    step: &str,
    connector: &str,
) -> &'a idflow::runner::StepReport {
    reports
        .iter()
        .find(|r| r.step.ends_with(step) && r.connector == connector)
        .unwrap_or_else(|| panic!("no {step} {connector}: {reports:#?}"))
}

/// A step's adds, updates, deletes and errors.
pub fn counts(r: &idflow::runner::StepReport) -> (usize, usize, usize, usize) {
    (r.adds, r.updates, r.deletes, r.errors)
}

/// A cycle with nothing to send and nothing new read, but for the imports recording at most
/// `reordered` objects whose values the server keeps in an order of its own (members).
pub fn assert_settled(reports: &[idflow::runner::StepReport], reordered: usize) {
    for r in reports {
        assert_eq!((r.adds, r.deletes, r.errors), (0, 0, 0), "{r:#?}");
        assert_eq!(r.status, idflow::runner::StepStatus::Success, "{r:#?}");
        if r.step.ends_with("import") {
            assert!(r.updates <= reordered, "{r:#?}");
        } else {
            assert_eq!(r.updates, 0, "{r:#?}");
        }
    }
}

/// A test certificate authority (`ca.crt`, `ca.key`) and a server certificate it signs
/// (`tls.crt`, `tls.key`, for localhost and 127.0.0.1), made with openssl; and `other-ca.crt`,
/// an authority that signed nothing here.
pub fn make_certificates(dir: &Path) {
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl runs");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    for name in ["ca", "other-ca"] {
        run(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            &format!("/CN=idflow test {name}"),
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.crt"),
        ]);
    }
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=localhost",
        "-keyout",
        "tls.key",
        "-out",
        "tls.csr",
    ]);
    std::fs::write(
        dir.join("tls.ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n\
         keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "tls.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-out",
        "tls.crt",
        "-extfile",
        "tls.ext",
    ]);
}

/// Sets the environment variable `name` (a bind password a test deployment names) the first
/// time it is asked for, before any connector of the test binary reads it.
pub fn set_env_once(name: &'static str, value: &str) {
    static SET: std::sync::Mutex<Vec<&'static str>> = std::sync::Mutex::new(Vec::new());
    let mut set = SET.lock().unwrap_or_else(|e| e.into_inner());
    if !set.contains(&name) {
        // SAFETY: set once per name, under the lock, before the tests that read it start
        // their connectors.
        unsafe { std::env::set_var(name, value) };
        set.push(name);
    }
}
