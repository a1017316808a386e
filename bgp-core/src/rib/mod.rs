//! Routing information bases: Adj-RIBs-In folded into one Loc-RIB with the
//! decision process (RFC 4271 §9.1), route reflection (RFC 4456) and the
//! graceful-restart helper side (RFC 4724 §4.2), plus per-peer Adj-RIB-Out
//! state for export (RFC 4271 §9.1.3).
//!
//! - [`Rib`] holds every path received from every peer and keeps the best
//!   one per prefix first in its list. Each call that changes a best path
//!   reports a [`BestChange`] into a caller-provided sink (a
//!   `Vec<BestChange>` or any `Extend`), which is what a FIB programmer
//!   and the Adj-RIBs-Out consume.
//! - [`PathAttrs`] are interned: every route with equal attributes shares
//!   one `Arc`, so a million routes from one UPDATE stream with one
//!   attribute set cost one allocation, and a stored path is 12 bytes (an
//!   attribute id, a peer index with the stale bit, an ADD-PATH id).
//! - [`Rib::export`] answers what a peer is sent for a best path (split
//!   horizon, reflection, next-hop-self, AS prepend); [`AdjRibOut`] turns
//!   [`BestChange`]s into the announcements and withdrawals one peer needs,
//!   remembering what it was sent.
//!
//! ```
//! use std::sync::Arc;
//! use bgp_core::rib::{NextHop, PathAttrs, PeerId, PeerInfo, Rib, RibConfig};
//! use bgp_core::wire::{AsPath, Origin, Prefix};
//!
//! let mut rib = Rib::new(RibConfig::new(65000, "10.0.0.1".parse().unwrap()));
//! let peer = PeerInfo::new(PeerId(1), "10.0.0.2".parse().unwrap(), 65001,
//!                          "10.0.0.2".parse().unwrap(), 65000);
//! rib.add_peer(peer);
//! let attrs = PathAttrs::new(Origin::Igp, AsPath::sequence(vec![65001]),
//!                            NextHop::V4("10.0.0.2".parse().unwrap()));
//! let prefix = Prefix::new("192.168.0.0/26".parse().unwrap());
//! let mut changes = Vec::new();
//! rib.update(PeerId(1), &[prefix], Arc::new(attrs), &mut changes).unwrap();
//! assert_eq!(changes.len(), 1);
//! assert_eq!(rib.best(&prefix.network).unwrap().peer, PeerId(1));
//! ```

mod attrs;
mod decision;
pub(crate) mod export;
pub(crate) mod intern;
mod loc;
mod path;
mod store;
pub(crate) mod table;

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use ipnetwork::IpNetwork;

pub use attrs::{
    Announced, DEFAULT_LOCAL_PREF, NO_ADVERTISE, NO_EXPORT, NO_EXPORT_SUBCONFED, NextHop, PathAttrs,
};
pub use export::{AdjRibOut, ExportContext, OutChange};
pub use loc::Rib;

/// A peer's handle in the RIB, chosen by the caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerId(pub u32);

impl PeerId {
    /// The pseudo-peer owning locally originated routes.
    pub const LOCAL: PeerId = PeerId(u32::MAX);
}

/// What the decision process and export need to know about a peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerInfo {
    /// The handle.
    pub id: PeerId,
    /// The peer's address (the last decision tie-breaker).
    pub address: IpAddr,
    /// The peer's AS.
    pub asn: u32,
    /// The peer's BGP identifier.
    pub router_id: Ipv4Addr,
    /// Internal (same AS) or external.
    pub ibgp: bool,
    /// A route-reflector client of ours (RFC 4456 §6). Meaningful only
    /// when [`RibConfig::cluster_id`] is set.
    pub rr_client: bool,
}

impl PeerInfo {
    /// A peer, iBGP when `asn == local_as`, not a reflector client.
    pub fn new(
        id: PeerId,
        address: IpAddr,
        asn: u32,
        router_id: Ipv4Addr,
        local_as: u32,
    ) -> PeerInfo {
        PeerInfo {
            id,
            address,
            asn,
            router_id,
            ibgp: asn == local_as,
            rr_client: false,
        }
    }

    /// The same peer as a route-reflector client.
    pub fn rr_client(self) -> PeerInfo {
        PeerInfo {
            rr_client: true,
            ..self
        }
    }
}

/// RIB-wide settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RibConfig {
    /// Our AS.
    pub local_as: u32,
    /// Our BGP identifier.
    pub router_id: Ipv4Addr,
    /// Our cluster ID: `Some` makes us a route reflector (RFC 4456 §7).
    pub cluster_id: Option<Ipv4Addr>,
    /// Pass unknown optional transitive attributes learned from eBGP peers
    /// on to iBGP peers. Off by default, so one bad external router cannot
    /// reach every node of the mesh with an attribute we cannot check.
    pub forward_unknown_from_ebgp: bool,
}

impl RibConfig {
    /// A non-reflecting speaker that drops unknown attributes from eBGP.
    pub fn new(local_as: u32, router_id: Ipv4Addr) -> RibConfig {
        RibConfig {
            local_as,
            router_id,
            cluster_id: None,
            forward_unknown_from_ebgp: false,
        }
    }
}

/// One path to a prefix, as handed out by the RIB.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Path {
    /// Who sent it ([`PeerId::LOCAL`] for our own routes).
    pub peer: PeerId,
    /// The ADD-PATH path identifier (RFC 7911), 0 without ADD-PATH.
    pub path_id: u32,
    /// Its attributes (shared with every route that has the same).
    pub attrs: Arc<PathAttrs>,
    /// Kept across the peer's restart, not yet refreshed (RFC 4724 §4.2).
    pub stale: bool,
}

/// A change of the best path of a prefix.
///
/// For a FIB: `new` is the route to install (next hop in
/// `new.attrs.next_hop`, `new.stale` for graceful restart) and `None`
/// means remove the prefix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BestChange {
    /// The prefix.
    pub prefix: IpNetwork,
    /// The new best path; `None` if the prefix is now unreachable.
    pub new: Option<Path>,
    /// The peer of the previous best path, if there was one (it may be the
    /// same peer with new attributes).
    pub old_peer: Option<PeerId>,
}

/// Why an announcement was not accepted. The announced prefixes are then
/// treated as withdrawn for that peer, as a replacement announcement
/// implicitly withdraws the previous one (RFC 4271 §3.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RejectReason {
    /// The peer was never added (nothing was changed).
    #[error("unknown peer {0:?}")]
    UnknownPeer(PeerId),
    /// An eBGP route whose AS_PATH holds our AS (RFC 4271 §9.1.2).
    #[error("AS_PATH contains our AS")]
    AsLoop,
    /// ORIGINATOR_ID is our router ID (RFC 4456 §8).
    #[error("ORIGINATOR_ID is our router ID")]
    OriginatorIsUs,
    /// CLUSTER_LIST contains our cluster ID (RFC 4456 §8).
    #[error("CLUSTER_LIST contains our cluster ID")]
    ClusterLoop,
    /// The next hop cannot be used (RFC 4271 §9.1.2).
    #[error("next hop unusable")]
    UnusableNextHop,
    /// An IPv6 prefix with an IPv4 next hop.
    #[error("IPv4 next hop for an IPv6 prefix")]
    NextHopFamily,
}
