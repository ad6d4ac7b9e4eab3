//! Distinguished names (RFC 4514): parsing, normalised comparison and ancestry.
//!
//! Consumes: DN strings — DNs of imported objects, reference values, partition and container
//! names of the configuration, the results of `dn` flows. Produces: [`Dn`] (the RDNs of a DN
//! with its canonical text and its comparison key), [`key`] and [`index_key`] (the comparison
//! key alone, for indexes), or a [`DnError`] with the byte offset of the problem.
//!
//! The parser reads RFC 4514 with the tolerance of RFC 2253 and Active Directory: `\` escapes
//! of the specials (`, + " \ < > ; = # space`), hex pairs (`\2C`, several of them forming one
//! UTF-8 character), `#hex` BER values (kept as bytes), multi-valued RDNs (`+`), attribute
//! types in any case and as OIDs (`2.5.4.3`, `OID.2.5.4.3`), spaces around `,` `+` `=`
//! (`CN=Aisha Allen, OU=Users`), `;` as an RDN separator and (RFC 2253) quoted values.
//!
//! Two DNs are the same when their keys are equal: attribute types lower-cased (well-known OIDs
//! by their short names), values unescaped and case-folded (directory DNs compare
//! case-insensitively), the AVAs of a multi-valued RDN sorted, everything re-escaped one way.
//! Ancestry is decided on the RDN sequence, never on a string suffix: `CN=a\,OU=x,DC=y` is not
//! under `OU=x,DC=y`.

#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

use std::borrow::Cow;
use std::fmt;

/// A DN that does not parse: where (byte offset in the input) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnError {
    pub offset: usize,
    pub message: String,
}

impl fmt::Display for DnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "at byte {}: {}", self.offset, self.message)
    }
}

impl std::error::Error for DnError {}

/// A parsed DN: its canonical text and its comparison key, each with the offsets where its
/// RDNs start (leaf first). Equality and hashing are by key.
#[derive(Debug, Clone, Default)]
pub struct Dn {
    text: String,
    text_starts: Vec<u32>,
    key: String,
    key_starts: Vec<u32>,
}

impl PartialEq for Dn {
    fn eq(&self, other: &Dn) -> bool {
        self.key == other.key
    }
}

impl Eq for Dn {}

impl std::hash::Hash for Dn {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.key.hash(state);
    }
}

impl fmt::Display for Dn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Dn {
    /// Parses a DN. The empty string (or spaces) is the root DN, with no RDNs.
    pub fn parse(s: &str) -> Result<Dn, DnError> {
        let mut dn = Dn {
            text: String::with_capacity(s.len()),
            key: String::with_capacity(s.len()),
            ..Dn::default()
        };
        let mut rdn = RdnKey::default();
        walk(s, |ty, value, sep| {
            if rdn.avas.is_empty() {
                dn.text_starts.push(dn.text.len() as u32);
                dn.key_starts.push(dn.key.len() as u32);
            } else {
                dn.text.push('+');
            }
            dn.text.push_str(ty);
            dn.text.push('=');
            write_value(&value, false, &mut dn.text);
            rdn.push(&mut dn.key, ty, &value);
            if sep != Sep::Plus {
                rdn.finish(&mut dn.key);
                if sep == Sep::Comma {
                    dn.text.push(',');
                    dn.key.push(',');
                }
            }
        })?;
        Ok(dn)
    }

    /// The root DN (no RDNs).
    pub fn root() -> Dn {
        Dn::default()
    }

    pub fn is_root(&self) -> bool {
        self.text_starts.is_empty()
    }

    /// The number of RDNs.
    pub fn len(&self) -> usize {
        self.text_starts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.is_root()
    }

    /// The canonical text: attribute types as written, values escaped one way, no spaces
    /// around separators.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The comparison key (see the module documentation).
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The RDNs in canonical text, leaf first.
    pub fn rdns(&self) -> impl Iterator<Item = &str> + '_ {
        (0..self.len()).map(move |i| {
            let start = self.text_starts[i] as usize;
            match self.text_starts.get(i + 1) {
                Some(&next) => &self.text[start..next as usize - 1],
                None => &self.text[start..],
            }
        })
    }

    /// The parent DN; None for the root. The parent of a one-RDN DN is the root.
    pub fn parent(&self) -> Option<Dn> {
        if self.is_root() {
            return None;
        }
        Some(self.suffix(1))
    }

    /// The DN without its first `n` RDNs (`n <= len`).
    fn suffix(&self, n: usize) -> Dn {
        let (Some(&t), Some(&k)) = (self.text_starts.get(n), self.key_starts.get(n)) else {
            return Dn::root();
        };
        Dn {
            text: self.text[t as usize..].to_string(),
            text_starts: self.text_starts[n..].iter().map(|s| s - t).collect(),
            key: self.key[k as usize..].to_string(),
            key_starts: self.key_starts[n..].iter().map(|s| s - k).collect(),
        }
    }

    /// Whether this DN is `ancestor` or below it (ancestor-or-self, by RDN sequence).
    pub fn is_within(&self, ancestor: &Dn) -> bool {
        let (n, m) = (self.len(), ancestor.len());
        if m > n {
            return false;
        }
        if m == 0 {
            return true;
        }
        let start = self.key_starts[n - m] as usize;
        self.key[start..] == ancestor.key
    }

    /// When this DN is the DN with key `ancestor_key` (see [`key`]) or below it: that DN's
    /// number of RDNs. Compares at RDN boundaries only, without parsing the ancestor again.
    pub fn depth_within(&self, ancestor_key: &str) -> Option<usize> {
        if ancestor_key.is_empty() {
            return Some(0);
        }
        let n = self.len();
        (1..=n).find(|&m| self.key[self.key_starts[n - m] as usize..] == *ancestor_key)
    }

    /// Whether this DN is strictly below `ancestor`.
    pub fn is_descendant_of(&self, ancestor: &Dn) -> bool {
        self.len() > ancestor.len() && self.is_within(ancestor)
    }
}

/// The comparison key of a DN (see the module documentation), built in one pass.
pub fn key(s: &str) -> Result<String, DnError> {
    let mut out = String::with_capacity(s.len());
    let mut rdn = RdnKey::default();
    walk(s, |ty, value, sep| {
        rdn.push(&mut out, ty, &value);
        if sep != Sep::Plus {
            rdn.finish(&mut out);
            if sep == Sep::Comma {
                out.push(',');
            }
        }
    })?;
    Ok(out)
}

/// The key of a DN for an index that must take any string: a DN that does not parse keys as
/// itself behind a NUL (which no parsed key contains), so it only ever equals itself. Keys are
/// fixed points: the key of a key is itself.
pub fn index_key(s: &str) -> Box<str> {
    if s.starts_with('\0') {
        return s.into();
    }
    match key(s) {
        Ok(k) => k.into_boxed_str(),
        Err(_) => {
            let mut k = String::with_capacity(s.len() + 1);
            k.push('\0');
            k.push_str(s);
            k.into_boxed_str()
        }
    }
}

/// Whether two DN strings name the same entry (both parse and their keys are equal).
pub fn same(a: &str, b: &str) -> bool {
    a == b || matches!((key(a), key(b)), (Ok(x), Ok(y)) if x == y)
}

/// Escapes an attribute value for a DN (RFC 4514 section 2.4): a backslash before
/// `, + " \ < > ;`, before a leading `#` or space and before a trailing space; NUL as `\00`.
pub fn escape_value(v: &str) -> String {
    let mut out = String::with_capacity(v.len() + 2);
    escape_into(v.chars(), &mut out);
    out
}

/// A problem with a piece of text that is concatenated into an RDN value: the first
/// character that would end the value or start a new one (an unescaped `,` `+` `;`, ...), or
/// an escape that does not complete within the piece, with its byte offset in `piece`.
/// `at_value_start`: the piece starts the value (so a leading `#` would make it a BER value);
/// `quoted`: the piece is inside a quoted value (only `"` and `\` matter there).
pub fn value_piece_problem(
    piece: &str,
    at_value_start: bool,
    quoted: bool,
) -> Option<(usize, String)> {
    let b = piece.as_bytes();
    if at_value_start && !quoted && b.first() == Some(&b'#') {
        return Some((0, "a leading `#` (it would start a BER value)".into()));
    }
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\\' => match (b.get(i + 1), b.get(i + 2)) {
                (Some(h), Some(l)) if h.is_ascii_hexdigit() && l.is_ascii_hexdigit() => i += 3,
                (Some(c), _) if SPECIALS.contains(c) => i += 2,
                (Some(_), _) => return Some((i, "a `\\` that does not start an escape".into())),
                (None, _) => {
                    return Some((i, "a trailing `\\` (it would escape what follows)".into()));
                }
            },
            b'"' => return Some((i, "an unescaped `\"`".into())),
            b',' | b'+' | b';' | b'<' | b'>' if !quoted => {
                return Some((i, format!("an unescaped `{}`", b[i] as char)));
            }
            0 => return Some((i, "a NUL character".into())),
            _ => i += 1,
        }
    }
    None
}

// ------------------------------------------------------------------------------- parser

/// Characters a backslash may escape (besides hex pairs).
const SPECIALS: &[u8] = b",+\"\\<>;=# ";

/// What follows an AVA.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sep {
    /// `+`: another AVA of the same RDN.
    Plus,
    /// `,` or `;`: the next RDN.
    Comma,
    End,
}

/// An attribute value as parsed.
enum RawValue<'a> {
    /// Unescaped text.
    Text(Cow<'a, str>),
    /// The hex digits of a `#` BER value.
    Ber(&'a str),
}

/// Parses `s`, calling `f` with each AVA (attribute type as written, value, what follows).
fn walk<'a>(s: &'a str, mut f: impl FnMut(&'a str, RawValue<'a>, Sep)) -> Result<(), DnError> {
    let mut p = Parser { s, pos: 0 };
    p.skip_spaces();
    if p.pos == s.len() {
        return Ok(());
    }
    loop {
        let ty = p.attr_type()?;
        p.skip_spaces();
        if p.peek() != Some(b'=') {
            return Err(p.error(p.pos, "expected `=` after the attribute type"));
        }
        p.pos += 1;
        p.skip_spaces();
        let value = p.value()?;
        p.skip_spaces();
        let sep = match p.peek() {
            None => Sep::End,
            Some(b',' | b';') => Sep::Comma,
            Some(b'+') => Sep::Plus,
            Some(c) => {
                return Err(p.error(
                    p.pos,
                    format!("expected `,` or `+` after the value, found `{}`", c as char),
                ));
            }
        };
        f(ty, value, sep);
        if sep == Sep::End {
            return Ok(());
        }
        let at = p.pos;
        p.pos += 1;
        p.skip_spaces();
        if p.pos == s.len() {
            return Err(p.error(at, "a separator at the end of the DN"));
        }
    }
}

struct Parser<'a> {
    s: &'a str,
    pos: usize,
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<u8> {
        self.s.as_bytes().get(self.pos).copied()
    }

    fn error(&self, offset: usize, message: impl Into<String>) -> DnError {
        DnError {
            offset,
            message: message.into(),
        }
    }

    fn skip_spaces(&mut self) {
        while self.peek() == Some(b' ') {
            self.pos += 1;
        }
    }

    /// `descr` (a letter, then letters, digits and hyphens) or a numeric OID, optionally
    /// written `OID.1.2.3`.
    fn attr_type(&mut self) -> Result<&'a str, DnError> {
        let b = self.s.as_bytes();
        let start = self.pos;
        match self.peek() {
            Some(c) if c.is_ascii_alphabetic() => {
                while self
                    .peek()
                    .is_some_and(|c| c.is_ascii_alphanumeric() || c == b'-')
                {
                    self.pos += 1;
                }
                let ty = &self.s[start..self.pos];
                if ty.eq_ignore_ascii_case("oid")
                    && self.peek() == Some(b'.')
                    && b.get(self.pos + 1).is_some_and(u8::is_ascii_digit)
                {
                    self.pos += 1;
                    return self.oid();
                }
                Ok(ty)
            }
            Some(c) if c.is_ascii_digit() => self.oid(),
            Some(c) => Err(self.error(
                start,
                format!(
                    "expected an attribute type, found `{}`",
                    char_at(self.s, start, c)
                ),
            )),
            None => Err(self.error(start, "expected an attribute type")),
        }
    }

    /// A numeric OID: numbers separated by single dots, at least two of them.
    fn oid(&mut self) -> Result<&'a str, DnError> {
        let start = self.pos;
        let mut parts = 0;
        loop {
            let n = self.pos;
            while self.peek().is_some_and(|c| c.is_ascii_digit()) {
                self.pos += 1;
            }
            if self.pos == n {
                return Err(self.error(self.pos, "expected a digit in the OID"));
            }
            parts += 1;
            if self.peek() != Some(b'.') {
                break;
            }
            self.pos += 1;
        }
        if parts < 2 {
            return Err(self.error(start, "an OID needs at least two numbers"));
        }
        Ok(&self.s[start..self.pos])
    }

    fn value(&mut self) -> Result<RawValue<'a>, DnError> {
        match self.peek() {
            Some(b'#') => {
                self.pos += 1;
                let start = self.pos;
                while self.peek().is_some_and(|c| c.is_ascii_hexdigit()) {
                    self.pos += 1;
                }
                let hex = &self.s[start..self.pos];
                if hex.is_empty() || hex.len() % 2 == 1 {
                    return Err(self.error(
                        start - 1,
                        "a value starting with `#` must be pairs of hex digits (escape a \
                         leading `#` as `\\#`)",
                    ));
                }
                Ok(RawValue::Ber(hex))
            }
            Some(b'"') => {
                let open = self.pos;
                self.pos += 1;
                let v = self.text(true)?;
                if self.peek() != Some(b'"') {
                    return Err(self.error(open, "a quoted value without its closing `\"`"));
                }
                self.pos += 1;
                Ok(RawValue::Text(v))
            }
            _ => Ok(RawValue::Text(self.text(false)?)),
        }
    }

    /// The text of a value up to its end (a separator, or the closing quote when `quoted`),
    /// unescaped; unescaped spaces at its end are dropped (unquoted).
    fn text(&mut self, quoted: bool) -> Result<Cow<'a, str>, DnError> {
        let b = self.s.as_bytes();
        let start = self.pos;
        let mut buf: Option<Vec<u8>> = None;
        // End of the significant text: in the input (no escape seen) or in `buf`.
        let mut sig_end = start;
        let mut sig_len = 0usize;
        while let Some(c) = self.peek() {
            match c {
                b',' | b';' | b'+' | b'<' | b'>' if quoted => {
                    self.push(&mut buf, c);
                    sig_end = self.pos + 1;
                    sig_len = buf.as_ref().map_or(0, Vec::len);
                    self.pos += 1;
                }
                b'"' if quoted => break,
                b',' | b';' | b'+' => break,
                b'\\' => {
                    let at = self.pos;
                    let byte = match (b.get(at + 1).copied(), b.get(at + 2).copied()) {
                        (Some(h), Some(l)) if h.is_ascii_hexdigit() && l.is_ascii_hexdigit() => {
                            self.pos += 3;
                            (hex(h) << 4) | hex(l)
                        }
                        (Some(e), _) if SPECIALS.contains(&e) => {
                            self.pos += 2;
                            e
                        }
                        (Some(e), _) => {
                            return Err(self.error(
                                at,
                                format!(
                                    "`\\{}` is not an escape: a backslash escapes \
                                     , + \" \\ < > ; = # space or starts a hex pair",
                                    char_at(self.s, at + 1, e)
                                ),
                            ));
                        }
                        (None, _) => return Err(self.error(at, "a DN cannot end with `\\`")),
                    };
                    let v = buf.get_or_insert_with(|| b[start..at].to_vec());
                    v.push(byte);
                    sig_len = v.len();
                }
                b'"' | b'<' | b'>' => {
                    return Err(self.error(
                        self.pos,
                        format!(
                            "`{}` in a value must be escaped as `\\{}`",
                            c as char, c as char
                        ),
                    ));
                }
                0 => return Err(self.error(self.pos, "a NUL character in a value (write `\\00`)")),
                b' ' if !quoted => {
                    self.push(&mut buf, c);
                    self.pos += 1;
                }
                _ => {
                    self.push(&mut buf, c);
                    self.pos += 1;
                    sig_end = self.pos;
                    sig_len = buf.as_ref().map_or(0, Vec::len);
                }
            }
        }
        match buf {
            None => Ok(Cow::Borrowed(&self.s[start..sig_end])),
            Some(mut v) => {
                v.truncate(sig_len);
                String::from_utf8(v).map(Cow::Owned).map_err(|_| {
                    self.error(start, "the hex pairs of the value do not form UTF-8 text")
                })
            }
        }
    }

    fn push(&self, buf: &mut Option<Vec<u8>>, c: u8) {
        if let Some(v) = buf {
            v.push(c);
        }
    }
}

fn hex(c: u8) -> u8 {
    match c {
        b'0'..=b'9' => c - b'0',
        b'a'..=b'f' => c - b'a' + 10,
        _ => c.wrapping_sub(b'A').wrapping_add(10),
    }
}

/// The character at byte `at` for messages (`c` when it is ASCII).
fn char_at(s: &str, at: usize, c: u8) -> char {
    s.get(at..)
        .and_then(|t| t.chars().next())
        .unwrap_or(c as char)
}

// ------------------------------------------------------------------------------- writing

/// Writes an escaped value: folded (lower-cased) for keys, as is for the canonical text.
fn write_value(v: &RawValue<'_>, fold: bool, out: &mut String) {
    match v {
        RawValue::Ber(h) => {
            out.push('#');
            out.extend(h.chars().map(|c| c.to_ascii_lowercase()));
        }
        RawValue::Text(t) if fold => {
            if t.is_ascii() {
                escape_into(t.chars().map(|c| c.to_ascii_lowercase()), out);
            } else {
                escape_into(t.chars().flat_map(char::to_lowercase), out);
            }
        }
        RawValue::Text(t) => escape_into(t.chars(), out),
    }
}

fn escape_into(chars: impl Iterator<Item = char>, out: &mut String) {
    let mut chars = chars.peekable();
    let mut first = true;
    while let Some(c) = chars.next() {
        match c {
            '\0' => out.push_str("\\00"),
            ',' | '+' | '"' | '\\' | '<' | '>' | ';' => {
                out.push('\\');
                out.push(c);
            }
            '#' if first => out.push_str("\\#"),
            ' ' if first || chars.peek().is_none() => out.push_str("\\ "),
            _ => out.push(c),
        }
        first = false;
    }
}

/// Writes the key form of an attribute type: lower case, well-known OIDs by short name.
fn write_type_key(ty: &str, out: &mut String) {
    const OIDS: &[(&str, &str)] = &[
        ("2.5.4.3", "cn"),
        ("2.5.4.6", "c"),
        ("2.5.4.7", "l"),
        ("2.5.4.8", "st"),
        ("2.5.4.9", "street"),
        ("2.5.4.10", "o"),
        ("2.5.4.11", "ou"),
        ("0.9.2342.19200300.100.1.1", "uid"),
        ("0.9.2342.19200300.100.1.25", "dc"),
    ];
    match OIDS.iter().find(|(oid, _)| *oid == ty) {
        Some((_, name)) => out.push_str(name),
        None => out.extend(ty.chars().map(|c| c.to_ascii_lowercase())),
    }
}

/// The key of the RDN being written: AVAs of a multi-valued RDN are sorted when it ends.
#[derive(Default)]
struct RdnKey {
    /// Where each AVA of the current RDN starts in the output.
    avas: Vec<usize>,
}

impl RdnKey {
    fn push(&mut self, out: &mut String, ty: &str, value: &RawValue<'_>) {
        if !self.avas.is_empty() {
            out.push('+');
        }
        self.avas.push(out.len());
        write_type_key(ty, out);
        out.push('=');
        write_value(value, true, out);
    }

    fn finish(&mut self, out: &mut String) {
        if self.avas.len() > 1 {
            let start = self.avas[0];
            let mut parts: Vec<String> = Vec::with_capacity(self.avas.len());
            for (i, &s) in self.avas.iter().enumerate() {
                let end = self.avas.get(i + 1).map_or(out.len(), |&n| n - 1);
                parts.push(out[s..end].to_string());
            }
            parts.sort();
            out.truncate(start);
            out.push_str(&parts.join("+"));
        }
        self.avas.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(s: &str) -> String {
        key(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn dn(s: &str) -> Dn {
        Dn::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    /// (input, canonical text, key)
    const PARSED: &[(&str, &str, &str)] = &[
        // RFC 4514 section 4.
        (
            "UID=jsmith,DC=example,DC=net",
            "UID=jsmith,DC=example,DC=net",
            "uid=jsmith,dc=example,dc=net",
        ),
        (
            "OU=Sales+CN=J.  Smith,DC=example,DC=net",
            "OU=Sales+CN=J.  Smith,DC=example,DC=net",
            "cn=j.  smith+ou=sales,dc=example,dc=net",
        ),
        (
            "CN=James \\\"Jim\\\" Smith\\, III,DC=example,DC=net",
            "CN=James \\\"Jim\\\" Smith\\, III,DC=example,DC=net",
            "cn=james \\\"jim\\\" smith\\, iii,dc=example,dc=net",
        ),
        (
            "CN=Before\\0dAfter,DC=example,DC=net",
            "CN=Before\rAfter,DC=example,DC=net",
            "cn=before\rafter,dc=example,dc=net",
        ),
        (
            "1.3.6.1.4.1.1466.0=#04024869",
            "1.3.6.1.4.1.1466.0=#04024869",
            "1.3.6.1.4.1.1466.0=#04024869",
        ),
        ("CN=Lu\\C4\\8Di\\C4\\87", "CN=Lučić", "cn=lučić"),
        // Spaces around separators, `;`, type case, OIDs.
        (
            "CN=Aisha Allen, OU=Users ,OU = CORP;  dc=contoso,DC=com ",
            "CN=Aisha Allen,OU=Users,OU=CORP,dc=contoso,DC=com",
            "cn=aisha allen,ou=users,ou=corp,dc=contoso,dc=com",
        ),
        (
            "2.5.4.3=Joe,OID.2.5.4.11=X",
            "2.5.4.3=Joe,2.5.4.11=X",
            "cn=joe,ou=x",
        ),
        // Odd values: escaped trailing space, escaped leading `#`, escaped `,`, `=` in values,
        // quoted values, an empty value.
        ("CN=a\\ ,DC=x", "CN=a\\ ,DC=x", "cn=a\\ ,dc=x"),
        ("CN=\\#1,DC=x", "CN=\\#1,DC=x", "cn=\\#1,dc=x"),
        ("CN=\\23a", "CN=\\#a", "cn=\\#a"),
        ("CN=Doe\\, John", "CN=Doe\\, John", "cn=doe\\, john"),
        ("CN=Doe\\2C John", "CN=Doe\\, John", "cn=doe\\, john"),
        ("CN=a=b", "CN=a=b", "cn=a=b"),
        ("CN=a\\=b", "CN=a=b", "cn=a=b"),
        ("OU=\"a,b\" , DC=x", "OU=a\\,b,DC=x", "ou=a\\,b,dc=x"),
        ("CN=", "CN=", "cn="),
        ("CN=\\ \\ x", "CN=\\  x", "cn=\\  x"),
        ("CN=ÄÖ", "CN=ÄÖ", "cn=äö"),
        ("CN=a\\\\", "CN=a\\\\", "cn=a\\\\"),
        ("CN=x\\00y", "CN=x\\00y", "cn=x\\00y"),
        ("CN=A+sn=B+cn=a", "CN=A+sn=B+cn=a", "cn=a+cn=a+sn=b"),
        ("", "", ""),
        ("   ", "", ""),
    ];

    #[test]
    fn parses_and_normalises() {
        for (input, text, want) in PARSED {
            let d = dn(input);
            assert_eq!(d.as_str(), *text, "text of {input}");
            assert_eq!(d.key(), *want, "key of {input}");
            assert_eq!(k(input), *want, "key() of {input}");
            assert_eq!(k(want), *want, "the key of a key is itself: {input}");
            // The canonical text parses back to the same DN.
            assert_eq!(dn(d.as_str()), d, "reparse of {input}");
        }
    }

    /// (input, byte offset of the error)
    const BAD: &[(&str, usize)] = &[
        ("CN", 2),
        ("=x", 0),
        ("CN=a,", 4),
        ("CN=a,,DC=x", 5),
        ("CN=a+", 4),
        ("CN=a\\", 4),
        ("CN=a\\x", 4),
        ("CN=a\\C4", 3),
        ("CN=#zz", 3),
        ("CN=#abc", 3),
        ("CN=a\"b", 4),
        ("CN=a<b", 4),
        ("CN=\"ab", 3),
        ("CN=\"ab\"c", 7),
        ("1=x", 0),
        ("1..2=x", 2),
        ("-CN=x", 0),
        ("C N=x", 2),
        ("CN=a,Nope", 9),
        ("CN=a\0", 4),
    ];

    #[test]
    fn rejects_with_offsets() {
        for (input, at) in BAD {
            match Dn::parse(input) {
                Ok(d) => panic!("{input:?} parsed as {d}"),
                Err(e) => {
                    assert_eq!(e.offset, *at, "{input:?}: {e}");
                    assert!(!e.message.is_empty());
                }
            }
            assert!(key(input).is_err());
            assert!(index_key(input).starts_with('\0'));
            assert_eq!(index_key(&index_key(input)), index_key(input));
        }
    }

    #[test]
    fn equality_is_by_key() {
        let same = [
            (
                "CN=Aisha Allen, OU=Users, OU=CORP, DC=contoso, DC=com",
                "cn=aisha allen,ou=users,ou=corp,dc=contoso,dc=com",
            ),
            ("CN=Doe\\, John,DC=x", "cn=doe\\2c john,dc=X"),
            ("CN=a+OU=b", "ou=B+cn=A"),
            ("2.5.4.3=x", "cn=X"),
            ("CN=x;DC=y", "CN=x,DC=y"),
        ];
        for (a, b) in same {
            assert!(super::same(a, b), "{a} = {b}");
            assert_eq!(dn(a), dn(b));
            assert_eq!(index_key(a), index_key(b));
        }
        let different = [
            ("CN=a\\,OU=b", "CN=a,OU=b"),
            ("CN=a\\ ", "CN=a"),
            ("CN=#0401", "CN=\\#0401"),
            ("CN=a+OU=b", "CN=a,OU=b"),
            ("CN=a", "OU=a"),
        ];
        for (a, b) in different {
            assert!(!super::same(a, b), "{a} <> {b}");
            assert_ne!(dn(a), dn(b));
        }
        assert!(!super::same("CN=a\\,OU=b", "CN=a,OU=b"));
        assert_ne!(index_key("CN=a\\,OU=b"), index_key("CN=a,OU=b"));
    }

    #[test]
    fn ancestry_is_by_rdn_sequence() {
        let corp = dn("OU=CORP,DC=contoso,DC=com");
        let sneaky = dn("CN=Sneaky\\,OU=CORP,DC=contoso,DC=com");
        assert_eq!(sneaky.len(), 3);
        assert!(!sneaky.is_within(&corp));
        assert!(sneaky.is_within(&dn("dc=contoso, dc=com")));
        let aisha = dn("CN=Aisha Allen, OU=Users, OU=CORP, DC=contoso, DC=com");
        assert!(aisha.is_within(&corp));
        assert!(aisha.is_descendant_of(&corp));
        assert!(corp.is_within(&corp));
        assert_eq!(aisha.depth_within(corp.key()), Some(3));
        assert_eq!(aisha.depth_within(""), Some(0));
        assert_eq!(aisha.depth_within(aisha.key()), Some(5));
        assert_eq!(sneaky.depth_within(corp.key()), None);
        assert_eq!(sneaky.depth_within("ou=corp"), None);
        assert!(!corp.is_descendant_of(&corp));
        assert!(corp.is_within(&Dn::root()));
        assert!(!corp.is_within(&aisha));
        // A value ending like the ancestor is not the ancestor.
        assert!(!dn("OU=xCORP,DC=contoso,DC=com").is_within(&corp));
        assert!(!dn("CN=a,OU=CORP\\,DC=contoso,DC=com").is_within(&corp));
        // A multi-valued RDN is one RDN.
        assert!(!dn("CN=a+OU=CORP,DC=contoso,DC=com").is_within(&corp));
        // Escaped backslash then a real separator.
        assert!(dn("CN=a\\\\,OU=CORP,DC=contoso,DC=com").is_within(&corp));
    }

    #[test]
    fn parents_and_rdns() {
        let d = dn("CN=Doe\\, John , OU=Users,DC=x");
        let p = d.parent().unwrap();
        assert_eq!(p.as_str(), "OU=Users,DC=x");
        assert_eq!(p, dn("ou=users,dc=X"));
        assert_eq!(p.len(), 2);
        assert!(d.is_descendant_of(&p));
        assert_eq!(
            d.rdns().collect::<Vec<_>>(),
            ["CN=Doe\\, John", "OU=Users", "DC=x"]
        );
        let top = dn("DC=x");
        assert_eq!(top.parent(), Some(Dn::root()));
        assert!(Dn::root().parent().is_none());
        assert!(Dn::root().is_root());
        assert_eq!(p.parent().unwrap().parent().unwrap(), Dn::root());
    }

    #[test]
    fn escaping_round_trips() {
        for v in [
            "Doe, John",
            " x ",
            "#1",
            "a+b;c<d>e\"f\\g",
            "plain",
            "",
            "x\0y",
            "ünï",
        ] {
            let text = format!("CN={}", escape_value(v));
            let d = dn(&text);
            assert_eq!(d.as_str(), text, "{v:?}");
            assert_eq!(d.len(), 1, "{v:?}");
        }
    }

    #[test]
    fn value_pieces() {
        assert_eq!(value_piece_problem("Ann Lee", true, false), None);
        assert_eq!(value_piece_problem("Lee\\, Ann", true, false), None);
        assert_eq!(value_piece_problem("a\\2Cb", true, false), None);
        assert_eq!(value_piece_problem("a=b", false, false), None);
        assert_eq!(
            value_piece_problem("a,OU=Admins", true, false).map(|p| p.0),
            Some(1)
        );
        assert_eq!(
            value_piece_problem("a+b", true, false).map(|p| p.0),
            Some(1)
        );
        assert_eq!(
            value_piece_problem("a;b", true, false).map(|p| p.0),
            Some(1)
        );
        assert_eq!(
            value_piece_problem("ab\\", true, false).map(|p| p.0),
            Some(2)
        );
        assert_eq!(
            value_piece_problem("a\\q", true, false).map(|p| p.0),
            Some(1)
        );
        assert_eq!(value_piece_problem("#1", true, false).map(|p| p.0), Some(0));
        assert_eq!(value_piece_problem("#1", false, false), None);
        assert_eq!(value_piece_problem("a,b", true, true), None);
        assert_eq!(
            value_piece_problem("a\"b", true, true).map(|p| p.0),
            Some(1)
        );
    }
}
