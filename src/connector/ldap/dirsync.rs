//! Active Directory's DirSync control (1.2.840.113556.1.4.841, MS-ADTS 3.1.1.3.4.1.3), which
//! ldap3 does not have: the request is BER written here, the response parsed with ldap3's BER
//! reader (never panicking on a malformed value).
//!
//! Request value: `SEQUENCE { flags INTEGER, maxBytes INTEGER, cookie OCTET STRING }`.
//! Response value: `SEQUENCE { moreResults INTEGER, unused INTEGER, cookie OCTET STRING }`.
//!
//! DirSync returns tombstones (`isDeleted`) without the "Show Deleted" control
//! (1.2.840.113556.1.4.417), on Samba as on Active Directory, so that control is not sent.

use ldap3::controls::Control;
use ldap3::controls::RawControl;

/// The DirSync control's OID.
pub const OID: &str = "1.2.840.113556.1.4.841";
/// DirSync flag: parents are returned before their children.
pub const ANCESTORS_FIRST_ORDER: i64 = 0x800;

/// The DirSync request control.
pub fn request(flags: i64, max_bytes: i64, cookie: &[u8]) -> RawControl {
    let mut body = Vec::new();
    integer(&mut body, flags);
    integer(&mut body, max_bytes);
    tlv(&mut body, 0x04, cookie);
    let mut val = Vec::new();
    tlv(&mut val, 0x30, &body);
    RawControl {
        ctype: OID.into(),
        crit: true,
        val: Some(val),
    }
}

/// The DirSync response of a search result: whether there is more, and the new cookie. None
/// when the result has no DirSync control or it does not parse.
pub fn response(ctrls: &[Control]) -> Option<(bool, Vec<u8>)> {
    let raw = ctrls
        .iter()
        .find(|Control(_, raw)| raw.ctype == OID)
        .and_then(|Control(_, raw)| raw.val.as_deref())?;
    parse_response(raw)
}

fn parse_response(raw: &[u8]) -> Option<(bool, Vec<u8>)> {
    let (_, tag) = ldap3::asn1::parse_tag(raw).ok()?;
    let mut parts = tag.expect_constructed()?.into_iter();
    let more = parts.next()?.expect_primitive()?;
    let _unused = parts.next()?;
    let cookie = parts.next()?.expect_primitive()?;
    Some((more.iter().any(|&b| b != 0), cookie))
}

/// A BER INTEGER (two's complement, shortest form).
fn integer(out: &mut Vec<u8>, v: i64) {
    let bytes = v.to_be_bytes();
    let mut start = 0;
    while start < 7 {
        let (b, next) = (bytes[start], bytes[start + 1]);
        if (b == 0 && next & 0x80 == 0) || (b == 0xff && next & 0x80 != 0) {
            start += 1;
        } else {
            break;
        }
    }
    tlv(out, 0x02, &bytes[start..]);
}

/// A BER tag, definite length and content.
fn tlv(out: &mut Vec<u8>, tag: u8, content: &[u8]) {
    out.push(tag);
    let n = content.len();
    if n < 0x80 {
        out.push(n as u8);
    } else {
        let len = (n as u64).to_be_bytes();
        let skip = len.iter().take_while(|&&b| b == 0).count();
        out.push(0x80 | (8 - skip) as u8);
        out.extend_from_slice(&len[skip..]);
    }
    out.extend_from_slice(content);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_is_the_ber_ad_expects() {
        let c = request(0x800, 1_048_576, b"");
        assert_eq!(c.ctype, OID);
        assert_eq!(
            c.val.unwrap(),
            vec![
                0x30, 0x0b, 0x02, 0x02, 0x08, 0x00, 0x02, 0x03, 0x10, 0x00, 0x00, 0x04, 0x00
            ]
        );
        let mut v = Vec::new();
        integer(&mut v, 0x80);
        assert_eq!(v, [0x02, 0x02, 0x00, 0x80]);
        v.clear();
        integer(&mut v, -1);
        assert_eq!(v, [0x02, 0x01, 0xff]);
        let long = request(0, 0, &[7u8; 300]).val.unwrap();
        assert_eq!(&long[..4], &[0x30, 0x82, 0x01, 0x36]);
    }

    #[test]
    fn responses_parse_and_malformed_ones_are_none() {
        // SEQUENCE { 1, 0, "ck" }
        let ok = [
            0x30, 0x0a, 0x02, 0x01, 0x01, 0x02, 0x01, 0x00, 0x04, 0x02, b'c', b'k',
        ];
        assert_eq!(parse_response(&ok), Some((true, b"ck".to_vec())));
        assert_eq!(parse_response(&ok[..5]), None);
        assert_eq!(parse_response(&[0x04, 0x00]), None);
        assert_eq!(parse_response(&[]), None);
    }
}
