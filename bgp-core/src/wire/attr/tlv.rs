//! Structure checks for attributes this speaker carries opaquely but must
//! validate, because RFC 7606 gives their malformed forms a verdict.
//!
//! A check only walks the TLV framing; the values stay bytes.

use crate::wire::iana::attr;

/// Whether `value` is a well-formed instance of attribute `code`. Codes
/// without a structure check are always well-formed.
pub(crate) fn well_formed(code: u8, value: &[u8]) -> bool {
    match code {
        attr::TUNNEL_ENCAPSULATION => tunnel_encapsulation(value),
        attr::AIGP => aigp(value),
        attr::PREFIX_SID => tlvs(value, 1, Some),
        attr::BGP_LS => tlvs(value, 2, Some),
        _ => true,
    }
}

/// Walks TLVs with a `type_len`-byte type and a 2-byte length; `body_len`
/// maps the length field to the value length (None: invalid).
fn tlvs(mut value: &[u8], type_len: usize, body_len: impl Fn(usize) -> Option<usize>) -> bool {
    while !value.is_empty() {
        let Some((_, rest)) = value.split_at_checked(type_len) else {
            return false;
        };
        let Some((len, rest)) = rest.split_first_chunk::<2>() else {
            return false;
        };
        let Some(n) = body_len(usize::from(u16::from_be_bytes(*len))) else {
            return false;
        };
        let Some((_, rest)) = rest.split_at_checked(n) else {
            return false;
        };
        value = rest;
    }
    true
}

/// AIGP (RFC 7311 §3): TLVs of type(1) length(2) where the length counts the
/// 3-byte header; the AIGP TLV (type 1) is exactly 11 bytes.
fn aigp(mut value: &[u8]) -> bool {
    while !value.is_empty() {
        let Some((&[t, hi, lo], rest)) = value.split_first_chunk::<3>() else {
            return false;
        };
        let len = usize::from(u16::from_be_bytes([hi, lo]));
        if len < 3 || (t == 1 && len != 11) {
            return false;
        }
        let Some((_, rest)) = rest.split_at_checked(len.saturating_sub(3)) else {
            return false;
        };
        value = rest;
    }
    true
}

/// Tunnel Encapsulation (RFC 9012 §2): TLVs of type(2) length(2), each a
/// list of sub-TLVs whose length is 1 byte for types 0-127 and 2 bytes for
/// 128-255 (§2.1).
fn tunnel_encapsulation(mut value: &[u8]) -> bool {
    if value.is_empty() {
        return false;
    }
    while !value.is_empty() {
        let Some((&[_, _, hi, lo], rest)) = value.split_first_chunk::<4>() else {
            return false;
        };
        let Some((mut subs, rest)) =
            rest.split_at_checked(usize::from(u16::from_be_bytes([hi, lo])))
        else {
            return false;
        };
        while let Some((&sub_type, after)) = subs.split_first() {
            let (len, after) = if sub_type < 128 {
                match after.split_first() {
                    Some((&l, a)) => (usize::from(l), a),
                    None => return false,
                }
            } else {
                match after.split_first_chunk::<2>() {
                    Some((l, a)) => (usize::from(u16::from_be_bytes(*l)), a),
                    None => return false,
                }
            };
            let Some((_, after)) = after.split_at_checked(len) else {
                return false;
            };
            subs = after;
        }
        value = rest;
    }
    true
}
