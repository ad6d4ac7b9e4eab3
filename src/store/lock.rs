//! The run lock: one `idflow run` at a time on a state database.
//!
//! Consumes: the path of a state database. Produces: a [`StateLock`], an exclusive advisory
//! lock (`flock` on Unix, `LockFileEx` on Windows, through std's `File::try_lock`) on the
//! sidecar file `<state>.lock`, which holds the holder's process id and start time; or a
//! [`LockError`] naming the lock file and the process holding it. The lock is released when
//! the [`StateLock`] is dropped or the process ends (even when killed), so a stale lock file
//! never blocks a run: only a live holder does. The file itself is kept (removing it would let
//! two processes lock two different files of the same name).

#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

use std::io::{Read as _, Seek as _, Write as _};
use std::path::{Path, PathBuf};

/// Why the run lock could not be taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LockError {
    /// Another process holds it; `holder` is what it wrote (process id and start time), or
    /// empty when it has not written it yet.
    Busy { lock: PathBuf, holder: String },
    /// The lock file cannot be created, opened or locked.
    Io { lock: PathBuf, message: String },
}

impl std::fmt::Display for LockError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LockError::Busy { lock, holder } => {
                let who = if holder.is_empty() {
                    "another process".to_string()
                } else {
                    format!("another process ({holder})")
                };
                write!(
                    f,
                    "the state is in use: {who} holds the run lock {}; wait for that run to \
                     finish (`idflow state` commands work meanwhile)",
                    lock.display()
                )
            }
            LockError::Io { lock, message } => {
                write!(f, "cannot take the run lock {}: {message}", lock.display())
            }
        }
    }
}

impl std::error::Error for LockError {}

/// The exclusive run lock of a state database, held until dropped.
#[derive(Debug)]
pub struct StateLock {
    file: std::fs::File,
    path: PathBuf,
}

/// The lock file of a state database: `<state>.lock` beside it.
pub fn lock_path(state: &Path) -> PathBuf {
    let mut name = state.as_os_str().to_os_string();
    name.push(".lock");
    PathBuf::from(name)
}

impl StateLock {
    /// Takes the run lock of the state database at `state` without waiting.
    pub fn acquire(state: &Path) -> Result<StateLock, LockError> {
        let path = lock_path(state);
        let io = |e: std::io::Error| LockError::Io {
            lock: path.clone(),
            message: e.to_string(),
        };
        let mut options = std::fs::OpenOptions::new();
        // Not truncated on open: the holder's text stays readable for the message.
        options.read(true).write(true).create(true).truncate(false);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options.open(&path).map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                return Err(LockError::Busy {
                    lock: path,
                    holder: holder.trim().to_string(),
                });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io(e)),
        }
        let text = format!(
            "pid {}, started {}",
            std::process::id(),
            jiff::Timestamp::now()
        );
        file.set_len(0).map_err(io)?;
        file.rewind().map_err(io)?;
        file.write_all(text.as_bytes()).map_err(io)?;
        file.flush().map_err(io)?;
        Ok(StateLock { file, path })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for StateLock {
    fn drop(&mut self) {
        // The holder's text goes first; closing the file releases the lock.
        let _ = self.file.set_len(0);
        let _ = self.file.unlock();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_is_refused_until_the_first_is_dropped() {
        let d = std::env::temp_dir().join(format!("idflow-lock-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        let state = d.join("idflow.db");
        let first = StateLock::acquire(&state).unwrap();
        assert_eq!(first.path(), d.join("idflow.db.lock"));
        match StateLock::acquire(&state) {
            Err(LockError::Busy { lock, holder }) => {
                assert_eq!(lock, d.join("idflow.db.lock"));
                assert!(
                    holder.starts_with(&format!("pid {}, started ", std::process::id())),
                    "{holder}"
                );
            }
            other => panic!("{other:?}"),
        }
        drop(first);
        let again = StateLock::acquire(&state).unwrap();
        drop(again);
        let _ = std::fs::remove_dir_all(&d);
    }
}
