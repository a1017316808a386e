//! NLRI prefixes (RFC 4271 §4.3, RFC 4760 §5) with optional ADD-PATH path
//! identifiers (RFC 7911 §3).
//!
//! This is the decoder's hot loop: a 4096-byte UPDATE holds about 800 IPv4
//! prefixes, so it reads each one with two bounds-checked slice splits and
//! no per-prefix allocation.

use std::net::{Ipv4Addr, Ipv6Addr};

use bytes::{BufMut, BytesMut};
use ipnetwork::{IpNetwork, Ipv4Network, Ipv6Network};

use super::context::Family;
use super::error::EncodeError;

/// One NLRI entry: a prefix and, when ADD-PATH is negotiated for its family
/// and direction, its path identifier.
///
/// Host bits beyond the prefix length are cleared on decode: RFC 4271 §4.3
/// says trailing bits are irrelevant, and a canonical value keeps RIB keys
/// and re-encoding stable.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Prefix {
    /// The ADD-PATH path identifier, if the session carries them.
    pub path_id: Option<u32>,
    /// The prefix.
    pub network: IpNetwork,
}

impl Prefix {
    /// A prefix without a path identifier.
    pub fn new(network: IpNetwork) -> Prefix {
        Prefix {
            path_id: None,
            network,
        }
    }

    /// The family this prefix belongs to.
    pub fn family(&self) -> Family {
        match self.network {
            IpNetwork::V4(_) => Family::Ipv4Unicast,
            IpNetwork::V6(_) => Family::Ipv6Unicast,
        }
    }
}

impl From<IpNetwork> for Prefix {
    fn from(network: IpNetwork) -> Prefix {
        Prefix::new(network)
    }
}

/// A prefix field could not be parsed (length above the family's maximum,
/// or bytes cut short).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct BadPrefix;

/// Splits off a path identifier if the session carries them.
#[inline]
fn path_id(input: &[u8], add_path: bool) -> Result<(Option<u32>, &[u8]), BadPrefix> {
    if !add_path {
        return Ok((None, input));
    }
    let (id, rest) = input.split_first_chunk::<4>().ok_or(BadPrefix)?;
    Ok((Some(u32::from_be_bytes(*id)), rest))
}

/// Splits off one prefix: its length in bits, the input from its first
/// address byte on (so a caller can read a whole word at once), and the
/// input after its significant bytes.
#[inline]
fn prefix_bytes(input: &[u8], max_bits: u8) -> Result<(u8, &[u8], &[u8]), BadPrefix> {
    let (&bits, from_addr) = input.split_first().ok_or(BadPrefix)?;
    if bits > max_bits {
        return Err(BadPrefix);
    }
    let n = usize::from(bits.div_ceil(8));
    let rest = from_addr.get(n..).ok_or(BadPrefix)?;
    Ok((bits, from_addr, rest))
}

/// The address bits of a prefix as a big-endian word of `N` bytes. When `N`
/// bytes remain the whole word is read at once: the bytes past the prefix
/// belong to the next one and the caller masks them off. Filling a stack
/// array byte by byte instead costs a store-forwarding stall per prefix,
/// more than half of the decode time.
#[inline]
fn address_word<const N: usize>(from_addr: &[u8], significant: usize) -> [u8; N] {
    if let Some(word) = from_addr.first_chunk::<N>() {
        return *word;
    }
    // The last prefix of the buffer: copy only its own bytes.
    let mut word = [0u8; N];
    for (w, b) in word.iter_mut().zip(from_addr.iter().take(significant)) {
        *w = *b;
    }
    word
}

/// Decodes every prefix of `family` in `input`, appending to `out`.
pub(crate) fn decode_all(
    mut input: &[u8],
    family: Family,
    add_path: bool,
    out: &mut Vec<Prefix>,
) -> Result<(), BadPrefix> {
    match family {
        Family::Ipv4Unicast => {
            // A /24 or longer takes 4-5 bytes: reserve for the common case.
            out.reserve(input.len() / 5);
            while !input.is_empty() {
                let (path_id, rest) = path_id(input, add_path)?;
                let (bits, from_addr, rest) = prefix_bytes(rest, 32)?;
                let n = usize::from(bits.div_ceil(8));
                let word = u32::from_be_bytes(address_word::<4>(from_addr, n));
                let mask = u32::MAX
                    .checked_shl(32u32.saturating_sub(u32::from(bits)))
                    .unwrap_or(0);
                let network =
                    Ipv4Network::new(Ipv4Addr::from(word & mask), bits).map_err(|_| BadPrefix)?;
                out.push(Prefix {
                    path_id,
                    network: IpNetwork::V4(network),
                });
                input = rest;
            }
        }
        Family::Ipv6Unicast => {
            out.reserve(input.len() / 9);
            while !input.is_empty() {
                let (path_id, rest) = path_id(input, add_path)?;
                let (bits, from_addr, rest) = prefix_bytes(rest, 128)?;
                let n = usize::from(bits.div_ceil(8));
                let word = u128::from_be_bytes(address_word::<16>(from_addr, n));
                let mask = u128::MAX
                    .checked_shl(128u32.saturating_sub(u32::from(bits)))
                    .unwrap_or(0);
                let network =
                    Ipv6Network::new(Ipv6Addr::from(word & mask), bits).map_err(|_| BadPrefix)?;
                out.push(Prefix {
                    path_id,
                    network: IpNetwork::V6(network),
                });
                input = rest;
            }
        }
    }
    Ok(())
}

/// Encodes `prefixes`, which must all be of `family`.
pub(crate) fn encode_all(
    prefixes: &[Prefix],
    family: Family,
    add_path: bool,
    out: &mut BytesMut,
) -> Result<(), EncodeError> {
    for p in prefixes {
        if p.family() != family {
            return Err(EncodeError::WrongFamily { prefix: p.network });
        }
        if add_path {
            out.put_u32(p.path_id.unwrap_or(0));
        }
        let bits = p.network.prefix();
        out.put_u8(bits);
        let n = usize::from(bits.div_ceil(8));
        match p.network {
            IpNetwork::V4(net) => {
                out.put_slice(net.network().octets().get(..n).unwrap_or_default());
            }
            IpNetwork::V6(net) => {
                out.put_slice(net.network().octets().get(..n).unwrap_or_default());
            }
        }
    }
    Ok(())
}
