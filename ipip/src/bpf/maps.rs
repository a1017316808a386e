//! The programs' maps as bytes, and what the agent changes in them (pure).
//!
//! Layouts are those of `bpf/tunnel.bpf.c`:
//!
//! | map | type | key | value |
//! |---|---|---|---|
//! | `pr_blocks` | LPM trie | `{u32 prefixlen, be32 addr}` | `be32` node |
//! | `pr_nodes` | hash | `be32` node | `u32` 1 |
//! | `pr_settings` | array\[1\] | `u32` 0 | `{be32 local, u32 gso_mode}` |
//! | `pr_counters` | per-CPU array\[8\] | `u32` index | `u64` |

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use ipnetwork::Ipv4Network;

/// A pod block's key in `pr_blocks`.
pub fn block_key(block: &Ipv4Network) -> [u8; 8] {
    let mut key = [0; 8];
    let (len, addr) = key.split_at_mut(4);
    len.copy_from_slice(&u32::from(block.prefix()).to_ne_bytes());
    addr.copy_from_slice(&block.network().octets());
    key
}

/// The block a `pr_blocks` key holds; `None` for a malformed key.
pub fn block_of_key(key: &[u8]) -> Option<Ipv4Network> {
    let (len, addr) = key.split_first_chunk::<4>()?;
    let addr = addr.first_chunk::<4>()?;
    let len = u8::try_from(u32::from_ne_bytes(*len)).ok()?;
    Ipv4Network::new(Ipv4Addr::from(*addr), len).ok()
}

/// An address as the maps hold it (network order).
pub fn address(addr: Ipv4Addr) -> [u8; 4] {
    addr.octets()
}

/// The address a 4-byte map value or key holds.
pub fn address_of(bytes: &[u8]) -> Option<Ipv4Addr> {
    bytes.first_chunk::<4>().map(|b| Ipv4Addr::from(*b))
}

/// How the encapsulation program gives GSO packets their outer header.
///
/// `handle_gso_encap()` (net/core/lwt_bpf.c) marks a pushed IPv4 header
/// as an IPIP GSO packet only when its protocol is 0 (`IPPROTO_IP`), and
/// refuses 4 with `EPROTONOSUPPORT`, in the kernels tried (6.1, 6.18). The
/// program starts with [`GsoMode::IpThenIpip`], what those kernels take,
/// and switches once (dropping that one packet, counted as
/// `gso_switched`) on a kernel that refuses it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GsoMode {
    /// Protocol 0 pushed, then 4 written (a new map's value).
    IpThenIpip,
    /// Protocol 4 pushed as it is: this kernel refused protocol 0 for a
    /// GSO packet, so the program switched.
    Ipip,
}

impl GsoMode {
    /// What the status shows.
    pub fn describe(self) -> &'static str {
        match self {
            GsoMode::IpThenIpip => {
                "protocol 0 pushed then set to 4 (what lwt_bpf's GSO check takes)"
            }
            GsoMode::Ipip => {
                "protocol 4 pushed as is (this kernel refused protocol 0 for GSO packets)"
            }
        }
    }
}

/// `pr_settings[0]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Settings {
    /// This node's address: the outer source, and the only outer
    /// destination the ingress program opens.
    pub local: Ipv4Addr,
    /// See [`GsoMode`].
    pub gso_mode: GsoMode,
}

impl Settings {
    /// The map value.
    pub fn to_bytes(self) -> [u8; 8] {
        let mut value = [0; 8];
        let (local, mode) = value.split_at_mut(4);
        local.copy_from_slice(&self.local.octets());
        let mode_value: u32 = match self.gso_mode {
            GsoMode::IpThenIpip => 0,
            GsoMode::Ipip => 1,
        };
        mode.copy_from_slice(&mode_value.to_ne_bytes());
        value
    }

    /// Reads the map value; `None` when shorter than 8 bytes.
    pub fn from_bytes(value: &[u8]) -> Option<Self> {
        let (local, mode) = value.split_first_chunk::<4>()?;
        let mode = u32::from_ne_bytes(*mode.first_chunk::<4>()?);
        Some(Settings {
            local: Ipv4Addr::from(*local),
            gso_mode: if mode == 1 {
                GsoMode::Ipip
            } else {
                GsoMode::IpThenIpip
            },
        })
    }
}

/// The programs' packet counters (`pr_counters`, summed over CPUs).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Packets given an outer header.
    pub encapsulated: u64,
    /// Packets dropped on a route whose block is not in `pr_blocks`.
    pub encap_no_node: u64,
    /// Packets dropped because the kernel refused the outer header.
    pub encap_errors: u64,
    /// GSO packets dropped when the program learnt this kernel's GSO rule.
    pub encap_gso_switched: u64,
    /// IPIP packets opened.
    pub decapsulated: u64,
    /// IPIP packets from an address not in `pr_nodes`, dropped.
    pub decap_not_node: u64,
    /// IPIP fragments left to the stack unopened.
    pub decap_fragments: u64,
    /// Malformed IPIP packets dropped, or ones the kernel could not open.
    pub decap_errors: u64,
}

/// The number of counters (`PR_COUNTERS`).
pub const COUNTERS: u32 = 8;

impl Counters {
    /// Adds `value` to counter `index` (`enum pr_counter`).
    pub fn add(&mut self, index: u32, value: u64) {
        let slot = match index {
            0 => &mut self.encapsulated,
            1 => &mut self.encap_no_node,
            2 => &mut self.encap_errors,
            3 => &mut self.encap_gso_switched,
            4 => &mut self.decapsulated,
            5 => &mut self.decap_not_node,
            6 => &mut self.decap_fragments,
            7 => &mut self.decap_errors,
            _ => return,
        };
        *slot = slot.saturating_add(value);
    }

    /// Every counter with its metric labels (`direction`, `result`).
    pub fn labelled(&self) -> [(&'static str, &'static str, u64); 8] {
        [
            ("egress", "encapsulated", self.encapsulated),
            ("egress", "no_node", self.encap_no_node),
            ("egress", "error", self.encap_errors),
            ("egress", "gso_switched", self.encap_gso_switched),
            ("ingress", "decapsulated", self.decapsulated),
            ("ingress", "not_node", self.decap_not_node),
            ("ingress", "fragment", self.decap_fragments),
            ("ingress", "error", self.decap_errors),
        ]
    }
}

/// What to write to and delete from a map to go from `have` to `want`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Changes<K, V> {
    /// Entries to write (new or changed).
    pub write: Vec<(K, V)>,
    /// Keys to delete.
    pub delete: Vec<K>,
}

/// The changes from `have` to `want`.
pub fn diff<K: Ord + Copy, V: PartialEq + Copy>(
    have: &BTreeMap<K, V>,
    want: &BTreeMap<K, V>,
) -> Changes<K, V> {
    Changes {
        write: want
            .iter()
            .filter(|(k, v)| have.get(k) != Some(v))
            .map(|(k, v)| (*k, *v))
            .collect(),
        delete: have
            .keys()
            .filter(|k| !want.contains_key(k))
            .copied()
            .collect(),
    }
}

/// A set as a map to `()`, for [`diff`].
pub fn as_map(set: &BTreeSet<Ipv4Addr>) -> BTreeMap<Ipv4Addr, ()> {
    set.iter().map(|a| (*a, ())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_block_key_reads_back_as_its_block() {
        let block: Ipv4Network = "10.244.3.64/26".parse().unwrap();
        let key = block_key(&block);
        assert_eq!(&key[4..], &[10, 244, 3, 64]);
        assert_eq!(block_of_key(&key), Some(block));
        assert_eq!(block_of_key(&key[..7]), None);
        let mut bad = key;
        bad[..4].copy_from_slice(&33u32.to_ne_bytes());
        assert_eq!(block_of_key(&bad), None);
    }

    #[test]
    fn settings_read_back_and_an_unknown_mode_means_protocol_0_then_4() {
        let s = Settings {
            local: Ipv4Addr::new(192, 0, 2, 1),
            gso_mode: GsoMode::Ipip,
        };
        assert_eq!(Settings::from_bytes(&s.to_bytes()), Some(s));
        let mut odd = s.to_bytes();
        odd[4..].copy_from_slice(&7u32.to_ne_bytes());
        assert_eq!(
            Settings::from_bytes(&odd).map(|s| s.gso_mode),
            Some(GsoMode::IpThenIpip)
        );
        assert_eq!(Settings::from_bytes(&[0; 7]), None);
    }

    #[test]
    fn the_diff_writes_new_and_changed_entries_and_deletes_the_rest() {
        let have = BTreeMap::from([(1, 'a'), (2, 'b'), (3, 'c')]);
        let want = BTreeMap::from([(2, 'b'), (3, 'x'), (4, 'd')]);
        assert_eq!(
            diff(&have, &want),
            Changes {
                write: vec![(3, 'x'), (4, 'd')],
                delete: vec![1],
            }
        );
    }

    #[test]
    fn counters_by_index_and_out_of_range_ignored() {
        let mut c = Counters::default();
        for i in 0..COUNTERS + 2 {
            c.add(i, u64::from(i) + 1);
        }
        assert_eq!(c.encapsulated, 1);
        assert_eq!(c.decap_errors, 8);
        assert_eq!(c.labelled().iter().map(|(_, _, n)| n).sum::<u64>(), 36);
    }
}
