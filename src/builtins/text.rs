//! Builtins of the stdlib area `text` (see `stdlib/text.toml` for the declarations).
//!
//! Consumes: evaluated argument values. Produces: the function results or faults.
//!
//! Positions and lengths count characters (Unicode scalar values), never bytes, so no string is
//! ever cut inside a character. Case-insensitive comparison folds every character to exactly one
//! character ([`fold`]), so character positions of the folded text are those of the original.

use super::{BuiltinFn, Fault, Outcome, args};
use crate::builtins::ctx::Ctx;
use crate::value::Value;
use std::borrow::Cow;
use std::sync::Arc;

/// The implementation of a function of this area, by name.
pub fn lookup(name: &str) -> Option<BuiltinFn> {
    let f: BuiltinFn = match name {
        "Guid" => guid,
        "InStr" => instr,
        "InStrRev" => instr_rev,
        "LCase" => lcase,
        "Left" => left,
        "Len" => len,
        "LTrim" => ltrim,
        "Mid" => mid,
        "PadLeft" => pad_left,
        "PadRight" => pad_right,
        "PCase" => pcase,
        "Replace" => replace,
        "ReplaceChars" => replace_chars,
        "Right" => right,
        "RTrim" => rtrim,
        "Trim" => trim,
        "UCase" => ucase,
        "Word" => word,
        _ => return None,
    };
    Some(f)
}

// ---------------------------------------------------------------------------------------------
// Shared helpers

/// A count of characters or bytes as a number result.
pub(crate) fn num_of(n: usize) -> Value {
    Value::Num(i64::try_from(n).unwrap_or(i64::MAX))
}

/// A string result that reuses `s` (already within the size limit when it came in).
fn shared(ctx: &mut Ctx, s: Arc<str>) -> Outcome {
    ctx.check_bytes(s.len())?;
    Ok(Value::Str(s))
}

/// The one character of `it`, if it yields exactly one.
fn single(mut it: impl Iterator<Item = char>) -> Option<char> {
    let c = it.next()?;
    if it.next().is_some() { None } else { Some(c) }
}

/// Case folding to exactly one character: lower case of upper case, where each mapping is a
/// single character (otherwise the character is kept), so `ſ`, `S` and `s` fold alike.
pub(crate) fn fold_char(c: char) -> char {
    if c.is_ascii() {
        return c.to_ascii_lowercase();
    }
    let up = single(c.to_uppercase()).unwrap_or(c);
    single(up.to_lowercase()).unwrap_or(up)
}

/// `s` case-folded character by character (same number of characters as `s`).
pub(crate) fn fold(s: &str) -> String {
    s.chars().map(fold_char).collect()
}

/// The byte offset of the character at index `i` of `s` (`s.len()` for `i` = character count),
/// or None when `s` has fewer characters.
fn byte_offset(s: &str, i: usize) -> Option<usize> {
    s.char_indices()
        .map(|(o, _)| o)
        .chain(std::iter::once(s.len()))
        .nth(i)
}

/// The first `n` characters of `s`.
fn take_chars(s: &str, n: usize) -> &str {
    match byte_offset(s, n) {
        Some(o) => s.get(..o).unwrap_or(s),
        None => s,
    }
}

/// The last `n` characters of `s`.
fn last_chars(s: &str, n: usize) -> &str {
    let total = s.chars().count();
    if n >= total {
        return s;
    }
    match byte_offset(s, total - n) {
        Some(o) => s.get(o..).unwrap_or(s),
        None => s,
    }
}

/// A character count from a number argument (None when negative).
fn count_arg(n: i64) -> Option<usize> {
    usize::try_from(n).ok()
}

/// The comparison of InStr/InStrRev: true for vbTextCompare (case-insensitive).
fn compare_arg(f: &str, args: &[Value], i: usize) -> Result<bool, Box<Fault>> {
    match args::get(args, i) {
        v if v.is_null() => Ok(false),
        Value::Str(s) => {
            if s.eq_ignore_ascii_case("vbTextCompare") {
                Ok(true)
            } else if s.eq_ignore_ascii_case("vbBinaryCompare") {
                Ok(false)
            } else {
                Err(Fault::invalid(
                    f,
                    format!("unknown comparison `{s}` (expected vbTextCompare or vbBinaryCompare)"),
                ))
            }
        }
        other => Err(Fault::type_error(f, "a CompareMethod constant", other)),
    }
}

/// Decodes the \n, \r and \t monikers of Replace's oldValue and newValue.
fn monikers(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut it = s.chars().peekable();
    while let Some(c) = it.next() {
        if c == '\\' {
            let decoded = match it.peek() {
                Some('n') => Some('\n'),
                Some('r') => Some('\r'),
                Some('t') => Some('\t'),
                _ => None,
            };
            if let Some(d) = decoded {
                it.next();
                out.push(d);
                continue;
            }
        }
        out.push(c);
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Functions

fn guid(ctx: &mut Ctx, _args: &[Value]) -> Outcome {
    let mut bytes = [0u8; 16];
    let (a, b) = bytes.split_at_mut(8);
    a.copy_from_slice(&ctx.next_random().to_le_bytes());
    b.copy_from_slice(&ctx.next_random().to_le_bytes());
    let id = uuid::Builder::from_random_bytes(bytes).into_uuid();
    ctx.string(id.hyphenated().to_string())
}

/// InStr/InStrRev's stringcheck and stringmatch.
type SearchPair<'a> = (Cow<'a, str>, Cow<'a, str>);

/// InStr/InStrRev's stringcheck and stringmatch, case-folded for vbTextCompare; None when
/// either is NULL.
fn search_args<'a>(f: &str, args: &'a [Value]) -> Result<Option<SearchPair<'a>>, Box<Fault>> {
    let check = args::str(f, args, 0)?;
    let find = args::str(f, args, 1)?;
    let text = compare_arg(f, args, 3)?;
    let (Some(check), Some(find)) = (check, find) else {
        return Ok(None);
    };
    if text {
        Ok(Some((fold(check).into(), fold(find).into())))
    } else {
        Ok(Some((check.into(), find.into())))
    }
}

fn instr(_ctx: &mut Ctx, args: &[Value]) -> Outcome {
    const F: &str = "InStr";
    let start = args::num(F, args, 2)?.unwrap_or(1);
    if start < 1 {
        return Err(Fault::invalid(
            F,
            format!("start must be 1 or more, got {start}"),
        ));
    }
    let Some((check, find)) = search_args(F, args)? else {
        return Ok(Value::Num(0));
    };
    if check.is_empty() {
        return Ok(Value::Num(0));
    }
    // start >= 1, so start - 1 cannot underflow; a start beyond usize is beyond the end.
    let Some(from) = usize::try_from(start - 1)
        .ok()
        .and_then(|i| byte_offset(&check, i))
    else {
        return Ok(Value::Num(0));
    };
    if from >= check.len() {
        return Ok(Value::Num(0));
    }
    let rest = check.get(from..).unwrap_or("");
    match rest.find(&*find) {
        Some(p) => {
            let at = check.get(..from + p).unwrap_or("").chars().count();
            Ok(num_of(at.saturating_add(1)))
        }
        None => Ok(Value::Num(0)),
    }
}

fn instr_rev(_ctx: &mut Ctx, args: &[Value]) -> Outcome {
    const F: &str = "InStrRev";
    let start = args::num(F, args, 2)?.unwrap_or(-1);
    if start < 1 && start != -1 {
        return Err(Fault::invalid(
            F,
            format!("start must be 1 or more (or -1 for the end), got {start}"),
        ));
    }
    let Some((check, find)) = search_args(F, args)? else {
        return Ok(Value::Num(0));
    };
    if check.is_empty() {
        return Ok(Value::Num(0));
    }
    let total = check.chars().count();
    let limit = if start == -1 {
        total
    } else {
        match usize::try_from(start) {
            Ok(n) if n <= total => n,
            _ => return Ok(Value::Num(0)),
        }
    };
    if find.is_empty() {
        return Ok(num_of(limit));
    }
    let window = take_chars(&check, limit);
    match window.rfind(&*find) {
        Some(p) => {
            let at = window.get(..p).unwrap_or("").chars().count();
            Ok(num_of(at.saturating_add(1)))
        }
        None => Ok(Value::Num(0)),
    }
}

fn lcase(ctx: &mut Ctx, args: &[Value]) -> Outcome {
    match args::str("LCase", args, 0)? {
        None => Ok(Value::Null),
        Some(s) => ctx.string(s.to_lowercase()),
    }
}

fn ucase(ctx: &mut Ctx, args: &[Value]) -> Outcome {
    match args::str("UCase", args, 0)? {
        None => Ok(Value::Null),
        Some(s) => ctx.string(s.to_uppercase()),
    }
}

fn left(ctx: &mut Ctx, args: &[Value]) -> Outcome {
    const F: &str = "Left";
    let n = args::num(F, args, 1)?;
    let Some(s) = args::arc_str(F, args, 0)? else {
        return Ok(Value::str(""));
    };
    match n.map(count_arg) {
        // A NULL or negative count returns the string.
        None | Some(None) => shared(ctx, s),
        Some(Some(n)) => match take_chars(&s, n) {
            t if t.len() == s.len() => shared(ctx, s),
            t => ctx.str_slice(t),
        },
    }
}

fn right(ctx: &mut Ctx, args: &[Value]) -> Outcome {
    const F: &str = "Right";
    let n = args::num(F, args, 1)?;
    let Some(s) = args::arc_str(F, args, 0)? else {
        return Ok(Value::str(""));
    };
    match n.map(count_arg) {
        None | Some(None) => shared(ctx, s),
        Some(Some(n)) => match last_chars(&s, n) {
            t if t.len() == s.len() => shared(ctx, s),
            t => ctx.str_slice(t),
        },
    }
}

fn len(_ctx: &mut Ctx, args: &[Value]) -> Outcome {
    match args::get(args, 0) {
        v if v.is_null() => Ok(Value::Null),
        Value::Str(s) | Value::Ref(s) => Ok(num_of(s.chars().count())),
        Value::Bin(b) => Ok(num_of(b.len())),
        other => Err(Fault::type_error("Len", "str or bin", other)),
    }
}

fn trimmed(ctx: &mut Ctx, f: &str, args: &[Value], how: fn(&str) -> &str) -> Outcome {
    let Some(s) = args::arc_str(f, args, 0)? else {
        return Ok(Value::Null);
    };
    let t = how(&s);
    if t.len() == s.len() {
        shared(ctx, s)
    } else {
        ctx.str_slice(t)
    }
}

fn ltrim(ctx: &mut Ctx, args: &[Value]) -> Outcome {
    trimmed(ctx, "LTrim", args, str::trim_start)
}

fn rtrim(ctx: &mut Ctx, args: &[Value]) -> Outcome {
    trimmed(ctx, "RTrim", args, str::trim_end)
}

fn trim(ctx: &mut Ctx, args: &[Value]) -> Outcome {
    trimmed(ctx, "Trim", args, str::trim)
}

/// Mid's window: `None` when the input is returned unchanged, else (skip, take) in units.
fn mid_window(
    total: usize,
    start: Option<i64>,
    count: Option<Option<i64>>,
) -> Option<(usize, usize)> {
    // count: None = the 2-argument form; Some(None) = a NULL count (treated like the 2-argument
    // form); Some(Some(n)) = n.
    if let Some(Some(0)) = count {
        return Some((0, 0));
    }
    let start = usize::try_from(start?).ok()?;
    if start == 0 || start > total {
        return None;
    }
    let skip = start - 1;
    let rest = total - skip;
    match count.flatten() {
        None => Some((skip, rest)),
        Some(n) => {
            let n = usize::try_from(n).ok()?;
            Some((skip, n.min(rest)))
        }
    }
}

fn mid(ctx: &mut Ctx, args: &[Value]) -> Outcome {
    const F: &str = "Mid";
    let start = args::num(F, args, 1)?;
    let count = if args.len() >= 3 {
        Some(args::num(F, args, 2)?)
    } else {
        None
    };
    match args::get(args, 0) {
        v if v.is_null() => Ok(Value::str("")),
        Value::Bin(b) => match mid_window(b.len(), start, count) {
            None => Ok(Value::Bin(b.clone())),
            Some((skip, take)) => {
                let end = skip.saturating_add(take).min(b.len());
                ctx.binary(b.get(skip..end).unwrap_or(&[]).to_vec())
            }
        },
        Value::Str(s) | Value::Ref(s) => match mid_window(s.chars().count(), start, count) {
            None => shared(ctx, s.clone()),
            Some((skip, take)) => {
                let from = byte_offset(s, skip).unwrap_or(s.len());
                let rest = s.get(from..).unwrap_or("");
                ctx.str_slice(take_chars(rest, take))
            }
        },
        other => Err(Fault::type_error(F, "str or bin", other)),
    }
}

fn pad(ctx: &mut Ctx, f: &str, args: &[Value], at_left: bool) -> Outcome {
    let length = args::num(f, args, 1)?;
    let Some(p) = args::str(f, args, 2)? else {
        return Err(Fault::invalid(f, "padCharacter cannot be NULL"));
    };
    let Some(pc) = single(p.chars()) else {
        return Err(Fault::invalid(
            f,
            format!("padCharacter must be a single character, got \"{p}\""),
        ));
    };
    let Some(s) = args::arc_str(f, args, 0)? else {
        return Ok(Value::str(""));
    };
    let Some(target) = length.and_then(count_arg) else {
        return shared(ctx, s);
    };
    let have = s.chars().count();
    if have >= target {
        return shared(ctx, s);
    }
    let missing = target - have;
    let bytes = missing
        .checked_mul(pc.len_utf8())
        .and_then(|b| b.checked_add(s.len()))
        .unwrap_or(usize::MAX);
    ctx.check_bytes(bytes)?;
    let mut out = String::with_capacity(bytes);
    if !at_left {
        out.push_str(&s);
    }
    out.extend(std::iter::repeat_n(pc, missing));
    if at_left {
        out.push_str(&s);
    }
    ctx.string(out)
}

fn pad_left(ctx: &mut Ctx, args: &[Value]) -> Outcome {
    pad(ctx, "PadLeft", args, true)
}

fn pad_right(ctx: &mut Ctx, args: &[Value]) -> Outcome {
    pad(ctx, "PadRight", args, false)
}

/// One word of PCase: all-upper-case words are kept, others get an upper-case first character
/// and lower-case rest (.NET TextInfo.ToTitleCase).
fn title_word(w: &str, out: &mut String) {
    let has_upper = w.chars().any(char::is_uppercase);
    let has_lower = w.chars().any(char::is_lowercase);
    if has_upper && !has_lower {
        out.push_str(w);
        return;
    }
    let mut it = w.chars();
    if let Some(first) = it.next() {
        out.push(single(first.to_uppercase()).unwrap_or(first));
        out.push_str(&it.as_str().to_lowercase());
    }
}

fn pcase(ctx: &mut Ctx, args: &[Value]) -> Outcome {
    let Some(s) = args::str("PCase", args, 0)? else {
        return Ok(Value::Null);
    };
    let mut out = String::with_capacity(s.len());
    let mut word_start: Option<usize> = None;
    for (i, c) in s.char_indices() {
        if c.is_whitespace() {
            if let Some(ws) = word_start.take() {
                title_word(s.get(ws..i).unwrap_or(""), &mut out);
            }
            out.push(c);
        } else if word_start.is_none() {
            word_start = Some(i);
        }
    }
    if let Some(ws) = word_start {
        title_word(s.get(ws..).unwrap_or(""), &mut out);
    }
    ctx.string(out)
}

fn replace(ctx: &mut Ctx, args: &[Value]) -> Outcome {
    const F: &str = "Replace";
    let old = args::str(F, args, 1)?;
    let new = args::str(F, args, 2)?;
    let Some(s) = args::arc_str(F, args, 0)? else {
        return Ok(Value::Null);
    };
    let old = monikers(old.unwrap_or(""));
    if old.is_empty() {
        return shared(ctx, s);
    }
    let new = monikers(new.unwrap_or(""));
    let hits = s.matches(old.as_str()).count();
    if hits == 0 {
        return shared(ctx, s);
    }
    let removed = hits.saturating_mul(old.len());
    let bytes = hits
        .checked_mul(new.len())
        .and_then(|added| (s.len() - removed.min(s.len())).checked_add(added))
        .unwrap_or(usize::MAX);
    ctx.check_bytes(bytes)?;
    ctx.string(s.replace(old.as_str(), &new))
}

/// Parses ReplaceChars' "s1:t1,s2:t2" dictionary (white space ignored).
fn replace_pattern(pattern: &str) -> Result<Vec<(char, String)>, String> {
    let mut map: Vec<(char, String)> = Vec::new();
    for entry in pattern.split(',') {
        let entry: String = entry.chars().filter(|c| !c.is_whitespace()).collect();
        if entry.is_empty() {
            continue;
        }
        let mut parts = entry.split(':');
        let (Some(source), Some(target), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err(format!(
                "\"{entry}\" is not a source:target pair (\",\" and \":\" are reserved)"
            ));
        };
        let Some(c) = single(source.chars()) else {
            return Err(format!(
                "the source \"{source}\" of \"{entry}\" must be exactly one character"
            ));
        };
        if !map.iter().any(|(k, _)| *k == c) {
            map.push((c, target.to_owned()));
        }
    }
    Ok(map)
}

fn replace_chars(ctx: &mut Ctx, args: &[Value]) -> Outcome {
    const F: &str = "ReplaceChars";
    let pattern = args::str(F, args, 1)?;
    let Some(s) = args::arc_str(F, args, 0)? else {
        return Ok(Value::Null);
    };
    let map = replace_pattern(pattern.unwrap_or("")).map_err(|m| Fault::invalid(F, m))?;
    if map.is_empty() {
        return shared(ctx, s);
    }
    let lookup = |c: char| map.iter().find(|(k, _)| *k == c).map(|(_, t)| t.as_str());
    let bytes = s
        .chars()
        .map(|c| lookup(c).map_or(c.len_utf8(), str::len))
        .fold(0usize, usize::saturating_add);
    ctx.check_bytes(bytes)?;
    let mut out = String::with_capacity(bytes);
    for c in s.chars() {
        match lookup(c) {
            Some(t) => out.push_str(t),
            None => out.push(c),
        }
    }
    ctx.string(out)
}

fn word(ctx: &mut Ctx, args: &[Value]) -> Outcome {
    const F: &str = "Word";
    let n = args::num(F, args, 1)?;
    let delims = args::str(F, args, 2)?.unwrap_or("");
    let Some(s) = args::str(F, args, 0)? else {
        return Ok(Value::str(""));
    };
    let Some(n) = n.and_then(count_arg).filter(|&n| n >= 1) else {
        return Ok(Value::str(""));
    };
    let w = s
        .split(|c: char| delims.contains(c))
        .filter(|w| !w.is_empty())
        .nth(n - 1)
        .unwrap_or("");
    ctx.str_slice(w)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builtins::ctx::Limits;

    fn call(name: &str, args: &[Value]) -> Outcome {
        let f = lookup(name).expect("function");
        f(&mut Ctx::fixed(), args)
    }

    fn s(v: &str) -> Value {
        Value::str(v)
    }

    fn n(v: i64) -> Value {
        Value::Num(v)
    }

    fn ok(name: &str, args: &[Value]) -> Value {
        call(name, args).expect("no fault")
    }

    fn code(name: &str, args: &[Value]) -> &'static str {
        call(name, args).expect_err("a fault").code
    }

    #[test]
    fn guid_is_v4_and_distinct() {
        let mut ctx = Ctx::fixed();
        let a = guid(&mut ctx, &[]).unwrap();
        let b = guid(&mut ctx, &[]).unwrap();
        assert_ne!(a, b);
        let a = a.as_str().unwrap().to_owned();
        assert_eq!(a.len(), 36);
        assert_eq!(a.chars().nth(14), Some('4'));
        assert!(matches!(a.chars().nth(19), Some('8' | '9' | 'a' | 'b')));
        assert_eq!(a, a.to_lowercase());
    }

    #[test]
    fn instr() {
        assert_eq!(ok("InStr", &[s("The quick brown fox"), s("quick")]), n(5));
        assert_eq!(
            ok(
                "InStr",
                &[s("repEated"), s("e"), n(3), s("vbBinaryCompare")]
            ),
            n(7)
        );
        assert_eq!(
            ok("InStr", &[s("repEated"), s("e"), n(3), s("VBTEXTCOMPARE")]),
            n(4)
        );
        assert_eq!(ok("InStr", &[s("repEated"), s("E")]), n(4));
        assert_eq!(ok("InStr", &[Value::Null, s("E")]), n(0));
        assert_eq!(ok("InStr", &[s("abc"), Value::Null]), n(0));
        assert_eq!(ok("InStr", &[s("abc"), s("c"), n(4)]), n(0));
        assert_eq!(ok("InStr", &[s("abc"), s("c"), n(i64::MAX)]), n(0));
        assert_eq!(ok("InStr", &[s("abc"), s(""), n(2)]), n(2));
        assert_eq!(ok("InStr", &[s(""), s("")]), n(0));
        assert_eq!(
            ok("InStr", &[s("ÉCOLE é"), s("é"), n(1), s("vbTextCompare")]),
            n(1)
        );
        assert_eq!(ok("InStr", &[s("😀a😀b"), s("b")]), n(4));
        assert_eq!(ok("InStr", &[s("😀a😀b"), s("😀"), n(2)]), n(3));
        assert_eq!(code("InStr", &[s("abc"), s("c"), n(0)]), "E0503");
        assert_eq!(
            code("InStr", &[s("abc"), s("c"), n(1), s("bogus")]),
            "E0503"
        );
        assert_eq!(code("InStr", &[n(5), s("c")]), "E0502");
    }

    #[test]
    fn instr_rev() {
        assert_eq!(ok("InStrRev", &[s("abbcdbbbef"), s("bb")]), n(7));
        assert_eq!(ok("InStrRev", &[s("a-b-c"), s("-")]), n(4));
        assert_eq!(ok("InStrRev", &[s("abc"), s("z")]), n(0));
        assert_eq!(ok("InStrRev", &[s("abbcdbbbef"), s("bb"), n(7)]), n(6));
        assert_eq!(ok("InStrRev", &[s("abbcdbbbef"), s("bb"), n(3)]), n(2));
        assert_eq!(ok("InStrRev", &[s("abc"), s("c"), n(4)]), n(0));
        assert_eq!(
            ok("InStrRev", &[s("aXa"), s("x"), n(-1), s("vbTextCompare")]),
            n(2)
        );
        assert_eq!(ok("InStrRev", &[s("😀a😀b"), s("😀")]), n(3));
        assert_eq!(ok("InStrRev", &[Value::Null, s("a")]), n(0));
        assert_eq!(ok("InStrRev", &[s("abc"), s("")]), n(3));
        assert_eq!(code("InStrRev", &[s("abc"), s("c"), n(0)]), "E0503");
    }

    #[test]
    fn case() {
        assert_eq!(ok("LCase", &[s("ÉCOLE")]), s("école"));
        assert_eq!(ok("UCase", &[s("straße")]), s("STRASSE"));
        assert_eq!(ok("LCase", &[Value::Null]), Value::Null);
        assert_eq!(ok("UCase", &[s("")]), s(""));
        let big = "ß".repeat(600);
        let mut ctx = Ctx::fixed().with_limits(Limits {
            max_bytes: 1000,
            ..Limits::default()
        });
        let r = ucase(&mut ctx, &[s(&big)]);
        assert_eq!(r.unwrap_err().code, "E0510");
    }

    #[test]
    fn left_right() {
        assert_eq!(ok("Left", &[s("John Doe"), n(3)]), s("Joh"));
        assert_eq!(ok("Left", &[s("John Doe"), n(0)]), s(""));
        assert_eq!(ok("Left", &[s("John Doe"), n(-1)]), s("John Doe"));
        assert_eq!(ok("Left", &[s("John Doe"), n(i64::MIN)]), s("John Doe"));
        assert_eq!(ok("Left", &[s("John Doe"), n(i64::MAX)]), s("John Doe"));
        assert_eq!(ok("Left", &[Value::Null, n(3)]), s(""));
        assert_eq!(ok("Left", &[s("😀é😀"), n(2)]), s("😀é"));
        assert_eq!(ok("Right", &[s("John Doe"), n(3)]), s("Doe"));
        assert_eq!(ok("Right", &[s("John Doe"), n(0)]), s(""));
        assert_eq!(ok("Right", &[s("John Doe"), n(-2)]), s("John Doe"));
        assert_eq!(ok("Right", &[s("Doe"), n(10)]), s("Doe"));
        assert_eq!(ok("Right", &[Value::Null, n(4)]), s(""));
        assert_eq!(ok("Right", &[s("😀é😀"), n(2)]), s("é😀"));
        assert_eq!(code("Left", &[n(5), n(1)]), "E0502");
    }

    #[test]
    fn len() {
        assert_eq!(ok("Len", &[s("Räksmörgås")]), n(10));
        assert_eq!(ok("Len", &[s("😀")]), n(1));
        assert_eq!(ok("Len", &[s("")]), n(0));
        assert_eq!(ok("Len", &[Value::bin(vec![1, 2, 3, 4, 5])]), n(5));
        assert_eq!(ok("Len", &[Value::Null]), Value::Null);
        assert_eq!(code("Len", &[n(5)]), "E0502");
    }

    #[test]
    fn trims() {
        assert_eq!(ok("LTrim", &[s(" Test ")]), s("Test "));
        assert_eq!(ok("RTrim", &[s(" Test ")]), s(" Test"));
        assert_eq!(ok("Trim", &[s("\r\n Sales \r\n")]), s("Sales"));
        assert_eq!(ok("Trim", &[s("   ")]), s(""));
        assert_eq!(ok("Trim", &[Value::Null]), Value::Null);
        assert_eq!(ok("Trim", &[Value::Ref("x ".into())]), s("x"));
    }

    #[test]
    fn mid() {
        assert_eq!(ok("Mid", &[s("John Doe"), n(3), n(5)]), s("hn Do"));
        assert_eq!(ok("Mid", &[s("John Doe"), n(6), n(999)]), s("Doe"));
        assert_eq!(ok("Mid", &[s("John Doe"), n(3), n(0)]), s(""));
        assert_eq!(ok("Mid", &[s("John Doe"), n(3), n(-1)]), s("John Doe"));
        assert_eq!(ok("Mid", &[s("John Doe"), n(0), n(2)]), s("John Doe"));
        assert_eq!(ok("Mid", &[s("John Doe"), n(9), n(2)]), s("John Doe"));
        assert_eq!(ok("Mid", &[s("John Doe"), n(8), n(i64::MAX)]), s("e"));
        assert_eq!(
            ok("Mid", &[s("John Doe"), n(i64::MIN), n(2)]),
            s("John Doe")
        );
        assert_eq!(ok("Mid", &[Value::Null, n(1), n(3)]), s(""));
        assert_eq!(
            ok("Mid", &[s("SMTP:john.doe@contoso.com"), n(6)]),
            s("john.doe@contoso.com")
        );
        assert_eq!(ok("Mid", &[s("😀é😀x"), n(2), n(2)]), s("é😀"));
        assert_eq!(ok("Mid", &[s("😀é😀x"), n(4)]), s("x"));
        let b = Value::bin(vec![1, 2, 3, 4, 5]);
        assert_eq!(
            ok("Mid", &[b.clone(), n(2), n(3)]),
            Value::bin(vec![2, 3, 4])
        );
        assert_eq!(ok("Mid", &[b.clone(), n(5), n(3)]), Value::bin(vec![5]));
        assert_eq!(ok("Mid", &[b.clone(), n(6), n(3)]), b);
        assert_eq!(ok("Mid", &[b.clone(), n(2), n(0)]), Value::bin(Vec::new()));
        assert_eq!(code("Mid", &[Value::Bool(true), n(1)]), "E0502");
    }

    #[test]
    fn pads() {
        assert_eq!(ok("PadLeft", &[s("User"), n(10), s("0")]), s("000000User"));
        assert_eq!(ok("PadLeft", &[s("User"), n(3), s("0")]), s("User"));
        assert_eq!(ok("PadLeft", &[s("42"), n(6), s(" ")]), s("    42"));
        assert_eq!(ok("PadLeft", &[Value::Null, n(6), s("0")]), s(""));
        assert_eq!(ok("PadLeft", &[s("é"), n(3), s("😀")]), s("😀😀é"));
        assert_eq!(ok("PadLeft", &[s("User"), n(-5), s("0")]), s("User"));
        assert_eq!(ok("PadRight", &[s("User"), n(10), s("0")]), s("User000000"));
        assert_eq!(
            ok("PadRight", &[s("Username"), n(4), s("0")]),
            s("Username")
        );
        assert_eq!(code("PadLeft", &[s("User"), n(10), Value::Null]), "E0503");
        assert_eq!(code("PadRight", &[s("User"), n(10), s("ab")]), "E0503");
        assert_eq!(code("PadRight", &[s("User"), n(10), s("")]), "E0503");
        assert_eq!(code("PadLeft", &[s("x"), n(i64::MAX), s("y")]), "E0510");
        assert_eq!(code("PadRight", &[s("x"), n(i64::MAX), s("😀")]), "E0510");
    }

    #[test]
    fn pcase() {
        assert_eq!(ok("PCase", &[s("TEsT")]), s("Test"));
        assert_eq!(ok("PCase", &[s("TEST")]), s("TEST"));
        assert_eq!(ok("PCase", &[s("john doE")]), s("John Doe"));
        assert_eq!(ok("PCase", &[s("  élan  VITAL x")]), s("  Élan  VITAL X"));
        assert_eq!(ok("PCase", &[s("")]), s(""));
        assert_eq!(ok("PCase", &[Value::Null]), Value::Null);
        assert_eq!(ok("PCase", &[s("😀smile")]), s("😀smile"));
    }

    #[test]
    fn replace() {
        assert_eq!(
            ok("Replace", &[s("One\r\nTwo\r\nThree"), s("\\r\\n"), s(", ")]),
            s("One, Two, Three")
        );
        assert_eq!(ok("Replace", &[s("a,b"), s(","), s("\\t")]), s("a\tb"));
        assert_eq!(ok("Replace", &[s("a\\qb"), s("\\q"), s("-")]), s("a-b"));
        assert_eq!(
            ok("Replace", &[s("425-555-0100"), s("-"), s("")]),
            s("4255550100")
        );
        assert_eq!(ok("Replace", &[s("aaa"), s("aa"), s("b")]), s("ba"));
        assert_eq!(ok("Replace", &[s("Hello"), s("L"), s("x")]), s("Hello"));
        assert_eq!(ok("Replace", &[Value::Null, s("-"), s("")]), Value::Null);
        assert_eq!(ok("Replace", &[s("abc"), s(""), s("x")]), s("abc"));
        assert_eq!(ok("Replace", &[s("a-b"), s("-"), Value::Null]), s("ab"));
        assert_eq!(ok("Replace", &[s("😀-😀"), s("😀"), s("é")]), s("é-é"));
        let mut ctx = Ctx::fixed().with_limits(Limits {
            max_bytes: 100,
            ..Limits::default()
        });
        let r = super::replace(&mut ctx, &[s(&"a".repeat(50)), s("a"), s("bbb")]);
        assert_eq!(r.unwrap_err().code, "E0510");
    }

    #[test]
    fn replace_chars() {
        let p = s("’:,Å:A,Ä:A,Ö:O,å:a,ä:a,ö:o");
        assert_eq!(
            ok("ReplaceChars", &[s("Räksmörgås"), p.clone()]),
            s("Raksmorgas")
        );
        assert_eq!(ok("ReplaceChars", &[s("O’Neil"), p]), s("ONeil"));
        assert_eq!(
            ok("ReplaceChars", &[s("Größe"), s("ö:oe, ß:ss")]),
            s("Groesse")
        );
        assert_eq!(ok("ReplaceChars", &[s("Abba"), s("a:e")]), s("Abbe"));
        assert_eq!(ok("ReplaceChars", &[s("a😀b"), s("😀:x,")]), s("axb"));
        assert_eq!(ok("ReplaceChars", &[Value::Null, s("a:e")]), Value::Null);
        assert_eq!(ok("ReplaceChars", &[s("abc"), s("")]), s("abc"));
        assert_eq!(code("ReplaceChars", &[s("abc"), s("ab:x")]), "E0503");
        assert_eq!(code("ReplaceChars", &[s("abc"), s(":x")]), "E0503");
        assert_eq!(code("ReplaceChars", &[s("abc"), s("a")]), "E0503");
        assert_eq!(code("ReplaceChars", &[s("abc"), s("a:b:c")]), "E0503");
    }

    #[test]
    fn word() {
        assert_eq!(
            ok("Word", &[s("The quick brown fox"), n(3), s(" ")]),
            s("brown")
        );
        assert_eq!(
            ok(
                "Word",
                &[s("This,string!has&many separators"), n(3), s(",!&#")]
            ),
            s("has")
        );
        assert_eq!(ok("Word", &[s("The quick brown fox"), n(0), s(" ")]), s(""));
        assert_eq!(ok("Word", &[s("The quick brown fox"), n(5), s(" ")]), s(""));
        assert_eq!(ok("Word", &[s("The quick"), n(i64::MIN), s(" ")]), s(""));
        assert_eq!(ok("Word", &[s("The quick"), n(i64::MAX), s(" ")]), s(""));
        assert_eq!(ok("Word", &[s("  a,,b  "), n(2), s(" ,")]), s("b"));
        assert_eq!(ok("Word", &[s("a😀b😀c"), n(3), s("😀")]), s("c"));
        assert_eq!(ok("Word", &[s("abc"), n(1), s("")]), s("abc"));
        assert_eq!(ok("Word", &[Value::Null, n(1), s("_")]), s(""));
        assert_eq!(ok("Word", &[s(""), n(1), s("_")]), s(""));
    }

    #[test]
    fn folding_keeps_character_count() {
        for t in ["ÉCOLE", "straße", "İstanbul", "ſ", "ǅ", "😀"] {
            assert_eq!(fold(t).chars().count(), t.chars().count());
        }
        assert_eq!(fold("ſ"), "s");
        assert_eq!(fold("ẞ"), "ß");
    }
}
