//! Compact prefix-keyed tables shared by the Loc-RIB and the Adj-RIBs-Out.
//!
//! Memory is the constraint here: a million IPv4 routes must fit in a few
//! tens of megabytes. So a table is split by prefix length (one map per
//! length, created on first use) and the key inside is only the address:
//! four bytes for IPv4, which with a 12-byte value makes a 16-byte bucket.
//! Each length is further split into [`SHARDS`] hash maps picked by hash
//! bits, so when a map doubles, the old and new arrays coexist for one
//! shard only, not the whole table.
//!
//! Keys are hashed with a seeded folded multiply (the foldhash / ahash core
//! step): a few nanoseconds per key where SipHash takes about twenty, with
//! a per-table random seed so a peer cannot pick prefixes that collide.

use std::collections::HashMap;
use std::collections::hash_map::{Entry, RandomState};
use std::hash::{BuildHasher, Hash, Hasher};
use std::net::{Ipv4Addr, Ipv6Addr};

use ipnetwork::{IpNetwork, Ipv4Network, Ipv6Network};

/// Maps per prefix length (a power of two).
const SHARDS: usize = 8;

/// The folded-multiply constant (the fractional part of pi, as in foldhash).
const MULTIPLE: u64 = 0x243f_6a88_85a3_08d3;

/// Multiplies to 128 bits and folds the halves: every input bit reaches
/// both the low bits (bucket index) and the high bits (hashbrown's tag).
#[inline]
fn folded_multiply(a: u64, b: u64) -> u64 {
    let full = u128::from(a).wrapping_mul(u128::from(b));
    // Truncation is the point: the two halves are folded together.
    #[allow(clippy::cast_possible_truncation)]
    let (lo, hi) = (full as u64, (full >> 64) as u64);
    lo ^ hi
}

/// Builds [`KeyHasher`]s with one random seed.
#[derive(Clone, Copy, Debug)]
pub(crate) struct KeyState {
    seed: u64,
}

impl KeyState {
    pub(crate) fn random() -> KeyState {
        KeyState {
            seed: RandomState::new().hash_one(0x5eed_u64),
        }
    }

    #[inline]
    fn hash<K: Hash>(&self, key: &K) -> u64 {
        self.hash_one(key)
    }
}

impl BuildHasher for KeyState {
    type Hasher = KeyHasher;

    #[inline]
    fn build_hasher(&self) -> KeyHasher {
        KeyHasher { state: self.seed }
    }
}

/// A fast hasher for fixed-width keys (see the module docs).
#[derive(Clone, Copy, Debug)]
pub(crate) struct KeyHasher {
    state: u64,
}

impl Hasher for KeyHasher {
    #[inline]
    fn finish(&self) -> u64 {
        self.state
    }

    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            for (w, b) in word.iter_mut().zip(chunk) {
                *w = *b;
            }
            self.write_u64(u64::from_le_bytes(word));
        }
    }

    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.write_u64(u64::from(i));
    }

    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.write_u64(u64::from(i));
    }

    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.state = folded_multiply(self.state ^ i, MULTIPLE);
    }
}

/// An IPv6 address as a hash key: four `u32`s, so a bucket is aligned to 4
/// and not padded to 16 as a `u128` key would be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct V6Key([u32; 4]);

impl Hash for V6Key {
    #[inline]
    fn hash<H: Hasher>(&self, state: &mut H) {
        let [a, b, c, d] = self.0;
        state.write_u64(u64::from(a) << 32 | u64::from(b));
        state.write_u64(u64::from(c) << 32 | u64::from(d));
    }
}

/// An address type that keys a table.
pub(crate) trait AddrKey: Copy + Eq + Hash {
    /// The longest prefix of the family.
    const MAX_LEN: u8;
    /// The prefix `self/len` (`len` is at most `MAX_LEN`).
    fn network(self, len: u8) -> Option<IpNetwork>;
}

impl AddrKey for u32 {
    const MAX_LEN: u8 = 32;

    fn network(self, len: u8) -> Option<IpNetwork> {
        Ipv4Network::new(Ipv4Addr::from(self), len)
            .ok()
            .map(IpNetwork::V4)
    }
}

impl AddrKey for V6Key {
    const MAX_LEN: u8 = 128;

    fn network(self, len: u8) -> Option<IpNetwork> {
        let [a, b, c, d] = self.0;
        let bits = u128::from(a) << 96 | u128::from(b) << 64 | u128::from(c) << 32 | u128::from(d);
        Ipv6Network::new(Ipv6Addr::from(bits), len)
            .ok()
            .map(IpNetwork::V6)
    }
}

/// The compact key of a prefix, host bits cleared.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum NetKey {
    /// IPv4 address and length.
    V4(u32, u8),
    /// IPv6 address and length.
    V6(V6Key, u8),
}

impl NetKey {
    /// The key of `net`; bits past the prefix length are ignored.
    #[inline]
    pub(crate) fn of(net: &IpNetwork) -> NetKey {
        match net {
            IpNetwork::V4(n) => {
                let len = n.prefix();
                let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
                NetKey::V4(u32::from(n.ip()) & mask, len)
            }
            IpNetwork::V6(n) => {
                let len = n.prefix();
                let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
                let bits = u128::from(n.ip()) & mask;
                // Truncation splits the address into its four words.
                #[allow(clippy::cast_possible_truncation)]
                let words = [
                    (bits >> 96) as u32,
                    (bits >> 64) as u32,
                    (bits >> 32) as u32,
                    bits as u32,
                ];
                NetKey::V6(V6Key(words), len)
            }
        }
    }
}

/// One prefix length: [`SHARDS`] maps.
#[derive(Debug)]
struct Shards<K, V> {
    maps: [HashMap<K, V, KeyState>; SHARDS],
    state: KeyState,
}

impl<K: AddrKey, V> Shards<K, V> {
    fn new(state: KeyState) -> Self {
        Shards {
            maps: std::array::from_fn(|_| HashMap::with_hasher(state)),
            state,
        }
    }

    /// The shard for `key`: bits 32.. of its hash, which the maps use
    /// neither for bucket index (low bits) nor for tag (top 7 bits) unless
    /// a shard holds over four billion buckets.
    #[inline]
    fn shard(&self, key: &K) -> usize {
        let h = self.state.hash(key);
        // Masked to 0..SHARDS.
        #[allow(clippy::cast_possible_truncation)]
        let i = (h >> 32) as usize & (SHARDS - 1);
        i
    }

    #[inline]
    fn map(&self, key: &K) -> &HashMap<K, V, KeyState> {
        let i = self.shard(key);
        &self.maps[i]
    }

    #[inline]
    fn map_mut(&mut self, key: &K) -> &mut HashMap<K, V, KeyState> {
        let i = self.shard(key);
        &mut self.maps[i]
    }

    /// Gives memory back after mass removal (a peer went away).
    fn shrink(&mut self) {
        for m in &mut self.maps {
            if m.capacity() > 64 && m.len() < m.capacity() / 4 {
                m.shrink_to_fit();
            }
        }
    }
}

/// One family: a lazily created [`Shards`] per prefix length.
#[derive(Debug)]
pub(crate) struct LenTables<K, V> {
    by_len: Vec<Option<Box<Shards<K, V>>>>,
    state: KeyState,
    len: usize,
}

impl<K: AddrKey, V> LenTables<K, V> {
    fn new(state: KeyState) -> Self {
        LenTables {
            by_len: (0..=K::MAX_LEN).map(|_| None).collect(),
            state,
            len: 0,
        }
    }

    /// Number of prefixes.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn get(&self, addr: K, len: u8) -> Option<&V> {
        let shards = self.by_len.get(usize::from(len))?.as_ref()?;
        shards.map(&addr).get(&addr)
    }

    pub(crate) fn get_mut(&mut self, addr: K, len: u8) -> Option<&mut V> {
        let shards = self.by_len.get_mut(usize::from(len))?.as_mut()?;
        shards.map_mut(&addr).get_mut(&addr)
    }

    /// The map entry for `addr/len`. Callers that insert into a vacant
    /// entry or remove an occupied one must call [`Self::added`] /
    /// [`Self::removed`] to keep the count.
    #[inline]
    pub(crate) fn entry(&mut self, addr: K, len: u8) -> Option<Entry<'_, K, V>> {
        let state = self.state;
        let slot = self.by_len.get_mut(usize::from(len))?;
        let shards = slot.get_or_insert_with(|| Box::new(Shards::new(state)));
        Some(shards.map_mut(&addr).entry(addr))
    }

    #[inline]
    pub(crate) fn added(&mut self) {
        self.len = self.len.saturating_add(1);
    }

    #[inline]
    pub(crate) fn removed(&mut self) {
        self.len = self.len.saturating_sub(1);
    }

    pub(crate) fn remove(&mut self, addr: K, len: u8) -> Option<V> {
        let shards = self.by_len.get_mut(usize::from(len))?.as_mut()?;
        let v = shards.map_mut(&addr).remove(&addr);
        if v.is_some() {
            self.removed();
        }
        v
    }

    /// Every entry, by length then in hash order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (IpNetwork, &V)> + '_ {
        self.by_len
            .iter()
            .zip(0u8..)
            .filter_map(|(s, len)| s.as_ref().map(|s| (s, len)))
            .flat_map(|(s, len)| {
                s.maps
                    .iter()
                    .flat_map(move |m| m.iter())
                    .filter_map(move |(k, v)| k.network(len).map(|n| (n, v)))
            })
    }

    /// Keeps the entries for which `f` returns true, then gives back memory
    /// if most of a map emptied.
    pub(crate) fn retain(&mut self, mut f: impl FnMut(IpNetwork, &mut V) -> bool) {
        let mut removed = 0usize;
        for (slot, len) in self.by_len.iter_mut().zip(0u8..) {
            let Some(shards) = slot else { continue };
            for m in &mut shards.maps {
                let before = m.len();
                m.retain(|k, v| match k.network(len) {
                    Some(n) => f(n, v),
                    None => true,
                });
                removed = removed.saturating_add(before.saturating_sub(m.len()));
            }
            shards.shrink();
        }
        self.len = self.len.saturating_sub(removed);
    }
}

/// Every prefix of both families.
#[derive(Debug)]
pub(crate) struct PrefixMap<V> {
    pub(crate) v4: LenTables<u32, V>,
    pub(crate) v6: LenTables<V6Key, V>,
}

impl<V> PrefixMap<V> {
    pub(crate) fn new() -> Self {
        let state = KeyState::random();
        PrefixMap {
            v4: LenTables::new(state),
            v6: LenTables::new(state),
        }
    }

    /// Number of prefixes.
    pub(crate) fn len(&self) -> usize {
        self.v4.len().saturating_add(self.v6.len())
    }

    pub(crate) fn get(&self, key: NetKey) -> Option<&V> {
        match key {
            NetKey::V4(a, l) => self.v4.get(a, l),
            NetKey::V6(a, l) => self.v6.get(a, l),
        }
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (IpNetwork, &V)> + '_ {
        self.v4.iter().chain(self.v6.iter())
    }

    /// Sets `net` to `value`, returning what it held.
    pub(crate) fn insert(&mut self, net: &IpNetwork, value: V) -> Option<V> {
        match NetKey::of(net) {
            NetKey::V4(a, l) => insert_in(&mut self.v4, a, l, value),
            NetKey::V6(a, l) => insert_in(&mut self.v6, a, l, value),
        }
    }

    /// Removes `net`, returning what it held.
    pub(crate) fn remove(&mut self, net: &IpNetwork) -> Option<V> {
        match NetKey::of(net) {
            NetKey::V4(a, l) => self.v4.remove(a, l),
            NetKey::V6(a, l) => self.v6.remove(a, l),
        }
    }
}

/// [`PrefixMap::insert`] for one family; `None` also for a length the
/// family cannot have (the key was built from a valid network).
fn insert_in<K: AddrKey, V>(table: &mut LenTables<K, V>, addr: K, len: u8, value: V) -> Option<V> {
    match table.entry(addr, len)? {
        Entry::Occupied(mut o) => return Some(o.insert(value)),
        Entry::Vacant(v) => {
            v.insert(value);
        }
    }
    table.added();
    None
}
