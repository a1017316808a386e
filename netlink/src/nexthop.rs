//! Nexthop objects (`ip nexthop`, `RTM_*NEXTHOP`, <linux/nexthop.h>; Linux
//! ≥ 5.3) ↔ values, straight from and into bytes: netlink-packet-route
//! 0.34 does not model them. The one place their bodies are parsed: the
//! FIB (its own objects) and the userspace tunnel (resolving routes that
//! name an object) both read [`Nexthop`].
//!
//! ```text
//! struct nhmsg: family, scope, protocol, reserved (1 byte each), flags (u32)
//! then NHA_ID, NHA_GROUP, NHA_BLACKHOLE, NHA_OIF, NHA_GATEWAY, …
//! ```

use std::net::IpAddr;

use crate::attr::{self, address_of, attributes, u32_of};
use crate::consts::{
    NEXTHOP_GRP_LEN, NHA_BLACKHOLE, NHA_GATEWAY, NHA_GROUP, NHA_ID, NHA_OIF, NHMSG_LEN,
    RTNH_F_ONLINK,
};
use crate::route::{FAMILY_ANY, FAMILY_V4, FAMILY_V6};

/// What a single-gateway object does: the part that decides whether a
/// route can use it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NexthopKey {
    /// `NHA_GATEWAY`.
    pub via: IpAddr,
    /// `NHA_OIF`.
    pub oif: u32,
    /// `RTNH_F_ONLINK` in `nh_flags`.
    pub onlink: bool,
}

/// One nexthop object as the kernel reports it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Nexthop {
    /// `NHA_ID`.
    pub id: u32,
    /// `nh_family`.
    pub family: u8,
    /// `nh_protocol`: who made it.
    pub protocol: u8,
    /// `nh_flags` (`RTNH_F_ONLINK`, …).
    pub flags: u32,
    /// `NHA_OIF`, if it has a device.
    pub oif: Option<u32>,
    /// `NHA_GATEWAY`, if it has one.
    pub gateway: Option<IpAddr>,
    /// The member ids of a group object (`NHA_GROUP`), in order.
    pub group: Vec<u32>,
    /// `NHA_BLACKHOLE`.
    pub blackhole: bool,
}

impl Nexthop {
    /// Reads the body of a nexthop message (the bytes after the
    /// `nlmsghdr`). `None` for a body shorter than `struct nhmsg`, and for
    /// an object without id.
    pub fn parse(body: &[u8]) -> Option<Self> {
        let [family, _scope, protocol, _reserved] = *body.first_chunk::<4>()?;
        let mut nexthop = Self {
            family,
            protocol,
            flags: u32_of(body.get(4..NHMSG_LEN)?)?,
            ..Self::default()
        };
        let mut id = None;
        for (kind, value) in attributes(body.get(NHMSG_LEN..)?) {
            match kind {
                NHA_ID => id = u32_of(value),
                NHA_OIF => nexthop.oif = u32_of(value),
                NHA_GATEWAY => nexthop.gateway = address_of(value),
                NHA_BLACKHOLE => nexthop.blackhole = true,
                // struct nexthop_grp: id (u32), weight, weight_high,
                // reserved.
                NHA_GROUP => {
                    nexthop.group = value
                        .chunks_exact(NEXTHOP_GRP_LEN)
                        .filter_map(u32_of)
                        .collect();
                }
                _ => {}
            }
        }
        nexthop.id = id?;
        Some(nexthop)
    }

    /// Gateway, device and flag of a single-gateway object; `None` for
    /// groups, blackholes and device-only objects.
    pub fn key(&self) -> Option<NexthopKey> {
        Some(NexthopKey {
            via: self.gateway?,
            oif: self.oif?,
            onlink: self.flags & RTNH_F_ONLINK != 0,
        })
    }
}

fn emit_nhmsg(buf: &mut Vec<u8>, family: u8, protocol: u8, flags: u32) {
    buf.extend_from_slice(&[family, 0, protocol, 0]);
    buf.extend_from_slice(&flags.to_ne_bytes());
}

/// Appends the body of `ip nexthop replace id ID dev OIF via VIA [onlink]
/// proto P` (send as `RTM_NEWNEXTHOP` with `NLM_F_CREATE | NLM_F_REPLACE`),
/// byte for byte what iproute2 sends for that command.
pub fn emit_new(buf: &mut Vec<u8>, id: u32, key: &NexthopKey, protocol: u8) {
    let family = match key.via {
        IpAddr::V4(_) => FAMILY_V4,
        IpAddr::V6(_) => FAMILY_V6,
    };
    let flags = if key.onlink { RTNH_F_ONLINK } else { 0 };
    emit_nhmsg(buf, family, protocol, flags);
    attr::emit_u32(buf, NHA_ID, id);
    attr::emit_u32(buf, NHA_OIF, key.oif);
    attr::emit_address(buf, NHA_GATEWAY, key.via);
}

/// Appends the body of `ip nexthop del id ID` (send as `RTM_DELNEXTHOP`).
pub fn emit_del(buf: &mut Vec<u8>, id: u32) {
    emit_nhmsg(buf, FAMILY_ANY, 0, 0);
    attr::emit_u32(buf, NHA_ID, id);
}

/// The body of a dump request for every nexthop object (`ip nexthop
/// show`): an all-zero `struct nhmsg`.
pub fn dump_request() -> [u8; NHMSG_LEN] {
    [0; NHMSG_LEN]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_written_nexthop_reads_back_with_its_key_and_protocol() {
        let key = NexthopKey {
            via: "10.0.0.7".parse().unwrap(),
            oif: 3,
            onlink: true,
        };
        let mut body = Vec::new();
        emit_new(&mut body, 0x6200_0005, &key, 98);
        let read = Nexthop::parse(&body).unwrap();
        assert_eq!(
            (read.id, read.protocol, read.key()),
            (0x6200_0005, 98, Some(key))
        );
        let v6 = NexthopKey {
            via: "fd00::7".parse().unwrap(),
            oif: 4,
            onlink: false,
        };
        body.clear();
        emit_new(&mut body, 9, &v6, 98);
        assert_eq!(Nexthop::parse(&body).and_then(|n| n.key()), Some(v6));
    }

    #[test]
    fn truncated_or_idless_bodies_are_refused_without_panicking() {
        let mut body = Vec::new();
        emit_new(
            &mut body,
            1,
            &NexthopKey {
                via: "10.0.0.7".parse().unwrap(),
                oif: 3,
                onlink: false,
            },
            98,
        );
        for len in 0..body.len() {
            let _ = Nexthop::parse(&body[..len]);
        }
        assert_eq!(Nexthop::parse(&dump_request()), None, "no NHA_ID");
    }

    /// `ip nexthop add id 7 via 10.91.0.2 dev tunl0 onlink` (ifindex 4),
    /// laid out per linux/nexthop.h: struct nhmsg (AF_INET, scope 0,
    /// protocol 4 boot, flags RTNH_F_ONLINK), then NHA_ID, NHA_GATEWAY,
    /// NHA_OIF.
    #[test]
    fn parses_a_nexthop_message_body() {
        let mut body = vec![2, 0, 4, 0];
        body.extend_from_slice(&4u32.to_ne_bytes());
        attr::emit_u32(&mut body, NHA_ID, 7);
        attr::emit(&mut body, NHA_GATEWAY, &[10, 91, 0, 2]);
        attr::emit_u32(&mut body, NHA_OIF, 4);
        assert_eq!(
            Nexthop::parse(&body),
            Some(Nexthop {
                id: 7,
                family: 2,
                protocol: 4,
                flags: RTNH_F_ONLINK,
                oif: Some(4),
                gateway: Some("10.91.0.2".parse().unwrap()),
                group: Vec::new(),
                blackhole: false,
            })
        );
        // Cut anywhere, it does not panic.
        for cut in 0..body.len() {
            let _ = Nexthop::parse(&body[..cut]);
        }
    }

    #[test]
    fn a_group_lists_its_members_and_has_no_key() {
        let mut body = vec![0; NHMSG_LEN];
        attr::emit_u32(&mut body, NHA_ID, 20);
        // Members 8 and 9, weights 0.
        let mut group = Vec::new();
        for id in [8u32, 9] {
            group.extend_from_slice(&id.to_ne_bytes());
            group.extend_from_slice(&[0; 4]);
        }
        attr::emit(&mut body, NHA_GROUP, &group);
        let n = Nexthop::parse(&body).unwrap();
        assert_eq!((n.key(), n.group), (None, vec![8, 9]));
    }
}
