//! LDIF reading benchmark: a full import (parse, apply, import objects) of generated LDIF files
//! with one group of 10,000 and of 100,000 members (values per attribute), and one entry with
//! 10,000 attributes (attributes per entry). Reading must grow linearly in both.
//!
//! Sanity checks before timing: every member and attribute is read, in file order.
//!
//! Run: `cargo bench --bench ldif`.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use idflow::connector::ldif::LdifSource;
use idflow::connector::{ImportMode, collect};
use idflow::engine::import::ImportChange;
use idflow::value::Value;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// One group with `n` members, after a user entry (as `idflow gen ad` writes them).
fn group(n: usize) -> String {
    let mut s = String::with_capacity(n * 48 + 256);
    s.push_str("version: 1\n\n");
    s.push_str("dn: CN=User 0,OU=Users,DC=contoso,DC=com\nobjectClass: top\nobjectClass: user\n");
    s.push_str("cn: User 0\n\n");
    s.push_str("dn: CN=Big,OU=Groups,DC=contoso,DC=com\nobjectClass: top\nobjectClass: group\n");
    s.push_str("cn: Big\n");
    for i in 0..n {
        s.push_str(&format!("member: CN=User {i},OU=Users,DC=contoso,DC=com\n"));
    }
    s
}

/// One entry with `n` attributes of one value each.
fn wide(n: usize) -> String {
    let mut s = String::with_capacity(n * 24 + 128);
    s.push_str("dn: CN=Wide,DC=contoso,DC=com\nobjectClass: top\nobjectClass: thing\n");
    for i in 0..n {
        s.push_str(&format!("attr{i}: value {i}\n"));
    }
    s
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("writes the bench file");
    p
}

/// A full import of the file; the changes (one upsert per entry).
fn read(path: &Path) -> Vec<ImportChange> {
    collect(&mut LdifSource::new(path), ImportMode::Full)
        .expect("reads")
        .changes
}

/// The values of `attr` of the object `dn` in an import.
fn values<'a>(changes: &'a [ImportChange], dn: &str, attr: &str) -> &'a [Value] {
    for c in changes {
        if let ImportChange::Upsert(o) = c
            && o.dn == dn
        {
            return o
                .attrs
                .iter()
                .find(|(n, _)| n == attr)
                .map_or(&[], |(_, v)| v.values());
        }
    }
    &[]
}

fn bench(c: &mut Criterion) {
    let dir = std::env::temp_dir().join(format!("idflow-bench-ldif-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let mut g = c.benchmark_group("ldif_full_import");
    g.sample_size(10).measurement_time(Duration::from_secs(10));
    for n in [10_000usize, 100_000] {
        let path = write(&dir, &format!("group-{n}.ldif"), &group(n));
        let changes = read(&path);
        let members = values(&changes, "CN=Big,OU=Groups,DC=contoso,DC=com", "member");
        assert_eq!(members.len(), n);
        assert_eq!(
            members.last().and_then(Value::as_str),
            Some(format!("CN=User {},OU=Users,DC=contoso,DC=com", n - 1).as_str())
        );
        g.throughput(Throughput::Elements(n as u64));
        g.bench_function(format!("group of {n} members"), |b| {
            b.iter(|| black_box(read(&path)))
        });
    }
    let n = 10_000;
    let path = write(&dir, "wide.ldif", &wide(n));
    let changes = read(&path);
    assert_eq!(
        values(&changes, "CN=Wide,DC=contoso,DC=com", "attr9999").len(),
        1
    );
    g.throughput(Throughput::Elements(n as u64));
    g.bench_function(format!("entry of {n} attributes"), |b| {
        b.iter(|| black_box(read(&path)))
    });
    g.finish();
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, bench);
criterion_main!(benches);
