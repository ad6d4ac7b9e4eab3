//! Exports to a file target written as a stream, for the exports that touch much of a file.
//!
//! Consumes: export deltas, and the target file's records as they are read. Produces: the new
//! file, replaced atomically, and one result per delta, exactly as `ldif::export_file` answers
//! them (same text, byte for byte, same results), without holding the file's objects or the new
//! ones in memory: a first export of a hundred thousand objects held each of them twice (the
//! delta and the object it makes) on top of the state.
//!
//! Two shapes are streamed:
//! - **adds into a file that does not exist yet**: the objects are made and written one at a
//!   time, in tree order (the order `ldif::tree_order` gives the whole set);
//! - **updates without renames, touching more than a quarter of a file** whose records are all
//!   content records in tree order: each record is read, changed if a delta names it, and
//!   written. (An export that touches at most a quarter of its file is confirmed by what it
//!   wrote, read back, which `ldif::export_file` keeps; so is anything of another shape.)
//!
//! Either answers `None` when the export is not of its shape, or when the file turns out not
//! to be while it is read (a record out of tree order, a change record, a malformed record,
//! no delta applied, or a quarter or less of the file touched): the file is then left as it
//! was and `ldif::export_file` does the export.

use super::ldif::{self, AttrTypes, Entry, Objects, TreePosition};
use super::{Anchors, ConnectorError, ExportErrorCategory, ExportResult};
use crate::engine::export::ExportDelta;
use crate::engine::model::ExportOp;
use crate::files::write_atomic_with;
use std::collections::{HashMap, HashSet};
use std::path::Path;

/// How one object is written: its text, appended to the buffer.
pub(crate) type Render<'a> = &'a dyn Fn(&Entry, &mut String);

/// Adds into a file that does not exist: `header`, then each new object as `render` writes it,
/// in tree order. `None` when a delta is not an add or the file exists.
pub(crate) fn adds_into_new_file(
    path: &Path,
    deltas: &[ExportDelta],
    anchors: &Anchors,
    header: &str,
    render: Render<'_>,
) -> Result<Option<Vec<ExportResult>>, ConnectorError> {
    if deltas.is_empty() || deltas.iter().any(|d| d.kind != ExportOp::Add) || path.exists() {
        return Ok(None);
    }
    // What applying them one after the other into an empty set answers: a second add of a DN
    // fails, the others apply (or fail on their own, as an empty DN does).
    let mut results: Vec<Option<ExportResult>> = vec![None; deltas.len()];
    let mut seen = HashSet::new();
    let mut order: Vec<(TreePosition, usize)> = Vec::with_capacity(deltas.len());
    for (i, d) in deltas.iter().enumerate() {
        let k = ldif::dn_key(&d.dn);
        // An add that fails on its own (an empty DN, no object type) takes no DN.
        let takes = !k.is_empty() && !d.object_type.is_empty();
        if takes && !seen.insert(k) {
            results[i] = Some(failed(
                ExportErrorCategory::AlreadyExists,
                "an object with this DN already exists",
            ));
        } else {
            order.push((ldif::tree_position(d.dn.trim()), i));
        }
    }
    drop(seen);
    order.sort_unstable();
    // Each object is made as the whole-set export makes it; those that fail are not written.
    let mut made = 0;
    let written = write_atomic_with(path, |w| {
        w.write_all(header.as_bytes())?;
        let mut text = String::new();
        for (_, i) in &order {
            let mut one = Objects::new();
            let r = ldif::apply_export_to(&mut one, &deltas[*i], anchors);
            if let (ExportResult::Applied { .. }, Some(e)) = (&r, one.values().next()) {
                text.clear();
                render(e, &mut text);
                w.write_all(text.as_bytes())?;
                made += 1;
            }
            results[*i] = Some(r);
        }
        // Nothing applied: the whole-set export writes no file.
        if made == 0 {
            return Err(std::io::Error::other(ABANDONED));
        }
        Ok(())
    });
    match written {
        Ok(()) => Ok(Some(results.into_iter().flatten().collect())),
        Err(_) if made == 0 => Ok(None),
        Err(e) => Err(file_error(path, e)),
    }
}

/// Updates without renames of the objects of an existing file, streamed record by record.
/// `None` when the export is not of that shape or the file turns out not to be (see the
/// module's documentation).
pub(crate) fn updates_in_place(
    path: &Path,
    types: &AttrTypes,
    deltas: &[ExportDelta],
    share: usize,
) -> Result<Option<Vec<ExportResult>>, ConnectorError> {
    let mut by_key: HashMap<String, usize> = HashMap::with_capacity(deltas.len());
    for (i, d) in deltas.iter().enumerate() {
        let k = ldif::dn_key(&d.dn);
        let renamed = d.new_dn.as_deref().is_some_and(|n| ldif::dn_key(n) != k);
        if d.kind != ExportOp::Update || renamed || k.is_empty() || by_key.insert(k, i).is_some() {
            return Ok(None);
        }
    }
    // An export that touches at most a quarter of the file is confirmed by what it wrote.
    let limit = deltas.len().saturating_mul(share);
    match count_records(path, limit)? {
        Some(n) if n < limit => {}
        _ => return Ok(None),
    }
    let Some(input) = ldif::open_file(path)? else {
        return Ok(None);
    };
    let source = path.display().to_string();
    let mut found = vec![false; deltas.len()];
    let mut total = 0usize;
    let mut abandoned = false;
    let written = write_atomic_with(path, |w| {
        w.write_all(b"version: 1\n")?;
        let mut text = String::new();
        let mut last: Option<TreePosition> = None;
        let read = ldif::read_records(input, &source, types, |item| {
            let Ok((_, ldif::Record::Content(mut e))) = item else {
                return Err(abandon(&source));
            };
            let here = ldif::tree_position(&e.dn);
            if last.as_ref().is_some_and(|l| *l >= here) {
                return Err(abandon(&source));
            }
            if let Some(&i) = by_key.get(&here.1) {
                ldif::update_entry(&mut e, &deltas[i]);
                found[i] = true;
            }
            last = Some(here);
            total += 1;
            text.clear();
            text.push('\n');
            ldif::write_entry(&mut text, &e);
            w.write_all(text.as_bytes())
                .map_err(|e| ldif::io_error(path, "cannot write", &e))
        });
        let applied = found.iter().filter(|&&f| f).count();
        match read {
            Err(e) if e.message == ABANDONED => abandoned = true,
            Err(e) => return Err(std::io::Error::other(e.to_string())),
            // Nothing applied, or few enough to be confirmed by what was written: as the
            // whole-set export does it.
            Ok(()) if applied == 0 || applied.saturating_mul(share) <= total.max(1) => {
                abandoned = true;
            }
            Ok(()) => {}
        }
        if abandoned {
            return Err(std::io::Error::other(ABANDONED));
        }
        Ok(())
    });
    match written {
        Ok(()) => Ok(Some(
            found
                .iter()
                .map(|&f| {
                    if f {
                        ExportResult::Applied { anchor: None }
                    } else {
                        failed(ExportErrorCategory::NoSuchObject, "no object with this DN")
                    }
                })
                .collect(),
        )),
        Err(_) if abandoned => Ok(None),
        Err(e) => Err(file_error(path, e)),
    }
}

/// What a streamed export that turns out not to be streamable answers inside the write.
const ABANDONED: &str = "the streamed export was abandoned";

fn abandon(source: &str) -> ConnectorError {
    ConnectorError {
        source: source.to_string(),
        line: None,
        message: ABANDONED.into(),
    }
}

fn failed(category: ExportErrorCategory, detail: &str) -> ExportResult {
    ExportResult::Failed {
        category,
        detail: detail.to_string(),
    }
}

fn file_error(path: &Path, e: crate::files::FileError) -> ConnectorError {
    ConnectorError {
        source: path.display().to_string(),
        line: None,
        message: e.to_string(),
    }
}

/// The number of records of an LDIF file, counted up to `limit` (a file with more answers
/// `limit`): its lines that begin with `dn:` (any case), which only a record's first line
/// does. `None` when the file does not exist.
fn count_records(path: &Path, limit: usize) -> Result<Option<usize>, ConnectorError> {
    use std::io::Read;
    let Some(mut input) = ldif::open_file(path)? else {
        return Ok(None);
    };
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0;
    // The bytes of the current line seen so far (up to three), lower-cased.
    let mut start = [0u8; 3];
    let mut at = 0usize;
    loop {
        let got = input
            .read(&mut buf)
            .map_err(|e| ldif::io_error(path, "cannot read", &e))?;
        if got == 0 {
            return Ok(Some(n));
        }
        for &b in &buf[..got] {
            if b == b'\n' {
                at = 0;
                continue;
            }
            if at < 3 {
                start[at] = b.to_ascii_lowercase();
                at += 1;
                if at == 3 && start == *b"dn:" {
                    n += 1;
                    if n >= limit {
                        return Ok(Some(limit));
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::export::AttrOp;
    use crate::value::Value;
    use std::path::PathBuf;

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("idflow-streamed-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn anchors() -> Anchors {
        [("user".to_string(), "objectGUID".to_string())]
            .into_iter()
            .collect()
    }

    fn add(dn: &str, ty: &str, cn: &str) -> ExportDelta {
        ExportDelta::new(ExportOp::Add, ty, dn)
            .with("cn", AttrOp::Replace(Value::from(cn)))
            .with("mail", AttrOp::Replace(Value::from(format!("{cn}@x"))))
    }

    /// Adds in no order: children before parents, a DN twice, an add that fails on its own
    /// and frees its DN for a later one, an empty DN.
    fn adds() -> Vec<ExportDelta> {
        vec![
            add("CN=b,OU=Sales,DC=x", "user", "b"),
            add("OU=Sales,DC=x", "organizationalUnit", "Sales"),
            add("CN=a,OU=Sales,DC=x", "user", "a"),
            add("cn=A,ou=sales,dc=x", "user", "a again"),
            add("CN=c,DC=x", "", "no type"),
            add("CN=c,DC=x", "user", "c"),
            add("", "user", "no DN"),
            add("DC=x", "domain", "x"),
        ]
    }

    /// The whole-set export of `deltas` into the file at `path` (its current content loaded).
    fn whole_set(
        path: &Path,
        deltas: &[ExportDelta],
        render: impl FnOnce(&Objects, &mut dyn std::io::Write) -> std::io::Result<()>,
    ) -> Vec<ExportResult> {
        let loaded = ldif::load(path, &AttrTypes::default(), true).unwrap();
        let (results, _) =
            ldif::export_file(path, loaded, "record", deltas, &anchors(), render, |e| {
                Ok(e.clone())
            })
            .unwrap();
        results
    }

    #[test]
    fn adds_into_a_new_file_are_written_as_the_whole_set_export_writes_them() {
        let d = dir("adds");
        let deltas = adds();
        // LDIF.
        let (streamed, whole) = (d.join("s.ldif"), d.join("w.ldif"));
        let render: Render<'_> = &|e, text| {
            text.push('\n');
            ldif::write_entry(text, e);
        };
        let got = adds_into_new_file(&streamed, &deltas, &anchors(), "version: 1\n", render)
            .unwrap()
            .expect("streamed");
        let want = whole_set(&whole, &deltas, |set, w| {
            crate::files::render_into(w, |t| ldif::write_ldif_to(set.values(), t))
        });
        assert_eq!(got, want);
        let text = std::fs::read_to_string(&streamed).unwrap();
        assert_eq!(text, std::fs::read_to_string(&whole).unwrap());
        // Parents first, whatever order the deltas came in.
        let dns: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("dn: "))
            .collect();
        assert_eq!(
            dns,
            [
                "DC=x",
                "CN=c,DC=x",
                "OU=Sales,DC=x",
                "CN=a,OU=Sales,DC=x",
                "CN=b,OU=Sales,DC=x"
            ]
        );
        assert!(matches!(
            &got[3],
            ExportResult::Failed {
                category: ExportErrorCategory::AlreadyExists,
                ..
            }
        ));
        assert!(matches!(&got[5], ExportResult::Applied { anchor: Some(_) }));
        // JSON lines.
        let (streamed, whole) = (d.join("s.jsonl"), d.join("w.jsonl"));
        let render: Render<'_> = &|e, text| {
            text.push_str(&super::super::jsonl::line(e));
            text.push('\n');
        };
        let got = adds_into_new_file(&streamed, &deltas, &anchors(), "", render)
            .unwrap()
            .expect("streamed");
        let want = whole_set(&whole, &deltas, |set, w| {
            for e in ldif::tree_order(set.values()) {
                writeln!(w, "{}", super::super::jsonl::line(e))?;
            }
            Ok(())
        });
        assert_eq!(got, want);
        assert_eq!(
            std::fs::read(&streamed).unwrap(),
            std::fs::read(&whole).unwrap()
        );
        // An existing file, or anything but adds, is not streamed.
        assert!(
            adds_into_new_file(&streamed, &deltas, &anchors(), "", render)
                .unwrap()
                .is_none()
        );
        let update = vec![ExportDelta::new(ExportOp::Update, "user", "CN=a,DC=x")];
        assert!(
            adds_into_new_file(&d.join("n.jsonl"), &update, &anchors(), "", render)
                .unwrap()
                .is_none()
        );
        // Nothing applied: no file, as the whole-set export writes none.
        let failing = vec![add("", "user", "no DN")];
        assert!(
            adds_into_new_file(&d.join("n.jsonl"), &failing, &anchors(), "", render)
                .unwrap()
                .is_none()
        );
        assert!(!d.join("n.jsonl").exists());
        let _ = std::fs::remove_dir_all(&d);
    }

    /// A file of eight objects in tree order, with attributes no delta names.
    const FILE: &str = "version: 1
# written by hand

dn: DC=x
objectClass: domain
dc: x

dn: OU=Users,DC=x
objectClass: organizationalUnit
ou: Users

dn: CN=u1,OU=Users,DC=x
objectClass: user
cn: u1
title: one
otherMailbox: a@x
otherMailbox: b@x

dn: CN=u2,OU=Users,DC=x
objectClass: user
cn: u2

dn: CN=u3,OU=Users,DC=x
objectClass: user
cn: u3
description:: w6l0w6k=

dn: CN=u4,OU=Users,DC=x
objectClass: user
cn: u4

dn: CN=u5,OU=Users,DC=x
objectClass: user
cn: u5

dn: CN=u6,OU=Users,DC=x
objectClass: user
cn: u6
";

    fn update(dn: &str) -> ExportDelta {
        ExportDelta::new(ExportOp::Update, "user", dn)
    }

    fn updates() -> Vec<ExportDelta> {
        vec![
            update("CN=u1,OU=Users,DC=x")
                .with("title", AttrOp::Clear)
                .with("otherMailbox", AttrOp::Remove(vec![Value::from("a@x")]))
                .with("otherMailbox", AttrOp::Add(vec![Value::from("c@x")])),
            update("cn=U2,ou=users,dc=x").with("title", AttrOp::Replace(Value::from("two"))),
            update("CN=u3,OU=Users,DC=x").with("guid", AttrOp::Replace(Value::bin(vec![1, 2]))),
            update("CN=u4,OU=Users,DC=x").with("title", AttrOp::Replace(Value::from("four"))),
            // The same DN, spelled anew.
            ExportDelta {
                new_dn: Some("cn=U5,OU=Users,DC=x".into()),
                ..update("CN=u5,OU=Users,DC=x")
            },
            update("CN=gone,OU=Users,DC=x").with("title", AttrOp::Replace(Value::from("x"))),
        ]
    }

    fn whole_ldif(path: &Path, deltas: &[ExportDelta]) -> Vec<ExportResult> {
        whole_set(path, deltas, |set, w| {
            crate::files::render_into(w, |t| ldif::write_ldif_to(set.values(), t))
        })
    }

    #[test]
    fn updates_of_much_of_a_file_are_written_as_the_whole_set_export_writes_them() {
        let d = dir("updates");
        let (streamed, whole) = (d.join("s.ldif"), d.join("w.ldif"));
        for p in [&streamed, &whole] {
            std::fs::write(p, FILE).unwrap();
        }
        let deltas = updates();
        let got = updates_in_place(&streamed, &AttrTypes::default(), &deltas, 4)
            .unwrap()
            .expect("streamed");
        let want = whole_ldif(&whole, &deltas);
        assert_eq!(got, want);
        assert!(matches!(
            &got[5],
            ExportResult::Failed {
                category: ExportErrorCategory::NoSuchObject,
                ..
            }
        ));
        let text = std::fs::read_to_string(&streamed).unwrap();
        assert_eq!(text, std::fs::read_to_string(&whole).unwrap());
        assert!(
            text.contains("otherMailbox: b@x\notherMailbox: c@x\n"),
            "{text}"
        );
        assert!(text.contains("dn: cn=U5,OU=Users,DC=x\n"), "{text}");
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn what_is_not_of_the_streamed_shape_is_left_to_the_whole_set_export() {
        let d = dir("fallback");
        let path = d.join("t.ldif");
        let types = AttrTypes::default();
        let not_streamed = |file: &str, deltas: &[ExportDelta]| {
            std::fs::write(&path, file).unwrap();
            let r = updates_in_place(&path, &types, deltas, 4).unwrap();
            // The file is left as it was.
            assert_eq!(std::fs::read_to_string(&path).unwrap(), file);
            r.is_none()
        };
        let deltas = updates();
        // Out of tree order: a child before its parent, or siblings out of order.
        let swapped = FILE.replace("dn: DC=x\nobjectClass: domain\ndc: x\n\n", "")
            + "\ndn: DC=x\nobjectClass: domain\ndc: x\n";
        assert!(not_streamed(&swapped, &deltas));
        let siblings = FILE.replace("CN=u6", "CN=u0");
        assert!(not_streamed(&siblings, &deltas));
        // A change record, or a malformed one.
        let change = format!("{FILE}\ndn: CN=u7,OU=Users,DC=x\nchangetype: delete\n");
        assert!(not_streamed(&change, &deltas));
        let malformed = format!("{FILE}\ndn: CN=u8,OU=Users,DC=x\ncn: no class\n");
        assert!(not_streamed(&malformed, &deltas));
        // Two updates of eight objects: confirmed by what was written, not streamed.
        assert!(not_streamed(FILE, &deltas[..2]));
        // A rename, an add, or one DN twice.
        let mut renamed = updates();
        renamed[0].new_dn = Some("CN=v1,OU=Users,DC=x".into());
        assert!(not_streamed(FILE, &renamed));
        let mut with_add = updates();
        with_add.push(add("CN=u9,OU=Users,DC=x", "user", "u9"));
        assert!(not_streamed(FILE, &with_add));
        let mut twice = updates();
        twice.push(update("CN=u1,OU=Users,DC=x"));
        assert!(not_streamed(FILE, &twice));
        // None of them applies: the whole-set export writes nothing.
        let missing: Vec<ExportDelta> = (0..5).map(|i| update(&format!("CN=m{i},DC=x"))).collect();
        assert!(not_streamed(FILE, &missing));
        // The same file, in order and touched enough, is streamed.
        std::fs::write(&path, FILE).unwrap();
        assert!(
            updates_in_place(&path, &types, &deltas, 4)
                .unwrap()
                .is_some()
        );
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn records_are_counted_by_their_dn_lines() {
        let d = dir("count");
        let path = d.join("t.ldif");
        std::fs::write(&path, FILE).unwrap();
        assert_eq!(count_records(&path, usize::MAX).unwrap(), Some(8));
        assert_eq!(count_records(&path, 3).unwrap(), Some(3));
        std::fs::write(
            &path,
            "version: 1\n\nDN: a=b\nobjectClass: x\n description: dn: no\n",
        )
        .unwrap();
        assert_eq!(count_records(&path, usize::MAX).unwrap(), Some(1));
        assert_eq!(count_records(&d.join("none.ldif"), 1).unwrap(), None);
        let _ = std::fs::remove_dir_all(&d);
    }
}
