//! The agent's decisions, without I/O: a deterministic state machine in
//! the style of the BGP session (`bgp_core::session::Session`).
//!
//! Every input is a `handle_*` call that takes the current time; every
//! output is polled. After any input the loop in [`super::Agent::run`]:
//! 1. takes every [`Control::poll_output`] and carries it out: a plan to
//!    the FIB thread, a command to the speaker (handed to a task of its
//!    own: the loop never waits for the speaker, which may itself be
//!    waiting for the loop to read its route stream), a node read, a
//!    tunnel set-up (on a blocking thread), a CNI config write, a status
//!    change, a log line.
//!    A node read and a tunnel set-up are answered with
//!    [`Control::handle_node`] and [`Control::handle_tunnel`], a peer
//!    command with [`Control::handle_peer_result`];
//! 2. sleeps until [`Control::poll_timeout`] or the next input, and calls
//!    [`Control::handle_timeout`] at that deadline.
//!
//! It never reads the clock and never does I/O (the one exception is
//! [`Underlay`], asked for the IPv6 underlay routes when a plan needs
//! them, so that they are as fresh as the plan), so tests drive it with
//! `Instant`s they advance themselves.
//!
//! | input | from | decides |
//! |---|---|---|
//! | [`handle_routes`](Control::handle_routes) | a batch of the speaker's route stream | the learned routes; a session's families and their End-of-RIBs end the first plan's hold ([`first_sync`]). Feed every batch of a burst, then poll: one plan per burst |
//! | [`handle_node_changed`](Control::handle_node_changed) | the kernel monitor (a link or address changed) | read the node once changes settle ([`NODE_SETTLE`]) |
//! | [`handle_node`](Control::handle_node) | the answer to [`Output::ReadNode`] | re-plan when address, underlay or MTU changed; with `datastore: etcd` write this node's record with a new address, and stop on it ([`moves`]); make sure of the tunnel |
//! | [`handle_reload`](Control::handle_reload) | SIGHUP: the config file re-read, or why it could not be | peers, blocks and pools live ([`super::reload`]); the rest reported as needing a restart |
//! | [`handle_nodes`](Control::handle_nodes) | the datastore (Kubernetes): a new [`Snapshot`] of the nodes | the desired peers and blocks ([`desired_config`]), applied by the same live diff as a reload; block owners to the speaker; routes of replaced sessions held across the hand-over ([`HANDOVER`]); routes to a node that moved follow it ([`moves`]) |
//! | [`handle_peer_result`](Control::handle_peer_result) | the speaker's answer to a peer command | reported when it failed |
//! | [`handle_tunnel`](Control::handle_tunnel) | the answer to [`Output::EnsureTunnel`] | the tunnel status; plans wait for the first set-up (routes through the tunnel need its device); a failure is retried with a backoff, a permanent one stops the agent ([`tunnel`]) |
//! | [`handle_tunnel_exited`](Control::handle_tunnel_exited) | a userspace tunnel process the agent started exited | the tunnel status; set up again with a backoff |
//! | [`handle_timeout`](Control::handle_timeout) | [`poll_timeout`](Control::poll_timeout) | the first plan's hold is over; the node read is due; the periodic full re-plan ([`RESYNC`]) |
//!
//! A source of nodes other than the config file ([`crate::datastore`]:
//! Kubernetes, later etcd) fits the same way: what it learns (the peers,
//! this node's blocks) is a new desired config ([`desired_config`] of the
//! file's config and the [`NodeSet`]), applied by the same live diff as a
//! reload. With a datastore, two more rules hold:
//!
//! - **Block ownership.** A learned route inside another node's block is
//!   planned only when its next hop is that node's address; the owners
//!   also go to the speaker ([`SpeakerCommand::SetBlockOwners`]), which
//!   refuses such routes at import.
//! - **Hand-over.** When a change of nodes removes or resets sessions (a
//!   reflector labelled or unlabelled, the mesh replaced by reflectors),
//!   a route withdrawn during the next [`HANDOVER`] whose block and next
//!   hop the node set still confirms stays planned until it is learned
//!   again (through the new sessions, with the same next hop: no kernel
//!   change) or the hand-over ends. A node that left, or whose block or
//!   address changed, is not confirmed: its routes go at once.

pub mod first_sync;
pub mod moves;
mod outputs;
mod ownership;
mod plan;

#[cfg(test)]
mod tests;
pub mod tunnel;

pub use outputs::{
    AddressChange, Event, Output, PeerChange, PeerResult, Plan, PlanCause, SpeakerCommand,
    StatusChange, Stop,
};

use std::collections::{BTreeMap, BTreeSet, HashSet, VecDeque};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use bgp_core::speaker::{LocalRoute, RouteChange};
use ipnetwork::IpNetwork;

use super::node::{NodeError, NodeView};
use super::reload;
use super::tunnel::TunnelError;
use crate::cni::{CniAction, CniInputs, CniTracker};
use crate::config::{Config, ConfigError};
use crate::datastore::kubernetes::Snapshot;
use crate::datastore::{BlockOwner, ClusterNode, NodeSet, SkipReason, desired_config};
use crate::netinfo::UnderlayRoutes;
use crate::planner::{LearnedRoute, LocalNode, Pool, Rejection};
use crate::state::{DatastoreStatus, TunnelInUse};

/// How often the whole plan is re-applied regardless of changes: the
/// backstop for a kernel change the monitor missed.
pub const RESYNC: Duration = Duration::from_secs(30);

/// How long a burst of link or address changes gets to settle before the
/// node is read again. Only the node read waits: the route stream keeps
/// flowing meanwhile (it used to be a sleep in the loop, and the
/// monitor's lost-notification signal, common while thousands of our own
/// routes go in, stalled convergence by as much).
pub const NODE_SETTLE: Duration = Duration::from_millis(50);

/// How long routes of sessions that a change of nodes removed or reset
/// stay planned while the new sessions come up: a reset session is
/// connected again after the connect-retry time (5 s), and its routes
/// follow within a second.
pub const HANDOVER: Duration = Duration::from_secs(15);

/// The IPv6 routes of the underlay, asked for when a learned IPv6 route's
/// next hop is off this node's IPv6 subnet (dual stack across subnets).
/// The agent reads the kernel ([`super::node::KernelUnderlay`]); tests
/// give a fixed table.
pub trait Underlay: Send {
    /// The routes now.
    fn routes(&mut self) -> UnderlayRoutes;
}

impl Underlay for super::node::KernelUnderlay {
    fn routes(&mut self) -> UnderlayRoutes {
        self.read()
    }
}

/// What a tunnel set-up did: the backend in use and why it is not the
/// configured one, or why there is none.
pub type TunnelOutcome = Result<(TunnelInUse, Option<String>), TunnelError>;

/// What the agent starts from.
#[derive(Clone, Debug)]
pub struct Start {
    /// The config.
    pub config: Config,
    /// The node as read at start.
    pub node: NodeView,
    /// The node name, for the status.
    pub node_name: Option<String>,
    /// The log format a userspace tunnel process is started with.
    pub log_format: String,
    /// Routes of an earlier run are in the kernel: hold the first plan
    /// until every peer has sent End-of-RIB for every family its session
    /// negotiated, or a bound passes ([`first_sync`]), so that a restarted
    /// agent does not remove routes its peers are about to re-announce.
    pub installed: bool,
    /// The nodes, when they come from a datastore rather than the file
    /// (then `config` is [`desired_config`] of `file` and these nodes).
    pub datastore: Option<DatastoreStart>,
}

/// The datastore's part of [`Start`].
#[derive(Clone, Debug)]
pub struct DatastoreStart {
    /// This node's name in the node set.
    pub name: String,
    /// The config file as loaded (cluster-wide settings only).
    pub file: Config,
    /// The node set the agent starts with (it holds this node).
    pub nodes: NodeSet,
    /// The agent writes this node's record itself (`datastore: etcd`):
    /// when it finds another address on its interface it writes the record
    /// again ([`moves`]).
    pub writes_record: bool,
}

/// The control step's deadlines.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Timer {
    /// The end of the first plan's hold ([`first_sync::bound`]).
    RestartHold,
    /// A burst of link or address changes has settled.
    NodeSettle,
    /// The periodic full re-plan.
    Resync,
    /// The end of the hand-over after a change of nodes ([`HANDOVER`]).
    Handover,
    /// The next set-up of a tunnel that failed ([`tunnel::retry_delay`]).
    TunnelRetry,
    /// The end of the routes that followed nodes that moved
    /// ([`moves::moved_hold`]).
    Moved,
}

/// The agent's control step; see the module docs for the call order.
pub struct Control {
    config: Config,
    node: NodeView,
    node_name: Option<String>,
    log_format: String,
    /// The planner's view of the node and the pools, from `config` and
    /// `node`.
    local: LocalNode,
    pools: Vec<Pool>,
    /// Best routes learned from peers: prefix → next hop.
    learned: BTreeMap<IpNetwork, IpAddr>,
    /// Refusals already logged.
    reported: HashSet<Rejection>,
    underlay: Box<dyn Underlay>,
    /// End-of-RIBs the first plan waits for ([`first_sync`]).
    awaiting: first_sync::Awaiting,
    /// The hold is over (or there was none): plans go out.
    synced: bool,
    /// The first tunnel set-up has answered (or no tunnel is needed).
    tunnel_ready: bool,
    tunnel: tunnel::TunnelState,
    /// Something changed since the last plan.
    replan: bool,
    /// When the oldest route batch not yet in a plan arrived
    /// ([`Plan::routes_since`]).
    routes_since: Option<Instant>,
    /// When the CNI file is to be written.
    cni: CniTracker,
    timers: Vec<(Timer, Instant)>,
    outputs: VecDeque<Output>,
    /// The datastore's nodes, when they come from one.
    datastore: Option<Datastore>,
    /// Routes kept planned across a hand-over: prefix → next hop.
    held: BTreeMap<IpNetwork, IpAddr>,
    /// Routes to the blocks of nodes that moved, at their new address
    /// until their sessions bring them ([`moves`]): prefix → next hop.
    /// They win over a learned route with another next hop.
    moved: BTreeMap<IpNetwork, IpAddr>,
    /// Routes refused as not from their block's owner, already logged.
    not_from_owner: BTreeSet<(IpNetwork, IpAddr)>,
    /// The restart keys last reported for a datastore change.
    reported_restart: Vec<&'static str>,
    /// The node addresses last sent out ([`Output::NodeAddresses`]).
    node_addresses: Option<BTreeSet<std::net::Ipv4Addr>>,
}

/// What the control step keeps of the datastore.
#[derive(Debug)]
struct Datastore {
    name: String,
    /// The file's config with the live keys of every reload applied.
    file: Config,
    nodes: NodeSet,
    /// This node as last known.
    me: ClusterNode,
    owners: Vec<BlockOwner>,
    /// The agent writes this node's record ([`DatastoreStart::writes_record`]).
    writes_record: bool,
}

/// What made a new desired config.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cause {
    /// SIGHUP or the config file changed.
    Reload,
    /// The datastore's nodes changed.
    Nodes,
}

impl std::fmt::Debug for Control {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Control")
            .field("node", &self.node)
            .field("learned", &self.learned.len())
            .field("awaiting", &self.awaiting)
            .field("synced", &self.synced)
            .field("tunnel_ready", &self.tunnel_ready)
            .field("replan", &self.replan)
            .field("timers", &self.timers)
            .finish_non_exhaustive()
    }
}

/// How we announce `block`: IPv4 blocks with ourselves as next hop (the
/// session's address); IPv6 blocks with the node's IPv6 address, and not
/// at all without one (peers could not reach it).
pub(crate) fn local_route(block: &IpNetwork, node: &NodeView) -> Option<LocalRoute> {
    match block {
        IpNetwork::V4(_) => Some(LocalRoute::default()),
        IpNetwork::V6(_) => node.address_v6.map(|a| LocalRoute::via(IpAddr::V6(a.ip()))),
    }
}

/// The peers `config` configures on `node`, in address order.
fn configured_peers(config: &Config, node: &NodeView) -> Vec<IpAddr> {
    let peers: BTreeSet<IpAddr> = config
        .peers_unguarded(node.address.ip())
        .iter()
        .map(|p| p.address)
        .collect();
    peers.into_iter().collect()
}

impl Control {
    /// The control step of an agent starting at `now`. Its first outputs
    /// announce our blocks, set the status, ask for the tunnel and, unless
    /// routes of an earlier run hold it ([`first_sync`]), plan.
    pub fn new(now: Instant, start: Start, underlay: Box<dyn Underlay>) -> Control {
        let Start {
            config,
            node,
            node_name,
            log_format,
            installed,
            datastore,
        } = start;
        let peers = configured_peers(&config, &node);
        let hold = first_sync::bound(&config, installed, peers.len());
        let awaiting = match hold {
            Some(_) => first_sync::Awaiting::peers(&peers),
            None => first_sync::Awaiting::default(),
        };
        let mut control = Control {
            local: node.local_node(&config),
            pools: config.pools(),
            config,
            node,
            node_name,
            log_format,
            learned: BTreeMap::new(),
            reported: HashSet::new(),
            underlay,
            synced: awaiting.is_empty(),
            awaiting,
            tunnel_ready: false,
            tunnel: tunnel::TunnelState::default(),
            replan: true,
            routes_since: None,
            cni: CniTracker::default(),
            timers: Vec::new(),
            outputs: VecDeque::new(),
            datastore: None,
            held: BTreeMap::new(),
            moved: BTreeMap::new(),
            not_from_owner: BTreeSet::new(),
            reported_restart: Vec::new(),
            node_addresses: None,
        };
        if let Some(ds) = datastore {
            let me = ds
                .nodes
                .get(&ds.name)
                .cloned()
                .unwrap_or_else(|| ClusterNode {
                    name: ds.name.clone(),
                    address: control.node.address,
                    address_v6: control.node.address_v6.map(|a| a.ip()),
                    blocks: control.config.blocks.clone(),
                    tunnel_address: control.config.tunnel.address,
                    reflector: None,
                });
            let owners = ds.nodes.block_owners();
            control.command(SpeakerCommand::SetBlockOwners(owners.clone()));
            control.datastore = Some(Datastore {
                name: ds.name,
                file: ds.file,
                nodes: ds.nodes,
                me,
                owners,
                writes_record: ds.writes_record,
            });
        }
        if let Some(hold) = hold {
            control.set_timer(Timer::RestartHold, now + hold);
        }
        control.set_timer(Timer::Resync, now + RESYNC);
        for block in control.config.blocks.clone() {
            control.announce(block);
        }
        control.status(StatusChange::Node(
            control.node.status(control.node_name.clone()),
        ));
        control.status(StatusChange::ConfiguredPeers(peers));
        control.ensure_tunnel();
        control.refresh_node_addresses();
        // Without a tunnel nothing waits for one.
        control.tunnel_ready = control.tunnel.is_idle();
        control
    }

    /// The running config (with the live keys of every reload applied).
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The node as last read.
    pub fn node(&self) -> &NodeView {
        &self.node
    }

    /// Whether plans go out (no first-plan hold, or it is over).
    pub fn is_synced(&self) -> bool {
        self.synced
    }

    /// When the first plan's hold ends at the latest, while it holds.
    pub fn hold_until(&self) -> Option<Instant> {
        if self.synced {
            None
        } else {
            self.timer(Timer::RestartHold)
        }
    }

    /// A batch of the speaker's route changes.
    pub fn handle_routes(&mut self, now: Instant, changes: &[RouteChange]) {
        let mut routes = false;
        for change in changes {
            match change {
                RouteChange::Best(route) if route.peer.is_some() => {
                    self.learned.insert(route.prefix, route.next_hop);
                    self.held.remove(&route.prefix);
                    // The node that moved brings its route itself now.
                    if self.moved.get(&route.prefix) == Some(&route.next_hop) {
                        self.moved.remove(&route.prefix);
                    }
                    routes = true;
                }
                // Our own blocks are planned from the config.
                RouteChange::Best(route) => {
                    self.unlearn(now, route.prefix);
                    routes = true;
                }
                RouteChange::Withdrawn(prefix) => {
                    self.unlearn(now, *prefix);
                    routes = true;
                }
                RouteChange::EndOfRib { peer, family } => {
                    self.awaiting.end_of_rib(*peer, *family);
                }
                RouteChange::PeerUp(up) => {
                    self.awaiting.session_up(up.peer, &up.negotiated.families);
                }
                // A session going down changes no route by itself.
                _ => {}
            }
        }
        if routes {
            // The oldest batch counts: a later one in the same plan waited
            // less.
            self.routes_since.get_or_insert(now);
        }
        self.replan = true;
        self.end_hold_if_complete();
    }

    /// A link or address changed: read the node once the burst settles.
    pub fn handle_node_changed(&mut self, now: Instant) {
        if self.timer(Timer::NodeSettle).is_none() {
            self.set_timer(Timer::NodeSettle, now + NODE_SETTLE);
        }
    }

    /// The answer to [`Output::ReadNode`].
    pub fn handle_node(&mut self, _now: Instant, read: Result<NodeView, NodeError>) {
        match read {
            Ok(new) if new != self.node => {
                let old = std::mem::replace(&mut self.node, new.clone());
                self.event(Event::NodeChanged {
                    old: old.clone(),
                    new,
                });
                self.refresh_local();
                self.status(StatusChange::Node(self.node.status(self.node_name.clone())));
                self.replan = true;
                self.reannounce_ipv6(&old);
                self.publish_own_address(&old);
            }
            Ok(_) => {}
            Err(e) => self.event(Event::NodeUnreadable(e)),
        }
        // The tunnel device may have gone (or its MTU changed).
        self.ensure_tunnel();
    }

    /// SIGHUP: the config file re-read, or why it could not be. Peers,
    /// blocks and pools are applied (only what changed:
    /// [`reload::diff`]); the other keys need a restart and are reported.
    pub fn handle_reload(&mut self, now: Instant, reloaded: Result<Config, ConfigError>) {
        let new = match reloaded {
            Ok(c) => c,
            Err(e) => return self.event(Event::ReloadRefused(e)),
        };
        if new.datastore() != self.config.datastore() {
            return self.event(Event::DatastoreChanged);
        }
        let new = match &mut self.datastore {
            Some(ds) => {
                reload::apply_live(&mut ds.file, new.clone());
                desired_config(&new, &ds.nodes, &ds.me, self.node.address)
            }
            None => new,
        };
        self.apply(now, new, Cause::Reload);
    }

    /// The datastore's nodes now (Kubernetes: after every burst of Node
    /// changes). Only what changed is applied, through the same diff as a
    /// reload; the skipped nodes go to the status.
    pub fn handle_nodes(&mut self, now: Instant, snapshot: &Snapshot) {
        self.status(StatusChange::Datastore(DatastoreStatus {
            nodes: snapshot.nodes.len(),
            skipped: snapshot
                .skipped_by_reason()
                .into_iter()
                .map(|(r, n): (SkipReason, u64)| (r.name(), n))
                .collect(),
        }));
        let Some(ds) = &mut self.datastore else {
            return;
        };
        if ds.nodes == snapshot.nodes {
            return;
        }
        let me = match snapshot.nodes.get(&ds.name) {
            Some(me) => me.clone(),
            None => {
                let name = ds.name.clone();
                let me = ds.me.clone();
                self.event(Event::NotInNodeSet(name));
                me
            }
        };
        let Some(ds) = &mut self.datastore else {
            return;
        };
        if me.ip() != self.node.address.ip() {
            let change = AddressChange {
                old: self.node.address.ip(),
                new: me.ip(),
            };
            self.outputs
                .push_back(Output::Stop(Stop::AddressChanged(change)));
            return;
        }
        let old_nodes = std::mem::replace(&mut ds.nodes, snapshot.nodes.clone());
        ds.me = me;
        // A route held through a hand-over stays only while the node set
        // still confirms it: its withdrawal may have come just before the
        // news that its node's block or address changed, or that the node
        // left, and then it must go at once.
        let nodes = &ds.nodes;
        self.held
            .retain(|prefix, next_hop| ownership::confirms(nodes, *prefix, *next_hop));
        let new = desired_config(&ds.file, &ds.nodes, &ds.me, self.node.address);
        let owners = ds.nodes.block_owners();
        if owners != ds.owners {
            ds.owners = owners.clone();
            self.command(SpeakerCommand::SetBlockOwners(owners));
        }
        self.follow_moves(now, &old_nodes);
        self.apply(now, new, Cause::Nodes);
    }

    /// Applies a new desired config: only what changed, the keys that need
    /// a restart reported (once per set of keys when the nodes changed).
    fn apply(&mut self, now: Instant, new: Config, cause: Cause) {
        let change = reload::diff(&self.config, &new, self.node.address.ip());
        for address in &change.remove_peers {
            self.command(SpeakerCommand::RemovePeer(*address));
        }
        for peer in &change.add_peers {
            self.command(SpeakerCommand::AddPeer(Box::new(peer.clone())));
        }
        for block in &change.withdraw {
            self.command(SpeakerCommand::Withdraw(*block));
        }
        for block in change.announce.clone() {
            self.announce(block);
        }
        if !change.needs_restart.is_empty()
            && (cause == Cause::Reload || change.needs_restart != self.reported_restart)
        {
            self.event(Event::NeedsRestart(change.needs_restart.clone()));
        }
        self.reported_restart.clone_from(&change.needs_restart);
        if cause == Cause::Nodes && !change.remove_peers.is_empty() {
            self.set_timer(Timer::Handover, now + HANDOVER);
        }
        if let Some(on) = change.per_peer_metrics {
            self.status(StatusChange::PerPeerMetrics(on));
        }
        reload::apply_live(&mut self.config, new);
        self.pools = self.config.pools();
        self.refresh_local();
        let configured = configured_peers(&self.config, &self.node);
        // A removed peer's End-of-RIB is no longer awaited.
        self.awaiting.retain(&configured);
        self.status(StatusChange::ConfiguredPeers(configured));
        if change.pools_changed {
            // An IPIP pool added wants the tunnel; the last one removed
            // clears its status.
            self.ensure_tunnel();
        }
        self.event(match cause {
            Cause::Reload => Event::Reloaded(change),
            Cause::Nodes => Event::NodesApplied(change),
        });
        self.replan = true;
        self.end_hold_if_complete();
        self.refresh_node_addresses();
    }

    /// Sends the node addresses out when they changed.
    fn refresh_node_addresses(&mut self) {
        let now = super::ipip_filter::node_addresses(
            &self.config,
            self.datastore.as_ref().map(|d| &d.nodes),
        );
        if self.node_addresses.as_ref() != Some(&now) {
            self.node_addresses = Some(now.clone());
            self.outputs.push_back(Output::NodeAddresses(now));
        }
    }

    /// The speaker's answer to [`SpeakerCommand::AddPeer`] or
    /// [`SpeakerCommand::RemovePeer`].
    pub fn handle_peer_result(&mut self, _now: Instant, result: PeerResult) {
        if result.result.is_err() {
            self.event(Event::PeerCommandFailed(result));
        }
    }

    /// A deadline of [`Control::poll_timeout`] was reached (early calls do
    /// nothing).
    pub fn handle_timeout(&mut self, now: Instant) {
        let due: Vec<Timer> = self
            .timers
            .iter()
            .filter(|(_, at)| *at <= now)
            .map(|(t, _)| *t)
            .collect();
        self.timers.retain(|(_, at)| *at > now);
        for timer in due {
            match timer {
                Timer::RestartHold => {
                    if !self.synced {
                        let missing = self.awaiting.missing();
                        self.event(Event::HoldExpired { missing });
                        self.synced = true;
                        self.replan = true;
                    }
                }
                Timer::NodeSettle => self.outputs.push_back(Output::ReadNode),
                Timer::Handover => {
                    if !self.held.is_empty() {
                        self.held.clear();
                        self.replan = true;
                    }
                }
                Timer::TunnelRetry => self.retry_tunnel(),
                Timer::Moved => {
                    if !self.moved.is_empty() {
                        self.moved.clear();
                        self.replan = true;
                    }
                }
                Timer::Resync => {
                    self.set_timer(Timer::Resync, now + RESYNC);
                    self.cni.recheck();
                    if self.plan_ready() {
                        self.make_plan(PlanCause::Resync);
                    }
                }
            }
        }
    }

    /// When to call [`Control::handle_timeout`] next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.iter().map(|(_, at)| *at).min()
    }

    /// The next thing to do. A pending plan is made here, once every
    /// queued output is taken, so that a burst of inputs costs one plan.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.refresh_cni();
        if self.outputs.is_empty() && self.replan && self.plan_ready() {
            self.make_plan(PlanCause::Changed);
        }
        self.outputs.pop_front()
    }

    /// Queues the CNI file's write or removal when this node's blocks, MTU
    /// or `cni` settings changed since the last call (or a re-check is
    /// due).
    fn refresh_cni(&mut self) {
        let inputs = CniInputs::from_config(&self.config, self.node.mtu);
        for action in self.cni.update(inputs) {
            self.outputs.push_back(match action {
                CniAction::Write(file) => Output::WriteCni(file),
                CniAction::Remove(path) => Output::RemoveCni(path),
            });
        }
    }

    /// The underlay device of the last node read.
    pub fn node_underlay(&self) -> &str {
        &self.node.underlay
    }

    fn plan_ready(&self) -> bool {
        self.synced && self.tunnel_ready
    }

    fn end_hold_if_complete(&mut self) {
        if !self.synced && self.awaiting.is_empty() {
            self.event(Event::InSync);
            self.synced = true;
            self.replan = true;
            self.stop_timer(Timer::RestartHold);
        }
    }

    /// Announces `block` as [`local_route`] says, or reports why not.
    fn announce(&mut self, block: IpNetwork) {
        match local_route(&block, &self.node) {
            Some(route) => self.command(SpeakerCommand::Announce(block, route)),
            None => self.event(Event::Ipv6BlockNotAnnounced(block)),
        }
    }

    fn command(&mut self, command: SpeakerCommand) {
        self.outputs.push_back(Output::Speaker(command));
    }

    fn status(&mut self, change: StatusChange) {
        self.outputs.push_back(Output::Status(change));
    }

    fn event(&mut self, event: Event) {
        self.outputs.push_back(Output::Event(event));
    }

    fn timer(&self, timer: Timer) -> Option<Instant> {
        self.timers
            .iter()
            .find(|(t, _)| *t == timer)
            .map(|(_, at)| *at)
    }

    fn set_timer(&mut self, timer: Timer, at: Instant) {
        self.stop_timer(timer);
        self.timers.push((timer, at));
    }

    fn stop_timer(&mut self, timer: Timer) {
        self.timers.retain(|(t, _)| *t != timer);
    }
}
