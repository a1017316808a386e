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
//! | [`handle_routes`](Control::handle_routes) | a batch of the speaker's route stream | the learned routes; End-of-RIB ends the graceful-restart hold. Feed every batch of a burst, then poll: one plan per burst |
//! | [`handle_node_changed`](Control::handle_node_changed) | the kernel monitor (a link or address changed) | read the node once changes settle ([`NODE_SETTLE`]) |
//! | [`handle_node`](Control::handle_node) | the answer to [`Output::ReadNode`] | re-plan when address, underlay or MTU changed; make sure of the tunnel |
//! | [`handle_reload`](Control::handle_reload) | SIGHUP: the config file re-read, or why it could not be | peers, blocks and pools live ([`super::reload`]); the rest reported as needing a restart |
//! | [`handle_peer_result`](Control::handle_peer_result) | the speaker's answer to a peer command | reported when it failed |
//! | [`handle_tunnel`](Control::handle_tunnel) | the answer to [`Output::EnsureTunnel`] | the tunnel status; plans wait for the first set-up (routes through the tunnel need its device) |
//! | [`handle_timeout`](Control::handle_timeout) | [`poll_timeout`](Control::poll_timeout) | the restart time is up; the node read is due; the periodic full re-plan ([`RESYNC`]) and CNI file re-check |
//!
//! The CNI config file ([`crate::cni`]) follows this node's blocks, its
//! underlay MTU and the `cni` settings: [`Control::poll_output`] compares
//! them on every call, so whichever input changes them (a reload, a node
//! read, a datastore) writes the file ([`Output::WriteCni`]), and only
//! then.
//!
//! A source of nodes other than the config file (a Kubernetes or etcd
//! datastore) fits the same way: what it learns (the mesh peers, their
//! blocks) is a new desired config, applied by the same live diff as a
//! reload.

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet, HashSet, VecDeque};
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use bgp_core::speaker::{LocalRoute, PeerConfig, RouteChange, SpeakerError};
use bgp_core::wire::Family;
use ipnetwork::IpNetwork;

use super::node::{NodeError, NodeView};
use super::reload::{self, Reload};
use super::tunnel::{TunnelError, TunnelSetup};
use crate::cni::{CniAction, CniFile, CniInputs, CniTracker};
use crate::config::{Config, ConfigError};
use crate::netinfo::UnderlayRoutes;
use crate::planner::{DesiredRoute, LearnedRoute, LocalNode, Pool, RejectReason, Rejection, plan};
use crate::state::{NodeStatus, TunnelInUse, TunnelStatus};

/// How often the whole plan is re-applied regardless of changes: the
/// backstop for a kernel change the monitor missed.
pub const RESYNC: Duration = Duration::from_secs(30);

/// How long a burst of link or address changes gets to settle before the
/// node is read again. Only the node read waits: the route stream keeps
/// flowing meanwhile (it used to be a sleep in the loop, and the
/// monitor's lost-notification signal, common while thousands of our own
/// routes go in, stalled convergence by as much).
pub const NODE_SETTLE: Duration = Duration::from_millis(50);

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
    /// Routes of an earlier run are in the kernel and graceful restart is
    /// on: hold the first plan until every peer has sent End-of-RIB or the
    /// restart time is up (RFC 4724 §4.1's deferral), so that a restarted
    /// agent does not remove routes its peers are about to re-announce.
    pub restarting: bool,
}

/// Something the loop is to do.
#[derive(Debug)]
pub enum Output {
    /// Apply this plan: send it to the FIB thread (it replaces the last).
    Plan(Vec<DesiredRoute>),
    /// Tell the speaker; the loop must not wait for it.
    Speaker(SpeakerCommand),
    /// Read the node ([`NodeView::read`]) and answer with
    /// [`Control::handle_node`].
    ReadNode,
    /// Make the tunnel exist as set up (blocking, up to seconds) and answer
    /// with [`Control::handle_tunnel`]. At most one is in flight.
    EnsureTunnel(TunnelSetup),
    /// Write the CNI config file ([`crate::cni::write`]: atomically, and
    /// not at all when its content is already on disk); log a failure.
    WriteCni(CniFile),
    /// Remove the CNI config file the agent wrote ([`crate::cni::remove`]):
    /// CNI was turned off or moved, or no block has room for a pod.
    RemoveCni(PathBuf),
    /// Change the shared status.
    Status(StatusChange),
    /// Something to log.
    Event(Event),
}

/// A command to the speaker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SpeakerCommand {
    /// Originate this prefix.
    Announce(IpNetwork, LocalRoute),
    /// Stop originating it.
    Withdraw(IpNetwork),
    /// Add a peer; answer with [`Control::handle_peer_result`].
    AddPeer(Box<PeerConfig>),
    /// Remove a peer; answer with [`Control::handle_peer_result`].
    RemovePeer(IpAddr),
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
    /// Every peer sent End-of-RIB: the graceful-restart hold is over.
    InSync,
    /// The restart time passed first; these peers' End-of-RIB never came.
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
    /// The tunnel could not be set up.
    TunnelFailed(TunnelError),
    /// The config file could not be reloaded; the running one stays.
    ReloadRefused(ConfigError),
    /// These reloaded keys take effect only after a restart.
    NeedsRestart(Vec<&'static str>),
    /// A reload was applied.
    Reloaded(Reload),
    /// A peer command of a reload failed.
    PeerCommandFailed(PeerResult),
}

/// The control step's deadlines.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Timer {
    /// The restart time of the graceful-restart hold.
    RestartHold,
    /// A burst of link or address changes has settled.
    NodeSettle,
    /// The periodic full re-plan.
    Resync,
}

/// The tunnel set-up in flight, if any.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TunnelWork {
    Idle,
    /// One runs; `again`: another was asked for meanwhile.
    Running {
        again: bool,
    },
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
    /// End-of-RIBs the graceful-restart hold waits for: (peer, family).
    awaiting: BTreeSet<(IpAddr, Family)>,
    /// The hold is over (or there was none): plans go out.
    synced: bool,
    /// The first tunnel set-up has answered (or no tunnel is needed).
    tunnel_ready: bool,
    tunnel: TunnelWork,
    /// Something changed since the last plan.
    replan: bool,
    /// When the CNI file is to be written.
    cni: CniTracker,
    timers: Vec<(Timer, Instant)>,
    outputs: VecDeque<Output>,
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
    /// a graceful restart holds it, plan.
    pub fn new(now: Instant, start: Start, underlay: Box<dyn Underlay>) -> Control {
        let Start {
            config,
            node,
            node_name,
            log_format,
            restarting,
        } = start;
        let peers = configured_peers(&config, &node);
        let awaiting: BTreeSet<(IpAddr, Family)> = if restarting {
            peers.iter().map(|p| (*p, Family::Ipv4Unicast)).collect()
        } else {
            BTreeSet::new()
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
            tunnel: TunnelWork::Idle,
            replan: true,
            cni: CniTracker::default(),
            timers: Vec::new(),
            outputs: VecDeque::new(),
        };
        if !control.synced {
            let restart_time = u64::from(control.config.graceful_restart.restart_time);
            control.set_timer(Timer::RestartHold, now + Duration::from_secs(restart_time));
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
        // Without a tunnel nothing waits for one.
        control.tunnel_ready = control.tunnel == TunnelWork::Idle;
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

    /// Whether plans go out (no graceful-restart hold, or it is over).
    pub fn is_synced(&self) -> bool {
        self.synced
    }

    /// A batch of the speaker's route changes.
    pub fn handle_routes(&mut self, _now: Instant, changes: &[RouteChange]) {
        for change in changes {
            match change {
                RouteChange::Best(route) if route.peer.is_some() => {
                    self.learned.insert(route.prefix, route.next_hop);
                }
                // Our own blocks are planned from the config.
                RouteChange::Best(route) => {
                    self.learned.remove(&route.prefix);
                }
                RouteChange::Withdrawn(prefix) => {
                    self.learned.remove(prefix);
                }
                RouteChange::EndOfRib { peer, family } => {
                    self.awaiting.remove(&(*peer, *family));
                }
                // Sessions coming and going change no route by themselves.
                _ => {}
            }
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
                self.event(Event::NodeChanged { old, new });
                self.local = self.node.local_node(&self.config);
                self.status(StatusChange::Node(self.node.status(self.node_name.clone())));
                self.replan = true;
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
    pub fn handle_reload(&mut self, _now: Instant, reloaded: Result<Config, ConfigError>) {
        let new = match reloaded {
            Ok(c) => c,
            Err(e) => return self.event(Event::ReloadRefused(e)),
        };
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
        if !change.needs_restart.is_empty() {
            self.event(Event::NeedsRestart(change.needs_restart.clone()));
        }
        reload::apply_live(&mut self.config, new);
        self.pools = self.config.pools();
        self.local = self.node.local_node(&self.config);
        let configured = configured_peers(&self.config, &self.node);
        // A removed peer's End-of-RIB is no longer awaited.
        self.awaiting.retain(|(p, _)| configured.contains(p));
        self.status(StatusChange::ConfiguredPeers(configured));
        self.event(Event::Reloaded(change));
        self.replan = true;
        self.end_hold_if_complete();
    }

    /// The speaker's answer to [`SpeakerCommand::AddPeer`] or
    /// [`SpeakerCommand::RemovePeer`].
    pub fn handle_peer_result(&mut self, _now: Instant, result: PeerResult) {
        if result.result.is_err() {
            self.event(Event::PeerCommandFailed(result));
        }
    }

    /// The answer to [`Output::EnsureTunnel`]: the backend in use and why
    /// it is not the configured one, or why there is none.
    pub fn handle_tunnel(&mut self, _now: Instant, outcome: TunnelOutcome) {
        let device = self.config.tunnel.device.clone();
        let status = match outcome {
            Ok((backend, note)) => TunnelStatus {
                backend,
                device,
                note,
            },
            Err(e) => {
                let note = Some(e.to_string());
                self.event(Event::TunnelFailed(e));
                TunnelStatus {
                    backend: TunnelInUse::None,
                    device,
                    note,
                }
            }
        };
        self.status(StatusChange::Tunnel(status));
        // Routes through the tunnel wait for the first set-up, whatever
        // its outcome (a failed one is retried after the next change).
        self.tunnel_ready = true;
        let again = self.tunnel == TunnelWork::Running { again: true };
        self.tunnel = TunnelWork::Idle;
        if again {
            self.ensure_tunnel();
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
                        let missing = self.awaiting.iter().map(|(p, _)| *p).collect();
                        self.event(Event::HoldExpired { missing });
                        self.synced = true;
                        self.replan = true;
                    }
                }
                Timer::NodeSettle => self.outputs.push_back(Output::ReadNode),
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

    /// Plans the kernel routes to have now. Refused routes are logged once
    /// per route and reason (a peer re-announcing one does not flood the
    /// log) and counted in the status while they stay refused.
    fn make_plan(&mut self, cause: PlanCause) {
        self.replan = false;
        let learned: Vec<LearnedRoute> = self
            .learned
            .iter()
            .map(|(prefix, next_hop)| LearnedRoute {
                prefix: *prefix,
                next_hop: *next_hop,
            })
            .collect();
        let underlay = self.underlay_for(&learned);
        let p = plan(&self.local, &self.pools, &learned, &underlay);
        let mut counts = BTreeMap::new();
        for r in &p.rejected {
            *counts.entry(r.reason).or_insert(0u64) += 1;
            if self.reported.insert(*r) {
                self.event(Event::Refused(*r));
            }
        }
        // Forget what is no longer refused, so it is logged again if it
        // comes back.
        let now: HashSet<Rejection> = p.rejected.into_iter().collect();
        self.reported.retain(|r| now.contains(r));
        self.status(StatusChange::Rejected(counts));
        let routes: Vec<DesiredRoute> = p.routes.into_values().collect();
        self.event(Event::Planned {
            routes: routes.len(),
            cause,
        });
        self.outputs.push_back(Output::Plan(routes));
    }

    /// The underlay's IPv6 routes, asked for only when a learned IPv6
    /// block has its next hop off our IPv6 subnet.
    fn underlay_for(&mut self, learned: &[LearnedRoute]) -> UnderlayRoutes {
        let Some(v6) = self.local.ipv6 else {
            return UnderlayRoutes::default();
        };
        let needed = learned
            .iter()
            .any(|r| matches!(r.next_hop, IpAddr::V6(nh) if !v6.contains(nh)));
        if needed {
            self.underlay.routes()
        } else {
            UnderlayRoutes::default()
        }
    }

    /// Asks for the tunnel as the config and node want it (none when no
    /// IPv4 pool uses IPIP); one set-up at a time, the next after it.
    fn ensure_tunnel(&mut self) {
        let Some(mut setup) =
            TunnelSetup::from_config(&self.config, self.node.address.ip(), self.node.mtu)
        else {
            return;
        };
        setup.log_format.clone_from(&self.log_format);
        match self.tunnel {
            TunnelWork::Idle => {
                self.tunnel = TunnelWork::Running { again: false };
                self.outputs.push_back(Output::EnsureTunnel(setup));
            }
            TunnelWork::Running { .. } => self.tunnel = TunnelWork::Running { again: true },
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
