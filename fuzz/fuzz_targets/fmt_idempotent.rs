//! `fmt` is idempotent: formatting already-formatted text changes nothing, and the formatter
//! never reports its own output as unstable.
#![no_main]

use idflow::source::FileId;
use idflow::syntax::{FormatError, format};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let out = match format(FileId(0), &text) {
        Ok(out) => out,
        Err(FormatError::Syntax(_)) => return,
        Err(FormatError::Unstable(why)) => {
            panic!("format is unstable on the input: {why}\ninput: {text:?}")
        }
    };
    match format(FileId(0), &out) {
        Ok(out2) => assert_eq!(out2, out, "format is not idempotent\ninput: {text:?}"),
        Err(FormatError::Syntax(d)) => panic!(
            "formatted text has syntax errors: {}\ninput: {text:?}\nformatted: {out:?}",
            d.first().map_or("", |d| d.message.as_str())
        ),
        Err(FormatError::Unstable(why)) => {
            panic!("format is unstable on its own output: {why}\ninput: {text:?}\nformatted: {out:?}")
        }
    }
});
