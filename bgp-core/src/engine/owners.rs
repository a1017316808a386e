//! Block ownership: which node may announce routes inside which pod block.
//!
//! A datastore (Kubernetes Node objects, etcd records) knows which node
//! owns each pod block. Given that, a route inside an owned block is
//! accepted only with the owner's address as NEXT_HOP, at import, before
//! the RIB: a node announcing a neighbour's block then changes no route
//! anywhere, neither on the node that hears it nor, through reflection,
//! further on. Routes outside every owned block are left to the import
//! policy.

use std::collections::HashMap;
use std::net::IpAddr;

use ipnetwork::IpNetwork;
use serde::{Deserialize, Serialize};

use crate::rib::NextHop;
use crate::rib::table::{AddrKey, NetKey, V6Key};

/// A pod block and the address of the node that owns it: routes inside
/// `block` are accepted only with `next_hop` as their NEXT_HOP.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
#[non_exhaustive]
pub struct BlockOwner {
    /// The block.
    pub block: IpNetwork,
    /// Its owner's address.
    pub next_hop: IpAddr,
}

impl BlockOwner {
    /// `block` is owned by the node at `next_hop`.
    pub fn new(block: IpNetwork, next_hop: IpAddr) -> BlockOwner {
        BlockOwner { block, next_hop }
    }
}

/// Owned blocks, looked up by longest match per family.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Owners {
    v4: HashMap<(u32, u8), IpAddr>,
    v6: HashMap<(V6Key, u8), IpAddr>,
    /// Prefix lengths present, longest first.
    lens_v4: Vec<u8>,
    lens_v6: Vec<u8>,
}

impl Owners {
    /// The table for `owners` (a later entry for the same block wins).
    pub(crate) fn new(owners: &[BlockOwner]) -> Owners {
        let mut t = Owners::default();
        for o in owners {
            match NetKey::of(&o.block) {
                NetKey::V4(a, l) => {
                    t.v4.insert((a, l), o.next_hop);
                    t.lens_v4.push(l);
                }
                NetKey::V6(a, l) => {
                    t.v6.insert((a, l), o.next_hop);
                    t.lens_v6.push(l);
                }
            }
        }
        for lens in [&mut t.lens_v4, &mut t.lens_v6] {
            lens.sort_unstable_by(|a, b| b.cmp(a));
            lens.dedup();
        }
        t
    }

    /// Whether no block is owned.
    pub(crate) fn is_empty(&self) -> bool {
        self.v4.is_empty() && self.v6.is_empty()
    }

    /// The owner of the most specific owned block holding `prefix`.
    pub(crate) fn owner(&self, prefix: &IpNetwork) -> Option<IpAddr> {
        match NetKey::of(prefix) {
            NetKey::V4(a, l) => self
                .lens_v4
                .iter()
                .filter(|&&len| len <= l)
                .find_map(|&len| {
                    let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
                    self.v4.get(&(a & mask, len)).copied()
                }),
            NetKey::V6(a, l) => self
                .lens_v6
                .iter()
                .filter(|&&len| len <= l)
                .find_map(|&len| {
                    let key = a.network(len).map(|n| NetKey::of(&n))?;
                    match key {
                        NetKey::V6(masked, _) => self.v6.get(&(masked, len)).copied(),
                        NetKey::V4(..) => None,
                    }
                }),
        }
    }

    /// Whether a route to `prefix` via `next_hop` may be accepted.
    pub(crate) fn allows(&self, prefix: &IpNetwork, next_hop: &NextHop) -> bool {
        match self.owner(prefix) {
            None => true,
            Some(owner) => match (next_hop, owner) {
                (NextHop::V4(a), IpAddr::V4(o)) => *a == o,
                (NextHop::V6 { global, .. }, IpAddr::V6(o)) => *global == o,
                // An IPv4 block's owner reached over IPv6 (RFC 8950), or
                // the other way round: not the owner's address.
                _ => false,
            },
        }
    }

    /// Whether going from `self` to `new` can make a route acceptable that
    /// `self` refused: an owner changed or a block stopped being owned.
    pub(crate) fn loosened_by(&self, new: &Owners) -> bool {
        self.v4.iter().any(|(k, o)| new.v4.get(k) != Some(o))
            || self.v6.iter().any(|(k, o)| new.v6.get(k) != Some(o))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owners() -> Owners {
        Owners::new(&[
            BlockOwner {
                block: "10.244.1.0/26".parse().unwrap(),
                next_hop: "10.0.0.1".parse().unwrap(),
            },
            BlockOwner {
                block: "fd00:244::/122".parse().unwrap(),
                next_hop: "fd00::1".parse().unwrap(),
            },
        ])
    }

    fn v4(a: &str) -> NextHop {
        NextHop::V4(a.parse().unwrap())
    }

    #[test]
    fn a_block_and_what_is_inside_it_need_the_owner_as_next_hop() {
        let o = owners();
        for p in ["10.244.1.0/26", "10.244.1.5/32", "10.244.1.32/27"] {
            let p = p.parse().unwrap();
            assert!(o.allows(&p, &v4("10.0.0.1")), "{p}");
            assert!(!o.allows(&p, &v4("10.0.0.2")), "{p}");
        }
    }

    #[test]
    fn prefixes_outside_every_block_are_not_checked() {
        let o = owners();
        assert!(o.allows(&"10.244.2.0/26".parse().unwrap(), &v4("10.0.0.9")));
        // A covering prefix is not inside the block.
        assert!(o.allows(&"10.244.0.0/16".parse().unwrap(), &v4("10.0.0.9")));
    }

    #[test]
    fn ipv6_blocks_compare_the_global_next_hop() {
        let o = owners();
        let p = "fd00:244::/122".parse().unwrap();
        let nh = |g: &str| NextHop::V6 {
            global: g.parse().unwrap(),
            link_local: Some("fe80::1".parse().unwrap()),
        };
        assert!(o.allows(&p, &nh("fd00::1")));
        assert!(!o.allows(&p, &nh("fd00::2")));
        assert!(!o.allows(&p, &v4("10.0.0.1")));
    }

    #[test]
    fn a_changed_or_removed_owner_loosens_an_added_one_does_not() {
        let old = owners();
        let mut added = vec![BlockOwner {
            block: "10.244.2.0/26".parse().unwrap(),
            next_hop: "10.0.0.2".parse().unwrap(),
        }];
        added.extend([
            BlockOwner {
                block: "10.244.1.0/26".parse().unwrap(),
                next_hop: "10.0.0.1".parse().unwrap(),
            },
            BlockOwner {
                block: "fd00:244::/122".parse().unwrap(),
                next_hop: "fd00::1".parse().unwrap(),
            },
        ]);
        assert!(!old.loosened_by(&Owners::new(&added)));
        assert!(
            old.loosened_by(&Owners::new(&added[..2])),
            "IPv6 block removed"
        );
        let moved = [BlockOwner {
            block: "10.244.1.0/26".parse().unwrap(),
            next_hop: "10.0.0.7".parse().unwrap(),
        }];
        assert!(old.loosened_by(&Owners::new(&moved)));
    }
}
