//! The negotiated session context that decoding and encoding depend on.

use std::net::Ipv4Addr;

/// Address families this codec decodes into prefixes (AFI/SAFI pairs).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    /// AFI 1 / SAFI 1.
    Ipv4Unicast,
    /// AFI 2 / SAFI 1.
    Ipv6Unicast,
}

impl Family {
    /// Maps an AFI/SAFI pair to a family this codec understands.
    pub fn from_afi_safi(afi: u16, safi: u8) -> Option<Family> {
        use super::iana::{afi as a, safi as s};
        match (afi, safi) {
            (a::IPV4, s::UNICAST) => Some(Family::Ipv4Unicast),
            (a::IPV6, s::UNICAST) => Some(Family::Ipv6Unicast),
            _ => None,
        }
    }

    /// The AFI of this family.
    pub fn afi(self) -> u16 {
        match self {
            Family::Ipv4Unicast => super::iana::afi::IPV4,
            Family::Ipv6Unicast => super::iana::afi::IPV6,
        }
    }

    /// The SAFI of this family.
    pub fn safi(self) -> u8 {
        super::iana::safi::UNICAST
    }
}

/// Which families carry ADD-PATH path identifiers in one direction
/// (RFC 7911 §3: a NLRI is preceded by a 4-octet Path Identifier only when
/// that was negotiated for its family and this direction).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct AddPath {
    /// IPv4 unicast NLRI carry path identifiers.
    pub ipv4_unicast: bool,
    /// IPv6 unicast NLRI carry path identifiers.
    pub ipv6_unicast: bool,
}

impl AddPath {
    /// Whether `family` carries path identifiers.
    pub fn enabled(self, family: Family) -> bool {
        match family {
            Family::Ipv4Unicast => self.ipv4_unicast,
            Family::Ipv6Unicast => self.ipv6_unicast,
        }
    }
}

/// Whether the peer is internal or external, which changes several RFC 7606
/// verdicts (LOCAL_PREF, ORIGINATOR_ID, CLUSTER_LIST, the first AS check).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum PeerKind {
    /// An iBGP peer: the pod-route mesh and route reflectors.
    #[default]
    Internal,
    /// An eBGP peer with this AS number.
    External {
        /// The peer's AS number, as configured.
        peer_as: u32,
        /// Require the leftmost AS of AS_PATH to be `peer_as` (RFC 4271 §6.3).
        /// Off for route servers, which do not prepend themselves.
        enforce_first_as: bool,
    },
}

/// Everything the wire format of one direction of one session depends on.
///
/// Decoding uses the receive side of what was negotiated, encoding the send
/// side: ADD-PATH in particular is negotiated per family *and direction*.
/// The local identifiers let the decoder apply the RFC 7606 and RFC 4456
/// checks that need them; leave them `None` when they do not apply.
///
/// `Default` is the most conservative session: 2-octet AS, no ADD-PATH,
/// 4096-byte messages, iBGP.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct DecodeContext {
    /// Both sides advertised the 4-octet AS capability (RFC 6793).
    pub four_octet_as: bool,
    /// Both sides advertised extended messages: up to 65535 bytes (RFC 8654).
    pub extended_message: bool,
    /// Families carrying ADD-PATH path identifiers in this direction.
    pub add_path: AddPath,
    /// iBGP or eBGP.
    pub peer: PeerKind,
    /// Our BGP identifier: a route whose ORIGINATOR_ID equals it came back to
    /// us through a reflector and is ignored (RFC 4456 §8).
    pub local_router_id: Option<Ipv4Addr>,
    /// Our cluster ID when reflecting: a CLUSTER_LIST containing it is a loop
    /// (RFC 4456 §8).
    pub cluster_id: Option<Ipv4Addr>,
    /// Our own address on this session: a NEXT_HOP equal to it is invalid
    /// (RFC 4271 §6.3).
    pub local_address: Option<Ipv4Addr>,
}

impl DecodeContext {
    /// The context of a modern iBGP session: 4-octet AS, no ADD-PATH.
    pub fn ibgp() -> Self {
        DecodeContext {
            four_octet_as: true,
            ..DecodeContext::default()
        }
    }

    /// The context of a modern eBGP session with `peer_as`.
    pub fn ebgp(peer_as: u32) -> Self {
        DecodeContext {
            four_octet_as: true,
            peer: PeerKind::External {
                peer_as,
                enforce_first_as: true,
            },
            ..DecodeContext::default()
        }
    }

    /// Whether this is an iBGP session.
    pub fn is_ibgp(&self) -> bool {
        matches!(self.peer, PeerKind::Internal)
    }

    /// The largest message this session may carry (RFC 4271 §4.1, RFC 8654).
    pub fn max_message_len(&self) -> usize {
        if self.extended_message {
            super::header::MAX_EXTENDED_LEN
        } else {
            super::header::MAX_LEN
        }
    }
}
