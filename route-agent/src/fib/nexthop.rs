//! Kernel nexthop objects (`ip nexthop`, `RTM_*NEXTHOP`; Linux ≥ 5.3),
//! byte for byte: netlink-packet-route does not model them.
//!
//! Why: the IPv4 FIB shares one `fib_info` among routes with the same next
//! hop, and finds it by a hash that covers the device but not the gateway,
//! so with thousands of node next hops on one device every new one is
//! compared with all earlier ones (`benches/README.md`: 10,000 routes
//! through 5,000 gateways cost every installer 0.35–0.64 s). A route that
//! names a nexthop object by id (`RTA_NH_ID`) skips that search.
//!
//! The cost is the shape operators see: `ip route` prints `B nhid N via NH
//! dev eth0` instead of Calico's `B via NH dev eth0 onlink`. So by default
//! ([`NexthopMode::Auto`]) the reconciler uses them only for large tables,
//! where they pay; `nexthop-objects: true` or `false` fixes the choice
//! (`Fib::set_nexthop_mode`). The userspace IPIP tunnel reads tunnel
//! gateways from route dumps, which carry a nexthop object's gateway and
//! device while `net.ipv4.nexthop_compat_mode` is 1 (the default); with 0
//! it resolves the object by id (`ipip/src/userspace/routes.rs`).
//!
//! Ours are the objects whose `nh_protocol` is our route protocol; their
//! ids are allocated from [`ID_BASE`] upwards, skipping every id in use.

use std::net::IpAddr;

use super::messages::{attributes, emit_attribute, u32_of};

/// `RTM_NEWNEXTHOP`.
pub const NEW_NEXTHOP: u16 = 104;
/// `RTM_DELNEXTHOP`.
pub const DEL_NEXTHOP: u16 = 105;
/// `RTM_GETNEXTHOP`.
pub const GET_NEXTHOP: u16 = 106;

const NHA_ID: u16 = 1;
const NHA_OIF: u16 = 5;
const NHA_GATEWAY: u16 = 6;
const RTNH_F_ONLINK: u32 = 4;

/// When gateway routes go through nexthop objects (config
/// `nexthop-objects: auto | true | false`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum NexthopMode {
    /// Every route carries its gateway: Calico's shapes, always.
    Off,
    /// Every gateway route names an object (kernels without objects get
    /// gateway routes).
    On,
    /// Large tables only: objects once more than [`AUTO_ON`] routes go
    /// through gateways, gateway routes again below [`AUTO_OFF`]. Small
    /// clusters keep Calico's shapes, where the install time is a few
    /// milliseconds either way; large ones avoid the kernel's per-route
    /// next-hop allocation and its search through every next hop on the
    /// device, which grows with the square of the nodes
    /// (`benches/README.md`: 5,000 nodes, 390 ms against 74 ms).
    #[default]
    Auto,
}

/// [`NexthopMode::Auto`] switches to objects above this many gateway
/// routes (about 500 nodes of two blocks each)...
pub const AUTO_ON: usize = 1000;
/// ...and back to gateway routes below this many: between the two the
/// form in the kernel stays, so a table that hovers around one number does
/// not flip every route back and forth, and a restart with the same plan
/// changes nothing.
pub const AUTO_OFF: usize = 500;

impl NexthopMode {
    /// Whether a plan with `gateway_routes` routes through gateways goes
    /// through objects, given whether ours in the kernel already do.
    pub fn use_objects(self, gateway_routes: usize, objects_now: bool) -> bool {
        match self {
            NexthopMode::Off => false,
            NexthopMode::On => true,
            NexthopMode::Auto if objects_now => gateway_routes >= AUTO_OFF,
            NexthopMode::Auto => gateway_routes > AUTO_ON,
        }
    }
}

/// The first id we allocate: well above the small ids `ip nexthop` users
/// and FRR's zebra pick, so ours rarely meet theirs (every id in use is
/// skipped anyway).
pub const ID_BASE: u32 = 0x6200_0000;

/// What a nexthop object does: the part that decides whether a route can
/// use it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NexthopKey {
    /// `NHA_GATEWAY`.
    pub via: IpAddr,
    /// `NHA_OIF`.
    pub oif: u32,
    /// `RTNH_F_ONLINK` in `nh_flags`.
    pub onlink: bool,
}

/// One nexthop object as the kernel holds it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KernelNexthop {
    /// `NHA_ID`.
    pub id: u32,
    /// `nh_protocol`: who made it.
    pub protocol: u8,
    /// Gateway, device and flag; `None` for objects that are not a single
    /// gateway (groups, blackholes, devices without gateway).
    pub key: Option<NexthopKey>,
}

/// Reads the body of a dumped `RTM_NEWNEXTHOP` (`struct nhmsg`: family,
/// scope, protocol, reserved, flags; then attributes). `None` for
/// malformed bytes or an object without id.
pub fn parse_bytes(body: &[u8]) -> Option<KernelNexthop> {
    let [_family, _scope, protocol, _reserved] = *body.first_chunk::<4>()?;
    let flags = u32_of(body.get(4..8)?)?;
    let (mut id, mut oif, mut via) = (None, None, None);
    for (kind, value) in attributes(body.get(8..)?) {
        match kind {
            NHA_ID => id = u32_of(value),
            NHA_OIF => oif = u32_of(value),
            NHA_GATEWAY => {
                via = match value.len() {
                    4 => Some(IpAddr::from(*value.first_chunk::<4>()?)),
                    16 => Some(IpAddr::from(*value.first_chunk::<16>()?)),
                    _ => None,
                }
            }
            _ => {}
        }
    }
    let key = match (via, oif) {
        (Some(via), Some(oif)) => Some(NexthopKey {
            via,
            oif,
            onlink: flags & RTNH_F_ONLINK != 0,
        }),
        _ => None,
    };
    Some(KernelNexthop {
        id: id?,
        protocol,
        key,
    })
}

fn emit_nhmsg(buf: &mut Vec<u8>, family: u8, protocol: u8, flags: u32) {
    buf.extend_from_slice(&[family, 0, protocol, 0]);
    buf.extend_from_slice(&flags.to_ne_bytes());
}

/// The body of `ip nexthop add id ID via VIA dev OIF [onlink] proto P`
/// (send as [`NEW_NEXTHOP`] with `NLM_F_CREATE | NLM_F_REPLACE`).
pub fn emit_new(buf: &mut Vec<u8>, id: u32, key: &NexthopKey, protocol: u8) {
    let family = match key.via {
        IpAddr::V4(_) => libc::AF_INET as u8,
        IpAddr::V6(_) => libc::AF_INET6 as u8,
    };
    let flags = if key.onlink { RTNH_F_ONLINK } else { 0 };
    emit_nhmsg(buf, family, protocol, flags);
    emit_attribute(buf, NHA_ID, &id.to_ne_bytes());
    emit_attribute(buf, NHA_OIF, &key.oif.to_ne_bytes());
    match key.via {
        IpAddr::V4(a) => emit_attribute(buf, NHA_GATEWAY, &a.octets()),
        IpAddr::V6(a) => emit_attribute(buf, NHA_GATEWAY, &a.octets()),
    }
}

/// The body of `ip nexthop del id ID` (send as [`DEL_NEXTHOP`]).
pub fn emit_del(buf: &mut Vec<u8>, id: u32) {
    emit_nhmsg(buf, libc::AF_UNSPEC as u8, 0, 0);
    emit_attribute(buf, NHA_ID, &id.to_ne_bytes());
}

/// The body of a dump request for every nexthop object.
pub fn dump_request() -> Vec<u8> {
    let mut buf = Vec::with_capacity(8);
    emit_nhmsg(&mut buf, libc::AF_UNSPEC as u8, 0, 0);
    buf
}

/// Hands out ids for new objects: from [`ID_BASE`] up, skipping `used`.
#[derive(Debug)]
pub struct IdAllocator {
    used: std::collections::HashSet<u32>,
    next: u32,
}

impl IdAllocator {
    /// An allocator that never returns an id in `used`.
    pub fn new(used: std::collections::HashSet<u32>) -> Self {
        Self {
            used,
            next: ID_BASE,
        }
    }

    /// The next free id (`None` once the id space is exhausted).
    pub fn allocate(&mut self) -> Option<u32> {
        while self.used.contains(&self.next) {
            self.next = self.next.checked_add(1)?;
        }
        let id = self.next;
        self.used.insert(id);
        self.next = self.next.checked_add(1)?;
        Some(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_takes_objects_above_1000_gateway_routes_and_leaves_them_below_500() {
        let auto = NexthopMode::Auto;
        assert!(!auto.use_objects(1000, false));
        assert!(auto.use_objects(1001, false));
        assert!(auto.use_objects(500, true));
        assert!(!auto.use_objects(499, true));
        // Fixed settings ignore the table.
        assert!(NexthopMode::On.use_objects(0, false));
        assert!(!NexthopMode::Off.use_objects(100_000, true));
    }

    #[test]
    fn a_written_nexthop_reads_back_with_its_key_and_protocol() {
        let key = NexthopKey {
            via: "10.0.0.7".parse().unwrap(),
            oif: 3,
            onlink: true,
        };
        let mut body = Vec::new();
        emit_new(&mut body, ID_BASE + 5, &key, 98);
        assert_eq!(
            parse_bytes(&body),
            Some(KernelNexthop {
                id: ID_BASE + 5,
                protocol: 98,
                key: Some(key)
            })
        );
        let v6 = NexthopKey {
            via: "fd00::7".parse().unwrap(),
            oif: 4,
            onlink: false,
        };
        body.clear();
        emit_new(&mut body, 9, &v6, 98);
        assert_eq!(parse_bytes(&body).and_then(|n| n.key), Some(v6));
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
            let _ = parse_bytes(&body[..len]);
        }
        assert_eq!(parse_bytes(&dump_request()), None, "no NHA_ID");
    }

    #[test]
    fn ids_start_at_the_base_and_skip_those_in_use() {
        let mut ids = IdAllocator::new([ID_BASE, ID_BASE + 2].into_iter().collect());
        assert_eq!(ids.allocate(), Some(ID_BASE + 1));
        assert_eq!(ids.allocate(), Some(ID_BASE + 3));
    }
}
