//! Front-end benchmarks: lex + parse + check of the shipped default bundle (56 rules, ~1,160
//! flows), and the parser alone on the same text.
//!
//! Run: `cargo bench --bench frontend`.

use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use std::path::PathBuf;

fn bundle() -> idflow::source::SourceMap {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("rules/entra-default");
    let files = idflow::source::collect_idf_files(&[dir]).expect("bundle files");
    idflow::source::load(&files).expect("bundle loads")
}

fn frontend(c: &mut Criterion) {
    let map = bundle();
    let checked = idflow::frontend::check(&map);
    assert!(!checked.has_errors());
    let flows: usize = checked.bundle.rules.iter().map(|r| r.flows.len()).sum();
    eprintln!(
        "bundle: {} rules, {flows} flows, {} files",
        checked.bundle.rules.len(),
        map.files().len()
    );

    c.bench_function("parse entra-default", |b| {
        b.iter(|| {
            for f in map.files() {
                black_box(idflow::syntax::parse(f.id, black_box(&f.text)));
            }
        })
    });
    c.bench_function("lex+parse+check entra-default", |b| {
        b.iter(|| black_box(idflow::frontend::check(black_box(&map))))
    });
    c.bench_function("fmt entra-default", |b| {
        b.iter(|| {
            for f in map.files() {
                black_box(idflow::syntax::format(f.id, black_box(&f.text)).ok());
            }
        })
    });
}

criterion_group!(benches, frontend);
criterion_main!(benches);
