//! The public speaker: sessions, RIB and policy behind one handle.
//!
//! [`Speaker::start`] builds everything from a [`SpeakerConfig`] (serde, so
//! a YAML or JSON file works), binds the listener, starts one task per peer
//! and one central task that owns the RIB. It returns the handle and a
//! [`RouteStream`] of best-route changes, what a FIB programmer needs
//! (prefix, best next hop, attributes, stale or not), and of sessions
//! coming up (with what was negotiated) and going down (with why). The
//! stream is a `futures::Stream` too.
//!
//! ```
//! use bgp_core::speaker::{LocalRoute, Speaker, SpeakerConfig};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let config = SpeakerConfig::new(64512, "10.0.0.1".parse().unwrap());
//! let (speaker, mut routes) = Speaker::start(config).await.unwrap();
//! speaker.announce("10.244.1.0/26".parse().unwrap(), LocalRoute::default()).unwrap();
//! // Our own route shows up in the stream as the best route to its prefix.
//! let change = routes.recv().await.unwrap();
//! assert_eq!(change.prefix(), Some("10.244.1.0/26".parse().unwrap()));
//! assert!(speaker.peers().await.unwrap().is_empty());
//! speaker.shutdown("maintenance").await;
//! # }
//! ```

mod config;
#[cfg(feature = "speaker")]
mod handle;
mod password;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use ipnetwork::IpNetwork;

pub use crate::engine::{BlockOwner, OutAttrs};
pub use config::{GracefulRestart, ListenConfig, NeighborRange, PeerConfig, SpeakerConfig};
#[cfg(feature = "speaker")]
pub(crate) use handle::Command;
#[cfg(feature = "speaker")]
pub use handle::{RouteStream, Speaker};
pub use password::{Password, REDACTED};

use crate::rib::PathAttrs;
use crate::session::{DownReason, Negotiated, State};
use crate::wire::{Family, Notification, Origin};

/// Attributes of a route we originate.
///
/// ```
/// use bgp_core::speaker::LocalRoute;
///
/// let route = LocalRoute::via("10.0.0.5".parse().unwrap()).with_local_pref(200);
/// assert_eq!(route.local_pref, Some(200));
/// assert_eq!(LocalRoute::default().next_hop, None, "ourselves");
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct LocalRoute {
    /// Next hop to announce; `None` means ourselves (the session's local
    /// address), which is what a node announcing its pod blocks wants.
    pub next_hop: Option<IpAddr>,
    /// ORIGIN (IGP when `None`).
    pub origin: Option<Origin>,
    /// MULTI_EXIT_DISC.
    pub med: Option<u32>,
    /// LOCAL_PREF toward iBGP peers (100 when `None`).
    pub local_pref: Option<u32>,
    /// Standard communities (`asn << 16 | value`).
    pub communities: Vec<u32>,
}

impl LocalRoute {
    /// A route through `next_hop` instead of ourselves.
    pub fn via(next_hop: IpAddr) -> LocalRoute {
        LocalRoute {
            next_hop: Some(next_hop),
            ..LocalRoute::default()
        }
    }

    /// With this ORIGIN.
    pub fn with_origin(mut self, origin: Origin) -> LocalRoute {
        self.origin = Some(origin);
        self
    }

    /// With this MULTI_EXIT_DISC.
    pub fn with_med(mut self, med: u32) -> LocalRoute {
        self.med = Some(med);
        self
    }

    /// With this LOCAL_PREF.
    pub fn with_local_pref(mut self, local_pref: u32) -> LocalRoute {
        self.local_pref = Some(local_pref);
        self
    }

    /// With these standard communities.
    pub fn with_communities(mut self, communities: Vec<u32>) -> LocalRoute {
        self.communities = communities;
        self
    }
}

/// What the speaker tells its embedder, in order: best-route changes,
/// End-of-RIB, and sessions coming up and going down.
///
/// A peer's [`RouteChange::PeerUp`] comes before any route learned from
/// that session; its [`RouteChange::PeerDown`] after the changes its
/// going down made (withdrawals, or routes marked stale for a graceful
/// restart).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RouteChange {
    /// `prefix` is now reached through this route.
    Best(BestRoute),
    /// `prefix` is no longer reachable.
    Withdrawn(IpNetwork),
    /// `peer` finished sending its table for `family` (End-of-RIB): stale
    /// routes it did not refresh are gone by now.
    EndOfRib {
        /// The peer.
        peer: IpAddr,
        /// The family.
        family: Family,
    },
    /// A session reached Established.
    PeerUp(PeerUp),
    /// An established session went down.
    PeerDown(PeerDown),
}

impl RouteChange {
    /// The prefix whose route changed (`None` for the other events).
    pub fn prefix(&self) -> Option<IpNetwork> {
        match self {
            RouteChange::Best(b) => Some(b.prefix),
            RouteChange::Withdrawn(p) => Some(*p),
            RouteChange::EndOfRib { .. } | RouteChange::PeerUp(_) | RouteChange::PeerDown(_) => {
                None
            }
        }
    }
}

/// A session that came up, with what both sides agreed on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerUp {
    /// The neighbour's address.
    pub peer: IpAddr,
    /// Our address on the connection.
    pub local: Option<SocketAddr>,
    /// The negotiated capabilities: families, 4-octet AS, ADD-PATH,
    /// route refresh, the peer's graceful restart, hold time.
    pub negotiated: Negotiated,
}

/// A session that went down.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerDown {
    /// The neighbour's address.
    pub peer: IpAddr,
    /// Why: the NOTIFICATION sent or received, or the connection closing.
    pub reason: DownReason,
    /// The peer's routes stay, marked stale, while it restarts (RFC 4724
    /// §4.2); otherwise they were withdrawn.
    pub routes_kept: bool,
}

/// The best route to a prefix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BestRoute {
    /// The prefix.
    pub prefix: IpNetwork,
    /// The next hop to forward to (for IPv6, the global address).
    pub next_hop: IpAddr,
    /// The peer it was learned from; `None` for our own routes.
    pub peer: Option<IpAddr>,
    /// All attributes.
    pub attrs: Arc<PathAttrs>,
    /// Kept across the peer's restart and not yet refreshed (RFC 4724).
    pub stale: bool,
}

/// A peer's state, for status output (`birdc show protocols`,
/// `gobgp neighbor`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerSnapshot {
    /// The neighbour's address.
    pub address: IpAddr,
    /// Its AS.
    pub asn: u32,
    /// iBGP or eBGP.
    pub ibgp: bool,
    /// Accepted from a neighbour range rather than configured.
    pub dynamic: bool,
    /// Session state.
    pub state: State,
    /// How long it has been established.
    pub uptime: Option<Duration>,
    /// Prefixes announced by the peer, before import policy, since it
    /// was configured: a running total across sessions (Prometheus: a
    /// counter).
    pub received: u64,
    /// Prefixes from this peer now in the RIB.
    pub accepted: usize,
    /// Prefixes we advertise to it.
    pub advertised: usize,
    /// The last error, in words.
    pub last_error: Option<String>,
    /// The last NOTIFICATION sent or received.
    pub last_notification: Option<Notification>,
    /// What the OPEN exchange agreed on, while the session is up: the
    /// peer's router ID, hold time, families and capabilities
    /// (`birdc show protocols all`, `gobgp neighbor ADDR`).
    pub negotiated: Option<Negotiated>,
}

/// Why the speaker could not do something.
#[derive(Debug, thiserror::Error)]
pub enum SpeakerError {
    /// The listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// A peer with this address is already configured.
    #[error("peer {0} is already configured")]
    DuplicatePeer(IpAddr),
    /// No peer with this address.
    #[error("no peer {0}")]
    UnknownPeer(IpAddr),
    /// The TCP-MD5 key could not be installed.
    #[error("cannot set the TCP-MD5 key for {peer}: {source}")]
    Md5 {
        /// The peer.
        peer: IpAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The speaker has shut down.
    #[error("the speaker has shut down")]
    Stopped,
}
