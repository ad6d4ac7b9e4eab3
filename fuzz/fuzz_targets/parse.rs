//! Arbitrary bytes through the parser, the expression parser, the whole checker and both
//! diagnostic renderers. Nothing on this path may panic.
#![no_main]

use idflow::diag::render::{self, Style};
use idflow::source::{FileId, SourceMap};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);

    let _ = idflow::syntax::parse(FileId(0), &text);
    let _ = idflow::syntax::parse_expr(FileId(0), &text);

    let mut map = SourceMap::new();
    map.add("fuzz.idf", text.to_string());
    let checked = idflow::frontend::check(&map);
    for d in &checked.diagnostics {
        let _ = render::human(&map, d, Style::Plain);
    }
    let _ = render::json(&map, &checked.diagnostics);
});
