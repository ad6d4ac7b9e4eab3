//! Builtins of the stdlib area `conversion` (see `stdlib/conversion.toml` for the declarations).
//!
//! Consumes: evaluated argument values. Produces: the function results or faults.
//!
//! Every function returns NULL for a NULL argument (DECISIONS item 7). The parsers behind CDate,
//! CGuid and CNum are public ([`parse_date`], [`parse_guid`], [`parse_num`]) so that IsDate,
//! IsGuid and IsNumeric accept exactly what the conversions accept.

use super::{BuiltinFn, Fault, Outcome, args};
use crate::builtins::ctx::Ctx;
use crate::value::{DateTime, Value};
use base64::Engine as _;
use base64::engine::GeneralPurpose;
use base64::engine::general_purpose::PAD;

/// The implementation of a function of this area, by name.
pub fn lookup(name: &str) -> Option<BuiltinFn> {
    let f: BuiltinFn = match name {
        "CBool" => cbool,
        "CDate" => cdate,
        "CGuid" => cguid,
        "ConvertFromBase64" => convert_from_base64,
        "ConvertToBase64" => convert_to_base64,
        "ConvertFromUTF8Hex" => convert_from_utf8_hex,
        "ConvertToUTF8Hex" => convert_to_utf8_hex,
        "CNum" => cnum,
        "CRef" => cref,
        "CStr" => cstr,
        "StringFromGuid" => string_from_guid,
        "StringFromSid" => string_from_sid,
        _ => return None,
    };
    Some(f)
}

// ---------------------------------------------------------------------------------------------
// Shared helpers (also used by the certificate and engine modules).

/// Standard Base64 with `=` padding. Like .NET's Convert.FromBase64String, non-zero bits in the
/// last character are tolerated when decoding.
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    PAD.with_decode_allow_trailing_bits(true),
);

/// Encodes bytes as padded standard Base64, checking the output size first.
pub(crate) fn base64_encode(ctx: &Ctx, bytes: &[u8]) -> Result<String, Box<Fault>> {
    let len = base64::encoded_len(bytes.len(), true)
        .ok_or_else(|| Fault::new("E0510", "result too large"))?;
    ctx.check_bytes(len)?;
    Ok(BASE64.encode(bytes))
}

/// Decodes padded standard Base64. ASCII white space (space, tab, CR, LF, ...) is ignored, as by
/// .NET's Convert.FromBase64String; anything else that is not Base64 is an invalid value.
pub(crate) fn base64_decode(ctx: &Ctx, f: &str, text: &[u8]) -> Result<Vec<u8>, Box<Fault>> {
    ctx.check_bytes(base64::decoded_len_estimate(text.len()))?;
    let decoded = if text.iter().any(u8::is_ascii_whitespace) {
        let compact: Vec<u8> = text
            .iter()
            .copied()
            .filter(|b| !b.is_ascii_whitespace())
            .collect();
        BASE64.decode(compact)
    } else {
        BASE64.decode(text)
    };
    decoded.map_err(|e| Fault::invalid(f, format!("the value is not valid base64 ({e})")))
}

/// Upper-case hexadecimal digits of bytes, without separators.
pub(crate) fn hex_upper(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789ABCDEF";
    let mut s = String::with_capacity(bytes.len().saturating_mul(2));
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0x0F)]));
    }
    s
}

/// Lower-case hexadecimal digits of bytes, without separators.
fn hex_lower(bytes: &[u8]) -> String {
    hex_upper(bytes).to_ascii_lowercase()
}

/// The value of one hexadecimal digit.
fn hex_digit(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------------
// CBool, CNum, CRef, CStr

/// CBool(bool) is the boolean; CBool(num) is True for a non-zero number.
fn cbool(_: &mut Ctx, a: &[Value]) -> Outcome {
    match args::get(a, 0) {
        v if v.is_null() => Ok(Value::Null),
        Value::Bool(b) => Ok(Value::Bool(*b)),
        Value::Num(n) => Ok(Value::Bool(*n != 0)),
        other => Err(Fault::type_error("CBool", "bool or num", other)),
    }
}

/// Parses a decimal integer as CNum does: optional surrounding ASCII white space (as .NET's
/// NumberStyles.Integer), an optional `+` or `-` sign, then at least one ASCII digit; the value
/// must fit in 64 bits.
pub fn parse_num(s: &str) -> Option<i64> {
    let t = s.trim_matches(|c: char| c.is_ascii_whitespace());
    let (neg, digits) = match t.as_bytes().first() {
        Some(b'-') => (true, t.get(1..)?),
        Some(b'+') => (false, t.get(1..)?),
        _ => (false, t),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut n: i64 = 0;
    for d in digits.bytes() {
        let d = i64::from(d - b'0');
        n = n.checked_mul(10)?;
        n = if neg {
            n.checked_sub(d)?
        } else {
            n.checked_add(d)?
        };
    }
    Some(n)
}

/// CNum(str) parses a decimal integer; CNum(bin) reads an unsigned little-endian integer.
fn cnum(_: &mut Ctx, a: &[Value]) -> Outcome {
    match args::get(a, 0) {
        v if v.is_null() => Ok(Value::Null),
        Value::Num(n) => Ok(Value::Num(*n)),
        Value::Str(s) => parse_num(s)
            .map(Value::Num)
            .ok_or_else(|| Fault::invalid("CNum", format!("\"{}\" is not a number", preview(s)))),
        Value::Bin(b) => num_from_le_bytes(b).map(Value::Num),
        other => Err(Fault::type_error("CNum", "str or bin", other)),
    }
}

/// An unsigned little-endian integer. Bytes past the eighth must be zero and the value must fit
/// in a signed 64-bit number; an empty binary is not a number.
fn num_from_le_bytes(b: &[u8]) -> Result<i64, Box<Fault>> {
    if b.is_empty() {
        return Err(Fault::invalid("CNum", "an empty binary is not a number"));
    }
    let (low, high) = b.split_at(b.len().min(8));
    if high.iter().any(|&x| x != 0) {
        return Err(Fault::invalid(
            "CNum",
            "the binary number does not fit in 64 bits",
        ));
    }
    let mut buf = [0u8; 8];
    for (d, s) in buf.iter_mut().zip(low) {
        *d = *s;
    }
    i64::try_from(u64::from_le_bytes(buf))
        .map_err(|_| Fault::invalid("CNum", "the binary number does not fit in 64 bits"))
}

/// CRef(str): the same text as a reference.
fn cref(_: &mut Ctx, a: &[Value]) -> Outcome {
    match args::get(a, 0) {
        v if v.is_null() => Ok(Value::Null),
        Value::Str(s) | Value::Ref(s) => Ok(Value::Ref(s.clone())),
        other => Err(Fault::type_error("CRef", "str", other)),
    }
}

/// CStr: num in decimal, bool as True/False, str and ref unchanged, dt as RFC 3339 UTC; bin is a
/// run-time type error (IsString is False for it).
fn cstr(ctx: &mut Ctx, a: &[Value]) -> Outcome {
    match args::get(a, 0) {
        v if v.is_null() => Ok(Value::Null),
        Value::Str(s) | Value::Ref(s) => Ok(Value::Str(s.clone())),
        Value::Num(n) => ctx.string(n.to_string()),
        Value::Bool(b) => Ok(Value::str(if *b { "True" } else { "False" })),
        Value::Dt(d) => ctx.string(d.to_string()),
        other => Err(Fault::type_error(
            "CStr",
            "num, ref, bool, str or dt",
            other,
        )),
    }
}

/// At most 40 characters of a string, for messages.
fn preview(s: &str) -> String {
    let mut p: String = s.chars().take(40).collect();
    if p.len() < s.len() {
        p.push_str("...");
    }
    p
}

// ---------------------------------------------------------------------------------------------
// Base64 and UTF-8 hex

/// The Encoding enum constant (case-insensitive); None for an unknown name.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Encoding {
    Utf8,
    Unicode,
    Ascii,
}

fn encoding(name: &str) -> Option<Encoding> {
    if name.eq_ignore_ascii_case("UTF8") {
        Some(Encoding::Utf8)
    } else if name.eq_ignore_ascii_case("Unicode") {
        Some(Encoding::Unicode)
    } else if name.eq_ignore_ascii_case("ASCII") {
        Some(Encoding::Ascii)
    } else {
        None
    }
}

/// Decodes bytes as text the way .NET's Encoding.GetString does: invalid UTF-8 and UTF-16
/// sequences (including an odd trailing byte) become U+FFFD, non-ASCII bytes become `?`.
fn decode_text(bytes: &[u8], enc: Encoding) -> String {
    match enc {
        Encoding::Utf8 => String::from_utf8_lossy(bytes).into_owned(),
        Encoding::Ascii => bytes
            .iter()
            .map(|&b| if b.is_ascii() { char::from(b) } else { '?' })
            .collect(),
        Encoding::Unicode => {
            let units = bytes
                .chunks_exact(2)
                .map(|p| u16::from_le_bytes([p[0], p[1]]));
            let mut s: String = char::decode_utf16(units)
                .map(|r| r.unwrap_or(char::REPLACEMENT_CHARACTER))
                .collect();
            if !bytes.len().is_multiple_of(2) {
                s.push(char::REPLACEMENT_CHARACTER);
            }
            s
        }
    }
}

/// ConvertFromBase64(source[, encoding]): Base64 → bytes → text (Unicode by default).
fn convert_from_base64(ctx: &mut Ctx, a: &[Value]) -> Outcome {
    const F: &str = "ConvertFromBase64";
    let Some(src) = args::str(F, a, 0)? else {
        return Ok(Value::Null);
    };
    let enc = if a.len() > 1 {
        let Some(name) = args::str(F, a, 1)? else {
            return Ok(Value::Null);
        };
        encoding(name).ok_or_else(|| {
            Fault::invalid(
                F,
                format!(
                    "unknown encoding \"{}\" (UTF8, Unicode or ASCII)",
                    preview(name)
                ),
            )
        })?
    } else {
        Encoding::Unicode
    };
    let bytes = base64_decode(ctx, F, src.as_bytes())?;
    ctx.string(decode_text(&bytes, enc))
}

/// ConvertToBase64(str) encodes the UTF-16LE bytes of the string; ConvertToBase64(bin) the bytes.
fn convert_to_base64(ctx: &mut Ctx, a: &[Value]) -> Outcome {
    match args::get(a, 0) {
        v if v.is_null() => Ok(Value::Null),
        Value::Str(s) | Value::Ref(s) => {
            let units = s.encode_utf16().count();
            let len = units
                .checked_mul(2)
                .ok_or_else(|| Fault::new("E0510", "result too large"))?;
            let b64 = base64::encoded_len(len, true)
                .ok_or_else(|| Fault::new("E0510", "result too large"))?;
            ctx.check_bytes(b64)?;
            let mut bytes = Vec::with_capacity(len);
            for u in s.encode_utf16() {
                bytes.extend_from_slice(&u.to_le_bytes());
            }
            let text = base64_encode(ctx, &bytes)?;
            ctx.string(text)
        }
        Value::Bin(b) => {
            let text = base64_encode(ctx, b)?;
            ctx.string(text)
        }
        other => Err(Fault::type_error("ConvertToBase64", "str or bin", other)),
    }
}

/// ConvertToUTF8Hex(str): upper-case hex pairs of the UTF-8 bytes.
fn convert_to_utf8_hex(ctx: &mut Ctx, a: &[Value]) -> Outcome {
    let Some(s) = args::str("ConvertToUTF8Hex", a, 0)? else {
        return Ok(Value::Null);
    };
    let len = s
        .len()
        .checked_mul(2)
        .ok_or_else(|| Fault::new("E0510", "result too large"))?;
    ctx.check_bytes(len)?;
    ctx.string(hex_upper(s.as_bytes()))
}

/// ConvertFromUTF8Hex(str): hex pairs (either case) → bytes → UTF-8 text (invalid sequences
/// become U+FFFD, as .NET's Encoding.UTF8.GetString).
fn convert_from_utf8_hex(ctx: &mut Ctx, a: &[Value]) -> Outcome {
    const F: &str = "ConvertFromUTF8Hex";
    let Some(s) = args::str(F, a, 0)? else {
        return Ok(Value::Null);
    };
    let b = s.as_bytes();
    if !b.len().is_multiple_of(2) {
        return Err(Fault::invalid(
            F,
            "the hex string has an odd number of digits",
        ));
    }
    let mut bytes = Vec::with_capacity(b.len() / 2);
    for (i, pair) in b.chunks_exact(2).enumerate() {
        match (hex_digit(pair[0]), hex_digit(pair[1])) {
            (Some(h), Some(l)) => bytes.push(h << 4 | l),
            _ => {
                return Err(Fault::invalid(
                    F,
                    format!("not a hex digit pair at position {}", i * 2 + 1),
                ));
            }
        }
    }
    ctx.string(String::from_utf8_lossy(&bytes).into_owned())
}

// ---------------------------------------------------------------------------------------------
// GUIDs and SIDs

/// Parses a GUID in the form `00001111-aaaa-2222-bbbb-3333cccc4444` (hex digits of either case),
/// optionally enclosed in braces, to its 16 bytes in the Windows/.NET layout (Guid.ToByteArray:
/// the first three groups little-endian). No other form and no surrounding white space.
pub fn parse_guid(s: &str) -> Option<[u8; 16]> {
    let b = s.as_bytes();
    let body = match (b.first(), b.last()) {
        (Some(b'{'), Some(b'}')) => b.get(1..b.len() - 1)?,
        _ => b,
    };
    if body.len() != 36 {
        return None;
    }
    let mut be = [0u8; 16];
    let mut n = 0usize;
    let mut high: Option<u8> = None;
    for (i, &c) in body.iter().enumerate() {
        if matches!(i, 8 | 13 | 18 | 23) {
            if c != b'-' {
                return None;
            }
            continue;
        }
        let d = hex_digit(c)?;
        match high.take() {
            None => high = Some(d),
            Some(h) => {
                *be.get_mut(n)? = h << 4 | d;
                n += 1;
            }
        }
    }
    if n != 16 {
        return None;
    }
    // Big-endian text order → .NET byte order: reverse the first three groups.
    let mut out = be;
    out[0..4].reverse();
    out[4..6].reverse();
    out[6..8].reverse();
    Some(out)
}

/// The .NET Guid.ToString() form of 16 bytes in the Windows layout.
fn guid_string(b: &[u8; 16]) -> String {
    let mut be = *b;
    be[0..4].reverse();
    be[4..6].reverse();
    be[6..8].reverse();
    let h = hex_lower(&be);
    // 32 ASCII hex digits: slicing at these positions is always on char boundaries.
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// CGuid(str): the GUID's 16 bytes.
fn cguid(ctx: &mut Ctx, a: &[Value]) -> Outcome {
    let Some(s) = args::str("CGuid", a, 0)? else {
        return Ok(Value::Null);
    };
    let g = parse_guid(s)
        .ok_or_else(|| Fault::invalid("CGuid", format!("\"{}\" is not a GUID", preview(s))))?;
    ctx.binary(g.to_vec())
}

/// StringFromGuid(bin): the 16 bytes as "79ac91a6-eafb-42db-bad0-307a7545fd52".
fn string_from_guid(ctx: &mut Ctx, a: &[Value]) -> Outcome {
    const F: &str = "StringFromGuid";
    let Some(b) = args::bin(F, a, 0)? else {
        return Ok(Value::Null);
    };
    let g: &[u8; 16] = b.try_into().map_err(|_| {
        Fault::invalid(
            F,
            format!("a GUID is 16 bytes long, the value has {}", b.len()),
        )
    })?;
    ctx.string(guid_string(g))
}

/// Formats a binary SID as "S-1-5-21-...". Well-formed: revision 1, at most 15 sub-authorities,
/// and exactly 8 + 4 × count bytes. The 48-bit authority is printed in decimal (as .NET's
/// SecurityIdentifier.ToString).
fn sid_string(b: &[u8]) -> Result<String, &'static str> {
    const SHORT: &str = "a SID is at least 8 bytes long";
    let (&[revision, count], rest) = b.split_first_chunk::<2>().ok_or(SHORT)?;
    let (authority, subs) = rest.split_first_chunk::<6>().ok_or(SHORT)?;
    if revision != 1 {
        return Err("the SID revision is not 1");
    }
    if count > 15 {
        return Err("a SID has at most 15 sub-authorities");
    }
    if subs.len() != usize::from(count) * 4 {
        return Err("the SID length does not match its sub-authority count");
    }
    let mut auth = [0u8; 8];
    auth[2..].copy_from_slice(authority);
    let mut s = format!("S-{revision}-{}", u64::from_be_bytes(auth));
    for sub in subs.chunks_exact(4) {
        let v = u32::from_le_bytes([sub[0], sub[1], sub[2], sub[3]]);
        s.push('-');
        s.push_str(&v.to_string());
    }
    Ok(s)
}

/// StringFromSid(bin): the SDDL string form of a binary SID.
fn string_from_sid(ctx: &mut Ctx, a: &[Value]) -> Outcome {
    const F: &str = "StringFromSid";
    let Some(b) = args::bin(F, a, 0)? else {
        return Ok(Value::Null);
    };
    let text =
        sid_string(b).map_err(|m| Fault::invalid(F, format!("the value is not a SID: {m}")))?;
    ctx.string(text)
}

// ---------------------------------------------------------------------------------------------
// CDate

/// CDate(str): a date string to a UTC instant; see [`parse_date`] for the accepted forms.
fn cdate(_: &mut Ctx, a: &[Value]) -> Outcome {
    match args::get(a, 0) {
        v if v.is_null() => Ok(Value::Null),
        Value::Dt(d) => Ok(Value::Dt(*d)),
        Value::Str(s) | Value::Ref(s) => parse_date(s)
            .map(Value::Dt)
            .ok_or_else(|| Fault::invalid("CDate", format!("\"{}\" is not a date", preview(s)))),
        other => Err(Fault::type_error("CDate", "str", other)),
    }
}

const MONTHS: [&str; 12] = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
];

const WEEKDAYS: [&str; 7] = [
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
];

/// The number of days in a month of the proleptic Gregorian calendar.
pub(crate) fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ => {
            if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 {
                29
            } else {
                28
            }
        }
    }
}

/// A cursor over the ASCII bytes of a date string (never slices the `str`).
struct Cursor<'a> {
    b: &'a [u8],
    i: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn peek_at(&self, k: usize) -> Option<u8> {
        self.b.get(self.i + k).copied()
    }

    fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    /// Skips white space; true if any was skipped.
    fn ws(&mut self) -> bool {
        let start = self.i;
        while self.peek().is_some_and(|c| c.is_ascii_whitespace()) {
            self.i += 1;
        }
        self.i > start
    }

    /// A run of between `min` and `max` digits: (value, count).
    fn digits(&mut self, min: usize, max: usize) -> Option<(i64, usize)> {
        let mut v: i64 = 0;
        let mut n = 0;
        while let Some(c) = self.peek().filter(u8::is_ascii_digit) {
            if n == max {
                return None;
            }
            v = v * 10 + i64::from(c - b'0');
            n += 1;
            self.i += 1;
        }
        (n >= min).then_some((v, n))
    }

    /// A run of ASCII letters, lower-cased (empty if none).
    fn word(&mut self) -> String {
        let mut w = String::new();
        while let Some(c) = self.peek().filter(u8::is_ascii_alphabetic) {
            w.push(char::from(c.to_ascii_lowercase()));
            self.i += 1;
        }
        w
    }

    fn at_end(&self) -> bool {
        self.i >= self.b.len()
    }
}

/// A month name (full or the three-letter abbreviation, any case) → 1..=12.
fn month_number(w: &str) -> Option<i64> {
    MONTHS
        .iter()
        .position(|m| *m == w || (w.len() == 3 && m.starts_with(w)))
        .and_then(|p| i64::try_from(p + 1).ok())
}

/// A weekday name → 0 (Monday) ..= 6 (Sunday).
fn weekday_number(w: &str) -> Option<i64> {
    WEEKDAYS
        .iter()
        .position(|d| *d == w || (w.len() == 3 && d.starts_with(w)))
        .and_then(|p| i64::try_from(p).ok())
}

/// A two-digit year as .NET reads it (TwoDigitYearMax 2049).
fn expand_year(y: i64, ndigits: usize) -> i64 {
    if ndigits == 2 {
        if y < 50 { 2000 + y } else { 1900 + y }
    } else {
        y
    }
}

/// The date part: (year, month, day).
fn parse_date_part(c: &mut Cursor<'_>) -> Option<(i64, i64, i64)> {
    if c.peek().is_some_and(|b| b.is_ascii_alphabetic()) {
        // "Dec 25, 2007", "December 25 2007"
        let month = month_number(&c.word())?;
        c.ws();
        let (day, _) = c.digits(1, 2)?;
        c.eat(b',');
        c.ws();
        let (year, _) = c.digits(4, 4)?;
        return Some((year, month, day));
    }
    let (n1, l1) = c.digits(1, 4)?;
    match c.peek() {
        Some(sep @ (b'-' | b'/')) => {
            c.i += 1;
            if l1 == 4 {
                // ISO order: "2001-01-01", "2001/01/01"
                let (month, _) = c.digits(1, 2)?;
                if !c.eat(sep) {
                    return None;
                }
                let (day, _) = c.digits(1, 2)?;
                Some((n1, month, day))
            } else if l1 <= 2 {
                // US order: "12/25/2007", "12-25-2007", "12/25/07"
                let (day, _) = c.digits(1, 2)?;
                if !c.eat(sep) {
                    return None;
                }
                let (y, ly) = c.digits(2, 4)?;
                if ly == 3 {
                    return None;
                }
                Some((expand_year(y, ly), n1, day))
            } else {
                None
            }
        }
        Some(b) if b.is_ascii_whitespace() && l1 <= 2 => {
            // "25 Dec 2007", "25 December 2007"
            c.ws();
            let month = month_number(&c.word())?;
            c.eat(b',');
            c.ws();
            let (year, _) = c.digits(4, 4)?;
            Some((year, month, n1))
        }
        _ => None,
    }
}

/// An AM/PM designator (any case): Some(false) for AM, Some(true) for PM.
fn designator(c: &mut Cursor<'_>) -> Option<bool> {
    let save = c.i;
    let w = c.word();
    match w.as_str() {
        "am" => Some(false),
        "pm" => Some(true),
        _ => {
            c.i = save;
            None
        }
    }
}

/// The time part: (hour, minute, second, nanosecond).
fn parse_time_part(c: &mut Cursor<'_>) -> Option<(i64, i64, i64, i64)> {
    let (mut hour, _) = c.digits(1, 2)?;
    let (mut minute, mut second, mut nanos) = (0, 0, 0);
    let mut had_minutes = false;
    if c.eat(b':') {
        minute = c.digits(1, 2)?.0;
        had_minutes = true;
        if c.eat(b':') {
            second = c.digits(1, 2)?.0;
            if c.peek() == Some(b'.') && c.peek_at(1).is_some_and(|b| b.is_ascii_digit()) {
                c.i += 1;
                let (f, n) = c.digits(1, 9)?;
                let scale = 10i64.pow(u32::try_from(9 - n).ok()?);
                nanos = f * scale;
            }
        }
    }
    let save = c.i;
    c.ws();
    match designator(c) {
        Some(pm) => {
            if hour > 12 {
                return None;
            }
            hour = hour % 12 + if pm { 12 } else { 0 };
        }
        None => {
            c.i = save;
            if !had_minutes {
                // A bare number is not a time ("4 PM" needs its designator).
                return None;
            }
        }
    }
    if hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    Some((hour, minute, second, nanos))
}

/// An offset from UTC in seconds: "Z", "GMT", "UTC", "+H", "-8", "+05:30", "+0530".
fn parse_offset(c: &mut Cursor<'_>) -> Option<i64> {
    match c.peek() {
        Some(b'Z' | b'z') if !c.peek_at(1).is_some_and(|b| b.is_ascii_alphabetic()) => {
            c.i += 1;
            Some(0)
        }
        Some(sign @ (b'+' | b'-')) => {
            c.i += 1;
            let (v, n) = c.digits(1, 4)?;
            let (h, m) = match n {
                1 | 2 => {
                    if c.eat(b':') {
                        (v, c.digits(2, 2)?.0)
                    } else {
                        (v, 0)
                    }
                }
                4 => (v / 100, v % 100),
                _ => return None,
            };
            if h > 14 || m > 59 {
                return None;
            }
            let secs = h * 3600 + m * 60;
            Some(if sign == b'-' { -secs } else { secs })
        }
        Some(b) if b.is_ascii_alphabetic() => {
            let save = c.i;
            let w = c.word();
            if w == "gmt" || w == "utc" {
                Some(0)
            } else {
                c.i = save;
                None
            }
        }
        _ => None,
    }
}

/// Parses a date string as CDate does. Accepted (leading/trailing white space ignored, names of
/// months and weekdays in English, any case):
///
/// * an optional weekday name, full or abbreviated, optionally followed by a comma ("Tue, ...");
///   when given it must match the date;
/// * a date, one of
///   - `yyyy-M-d` or `yyyy/M/d` (ISO order, 4-digit year),
///   - `M/d/yyyy` or `M-d-yyyy` (month first, as the reference's "12/25/2007"), also with a
///     2-digit year (00-49 → 20xx, 50-99 → 19xx),
///   - `d MMM yyyy` / `d MMMM yyyy` ("25 Dec 2007") and `MMM d, yyyy` ("Dec 25, 2007");
/// * optionally a time after white space (or after `T`): `H:mm`, `H:mm:ss`, `H:mm:ss.fffffffff`
///   (up to 9 fraction digits), each optionally followed by `AM`/`PM`; or `H AM`/`H PM`;
/// * optionally an offset: `Z`, `GMT`, `UTC`, `+H`, `-H`, `+HH:mm`, `+HHmm` (at most 14 hours).
///
/// Without an offset the time is UTC. Years are 1..=9999. A time without a date, two-digit ISO
/// years and AD generalized time ("20140905081453.0Z") are not accepted.
pub fn parse_date(s: &str) -> Option<DateTime> {
    let mut c = Cursor {
        b: s.as_bytes(),
        i: 0,
    };
    c.ws();
    let mut weekday = None;
    if c.peek().is_some_and(|b| b.is_ascii_alphabetic()) {
        let save = c.i;
        let w = c.word();
        if let Some(d) = weekday_number(&w) {
            weekday = Some(d);
            c.eat(b',');
            c.ws();
        } else {
            c.i = save;
        }
    }
    let (year, month, day) = parse_date_part(&mut c)?;
    if !(1..=9999).contains(&year) || !(1..=12).contains(&month) {
        return None;
    }
    if day < 1 || day > days_in_month(year, month) {
        return None;
    }
    let mut time = (0, 0, 0, 0);
    let save = c.i;
    let t_sep =
        matches!(c.peek(), Some(b'T' | b't')) && c.peek_at(1).is_some_and(|b| b.is_ascii_digit());
    if t_sep {
        c.i += 1;
        time = parse_time_part(&mut c)?;
    } else {
        c.ws();
        if c.peek().is_some_and(|b| b.is_ascii_digit()) {
            time = parse_time_part(&mut c)?;
        } else {
            c.i = save;
        }
    }
    let save = c.i;
    c.ws();
    let offset = match parse_offset(&mut c) {
        Some(o) => o,
        None => {
            c.i = save;
            0
        }
    };
    c.ws();
    if !c.at_end() {
        return None;
    }
    let (hour, minute, second, nanos) = time;
    let civil = jiff::civil::DateTime::new(
        i16::try_from(year).ok()?,
        i8::try_from(month).ok()?,
        i8::try_from(day).ok()?,
        i8::try_from(hour).ok()?,
        i8::try_from(minute).ok()?,
        i8::try_from(second).ok()?,
        i32::try_from(nanos).ok()?,
    )
    .ok()?;
    if let Some(wd) = weekday
        && i64::from(civil.weekday().to_monday_zero_offset()) != wd
    {
        return None;
    }
    let off = jiff::tz::Offset::from_seconds(i32::try_from(offset).ok()?).ok()?;
    off.to_timestamp(civil).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(f: &str, a: &[Value]) -> Outcome {
        let mut ctx = Ctx::fixed();
        lookup(f).expect("function")(&mut ctx, a)
    }

    fn s(x: &str) -> Value {
        Value::str(x)
    }

    fn code(r: Outcome) -> &'static str {
        r.expect_err("a fault").code
    }

    fn dt(x: &str) -> Value {
        Value::Dt(x.parse().expect("timestamp"))
    }

    #[test]
    fn every_function_is_mapped() {
        for f in [
            "CBool",
            "CDate",
            "CGuid",
            "ConvertFromBase64",
            "ConvertToBase64",
            "ConvertFromUTF8Hex",
            "ConvertToUTF8Hex",
            "CNum",
            "CRef",
            "CStr",
            "StringFromGuid",
            "StringFromSid",
        ] {
            assert!(lookup(f).is_some(), "{f}");
        }
        assert!(lookup("Trim").is_none());
    }

    #[test]
    fn null_gives_null() {
        for f in [
            "CBool",
            "CDate",
            "CGuid",
            "ConvertFromBase64",
            "ConvertToBase64",
            "ConvertFromUTF8Hex",
            "ConvertToUTF8Hex",
            "CNum",
            "CRef",
            "CStr",
            "StringFromGuid",
            "StringFromSid",
        ] {
            assert_eq!(call(f, &[Value::Null]), Ok(Value::Null), "{f}");
            assert_eq!(call(f, &[]), Ok(Value::Null), "{f}");
        }
        assert_eq!(
            call("ConvertFromBase64", &[s("SGk="), Value::Null]),
            Ok(Value::Null)
        );
    }

    #[test]
    fn cbool() {
        assert_eq!(call("CBool", &[Value::Bool(true)]), Ok(Value::Bool(true)));
        assert_eq!(call("CBool", &[Value::Num(0)]), Ok(Value::Bool(false)));
        assert_eq!(
            call("CBool", &[Value::Num(-2147483648)]),
            Ok(Value::Bool(true))
        );
        assert_eq!(code(call("CBool", &[s("True")])), "E0502");
    }

    #[test]
    fn cnum() {
        assert_eq!(call("CNum", &[s("42")]), Ok(Value::Num(42)));
        assert_eq!(call("CNum", &[s("-7")]), Ok(Value::Num(-7)));
        assert_eq!(call("CNum", &[s(" +7 ")]), Ok(Value::Num(7)));
        assert_eq!(
            call("CNum", &[s("-9223372036854775808")]),
            Ok(Value::Num(i64::MIN))
        );
        assert_eq!(code(call("CNum", &[s("9223372036854775808")])), "E0503");
        for bad in ["", "-", "+", "abc", "12a", "1 2", "1.5", "０"] {
            assert_eq!(code(call("CNum", &[s(bad)])), "E0503", "{bad:?}");
        }
        assert_eq!(
            call("CNum", &[Value::bin(vec![0x20, 0])]),
            Ok(Value::Num(32))
        );
        assert_eq!(call("CNum", &[Value::bin(vec![2, 1])]), Ok(Value::Num(258)));
        assert_eq!(
            call("CNum", &[Value::bin(vec![1, 0, 0, 0, 0, 0, 0, 0, 0, 0])]),
            Ok(Value::Num(1))
        );
        assert_eq!(code(call("CNum", &[Value::bin(vec![0xFF; 8])])), "E0503");
        assert_eq!(
            code(call("CNum", &[Value::bin(vec![0, 0, 0, 0, 0, 0, 0, 0, 1])])),
            "E0503"
        );
        assert_eq!(code(call("CNum", &[Value::bin(Vec::new())])), "E0503");
        assert_eq!(code(call("CNum", &[Value::Bool(true)])), "E0502");
    }

    #[test]
    fn cstr_and_cref() {
        assert_eq!(
            call("CStr", &[Value::Num(-2147483648)]),
            Ok(s("-2147483648"))
        );
        assert_eq!(call("CStr", &[Value::Bool(false)]), Ok(s("False")));
        assert_eq!(
            call("CStr", &[Value::Ref("cn=Joe".into())]),
            Ok(s("cn=Joe"))
        );
        assert_eq!(
            call("CStr", &[dt("2012-01-01T23:00:00Z")]),
            Ok(s("2012-01-01T23:00:00Z"))
        );
        assert_eq!(code(call("CStr", &[Value::bin(vec![1])])), "E0502");
        assert_eq!(
            call("CRef", &[s("cn=Joe")]),
            Ok(Value::Ref("cn=Joe".into()))
        );
        assert_eq!(code(call("CRef", &[Value::Num(1)])), "E0502");
    }

    #[test]
    fn base64_examples() {
        assert_eq!(
            call("ConvertToBase64", &[s("Hello world!")]),
            Ok(s("SABlAGwAbABvACAAdwBvAHIAbABkACEA"))
        );
        assert_eq!(call("ConvertToBase64", &[s("Å")]), Ok(s("xQA=")));
        assert_eq!(call("ConvertToBase64", &[s("")]), Ok(s("")));
        assert_eq!(
            call(
                "ConvertFromBase64",
                &[s("SABlAGwAbABvACAAdwBvAHIAbABkACEA")]
            ),
            Ok(s("Hello world!"))
        );
        assert_eq!(
            call("ConvertFromBase64", &[s("SGVsbG8gd29ybGQh"), s("UTF8")]),
            Ok(s("Hello world!"))
        );
        assert_eq!(
            call("ConvertFromBase64", &[s("SGVsbG8gd29ybGQh"), s("ascii")]),
            Ok(s("Hello world!"))
        );
        assert_eq!(
            call(
                "ConvertFromBase64",
                &[s("SGVs\r\nbG8g d29ybGQh"), s("UTF8")]
            ),
            Ok(s("Hello world!"))
        );
        assert_eq!(call("ConvertFromBase64", &[s("")]), Ok(s("")));
    }

    #[test]
    fn base64_round_trips() {
        let text = "Räksmörgås 𝄞 \u{0} end";
        let b64 = call("ConvertToBase64", &[s(text)]).unwrap();
        assert_eq!(
            call("ConvertFromBase64", std::slice::from_ref(&b64)),
            Ok(s(text))
        );
        assert_eq!(call("ConvertFromBase64", &[b64, s("Unicode")]), Ok(s(text)));
        // UTF8 and ASCII: encode the raw bytes and decode them back.
        let utf8 = call("ConvertToBase64", &[Value::bin(text.as_bytes().to_vec())]).unwrap();
        assert_eq!(call("ConvertFromBase64", &[utf8, s("UTF8")]), Ok(s(text)));
        let ascii = call("ConvertToBase64", &[Value::bin(b"plain ascii".to_vec())]).unwrap();
        assert_eq!(
            call("ConvertFromBase64", &[ascii, s("ASCII")]),
            Ok(s("plain ascii"))
        );
        let bin: Vec<u8> = (0..=255).collect();
        let enc = call("ConvertToBase64", &[Value::bin(bin.clone())]).unwrap();
        let Value::Str(e) = enc else { panic!() };
        assert_eq!(BASE64.decode(e.as_bytes()).unwrap(), bin);
    }

    #[test]
    fn base64_lossy_and_errors() {
        // Non-ASCII bytes in ASCII become '?', invalid UTF-8 becomes U+FFFD, an odd byte too.
        assert_eq!(
            call("ConvertFromBase64", &[s("/w=="), s("ASCII")]),
            Ok(s("?"))
        );
        assert_eq!(
            call("ConvertFromBase64", &[s("/w=="), s("UTF8")]),
            Ok(s("\u{FFFD}"))
        );
        assert_eq!(call("ConvertFromBase64", &[s("QQBC")]), Ok(s("A\u{FFFD}")));
        for bad in ["@@@", "SGk", "SGk=x", "S=Gk", "===="] {
            let e = call("ConvertFromBase64", &[s(bad)]).unwrap_err();
            assert_eq!(e.code, "E0503", "{bad}");
            assert!(e.message.contains("base64"), "{}", e.message);
        }
        assert_eq!(
            code(call("ConvertFromBase64", &[s("SGk="), s("UTF16")])),
            "E0503"
        );
        assert_eq!(code(call("ConvertToBase64", &[Value::Num(1)])), "E0502");
    }

    #[test]
    fn size_limits() {
        let mut ctx = Ctx::fixed().with_limits(crate::builtins::ctx::Limits {
            max_bytes: 16,
            ..Default::default()
        });
        let big = s(&"x".repeat(64));
        assert_eq!(
            convert_to_base64(&mut ctx, std::slice::from_ref(&big))
                .unwrap_err()
                .code,
            "E0510"
        );
        assert_eq!(
            convert_to_utf8_hex(&mut ctx, std::slice::from_ref(&big))
                .unwrap_err()
                .code,
            "E0510"
        );
        let b64 = s(&"QUFB".repeat(16));
        assert_eq!(
            convert_from_base64(&mut ctx, &[b64]).unwrap_err().code,
            "E0510"
        );
    }

    #[test]
    fn utf8_hex() {
        assert_eq!(
            call("ConvertToUTF8Hex", &[s("Hello world!")]),
            Ok(s("48656C6C6F20776F726C6421"))
        );
        assert_eq!(call("ConvertToUTF8Hex", &[s("Å")]), Ok(s("C385")));
        assert_eq!(call("ConvertToUTF8Hex", &[s("")]), Ok(s("")));
        assert_eq!(call("ConvertFromUTF8Hex", &[s("c385")]), Ok(s("Å")));
        assert_eq!(call("ConvertFromUTF8Hex", &[s("")]), Ok(s("")));
        assert_eq!(call("ConvertFromUTF8Hex", &[s("FF")]), Ok(s("\u{FFFD}")));
        for bad in ["C38", "ZZ", "C3 85", "ÅÅ", "é1"] {
            assert_eq!(
                code(call("ConvertFromUTF8Hex", &[s(bad)])),
                "E0503",
                "{bad}"
            );
        }
        for text in ["", "Räksmörgås", "𝄞 {x}", "ppGsefvq20K60DB6dUX9Ug=="] {
            let h = call("ConvertToUTF8Hex", &[s(text)]).unwrap();
            assert_eq!(call("ConvertFromUTF8Hex", &[h]), Ok(s(text)));
        }
    }

    #[test]
    fn guids() {
        let want = Value::bin(BASE64.decode("EREAAKqqIiK7uzMzzMxERA==").unwrap());
        assert_eq!(
            call("CGuid", &[s("00001111-aaaa-2222-bbbb-3333cccc4444")]),
            Ok(want.clone())
        );
        assert_eq!(
            call("CGuid", &[s("{00001111-AAAA-2222-BBBB-3333CCCC4444}")]),
            Ok(want.clone())
        );
        assert_eq!(
            call("StringFromGuid", &[want]),
            Ok(s("00001111-aaaa-2222-bbbb-3333cccc4444"))
        );
        let guid = Value::bin(BASE64.decode("ppGsefvq20K60DB6dUX9Ug==").unwrap());
        assert_eq!(
            call("StringFromGuid", std::slice::from_ref(&guid)),
            Ok(s("79ac91a6-eafb-42db-bad0-307a7545fd52"))
        );
        let back = call("StringFromGuid", std::slice::from_ref(&guid)).unwrap();
        assert_eq!(call("CGuid", &[back]), Ok(guid));
        for bad in [
            "",
            "not a guid",
            "00001111aaaa2222bbbb3333cccc4444",
            "{00001111-aaaa-2222-bbbb-3333cccc4444",
            "00001111-aaaa-2222-bbbb-3333cccc4444}",
            "(00001111-aaaa-2222-bbbb-3333cccc4444)",
            "00001111-aaaa-2222-bbbb-3333cccc444g",
            "0000111-1aaaa-2222-bbbb-3333cccc4444",
            " 00001111-aaaa-2222-bbbb-3333cccc4444",
            "00001111-aaaa-2222-bbbb-3333cccc44444",
            "0000111é-aaaa-2222-bbbb-3333cccc4444",
        ] {
            assert_eq!(code(call("CGuid", &[s(bad)])), "E0503", "{bad}");
            assert_eq!(parse_guid(bad), None);
        }
        for len in [0, 15, 17] {
            assert_eq!(
                code(call("StringFromGuid", &[Value::bin(vec![0; len])])),
                "E0503"
            );
        }
        assert_eq!(code(call("StringFromGuid", &[s("x")])), "E0502");
    }

    #[test]
    fn sids() {
        let sid = Value::bin(
            BASE64
                .decode("AQUAAAAAAAUVAAAA3PTcO4M9K0aCi6YoUAQAAA==")
                .unwrap(),
        );
        assert_eq!(
            call("StringFromSid", &[sid]),
            Ok(s("S-1-5-21-1004336348-1177238915-682003330-1104"))
        );
        let admins = Value::bin(BASE64.decode("AQIAAAAAAAUgAAAAIAIAAA==").unwrap());
        assert_eq!(call("StringFromSid", &[admins]), Ok(s("S-1-5-32-544")));
        // S-1-1-0 (Everyone), and no sub-authority at all.
        assert_eq!(
            call(
                "StringFromSid",
                &[Value::bin(vec![1, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0])]
            ),
            Ok(s("S-1-1-0"))
        );
        assert_eq!(
            call("StringFromSid", &[Value::bin(vec![1, 0, 0, 0, 0, 0, 0, 5])]),
            Ok(s("S-1-5"))
        );
        assert_eq!(
            call(
                "StringFromSid",
                &[Value::bin(vec![1, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF])]
            ),
            Ok(s("S-1-281474976710655"))
        );
        for bad in [
            vec![],
            vec![1],
            vec![1, 1, 0, 0, 0, 0, 0, 5],
            vec![1, 1, 0, 0, 0, 0, 0, 5, 0, 0, 0],
            vec![1, 1, 0, 0, 0, 0, 0, 5, 0, 0, 0, 0, 0],
            vec![2, 0, 0, 0, 0, 0, 0, 5],
            [vec![1, 16, 0, 0, 0, 0, 0, 5], vec![0; 64]].concat(),
        ] {
            assert_eq!(
                code(call("StringFromSid", &[Value::bin(bad.clone())])),
                "E0503",
                "{bad:?}"
            );
        }
    }

    #[test]
    fn cdate_examples() {
        let cases = [
            ("2013-01-10 4:00 PM -8", "2013-01-11T00:00:00Z"),
            ("2012-01-01 23:00:00", "2012-01-01T23:00:00Z"),
            ("12/25/2007", "2007-12-25T00:00:00Z"),
            ("2001-01-01", "2001-01-01T00:00:00Z"),
            ("  2001-01-01  ", "2001-01-01T00:00:00Z"),
            ("2001/1/2", "2001-01-02T00:00:00Z"),
            ("1/2/2001", "2001-01-02T00:00:00Z"),
            ("12-25-2007", "2007-12-25T00:00:00Z"),
            ("12/25/07", "2007-12-25T00:00:00Z"),
            ("12/25/99", "1999-12-25T00:00:00Z"),
            ("2012-01-01T23:00:00Z", "2012-01-01T23:00:00Z"),
            ("2012-01-01T23:00:00.5Z", "2012-01-01T23:00:00.5Z"),
            (
                "2012-01-01T23:00:00.1234567+02:00",
                "2012-01-01T21:00:00.1234567Z",
            ),
            ("2012-01-01 23:00 +0530", "2012-01-01T17:30:00Z"),
            ("2012-01-01 12:00 AM", "2012-01-01T00:00:00Z"),
            ("2012-01-01 12:30 pm", "2012-01-01T12:30:00Z"),
            ("2012-01-01 4 PM", "2012-01-01T16:00:00Z"),
            ("2012-01-01 4:00PM", "2012-01-01T16:00:00Z"),
            ("Dec 25, 2007", "2007-12-25T00:00:00Z"),
            ("december 25 2007 10:00", "2007-12-25T10:00:00Z"),
            ("25 Dec 2007", "2007-12-25T00:00:00Z"),
            ("Tue, 25 Dec 2007 10:00:00 GMT", "2007-12-25T10:00:00Z"),
            ("Tuesday, 25 December 2007 10:00:00", "2007-12-25T10:00:00Z"),
            ("2000-02-29", "2000-02-29T00:00:00Z"),
            ("9999-12-30 22:00:00", "9999-12-30T22:00:00Z"),
            ("0001-01-01", "0001-01-01T00:00:00Z"),
        ];
        for (input, want) in cases {
            assert_eq!(call("CDate", &[s(input)]), Ok(dt(want)), "{input}");
        }
    }

    #[test]
    fn cdate_rejects() {
        for bad in [
            "",
            "not a date",
            "2001-13-01",
            "2001-02-29",
            "2001-04-31",
            "2001-01-00",
            "0000-01-01",
            "13/01/2001",
            "2001-01-01 24:00",
            "2001-01-01 12:60",
            "2001-01-01 13:00 PM",
            "2001-01-01 4",
            "2001-01-01 +15",
            "4:00 PM",
            "20140905081453.0Z",
            "2001-01/01",
            "1/2/201",
            "Mon, 25 Dec 2007",
            "2001-01-01 x",
            "2001-01-01T",
            "2001-01-01 10:00:00.",
            "2001-01-01 10:00:00.1234567890",
            "２００１-01-01",
            "Décembre 25, 2007",
        ] {
            assert_eq!(parse_date(bad), None, "{bad}");
        }
        assert_eq!(code(call("CDate", &[s("not a date")])), "E0503");
        assert_eq!(code(call("CDate", &[Value::Num(1)])), "E0502");
    }

    #[test]
    fn cdate_never_panics_on_fragments() {
        let samples = [
            "Tue, 25 Dec 2007 10:00:00 GMT",
            "2013-01-10 4:00 PM -8",
            "2012-01-01T23:00:00.1234567+02:00",
            "12/25/07 12:30 am Z",
            "Dec 25, 2007 9 PM +0530",
        ];
        for s in samples {
            let chars: Vec<char> = s.chars().collect();
            for i in 0..chars.len() {
                for j in i..=chars.len() {
                    let frag: String = chars[i..j].iter().collect();
                    let _ = parse_date(&frag);
                    let mut mutated = frag.clone();
                    mutated.push('\u{00e9}');
                    let _ = parse_date(&mutated);
                }
            }
        }
    }

    #[test]
    fn cdate_round_trips_cstr() {
        for t in [
            "2012-01-01T23:00:00Z",
            "1601-01-01T00:00:00.0000001Z",
            "9999-12-30T22:00:00.999999999Z",
        ] {
            let text = call("CStr", &[dt(t)]).unwrap();
            assert_eq!(call("CDate", &[text]), Ok(dt(t)), "{t}");
        }
    }
}
