//! Open documents, the bundles they belong to, and the analysis of each bundle.
//!
//! Consumes: the documents the editor opens and changes (their full text, or ranged edits in
//! UTF-16 positions), and the `.idf` files on disk. Produces: one [`Analysis`] per unit — a
//! bundle (the directory of the nearest `bundle.idf` above a file, with every `.idf` file under
//! it; open documents replace the text on disk) or a file outside any bundle, checked alone —
//! holding the source map, the URI of each file, the front end's result and, on demand, the
//! symbol index. A unit changed by an edit is re-checked when its debounce delay has passed or
//! when a request needs it, whichever comes first.

use super::index::Index;
use super::position::{LineIndex, path_to_uri, uri_to_path};
use crate::frontend::{self, Checked};
use crate::source::{FileId, SourceMap};
use lsp_types::{TextDocumentContentChangeEvent, Uri};
use std::cell::OnceCell;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, Instant};

/// A unit of checking.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum UnitKey {
    /// A bundle, by the directory of its `bundle.idf`.
    Bundle(PathBuf),
    /// A file outside any bundle (or not a file on disk), checked alone.
    Alone(String),
}

/// An open document.
#[derive(Debug, Clone)]
pub struct Document {
    pub uri: Uri,
    pub text: String,
    pub version: i32,
}

/// Documents by the text of their URI (a `Uri` caches parts of itself, so it is no map key).
type Docs = HashMap<String, Document>;

/// One check of a unit.
pub struct Analysis {
    pub map: SourceMap,
    /// The URI of each file, by [`FileId`].
    pub uris: Vec<Uri>,
    pub lines: Vec<LineIndex>,
    pub checked: Checked,
    index: OnceCell<Index>,
}

impl Analysis {
    fn new(map: SourceMap, uris: Vec<Uri>) -> Analysis {
        let checked = frontend::check(&map);
        let lines = map
            .files()
            .iter()
            .map(|f| LineIndex::new(&f.text))
            .collect();
        Analysis {
            map,
            uris,
            lines,
            checked,
            index: OnceCell::new(),
        }
    }

    pub fn file_of(&self, uri: &Uri) -> Option<FileId> {
        self.uris
            .iter()
            .position(|u| u == uri)
            .map(|i| FileId(i as u32))
    }

    pub fn text(&self, file: FileId) -> &str {
        &self.map.get(file).text
    }

    pub fn line_index(&self, file: FileId) -> &LineIndex {
        &self.lines[file.0 as usize]
    }

    pub fn index(&self) -> &Index {
        self.index.get_or_init(|| {
            let files: Vec<FileId> = self.map.files().iter().map(|f| f.id).collect();
            Index::build(&self.checked.parsed, &files, &self.checked.bundle.schema)
        })
    }

    pub fn range(&self, file: FileId, span: &crate::source::Span) -> lsp_types::Range {
        self.line_index(file).range(self.text(file), span)
    }

    pub fn offset(&self, file: FileId, pos: lsp_types::Position) -> usize {
        self.line_index(file).offset(self.text(file), pos)
    }
}

struct Unit {
    /// The `.idf` files of a bundle on disk and their text, in path order.
    disk: BTreeMap<PathBuf, String>,
    analysis: Option<Rc<Analysis>>,
    /// When the unit must be re-checked (None: it is up to date, or nobody waits for it).
    due: Option<Instant>,
    /// When the first change since the last check came.
    first_change: Option<Instant>,
}

/// How long after the last change a unit is re-checked, and the longest a change waits.
#[derive(Debug, Clone, Copy)]
pub struct Debounce {
    pub quiet: Duration,
    pub max_wait: Duration,
}

impl Default for Debounce {
    fn default() -> Self {
        Debounce {
            quiet: Duration::from_millis(150),
            max_wait: Duration::from_millis(1000),
        }
    }
}

#[derive(Default)]
pub struct Workspace {
    docs: Docs,
    units: BTreeMap<UnitKey, Unit>,
    pub debounce: Debounce,
}

/// The directory of the nearest `bundle.idf` at or above the directory of `path` (on disk, or
/// among the open documents).
fn bundle_root(path: &Path, open: &Docs) -> Option<PathBuf> {
    let mut dir = path.parent();
    while let Some(d) = dir {
        let marker = d.join("bundle.idf");
        if marker.is_file() || open.contains_key(path_to_uri(&marker).as_str()) {
            return Some(d.to_path_buf());
        }
        dir = d.parent();
    }
    None
}

fn read_bundle(root: &Path) -> BTreeMap<PathBuf, String> {
    let files = crate::source::collect_idf_files(&[root.to_path_buf()]).unwrap_or_default();
    files
        .into_iter()
        .filter_map(|p| {
            let bytes = std::fs::read(&p).ok()?;
            let text = String::from_utf8_lossy(&bytes).into_owned();
            Some((p, text))
        })
        .collect()
}

fn is_idf(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "idf")
}

impl Workspace {
    pub fn document(&self, uri: &Uri) -> Option<&Document> {
        self.docs.get(uri.as_str())
    }

    /// The unit a document belongs to.
    pub fn unit_of(&self, uri: &Uri) -> UnitKey {
        match uri_to_path(uri) {
            Some(path) if is_idf(&path) => match bundle_root(&path, &self.docs) {
                Some(root) => UnitKey::Bundle(root),
                None => UnitKey::Alone(uri.as_str().to_string()),
            },
            _ => UnitKey::Alone(uri.as_str().to_string()),
        }
    }

    fn unit_mut(&mut self, key: &UnitKey) -> &mut Unit {
        self.units.entry(key.clone()).or_insert_with(|| Unit {
            disk: match key {
                UnitKey::Bundle(root) => read_bundle(root),
                UnitKey::Alone(_) => BTreeMap::new(),
            },
            analysis: None,
            due: None,
            first_change: None,
        })
    }

    /// Marks a unit as changed: it is re-checked after the debounce delay.
    fn touch(&mut self, key: &UnitKey, now: Instant, delay: bool) {
        let debounce = self.debounce;
        let unit = self.unit_mut(key);
        unit.analysis = None;
        let first = *unit.first_change.get_or_insert(now);
        unit.due = Some(if delay {
            (now + debounce.quiet).min(first + debounce.max_wait)
        } else {
            now
        });
    }

    pub fn open(&mut self, uri: Uri, text: String, version: i32) -> UnitKey {
        self.docs.insert(
            uri.as_str().to_string(),
            Document {
                uri: uri.clone(),
                text,
                version,
            },
        );
        let key = self.unit_of(&uri);
        self.touch(&key, Instant::now(), false);
        key
    }

    /// Applies the editor's changes to an open document, in order.
    pub fn change(
        &mut self,
        uri: &Uri,
        version: i32,
        changes: Vec<TextDocumentContentChangeEvent>,
    ) -> Option<UnitKey> {
        let doc = self.docs.get_mut(uri.as_str())?;
        for c in changes {
            match c.range {
                None => doc.text = c.text,
                Some(range) => {
                    let index = LineIndex::new(&doc.text);
                    let span = index.span(&doc.text, range);
                    doc.text.replace_range(span, &c.text);
                }
            }
        }
        doc.version = version;
        let key = self.unit_of(uri);
        self.touch(&key, Instant::now(), true);
        Some(key)
    }

    /// A saved document: the bundle's copy of its disk text is refreshed.
    pub fn saved(&mut self, uri: &Uri) {
        self.disk_changed(uri);
    }

    /// A closed document: its disk text counts again. Returns the unit and whether the unit
    /// is gone (a file checked alone), so its diagnostics must be cleared.
    pub fn close(&mut self, uri: &Uri) -> (UnitKey, bool) {
        let key = self.unit_of(uri);
        self.docs.remove(uri.as_str());
        if let UnitKey::Alone(_) = key {
            self.units.remove(&key);
            return (key, true);
        }
        if let Some(path) = uri_to_path(uri)
            && let Some(unit) = self.units.get_mut(&key)
        {
            match std::fs::read(&path) {
                Ok(bytes) => {
                    unit.disk
                        .insert(path, String::from_utf8_lossy(&bytes).into_owned());
                }
                Err(_) => {
                    unit.disk.remove(&path);
                }
            }
        }
        self.touch(&key, Instant::now(), false);
        (key, false)
    }

    /// A file changed on disk (saved, created, deleted, renamed): the bundles above it read
    /// their files again.
    pub fn disk_changed(&mut self, uri: &Uri) {
        let Some(path) = uri_to_path(uri) else {
            return;
        };
        let keys: Vec<UnitKey> = self
            .units
            .keys()
            .filter(|k| matches!(k, UnitKey::Bundle(root) if path.starts_with(root)))
            .cloned()
            .collect();
        for key in keys {
            if let (UnitKey::Bundle(root), Some(unit)) = (&key, self.units.get_mut(&key)) {
                unit.disk = read_bundle(root);
            }
            self.touch(&key, Instant::now(), false);
        }
    }

    /// The earliest time a unit is due for a re-check.
    pub fn next_due(&self) -> Option<Instant> {
        self.units.values().filter_map(|u| u.due).min()
    }

    /// The units whose re-check is due at `now`.
    pub fn due(&self, now: Instant) -> Vec<UnitKey> {
        self.units
            .iter()
            .filter(|(_, u)| u.due.is_some_and(|d| d <= now))
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// The current analysis of a unit, checking it first when it changed. The second value
    /// is true when it was checked by this call (its diagnostics are new).
    pub fn analysis(&mut self, key: &UnitKey) -> (Rc<Analysis>, bool) {
        if let Some(a) = self.units.get(key).and_then(|u| u.analysis.clone()) {
            return (a, false);
        }
        let (map, uris) = self.sources(key);
        let analysis = Rc::new(Analysis::new(map, uris));
        let unit = self.unit_mut(key);
        unit.analysis = Some(analysis.clone());
        unit.due = None;
        unit.first_change = None;
        (analysis, true)
    }

    /// The files of a unit: a bundle's files on disk with open documents in their place, then
    /// open documents of the bundle not (yet) on disk; or the one document checked alone.
    fn sources(&mut self, key: &UnitKey) -> (SourceMap, Vec<Uri>) {
        let mut map = SourceMap::new();
        let mut uris = Vec::new();
        match key {
            UnitKey::Alone(uri) => {
                if let Some(doc) = self.docs.get(uri) {
                    map.add(uri.as_str(), doc.text.clone());
                    uris.push(doc.uri.clone());
                }
            }
            UnitKey::Bundle(root) => {
                let disk: Vec<(PathBuf, String)> = self
                    .unit_mut(key)
                    .disk
                    .iter()
                    .map(|(p, t)| (p.clone(), t.clone()))
                    .collect();
                let mut seen = std::collections::HashSet::new();
                for (path, text) in disk {
                    let uri = path_to_uri(&path);
                    let text = match self.docs.get(uri.as_str()) {
                        Some(doc) => doc.text.clone(),
                        None => text,
                    };
                    map.add(path.display().to_string(), text);
                    seen.insert(uri.as_str().to_string());
                    uris.push(uri);
                }
                let mut extra: Vec<(PathBuf, &Document)> = self
                    .docs
                    .iter()
                    .filter(|(u, _)| !seen.contains(*u))
                    .filter_map(|(_, d)| {
                        let p = uri_to_path(&d.uri)?;
                        (is_idf(&p) && p.starts_with(root)).then_some((p, d))
                    })
                    .collect();
                extra.sort_by(|a, b| a.0.cmp(&b.0));
                for (path, doc) in extra {
                    map.add(path.display().to_string(), doc.text.clone());
                    uris.push(doc.uri.clone());
                }
            }
        }
        (map, uris)
    }
}
