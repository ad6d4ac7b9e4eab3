//! Builtins of the stdlib area `certificate` (see `stdlib/certificate.toml` for the declarations).
//!
//! Consumes: evaluated argument values. Produces: the function results or faults.
//!
//! A certificate argument (`certificateRawData`) is a bin holding DER, or Base64 of the DER: a
//! str, or a bin whose bytes are ASCII Base64 text; PEM armor (`-----BEGIN CERTIFICATE-----`) is
//! accepted around the Base64. Results follow .NET's X509Certificate2, which the sync engine
//! uses: names in the X500DistinguishedName.Name form (RDNs last-encoded first, ", " between
//! them, " + " inside a multi-valued RDN, values quoted when needed), GetNameInfo's search order,
//! hashes and serial numbers in upper-case hex.

use super::conversion::{base64_decode, hex_upper};
use super::{BuiltinFn, Fault, Outcome, args};
use crate::builtins::ctx::Ctx;
use crate::value::{DateTime, Value};
use sha1::{Digest, Sha1};
use std::borrow::Cow;
use x509_cert::Certificate;
use x509_cert::der::asn1::ObjectIdentifier;
use x509_cert::der::{Any, Decode, Encode, Tag, Tagged};
use x509_cert::ext::pkix::name::{GeneralName, GeneralNames};
use x509_cert::name::Name;

/// The implementation of a function of this area, by name.
pub fn lookup(name: &str) -> Option<BuiltinFn> {
    let f: BuiltinFn = match name {
        "CertExtensionOids" => cert_extension_oids,
        "CertFormat" => cert_format,
        "CertFriendlyName" => cert_friendly_name,
        "CertHashString" => cert_hash_string,
        "CertIssuer" => cert_issuer,
        "CertIssuerDN" => cert_issuer_dn,
        "CertIssuerOid" => cert_issuer_oid,
        "CertKeyAlgorithm" => cert_key_algorithm,
        "CertKeyAlgorithmParams" => cert_key_algorithm_params,
        "CertNameInfo" => cert_name_info,
        "CertNotAfter" => cert_not_after,
        "CertNotBefore" => cert_not_before,
        "CertPublicKeyOid" => cert_public_key_oid,
        "CertPublicKeyParametersOid" => cert_public_key_parameters_oid,
        "CertSerialNumber" => cert_serial_number,
        "CertSignatureAlgorithmOid" => cert_signature_algorithm_oid,
        "CertSubject" => cert_subject,
        "CertSubjectNameDN" => cert_subject_name_dn,
        "CertSubjectNameOid" => cert_subject_name_oid,
        "CertThumbprint" => cert_thumbprint,
        "CertVersion" => cert_version,
        "IsCert" => is_cert,
        _ => return None,
    };
    Some(f)
}

// ---------------------------------------------------------------------------------------------
// Decoding the argument

/// A decoded certificate and the DER bytes it was decoded from.
struct Cert<'a> {
    der: Cow<'a, [u8]>,
    cert: Certificate,
}

/// Extracts the Base64 body of PEM armor, or returns the text as it is.
fn strip_pem(text: &[u8]) -> &[u8] {
    const BEGIN: &[u8] = b"-----BEGIN";
    const END: &[u8] = b"-----END";
    let Some(start) = find(text, BEGIN) else {
        return text;
    };
    let after_begin = text.get(start + BEGIN.len()..).unwrap_or(&[]);
    // The body starts after the closing "-----" of the BEGIN line.
    let Some(close) = find(after_begin, b"-----") else {
        return text;
    };
    let body = after_begin.get(close + 5..).unwrap_or(&[]);
    match find(body, END) {
        Some(end) => body.get(..end).unwrap_or(&[]),
        None => body,
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The DER bytes of a certificate argument; None for NULL.
fn der_bytes<'a>(ctx: &Ctx, f: &str, v: &'a Value) -> Result<Option<Cow<'a, [u8]>>, Box<Fault>> {
    match v {
        v if v.is_null() => Ok(None),
        // DER starts with a SEQUENCE tag, which is not a Base64 character.
        Value::Bin(b) if b.first() == Some(&0x30) => Ok(Some(Cow::Borrowed(&b[..]))),
        Value::Bin(b) => {
            if b.is_empty() || !b.is_ascii() {
                return Err(not_a_certificate(
                    f,
                    "the binary value is neither DER nor Base64 text",
                ));
            }
            text_der(ctx, f, b).map(|d| Some(Cow::Owned(d)))
        }
        Value::Str(s) => text_der(ctx, f, s.as_bytes()).map(|d| Some(Cow::Owned(d))),
        other => Err(Fault::type_error(f, "bin or str", other)),
    }
}

/// Base64 (optionally PEM-armored) text → DER bytes.
fn text_der(ctx: &Ctx, f: &str, text: &[u8]) -> Result<Vec<u8>, Box<Fault>> {
    let body = strip_pem(text);
    base64_decode(ctx, f, body).map_err(|e| {
        if e.code == "E0503" {
            not_a_certificate(f, "the text is not Base64-encoded DER")
        } else {
            e
        }
    })
}

fn not_a_certificate(f: &str, why: impl std::fmt::Display) -> Box<Fault> {
    Fault::invalid(
        f,
        format!("the value is not an X.509 certificate: {why} (guard with IsCert)"),
    )
}

/// Decodes argument `i` as a certificate; None for NULL.
fn cert_arg<'a>(
    ctx: &Ctx,
    f: &str,
    a: &'a [Value],
    i: usize,
) -> Result<Option<Cert<'a>>, Box<Fault>> {
    let Some(der) = der_bytes(ctx, f, args::get(a, i))? else {
        return Ok(None);
    };
    let cert = Certificate::from_der(&der).map_err(|e| not_a_certificate(f, e))?;
    Ok(Some(Cert { der, cert }))
}

/// Runs `g` on the decoded first argument; NULL gives NULL.
fn with_cert(
    ctx: &mut Ctx,
    a: &[Value],
    f: &'static str,
    g: impl FnOnce(&mut Ctx, &Cert<'_>) -> Outcome,
) -> Outcome {
    match cert_arg(ctx, f, a, 0)? {
        Some(c) => g(ctx, &c),
        None => Ok(Value::Null),
    }
}

// ---------------------------------------------------------------------------------------------
// Names

/// The X.500 attribute keys Windows (CertNameToStr) and .NET print; others are `OID.<dotted>`.
fn attribute_key(oid: &ObjectIdentifier) -> String {
    let dotted = oid.to_string();
    let key = match dotted.as_str() {
        "2.5.4.3" => "CN",
        "2.5.4.4" => "SN",
        "2.5.4.5" => "SERIALNUMBER",
        "2.5.4.6" => "C",
        "2.5.4.7" => "L",
        "2.5.4.8" => "S",
        "2.5.4.9" => "STREET",
        "2.5.4.10" => "O",
        "2.5.4.11" => "OU",
        "2.5.4.12" => "T",
        "2.5.4.13" => "Description",
        "2.5.4.17" => "PostalCode",
        "2.5.4.18" => "POBox",
        "2.5.4.20" => "Phone",
        "2.5.4.24" => "X21Address",
        "2.5.4.42" => "G",
        "2.5.4.43" => "I",
        "2.5.4.46" => "dnQualifier",
        "1.2.840.113549.1.9.1" => "E",
        "1.2.840.113549.1.9.2" => "UnstructuredName",
        "1.2.840.113549.1.9.8" => "UnstructuredAddress",
        "0.9.2342.19200300.100.1.25" => "DC",
        _ => return format!("OID.{dotted}"),
    };
    key.to_string()
}

/// The text of a directory string value (BMPString, IA5String, NumericString, PrintableString,
/// UTF8String, T61String), trailing NULs removed; None for other types. Err for bytes that are
/// not valid in their string type.
fn string_value(v: &Any) -> Option<Result<String, ()>> {
    let bytes = v.value();
    let text = match v.tag() {
        Tag::Utf8String => std::str::from_utf8(bytes)
            .map(str::to_string)
            .map_err(|_| ()),
        Tag::PrintableString | Tag::Ia5String | Tag::NumericString => {
            if bytes.is_ascii() {
                Ok(bytes.iter().map(|&b| char::from(b)).collect())
            } else {
                Err(())
            }
        }
        // T61: UTF-8 when it decodes as such, Latin-1 otherwise (as .NET).
        Tag::TeletexString => Ok(match std::str::from_utf8(bytes) {
            Ok(s) => s.to_string(),
            Err(_) => bytes.iter().map(|&b| char::from(b)).collect(),
        }),
        Tag::BmpString => {
            if bytes.len().is_multiple_of(2) {
                let units = bytes
                    .chunks_exact(2)
                    .map(|p| u16::from_be_bytes([p[0], p[1]]));
                char::decode_utf16(units)
                    .collect::<Result<String, _>>()
                    .map_err(|_| ())
            } else {
                Err(())
            }
        }
        _ => return None,
    };
    Some(text.map(|t| t.trim_end_matches('\0').to_string()))
}

/// .NET's quoting rule: empty, leading/trailing white space, or one of `,+="\n<>#;`.
fn needs_quoting(s: &str) -> bool {
    let ws = |c: char| c == ' ' || ('\t'..='\r').contains(&c);
    s.is_empty()
        || s.starts_with(ws)
        || s.ends_with(ws)
        || s.contains([',', '+', '=', '"', '\n', '<', '>', '#', ';'])
}

/// The .NET X500DistinguishedName.Name form of a name ("CN=idflow test, O=Contoso"); an empty
/// string when a value cannot be decoded (as .NET).
fn dn_string(name: &Name) -> String {
    dn_string_inner(name).unwrap_or_default()
}

fn dn_string_inner(name: &Name) -> Option<String> {
    let rdns: Vec<_> = name.iter_rdn().collect();
    let mut out = String::new();
    for (i, rdn) in rdns.iter().rev().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        for (j, atv) in rdn.iter().enumerate() {
            if j > 0 {
                out.push_str(" + ");
            }
            out.push_str(&attribute_key(&atv.oid));
            out.push('=');
            match string_value(&atv.value) {
                Some(Ok(text)) => {
                    if needs_quoting(&text) {
                        out.push('"');
                        out.push_str(&text.replace('"', "\"\""));
                        out.push('"');
                    } else {
                        out.push_str(&text);
                    }
                }
                Some(Err(())) => return None,
                None => {
                    // Binary fallback: an OCTET STRING's contents, else the whole encoding.
                    out.push('#');
                    if atv.value.tag() == Tag::OctetString {
                        out.push_str(&hex_upper(atv.value.value()));
                    } else {
                        out.push_str(&hex_upper(&atv.value.to_der().ok()?));
                    }
                }
            }
        }
    }
    Some(out)
}

/// The (OID, text) pairs of a name, last RDN first, as .NET's GetNameInfo reads them (values of
/// other types are skipped).
fn reverse_rdns(name: &Name) -> Vec<(String, String)> {
    let rdns: Vec<_> = name.iter_rdn().collect();
    let mut out = Vec::new();
    for rdn in rdns.iter().rev() {
        for atv in rdn.iter() {
            if atv.value.tag() == Tag::NumericString {
                continue;
            }
            if let Some(Ok(text)) = string_value(&atv.value) {
                out.push((atv.oid.to_string(), text));
            }
        }
    }
    out
}

const OID_CN: &str = "2.5.4.3";
const OID_OU: &str = "2.5.4.11";
const OID_O: &str = "2.5.4.10";
const OID_EMAIL: &str = "1.2.840.113549.1.9.1";
const OID_SUBJECT_ALT_NAME: &str = "2.5.29.17";
const OID_ISSUER_ALT_NAME: &str = "2.5.29.18";
const OID_UPN: &str = "1.3.6.1.4.1.311.20.2.3";

/// The X509NameType values.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum NameType {
    Simple,
    Email,
    Upn,
    Dns,
    DnsFromAlternativeName,
    Url,
}

fn name_type(s: &str) -> Option<NameType> {
    const TYPES: [(&str, NameType); 6] = [
        ("SimpleName", NameType::Simple),
        ("EmailName", NameType::Email),
        ("UpnName", NameType::Upn),
        ("DnsName", NameType::Dns),
        ("DnsFromAlternativeName", NameType::DnsFromAlternativeName),
        ("UrlName", NameType::Url),
    ];
    TYPES
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(s))
        .map(|(_, t)| *t)
}

/// GetSimpleNameInfo: the first CN (last RDN first), else OU, O, e-mail, any other value.
fn simple_name(name: &Name) -> Option<String> {
    let (mut ou, mut o, mut email, mut other) = (None, None, None, None);
    for (oid, value) in reverse_rdns(name) {
        match oid.as_str() {
            OID_CN => return Some(value),
            OID_OU => ou = Some(value),
            OID_O => o = Some(value),
            OID_EMAIL => email = Some(value),
            _ => {
                if other.is_none() {
                    other = Some(value);
                }
            }
        }
    }
    ou.or(o).or(email).or(other)
}

/// The first matching entry of the alternative-name extensions (`ext_oid`); entries that do not
/// decode are skipped.
fn alt_name(cert: &Certificate, ext_oid: &str, kind: NameType) -> Option<String> {
    let exts = cert.tbs_certificate().extensions()?;
    for ext in exts.iter().filter(|e| e.extn_id.to_string() == ext_oid) {
        let Ok(names) = GeneralNames::from_der(ext.extn_value.as_bytes()) else {
            continue;
        };
        for n in names {
            let found = match (&n, kind) {
                (GeneralName::Rfc822Name(s), NameType::Simple | NameType::Email)
                | (GeneralName::DnsName(s), NameType::Dns | NameType::DnsFromAlternativeName)
                | (GeneralName::UniformResourceIdentifier(s), NameType::Url) => Some(s.to_string()),
                (GeneralName::OtherName(other), NameType::Upn)
                    if other.type_id.to_string() == OID_UPN =>
                {
                    match string_value(&other.value) {
                        Some(Ok(s)) if other.value.tag() == Tag::Utf8String => Some(s),
                        _ => None,
                    }
                }
                _ => None,
            };
            if found.is_some() {
                return found;
            }
        }
    }
    None
}

/// X509Certificate2.GetNameInfo(nameType, forIssuer); "" when the certificate has no such name.
fn name_info(cert: &Certificate, kind: NameType, issuer: bool) -> String {
    let tbs = cert.tbs_certificate();
    let name = if issuer { tbs.issuer() } else { tbs.subject() };
    if kind == NameType::Simple
        && let Some(s) = simple_name(name)
    {
        return s;
    }
    let ext = if issuer {
        OID_ISSUER_ALT_NAME
    } else {
        OID_SUBJECT_ALT_NAME
    };
    if let Some(s) = alt_name(cert, ext, kind) {
        return s;
    }
    let fallback = match kind {
        NameType::Email => OID_EMAIL,
        NameType::Dns => OID_CN,
        _ => return String::new(),
    };
    reverse_rdns(name)
        .into_iter()
        .find(|(oid, _)| oid == fallback)
        .map(|(_, v)| v)
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------
// The functions

fn cert_extension_oids(ctx: &mut Ctx, a: &[Value]) -> Outcome {
    with_cert(ctx, a, "CertExtensionOids", |_, c| {
        let oids = c
            .cert
            .tbs_certificate()
            .extensions()
            .map(|exts| {
                exts.iter()
                    .filter(|e| e.critical)
                    .map(|e| Value::str(e.extn_id.to_string()))
                    .collect()
            })
            .unwrap_or_default();
        Ok(Value::many(oids))
    })
}

fn cert_format(ctx: &mut Ctx, a: &[Value]) -> Outcome {
    with_cert(ctx, a, "CertFormat", |_, _| Ok(Value::str("X509")))
}

fn cert_friendly_name(ctx: &mut Ctx, a: &[Value]) -> Outcome {
    with_cert(ctx, a, "CertFriendlyName", |_, _| Ok(Value::str("")))
}

fn sha1_hex(c: &Cert<'_>) -> Value {
    Value::str(hex_upper(&Sha1::digest(&c.der)))
}

fn cert_hash_string(ctx: &mut Ctx, a: &[Value]) -> Outcome {
    with_cert(ctx, a, "CertHashString", |_, c| Ok(sha1_hex(c)))
}

fn cert_thumbprint(ctx: &mut Ctx, a: &[Value]) -> Outcome {
    with_cert(ctx, a, "CertThumbprint", |_, c| Ok(sha1_hex(c)))
}

fn cert_issuer(ctx: &mut Ctx, a: &[Value]) -> Outcome {
    with_cert(ctx, a, "CertIssuer", |ctx, c| {
        ctx.string(dn_string(c.cert.tbs_certificate().issuer()))
    })
}

fn cert_issuer_dn(ctx: &mut Ctx, a: &[Value]) -> Outcome {
    with_cert(ctx, a, "CertIssuerDN", |ctx, c| {
        ctx.string(dn_string(c.cert.tbs_certificate().issuer()))
    })
}

fn cert_subject(ctx: &mut Ctx, a: &[Value]) -> Outcome {
    with_cert(ctx, a, "CertSubject", |ctx, c| {
        ctx.string(dn_string(c.cert.tbs_certificate().subject()))
    })
}

fn cert_subject_name_dn(ctx: &mut Ctx, a: &[Value]) -> Outcome {
    with_cert(ctx, a, "CertSubjectNameDN", |ctx, c| {
        ctx.string(dn_string(c.cert.tbs_certificate().subject()))
    })
}

/// .NET's X500DistinguishedName of a certificate carries no OID: NULL for a certificate.
fn cert_issuer_oid(ctx: &mut Ctx, a: &[Value]) -> Outcome {
    with_cert(ctx, a, "CertIssuerOid", |_, _| Ok(Value::Null))
}

/// As CertIssuerOid: NULL for a certificate.
fn cert_subject_name_oid(ctx: &mut Ctx, a: &[Value]) -> Outcome {
    with_cert(ctx, a, "CertSubjectNameOid", |_, _| Ok(Value::Null))
}

fn key_algorithm_oid(c: &Cert<'_>) -> Value {
    Value::str(
        c.cert
            .tbs_certificate()
            .subject_public_key_info()
            .algorithm
            .oid
            .to_string(),
    )
}

fn cert_key_algorithm(ctx: &mut Ctx, a: &[Value]) -> Outcome {
    with_cert(ctx, a, "CertKeyAlgorithm", |_, c| Ok(key_algorithm_oid(c)))
}

fn cert_public_key_oid(ctx: &mut Ctx, a: &[Value]) -> Outcome {
    with_cert(ctx, a, "CertPublicKeyOid", |_, c| Ok(key_algorithm_oid(c)))
}

/// .NET builds PublicKey.EncodedParameters with the key algorithm's OID, so this is the key
/// algorithm OID too.
fn cert_public_key_parameters_oid(ctx: &mut Ctx, a: &[Value]) -> Outcome {
    with_cert(ctx, a, "CertPublicKeyParametersOid", |_, c| {
        Ok(key_algorithm_oid(c))
    })
}

/// The DER of the key algorithm parameters in upper-case hex ("0500" for RSA's NULL, the curve
/// OID for EC); "" when the algorithm has no parameters.
fn cert_key_algorithm_params(ctx: &mut Ctx, a: &[Value]) -> Outcome {
    const F: &str = "CertKeyAlgorithmParams";
    with_cert(ctx, a, F, |ctx, c| {
        let params = &c
            .cert
            .tbs_certificate()
            .subject_public_key_info()
            .algorithm
            .parameters;
        let hex = match params {
            Some(p) => hex_upper(
                &p.to_der()
                    .map_err(|e| Fault::invalid(F, format!("cannot encode the parameters: {e}")))?,
            ),
            None => String::new(),
        };
        ctx.string(hex)
    })
}

/// CertNameInfo(cert, x509NameType, includesIssuerName).
fn cert_name_info(ctx: &mut Ctx, a: &[Value]) -> Outcome {
    const F: &str = "CertNameInfo";
    let Some(kind) = args::str(F, a, 1)? else {
        return Ok(Value::Null);
    };
    let kind = name_type(kind).ok_or_else(|| {
        Fault::invalid(
            F,
            format!(
                "unknown X509NameType \"{}\" (SimpleName, EmailName, UpnName, DnsName, \
                 DnsFromAlternativeName or UrlName)",
                kind.chars().take(40).collect::<String>()
            ),
        )
    })?;
    let Some(issuer) = args::bool(F, a, 2)? else {
        return Ok(Value::Null);
    };
    with_cert(ctx, a, F, |ctx, c| {
        ctx.string(name_info(&c.cert, kind, issuer))
    })
}

fn to_timestamp(f: &str, t: x509_cert::time::Time) -> Outcome {
    let d = t.to_unix_duration();
    let secs = i64::try_from(d.as_secs())
        .map_err(|_| Fault::invalid(f, "the certificate date is out of range"))?;
    DateTime::new(secs, i32::try_from(d.subsec_nanos()).unwrap_or(0))
        .map(Value::Dt)
        .map_err(|_| Fault::invalid(f, "the certificate date is out of range"))
}

fn cert_not_after(ctx: &mut Ctx, a: &[Value]) -> Outcome {
    const F: &str = "CertNotAfter";
    with_cert(ctx, a, F, |_, c| {
        to_timestamp(F, c.cert.tbs_certificate().validity().not_after)
    })
}

fn cert_not_before(ctx: &mut Ctx, a: &[Value]) -> Outcome {
    const F: &str = "CertNotBefore";
    with_cert(ctx, a, F, |_, c| {
        to_timestamp(F, c.cert.tbs_certificate().validity().not_before)
    })
}

/// The serial number's bytes as encoded (a leading 00 sign byte is kept), upper-case hex.
fn cert_serial_number(ctx: &mut Ctx, a: &[Value]) -> Outcome {
    with_cert(ctx, a, "CertSerialNumber", |_, c| {
        Ok(Value::str(hex_upper(
            c.cert.tbs_certificate().serial_number().as_bytes(),
        )))
    })
}

fn cert_signature_algorithm_oid(ctx: &mut Ctx, a: &[Value]) -> Outcome {
    with_cert(ctx, a, "CertSignatureAlgorithmOid", |_, c| {
        Ok(Value::str(c.cert.signature_algorithm().oid.to_string()))
    })
}

fn cert_version(ctx: &mut Ctx, a: &[Value]) -> Outcome {
    with_cert(ctx, a, "CertVersion", |_, c| {
        let v = match c.cert.tbs_certificate().version() {
            x509_cert::Version::V1 => "1",
            x509_cert::Version::V2 => "2",
            x509_cert::Version::V3 => "3",
        };
        Ok(Value::str(v))
    })
}

/// IsCert: True when the value decodes as a certificate; never a fault (NULL, other types,
/// malformed data and oversized input are all False).
fn is_cert(ctx: &mut Ctx, a: &[Value]) -> Outcome {
    Ok(Value::Bool(matches!(
        cert_arg(ctx, "IsCert", a, 0),
        Ok(Some(_))
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;

    /// The stdlib examples' certificate: EC P-256, self-signed, O=Contoso then CN=idflow test.
    const CERT: &str = "MIIBpjCCAUugAwIBAgIUOFs3GJqO5i47o2T6KWVhh2SdJYIwCgYIKoZIzj0EAwIwKDEQMA4GA1UECgwHQ29udG9zbzEUMBIGA1UEAwwLaWRmbG93IHRlc3QwHhcNMjYxMTI2MTMxMjAwWhcNMzYxMTIzMTMxMjAwWjAoMRAwDgYDVQQKDAdDb250b3NvMRQwEgYDVQQDDAtpZGZsb3cgdGVzdDBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABKeVjsFrVJApE24TibF6R/gvQTEvAJN9itWvo1ZmW7cYba7YZOA1MQvAMx6kz1Y/xC9UvNbRur7cq3//PlUXCo6jUzBRMB0GA1UdDgQWBBScjnc7Uhe/Ff1wiMkrT9c87iRCxjAfBgNVHSMEGDAWgBScjnc7Uhe/Ff1wiMkrT9c87iRCxjAPBgNVHRMBAf8EBTADAQH/MAoGCCqGSM49BAMCA0kAMEYCIQCGYZ50R1hlKd3Ow7UrTK3K3RV0V1HedkZNWZuqrvuH4wIhAKhXc/3sjeUMyZDeEqfj/+1U6nlzMeCTDJYgdwdxRRys";

    /// An RSA leaf issued by "C=US, O=Contoso CA, CN=Contoso Root": subject C=SE, ST=Stockholm,
    /// L=Kista, O="Contoso, Ltd", OU=IT+OU=Sales (one RDN), CN=Jöns Ö, emailAddress; serial
    /// 0x8000000000000001; critical basicConstraints and keyUsage; SAN DNS www.contoso.com and
    /// contoso.com, email, URI and a UPN; issuer alt name email ca@contoso.com, DNS
    /// ca.contoso.com.
    const LEAF: &str = "MIIDuzCCA2GgAwIBAgIJAIAAAAAAAAABMAoGCCqGSM49BAMCMDkxCzAJBgNVBAYTAlVTMRMwEQYDVQQKDApDb250b3NvIENBMRUwEwYDVQQDDAxDb250b3NvIFJvb3QwHhcNMjYxMTI2MTMzMTU4WhcNMjcxMTI2MTMzMTU4WjCBlzELMAkGA1UEBhMCU0UxEjAQBgNVBAgMCVN0b2NraG9sbTEOMAwGA1UEBwwFS2lzdGExFTATBgNVBAoMDENvbnRvc28sIEx0ZDEZMAkGA1UECwwCSVQwDAYDVQQLDAVTYWxlczERMA8GA1UEAwwISsO2bnMgw5YxHzAdBgkqhkiG9w0BCQEWEGpvbnNAY29udG9zby5jb20wggEiMA0GCSqGSIb3DQEBAQUAA4IBDwAwggEKAoIBAQDRmC7Dp4xnYdsdo5nBeN4NpcQKgZ5snVOd8GdVRbSkZQLquG4EA752ZRnJBXGJK0NbTAnDrFlhVAqNJsZYpSpZG8CK17jATJIovathkqEiDsbXWteFIJK66u27uu+pfl0Wcm7//9Bm6zjVvwA1SMGmiJoJajFhFwUUPwBtQ2NezTShd2+RC7BKy7WqgEoXbOvFhxi1YR9Mmom3luYmZES/y93MlU7hqe70Pp9fXlvDM/ut6byCZefCCp4goQbpHFBiTUswcau+iQ/Fb25W3bG8C9opvBkK4QCuNBqgrdl3IyzFCRZrAEqKhI8kmLga+dnLz1QM71P5qgIVp4+xX7OrAgMBAAGjggEmMIIBIjAMBgNVHRMBAf8EAjAAMA4GA1UdDwEB/wQEAwIFoDATBgNVHSUEDDAKBggrBgEFBQcDAjCBgQYDVR0RBHoweIIPd3d3LmNvbnRvc28uY29tggtjb250b3NvLmNvbYEQam9uc0Bjb250b3NvLmNvbYYYaHR0cHM6Ly9jb250b3NvLmNvbS9qb25zoCwGCisGAQQBgjcUAgOgHgwcam9uc0Bjb250b3NvLm9ubWljcm9zb2Z0LmNvbTApBgNVHRIEIjAggQ5jYUBjb250b3NvLmNvbYIOY2EuY29udG9zby5jb20wHQYDVR0OBBYEFKEF8BugCzy1QsjTLmaXaOo/3N4HMB8GA1UdIwQYMBaAFMV6WN3FFGQ2VAYidtZS/VkDl3VeMAoGCCqGSM49BAMCA0gAMEUCIGI/F5I/3XXHKuRXl8YVGSwFId55UnoAInhKf9u6cgMUAiEAoI5+9/Aw2Q67pQflTSystAXEDnkPTH+ohcOdKZltbCM=";

    /// A version 1 EC certificate without extensions: subject O=Fabrikam, OU=Unit A, OU=Unit B
    /// (no CN), serial 5.
    const V1: &str = "MIIBVTCB/AIBBTAKBggqhkjOPQQDAjA5MQswCQYDVQQGEwJVUzETMBEGA1UECgwKQ29udG9zbyBDQTEVMBMGA1UEAwwMQ29udG9zbyBSb290MB4XDTI2MTEyNjEzMzIwMVoXDTI2MTIyNjEzMzIwMVowNTERMA8GA1UECgwIRmFicmlrYW0xDzANBgNVBAsMBlVuaXQgQTEPMA0GA1UECwwGVW5pdCBCMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEpZOIAnw9VGxP6qlA3StXt7NteFd4+99Ab505PaTzdMYQDt7FIn7PP7LU+87LzOJ17NMgtmc+c5S4n6EY782WnzAKBggqhkjOPQQDAgNIADBFAiBdA7xNWfbS+uDqXWlnaZ48FliCytKZbgXq6MwDLGVefAIhAIy/3cWtHGrIhFYF7BMoCMienZeMsJ/dIV+DBiDN+J61";

    fn der(b64: &str) -> Value {
        Value::bin(STANDARD.decode(b64).unwrap())
    }

    fn s(x: &str) -> Value {
        Value::str(x)
    }

    fn call(f: &str, a: &[Value]) -> Outcome {
        let mut ctx = Ctx::fixed();
        lookup(f).expect("function")(&mut ctx, a)
    }

    fn one(f: &str, v: Value) -> Outcome {
        call(f, &[v])
    }

    const ALL: [&str; 22] = [
        "CertExtensionOids",
        "CertFormat",
        "CertFriendlyName",
        "CertHashString",
        "CertIssuer",
        "CertIssuerDN",
        "CertIssuerOid",
        "CertKeyAlgorithm",
        "CertKeyAlgorithmParams",
        "CertNameInfo",
        "CertNotAfter",
        "CertNotBefore",
        "CertPublicKeyOid",
        "CertPublicKeyParametersOid",
        "CertSerialNumber",
        "CertSignatureAlgorithmOid",
        "CertSubject",
        "CertSubjectNameDN",
        "CertSubjectNameOid",
        "CertThumbprint",
        "CertVersion",
        "IsCert",
    ];

    fn args_for(f: &str, v: Value) -> Vec<Value> {
        if f == "CertNameInfo" {
            vec![v, s("SimpleName"), Value::Bool(false)]
        } else {
            vec![v]
        }
    }

    #[test]
    fn stdlib_examples() {
        let c = der(CERT);
        assert_eq!(
            one("CertExtensionOids", c.clone()),
            Ok(Value::many(vec![s("2.5.29.19")]))
        );
        assert_eq!(one("CertFormat", c.clone()), Ok(s("X509")));
        assert_eq!(one("CertFriendlyName", c.clone()), Ok(s("")));
        let sha1 = s("B0A02B7486C5E91BA58DDCC66F255950E1A18740");
        assert_eq!(one("CertHashString", c.clone()), Ok(sha1.clone()));
        assert_eq!(one("CertThumbprint", c.clone()), Ok(sha1.clone()));
        let dn = s("CN=idflow test, O=Contoso");
        for f in [
            "CertIssuer",
            "CertIssuerDN",
            "CertSubject",
            "CertSubjectNameDN",
        ] {
            assert_eq!(one(f, c.clone()), Ok(dn.clone()), "{f}");
        }
        let ec = s("1.2.840.10045.2.1");
        for f in [
            "CertKeyAlgorithm",
            "CertPublicKeyOid",
            "CertPublicKeyParametersOid",
        ] {
            assert_eq!(one(f, c.clone()), Ok(ec.clone()), "{f}");
        }
        assert_eq!(
            one("CertKeyAlgorithmParams", c.clone()),
            Ok(s("06082A8648CE3D030107"))
        );
        assert_eq!(
            call(
                "CertNameInfo",
                &[c.clone(), s("SimpleName"), Value::Bool(false)]
            ),
            Ok(s("idflow test"))
        );
        assert_eq!(
            call(
                "CertNameInfo",
                &[c.clone(), s("simplename"), Value::Bool(true)]
            ),
            Ok(s("idflow test"))
        );
        assert_eq!(
            one("CertNotAfter", c.clone()),
            Ok(Value::Dt("2036-11-23T13:12:00Z".parse().unwrap()))
        );
        assert_eq!(
            one("CertNotBefore", c.clone()),
            Ok(Value::Dt("2026-11-26T13:12:00Z".parse().unwrap()))
        );
        assert_eq!(
            one("CertSerialNumber", c.clone()),
            Ok(s("385B37189A8EE62E3BA364FA29656187649D2582"))
        );
        assert_eq!(
            one("CertSignatureAlgorithmOid", c.clone()),
            Ok(s("1.2.840.10045.4.3.2"))
        );
        assert_eq!(one("CertVersion", c.clone()), Ok(s("3")));
        assert_eq!(one("CertIssuerOid", c.clone()), Ok(Value::Null));
        assert_eq!(one("CertSubjectNameOid", c.clone()), Ok(Value::Null));
        assert_eq!(one("IsCert", c), Ok(Value::Bool(true)));
        // The str overload: Base64 text.
        assert_eq!(one("CertThumbprint", s(CERT)), Ok(sha1.clone()));
        assert_eq!(one("IsCert", s(CERT)), Ok(Value::Bool(true)));
    }

    #[test]
    fn text_forms() {
        let sha1 = Ok(s("B0A02B7486C5E91BA58DDCC66F255950E1A18740"));
        // A bin holding the Base64 text, with line breaks.
        let wrapped: String = CERT
            .as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect::<Vec<_>>()
            .join("\r\n");
        assert_eq!(
            one("CertThumbprint", Value::bin(wrapped.clone().into_bytes())),
            sha1
        );
        assert_eq!(one("CertThumbprint", s(&wrapped)), sha1);
        let pem = format!("-----BEGIN CERTIFICATE-----\n{wrapped}\n-----END CERTIFICATE-----\n");
        assert_eq!(one("CertThumbprint", s(&pem)), sha1);
        assert_eq!(one("CertThumbprint", Value::bin(pem.into_bytes())), sha1);
    }

    #[test]
    fn null_and_malformed() {
        for f in ALL {
            let want = if f == "IsCert" {
                Value::Bool(false)
            } else {
                Value::Null
            };
            assert_eq!(call(f, &args_for(f, Value::Null)), Ok(want), "{f}");
        }
        let mut truncated = STANDARD.decode(CERT).unwrap();
        truncated.truncate(100);
        let mut trailing = STANDARD.decode(CERT).unwrap();
        trailing.push(0);
        let bad = [
            Value::bin(vec![1, 2, 3]),
            Value::bin(Vec::new()),
            Value::bin(vec![0x30]),
            Value::bin(vec![0x30, 0x80]),
            Value::bin(vec![0x30, 0x84, 0xFF, 0xFF, 0xFF, 0xFF]),
            Value::bin(truncated),
            Value::bin(trailing),
            Value::bin(vec![0xC3, 0xA9]),
            Value::bin(b"AQID".to_vec()),
            s(""),
            s("@@@"),
            s("not a certificate"),
            s("AQID"),
            s("-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----"),
            s("-----BEGIN CERTIFICATE"),
        ];
        for v in bad {
            for f in ALL {
                let r = call(f, &args_for(f, v.clone()));
                if f == "IsCert" {
                    assert_eq!(r, Ok(Value::Bool(false)), "{f} {v:?}");
                } else {
                    assert_eq!(r.unwrap_err().code, "E0503", "{f} {v:?}");
                }
            }
        }
        for f in ALL {
            let r = call(f, &args_for(f, Value::Num(1)));
            if f == "IsCert" {
                assert_eq!(r, Ok(Value::Bool(false)), "{f}");
            } else {
                assert_eq!(r.unwrap_err().code, "E0502", "{f}");
            }
        }
    }

    #[test]
    fn is_cert_never_faults_on_size() {
        let mut ctx = Ctx::fixed().with_limits(crate::builtins::ctx::Limits {
            max_bytes: 16,
            ..Default::default()
        });
        assert_eq!(is_cert(&mut ctx, &[s(CERT)]), Ok(Value::Bool(false)));
        assert_eq!(
            cert_thumbprint(&mut ctx, &[s(CERT)]).unwrap_err().code,
            "E0510"
        );
    }

    #[test]
    fn leaf_certificate() {
        let c = der(LEAF);
        assert_eq!(
            one("CertSubject", c.clone()),
            Ok(s(
                "E=jons@contoso.com, CN=Jöns Ö, OU=IT + OU=Sales, O=\"Contoso, Ltd\", L=Kista, \
                 S=Stockholm, C=SE"
            ))
        );
        assert_eq!(
            one("CertIssuer", c.clone()),
            Ok(s("CN=Contoso Root, O=Contoso CA, C=US"))
        );
        assert_eq!(
            one("CertExtensionOids", c.clone()),
            Ok(Value::many(vec![s("2.5.29.19"), s("2.5.29.15")]))
        );
        assert_eq!(
            one("CertSerialNumber", c.clone()),
            Ok(s("008000000000000001"))
        );
        assert_eq!(
            one("CertKeyAlgorithm", c.clone()),
            Ok(s("1.2.840.113549.1.1.1"))
        );
        assert_eq!(one("CertKeyAlgorithmParams", c.clone()), Ok(s("0500")));
        assert_eq!(
            one("CertSignatureAlgorithmOid", c.clone()),
            Ok(s("1.2.840.10045.4.3.2"))
        );
        assert_eq!(
            one("CertThumbprint", c.clone()),
            Ok(s("2100E70199A27CD41B16A76F3512930AEEEE3632"))
        );
        let info =
            |t: &str, issuer: bool| call("CertNameInfo", &[c.clone(), s(t), Value::Bool(issuer)]);
        assert_eq!(info("SimpleName", false), Ok(s("Jöns Ö")));
        assert_eq!(info("EmailName", false), Ok(s("jons@contoso.com")));
        assert_eq!(
            info("UpnName", false),
            Ok(s("jons@contoso.onmicrosoft.com"))
        );
        assert_eq!(info("DnsName", false), Ok(s("www.contoso.com")));
        assert_eq!(
            info("DnsFromAlternativeName", false),
            Ok(s("www.contoso.com"))
        );
        assert_eq!(info("UrlName", false), Ok(s("https://contoso.com/jons")));
        assert_eq!(info("SimpleName", true), Ok(s("Contoso Root")));
        assert_eq!(info("EmailName", true), Ok(s("ca@contoso.com")));
        assert_eq!(info("DnsName", true), Ok(s("ca.contoso.com")));
        assert_eq!(info("UpnName", true), Ok(s("")));
        assert_eq!(info("UrlName", true), Ok(s("")));
        assert_eq!(info("Bogus", false).unwrap_err().code, "E0503");
        assert_eq!(
            call(
                "CertNameInfo",
                &[c.clone(), Value::Null, Value::Bool(false)]
            ),
            Ok(Value::Null)
        );
        assert_eq!(
            call("CertNameInfo", &[c.clone(), s("SimpleName"), Value::Null]),
            Ok(Value::Null)
        );
    }

    #[test]
    fn v1_certificate() {
        let c = der(V1);
        assert_eq!(one("CertVersion", c.clone()), Ok(s("1")));
        assert_eq!(one("CertExtensionOids", c.clone()), Ok(Value::Null));
        assert_eq!(one("CertSerialNumber", c.clone()), Ok(s("05")));
        assert_eq!(
            one("CertSubject", c.clone()),
            Ok(s("OU=Unit B, OU=Unit A, O=Fabrikam"))
        );
        let info = |t: &str| call("CertNameInfo", &[c.clone(), s(t), Value::Bool(false)]);
        // No CN: the OU read last (the first encoded) wins; no SAN and no CN for DnsName.
        assert_eq!(info("SimpleName"), Ok(s("Unit A")));
        assert_eq!(info("DnsName"), Ok(s("")));
        assert_eq!(info("EmailName"), Ok(s("")));
        assert_eq!(
            one("CertThumbprint", c),
            Ok(s("6BACAE49FF1BBC3D9104DDC9C1B8097742E2BD36"))
        );
    }

    #[test]
    fn corrupted_certificates_never_panic() {
        for base in [CERT, LEAF, V1] {
            let good = STANDARD.decode(base).unwrap();
            let mut variants: Vec<Vec<u8>> = (0..good.len()).map(|n| good[..n].to_vec()).collect();
            for i in 0..good.len() {
                for x in [0x00, 0xFF, 0x80] {
                    let mut v = good.clone();
                    v[i] ^= x | 1;
                    variants.push(v);
                }
            }
            for v in variants {
                let v = Value::bin(v);
                for f in ALL {
                    let r = call(f, &args_for(f, v.clone()));
                    match r {
                        Ok(_) => {}
                        Err(e) => assert_eq!(e.code, "E0503", "{f}: {}", e.message),
                    }
                }
            }
        }
    }

    #[test]
    fn quoting() {
        assert!(needs_quoting(""));
        assert!(needs_quoting(" a"));
        assert!(needs_quoting("a\t"));
        assert!(needs_quoting("a,b"));
        assert!(needs_quoting("a#b"));
        assert!(!needs_quoting("a b"));
        assert!(!needs_quoting("a\rb"));
    }
}
