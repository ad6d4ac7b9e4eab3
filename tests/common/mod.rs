//! Shared by the end-to-end tests that drive the real `idflow` binary: running it in a
//! directory and capturing its exit code and output.

use std::path::Path;
use std::process::Command;

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
