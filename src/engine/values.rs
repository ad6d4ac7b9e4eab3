//! An object's values by slot, stored sparsely.
//!
//! Consumes: dense slot vectors (`Vec<Value>`, one entry per attribute of the object's type,
//! `Value::Null` where the object has no value) from import, sync and the store. Produces:
//! [`Values`], which keeps only the slots that hold a value, in slot order, in one shared
//! allocation. An Active Directory user has values in a fifth of its type's 119 slots, a
//! metaverse person in a sixth of 182: stored densely, the slots were two thirds of the state's
//! memory. Reading a slot is a binary search over the values present; [`Values::to_vec`] lays
//! them out densely again for the evaluators, which address attributes by slot.

use crate::value::Value;
use std::sync::Arc;

/// What an absent slot reads as.
static NULL: Value = Value::Null;

/// An object's values by slot: the width of its type's layout and the slots that hold a
/// value. A clone is a reference count, so a connector-space object's confirmed and current
/// values are one allocation while they are equal.
#[derive(Clone)]
pub struct Values {
    width: u32,
    entries: Arc<[(u32, Value)]>,
}

impl Values {
    /// `width` slots, none holding a value.
    pub fn new(width: usize) -> Values {
        Values {
            width: width as u32,
            entries: Arc::from(Vec::new()),
        }
    }

    /// Values from a dense vector (its length is the width).
    pub fn from_dense(dense: Vec<Value>) -> Values {
        let width = dense.len() as u32;
        let entries: Vec<(u32, Value)> = dense
            .into_iter()
            .enumerate()
            .filter(|(_, v)| !matches!(v, Value::Null))
            .map(|(s, v)| (s as u32, v))
            .collect();
        Values {
            width,
            entries: Arc::from(entries),
        }
    }

    /// Values from `(slot, value)` pairs in any order; nulls and slots beyond `width` are left
    /// out, and of two values for one slot the last is kept.
    pub fn from_pairs(width: usize, mut pairs: Vec<(u32, Value)>) -> Values {
        pairs.retain(|(s, v)| (*s as usize) < width && !matches!(v, Value::Null));
        if !pairs.is_sorted_by(|a, b| a.0 < b.0) {
            pairs.reverse();
            pairs.sort_by_key(|p| p.0);
            pairs.dedup_by_key(|p| p.0);
        }
        Values {
            width: width as u32,
            entries: Arc::from(pairs),
        }
    }

    /// The number of slots (the width of the type's layout).
    pub fn len(&self) -> usize {
        self.width as usize
    }

    pub fn is_empty(&self) -> bool {
        self.width == 0
    }

    /// The value of `slot` (`Value::Null` when it holds none); `None` beyond the width.
    pub fn get(&self, slot: usize) -> Option<&Value> {
        if slot >= self.width as usize {
            return None;
        }
        Some(self.value(slot))
    }

    fn value(&self, slot: usize) -> &Value {
        match self.entries.binary_search_by_key(&(slot as u32), |e| e.0) {
            Ok(i) => &self.entries[i].1,
            Err(_) => &NULL,
        }
    }

    /// Every slot's value in slot order, `Value::Null` where there is none.
    pub fn iter(&self) -> Iter<'_> {
        Iter {
            slot: 0,
            width: self.width as usize,
            entries: &self.entries,
        }
    }

    /// The slots that hold a value, with their values, in slot order.
    pub fn present(&self) -> impl ExactSizeIterator<Item = (usize, &Value)> + '_ {
        self.entries.iter().map(|(s, v)| (*s as usize, v))
    }

    /// The number of slots that hold a value.
    pub fn count(&self) -> usize {
        self.entries.len()
    }

    /// The values laid out densely, one per slot.
    pub fn to_vec(&self) -> Vec<Value> {
        let mut out = vec![Value::Null; self.width as usize];
        for (s, v) in self.entries.iter() {
            out[*s as usize] = v.clone();
        }
        out
    }

    /// The values laid out densely for reading, in a buffer of the thread's that returns to it
    /// when the [`Dense`] is dropped: only the slots that hold a value are written and reset,
    /// so laying out an object costs its values, not its type's width.
    pub fn dense(&self) -> Dense<'_> {
        let mut buf = POOL.with(|p| p.borrow_mut().pop()).unwrap_or_default();
        if buf.len() < self.width as usize {
            buf.resize(self.width as usize, Value::Null);
        }
        for (s, v) in self.entries.iter() {
            buf[*s as usize] = v.clone();
        }
        Dense { buf, src: self }
    }

    /// Whether the two share one allocation (and so are equal).
    pub fn ptr_eq(a: &Values, b: &Values) -> bool {
        a.width == b.width && Arc::ptr_eq(&a.entries, &b.entries)
    }

    /// Whether the values equal a dense vector's.
    pub fn eq_dense(&self, dense: &[Value]) -> bool {
        self.eq_dense_but(dense, usize::MAX)
    }

    /// Whether these values equal `dense` in every slot but `skip` (every slot when `skip` is
    /// beyond the width).
    pub fn eq_dense_but(&self, dense: &[Value], skip: usize) -> bool {
        if dense.len() != self.width as usize {
            return false;
        }
        let mut entries = self.entries.iter().peekable();
        for (s, v) in dense.iter().enumerate() {
            let held = match entries.peek() {
                Some((es, ev)) if *es as usize == s => {
                    entries.next();
                    Some(ev)
                }
                _ => None,
            };
            let same = match held {
                Some(ev) => ev == v,
                None => matches!(v, Value::Null),
            };
            if s != skip && !same {
                return false;
            }
        }
        true
    }

    /// Makes each value of `dense` that equals this object's value in its slot a clone of
    /// that value, so the two share their texts and lists instead of holding equal copies (a
    /// read that shows what an object already holds keeps what it holds).
    pub fn share_into(&self, dense: &mut [Value]) {
        if dense.len() != self.width as usize {
            return;
        }
        for (s, v) in self.entries.iter() {
            if let Some(d) = dense.get_mut(*s as usize)
                && *d == *v
            {
                *d = v.clone();
            }
        }
    }

    /// Sets one slot's value (`Value::Null` removes it); the values are copied first when
    /// they are shared. Panics beyond the width.
    pub fn set(&mut self, slot: usize, value: Value) {
        assert!(
            slot < self.width as usize,
            "slot {slot} beyond the width {}",
            self.width
        );
        let mut pairs = self.entries.to_vec();
        match pairs.binary_search_by_key(&(slot as u32), |e| e.0) {
            Ok(i) if matches!(value, Value::Null) => {
                pairs.remove(i);
            }
            Ok(i) => pairs[i].1 = value,
            Err(_) if matches!(value, Value::Null) => return,
            Err(i) => pairs.insert(i, (slot as u32, value)),
        }
        self.entries = Arc::from(pairs);
    }
}

impl Default for Values {
    fn default() -> Values {
        Values::new(0)
    }
}

impl From<Vec<Value>> for Values {
    fn from(dense: Vec<Value>) -> Values {
        Values::from_dense(dense)
    }
}

impl std::ops::Index<usize> for Values {
    type Output = Value;

    /// The value of `slot` (`Value::Null` when it holds none). Panics beyond the width, as a
    /// slice does.
    fn index(&self, slot: usize) -> &Value {
        assert!(
            slot < self.width as usize,
            "slot {slot} beyond the width {}",
            self.width
        );
        self.value(slot)
    }
}

impl PartialEq for Values {
    fn eq(&self, other: &Values) -> bool {
        self.width == other.width
            && (Arc::ptr_eq(&self.entries, &other.entries) || self.entries == other.entries)
    }
}

impl PartialEq<[Value]> for Values {
    fn eq(&self, other: &[Value]) -> bool {
        self.eq_dense(other)
    }
}

impl PartialEq<Vec<Value>> for Values {
    fn eq(&self, other: &Vec<Value>) -> bool {
        self.eq_dense(other)
    }
}

impl std::fmt::Debug for Values {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map()
            .entries(self.entries.iter().map(|(s, v)| (s, v)))
            .finish()
    }
}

impl<'a> IntoIterator for &'a Values {
    type Item = &'a Value;
    type IntoIter = Iter<'a>;
    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

thread_local! {
    /// Dense buffers ready for [`Values::dense`], every slot `Value::Null`.
    static POOL: std::cell::RefCell<Vec<Vec<Value>>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// An object's values laid out densely ([`Values::dense`]): a slice indexed by slot.
pub struct Dense<'a> {
    buf: Vec<Value>,
    src: &'a Values,
}

impl std::ops::Deref for Dense<'_> {
    type Target = [Value];
    fn deref(&self) -> &[Value] {
        &self.buf[..self.src.len()]
    }
}

impl Drop for Dense<'_> {
    fn drop(&mut self) {
        for (s, _) in self.src.entries.iter() {
            self.buf[*s as usize] = Value::Null;
        }
        let buf = std::mem::take(&mut self.buf);
        // A thread that is ending has no pool to return to.
        let _ = POOL.try_with(|p| p.borrow_mut().push(buf));
    }
}

/// Every slot's value in slot order ([`Values::iter`]).
pub struct Iter<'a> {
    slot: usize,
    width: usize,
    entries: &'a [(u32, Value)],
}

impl<'a> Iterator for Iter<'a> {
    type Item = &'a Value;

    fn next(&mut self) -> Option<&'a Value> {
        if self.slot >= self.width {
            return None;
        }
        let s = self.slot;
        self.slot += 1;
        match self.entries.first() {
            Some((es, v)) if *es as usize == s => {
                self.entries = &self.entries[1..];
                Some(v)
            }
            _ => Some(&NULL),
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.width - self.slot;
        (n, Some(n))
    }
}

impl ExactSizeIterator for Iter<'_> {}

#[cfg(test)]
mod tests {
    use super::*;

    fn dense() -> Vec<Value> {
        vec![
            Value::Null,
            Value::from("a"),
            Value::Null,
            Value::Num(3),
            Value::IgnoreThisFlow,
        ]
    }

    #[test]
    fn dense_values_round_trip_and_read_by_slot() {
        let v = Values::from_dense(dense());
        assert_eq!(v.len(), 5);
        assert_eq!(v.count(), 3, "a flow's IgnoreThisFlow is a value to keep");
        assert_eq!(v.to_vec(), dense());
        assert_eq!(v.iter().cloned().collect::<Vec<_>>(), dense());
        assert_eq!(v[1], Value::from("a"));
        assert_eq!(v[2], Value::Null);
        assert_eq!(v.get(4), Some(&Value::IgnoreThisFlow));
        assert_eq!(v.get(5), None);
        assert_eq!(
            v.present().map(|(s, _)| s).collect::<Vec<_>>(),
            vec![1, 3, 4]
        );
        assert!(v == dense());
        let mut other = dense();
        other[4] = Value::Null;
        assert!(v != other);
        other[4] = Value::IgnoreThisFlow;
        other.push(Value::Null);
        assert!(v != other, "another width");
    }

    #[test]
    fn values_equal_a_dense_vector_but_one_slot() {
        let v = Values::from_dense(dense());
        let mut other = dense();
        assert!(v.eq_dense_but(&other, 0) && v.eq_dense_but(&other, 3));
        // The one slot may differ either way: a value where there is none, none where there
        // is one, another value.
        other[0] = Value::from("anchor");
        assert!(v.eq_dense_but(&other, 0));
        assert!(!v.eq_dense_but(&other, 1) && !v.eq_dense(&other));
        other[0] = Value::Null;
        other[3] = Value::Num(4);
        assert!(v.eq_dense_but(&other, 3) && !v.eq_dense_but(&other, 4));
        other[3] = Value::Null;
        assert!(v.eq_dense_but(&other, 3) && !v.eq_dense_but(&other, 1));
        // Any other difference, or another width, is a difference.
        let mut other = dense();
        other[2] = Value::Bool(true);
        other[4] = Value::from("x");
        assert!(!v.eq_dense_but(&other, 2) && !v.eq_dense_but(&other, 4));
        let mut other = dense();
        other.push(Value::Null);
        assert!(!v.eq_dense_but(&other, 5));
    }

    #[test]
    fn pairs_are_sorted_deduplicated_and_bounded() {
        let v = Values::from_pairs(
            4,
            vec![
                (3, Value::Num(1)),
                (0, Value::from("x")),
                (3, Value::Num(2)),
                (9, Value::Num(9)),
                (1, Value::Null),
            ],
        );
        assert_eq!(
            v.to_vec(),
            vec![Value::from("x"), Value::Null, Value::Null, Value::Num(2)]
        );
        assert_eq!(v, Values::from_dense(v.to_vec()));
        let mut w = v.clone();
        w.set(1, Value::Bool(true));
        w.set(0, Value::Null);
        w.set(3, Value::Null);
        assert_eq!(
            w.to_vec(),
            vec![Value::Null, Value::Bool(true), Value::Null, Value::Null]
        );
        assert_eq!(
            v[1],
            Value::Null,
            "a clone that is set leaves the original as it was"
        );
    }

    #[test]
    fn dense_layouts_reuse_clean_buffers() {
        let wide = Values::from_dense(dense());
        let narrow = Values::from_dense(vec![Value::Null, Value::Num(7)]);
        {
            let a = wide.dense();
            let b = narrow.dense();
            assert_eq!(&*a, &dense()[..]);
            assert_eq!(&*b, &[Value::Null, Value::Num(7)][..]);
        }
        // The buffers came back cleared: a layout shows only its own values.
        let empty = Values::new(5);
        assert_eq!(&*empty.dense(), &vec![Value::Null; 5][..]);
        assert_eq!(&*narrow.dense(), &[Value::Null, Value::Num(7)][..]);
        assert_eq!(&*wide.dense(), &dense()[..]);
    }

    #[test]
    #[should_panic(expected = "beyond the width")]
    fn indexing_beyond_the_width_panics() {
        let _ = &Values::new(2)[2];
    }
}
