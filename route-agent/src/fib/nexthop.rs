//! When and how the FIB uses kernel nexthop objects (`ip nexthop`; Linux
//! ≥ 5.3). Their messages are `netlink::nexthop`'s.
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

// Bytes from outside the process are parsed here: no panics and no
// unchecked arithmetic outside tests (the lint set of bgp-core's `wire`).
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::panic,
        clippy::arithmetic_side_effects
    )
)]

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
    fn ids_start_at_the_base_and_skip_those_in_use() {
        let mut ids = IdAllocator::new([ID_BASE, ID_BASE + 2].into_iter().collect());
        assert_eq!(ids.allocate(), Some(ID_BASE + 1));
        assert_eq!(ids.allocate(), Some(ID_BASE + 3));
    }
}
