//! MP_REACH_NLRI and MP_UNREACH_NLRI (RFC 4760 §3, §4), with IPv6 next hops
//! for IPv4 routes (RFC 8950) and the global + link-local IPv6 next hop
//! (RFC 2545 §3).

use std::net::{Ipv4Addr, Ipv6Addr};

use bytes::{BufMut, BytesMut};

use crate::wire::context::{DecodeContext, Family};
use crate::wire::error::{EncodeError, NlriField};
use crate::wire::prefix::{self, Prefix};
use crate::wire::reader;

/// The next hop of an MP_REACH_NLRI.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum NextHop {
    /// An IPv4 next hop (4 bytes).
    Ipv4(Ipv4Addr),
    /// An IPv6 next hop: global, and optionally link-local (16 or 32 bytes).
    Ipv6 {
        /// The global (or, from some speakers, unspecified) address.
        global: Ipv6Addr,
        /// The link-local address, when the peer is on a shared link.
        link_local: Option<Ipv6Addr>,
    },
    /// The next hop of a family this codec does not decode, kept as bytes.
    Other(Vec<u8>),
}

/// The prefixes of an MP attribute.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum MpNlri {
    /// IPv4 or IPv6 unicast prefixes.
    Unicast(Vec<Prefix>),
    /// The NLRI of a family this codec does not decode, kept as bytes.
    Other(Vec<u8>),
}

impl MpNlri {
    /// The prefixes, empty for undecoded families.
    pub fn prefixes(&self) -> &[Prefix] {
        match self {
            MpNlri::Unicast(p) => p,
            MpNlri::Other(_) => &[],
        }
    }

    fn is_empty(&self) -> bool {
        match self {
            MpNlri::Unicast(p) => p.is_empty(),
            MpNlri::Other(b) => b.is_empty(),
        }
    }
}

/// MP_REACH_NLRI: reachable prefixes of one family and their next hop.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct MpReach {
    /// AFI.
    pub afi: u16,
    /// SAFI.
    pub safi: u8,
    /// The next hop.
    pub next_hop: NextHop,
    /// The prefixes.
    pub nlri: MpNlri,
}

/// MP_UNREACH_NLRI: withdrawn prefixes of one family.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct MpUnreach {
    /// AFI.
    pub afi: u16,
    /// SAFI.
    pub safi: u8,
    /// The withdrawn prefixes.
    pub withdrawn: MpNlri,
}

/// Why an MP attribute is unusable; the caller turns it into a reset
/// (RFC 7606 §7.11 / §5.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum MpProblem {
    /// Cut short, or a next-hop length the family does not allow.
    Malformed,
    /// A prefix could not be parsed.
    BadPrefix(NlriField),
}

impl MpReach {
    /// The family, if it is one this codec decodes.
    pub fn family(&self) -> Option<Family> {
        Family::from_afi_safi(self.afi, self.safi)
    }

    pub(crate) fn decode(value: &[u8], ctx: &DecodeContext) -> Result<MpReach, MpProblem> {
        let (i, afi) = reader::u16(value).map_err(|_| MpProblem::Malformed)?;
        let (i, safi) = reader::u8(i).map_err(|_| MpProblem::Malformed)?;
        let (i, nh_len) = reader::u8(i).map_err(|_| MpProblem::Malformed)?;
        let (i, nh) = reader::take(usize::from(nh_len))(i).map_err(|_| MpProblem::Malformed)?;
        // RFC 4760 §3: the former SNPA count, now reserved and ignored.
        let (nlri, _reserved) = reader::u8(i).map_err(|_| MpProblem::Malformed)?;
        let Some(family) = Family::from_afi_safi(afi, safi) else {
            return Ok(MpReach {
                afi,
                safi,
                next_hop: NextHop::Other(nh.to_vec()),
                nlri: MpNlri::Other(nlri.to_vec()),
            });
        };
        let next_hop = decode_next_hop(nh, family).ok_or(MpProblem::Malformed)?;
        let mut prefixes = Vec::new();
        prefix::decode_all(nlri, family, ctx.add_path.enabled(family), &mut prefixes)
            .map_err(|_| MpProblem::BadPrefix(NlriField::MpReach))?;
        Ok(MpReach {
            afi,
            safi,
            next_hop,
            nlri: MpNlri::Unicast(prefixes),
        })
    }

    pub(crate) fn encode(
        &self,
        ctx: &DecodeContext,
        out: &mut BytesMut,
    ) -> Result<(), EncodeError> {
        out.put_u16(self.afi);
        out.put_u8(self.safi);
        let nh_at = out.len();
        out.put_u8(0);
        match &self.next_hop {
            NextHop::Ipv4(a) => out.put_slice(&a.octets()),
            NextHop::Ipv6 { global, link_local } => {
                out.put_slice(&global.octets());
                if let Some(ll) = link_local {
                    out.put_slice(&ll.octets());
                }
            }
            NextHop::Other(bytes) => out.put_slice(bytes),
        }
        let nh_len = out.len().saturating_sub(nh_at).saturating_sub(1);
        let nh_byte = u8::try_from(nh_len).map_err(|_| EncodeError::FieldTooLong {
            what: "MP_REACH next hop",
            length: nh_len,
        })?;
        if let Some(slot) = out.get_mut(nh_at) {
            *slot = nh_byte;
        }
        out.put_u8(0);
        encode_nlri(&self.nlri, self.afi, self.safi, ctx, out)
    }
}

impl MpUnreach {
    /// The End-of-RIB marker for a family (RFC 4724 §2): no prefixes.
    pub fn end_of_rib(family: Family) -> MpUnreach {
        MpUnreach {
            afi: family.afi(),
            safi: family.safi(),
            withdrawn: MpNlri::Unicast(Vec::new()),
        }
    }

    /// The family, if it is one this codec decodes.
    pub fn family(&self) -> Option<Family> {
        Family::from_afi_safi(self.afi, self.safi)
    }

    /// Whether this withdraws nothing (an End-of-RIB marker).
    pub fn is_empty(&self) -> bool {
        self.withdrawn.is_empty()
    }

    pub(crate) fn decode(value: &[u8], ctx: &DecodeContext) -> Result<MpUnreach, MpProblem> {
        let (i, afi) = reader::u16(value).map_err(|_| MpProblem::Malformed)?;
        let (nlri, safi) = reader::u8(i).map_err(|_| MpProblem::Malformed)?;
        let Some(family) = Family::from_afi_safi(afi, safi) else {
            return Ok(MpUnreach {
                afi,
                safi,
                withdrawn: MpNlri::Other(nlri.to_vec()),
            });
        };
        let mut prefixes = Vec::new();
        prefix::decode_all(nlri, family, ctx.add_path.enabled(family), &mut prefixes)
            .map_err(|_| MpProblem::BadPrefix(NlriField::MpUnreach))?;
        Ok(MpUnreach {
            afi,
            safi,
            withdrawn: MpNlri::Unicast(prefixes),
        })
    }

    pub(crate) fn encode(
        &self,
        ctx: &DecodeContext,
        out: &mut BytesMut,
    ) -> Result<(), EncodeError> {
        out.put_u16(self.afi);
        out.put_u8(self.safi);
        encode_nlri(&self.withdrawn, self.afi, self.safi, ctx, out)
    }
}

fn encode_nlri(
    nlri: &MpNlri,
    afi: u16,
    safi: u8,
    ctx: &DecodeContext,
    out: &mut BytesMut,
) -> Result<(), EncodeError> {
    match (nlri, Family::from_afi_safi(afi, safi)) {
        (MpNlri::Unicast(prefixes), Some(family)) => {
            prefix::encode_all(prefixes, family, ctx.add_path.enabled(family), out)
        }
        (MpNlri::Other(bytes), _) => {
            out.put_slice(bytes);
            Ok(())
        }
        (MpNlri::Unicast(prefixes), None) => match prefixes.first() {
            Some(p) => Err(EncodeError::WrongFamily { prefix: p.network }),
            None => Ok(()),
        },
    }
}

/// Next-hop lengths allowed per family: IPv4 unicast takes 4, or 16 / 32
/// with an IPv6 next hop (RFC 8950 §3); IPv6 unicast takes 16 or 32
/// (RFC 2545 §3).
fn decode_next_hop(nh: &[u8], family: Family) -> Option<NextHop> {
    match (family, nh.len()) {
        (Family::Ipv4Unicast, 4) => reader::ipv4(nh).ok().map(|(_, a)| NextHop::Ipv4(a)),
        (_, 16) => reader::ipv6(nh).ok().map(|(_, global)| NextHop::Ipv6 {
            global,
            link_local: None,
        }),
        (_, 32) => {
            let (i, global) = reader::ipv6(nh).ok()?;
            let (_, ll) = reader::ipv6(i).ok()?;
            Some(NextHop::Ipv6 {
                global,
                link_local: Some(ll),
            })
        }
        _ => None,
    }
}
