//! Builtins of the stdlib area `datetime` (see `stdlib/datetime.toml` for the declarations).
//!
//! Consumes: evaluated argument values. Produces: the function results or faults.
//!
//! A `dt` is a UTC instant (`jiff::Timestamp`). AD's Integer8 date format (FILETIME) counts
//! 100-nanosecond ticks since 1601-01-01T00:00:00Z; dates outside .NET's DateTime range
//! (FILETIME: 1601-01-01 up to 9999-12-30T22:00Z, the last instant a `dt` holds) are invalid values.

use super::{BuiltinFn, Fault, Outcome, args};
use crate::builtins::conversion::days_in_month;
use crate::builtins::ctx::Ctx;
use crate::value::{DateTime, Value};
use jiff::tz::Offset;

/// The implementation of a function of this area, by name.
pub fn lookup(name: &str) -> Option<BuiltinFn> {
    let f: BuiltinFn = match name {
        "DateAdd" => date_add,
        "DateFromNum" => date_from_num,
        "FormatDateTime" => format_date_time,
        "Now" => now,
        "NumFromDate" => num_from_date,
        _ => return None,
    };
    Some(f)
}

/// Seconds from 1601-01-01T00:00:00Z to the Unix epoch.
const FILETIME_EPOCH_OFFSET_SECS: i128 = 11_644_473_600;
const NANOS_PER_SEC: i128 = 1_000_000_000;
const NANOS_PER_TICK: i128 = 100;

/// Now(): the run's injected time, so runs are reproducible.
fn now(ctx: &mut Ctx, _: &[Value]) -> Outcome {
    Ok(Value::Dt(ctx.now))
}

/// A FILETIME tick count as an instant; None when negative or past the last instant a `dt` holds
/// (9999-12-30T22:00:00.9999999Z, jiff's `Timestamp::MAX`).
pub(crate) fn from_filetime(ticks: i64) -> Option<DateTime> {
    if ticks < 0 {
        return None;
    }
    let ns = i128::from(ticks)
        .checked_mul(NANOS_PER_TICK)?
        .checked_sub(FILETIME_EPOCH_OFFSET_SECS.checked_mul(NANOS_PER_SEC)?)?;
    DateTime::from_nanosecond(ns).ok()
}

/// An instant as FILETIME ticks (sub-tick precision is truncated toward the past); None before
/// 1601-01-01.
pub(crate) fn to_filetime(t: DateTime) -> Option<i64> {
    let ns = t
        .as_nanosecond()
        .checked_add(FILETIME_EPOCH_OFFSET_SECS.checked_mul(NANOS_PER_SEC)?)?;
    if ns < 0 {
        return None;
    }
    i64::try_from(ns.div_euclid(NANOS_PER_TICK)).ok()
}

/// DateFromNum(num): FILETIME ticks → dt.
fn date_from_num(_: &mut Ctx, a: &[Value]) -> Outcome {
    const F: &str = "DateFromNum";
    let Some(n) = args::num(F, a, 0)? else {
        return Ok(Value::Null);
    };
    from_filetime(n).map(Value::Dt).ok_or_else(|| {
        Fault::invalid(
            F,
            format!(
                "{n} is outside the range of dates (0 ..= 2650466808009999999 ticks since 1601)"
            ),
        )
    })
}

/// NumFromDate(dt): dt → FILETIME ticks.
fn num_from_date(_: &mut Ctx, a: &[Value]) -> Outcome {
    const F: &str = "NumFromDate";
    let Some(t) = args::dt(F, a, 0)? else {
        return Ok(Value::Null);
    };
    to_filetime(t)
        .map(Value::Num)
        .ok_or_else(|| Fault::invalid(F, format!("{t} is before 1601-01-01, AD's first date")))
}

/// The unit a DateAdd interval adds.
enum Step {
    Months(i128),
    Seconds(i128),
}

/// DateAdd(interval, value, date). Intervals (case-insensitive, as in VBA): yyyy year, q quarter,
/// m month, y/d/w day, ww week, h hour, n minute, s second. Month-based steps keep the day of
/// month, clamped to the target month's last day; the time of day is kept.
fn date_add(_: &mut Ctx, a: &[Value]) -> Outcome {
    const F: &str = "DateAdd";
    let Some(interval) = args::str(F, a, 0)? else {
        return Ok(Value::Null);
    };
    let Some(value) = args::num(F, a, 1)? else {
        return Ok(Value::Null);
    };
    let Some(date) = args::dt(F, a, 2)? else {
        return Ok(Value::Null);
    };
    let v = i128::from(value);
    let step = match interval.to_ascii_lowercase().as_str() {
        "yyyy" => Step::Months(v * 12),
        "q" => Step::Months(v * 3),
        "m" => Step::Months(v),
        "y" | "d" | "w" => Step::Seconds(v * 86_400),
        "ww" => Step::Seconds(v * 7 * 86_400),
        "h" => Step::Seconds(v * 3_600),
        "n" => Step::Seconds(v * 60),
        "s" => Step::Seconds(v),
        _ => {
            return Err(Fault::invalid(
                F,
                format!(
                    "unknown interval \"{}\" (yyyy, q, m, y, d, w, ww, h, n or s)",
                    interval.chars().take(20).collect::<String>()
                ),
            ));
        }
    };
    let out_of_range = || Fault::invalid(F, "the resulting date is out of range");
    let result = match step {
        Step::Seconds(secs) => {
            let ns = secs
                .checked_mul(NANOS_PER_SEC)
                .and_then(|d| date.as_nanosecond().checked_add(d))
                .ok_or_else(out_of_range)?;
            DateTime::from_nanosecond(ns).map_err(|_| out_of_range())?
        }
        Step::Months(months) => add_months(date, months).ok_or_else(out_of_range)?,
    };
    Ok(Value::Dt(result))
}

/// Adds calendar months in UTC, clamping the day to the target month's length.
fn add_months(date: DateTime, months: i128) -> Option<DateTime> {
    let civil = Offset::UTC.to_datetime(date);
    let total = i128::from(civil.year())
        .checked_mul(12)?
        .checked_add(i128::from(civil.month()) - 1)?
        .checked_add(months)?;
    let year = i64::try_from(total.div_euclid(12)).ok()?;
    let month = i64::try_from(total.rem_euclid(12)).ok()? + 1;
    let day = i64::from(civil.day()).min(days_in_month(year, month));
    let target = jiff::civil::DateTime::new(
        i16::try_from(year).ok()?,
        i8::try_from(month).ok()?,
        i8::try_from(day).ok()?,
        civil.hour(),
        civil.minute(),
        civil.second(),
        civil.subsec_nanosecond(),
    )
    .ok()?;
    Offset::UTC.to_timestamp(target).ok()
}

/// FormatDateTime(dt, format): .NET DateTime.ToString(format) in the invariant culture, in UTC.
fn format_date_time(ctx: &mut Ctx, a: &[Value]) -> Outcome {
    const F: &str = "FormatDateTime";
    let Some(date) = args::dt(F, a, 0)? else {
        return Ok(Value::Null);
    };
    let Some(format) = args::str(F, a, 1)? else {
        return Ok(Value::Null);
    };
    let out = format_datetime(ctx, date, format).map_err(|m| match m {
        FormatError::Limit(f) => f,
        FormatError::Invalid(m) => Fault::invalid(F, m),
    })?;
    ctx.string(out)
}

enum FormatError {
    Invalid(String),
    Limit(Box<Fault>),
}

const MONTH_NAMES: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

const DAY_NAMES: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];

/// The invariant culture's standard format strings (a format of one character).
fn standard_pattern(c: char) -> Option<&'static str> {
    Some(match c {
        'd' => "MM/dd/yyyy",
        'D' => "dddd, dd MMMM yyyy",
        'f' => "dddd, dd MMMM yyyy HH:mm",
        'F' => "dddd, dd MMMM yyyy HH:mm:ss",
        'g' => "MM/dd/yyyy HH:mm",
        'G' => "MM/dd/yyyy HH:mm:ss",
        'm' | 'M' => "MMMM dd",
        'o' | 'O' => "yyyy'-'MM'-'dd'T'HH':'mm':'ss'.'fffffffK",
        'r' | 'R' => "ddd, dd MMM yyyy HH':'mm':'ss 'GMT'",
        's' => "yyyy'-'MM'-'dd'T'HH':'mm':'ss",
        't' => "HH:mm",
        'T' => "HH:mm:ss",
        'u' => "yyyy'-'MM'-'dd HH':'mm':'ss'Z'",
        'U' => "dddd, dd MMMM yyyy HH:mm:ss",
        'y' | 'Y' => "yyyy MMMM",
        _ => return None,
    })
}

/// Formats an instant as .NET's DateTime.ToString(format, InvariantCulture) does for a UTC
/// DateTime:
///
/// * an empty format is the standard format "G"; a one-character format is a standard format
///   (d D f F g G m M o O r R s t T u U y Y; any other single character is an error);
/// * otherwise a custom format: `yyyy` (year padded to the number of y's; `y`/`yy` year mod 100),
///   `M`/`MM` month, `MMM`/`MMMM` month name, `d`/`dd` day, `ddd`/`dddd` day name, `h`/`hh`
///   12-hour, `H`/`HH` 24-hour, `m`/`mm`, `s`/`ss`, `f`..`fffffff` fraction (truncated), `F`..
///   `FFFFFFF` fraction without trailing zeros (nothing, and no preceding `.`, when zero), `t`/`tt`
///   A/P and AM/PM, `g` era (A.D.), `z`/`zz`/`zzz` offset (+0, +00, +00:00), `K` (Z), `:` and `/`,
///   quoted literals `'...'` and `"..."` (with `\` escapes inside), `\c` a literal character,
///   `%c` a single-letter specifier; every other character is copied. An unterminated quote, a
///   trailing `\` or `%`, `%%` and more than seven f's are errors.
fn format_datetime(ctx: &Ctx, date: DateTime, format: &str) -> Result<String, FormatError> {
    let mut chars: Vec<char> = format.chars().collect();
    if chars.is_empty() {
        chars = "MM/dd/yyyy HH:mm:ss".chars().collect();
    } else if let [c] = chars.as_slice() {
        let Some(p) = standard_pattern(*c) else {
            return Err(FormatError::Invalid(format!(
                "\"{c}\" is not a standard date format (use %{c} for the custom specifier)"
            )));
        };
        chars = p.chars().collect();
    }
    let mut out = String::new();
    format_custom(ctx, date, &chars, &mut out)?;
    Ok(out)
}

fn pad(ctx: &Ctx, out: &mut String, value: i64, width: usize) -> Result<(), FormatError> {
    ctx.check_bytes(out.len().saturating_add(width).saturating_add(20))
        .map_err(FormatError::Limit)?;
    if value < 0 {
        out.push('-');
    }
    let digits = value.unsigned_abs().to_string();
    for _ in digits.len()..width {
        out.push('0');
    }
    out.push_str(&digits);
    Ok(())
}

fn format_custom(
    ctx: &Ctx,
    date: DateTime,
    chars: &[char],
    out: &mut String,
) -> Result<(), FormatError> {
    let civil = Offset::UTC.to_datetime(date);
    let year = i64::from(civil.year());
    let month = usize::try_from(civil.month()).unwrap_or(1);
    let day = i64::from(civil.day());
    let hour = i64::from(civil.hour());
    let minute = i64::from(civil.minute());
    let second = i64::from(civil.second());
    // The fraction in 100-ns ticks (7 digits), as .NET stores it.
    let ticks = i64::from(civil.subsec_nanosecond()) / 100;
    let weekday = usize::from(civil.weekday().to_sunday_zero_offset().unsigned_abs());

    let mut i = 0;
    while let Some(&c) = chars.get(i) {
        let run = chars
            .get(i..)
            .unwrap_or(&[])
            .iter()
            .take_while(|&&x| x == c)
            .count();
        let mut token_len = run;
        match c {
            'g' => out.push_str(if year > 0 { "A.D." } else { "B.C." }),
            'h' => {
                let h12 = if hour % 12 == 0 { 12 } else { hour % 12 };
                pad(ctx, out, h12, run.min(2))?;
            }
            'H' => pad(ctx, out, hour, run.min(2))?,
            'm' => pad(ctx, out, minute, run.min(2))?,
            's' => pad(ctx, out, second, run.min(2))?,
            'f' | 'F' => {
                if run > 7 {
                    return Err(FormatError::Invalid(
                        "a fraction of a second has at most 7 digits (fffffff)".into(),
                    ));
                }
                let exp = u32::try_from(7 - run).unwrap_or(0);
                let frac = ticks / 10i64.pow(exp);
                if c == 'f' {
                    pad(ctx, out, frac, run)?;
                } else {
                    let mut digits = format!("{frac:0run$}");
                    while digits.ends_with('0') {
                        digits.pop();
                    }
                    if digits.is_empty() {
                        if out.ends_with('.') {
                            out.pop();
                        }
                    } else {
                        out.push_str(&digits);
                    }
                }
            }
            't' => {
                let pm = hour >= 12;
                out.push_str(match (run, pm) {
                    (1, false) => "A",
                    (1, true) => "P",
                    (_, false) => "AM",
                    (_, true) => "PM",
                });
            }
            'd' => match run {
                1 | 2 => pad(ctx, out, day, run)?,
                3 => out.push_str(
                    DAY_NAMES
                        .get(weekday)
                        .map_or("", |d| d.get(..3).unwrap_or(d)),
                ),
                _ => out.push_str(DAY_NAMES.get(weekday).copied().unwrap_or("")),
            },
            'M' => {
                let name = MONTH_NAMES
                    .get(month.wrapping_sub(1))
                    .copied()
                    .unwrap_or("");
                match run {
                    1 | 2 => pad(ctx, out, i64::try_from(month).unwrap_or(0), run)?,
                    3 => out.push_str(name.get(..3).unwrap_or(name)),
                    _ => out.push_str(name),
                }
            }
            'y' => {
                if run <= 2 {
                    pad(ctx, out, year % 100, run)?;
                } else {
                    pad(ctx, out, year, run)?;
                }
            }
            'z' => out.push_str(match run {
                1 => "+0",
                2 => "+00",
                _ => "+00:00",
            }),
            'K' => {
                token_len = 1;
                out.push('Z');
            }
            ':' | '/' => {
                token_len = 1;
                out.push(c);
            }
            '\'' | '"' => {
                // A quoted literal; `\` escapes the next character inside it.
                let mut j = i + 1;
                loop {
                    match chars.get(j) {
                        None => {
                            return Err(FormatError::Invalid(format!(
                                "the quoted text starting at position {} is not closed",
                                i + 1
                            )));
                        }
                        Some(&q) if q == c => break,
                        Some('\\') => {
                            let Some(&e) = chars.get(j + 1) else {
                                return Err(FormatError::Invalid(
                                    "the format ends with an escape character".into(),
                                ));
                            };
                            out.push(e);
                            j += 2;
                        }
                        Some(&x) => {
                            out.push(x);
                            j += 1;
                        }
                    }
                }
                token_len = j + 1 - i;
            }
            '%' => {
                // `%c`: the next character as a one-letter custom format.
                match chars.get(i + 1) {
                    Some('%') | None => {
                        return Err(FormatError::Invalid(
                            "`%` must be followed by a format specifier".into(),
                        ));
                    }
                    Some(&n) => format_custom(ctx, date, &[n], out)?,
                }
                token_len = 2;
            }
            '\\' => {
                let Some(&n) = chars.get(i + 1) else {
                    return Err(FormatError::Invalid(
                        "the format ends with an escape character".into(),
                    ));
                };
                out.push(n);
                token_len = 2;
            }
            other => {
                token_len = 1;
                out.push(other);
            }
        }
        // Check the size as the output grows (each token adds a bounded amount).
        ctx.check_bytes(out.len()).map_err(FormatError::Limit)?;
        i += token_len;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dt(x: &str) -> Value {
        Value::Dt(x.parse().expect("timestamp"))
    }

    fn s(x: &str) -> Value {
        Value::str(x)
    }

    fn call(f: &str, a: &[Value]) -> Outcome {
        let mut ctx = Ctx::fixed();
        lookup(f).expect("function")(&mut ctx, a)
    }

    fn code(r: Outcome) -> &'static str {
        r.expect_err("a fault").code
    }

    fn fmt(t: &str, f: &str) -> Result<String, String> {
        match call("FormatDateTime", &[dt(t), s(f)]) {
            Ok(Value::Str(x)) => Ok(x.to_string()),
            Ok(other) => Err(format!("{other:?}")),
            Err(e) => Err(e.code.to_string()),
        }
    }

    #[test]
    fn now_is_injected() {
        let t: DateTime = "2024-05-01T10:00:00Z".parse().unwrap();
        let mut ctx = Ctx::new(t, 7);
        assert_eq!(now(&mut ctx, &[]), Ok(Value::Dt(t)));
    }

    #[test]
    fn nulls() {
        for f in ["DateFromNum", "NumFromDate", "FormatDateTime"] {
            assert_eq!(call(f, &[Value::Null, Value::Null]), Ok(Value::Null), "{f}");
        }
        assert_eq!(
            call("DateAdd", &[s("d"), Value::Num(1), Value::Null]),
            Ok(Value::Null)
        );
        assert_eq!(
            call(
                "DateAdd",
                &[Value::Null, Value::Num(1), dt("2001-01-01T00:00:00Z")]
            ),
            Ok(Value::Null)
        );
        assert_eq!(
            call(
                "DateAdd",
                &[s("d"), Value::Null, dt("2001-01-01T00:00:00Z")]
            ),
            Ok(Value::Null)
        );
        assert_eq!(
            call("FormatDateTime", &[dt("2001-01-01T00:00:00Z"), Value::Null]),
            Ok(Value::Null)
        );
    }

    #[test]
    fn filetime() {
        assert_eq!(
            call("DateFromNum", &[Value::Num(129699324000000000)]),
            Ok(dt("2012-01-01T23:00:00Z"))
        );
        assert_eq!(
            call("DateFromNum", &[Value::Num(130543784930000000)]),
            Ok(dt("2014-09-05T08:14:53Z"))
        );
        assert_eq!(
            call("DateFromNum", &[Value::Num(0)]),
            Ok(dt("1601-01-01T00:00:00Z"))
        );
        assert_eq!(
            call("DateFromNum", &[Value::Num(116444736000000000)]),
            Ok(dt("1970-01-01T00:00:00Z"))
        );
        // The last instant jiff represents is 9999-12-30T22:00:00.999999999Z.
        assert_eq!(
            call("DateFromNum", &[Value::Num(2650466808009999999)]),
            Ok(dt("9999-12-30T22:00:00.9999999Z"))
        );
        assert_eq!(
            call("NumFromDate", &[dt("2012-01-01T23:00:00Z")]),
            Ok(Value::Num(129699324000000000))
        );
        // Out of range: AD's "never", just past 9999, negative; dates before 1601.
        for n in [
            i64::MAX,
            2650466808010000000,
            2650467743999999999,
            -1,
            i64::MIN,
        ] {
            assert_eq!(code(call("DateFromNum", &[Value::Num(n)])), "E0503", "{n}");
        }
        assert_eq!(
            code(call("NumFromDate", &[dt("1600-12-31T23:59:59.9999999Z")])),
            "E0503"
        );
        assert_eq!(
            code(call("NumFromDate", &[Value::Dt(DateTime::MIN)])),
            "E0503"
        );
        assert_eq!(
            call("NumFromDate", &[Value::Dt(DateTime::MAX)]),
            Ok(Value::Num(2650466808009999999))
        );
        // Sub-tick precision is truncated.
        assert_eq!(
            call("NumFromDate", &[dt("1601-01-01T00:00:00.000000199Z")]),
            Ok(Value::Num(1))
        );
        assert_eq!(code(call("DateFromNum", &[s("1")])), "E0502");
        assert_eq!(code(call("NumFromDate", &[Value::Num(1)])), "E0502");
    }

    #[test]
    fn filetime_round_trips() {
        for n in [
            0,
            1,
            129699324000000000,
            130543784930000000,
            2650466808009999999,
            864000000000,
        ] {
            let d = call("DateFromNum", &[Value::Num(n)]).unwrap();
            assert_eq!(call("NumFromDate", &[d]), Ok(Value::Num(n)), "{n}");
        }
        for t in [
            "1601-01-01T00:00:00Z",
            "2024-02-29T12:34:56.1234567Z",
            "9999-12-30T22:00:00Z",
        ] {
            let n = call("NumFromDate", &[dt(t)]).unwrap();
            assert_eq!(call("DateFromNum", &[n]), Ok(dt(t)), "{t}");
        }
    }

    #[test]
    fn date_add() {
        let add = |i: &str, v: i64, d: &str| call("DateAdd", &[s(i), Value::Num(v), dt(d)]);
        assert_eq!(
            add("m", 3, "2001-01-01T00:00:00Z"),
            Ok(dt("2001-04-01T00:00:00Z"))
        );
        assert_eq!(
            add("d", -1, "2001-03-01T00:00:00Z"),
            Ok(dt("2001-02-28T00:00:00Z"))
        );
        assert_eq!(
            add("m", 1, "2001-01-31T00:00:00Z"),
            Ok(dt("2001-02-28T00:00:00Z"))
        );
        assert_eq!(
            add("m", 1, "2004-01-31T10:20:30Z"),
            Ok(dt("2004-02-29T10:20:30Z"))
        );
        assert_eq!(
            add("M", -13, "2001-01-31T00:00:00Z"),
            Ok(dt("1999-12-31T00:00:00Z"))
        );
        assert_eq!(
            add("h", 36, "2012-01-01T23:00:00Z"),
            Ok(dt("2012-01-03T11:00:00Z"))
        );
        assert_eq!(
            add("ww", 2, "2012-01-01T00:00:00Z"),
            Ok(dt("2012-01-15T00:00:00Z"))
        );
        assert_eq!(
            add("yyyy", 1, "2004-02-29T00:00:00Z"),
            Ok(dt("2005-02-28T00:00:00Z"))
        );
        assert_eq!(
            add("YYYY", -4, "2004-02-29T00:00:00Z"),
            Ok(dt("2000-02-29T00:00:00Z"))
        );
        assert_eq!(
            add("q", 1, "2001-11-30T00:00:00Z"),
            Ok(dt("2002-02-28T00:00:00Z"))
        );
        assert_eq!(
            add("y", 1, "2001-12-31T00:00:00Z"),
            Ok(dt("2002-01-01T00:00:00Z"))
        );
        assert_eq!(
            add("w", 1, "2001-12-31T00:00:00Z"),
            Ok(dt("2002-01-01T00:00:00Z"))
        );
        assert_eq!(
            add("n", 90, "2001-01-01T00:00:00Z"),
            Ok(dt("2001-01-01T01:30:00Z"))
        );
        assert_eq!(
            add("s", -1, "2001-01-01T00:00:00Z"),
            Ok(dt("2000-12-31T23:59:59Z"))
        );
        assert_eq!(
            add("d", 0, "2001-01-01T00:00:00.5Z"),
            Ok(dt("2001-01-01T00:00:00.5Z"))
        );
        for (i, v) in [
            ("s", i64::MAX),
            ("s", i64::MIN),
            ("yyyy", i64::MAX),
            ("m", i64::MIN),
            ("yyyy", 8000),
            ("ww", i64::MAX),
        ] {
            assert_eq!(code(add(i, v, "2001-01-01T00:00:00Z")), "E0503", "{i} {v}");
        }
        for bad in ["", "x", "days", "mm", "hh"] {
            assert_eq!(code(add(bad, 1, "2001-01-01T00:00:00Z")), "E0503", "{bad}");
        }
        assert_eq!(
            code(call(
                "DateAdd",
                &[s("d"), s("1"), dt("2001-01-01T00:00:00Z")]
            )),
            "E0502"
        );
    }

    #[test]
    fn format_examples() {
        assert_eq!(
            fmt("2007-12-25T00:00:00Z", "yyyy-MM-dd"),
            Ok("2007-12-25".into())
        );
        assert_eq!(
            fmt("2014-09-05T08:14:53Z", "yyyyMMddHHmmss.0Z"),
            Ok("20140905081453.0Z".into())
        );
        assert_eq!(
            fmt("2012-01-01T23:00:00Z", "dd.MM.yyyy HH:mm"),
            Ok("01.01.2012 23:00".into())
        );
    }

    #[test]
    fn format_specifiers() {
        let t = "2007-03-04T05:06:07.1234567Z"; // a Sunday
        let cases = [
            ("d/M/y", "4/3/7"),
            ("dd/MM/yy", "04/03/07"),
            ("yyy", "2007"),
            ("yyyyy", "02007"),
            ("ddd dddd ddddd", "Sun Sunday Sunday"),
            ("MMM MMMM MMMMM", "Mar March March"),
            ("h hh hhh H HH", "5 05 05 5 05"),
            ("m mm s ss", "6 06 7 07"),
            (
                "f ff fff ffff fffff ffffff fffffff",
                "1 12 123 1234 12345 123456 1234567",
            ),
            ("F FF FFFFFFF", "1 12 1234567"),
            ("t tt", "A AM"),
            ("gg", "A.D."),
            ("z zz zzz K", "+0 +00 +00:00 Z"),
            ("'yyyy' \"MM\" \\d", "yyyy MM d"),
            ("'it''s'", "its"),
            ("'a\\'b'", "a'b"),
            ("%d", "4"),
            ("%M", "3"),
            ("HH:mm:ss", "05:06:07"),
            ("Week: dddd!", "Week: Sunday!"),
            ("日付 yyyy", "日付 2007"),
        ];
        for (f, want) in cases {
            assert_eq!(fmt(t, f), Ok(want.into()), "{f}");
        }
        assert_eq!(fmt("2007-03-04T17:00:00Z", "h tt t"), Ok("5 PM P".into()));
        assert_eq!(fmt("2007-03-04T00:00:00Z", "hh tt"), Ok("12 AM".into()));
        assert_eq!(fmt("2007-03-04T12:00:00Z", "hh tt"), Ok("12 PM".into()));
        assert_eq!(fmt("2007-03-04T05:06:07Z", "ss.FFF"), Ok("07".into()));
        assert_eq!(fmt("2007-03-04T05:06:07.5Z", "ss.FFF"), Ok("07.5".into()));
        assert_eq!(fmt("2007-03-04T05:06:07Z", "ss.fff"), Ok("07.000".into()));
        assert_eq!(fmt("2009-03-04T05:06:07Z", "yy"), Ok("09".into()));
        assert_eq!(fmt("2009-03-04T05:06:07Z", "%y"), Ok("9".into()));
    }

    #[test]
    fn format_standard() {
        let t = "2007-03-04T05:06:07.1234567Z";
        let cases = [
            ("", "03/04/2007 05:06:07"),
            ("d", "03/04/2007"),
            ("D", "Sunday, 04 March 2007"),
            ("f", "Sunday, 04 March 2007 05:06"),
            ("F", "Sunday, 04 March 2007 05:06:07"),
            ("g", "03/04/2007 05:06"),
            ("G", "03/04/2007 05:06:07"),
            ("M", "March 04"),
            ("o", "2007-03-04T05:06:07.1234567Z"),
            ("R", "Sun, 04 Mar 2007 05:06:07 GMT"),
            ("s", "2007-03-04T05:06:07"),
            ("t", "05:06"),
            ("T", "05:06:07"),
            ("u", "2007-03-04 05:06:07Z"),
            ("U", "Sunday, 04 March 2007 05:06:07"),
            ("Y", "2007 March"),
        ];
        for (f, want) in cases {
            assert_eq!(fmt(t, f), Ok(want.into()), "{f}");
        }
    }

    #[test]
    fn format_errors() {
        let t = "2007-03-04T05:06:07Z";
        for bad in [
            "x", "'abc", "yyyy'", "abc\\", "%", "%%", "ffffffff", "FFFFFFFF", "\"a\\",
        ] {
            assert_eq!(fmt(t, bad), Err("E0503".into()), "{bad}");
        }
        assert_eq!(
            code(call("FormatDateTime", &[s("2007"), s("yyyy")])),
            "E0502"
        );
    }

    #[test]
    fn format_size_limit() {
        let mut ctx = Ctx::fixed().with_limits(crate::builtins::ctx::Limits {
            max_bytes: 64,
            ..Default::default()
        });
        let huge = "y".repeat(100_000);
        let r = format_date_time(&mut ctx, &[dt("2007-03-04T05:06:07Z"), s(&huge)]);
        assert_eq!(r.unwrap_err().code, "E0510");
        let many = "dddd ".repeat(100);
        let r = format_date_time(&mut ctx, &[dt("2007-03-04T05:06:07Z"), s(&many)]);
        assert_eq!(r.unwrap_err().code, "E0510");
    }
}
