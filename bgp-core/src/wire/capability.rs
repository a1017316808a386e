//! OPEN capabilities (RFC 5492) and the ones this speaker understands.

use bytes::{BufMut, BytesMut};

use super::error::{EncodeError, OpenError, OpenPart};
use super::iana::capability as code;
use super::reader;

/// One family in a graceful-restart capability (RFC 4724 §3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct GracefulRestartFamily {
    /// AFI.
    pub afi: u16,
    /// SAFI.
    pub safi: u8,
    /// Flags; bit 0x80 is "forwarding state preserved".
    pub flags: u8,
}

/// One family in a long-lived graceful-restart capability (RFC 9494 §3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct LlgrFamily {
    /// AFI.
    pub afi: u16,
    /// SAFI.
    pub safi: u8,
    /// Flags; bit 0x80 is "forwarding state preserved".
    pub flags: u8,
    /// Long-lived stale time in seconds (24 bits).
    pub stale_time: u32,
}

/// One family in an ADD-PATH capability (RFC 7911 §4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AddPathFamily {
    /// AFI.
    pub afi: u16,
    /// SAFI.
    pub safi: u8,
    /// 1 = can receive, 2 = can send, 3 = both.
    pub send_receive: u8,
}

/// One entry of the extended next hop capability (RFC 8950 §3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ExtendedNextHopFamily {
    /// NLRI AFI.
    pub afi: u16,
    /// NLRI SAFI (16 bits here, unlike elsewhere).
    pub safi: u16,
    /// AFI of the next hop.
    pub next_hop_afi: u16,
}

/// Graceful restart flags in the 4 high bits of the restart-time field.
pub mod gr_flags {
    /// Restart State: the sender has restarted (RFC 4724 §3).
    pub const RESTART_STATE: u8 = 0x8;
    /// Notification: graceful restart also covers NOTIFICATIONs (RFC 8538).
    pub const NOTIFICATION: u8 = 0x4;
    /// Per-family flag: forwarding state was preserved.
    pub const FORWARDING_PRESERVED: u8 = 0x80;
}

/// One capability of an OPEN.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Capability {
    /// Multiprotocol extensions for one family (RFC 4760 §8).
    Multiprotocol {
        /// AFI.
        afi: u16,
        /// SAFI.
        safi: u8,
    },
    /// Route refresh (RFC 2918).
    RouteRefresh,
    /// Extended next hop encoding (RFC 8950).
    ExtendedNextHop(Vec<ExtendedNextHopFamily>),
    /// Extended messages up to 65535 bytes (RFC 8654).
    ExtendedMessage,
    /// Graceful restart (RFC 4724).
    GracefulRestart {
        /// The 4 flag bits ([`gr_flags`]).
        flags: u8,
        /// Restart time in seconds (12 bits).
        restart_time: u16,
        /// Families whose forwarding state the sender can preserve.
        families: Vec<GracefulRestartFamily>,
    },
    /// 4-octet AS numbers, carrying the sender's AS (RFC 6793).
    FourOctetAs(u32),
    /// ADD-PATH (RFC 7911).
    AddPath(Vec<AddPathFamily>),
    /// Enhanced route refresh (RFC 7313).
    EnhancedRouteRefresh,
    /// Long-lived graceful restart (RFC 9494).
    LongLivedGracefulRestart(Vec<LlgrFamily>),
    /// Any other capability, kept byte for byte.
    Unknown {
        /// Capability code.
        code: u8,
        /// Capability value.
        value: Vec<u8>,
    },
}

impl Capability {
    /// The capability code.
    pub fn code(&self) -> u8 {
        match self {
            Capability::Multiprotocol { .. } => code::MULTIPROTOCOL,
            Capability::RouteRefresh => code::ROUTE_REFRESH,
            Capability::ExtendedNextHop(_) => code::EXTENDED_NEXT_HOP,
            Capability::ExtendedMessage => code::EXTENDED_MESSAGE,
            Capability::GracefulRestart { .. } => code::GRACEFUL_RESTART,
            Capability::FourOctetAs(_) => code::FOUR_OCTET_AS,
            Capability::AddPath(_) => code::ADD_PATH,
            Capability::EnhancedRouteRefresh => code::ENHANCED_ROUTE_REFRESH,
            Capability::LongLivedGracefulRestart(_) => code::LONG_LIVED_GRACEFUL_RESTART,
            Capability::Unknown { code, .. } => *code,
        }
    }

    /// Parses one capability value of type `cap_code`.
    pub(crate) fn decode(cap_code: u8, value: &[u8]) -> Result<Capability, OpenError> {
        let malformed = OpenError::Malformed {
            part: OpenPart::Capability(cap_code),
        };
        let empty = |cap: Capability| {
            if value.is_empty() {
                Ok(cap)
            } else {
                Err(malformed.clone())
            }
        };
        match cap_code {
            code::MULTIPROTOCOL => {
                let (afi, _reserved, safi) = exact(value, |i| {
                    let (i, afi) = reader::u16(i)?;
                    let (i, reserved) = reader::u8(i)?;
                    let (i, safi) = reader::u8(i)?;
                    Ok((i, (afi, reserved, safi)))
                })
                .ok_or(malformed)?;
                Ok(Capability::Multiprotocol { afi, safi })
            }
            code::ROUTE_REFRESH => empty(Capability::RouteRefresh),
            code::EXTENDED_MESSAGE => empty(Capability::ExtendedMessage),
            code::ENHANCED_ROUTE_REFRESH => empty(Capability::EnhancedRouteRefresh),
            code::FOUR_OCTET_AS => exact(value, reader::u32)
                .map(Capability::FourOctetAs)
                .ok_or(malformed),
            code::EXTENDED_NEXT_HOP => reader::all(value, |i| {
                let (i, afi) = reader::u16(i)?;
                let (i, safi) = reader::u16(i)?;
                let (i, next_hop_afi) = reader::u16(i)?;
                Ok((
                    i,
                    ExtendedNextHopFamily {
                        afi,
                        safi,
                        next_hop_afi,
                    },
                ))
            })
            .map(Capability::ExtendedNextHop)
            .ok_or(malformed),
            code::GRACEFUL_RESTART => {
                let (rest, word) = reader::u16(value).map_err(|_| malformed.clone())?;
                let families = reader::all(rest, |i| {
                    let (i, afi) = reader::u16(i)?;
                    let (i, safi) = reader::u8(i)?;
                    let (i, flags) = reader::u8(i)?;
                    Ok((i, GracefulRestartFamily { afi, safi, flags }))
                })
                .ok_or(malformed)?;
                Ok(Capability::GracefulRestart {
                    flags: u8::try_from(word >> 12).unwrap_or(0),
                    restart_time: word & 0x0fff,
                    families,
                })
            }
            code::ADD_PATH => reader::all(value, |i| {
                let (i, afi) = reader::u16(i)?;
                let (i, safi) = reader::u8(i)?;
                let (i, send_receive) = reader::u8(i)?;
                Ok((
                    i,
                    AddPathFamily {
                        afi,
                        safi,
                        send_receive,
                    },
                ))
            })
            .map(Capability::AddPath)
            .ok_or(malformed),
            code::LONG_LIVED_GRACEFUL_RESTART => reader::all(value, |i| {
                let (i, afi) = reader::u16(i)?;
                let (i, safi) = reader::u8(i)?;
                let (i, flags) = reader::u8(i)?;
                let (i, stale_time) = reader::u24(i)?;
                Ok((
                    i,
                    LlgrFamily {
                        afi,
                        safi,
                        flags,
                        stale_time,
                    },
                ))
            })
            .map(Capability::LongLivedGracefulRestart)
            .ok_or(malformed),
            other => Ok(Capability::Unknown {
                code: other,
                value: value.to_vec(),
            }),
        }
    }

    /// Writes code, length and value.
    pub(crate) fn encode(&self, out: &mut BytesMut) -> Result<(), EncodeError> {
        out.put_u8(self.code());
        let len_at = out.len();
        out.put_u8(0);
        match self {
            Capability::Multiprotocol { afi, safi } => {
                out.put_u16(*afi);
                out.put_u8(0);
                out.put_u8(*safi);
            }
            Capability::RouteRefresh
            | Capability::ExtendedMessage
            | Capability::EnhancedRouteRefresh => {}
            Capability::ExtendedNextHop(families) => {
                for f in families {
                    out.put_u16(f.afi);
                    out.put_u16(f.safi);
                    out.put_u16(f.next_hop_afi);
                }
            }
            Capability::GracefulRestart {
                flags,
                restart_time,
                families,
            } => {
                out.put_u16((u16::from(*flags & 0x0f) << 12) | (restart_time & 0x0fff));
                for f in families {
                    out.put_u16(f.afi);
                    out.put_u8(f.safi);
                    out.put_u8(f.flags);
                }
            }
            Capability::FourOctetAs(asn) => out.put_u32(*asn),
            Capability::AddPath(families) => {
                for f in families {
                    out.put_u16(f.afi);
                    out.put_u8(f.safi);
                    out.put_u8(f.send_receive);
                }
            }
            Capability::LongLivedGracefulRestart(families) => {
                for f in families {
                    out.put_u16(f.afi);
                    out.put_u8(f.safi);
                    out.put_u8(f.flags);
                    let t = f.stale_time.min(0x00ff_ffff).to_be_bytes();
                    out.put_slice(t.get(1..).unwrap_or_default());
                }
            }
            Capability::Unknown { value, .. } => out.put_slice(value),
        }
        let length = out.len().saturating_sub(len_at).saturating_sub(1);
        let byte = u8::try_from(length).map_err(|_| EncodeError::FieldTooLong {
            what: "capability",
            length,
        })?;
        if let Some(slot) = out.get_mut(len_at) {
            *slot = byte;
        }
        Ok(())
    }
}

/// Runs `parser` and requires it to consume `value` exactly.
fn exact<'a, T>(value: &'a [u8], parser: impl Fn(&'a [u8]) -> reader::PResult<'a, T>) -> Option<T> {
    match parser(value) {
        Ok(([], v)) => Some(v),
        _ => None,
    }
}
