//! What the engine asks of its driver.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use super::export::PeerOutbox;
use crate::rib::PeerId;
use crate::session::Session;
use crate::speaker::Password;
use crate::wire::{Notification, RouteRefresh};

/// How a peer's TCP connections are made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transport {
    /// The peer's address and port (179 by default).
    pub remote: SocketAddr,
    /// Source address for our connections (BIRD `local`, Calico's node IP).
    pub local: Option<IpAddr>,
    /// TCP-MD5 key (RFC 2385; BIRD `password`); shown redacted.
    pub md5_key: Option<Password>,
    /// GTSM: the peer is at most this many hops away (RFC 5082; BIRD
    /// `ttl security on; multihop N`).
    pub ttl_security: Option<u8>,
    /// Give up a connection attempt after this long.
    pub connect_timeout: Duration,
}

impl Transport {
    /// A transport to `remote` with no options.
    pub fn new(remote: SocketAddr) -> Transport {
        Transport {
            remote,
            local: None,
            md5_key: None,
            ttl_security: None,
            connect_timeout: Duration::from_secs(5),
        }
    }
}

/// Everything a driver needs to run one peer.
#[derive(Debug)]
pub struct PeerSetup {
    /// The engine's handle for the peer (tag its events with it).
    pub id: PeerId,
    /// The neighbour's address.
    pub address: IpAddr,
    /// Its session, not yet started.
    pub session: Session,
    /// How to connect.
    pub transport: Transport,
    /// Where its UPDATEs come from.
    pub outbox: Arc<PeerOutbox>,
}

/// What a peer task is told to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Control {
    /// ManualStart.
    Start,
    /// ManualStop with this NOTIFICATION; the task stays, Idle.
    Stop(Notification),
    /// Send this NOTIFICATION, close, and end the task.
    Shutdown(Notification),
    /// End the task now without a NOTIFICATION (graceful restart: peers
    /// keep our routes, RFC 4724 §4.2).
    Abandon,
    /// Clear the Restart State bit in the OPENs sent from now on (RFC 4724
    /// §3: only the first OPEN after a restart sets it).
    ClearRestartState,
    /// Ask the peer to send a family's routes again (RFC 2918).
    RouteRefresh(RouteRefresh),
}

/// An output for the driver.
#[derive(Debug)]
pub enum Action {
    /// Start a task for this peer, then send it [`Control::Start`] when
    /// told.
    Spawn(Box<PeerSetup>),
    /// Tell a peer's task something.
    Control(PeerId, Control),
}
