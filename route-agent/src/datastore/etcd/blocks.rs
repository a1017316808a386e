//! Block affinity as Calico's IPAM keeps it: each node claims whole blocks
//! of a pool, one key per block, and a claim is made with an etcd
//! transaction that succeeds only while the key does not exist, so two
//! nodes can never hold the same block however they race.
//!
//! The pure half (keys, the next free block) is here with its unit tests;
//! the transaction is [`super::Etcd::claim_block`].

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnetwork::IpNetwork;

/// The folder of block claims under the prefix.
pub const BLOCKS: &str = "blocks";

/// The key of `block`'s claim: `PREFIX/blocks/10.244.0.64-26`,
/// `PREFIX/blocks/fd00:244::40-122` (Calico's block keys: a `/` in the
/// key would read as one more folder).
///
/// ```
/// use route_agent::datastore::etcd::blocks::block_key;
/// assert_eq!(block_key("/podroute", "10.244.0.64/26".parse().unwrap()), "/podroute/blocks/10.244.0.64-26");
/// assert_eq!(block_key("/podroute", "fd00:244::40/122".parse().unwrap()), "/podroute/blocks/fd00:244::40-122");
/// ```
pub fn block_key(prefix: &str, block: IpNetwork) -> String {
    format!("{prefix}/{BLOCKS}/{}-{}", block.network(), block.prefix())
}

/// The folder every claim key starts with (`PREFIX/blocks/`).
pub fn blocks_folder(prefix: &str) -> String {
    format!("{prefix}/{BLOCKS}/")
}

/// The block a claim key names, if it is one ([`block_key`]'s inverse).
pub fn parse_block_key(prefix: &str, key: &str) -> Option<IpNetwork> {
    let rest = key.strip_prefix(&blocks_folder(prefix))?;
    let (ip, len) = rest.rsplit_once('-')?;
    let net = IpNetwork::new(ip.parse().ok()?, len.parse().ok()?).ok()?;
    (net.network() == net.ip()).then_some(net)
}

/// Every block of `size` in `pool`, lowest first (empty when `size` is
/// shorter than the pool's prefix or longer than the family's addresses).
/// Lazy: an IPv6 pool holds more blocks than can be counted in a `u64`.
pub fn blocks_of(pool: IpNetwork, size: u8) -> impl Iterator<Item = IpNetwork> {
    let (bits, base) = match pool.network() {
        IpAddr::V4(a) => (32u32, u128::from(u32::from(a))),
        IpAddr::V6(a) => (128u32, u128::from(a)),
    };
    let size32 = u32::from(size);
    let valid = size >= pool.prefix() && size32 <= bits;
    // How many blocks, and the addresses between them; `None` when the
    // count does not fit a u128 (a /0 IPv6 pool of /128 blocks): such a
    // pool is walked until its addresses run out instead.
    let count = 1u128.checked_shl(size32.saturating_sub(u32::from(pool.prefix())));
    let step = 1u128.checked_shl(bits.saturating_sub(size32)).unwrap_or(0);
    let v4 = bits == 32;
    (0u128..)
        .take_while(move |i| valid && count.is_none_or(|c| *i < c))
        .map_while(move |i| {
            let addr = base.checked_add(i.checked_mul(step)?)?;
            let ip = if v4 {
                IpAddr::V4(Ipv4Addr::from(u32::try_from(addr).ok()?))
            } else {
                IpAddr::V6(Ipv6Addr::from(addr))
            };
            IpNetwork::new(ip, size).ok()
        })
}

/// Whether two blocks share an address (same family only).
fn overlap(a: &IpNetwork, b: &IpNetwork) -> bool {
    a.is_ipv4() == b.is_ipv4() && (a.contains(b.network()) || b.contains(a.network()))
}

/// The first block of `size` in `pool` that overlaps no claimed block.
pub fn next_free(
    pool: IpNetwork,
    size: u8,
    claimed: &BTreeMap<IpNetwork, String>,
) -> Option<IpNetwork> {
    // Claimed blocks inside the pool: each can rule out at most the
    // blocks it overlaps, so the walk ends after at most that many more.
    let inside: Vec<&IpNetwork> = claimed.keys().filter(|c| overlap(c, &pool)).collect();
    blocks_of(pool, size).find(|b| !inside.iter().any(|c| overlap(c, b)))
}

/// The blocks of `pool` claimed by `node`, lowest first.
pub fn held_by(
    pool: IpNetwork,
    node: &str,
    claimed: &BTreeMap<IpNetwork, String>,
) -> Vec<IpNetwork> {
    claimed
        .iter()
        .filter(|(b, n)| {
            n.as_str() == node
                && b.is_ipv4() == pool.is_ipv4()
                && pool.contains(b.network())
                && b.prefix() >= pool.prefix()
        })
        .map(|(b, _)| *b)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNetwork {
        s.parse().unwrap()
    }

    #[test]
    fn block_keys_round_trip() {
        let b = net("10.244.3.192/26");
        assert_eq!(parse_block_key("/p", &block_key("/p", b)), Some(b));
        assert_eq!(parse_block_key("/p", "/p/blocks/10.244.3.193-26"), None);
        assert_eq!(parse_block_key("/p", "/p/nodes/a"), None);
        assert_eq!(parse_block_key("/p", "/q/blocks/10.244.3.192-26"), None);
    }

    #[test]
    fn blocks_of_walks_the_pool() {
        let all: Vec<_> = blocks_of(net("10.244.0.0/24"), 26).collect();
        assert_eq!(
            all,
            vec![
                net("10.244.0.0/26"),
                net("10.244.0.64/26"),
                net("10.244.0.128/26"),
                net("10.244.0.192/26")
            ]
        );
        assert_eq!(blocks_of(net("10.244.0.0/24"), 23).count(), 0);
        assert_eq!(
            blocks_of(net("255.255.255.252/30"), 32).last(),
            Some(net("255.255.255.255/32"))
        );
    }

    #[test]
    fn next_free_skips_claimed_and_overlapping_blocks() {
        let pool = net("10.244.0.0/24");
        let mut claimed = BTreeMap::new();
        claimed.insert(net("10.244.0.0/26"), "a".to_owned());
        // A longer block of another size still blocks its /26.
        claimed.insert(net("10.244.0.70/32"), "b".to_owned());
        assert_eq!(next_free(pool, 26, &claimed), Some(net("10.244.0.128/26")));
        claimed.insert(net("10.244.0.128/25"), "c".to_owned());
        assert_eq!(next_free(pool, 26, &claimed), None);
    }

    #[test]
    fn ipv6_pools_are_walked_in_blocks_of_their_size() {
        let pool = net("fd00:244::/120");
        let all: Vec<_> = blocks_of(pool, 122).collect();
        assert_eq!(
            all,
            vec![
                net("fd00:244::/122"),
                net("fd00:244::40/122"),
                net("fd00:244::80/122"),
                net("fd00:244::c0/122")
            ]
        );
        // A /48 of /122 blocks has 2^74 of them: walked lazily.
        let big = net("fd00:244::/48");
        assert_eq!(blocks_of(big, 122).nth(3), Some(net("fd00:244::c0/122")));
        assert_eq!(blocks_of(net("::/0"), 128).nth(1), Some(net("::1/128")));
        assert_eq!(blocks_of(pool, 119).count(), 0);
        assert_eq!(blocks_of(pool, 129).count(), 0);
        let mut claimed = BTreeMap::new();
        claimed.insert(net("fd00:244::/122"), "a".to_owned());
        // An IPv4 claim never blocks an IPv6 block.
        claimed.insert(net("0.0.0.64/26"), "b".to_owned());
        assert_eq!(next_free(big, 122, &claimed), Some(net("fd00:244::40/122")));
        assert_eq!(held_by(big, "a", &claimed), vec![net("fd00:244::/122")]);
        assert!(held_by(big, "b", &claimed).is_empty());
        let b = net("fd00:244::40/122");
        assert_eq!(parse_block_key("/p", &block_key("/p", b)), Some(b));
        assert_eq!(parse_block_key("/p", "/p/blocks/fd00:244::41-122"), None);
    }

    #[test]
    fn held_by_finds_a_nodes_blocks_in_the_pool() {
        let mut claimed = BTreeMap::new();
        claimed.insert(net("10.244.0.64/26"), "a".to_owned());
        claimed.insert(net("10.245.0.0/26"), "a".to_owned());
        claimed.insert(net("10.244.0.0/26"), "b".to_owned());
        assert_eq!(
            held_by(net("10.244.0.0/16"), "a", &claimed),
            vec![net("10.244.0.64/26")]
        );
    }
}
