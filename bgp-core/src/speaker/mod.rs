//! The public speaker: sessions, RIB and policy behind one handle.
//!
//! [`Speaker::start`] builds everything from a [`SpeakerConfig`] (serde, so
//! a YAML or JSON file works), binds the listener, starts one task per peer
//! and one central task that owns the RIB. It returns the handle and a
//! [`RouteStream`] of best-route changes: what a FIB programmer needs
//! (prefix, best next hop, attributes, stale or not).
//!
//! ```
//! use bgp_core::speaker::{LocalRoute, Speaker, SpeakerConfig};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let config = SpeakerConfig::new(64512, "10.0.0.1".parse().unwrap());
//! let (speaker, mut routes) = Speaker::start(config).await.unwrap();
//! speaker.announce("10.244.1.0/26".parse().unwrap(), LocalRoute::default());
//! // Our own route shows up in the stream as the best route to its prefix.
//! let change = routes.recv().await.unwrap();
//! assert_eq!(change.prefix(), Some("10.244.1.0/26".parse().unwrap()));
//! assert!(speaker.peers().await.is_empty());
//! speaker.shutdown("maintenance").await;
//! # }
//! ```

mod config;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use ipnetwork::IpNetwork;
use tokio::sync::{mpsc, oneshot};

pub use crate::engine::{BlockOwner, OutAttrs};
pub use config::{GracefulRestart, ListenConfig, NeighborRange, PeerConfig, SpeakerConfig};

use crate::rib::PathAttrs;
use crate::session::State;
use crate::wire::{Family, Notification, Origin};

/// Attributes of a route we originate.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
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

/// A change of the best route to one prefix.
#[derive(Clone, Debug, PartialEq, Eq)]
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
}

impl RouteChange {
    /// The prefix whose route changed (`None` for an End-of-RIB).
    pub fn prefix(&self) -> Option<IpNetwork> {
        match self {
            RouteChange::Best(b) => Some(b.prefix),
            RouteChange::Withdrawn(p) => Some(*p),
            RouteChange::EndOfRib { .. } => None,
        }
    }
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

/// The stream of best-route changes, in order.
///
/// Changes travel in batches (one per UPDATE processed), so a million
/// routes cost a few thousand channel operations. The channel is bounded:
/// a consumer that stops reading eventually holds the speaker back rather
/// than letting memory grow.
#[derive(Debug)]
pub struct RouteStream {
    rx: mpsc::Receiver<Vec<RouteChange>>,
    buffered: std::collections::VecDeque<RouteChange>,
}

impl RouteStream {
    /// The next change; `None` once the speaker has shut down.
    pub async fn recv(&mut self) -> Option<RouteChange> {
        loop {
            if let Some(c) = self.buffered.pop_front() {
                return Some(c);
            }
            self.buffered.extend(self.rx.recv().await?);
        }
    }

    /// The next batch of changes (everything from one UPDATE or command).
    pub async fn recv_batch(&mut self) -> Option<Vec<RouteChange>> {
        if !self.buffered.is_empty() {
            return Some(self.buffered.drain(..).collect());
        }
        self.rx.recv().await
    }

    /// A batch that is already waiting, without waiting for one: a consumer
    /// that plans once per burst takes every waiting batch after
    /// [`RouteStream::recv_batch`] returns.
    pub fn try_recv_batch(&mut self) -> Option<Vec<RouteChange>> {
        if !self.buffered.is_empty() {
            return Some(self.buffered.drain(..).collect());
        }
        self.rx.try_recv().ok()
    }
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
    /// Prefixes received in the last UPDATEs, before import policy.
    pub received: u64,
    /// Prefixes from this peer now in the RIB.
    pub accepted: usize,
    /// Prefixes we advertise to it.
    pub advertised: usize,
    /// The last error, in words.
    pub last_error: Option<String>,
    /// The last NOTIFICATION sent or received.
    pub last_notification: Option<Notification>,
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

/// Requests to the central task.
#[derive(Debug)]
pub(crate) enum Command {
    Announce(IpNetwork, LocalRoute),
    Withdraw(IpNetwork),
    SetBlockOwners(Vec<BlockOwner>),
    AddPeer(Box<PeerConfig>, oneshot::Sender<Result<(), SpeakerError>>),
    RemovePeer(IpAddr, oneshot::Sender<Result<(), SpeakerError>>),
    Peers(oneshot::Sender<Vec<PeerSnapshot>>),
    Routes(oneshot::Sender<Vec<BestRoute>>),
    /// Cease with this shutdown communication, or (`None`) close without
    /// a NOTIFICATION so that graceful-restart peers keep our routes.
    Shutdown(Option<String>, oneshot::Sender<()>),
}

/// A running speaker. Cloning the handle is cheap; the speaker runs until
/// [`Speaker::shutdown`] or until every handle is dropped.
#[derive(Clone, Debug)]
pub struct Speaker {
    commands: mpsc::UnboundedSender<Command>,
    listen_addr: Option<SocketAddr>,
}

impl Speaker {
    /// Starts the speaker: binds the listener (if configured), starts every
    /// peer, and returns the handle and the best-route stream.
    pub async fn start(config: SpeakerConfig) -> Result<(Speaker, RouteStream), SpeakerError> {
        let (commands, listen_addr, rx) = crate::driver::speaker::spawn(config).await?;
        let stream = RouteStream {
            rx,
            buffered: Default::default(),
        };
        Ok((
            Speaker {
                commands,
                listen_addr,
            },
            stream,
        ))
    }

    /// The address the listener is bound to (useful with port 0).
    pub fn listen_addr(&self) -> Option<SocketAddr> {
        self.listen_addr
    }

    /// Originates `prefix` (replacing an earlier announcement of it).
    pub fn announce(&self, prefix: IpNetwork, route: LocalRoute) {
        let _ = self.commands.send(Command::Announce(prefix, route));
    }

    /// Stops originating `prefix`.
    pub fn withdraw(&self, prefix: IpNetwork) {
        let _ = self.commands.send(Command::Withdraw(prefix));
    }

    /// Sets which node owns which pod block, as a datastore knows it
    /// (replacing the previous set): a route inside an owned block is
    /// accepted only with its owner's address as NEXT_HOP, checked at
    /// import, so a node announcing another's block changes no route here
    /// nor at anyone we reflect to. Routes held that break the new set are
    /// withdrawn; peers are asked to resend when an owner changed.
    pub fn set_block_owners(&self, owners: Vec<BlockOwner>) {
        let _ = self.commands.send(Command::SetBlockOwners(owners));
    }

    /// Adds a neighbour at runtime; other sessions are not touched.
    pub async fn add_peer(&self, peer: PeerConfig) -> Result<(), SpeakerError> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(Command::AddPeer(Box::new(peer), tx))
            .map_err(|_| SpeakerError::Stopped)?;
        rx.await.map_err(|_| SpeakerError::Stopped)?
    }

    /// Removes a neighbour (Cease / Peer De-configured), withdrawing its
    /// routes; other sessions are not touched.
    pub async fn remove_peer(&self, address: IpAddr) -> Result<(), SpeakerError> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(Command::RemovePeer(address, tx))
            .map_err(|_| SpeakerError::Stopped)?;
        rx.await.map_err(|_| SpeakerError::Stopped)?
    }

    /// A snapshot of every peer.
    pub async fn peers(&self) -> Vec<PeerSnapshot> {
        let (tx, rx) = oneshot::channel();
        if self.commands.send(Command::Peers(tx)).is_err() {
            return Vec::new();
        }
        rx.await.unwrap_or_default()
    }

    /// Every best route in the Loc-RIB.
    pub async fn routes(&self) -> Vec<BestRoute> {
        let (tx, rx) = oneshot::channel();
        if self.commands.send(Command::Routes(tx)).is_err() {
            return Vec::new();
        }
        rx.await.unwrap_or_default()
    }

    /// Sends Cease / Administrative Shutdown with `message` as the shutdown
    /// communication (RFC 9003) to every peer, closes the sessions and stops.
    pub async fn shutdown(&self, message: &str) {
        let (tx, rx) = oneshot::channel();
        if self
            .commands
            .send(Command::Shutdown(Some(message.to_owned()), tx))
            .is_ok()
        {
            let _ = rx.await;
        }
    }

    /// Stops for a restart: closes every session without a NOTIFICATION,
    /// as a crash would, so peers that negotiated graceful restart keep our
    /// routes (stale) until we come back and send End-of-RIB, or until our
    /// restart time runs out (RFC 4724 §4.2). Use it when the forwarding
    /// state outlives the process (kernel routes that persist); peers
    /// without graceful restart drop our routes as after [`Speaker::shutdown`].
    pub async fn shutdown_for_restart(&self) {
        let (tx, rx) = oneshot::channel();
        if self.commands.send(Command::Shutdown(None, tx)).is_ok() {
            let _ = rx.await;
        }
    }
}
