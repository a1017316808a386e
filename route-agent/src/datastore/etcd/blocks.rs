//! Block affinity as Calico's IPAM keeps it: each node claims whole blocks
//! of a pool, one key per block, and a claim is made with an etcd
//! transaction that succeeds only while the key does not exist, so two
//! nodes can never hold the same block however they race.
//!
//! The pure half (keys, the next free block) is here with its unit tests;
//! the transaction is [`super::Etcd::claim_block`].

use std::collections::BTreeMap;

use ipnetwork::Ipv4Network;

/// The folder of block claims under the prefix.
pub const BLOCKS: &str = "blocks";

/// The key of `block`'s claim: `PREFIX/blocks/10.244.0.64-26` (a `/` in
/// the key would read as one more folder).
///
/// ```
/// use route_agent::datastore::etcd::blocks::block_key;
/// assert_eq!(block_key("/podroute", "10.244.0.64/26".parse().unwrap()), "/podroute/blocks/10.244.0.64-26");
/// ```
pub fn block_key(prefix: &str, block: Ipv4Network) -> String {
    format!("{prefix}/{BLOCKS}/{}-{}", block.network(), block.prefix())
}

/// The folder every claim key starts with (`PREFIX/blocks/`).
pub fn blocks_folder(prefix: &str) -> String {
    format!("{prefix}/{BLOCKS}/")
}

/// The block a claim key names, if it is one ([`block_key`]'s inverse).
pub fn parse_block_key(prefix: &str, key: &str) -> Option<Ipv4Network> {
    let rest = key.strip_prefix(&blocks_folder(prefix))?;
    let (ip, len) = rest.rsplit_once('-')?;
    let net = Ipv4Network::new(ip.parse().ok()?, len.parse().ok()?).ok()?;
    (net.network() == net.ip()).then_some(net)
}

/// Every block of `size` in `pool`, lowest first (empty when `size` is
/// shorter than the pool's prefix or longer than 32).
pub fn blocks_of(pool: Ipv4Network, size: u8) -> impl Iterator<Item = Ipv4Network> {
    let valid = size >= pool.prefix() && size <= 32;
    let count: u64 = if valid {
        1u64 << (size - pool.prefix())
    } else {
        0
    };
    let step: u64 = 1u64 << (32 - u32::from(size.min(32)));
    let base = u64::from(u32::from(pool.network()));
    (0..count).filter_map(move |i| {
        let addr = u32::try_from(base + i * step).ok()?;
        Ipv4Network::new(addr.into(), size).ok()
    })
}

/// The first block of `size` in `pool` that overlaps no claimed block.
pub fn next_free(
    pool: Ipv4Network,
    size: u8,
    claimed: &BTreeMap<Ipv4Network, String>,
) -> Option<Ipv4Network> {
    blocks_of(pool, size).find(|b| {
        !claimed
            .keys()
            .any(|c| c.contains(b.network()) || b.contains(c.network()))
    })
}

/// The blocks of `pool` claimed by `node`, lowest first.
pub fn held_by(
    pool: Ipv4Network,
    node: &str,
    claimed: &BTreeMap<Ipv4Network, String>,
) -> Vec<Ipv4Network> {
    claimed
        .iter()
        .filter(|(b, n)| {
            n.as_str() == node && pool.contains(b.network()) && b.prefix() >= pool.prefix()
        })
        .map(|(b, _)| *b)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> Ipv4Network {
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
