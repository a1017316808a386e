//! Path attributes (RFC 4271 §4.3, §5) and their RFC 7606 handling.
//!
//! Each attribute decodes to a typed [`AttrValue`]; anything else is kept as
//! flags and bytes ([`AttrValue::Opaque`]) so an optional transitive
//! attribute can be passed on with the Partial bit (RFC 4271 §5). Whether a
//! malformed attribute is discarded, turns the UPDATE into a withdrawal or
//! resets the session is decided here, per attribute, from the table in
//! RFC 7606 §7.

mod as_path;
mod mp;
mod tlv;

use std::net::Ipv4Addr;

use bytes::{BufMut, BytesMut};

pub use as_path::{AsPath, Segment, SegmentKind};
pub use mp::{MpNlri, MpReach, MpUnreach, NextHop};

use super::context::DecodeContext;
use super::error::{AttrProblem, EncodeError, FaultAction, UpdateError};
use super::iana::{AS_TRANS, attr as code, attr_flags as flag};
use super::reader;

/// ORIGIN values (RFC 4271 §5.1.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Origin {
    /// Learned from an interior protocol (0).
    Igp,
    /// Learned via EGP (1).
    Egp,
    /// Learned some other way (2).
    Incomplete,
}

/// AGGREGATOR / AS4_AGGREGATOR (RFC 4271 §5.1.7, RFC 6793).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Aggregator {
    /// The AS of the aggregating speaker.
    pub asn: u32,
    /// Its BGP identifier.
    pub address: Ipv4Addr,
}

/// One large community (RFC 8092).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LargeCommunity {
    /// Global administrator (an AS number).
    pub global: u32,
    /// First local data part.
    pub local1: u32,
    /// Second local data part.
    pub local2: u32,
}

/// The value of one path attribute.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum AttrValue {
    /// ORIGIN (1).
    Origin(Origin),
    /// AS_PATH (2), with 2- or 4-octet AS numbers per the session.
    AsPath(AsPath),
    /// NEXT_HOP (3).
    NextHop(Ipv4Addr),
    /// MULTI_EXIT_DISC (4).
    MultiExitDisc(u32),
    /// LOCAL_PREF (5).
    LocalPref(u32),
    /// ATOMIC_AGGREGATE (6).
    AtomicAggregate,
    /// AGGREGATOR (7).
    Aggregator(Aggregator),
    /// COMMUNITIES (8).
    Communities(Vec<u32>),
    /// ORIGINATOR_ID (9).
    OriginatorId(Ipv4Addr),
    /// CLUSTER_LIST (10).
    ClusterList(Vec<Ipv4Addr>),
    /// MP_REACH_NLRI (14).
    MpReach(MpReach),
    /// MP_UNREACH_NLRI (15).
    MpUnreach(MpUnreach),
    /// EXTENDED_COMMUNITIES (16).
    ExtendedCommunities(Vec<[u8; 8]>),
    /// AS4_PATH (17).
    As4Path(AsPath),
    /// AS4_AGGREGATOR (18).
    As4Aggregator(Aggregator),
    /// IPv6 address-specific extended communities (25).
    Ipv6ExtendedCommunities(Vec<[u8; 20]>),
    /// LARGE_COMMUNITY (32).
    LargeCommunities(Vec<LargeCommunity>),
    /// OTC, Only to Customer (35): an AS number.
    Otc(u32),
    /// Any other attribute, and those checked only for structure (23, 26,
    /// 29, 40), kept as bytes.
    Opaque {
        /// The type code.
        code: u8,
        /// The value.
        value: Vec<u8>,
    },
}

impl AttrValue {
    /// The attribute type code.
    pub fn code(&self) -> u8 {
        match self {
            AttrValue::Origin(_) => code::ORIGIN,
            AttrValue::AsPath(_) => code::AS_PATH,
            AttrValue::NextHop(_) => code::NEXT_HOP,
            AttrValue::MultiExitDisc(_) => code::MULTI_EXIT_DISC,
            AttrValue::LocalPref(_) => code::LOCAL_PREF,
            AttrValue::AtomicAggregate => code::ATOMIC_AGGREGATE,
            AttrValue::Aggregator(_) => code::AGGREGATOR,
            AttrValue::Communities(_) => code::COMMUNITIES,
            AttrValue::OriginatorId(_) => code::ORIGINATOR_ID,
            AttrValue::ClusterList(_) => code::CLUSTER_LIST,
            AttrValue::MpReach(_) => code::MP_REACH_NLRI,
            AttrValue::MpUnreach(_) => code::MP_UNREACH_NLRI,
            AttrValue::ExtendedCommunities(_) => code::EXTENDED_COMMUNITIES,
            AttrValue::As4Path(_) => code::AS4_PATH,
            AttrValue::As4Aggregator(_) => code::AS4_AGGREGATOR,
            AttrValue::Ipv6ExtendedCommunities(_) => code::IPV6_EXTENDED_COMMUNITIES,
            AttrValue::LargeCommunities(_) => code::LARGE_COMMUNITY,
            AttrValue::Otc(_) => code::OTC,
            AttrValue::Opaque { code, .. } => *code,
        }
    }
}

/// A path attribute: flags as received (or canonical) and value.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PathAttribute {
    /// Attribute flags ([`super::iana::attr_flags`]). The extended-length bit
    /// is forced on when encoding a value longer than 255 bytes.
    pub flags: u8,
    /// The value.
    pub value: AttrValue,
}

/// Optional and transitive bits an attribute must carry (RFC 4271 §5,
/// and each attribute's RFC).
fn expected_flags(attr_code: u8) -> Option<u8> {
    const WELL_KNOWN: u8 = flag::TRANSITIVE;
    const OPT_NON_TRANSITIVE: u8 = flag::OPTIONAL;
    const OPT_TRANSITIVE: u8 = flag::OPTIONAL | flag::TRANSITIVE;
    Some(match attr_code {
        code::ORIGIN
        | code::AS_PATH
        | code::NEXT_HOP
        | code::LOCAL_PREF
        | code::ATOMIC_AGGREGATE => WELL_KNOWN,
        code::MULTI_EXIT_DISC
        | code::ORIGINATOR_ID
        | code::CLUSTER_LIST
        | code::MP_REACH_NLRI
        | code::MP_UNREACH_NLRI
        | code::AIGP
        | code::BGP_LS => OPT_NON_TRANSITIVE,
        code::AGGREGATOR
        | code::COMMUNITIES
        | code::EXTENDED_COMMUNITIES
        | code::AS4_PATH
        | code::AS4_AGGREGATOR
        | code::TUNNEL_ENCAPSULATION
        | code::IPV6_EXTENDED_COMMUNITIES
        | code::LARGE_COMMUNITY
        | code::OTC
        | code::PREFIX_SID => OPT_TRANSITIVE,
        _ => return None,
    })
}

/// What RFC 7606 §7 does with a malformed instance of `attr_code`.
pub(crate) fn malformed_action(attr_code: u8, ctx: &DecodeContext) -> FaultAction {
    match attr_code {
        code::LOCAL_PREF | code::ORIGINATOR_ID | code::CLUSTER_LIST if !ctx.is_ibgp() => {
            FaultAction::Discard
        }
        code::ATOMIC_AGGREGATE
        | code::AGGREGATOR
        | code::AS4_PATH
        | code::AS4_AGGREGATOR
        | code::AIGP
        | code::BGP_LS
        | code::PREFIX_SID => FaultAction::Discard,
        _ => FaultAction::TreatAsWithdraw,
    }
}

impl PathAttribute {
    /// An attribute with the canonical flags for its type (optional
    /// transitive for unknown codes).
    pub fn new(value: AttrValue) -> PathAttribute {
        let flags = expected_flags(value.code()).unwrap_or(flag::OPTIONAL | flag::TRANSITIVE);
        PathAttribute { flags, value }
    }

    /// The attribute type code.
    pub fn code(&self) -> u8 {
        self.value.code()
    }

    /// Whether this speaker knows the attribute's type (it may still be
    /// carried as bytes, like TUNNEL_ENCAPSULATION, whose structure is
    /// checked but whose meaning is not used).
    pub fn is_recognized(&self) -> bool {
        expected_flags(self.code()).is_some()
    }

    /// The attribute as it should be passed on to another peer: an unknown
    /// optional transitive attribute gets the Partial bit (RFC 4271 §5), an
    /// unknown non-transitive one is not passed on.
    pub fn for_propagation(&self) -> Option<PathAttribute> {
        match &self.value {
            AttrValue::Opaque { code, .. } if expected_flags(*code).is_none() => {
                if self.flags & flag::TRANSITIVE == 0 {
                    None
                } else {
                    Some(PathAttribute {
                        flags: self.flags | flag::PARTIAL,
                        value: self.value.clone(),
                    })
                }
            }
            _ => Some(self.clone()),
        }
    }

    /// Writes flags, type, length and value.
    pub(crate) fn encode(
        &self,
        ctx: &DecodeContext,
        out: &mut BytesMut,
    ) -> Result<(), EncodeError> {
        let mut v = BytesMut::new();
        self.encode_value(ctx, &mut v)?;
        let extended = self.flags & flag::EXTENDED_LENGTH != 0 || v.len() > usize::from(u8::MAX);
        let length = v.len();
        if extended {
            let len = u16::try_from(length).map_err(|_| EncodeError::FieldTooLong {
                what: "path attribute",
                length,
            })?;
            out.put_u8(self.flags | flag::EXTENDED_LENGTH);
            out.put_u8(self.code());
            out.put_u16(len);
        } else {
            out.put_u8(self.flags);
            out.put_u8(self.code());
            // Checked above: at most 255.
            out.put_u8(u8::try_from(length).unwrap_or(u8::MAX));
        }
        out.put_slice(&v);
        Ok(())
    }

    fn encode_value(&self, ctx: &DecodeContext, out: &mut BytesMut) -> Result<(), EncodeError> {
        match &self.value {
            AttrValue::Origin(o) => out.put_u8(match o {
                Origin::Igp => 0,
                Origin::Egp => 1,
                Origin::Incomplete => 2,
            }),
            AttrValue::AsPath(p) => p.encode(ctx.four_octet_as, out)?,
            AttrValue::NextHop(a) | AttrValue::OriginatorId(a) => out.put_slice(&a.octets()),
            AttrValue::MultiExitDisc(v) | AttrValue::LocalPref(v) | AttrValue::Otc(v) => {
                out.put_u32(*v)
            }
            AttrValue::AtomicAggregate => {}
            AttrValue::Aggregator(a) => {
                if ctx.four_octet_as {
                    out.put_u32(a.asn);
                } else {
                    out.put_u16(u16::try_from(a.asn).unwrap_or(AS_TRANS));
                }
                out.put_slice(&a.address.octets());
            }
            AttrValue::Communities(c) => c.iter().for_each(|v| out.put_u32(*v)),
            AttrValue::ClusterList(c) => c.iter().for_each(|a| out.put_slice(&a.octets())),
            AttrValue::MpReach(m) => m.encode(ctx, out)?,
            AttrValue::MpUnreach(m) => m.encode(ctx, out)?,
            AttrValue::ExtendedCommunities(c) => c.iter().for_each(|v| out.put_slice(v)),
            AttrValue::As4Path(p) => p.encode(true, out)?,
            AttrValue::As4Aggregator(a) => {
                out.put_u32(a.asn);
                out.put_slice(&a.address.octets());
            }
            AttrValue::Ipv6ExtendedCommunities(c) => c.iter().for_each(|v| out.put_slice(v)),
            AttrValue::LargeCommunities(c) => c.iter().for_each(|l| {
                out.put_u32(l.global);
                out.put_u32(l.local1);
                out.put_u32(l.local2);
            }),
            AttrValue::Opaque { value, .. } => out.put_slice(value),
        }
        Ok(())
    }
}

/// The outcome of decoding one attribute.
#[derive(Debug)]
pub(crate) enum AttrDecode {
    /// A usable attribute.
    Keep(PathAttribute),
    /// An unknown optional non-transitive attribute: dropped quietly
    /// (RFC 4271 §5).
    Drop,
    /// Malformed: the problem, and the RFC 7606 action.
    Fault(AttrProblem, FaultAction),
}

/// Decodes the value of one attribute whose header has been read.
/// `raw` is the whole attribute, returned in NOTIFICATION data.
pub(crate) fn decode(
    flags: u8,
    attr_code: u8,
    value: &[u8],
    raw: &[u8],
    ctx: &DecodeContext,
) -> Result<AttrDecode, UpdateError> {
    let Some(expected) = expected_flags(attr_code) else {
        // RFC 4271 §6.3: an unrecognised attribute flagged well-known.
        if flags & flag::OPTIONAL == 0 {
            return Err(UpdateError::UnrecognizedWellKnown {
                code: attr_code,
                attribute: raw.to_vec(),
            });
        }
        if flags & flag::TRANSITIVE == 0 {
            return Ok(AttrDecode::Drop);
        }
        return Ok(AttrDecode::Keep(PathAttribute {
            flags,
            value: AttrValue::Opaque {
                code: attr_code,
                value: value.to_vec(),
            },
        }));
    };
    let is_mp = matches!(attr_code, code::MP_REACH_NLRI | code::MP_UNREACH_NLRI);
    let mp_error = || UpdateError::MalformedMpAttribute {
        code: attr_code,
        attribute: raw.to_vec(),
    };
    let action = malformed_action(attr_code, ctx);
    // RFC 7606 §3c: the optional and transitive bits must match the type;
    // Partial only makes sense on optional transitive attributes.
    let mask = flag::OPTIONAL | flag::TRANSITIVE;
    let partial_ok = expected == mask || flags & flag::PARTIAL == 0;
    if flags & mask != expected || !partial_ok {
        if is_mp {
            return Err(mp_error());
        }
        return Ok(AttrDecode::Fault(
            AttrProblem::FlagsConflict { flags },
            action,
        ));
    }
    let parsed = match attr_code {
        code::MP_REACH_NLRI => {
            return match MpReach::decode(value, ctx) {
                Ok(m) => Ok(AttrDecode::Keep(PathAttribute {
                    flags,
                    value: AttrValue::MpReach(m),
                })),
                Err(mp::MpProblem::BadPrefix(field)) => {
                    Err(UpdateError::InvalidNetworkField { field })
                }
                Err(mp::MpProblem::Malformed) => Err(mp_error()),
            };
        }
        code::MP_UNREACH_NLRI => {
            return match MpUnreach::decode(value, ctx) {
                Ok(m) => Ok(AttrDecode::Keep(PathAttribute {
                    flags,
                    value: AttrValue::MpUnreach(m),
                })),
                Err(mp::MpProblem::BadPrefix(field)) => {
                    Err(UpdateError::InvalidNetworkField { field })
                }
                Err(mp::MpProblem::Malformed) => Err(mp_error()),
            };
        }
        _ => decode_value(attr_code, value, ctx),
    };
    Ok(match parsed {
        Ok(v) => match semantic_fault(&v, ctx) {
            Some(problem) => AttrDecode::Fault(problem, semantic_action(&v, action)),
            None => AttrDecode::Keep(PathAttribute { flags, value: v }),
        },
        Err(problem) => AttrDecode::Fault(problem, action),
    })
}

fn bad_length(value: &[u8]) -> AttrProblem {
    AttrProblem::BadLength {
        length: value.len(),
    }
}

/// Parses a value that must be exactly one `parser` item.
fn exactly<'a, T>(
    value: &'a [u8],
    parser: impl Fn(&'a [u8]) -> reader::PResult<'a, T>,
) -> Result<T, AttrProblem> {
    match parser(value) {
        Ok(([], v)) => Ok(v),
        _ => Err(bad_length(value)),
    }
}

/// Parses a non-empty list of `width`-byte items (COMMUNITIES, CLUSTER_LIST,
/// LARGE_COMMUNITY: "length 0 or not a multiple of" is malformed).
fn list<'a, T>(
    value: &'a [u8],
    width: usize,
    allow_empty: bool,
    item: impl FnMut(&'a [u8]) -> reader::PResult<'a, T>,
) -> Result<Vec<T>, AttrProblem> {
    if (value.is_empty() && !allow_empty) || !value.len().is_multiple_of(width) {
        return Err(bad_length(value));
    }
    reader::all(value, item).ok_or_else(|| bad_length(value))
}

fn decode_value(
    attr_code: u8,
    value: &[u8],
    ctx: &DecodeContext,
) -> Result<AttrValue, AttrProblem> {
    Ok(match attr_code {
        code::ORIGIN => match exactly(value, reader::u8)? {
            0 => AttrValue::Origin(Origin::Igp),
            1 => AttrValue::Origin(Origin::Egp),
            2 => AttrValue::Origin(Origin::Incomplete),
            _ => return Err(AttrProblem::InvalidValue),
        },
        code::AS_PATH => AttrValue::AsPath(AsPath::decode(value, ctx.four_octet_as)?),
        code::NEXT_HOP => AttrValue::NextHop(exactly(value, reader::ipv4)?),
        code::MULTI_EXIT_DISC => AttrValue::MultiExitDisc(exactly(value, reader::u32)?),
        code::LOCAL_PREF => AttrValue::LocalPref(exactly(value, reader::u32)?),
        code::ATOMIC_AGGREGATE => {
            if !value.is_empty() {
                return Err(bad_length(value));
            }
            AttrValue::AtomicAggregate
        }
        code::AGGREGATOR => {
            let agg = if ctx.four_octet_as {
                exactly(value, |i| {
                    let (i, asn) = reader::u32(i)?;
                    let (i, address) = reader::ipv4(i)?;
                    Ok((i, Aggregator { asn, address }))
                })?
            } else {
                exactly(value, |i| {
                    let (i, asn) = reader::u16(i)?;
                    let (i, address) = reader::ipv4(i)?;
                    Ok((
                        i,
                        Aggregator {
                            asn: u32::from(asn),
                            address,
                        },
                    ))
                })?
            };
            if agg.asn == 0 {
                return Err(AttrProblem::ZeroAs);
            }
            AttrValue::Aggregator(agg)
        }
        code::COMMUNITIES => AttrValue::Communities(list(value, 4, false, reader::u32)?),
        code::ORIGINATOR_ID => AttrValue::OriginatorId(exactly(value, reader::ipv4)?),
        code::CLUSTER_LIST => AttrValue::ClusterList(list(value, 4, false, reader::ipv4)?),
        code::EXTENDED_COMMUNITIES => {
            AttrValue::ExtendedCommunities(list(value, 8, true, reader::array::<8>)?)
        }
        code::AS4_PATH => AttrValue::As4Path(AsPath::decode(value, true)?),
        code::AS4_AGGREGATOR => {
            let agg = exactly(value, |i| {
                let (i, asn) = reader::u32(i)?;
                let (i, address) = reader::ipv4(i)?;
                Ok((i, Aggregator { asn, address }))
            })?;
            if agg.asn == 0 {
                return Err(AttrProblem::ZeroAs);
            }
            AttrValue::As4Aggregator(agg)
        }
        code::IPV6_EXTENDED_COMMUNITIES => {
            AttrValue::Ipv6ExtendedCommunities(list(value, 20, true, reader::array::<20>)?)
        }
        code::LARGE_COMMUNITY => AttrValue::LargeCommunities(list(value, 12, false, |i| {
            let (i, global) = reader::u32(i)?;
            let (i, local1) = reader::u32(i)?;
            let (i, local2) = reader::u32(i)?;
            Ok((
                i,
                LargeCommunity {
                    global,
                    local1,
                    local2,
                },
            ))
        })?),
        code::OTC => AttrValue::Otc(exactly(value, reader::u32)?),
        other => {
            if !tlv::well_formed(other, value) {
                return Err(AttrProblem::MalformedTlvs);
            }
            AttrValue::Opaque {
                code: other,
                value: value.to_vec(),
            }
        }
    })
}

/// Checks that need the session: a value that parses but must not be used.
fn semantic_fault(value: &AttrValue, ctx: &DecodeContext) -> Option<AttrProblem> {
    match value {
        AttrValue::NextHop(nh) => {
            let o = nh.octets();
            // RFC 7606 §7.3 / RFC 4271 §6.3: 0/8, loopback, multicast,
            // class E and our own address are not next hops.
            let martian = o.first().is_some_and(|&a| a == 0 || a == 127 || a >= 224)
                || ctx.local_address == Some(*nh);
            martian.then_some(AttrProblem::MartianNextHop(*nh))
        }
        AttrValue::LocalPref(_) if !ctx.is_ibgp() => Some(AttrProblem::LocalPrefFromExternal),
        AttrValue::As4Path(_) | AttrValue::As4Aggregator(_) if ctx.four_octet_as => {
            Some(AttrProblem::FromFourOctetPeer)
        }
        AttrValue::OriginatorId(id) if ctx.local_router_id == Some(*id) => {
            Some(AttrProblem::OriginatorIsUs)
        }
        AttrValue::ClusterList(list) if ctx.cluster_id.is_some_and(|c| list.contains(&c)) => {
            Some(AttrProblem::ClusterLoop)
        }
        _ => None,
    }
}

/// The action for a semantic fault: LOCAL_PREF from eBGP and AS4_* from a
/// 4-octet peer are discarded; a reflection loop means the route is ignored
/// (RFC 4456 §8), i.e. withdrawn; a martian next hop takes the NEXT_HOP
/// verdict.
fn semantic_action(value: &AttrValue, malformed: FaultAction) -> FaultAction {
    match value {
        AttrValue::LocalPref(_) | AttrValue::As4Path(_) | AttrValue::As4Aggregator(_) => {
            FaultAction::Discard
        }
        AttrValue::OriginatorId(_) | AttrValue::ClusterList(_) => FaultAction::TreatAsWithdraw,
        _ => malformed,
    }
}
