//! What the control step asks the loop to do ([`Output`]) and reports
//! ([`Event`]).

use std::collections::BTreeMap;
use std::net::IpAddr;

use bgp_core::speaker::{LocalRoute, PeerConfig, SpeakerError};
use ipnetwork::IpNetwork;

use super::super::node::{NodeError, NodeView};
use super::super::reload::Reload;
use super::super::tunnel::{TunnelError, TunnelExit, TunnelSetup};
use super::Rejection;
use crate::config::ConfigError;
use crate::datastore::{BlockOwner, ClusterNode};
use crate::planner::{DesiredRoute, RejectReason};
use crate::state::{DatastoreStatus, NodeStatus, TunnelStatus};

/// Something the loop is to do.
#[derive(Debug)]
pub enum Output {
    /// Apply this plan: send it to the FIB thread (it replaces the last).
    Plan(Plan),
    /// Tell the speaker; the loop must not wait for it.
    Speaker(SpeakerCommand),
    /// Read the node ([`NodeView::read`]) and answer with
    /// [`Control::handle_node`](super::Control::handle_node).
    ReadNode,
    /// Make the tunnel exist as set up (blocking, up to seconds) and answer
    /// with [`Control::handle_tunnel`](super::Control::handle_tunnel). At most one is in flight.
    EnsureTunnel(TunnelSetup),
    /// Write the CNI config file ([`crate::cni::write`]: atomically, and
    /// not at all when its content is already on disk); log a failure.
    WriteCni(crate::cni::CniFile),
    /// Remove the CNI config file the agent wrote ([`crate::cni::remove`]):
    /// CNI was turned off or moved, or no block has room for a pod.
    RemoveCni(std::path::PathBuf),
    /// The cluster's node addresses changed: IPIP is accepted from them
    /// (and our tunnel gateways) when the kernel tunnel runs
    /// ([`crate::agent::ipip_filter`]).
    NodeAddresses(std::collections::BTreeSet<std::net::Ipv4Addr>),
    /// Change the shared status.
    Status(StatusChange),
    /// Something to log.
    Event(Event),
    /// Write this node's record with the address the kernel has now
    /// (`datastore: etcd`, where the agent owns its record), so that the
    /// other nodes move their routes to it whether or not this agent is
    /// started again soon. A [`Stop`] right after it waits for the write
    /// (for a bounded time).
    WriteRecord(ClusterNode),
    /// Stop the agent (routes persist, as on SIGTERM), for this reason.
    Stop(Stop),
}

/// Why the agent stops on its own.
#[derive(Debug)]
pub enum Stop {
    /// This node's address changed (in the datastore; or, with `datastore:
    /// etcd`, on its interface: the new record is written first), and the
    /// speaker's router ID and listener are bound to the old one.
    /// `route-agent run` exits with code 3 and its supervisor (the
    /// DaemonSet, systemd) starts it again on the new address.
    AddressChanged(AddressChange),
    /// The tunnel can never be set up as configured (the userspace tunnel
    /// refused the command line the agent gave it): `route-agent run`
    /// exits non-zero with the cause rather than run on without it.
    TunnelUnusable(TunnelError),
}

/// The kernel routes to have, and since when learned routes waited for
/// them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// The routes.
    pub routes: Vec<DesiredRoute>,
    /// When the oldest route batch that no earlier plan included reached
    /// the agent; `None` when no route changed since the last plan (a
    /// resync, a node or config change). The FIB thread measures the
    /// BGP-update-to-kernel latency from it: one timestamp per plan,
    /// never one per route.
    pub routes_since: Option<std::time::Instant>,
}

/// This node's address before and after a datastore change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AddressChange {
    /// The address the agent runs on.
    pub old: std::net::Ipv4Addr,
    /// The address it has now.
    pub new: std::net::Ipv4Addr,
}

/// A command to the speaker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SpeakerCommand {
    /// Originate this prefix.
    Announce(IpNetwork, LocalRoute),
    /// Stop originating it.
    Withdraw(IpNetwork),
    /// Add a peer; answer with [`Control::handle_peer_result`](super::Control::handle_peer_result).
    AddPeer(Box<PeerConfig>),
    /// Remove a peer; answer with [`Control::handle_peer_result`](super::Control::handle_peer_result).
    RemovePeer(IpAddr),
    /// Inside each block accept routes only with its owner's next hop
    /// (bgp-core's import guard; see `agent::set_block_owners`).
    SetBlockOwners(Vec<BlockOwner>),
}

/// What a peer command did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeerChange {
    /// [`SpeakerCommand::AddPeer`].
    Add,
    /// [`SpeakerCommand::RemovePeer`].
    Remove,
}

/// The speaker's answer to a peer command.
#[derive(Debug)]
pub struct PeerResult {
    /// The peer.
    pub peer: IpAddr,
    /// Added or removed.
    pub change: PeerChange,
    /// The answer.
    pub result: Result<(), SpeakerError>,
}

/// A change of the shared status ([`crate::state::Status`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StatusChange {
    /// This node.
    Node(NodeStatus),
    /// The configured peers, in address order.
    ConfiguredPeers(Vec<IpAddr>),
    /// Learned routes refused now, by reason.
    Rejected(BTreeMap<RejectReason, u64>),
    /// The tunnel.
    Tunnel(TunnelStatus),
    /// The datastore's nodes.
    Datastore(DatastoreStatus),
    /// Whether `/metrics` carries the series labelled by peer
    /// (`admin.per-peer-metrics`, changed by a reload).
    PerPeerMetrics(bool),
}

/// Why a plan was made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlanCause {
    /// Routes, the node or the config changed (or it is the first).
    Changed,
    /// The periodic re-plan.
    Resync,
}

/// Something worth a log line.
#[derive(Debug)]
pub enum Event {
    /// A plan went out.
    Planned {
        /// Its routes.
        routes: usize,
        /// Why.
        cause: PlanCause,
    },
    /// Every peer sent End-of-RIB for each of its families: the first
    /// plan's hold is over.
    InSync,
    /// The hold's bound passed first; these peers' End-of-RIB never came
    /// (for every family).
    HoldExpired {
        /// The peers still awaited.
        missing: Vec<IpAddr>,
    },
    /// A learned route is refused (reported once while it stays refused).
    Refused(Rejection),
    /// An IPv6 block is not announced: the node has no IPv6 address.
    Ipv6BlockNotAnnounced(IpNetwork),
    /// The node's address, underlay interface or MTU changed.
    NodeChanged {
        /// Before.
        old: NodeView,
        /// Now.
        new: NodeView,
    },
    /// The node could not be read after a link or address change.
    NodeUnreadable(NodeError),
    /// The tunnel could not be set up; it is tried again after `retry_in`.
    TunnelFailed {
        /// Why.
        error: TunnelError,
        /// The backoff before the next set-up.
        retry_in: std::time::Duration,
    },
    /// The userspace tunnel process the agent started exited; it is set up
    /// again after `retry_in`.
    TunnelExited {
        /// Which process, and how it ended.
        exit: TunnelExit,
        /// The backoff before the next set-up.
        retry_in: std::time::Duration,
    },
    /// The config file could not be reloaded; the running one stays.
    ReloadRefused(ConfigError),
    /// These reloaded keys take effect only after a restart.
    NeedsRestart(Vec<&'static str>),
    /// A reload was applied.
    Reloaded(Reload),
    /// A peer command of a reload failed.
    PeerCommandFailed(PeerResult),
    /// A new node set was applied.
    NodesApplied(Reload),
    /// This node is not in the datastore's node set (its Node was deleted
    /// or is skipped): it keeps its last known blocks.
    NotInNodeSet(String),
    /// A learned route inside another node's block with a next hop that
    /// is not that node's address (reported once while it stays).
    NotFromOwner {
        /// The route.
        prefix: IpNetwork,
        /// Its next hop.
        next_hop: IpAddr,
        /// The node whose block holds it.
        owner: String,
    },
    /// The reloaded file names another datastore: that takes a restart,
    /// and nothing of the file is applied.
    DatastoreChanged,
    /// Another node's address changed in the datastore: the routes to its
    /// blocks follow it at once ([`super::moves`]), until its sessions
    /// from the new address bring them again or the bound passes.
    NodeMoved {
        /// The node.
        node: String,
        /// Its address before.
        old: std::net::Ipv4Addr,
        /// Its address now.
        new: std::net::Ipv4Addr,
        /// Its blocks whose routes moved.
        blocks: Vec<IpNetwork>,
    },
}
