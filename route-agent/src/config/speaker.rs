//! The BGP side of the config: the speaker's config for this node, the
//! mesh peers, and the guards and limits put in front of every session's
//! import policy.

use std::net::{IpAddr, Ipv4Addr};

use bgp_core::policy::{Action, MaxPrefix, MaxPrefixAction, PrefixFilter, PrefixRule};
use bgp_core::speaker::{ListenConfig, NeighborRange, PeerConfig, SpeakerConfig};

use super::*;

impl Config {
    /// The BGP side, once the node address is known: router ID = the node
    /// address, listening on it at `listen-port`, the mesh peers (iBGP from
    /// the node address, passive per [`mesh_peer_is_passive`], the node's
    /// own address skipped) followed by the explicit peers, each with the
    /// hijack guards of [`Config::guard_import`] in front of its import
    /// policy.
    pub fn to_speaker_config(&self, node_ipv4: Ipv4Addr) -> SpeakerConfig {
        let local = IpAddr::V4(node_ipv4);
        let mut speaker = SpeakerConfig::new(self.asn, node_ipv4);
        speaker.listen = Some(ListenConfig::new(local, self.listen_port));
        speaker.graceful_restart = self.graceful_restart();
        speaker.hold_time = self.hold_time;
        speaker.keepalive_time = self.keepalive_time;
        speaker.connect_retry = u64::from(self.connect_retry);
        speaker.peers = self.peers_unguarded(node_ipv4);
        for peer in &mut speaker.peers {
            self.guard_import(peer);
        }
        if let Some(rr) = &self.route_reflector {
            speaker.cluster_id = Some(rr.cluster_id);
            speaker.dynamic_neighbors = rr
                .clients
                .iter()
                .map(|c| {
                    let mut range = NeighborRange::new(c.prefix, self.asn);
                    range.limit = c.limit;
                    range.route_reflector_client = true;
                    range.password.clone_from(&c.password);
                    range.max_prefixes = Some(self.node_max_prefixes());
                    let rules = self
                        .guard_rules()
                        .into_iter()
                        .chain(self.node_import_rules());
                    range.import = Some(PrefixFilter::new(rules.collect(), Action::Accept));
                    range
                })
                .collect();
        }
        speaker
    }

    /// The mesh peers (iBGP from the node address, passive per
    /// [`mesh_peer_is_passive`], our own address skipped) and then the
    /// explicit peers, as configured: without [`Config::guard_import`]'s
    /// rules and the mesh limits it adds (both derived from the blocks and
    /// pools). SIGHUP compares these, so a change of blocks does not
    /// restart every session.
    pub fn peers_unguarded(&self, node_ipv4: Ipv4Addr) -> Vec<PeerConfig> {
        let local = IpAddr::V4(node_ipv4);
        let mut peers = Vec::new();
        for &addr in self.mesh.peers.iter().filter(|&&a| a != local) {
            let mut peer = PeerConfig::new(addr, self.asn);
            peer.local_address = Some(local);
            peer.passive = mesh_peer_is_passive(local, addr);
            peer.password.clone_from(&self.mesh.password);
            peers.push(peer);
        }
        peers.extend(self.peers.iter().cloned());
        peers
    }

    /// Hijack protection at import, before the RIB: routes inside or
    /// covering one of our blocks, and default routes, are refused from
    /// every peer whatever its import policy says, so they are neither
    /// installed here nor passed on to the mesh (where a more specific
    /// route into our block would pull other nodes' traffic for our pods
    /// away from us). The planner refuses the same routes again as the last
    /// line ([`crate::planner::RejectReason`]).
    ///
    /// The rules go in front of the peer's own. An eBGP peer without an
    /// import policy keeps none: RFC 8212 already refuses everything. A
    /// mesh peer gets [`Config::limit_node_peer`]'s limits as well.
    pub fn guard_import(&self, peer: &mut PeerConfig) {
        if self.mesh.peers.contains(&peer.address) {
            self.limit_node_peer(peer);
        }
        let rules = self.guard_rules();
        let filter = match peer.import.take() {
            Some(own) => {
                PrefixFilter::new(rules.into_iter().chain(own.rules).collect(), own.default)
            }
            None if peer.asn == self.asn => PrefixFilter::new(rules, Action::Accept),
            None => return,
        };
        peer.import = Some(filter);
    }

    /// Limits on a peer that is another node (a mesh peer, a reflector or
    /// a reflector client; issue 16): one bad node must not push more
    /// routes than the cluster can have into every node's RIB and kernel.
    /// Its max-prefix limit is `mesh.max-prefixes` or
    /// [`Config::default_node_max_prefixes`] (Cease, started again after
    /// [`NODE_MAX_PREFIX_RESTART`] s; checked before the RIB takes a
    /// route), and its import filter takes only what nodes announce inside
    /// the pools ([`Config::node_import_rules`]). A peer's own
    /// `max-prefixes` is kept.
    pub fn limit_node_peer(&self, peer: &mut PeerConfig) {
        peer.max_prefixes
            .get_or_insert_with(|| self.node_max_prefixes());
        let rules = self.node_import_rules();
        peer.import = Some(match peer.import.take() {
            Some(own) => {
                PrefixFilter::new(rules.into_iter().chain(own.rules).collect(), own.default)
            }
            None => PrefixFilter::new(rules, Action::Accept),
        });
    }

    /// `mesh.max-prefixes`, else [`Config::default_node_max_prefixes`].
    pub fn node_max_prefixes(&self) -> MaxPrefix {
        self.mesh.max_prefixes.unwrap_or_else(|| {
            let mut m = MaxPrefix::new(self.default_node_max_prefixes(), MaxPrefixAction::Cease);
            m.restart_after = Some(NODE_MAX_PREFIX_RESTART);
            m
        })
    }

    /// The default limit on prefixes from another node: three times the
    /// blocks the pools hold at their block size (each pool counted up to
    /// [`MAX_BLOCKS_COUNTED`]), at least [`MIN_NODE_MAX_PREFIXES`]. Every
    /// block of the cluster is what a reflector legitimately sends; twice
    /// that again leaves room for borrowed single addresses. A /16 pool of
    /// /26 blocks: 3 × 1,024 = 3,072.
    pub fn default_node_max_prefixes(&self) -> u32 {
        let blocks: u64 = self
            .pools
            .iter()
            .map(|p| {
                let bits = self.block_size(p).saturating_sub(p.cidr.prefix());
                1u64.checked_shl(u32::from(bits))
                    .unwrap_or(u64::MAX)
                    .min(MAX_BLOCKS_COUNTED)
            })
            .sum();
        u32::try_from(blocks.saturating_mul(3))
            .unwrap_or(u32::MAX)
            .max(MIN_NODE_MAX_PREFIXES)
    }

    /// The block size of `pool`: `block-size`, else the length of this
    /// node's first block inside it, else Calico's default
    /// ([`DEFAULT_BLOCK_SIZE_V4`], [`DEFAULT_BLOCK_SIZE_V6`]).
    pub fn block_size(&self, pool: &PoolSpec) -> u8 {
        pool.block_size.unwrap_or_else(|| {
            let own = self.blocks.iter().find(|b| {
                b.is_ipv4() == pool.cidr.is_ipv4()
                    && b.prefix() >= pool.cidr.prefix()
                    && pool.cidr.contains(b.network())
            });
            match (own, pool.cidr) {
                (Some(b), _) => b.prefix(),
                (None, IpNetwork::V4(_)) => DEFAULT_BLOCK_SIZE_V4,
                (None, IpNetwork::V6(_)) => DEFAULT_BLOCK_SIZE_V6,
            }
        })
    }

    /// What another node may announce inside each pool: its blocks at the
    /// pool's block size and single addresses (/32, /128: Calico announces
    /// addresses borrowed from another node's block); any other length
    /// inside the pool (the pool itself, a split or merged block) is
    /// refused before the RIB. Routes outside the pools are left to the
    /// rest of the filter.
    pub fn node_import_rules(&self) -> Vec<PrefixRule> {
        let mut rules = Vec::new();
        for pool in &self.pools {
            let host = if pool.cidr.is_ipv4() { 32 } else { 128 };
            let size = self.block_size(pool).clamp(pool.cidr.prefix(), host);
            for len in [size, host] {
                rules.push(PrefixRule {
                    prefix: pool.cidr,
                    ge: Some(len),
                    le: Some(len),
                    action: Action::Accept,
                });
            }
            rules.push(PrefixRule {
                prefix: pool.cidr,
                ge: Some(pool.cidr.prefix()),
                le: Some(host),
                action: Action::Reject,
            });
        }
        rules
    }

    /// The rules of [`Config::guard_import`]: our blocks, what is inside
    /// them, what covers them, and default routes, all refused.
    pub fn guard_rules(&self) -> Vec<PrefixRule> {
        let mut rules = Vec::new();
        for block in &self.blocks {
            let max = if block.is_ipv4() { 32 } else { 128 };
            // The block and everything inside it.
            rules.push(PrefixRule {
                prefix: *block,
                ge: Some(block.prefix()),
                le: Some(max),
                action: Action::Reject,
            });
            // Every prefix covering it (a rule's host bits are ignored).
            for len in 0..block.prefix() {
                if let Ok(cover) = IpNetwork::new(block.network(), len) {
                    rules.push(PrefixRule::exact(cover, Action::Reject));
                }
            }
        }
        for default in ["0.0.0.0/0", "::/0"] {
            if let Ok(d) = default.parse() {
                rules.push(PrefixRule::exact(d, Action::Reject));
            }
        }
        rules
    }
}
