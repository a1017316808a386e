//! The tunnel table: inner destination prefix → outer destination, looked
//! up by longest prefix, plus the set of peers ingress accepts.

use std::collections::{HashMap, HashSet};
use std::net::Ipv4Addr;
use std::sync::{Arc, RwLock};

/// An IPv4 prefix, host bits cleared.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Prefix {
    addr: u32,
    len: u8,
}

impl Prefix {
    /// `addr/len` with the host bits cleared; `None` when `len > 32`.
    pub fn new(addr: Ipv4Addr, len: u8) -> Option<Prefix> {
        if len > 32 {
            return None;
        }
        Some(Prefix {
            addr: u32::from(addr) & mask(len),
            len,
        })
    }

    /// The network address.
    pub fn addr(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.addr)
    }

    /// The prefix length.
    pub fn len(&self) -> u8 {
        self.len
    }

    /// True for the default route `0.0.0.0/0`.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl std::fmt::Display for Prefix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr(), self.len)
    }
}

fn mask(len: u8) -> u32 {
    u32::MAX
        .checked_shl(32u32.saturating_sub(u32::from(len)))
        .unwrap_or(0)
}

/// Longest-prefix-match table of tunnel routes, and the peers they imply.
///
/// One hash map per prefix length, searched from /32 down over the lengths
/// in use: a handful of lengths in practice (Calico's /26 blocks, /32s).
///
/// ```
/// use ipip::userspace::table::{Prefix, TunnelTable};
/// let mut t = TunnelTable::default();
/// t.insert(Prefix::new("10.244.0.0".parse().unwrap(), 16).unwrap(), "192.0.2.1".parse().unwrap());
/// t.insert(Prefix::new("10.244.2.0".parse().unwrap(), 26).unwrap(), "192.0.2.2".parse().unwrap());
/// assert_eq!(t.lookup("10.244.2.9".parse().unwrap()), Some("192.0.2.2".parse().unwrap()));
/// assert_eq!(t.lookup("10.244.9.9".parse().unwrap()), Some("192.0.2.1".parse().unwrap()));
/// assert!(t.is_peer("192.0.2.2".parse().unwrap()));
/// ```
#[derive(Clone, Debug, Default)]
pub struct TunnelTable {
    by_len: HashMap<u8, HashMap<u32, Ipv4Addr>>,
    /// Prefix lengths present, longest first.
    lens: Vec<u8>,
    peers: HashSet<Ipv4Addr>,
}

impl TunnelTable {
    /// A table that accepts `extra` peers on top of the route gateways.
    pub fn with_extra_peers(extra: impl IntoIterator<Item = Ipv4Addr>) -> TunnelTable {
        TunnelTable {
            peers: extra.into_iter().collect(),
            ..TunnelTable::default()
        }
    }

    /// Adds (or replaces) the route `prefix` → `gateway`; the gateway
    /// becomes a known peer.
    pub fn insert(&mut self, prefix: Prefix, gateway: Ipv4Addr) {
        self.by_len
            .entry(prefix.len)
            .or_default()
            .insert(prefix.addr, gateway);
        if !self.lens.contains(&prefix.len) {
            self.lens.push(prefix.len);
            self.lens.sort_unstable_by(|a, b| b.cmp(a));
        }
        self.peers.insert(gateway);
    }

    /// The outer destination for inner destination `dst`.
    pub fn lookup(&self, dst: Ipv4Addr) -> Option<Ipv4Addr> {
        let dst = u32::from(dst);
        self.lens.iter().find_map(|len| {
            self.by_len
                .get(len)
                .and_then(|m| m.get(&(dst & mask(*len))))
                .copied()
        })
    }

    /// Whether IPIP from `src` is accepted: a route gateway or an extra peer.
    pub fn is_peer(&self, src: Ipv4Addr) -> bool {
        self.peers.contains(&src)
    }

    /// Number of routes.
    pub fn len(&self) -> usize {
        self.by_len.values().map(HashMap::len).sum()
    }

    /// True when the table holds no routes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The table in `shared` as it is now. The route learner swaps in
    /// whole new tables, so taking the current one is a read lock and a
    /// reference count; a poisoned lock still holds a complete table.
    pub fn current(shared: &RwLock<Arc<TunnelTable>>) -> Arc<TunnelTable> {
        match shared.read() {
            Ok(t) => t.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str, len: u8) -> Prefix {
        Prefix::new(s.parse().unwrap(), len).unwrap()
    }

    #[test]
    fn longest_prefix_wins_and_default_route_catches_rest() {
        let mut t = TunnelTable::default();
        t.insert(p("0.0.0.0", 0), "192.0.2.9".parse().unwrap());
        t.insert(p("10.244.1.0", 24), "192.0.2.1".parse().unwrap());
        t.insert(p("10.244.1.64", 26), "192.0.2.2".parse().unwrap());
        t.insert(p("10.244.1.70", 32), "192.0.2.3".parse().unwrap());
        let l = |s: &str| t.lookup(s.parse().unwrap()).unwrap().to_string();
        assert_eq!(l("10.244.1.70"), "192.0.2.3");
        assert_eq!(l("10.244.1.71"), "192.0.2.2");
        assert_eq!(l("10.244.1.5"), "192.0.2.1");
        assert_eq!(l("8.8.8.8"), "192.0.2.9");
        assert_eq!(t.len(), 4);
    }

    #[test]
    fn host_bits_are_cleared_and_bad_lengths_rejected() {
        assert_eq!(p("10.244.1.77", 26), p("10.244.1.64", 26));
        assert_eq!(p("10.244.1.77", 26).to_string(), "10.244.1.64/26");
        assert!(Prefix::new(Ipv4Addr::UNSPECIFIED, 33).is_none());
    }

    #[test]
    fn only_gateways_and_extras_are_peers() {
        let mut t = TunnelTable::with_extra_peers(["198.51.100.7".parse().unwrap()]);
        assert!(t.lookup("10.0.0.1".parse().unwrap()).is_none());
        t.insert(p("10.244.2.0", 24), "192.0.2.2".parse().unwrap());
        assert!(t.is_peer("192.0.2.2".parse().unwrap()));
        assert!(t.is_peer("198.51.100.7".parse().unwrap()));
        assert!(!t.is_peer("192.0.2.3".parse().unwrap()));
    }
}
