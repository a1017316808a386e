//! What the engine knows about one neighbour.

use std::net::IpAddr;
use std::time::Instant;

use crate::policy::{MaxPrefixTracker, Policy};
use crate::rib::PeerId;
use crate::session::{Negotiated, State};
use crate::speaker::PeerConfig;
use crate::wire::{Family, Notification};

/// One neighbour: its configuration and what its session has told us.
#[derive(Debug)]
pub(crate) struct Peer {
    pub(crate) config: PeerConfig,
    pub(crate) id: PeerId,
    pub(crate) address: IpAddr,
    pub(crate) policy: Policy,
    pub(crate) state: State,
    pub(crate) established_at: Option<Instant>,
    pub(crate) negotiated: Option<Negotiated>,
    /// Prefixes received, before import policy.
    pub(crate) received: u64,
    pub(crate) last_error: Option<String>,
    pub(crate) last_notification: Option<Notification>,
    /// One tracker per family, in [IPv4, IPv6] order.
    pub(crate) max_prefix: Vec<MaxPrefixTracker>,
    /// Families whose paths are stale while the peer restarts (RFC 4724
    /// §4.2).
    pub(crate) stale: Vec<Family>,
    /// Families between the peer's BoRR and EoRR (RFC 7313 §4): their
    /// paths from before the BoRR are stale until the EoRR.
    pub(crate) refreshing: Vec<Family>,
    /// Accepted from an address range rather than configured: forgotten
    /// when its session ends.
    pub(crate) dynamic: Option<usize>,
}

impl Peer {
    /// External (another AS).
    pub(crate) fn ebgp(&self, local_as: u32) -> bool {
        self.config.asn != local_as
    }
}
