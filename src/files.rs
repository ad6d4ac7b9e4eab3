//! Safe file writes: atomic replacement, stale temporary files, private files.
//!
//! Consumes: a path and the bytes it should hold. Produces: the file replaced in one rename (a
//! crash leaves the old or the new content, never a torn file), or a [`FileError`] with the old
//! file untouched. A symbolic link is followed (the file it points to is replaced, the link
//! kept); a file with several hard links is refused, because a rename would detach it from its
//! other names and leave the file they show unchanged. Temporary files are named
//! `.<name>.idflow-tmp.<pid>.<n>` beside the file they replace; those of a killed process are
//! removed by the next write to the same file (and by `Runner::open` for connector files).

#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A file operation that failed: which file, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileError {
    pub path: PathBuf,
    pub message: String,
}

impl std::fmt::Display for FileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.message)
    }
}

impl std::error::Error for FileError {}

fn error(path: &Path, message: impl Into<String>) -> FileError {
    FileError {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

/// The marker of idflow's temporary files: `.<name>.idflow-tmp.<pid>.<n>`.
const TMP_MARK: &str = ".idflow-tmp.";
/// Symbolic links followed before giving up (as the kernel's `ELOOP`).
const MAX_LINKS: usize = 40;
/// A temporary file older than this is stale even when its process cannot be checked.
const STALE_AFTER: Duration = Duration::from_secs(24 * 60 * 60);

/// The folder of `path` (`.` for a bare file name).
fn folder(path: &Path) -> PathBuf {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// The file a write to `path` replaces: `path` with every symbolic link followed (a relative
/// link target is relative to the link's folder). The result need not exist.
pub fn resolve_links(path: &Path) -> Result<PathBuf, FileError> {
    let mut p = path.to_path_buf();
    for _ in 0..MAX_LINKS {
        match std::fs::symlink_metadata(&p) {
            Ok(m) if m.file_type().is_symlink() => {
                let target = std::fs::read_link(&p)
                    .map_err(|e| error(&p, format!("cannot read the link: {e}")))?;
                p = if target.is_absolute() {
                    target
                } else {
                    folder(&p).join(target)
                };
            }
            Ok(_) => return Ok(p),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(p),
            Err(e) => return Err(error(&p, e.to_string())),
        }
    }
    Err(error(path, "too many levels of symbolic links"))
}

/// Replaces the file at `path` with `data` atomically: a temporary file beside the real file
/// (symbolic links followed) is written and synced, renamed over it, and the folder is synced.
/// The replaced file's permissions are kept; a new file gets the process's default ones. A
/// file with more than one hard link, or that is not a regular file, is refused. On any error
/// the old file is untouched and the temporary file removed.
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<(), FileError> {
    write_atomic_with(path, |w| w.write_all(data))
}

/// [`write_atomic`] of the bytes `fill` writes (through a buffer, so a large file need not be
/// held in memory first).
pub fn write_atomic_with(
    path: &Path,
    fill: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> Result<(), FileError> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let real = resolve_links(path)?;
    let existing = match std::fs::metadata(&real) {
        Ok(m) => Some(m),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(error(&real, e.to_string())),
    };
    if let Some(m) = &existing {
        if !m.is_file() {
            return Err(error(&real, "not a regular file: it is not replaced"));
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            if m.nlink() > 1 {
                return Err(error(
                    &real,
                    format!(
                        "the file has {} hard links: replacing it would leave the other links \
                         showing the old content, so it is not written (make it a single file, \
                         or point to it with a symbolic link)",
                        m.nlink()
                    ),
                ));
            }
        }
    }
    let dir = folder(&real);
    let name = real
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "out".into());
    remove_stale_temps(&real);
    let tmp = dir.join(format!(
        ".{name}{TMP_MARK}{}.{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let write = || -> std::io::Result<()> {
        let f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)?;
        if let Some(meta) = &existing {
            // Keep the permissions of the file being replaced.
            f.set_permissions(meta.permissions())?;
        }
        let mut w = std::io::BufWriter::with_capacity(1 << 20, f);
        fill(&mut w)?;
        w.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        Ok(())
    };
    if let Err(e) = write() {
        let _ = std::fs::remove_file(&tmp);
        return Err(error(&real, format!("cannot write: {e}")));
    }
    if let Err(e) = std::fs::rename(&tmp, &real) {
        let _ = std::fs::remove_file(&tmp);
        return Err(error(&real, format!("cannot replace: {e}")));
    }
    // Make the rename durable. Directories cannot be opened for syncing everywhere.
    #[cfg(unix)]
    if let Ok(d) = std::fs::File::open(&dir) {
        d.sync_all()
            .map_err(|e| error(&dir, format!("cannot sync: {e}")))?;
    }
    Ok(())
}

/// Runs a text renderer (`render`, which writes to a `fmt::Write`, as into a `String`) into
/// `out`: the first I/O error of `out` is the result.
pub fn render_into(
    out: &mut dyn Write,
    render: impl FnOnce(&mut dyn std::fmt::Write) -> std::fmt::Result,
) -> std::io::Result<()> {
    struct Adapter<'a> {
        out: &'a mut dyn Write,
        error: Option<std::io::Error>,
    }
    impl std::fmt::Write for Adapter<'_> {
        fn write_str(&mut self, s: &str) -> std::fmt::Result {
            self.out.write_all(s.as_bytes()).map_err(|e| {
                self.error.get_or_insert(e);
                std::fmt::Error
            })
        }
    }
    let mut a = Adapter { out, error: None };
    match (render(&mut a), a.error) {
        (_, Some(e)) => Err(e),
        (Ok(()), None) => Ok(()),
        (Err(_), None) => Err(std::io::Error::other("the text could not be rendered")),
    }
}

/// The process id in the name of a temporary file of `name` (`.<name>.idflow-tmp.<pid>.<n>`,
/// and the earlier `.<name>.tmp-<pid>-<n>` and `.<name>.idflow-fmt.<pid>`), or `None` when the
/// file is not one.
fn temp_pid(file: &str, name: &str) -> Option<u32> {
    let rest = file.strip_prefix('.')?.strip_prefix(name)?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if let Some(r) = rest.strip_prefix(TMP_MARK) {
        let (pid, n) = r.split_once('.')?;
        return (digits(pid) && digits(n)).then(|| pid.parse().ok())?;
    }
    if let Some(r) = rest.strip_prefix(".tmp-") {
        let (pid, n) = r.split_once('-')?;
        return (digits(pid) && digits(n)).then(|| pid.parse().ok())?;
    }
    let pid = rest.strip_prefix(".idflow-fmt.")?;
    digits(pid).then(|| pid.parse().ok())?
}

/// Whether process `pid` is running: `None` where this cannot be told (no `/proc`).
fn running(pid: u32) -> Option<bool> {
    if pid == std::process::id() {
        return Some(true);
    }
    let proc = Path::new("/proc");
    if proc.join("self").exists() {
        Some(proc.join(pid.to_string()).exists())
    } else {
        None
    }
}

/// Removes the temporary files a killed write to `path` left beside it: those whose process
/// is no longer running, or (where that cannot be told) that are more than a day old. Symbolic
/// links are not followed. Returns the files removed; files that cannot be removed are left.
pub fn remove_stale_temps(path: &Path) -> Vec<PathBuf> {
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        return Vec::new();
    };
    let Ok(entries) = std::fs::read_dir(folder(path)) else {
        return Vec::new();
    };
    let mut removed = Vec::new();
    for e in entries.flatten() {
        let file = e.file_name();
        let Some(pid) = file.to_str().and_then(|f| temp_pid(f, name)) else {
            continue;
        };
        let Ok(meta) = std::fs::symlink_metadata(e.path()) else {
            continue;
        };
        if !meta.is_file() {
            continue;
        }
        let old = meta
            .modified()
            .ok()
            .and_then(|m| m.elapsed().ok())
            .is_some_and(|age| age > STALE_AFTER);
        let stale = match running(pid) {
            Some(alive) => !alive || old,
            None => old,
        };
        if stale && std::fs::remove_file(e.path()).is_ok() {
            removed.push(e.path());
        }
    }
    removed
}

/// Creates `path` as an empty file readable and writable by its owner only (mode 0600 on
/// Unix), unless it exists. Returns whether it was created.
pub fn create_private(path: &Path) -> Result<bool, FileError> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    match options.open(path) {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(error(path, format!("cannot create: {e}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("idflow-files-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn temporary_names() {
        assert_eq!(temp_pid(".a.ldif.idflow-tmp.12.0", "a.ldif"), Some(12));
        assert_eq!(temp_pid(".a.ldif.tmp-12-3", "a.ldif"), Some(12));
        assert_eq!(temp_pid(".a.idf.idflow-fmt.7", "a.idf"), Some(7));
        assert_eq!(temp_pid(".a.ldif.idflow-tmp.x.0", "a.ldif"), None);
        assert_eq!(temp_pid(".b.ldif.idflow-tmp.12.0", "a.ldif"), None);
        assert_eq!(temp_pid("a.ldif", "a.ldif"), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn stale_temporary_files_are_removed_live_ones_kept() {
        let d = dir("stale");
        let target = d.join("t.jsonl");
        // No process has the largest pid the kernel can hand out (4194304 > pid_max).
        let dead = d.join(".t.jsonl.idflow-tmp.4194304.0");
        let live = d.join(format!(".t.jsonl.idflow-tmp.{}.9", std::process::id()));
        let other = d.join(".u.jsonl.idflow-tmp.4194304.0");
        for p in [&dead, &live, &other] {
            std::fs::write(p, "x").unwrap();
        }
        write_atomic(&target, b"new\n").unwrap();
        assert!(!dead.exists());
        assert!(live.exists());
        assert!(other.exists());
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "new\n");
        let _ = std::fs::remove_dir_all(&d);
    }

    #[cfg(unix)]
    #[test]
    fn a_symlink_is_written_through_and_a_hard_link_refused() {
        let d = dir("links");
        std::fs::create_dir_all(d.join("real")).unwrap();
        let real = d.join("real/out.ldif");
        std::fs::write(&real, "old\n").unwrap();
        let link = d.join("out.ldif");
        std::os::unix::fs::symlink("real/out.ldif", &link).unwrap();
        write_atomic(&link, b"new\n").unwrap();
        assert!(
            std::fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(std::fs::read_to_string(&real).unwrap(), "new\n");

        let hard = d.join("hard.ldif");
        std::fs::hard_link(&real, &hard).unwrap();
        let e = write_atomic(&hard, b"newer\n").unwrap_err();
        assert!(e.message.contains("hard links"), "{e}");
        assert_eq!(std::fs::read_to_string(&real).unwrap(), "new\n");
        assert_eq!(std::fs::read_to_string(&hard).unwrap(), "new\n");
        let _ = std::fs::remove_dir_all(&d);
    }

    #[cfg(unix)]
    #[test]
    fn private_files_are_0600() {
        use std::os::unix::fs::PermissionsExt;
        let d = dir("private");
        let p = d.join("state.db");
        assert!(create_private(&p).unwrap());
        assert!(!create_private(&p).unwrap());
        let mode = std::fs::metadata(&p).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let _ = std::fs::remove_dir_all(&d);
    }
}
