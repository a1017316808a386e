//! `nom` primitives shared by the decoders.
//!
//! Every parser here works on complete byte slices with the unit error type:
//! the callers know which field they were reading and turn a failure into
//! the typed error that field deserves, so nom's own error type would only
//! cost time. Length-prefixed sections are taken whole with [`take`] and
//! parsed from the sub-slice, so a length field can never make a parser read
//! past its section (the rustls `Reader::sub` idea).

use std::net::{Ipv4Addr, Ipv6Addr};

use nom::Parser;

/// The result type of the parsers in this crate.
pub(crate) type PResult<'a, T> = nom::IResult<&'a [u8], T, ()>;

/// One octet.
pub(crate) fn u8(input: &[u8]) -> PResult<'_, u8> {
    nom::number::complete::be_u8(input)
}

/// A big-endian u16.
pub(crate) fn u16(input: &[u8]) -> PResult<'_, u16> {
    nom::number::complete::be_u16(input)
}

/// A big-endian 24-bit value.
pub(crate) fn u24(input: &[u8]) -> PResult<'_, u32> {
    nom::number::complete::be_u24(input)
}

/// A big-endian u32.
pub(crate) fn u32(input: &[u8]) -> PResult<'_, u32> {
    nom::number::complete::be_u32(input)
}

/// Exactly `n` bytes.
pub(crate) fn take(n: usize) -> impl Fn(&[u8]) -> PResult<'_, &[u8]> {
    move |input| nom::bytes::complete::take(n).parse(input)
}

/// A fixed-size array.
pub(crate) fn array<const N: usize>(input: &[u8]) -> PResult<'_, [u8; N]> {
    let (rest, bytes) = take(N)(input)?;
    let mut out = [0u8; N];
    out.copy_from_slice(bytes);
    Ok((rest, out))
}

/// An IPv4 address.
pub(crate) fn ipv4(input: &[u8]) -> PResult<'_, Ipv4Addr> {
    nom::combinator::map(u32, Ipv4Addr::from).parse(input)
}

/// An IPv6 address.
pub(crate) fn ipv6(input: &[u8]) -> PResult<'_, Ipv6Addr> {
    nom::combinator::map(array::<16>, Ipv6Addr::from).parse(input)
}

/// Parses `input` as a sequence of fixed-size items with `item`, requiring
/// the items to consume it exactly.
pub(crate) fn all<'a, T>(
    mut input: &'a [u8],
    mut item: impl FnMut(&'a [u8]) -> PResult<'a, T>,
) -> Option<Vec<T>> {
    let mut out = Vec::new();
    while !input.is_empty() {
        let (rest, value) = item(input).ok()?;
        if rest.len() >= input.len() {
            // A parser that consumed nothing would loop forever.
            return None;
        }
        out.push(value);
        input = rest;
    }
    Some(out)
}
