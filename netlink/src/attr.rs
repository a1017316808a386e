//! Attributes (`struct rtattr` / `struct nlattr`, <linux/netlink.h>): the
//! one reader and writer of them in the workspace.
//!
//! ```text
//! 0     2      4
//! | len | type | value … (padded to 4)
//! ```
//!
//! `len` counts the 4-byte header but not the padding. The top two bits of
//! `type` are flags (`NLA_F_NESTED`, `NLA_F_NET_BYTEORDER`), masked off.

use std::net::IpAddr;

use crate::consts::{NLA_TYPE_MASK, RTA_HDRLEN};
use crate::header::align;

/// The attributes in `bytes`, as (type, value). A length shorter than the
/// attribute header, or one past the end, ends the walk: what comes after a
/// malformed attribute cannot be located.
pub fn attributes(bytes: &[u8]) -> Attributes<'_> {
    Attributes { rest: bytes }
}

/// The iterator [`attributes`] returns.
#[derive(Clone, Debug)]
pub struct Attributes<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Attributes<'a> {
    type Item = (u16, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        let [l0, l1, t0, t1] = *self.rest.first_chunk::<RTA_HDRLEN>()?;
        let len = usize::from(u16::from_ne_bytes([l0, l1]));
        let kind = u16::from_ne_bytes([t0, t1]) & NLA_TYPE_MASK;
        let Some(value) = self.rest.get(RTA_HDRLEN..len) else {
            self.rest = &[];
            return None;
        };
        self.rest = self.rest.get(align(len)..).unwrap_or_default();
        Some((kind, value))
    }
}

/// A `u32` value (host byte order); `None` when shorter than 4 bytes.
pub fn u32_of(value: &[u8]) -> Option<u32> {
    value.first_chunk::<4>().map(|b| u32::from_ne_bytes(*b))
}

/// An address value: 4 bytes IPv4, 16 bytes IPv6, anything else `None`.
pub fn address_of(value: &[u8]) -> Option<IpAddr> {
    match value.len() {
        4 => value.first_chunk::<4>().map(|a| IpAddr::from(*a)),
        16 => value.first_chunk::<16>().map(|a| IpAddr::from(*a)),
        _ => None,
    }
}

/// Appends one attribute and its padding to `buf`. A value too long for
/// the 16-bit length field is cut to fit (route and nexthop attributes are
/// at most a few words).
pub fn emit(buf: &mut Vec<u8>, kind: u16, value: &[u8]) {
    let room = usize::from(u16::MAX).saturating_sub(RTA_HDRLEN);
    let value = value.get(..room).unwrap_or(value);
    let len = RTA_HDRLEN.saturating_add(value.len());
    let len16 = u16::try_from(len).unwrap_or(u16::MAX);
    buf.extend_from_slice(&len16.to_ne_bytes());
    buf.extend_from_slice(&kind.to_ne_bytes());
    buf.extend_from_slice(value);
    buf.resize(buf.len().saturating_add(align(len).saturating_sub(len)), 0);
}

/// Appends a `u32` attribute.
pub fn emit_u32(buf: &mut Vec<u8>, kind: u16, value: u32) {
    emit(buf, kind, &value.to_ne_bytes());
}

/// Appends an address attribute (4 or 16 bytes).
pub fn emit_address(buf: &mut Vec<u8>, kind: u16, address: IpAddr) {
    match address {
        IpAddr::V4(a) => emit(buf, kind, &a.octets()),
        IpAddr::V6(a) => emit(buf, kind, &a.octets()),
    }
}

/// `NLA_F_NESTED` (<linux/netlink.h>): the attribute holds attributes.
const NLA_F_NESTED: u16 = 0x8000;

/// Appends a nested attribute whose value `body` writes, flagged
/// `NLA_F_NESTED` as the kernel's `nla_nest_start` does; its length is
/// patched in once the body is written (no buffer of its own).
pub fn emit_nested(buf: &mut Vec<u8>, kind: u16, body: impl FnOnce(&mut Vec<u8>)) {
    let start = buf.len();
    buf.extend_from_slice(&[0, 0]);
    buf.extend_from_slice(&(kind | NLA_F_NESTED).to_ne_bytes());
    body(buf);
    let len = u16::try_from(buf.len().saturating_sub(start)).unwrap_or(u16::MAX);
    if let Some(field) = buf.get_mut(start..start.saturating_add(2)) {
        field.copy_from_slice(&len.to_ne_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_attributes_read_back_padded_and_flags_masked() {
        let mut buf = Vec::new();
        emit(&mut buf, 1, &[10, 0, 0, 1]);
        emit(&mut buf, 0x8000 | 8, &[1, 2, 3]);
        emit_u32(&mut buf, 4, 7);
        assert_eq!(buf.len(), 8 + 8 + 8);
        let all: Vec<(u16, &[u8])> = attributes(&buf).collect();
        assert_eq!(
            all,
            [
                (1, &[10u8, 0, 0, 1][..]),
                (8, &[1, 2, 3][..]),
                (4, &7u32.to_ne_bytes()[..])
            ]
        );
    }

    #[test]
    fn a_malformed_attribute_ends_the_walk_without_panicking() {
        let mut buf = Vec::new();
        emit_u32(&mut buf, 4, 7);
        emit_u32(&mut buf, 5, 8);
        for cut in 0..buf.len() {
            let _ = attributes(&buf[..cut]).count();
        }
        // A length of 2 (shorter than the header) and one past the end.
        for bad in [2u16, 200] {
            let mut b = buf.clone();
            b[..2].copy_from_slice(&bad.to_ne_bytes());
            assert_eq!(attributes(&b).count(), 0, "length {bad}");
        }
    }

    #[test]
    fn addresses_are_four_or_sixteen_bytes() {
        assert_eq!(
            address_of(&[10, 0, 0, 1]),
            Some("10.0.0.1".parse().unwrap())
        );
        let v6: IpAddr = "fd00::1".parse().unwrap();
        let IpAddr::V6(raw) = v6 else { unreachable!() };
        assert_eq!(address_of(&raw.octets()), Some(v6));
        assert_eq!(address_of(&[1, 2, 3]), None);
        assert_eq!(u32_of(&[1, 2]), None);
    }
}
