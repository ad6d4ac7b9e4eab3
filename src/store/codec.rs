//! The binary form of stored values: compact, typed and quick to read back.
//!
//! Consumes: [`Value`]s and slot-indexed attribute vectors. Produces: bytes, and the values
//! again from them (with a located error for bytes that do not decode). A value is a tag byte
//! and its payload: text, references and binary as a length and bytes, numbers as zigzag
//! varints, timestamps as their nanoseconds, multi-values as a count and values. Attributes are
//! stored sparsely, as (slot, value) pairs for the slots that hold a value, against a stored
//! layout (the slot names) that the store maps to the bundle's slots by name.

use crate::engine::model::Values;
use crate::value::Value;
use std::sync::Arc;

const NULL: u8 = 0;
const AUTHORITATIVE_NULL: u8 = 1;
const IGNORE_THIS_FLOW: u8 = 2;
const STR: u8 = 3;
const NUM: u8 = 4;
const FALSE: u8 = 5;
const BIN: u8 = 6;
const DT: u8 = 7;
const REF: u8 = 8;
const MANY: u8 = 9;
const TRUE: u8 = 10;

fn put_varint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

fn put_bytes(out: &mut Vec<u8>, tag: u8, b: &[u8]) {
    out.push(tag);
    put_varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

/// Appends the encoding of one value.
pub fn put_value(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::Null => out.push(NULL),
        Value::AuthoritativeNull => out.push(AUTHORITATIVE_NULL),
        Value::IgnoreThisFlow => out.push(IGNORE_THIS_FLOW),
        Value::Str(s) => put_bytes(out, STR, s.as_bytes()),
        Value::Ref(s) => put_bytes(out, REF, s.as_bytes()),
        Value::Bin(b) => put_bytes(out, BIN, b),
        Value::Num(n) => {
            out.push(NUM);
            put_varint(out, ((n << 1) ^ (n >> 63)) as u64);
        }
        Value::Bool(b) => out.push(if *b { TRUE } else { FALSE }),
        Value::Dt(t) => {
            out.push(DT);
            out.extend_from_slice(&t.as_nanosecond().to_le_bytes());
        }
        Value::Many(items) => {
            out.push(MANY);
            put_varint(out, items.len() as u64);
            for i in items.iter() {
                put_value(out, i);
            }
        }
    }
}

/// The encoding of one value.
pub fn value_bytes(v: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    put_value(&mut out, v);
    out
}

/// The sparse encoding of an object's values: the count of slots holding a value, then each
/// slot and its value.
pub fn attrs_bytes(values: &Values) -> Vec<u8> {
    let mut out = Vec::new();
    put_attrs(&mut out, values);
    out
}

/// Appends the sparse encoding of an object's values.
fn put_attrs(out: &mut Vec<u8>, values: &Values) {
    put_varint(out, values.count() as u64);
    for (slot, v) in values.present() {
        put_varint(out, slot as u64);
        put_value(out, v);
    }
}

/// How an object's values are framed in their column (schema version 5 on): a frame byte,
/// then either the sparse encoding as it is ([`PLAIN`]) or its length and its LZ4 block
/// compression ([`LZ4`]). Encodings of fewer than [`PACK_MIN`] bytes, and those that LZ4 does
/// not make smaller, are kept plain. Compression takes about a quarter off an object's row
/// (domain suffixes and DN tails repeat within it) and costs a few microseconds per row.
const PLAIN: u8 = 0;
const LZ4: u8 = 1;
const PACK_MIN: usize = 64;
/// The largest encoding a frame may claim (a guard against a corrupt length).
const PACK_MAX: usize = 1 << 30;

/// The framed, possibly compressed, sparse encoding of an object's values (see [`PLAIN`]).
pub fn packed_attrs(values: &Values) -> Vec<u8> {
    let mut plain = vec![PLAIN];
    put_attrs(&mut plain, values);
    let raw = &plain[1..];
    if raw.len() >= PACK_MIN {
        let compressed = lz4_flex::block::compress(raw);
        let mut out = Vec::with_capacity(compressed.len() + 6);
        out.push(LZ4);
        put_varint(&mut out, raw.len() as u64);
        if out.len() + compressed.len() < plain.len() {
            out.extend_from_slice(&compressed);
            return out;
        }
    }
    plain
}

/// The sparse encoding inside a frame written by [`packed_attrs`], decompressed into
/// `scratch` when it was compressed.
pub fn unpack<'a>(framed: &'a [u8], scratch: &'a mut Vec<u8>) -> Result<&'a [u8], String> {
    let Some((&frame, rest)) = framed.split_first() else {
        return Err("an empty value frame".into());
    };
    match frame {
        PLAIN => Ok(rest),
        LZ4 => {
            let mut r = Reader::new(rest);
            let n = r.varint()? as usize;
            if n > PACK_MAX {
                return Err(format!("a value frame claiming {n} bytes"));
            }
            scratch.clear();
            scratch.resize(n, 0);
            match lz4_flex::block::decompress_into(&rest[r.at..], scratch) {
                Ok(got) if got == n => Ok(&scratch[..]),
                Ok(got) => Err(format!("a compressed value frame of {got} bytes, not {n}")),
                Err(e) => Err(format!(
                    "a compressed value frame that does not decompress: {e}"
                )),
            }
        }
        f => Err(format!("unknown value frame {f}")),
    }
}

/// A reader over encoded bytes.
pub struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    pub fn new(bytes: &'a [u8]) -> Reader<'a> {
        Reader { bytes, at: 0 }
    }

    fn fail<T>(&self, what: &str) -> Result<T, String> {
        Err(format!("{what} at byte {}", self.at))
    }

    fn byte(&mut self) -> Result<u8, String> {
        let Some(&b) = self.bytes.get(self.at) else {
            return self.fail("unexpected end");
        };
        self.at += 1;
        Ok(b)
    }

    fn varint(&mut self) -> Result<u64, String> {
        let mut n = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            n |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(n);
            }
        }
        self.fail("varint too long")
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.bytes.len());
        let Some(end) = end else {
            return self.fail("length past the end");
        };
        let b = &self.bytes[self.at..end];
        self.at = end;
        Ok(b)
    }

    fn text(&mut self) -> Result<Arc<str>, String> {
        let n = self.varint()? as usize;
        let b = self.take(n)?;
        match std::str::from_utf8(b) {
            Ok(s) => Ok(s.into()),
            Err(_) => self.fail("text that is not UTF-8"),
        }
    }

    /// Reads one value.
    pub fn value(&mut self) -> Result<Value, String> {
        Ok(match self.byte()? {
            NULL => Value::Null,
            AUTHORITATIVE_NULL => Value::AuthoritativeNull,
            IGNORE_THIS_FLOW => Value::IgnoreThisFlow,
            STR => Value::Str(self.text()?),
            REF => Value::Ref(self.text()?),
            BIN => {
                let n = self.varint()? as usize;
                Value::Bin(self.take(n)?.into())
            }
            NUM => {
                let z = self.varint()?;
                Value::Num(((z >> 1) as i64) ^ -((z & 1) as i64))
            }
            FALSE => Value::Bool(false),
            TRUE => Value::Bool(true),
            DT => {
                let mut b = [0u8; 16];
                b.copy_from_slice(self.take(16)?);
                match jiff::Timestamp::from_nanosecond(i128::from_le_bytes(b)) {
                    Ok(t) => Value::Dt(t),
                    Err(_) => return self.fail("timestamp out of range"),
                }
            }
            MANY => {
                let n = self.varint()? as usize;
                let mut items = Vec::with_capacity(n.min(self.bytes.len()));
                for _ in 0..n {
                    items.push(self.value()?);
                }
                Value::Many(items.into())
            }
            t => return self.fail(&format!("unknown value tag {t}")),
        })
    }

    /// Reads a sparse slot vector as an object's values of `width` slots, mapping each stored
    /// slot through `map` (see [`Reader::attrs`]).
    pub fn slots(&mut self, map: &[Option<usize>], width: usize) -> Result<Values, String> {
        let n = self.varint()?;
        let mut held: Vec<(u32, Value)> = Vec::with_capacity((n as usize).min(width));
        for _ in 0..n {
            let slot = self.varint()? as usize;
            let v = self.value()?;
            if let Some(Some(to)) = map.get(slot)
                && *to < width
            {
                held.push((*to as u32, v));
            }
        }
        if self.at != self.bytes.len() {
            return self.fail("trailing bytes");
        }
        // Stored in slot order of the stored layout; the bundle's order may differ.
        Ok(Values::from_pairs(width, held))
    }

    /// Reads a sparse slot vector into `out`, mapping each stored slot through `map` (a stored
    /// slot the bundle no longer has maps to `None` and is dropped).
    pub fn attrs(&mut self, map: &[Option<usize>], out: &mut [Value]) -> Result<(), String> {
        let n = self.varint()?;
        for _ in 0..n {
            let slot = self.varint()? as usize;
            let v = self.value()?;
            if let Some(Some(to)) = map.get(slot)
                && let Some(place) = out.get_mut(*to)
            {
                *place = v;
            }
        }
        if self.at != self.bytes.len() {
            return self.fail("trailing bytes");
        }
        Ok(())
    }
}

/// Decodes one value.
pub fn value_from(bytes: &[u8]) -> Result<Value, String> {
    Reader::new(bytes).value()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn framed_values_round_trip_plain_and_compressed() {
        let long: Vec<Value> = (0..20)
            .map(|i| Value::Ref(format!("CN=User {i},OU=Users,OU=CORP,DC=contoso,DC=com").into()))
            .collect();
        let short = vec![Value::str("a"), Value::Num(1)];
        for (values, compressed) in [(long, true), (short, false)] {
            let v = Values::from_dense(values.clone());
            let framed = packed_attrs(&v);
            assert_eq!(framed[0] == LZ4, compressed, "{framed:?}");
            let raw = attrs_bytes(&v);
            if compressed {
                assert!(
                    framed.len() < raw.len(),
                    "{} >= {}",
                    framed.len(),
                    raw.len()
                );
            }
            let mut scratch = Vec::new();
            assert_eq!(unpack(&framed, &mut scratch).unwrap(), &raw[..]);
            let map: Vec<Option<usize>> = (0..values.len()).map(Some).collect();
            let back = Reader::new(unpack(&framed, &mut scratch).unwrap())
                .slots(&map, values.len())
                .unwrap();
            assert_eq!(back.to_vec(), values);
        }
    }

    #[test]
    fn damaged_frames_are_errors() {
        let values: Vec<Value> = (0..20)
            .map(|i| Value::str(format!("value number {i} of many")))
            .collect();
        let framed = packed_attrs(&Values::from_dense(values));
        let mut scratch = Vec::new();
        assert!(unpack(&[], &mut scratch).is_err());
        assert!(unpack(&[7, 1, 2], &mut scratch).is_err());
        for cut in 1..framed.len() {
            assert!(
                unpack(&framed[..cut], &mut scratch).is_err(),
                "cut at {cut}"
            );
        }
        let mut claims_more = framed.clone();
        claims_more[1] = claims_more[1].wrapping_add(1);
        assert!(unpack(&claims_more, &mut scratch).is_err());
    }

    #[test]
    fn every_kind_of_value_round_trips() {
        let t = jiff::Timestamp::from_second(1_700_000_000).unwrap();
        let values = vec![
            Value::Null,
            Value::AuthoritativeNull,
            Value::IgnoreThisFlow,
            Value::str(""),
            Value::str("Zoë, \"quoted\"\n"),
            Value::Ref("CN=A\\,B,DC=x".into()),
            Value::Num(0),
            Value::Num(-1),
            Value::Num(i64::MIN),
            Value::Num(i64::MAX),
            Value::Bool(true),
            Value::Bool(false),
            Value::Bin(vec![0u8, 255, 7].into()),
            Value::Dt(t),
            Value::Many(vec![Value::str("a"), Value::Ref("cn=b".into()), Value::Num(3)].into()),
        ];
        for v in &values {
            assert_eq!(&value_from(&value_bytes(v)).unwrap(), v, "{v:?}");
        }
        let bytes = attrs_bytes(&Values::from_dense(values.clone()));
        let mut out = vec![Value::Null; values.len()];
        let map: Vec<Option<usize>> = (0..values.len()).map(Some).collect();
        Reader::new(&bytes).attrs(&map, &mut out).unwrap();
        assert_eq!(out, values);
    }

    #[test]
    fn slots_map_by_layout_and_dropped_slots_are_skipped() {
        let bytes = attrs_bytes(&Values::from_dense(vec![
            Value::str("a"),
            Value::Null,
            Value::str("c"),
        ]));
        let mut out = vec![Value::Null; 2];
        Reader::new(&bytes)
            .attrs(&[Some(1), None, None], &mut out)
            .unwrap();
        assert_eq!(out, vec![Value::Null, Value::str("a")]);
    }

    #[test]
    fn damaged_bytes_are_errors_not_panics() {
        let good = attrs_bytes(&Values::from_dense(vec![
            Value::str("hello"),
            Value::Num(5),
        ]));
        for cut in 0..good.len() {
            let mut out = vec![Value::Null; 2];
            assert!(
                Reader::new(&good[..cut])
                    .attrs(&[Some(0), Some(1)], &mut out)
                    .is_err(),
                "cut at {cut}"
            );
        }
        assert!(value_from(&[42]).is_err());
        assert!(value_from(&[STR, 2, 0xff, 0xfe]).is_err());
        assert!(value_from(&[MANY, 0xff, 0xff, 0xff, 0xff, 0x0f]).is_err());
    }
}
