//! Source files of a bundle.
//!
//! Consumes: file paths (or in-memory text). Produces: [`SourceMap`], a list of [`SourceFile`]s
//! with stable [`FileId`]s and line/column lookup for diagnostics.

use std::ops::Range;
use std::path::{Path, PathBuf};

/// Index of a file in a [`SourceMap`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FileId(pub u32);

/// A byte range in one file.
pub type Span = Range<usize>;

/// One loaded source file.
#[derive(Debug, Clone)]
pub struct SourceFile {
    pub id: FileId,
    /// Path as given by the user (shown in diagnostics).
    pub name: String,
    pub text: String,
    line_starts: Vec<usize>,
}

impl SourceFile {
    /// 1-based line and column (in characters) of a byte offset.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let line = match self.line_starts.binary_search(&offset) {
            Ok(l) => l,
            Err(l) => l - 1,
        };
        let start = self.line_starts[line];
        let col = self
            .text
            .get(start..offset)
            .map(|s| s.chars().count())
            .unwrap_or(offset - start);
        (line + 1, col + 1)
    }

    /// 1-based line number of a byte offset.
    pub fn line_of(&self, offset: usize) -> usize {
        self.line_col(offset).0
    }

    /// The byte offset where 1-based `line` starts (the end of the text past the last line).
    pub fn line_start(&self, line: usize) -> usize {
        line.checked_sub(1)
            .and_then(|i| self.line_starts.get(i))
            .copied()
            .unwrap_or(self.text.len())
    }

    /// The number of lines (a text without line feeds has one).
    pub fn line_count(&self) -> usize {
        self.line_starts.len()
    }
}

/// All files of one compilation.
#[derive(Debug, Default, Clone)]
pub struct SourceMap {
    files: Vec<SourceFile>,
}

impl SourceMap {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a file from memory.
    pub fn add(&mut self, name: impl Into<String>, text: impl Into<String>) -> FileId {
        let text = text.into();
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        let id = FileId(self.files.len() as u32);
        self.files.push(SourceFile {
            id,
            name: name.into(),
            text,
            line_starts,
        });
        id
    }

    pub fn get(&self, id: FileId) -> &SourceFile {
        &self.files[id.0 as usize]
    }

    pub fn files(&self) -> &[SourceFile] {
        &self.files
    }
}

/// Errors while collecting and reading files (exit code 2 in the CLI).
#[derive(Debug)]
pub struct LoadError {
    pub path: PathBuf,
    pub error: std::io::Error,
}

impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.error)
    }
}

impl std::error::Error for LoadError {}

/// Expands the given paths into `.idf` files: a directory is searched recursively (sorted, so
/// the order is stable), a file is taken as is. In a directory only regular files are read: a
/// named pipe, socket or device (which could block the read forever) is an error, and so is a
/// symbolic link that leads out of the directory (a bundle is self-contained). Links inside the
/// directory are followed once: a file or folder reached twice is read once.
pub fn collect_idf_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, LoadError> {
    let mut out = Vec::new();
    for p in paths {
        let meta = std::fs::metadata(p).map_err(|error| LoadError {
            path: p.clone(),
            error,
        })?;
        if meta.is_dir() {
            let root = std::fs::canonicalize(p).map_err(|error| LoadError {
                path: p.clone(),
                error,
            })?;
            let mut seen = std::collections::HashSet::new();
            seen.insert(root.clone());
            walk(p, &root, &mut seen, &mut out)?;
        } else {
            // A file named explicitly is read whatever it is (`idflow check <(...)`).
            out.push(p.clone());
        }
    }
    Ok(out)
}

fn refused(path: &Path, why: &str) -> LoadError {
    LoadError {
        path: path.to_path_buf(),
        error: std::io::Error::new(std::io::ErrorKind::InvalidInput, why.to_string()),
    }
}

/// Collects the `.idf` files under `dir`, which is `root` or inside it; `seen` holds the
/// canonical paths already collected or walked.
fn walk(
    dir: &Path,
    root: &Path,
    seen: &mut std::collections::HashSet<PathBuf>,
    out: &mut Vec<PathBuf>,
) -> Result<(), LoadError> {
    let err = |error| LoadError {
        path: dir.to_path_buf(),
        error,
    };
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(err)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()
        .map_err(err)?;
    entries.sort();
    for path in entries {
        let at = |error| LoadError {
            path: path.clone(),
            error,
        };
        let idf = path.extension().is_some_and(|e| e == "idf");
        let link = std::fs::symlink_metadata(&path).map_err(at)?;
        let (meta, real) = if link.file_type().is_symlink() {
            let real = match std::fs::canonicalize(&path) {
                Ok(r) => r,
                // A dangling link that would not be read anyway.
                Err(_) if !idf => continue,
                Err(error) => return Err(at(error)),
            };
            if !real.starts_with(root) {
                if !idf && !real.is_dir() {
                    continue;
                }
                return Err(refused(
                    &path,
                    &format!(
                        "a symbolic link out of the bundle (to {}) is not followed",
                        real.display()
                    ),
                ));
            }
            (std::fs::metadata(&real).map_err(at)?, real)
        } else {
            (link, path.clone())
        };
        if meta.is_dir() {
            let real = if real == path {
                std::fs::canonicalize(&path).map_err(at)?
            } else {
                real
            };
            if seen.insert(real) {
                walk(&path, root, seen, out)?;
            }
        } else if idf {
            if !meta.is_file() {
                return Err(refused(&path, "not a regular file"));
            }
            let real = std::fs::canonicalize(&real).map_err(at)?;
            if seen.insert(real) {
                out.push(path);
            }
        }
    }
    Ok(())
}

/// Reads files into a new [`SourceMap`]. Bytes that are not UTF-8 are replaced (the lexer then
/// reports them as invalid characters), so any byte sequence yields diagnostics, not a failure.
pub fn load(paths: &[PathBuf]) -> Result<SourceMap, LoadError> {
    let mut map = SourceMap::new();
    for p in paths {
        let bytes = std::fs::read(p).map_err(|error| LoadError {
            path: p.clone(),
            error,
        })?;
        let text = match String::from_utf8(bytes) {
            Ok(s) => s,
            Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
        };
        map.add(p.display().to_string(), text);
    }
    Ok(map)
}
