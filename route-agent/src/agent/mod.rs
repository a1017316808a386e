//! The daemon: the BGP speaker's best routes → the planner → the kernel.
//!
//! Every decision is made by [`control`], a state machine without I/O:
//! the graceful-restart hold until End-of-RIB, what a node change or a
//! reload changes, when to plan. [`Agent::run`] is the loop around it and
//! only moves messages: route batches from the speaker, signals, kernel
//! notifications and timers go in; plans go to a plain thread that owns
//! the FIB's netlink socket ([`fib_thread`]: plans coalesce, only the
//! latest is applied), commands go to the speaker through a task of their
//! own (the loop is the only reader of the speaker's bounded route stream,
//! so it never waits for the speaker), node reads and tunnel set-ups are
//! done and their results fed back. The kernel's notifications
//! ([`monitor`]) put back a route of ours that someone removes or alters,
//! and have the node address, underlay MTU and tunnel device read again
//! when links or addresses change ([`node`]); a full re-plan every
//! [`RESYNC`] is the backstop for anything missed. [`tunnel`] sets up the
//! IPIP device (kernel or userspace), [`reload`] diffs a config re-read on
//! SIGHUP. The agent writes [`crate::state`], which the admin API reads;
//! the agent does not start the admin API ([`crate::daemon`] starts both).
//! [`heartbeat`] says which parts `/healthz` watches: the loop beats once
//! per turn, the FIB thread as it works, and a probe task stands in for
//! the speaker's heartbeat.
//!
//! On SIGTERM or SIGINT the kernel routes stay (Calico runs BIRD with
//! `persist`); the sessions close for a graceful restart when it is
//! enabled (peers keep our routes meanwhile), with Cease otherwise. An
//! agent that finds routes of an earlier run in the kernel holds its first
//! reconcile until every peer has sent End-of-RIB for each family its
//! session negotiated, or a bound passes (the restart time, or 15 s
//! without graceful restart: [`control::first_sync`]), so a restarted
//! agent does not remove routes its peers are about to re-announce.
//!
//! The signal handlers ([`Signals`]) are installed before anything that
//! can wait, by the caller; SIGHUPs and config file changes that come
//! together are one reload. The agent stops on its own, with an error,
//! when it cannot work: the speaker's task ended
//! ([`AgentError::SpeakerStopped`]), or the tunnel can never be set up
//! ([`AgentError::TunnelUnusable`]); a tunnel that fails otherwise is
//! retried with a backoff ([`control::tunnel`]).

pub mod bpf;
pub mod config_watch;
pub mod control;
mod events;
pub mod fib_thread;
pub mod heartbeat;
pub mod ipip_filter;
pub mod monitor;
pub mod node;
pub mod reload;
pub mod tunnel;

/// The shared state lives in [`crate::state`]; this name keeps
/// `super::state` working in `fib_thread.rs`.
pub use crate::state;

pub use control::RESYNC;

/// How long a stopping agent waits for the record with its new address
/// to be written (`datastore: etcd`); the restarted agent writes it too.
pub const RECORD_WRITE_TIMEOUT: Duration = Duration::from_secs(10);

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicU32;
use std::sync::mpsc::Sender;
use std::time::Duration;

use bgp_core::speaker::{RouteStream, Speaker, SpeakerError};
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::sync::{Notify, mpsc, watch};
use tokio::time::Instant;

use crate::config::{Config, NodeConfig};
use crate::datastore::kubernetes::Snapshot;
use crate::state::AgentState;
use control::{
    AddressChange, Control, DatastoreStart, Output, PeerChange, PeerResult, SpeakerCommand, Start,
    StatusChange, Stop, TunnelOutcome,
};
use fib_thread::FibWork;
use node::{KernelUnderlay, NodeView};
use tunnel::{TunnelError, TunnelSetup};

/// Why the agent could not start, or stopped without being asked to.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The signal handlers (SIGTERM, SIGINT, SIGHUP) could not be set.
    #[error("cannot install the signal handlers: {0}")]
    Signals(std::io::Error),
    /// The speaker did not start.
    #[error("BGP speaker: {0}")]
    Speaker(#[from] SpeakerError),
    /// The speaker task ended while the agent ran (it panicked: its message
    /// is logged above). No session or route changes any more: the agent
    /// stops (routes persist) so that its supervisor starts it again.
    #[error(
        "the BGP speaker stopped unexpectedly (see the panic logged above): stopping so that the agent is started again (routes persist)"
    )]
    SpeakerStopped,
    /// The tunnel can never be set up as configured.
    #[error("{0}: stopping, since no retry can set it up (routes persist)")]
    TunnelUnusable(#[source] TunnelError),
    /// This node's address changed in the datastore (with `datastore:
    /// etcd`: on its interface, and its record was written with it); the
    /// agent stopped (routes persist) so that it is started again on the
    /// new one.
    #[error(
        "this node's address changed from {} to {}: stopped to be restarted on the new address (routes persist)",
        .0.old, .0.new
    )]
    AddressChanged(AddressChange),
}

/// Where the running agent's config came from, for SIGHUP.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// The config file, re-read on SIGHUP (none: SIGHUP is ignored).
    pub config_file: Option<PathBuf>,
    /// The node name (config, `$NODE_NAME` or the hostname).
    pub node_name: Option<String>,
    /// The log format (`human` or `json`), passed on to the userspace
    /// tunnel process.
    pub log_format: String,
    /// The nodes come from a datastore (Kubernetes), not the file.
    pub datastore: Option<AgentDatastore>,
}

/// The datastore an agent follows.
#[derive(Clone, Debug)]
pub struct AgentDatastore {
    /// This node's name in the node set.
    pub name: String,
    /// The config file as loaded (cluster-wide settings); the agent runs
    /// [`crate::datastore::desired_config`] of it and the nodes.
    pub file: Config,
    /// The snapshot the agent starts from (it holds this node).
    pub initial: Arc<Snapshot>,
    /// Newer snapshots.
    pub snapshots: watch::Receiver<Option<Arc<Snapshot>>>,
    /// Where the pools go after a reload (podCIDRs are checked against
    /// them).
    pub pools: Arc<watch::Sender<Vec<ipnetwork::IpNetwork>>>,
    /// With `datastore: etcd`, where this node's record is written when
    /// the agent finds another address on its interface (the node is read
    /// as the file says, `node.autodetect` or `node.address`).
    pub etcd: Option<crate::config::EtcdConfig>,
}

/// The signals the agent acts on, handled from the moment they are
/// installed: `route-agent run` installs them before anything that can
/// wait (the node read, the datastore, the speaker), so a SIGHUP during
/// the start is a reload once the agent runs (signals that come meanwhile
/// are kept, several as one) and never the default action, which would
/// kill it; a SIGTERM or SIGINT then stops it at once.
#[derive(Debug)]
pub struct Signals {
    term: Signal,
    int: Signal,
    hup: Signal,
}

impl Signals {
    /// Replaces the default actions of SIGTERM, SIGINT and SIGHUP (inside
    /// a tokio runtime).
    pub fn install() -> Result<Signals, AgentError> {
        let on = |kind| signal(kind).map_err(AgentError::Signals);
        Ok(Signals {
            term: on(SignalKind::terminate())?,
            int: on(SignalKind::interrupt())?,
            hup: on(SignalKind::hangup())?,
        })
    }

    /// Waits for SIGTERM or SIGINT.
    pub async fn stop(&mut self) {
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.int.recv() => {}
        }
    }
}

/// A started agent: its speaker runs and its state can be served.
pub struct Agent {
    config: Config,
    options: Options,
    node: NodeView,
    installed: bool,
    speaker: Speaker,
    routes: RouteStream,
    state: Arc<AgentState>,
    signals: Signals,
}

impl Agent {
    /// Starts the BGP speaker on `node` (read with [`NodeView::read`]),
    /// originating our blocks from the start: a peer keeping our routes
    /// across our restart removes, at our End-of-RIB, any we had not sent
    /// by then. `signals` are those installed first thing by the caller.
    pub async fn start(
        config: Config,
        node: NodeView,
        options: Options,
        signals: Signals,
    ) -> Result<Agent, AgentError> {
        let mut speaker_config = config.to_speaker_config(node.address.ip());
        // Routes of ours from an earlier run are still in the kernel: the
        // first plan waits for the peers' End-of-RIBs (control::first_sync).
        let installed = crate::fib::Fib::open(config.route_protocol)
            .and_then(|mut f| f.installed())
            .is_ok_and(|routes| !routes.is_empty());
        if let Some(gr) = &mut speaker_config.graceful_restart {
            // We are a restarting speaker that kept its forwarding state, so
            // our OPENs carry the Restart State bit (RFC 4724 §4.1) and peers
            // keep our routes until our End-of-RIB instead of flapping them.
            gr.restarting = installed;
            if installed {
                tracing::info!(
                    "routes of an earlier run are installed: restarting with graceful restart"
                );
            }
        } else if installed {
            tracing::info!(
                wait_s = control::first_sync::WAIT_WITHOUT_GR.as_secs(),
                "routes of an earlier run are installed: the first reconcile waits for every peer's End-of-RIB"
            );
        }
        let blocks = config
            .blocks
            .iter()
            .filter_map(|b| control::local_route(b, &node).map(|r| (*b, r)))
            .collect();
        let (speaker, routes) = Speaker::start_with_routes(speaker_config, blocks).await?;
        let state = Arc::new(AgentState::new(speaker.clone()));
        state.metrics.set_per_peer(config.admin.per_peer_metrics);
        Ok(Agent {
            config,
            options,
            node,
            installed,
            speaker,
            routes,
            state,
            signals,
        })
    }

    /// The state the agent writes, for the admin API.
    pub fn state(&self) -> Arc<AgentState> {
        self.state.clone()
    }

    /// Runs the agent until SIGTERM or SIGINT; an error when it stops on
    /// its own ([`AgentError::SpeakerStopped`],
    /// [`AgentError::AddressChanged`], [`AgentError::TunnelUnusable`]).
    pub async fn run(self) -> Result<(), AgentError> {
        let Agent {
            config,
            options,
            node,
            installed,
            speaker,
            mut routes,
            state,
            mut signals,
        } = self;
        let fib_port = Arc::new(AtomicU32::new(0));
        let resync = monitor::ResyncRequests::default();
        let bpf = bpf::SharedBpf::default();
        let fib = fib_thread::spawn(
            config.route_protocol,
            config.nexthop_objects,
            state.clone(),
            fib_port.clone(),
            resync.clone(),
            bpf.clone(),
        );
        let probe = tokio::spawn(heartbeat::probe_speaker(speaker.clone(), state.clone()));
        let node_changed = Arc::new(Notify::new());
        monitor::spawn(fib.clone(), resync, node_changed.clone(), fib_port);
        let (tunnel_exits, mut exited) = mpsc::unbounded_channel();
        let (commands, commands_rx) = mpsc::unbounded_channel();
        let (peer_results_tx, mut peer_results) = mpsc::unbounded_channel();
        let executor = tokio::spawn(speaker_commands(
            speaker.clone(),
            commands_rx,
            peer_results_tx,
        ));
        let (tunnel_tx, mut tunnels) = mpsc::unbounded_channel();
        let mut file_changes = match &options.config_file {
            Some(file) => config_watch::spawn(file),
            None => mpsc::unbounded_channel().1,
        };
        let mut snapshots = options.datastore.as_ref().map(|d| d.snapshots.clone());
        let pools = options.datastore.as_ref().map(|d| d.pools.clone());
        let mut io = Io {
            filter: ipip_filter::FilterTask::spawn(state.clone(), bpf.clone()),
            bpf: bpf.clone(),
            state,
            fib,
            commands,
            tunnel: tunnel_tx,
            tunnel_exits,
            // With etcd the address is found as the file says (autodetect):
            // a new one is written to the record (control::moves).
            node: match options.datastore.as_ref().filter(|d| d.etcd.is_some()) {
                Some(d) => d.file.node.clone(),
                None => config.node.clone(),
            },
            etcd: options.datastore.as_ref().and_then(|d| d.etcd.clone()),
            record_write: None,
        };
        let underlay = Box::new(KernelUnderlay::new(config.route_protocol));
        let mut control = Control::new(
            now(),
            Start {
                config,
                node,
                node_name: options.node_name.clone(),
                log_format: options.log_format.clone(),
                installed,
                datastore: options.datastore.as_ref().map(|d| DatastoreStart {
                    name: d.name.clone(),
                    file: d.file.clone(),
                    nodes: d.initial.nodes.clone(),
                    writes_record: d.etcd.is_some(),
                }),
            },
            underlay,
        );
        // The first reconcile may wait for the hold; it is due one resync
        // period after it.
        let hold = control
            .hold_until()
            .map_or(Duration::ZERO, |t| t.saturating_duration_since(now()));
        heartbeat::watch_agent(&io.state, std::time::Instant::now(), hold);
        if let Some(d) = &options.datastore {
            control.handle_nodes(now(), &d.initial);
        }
        let mut stopped_for = None;
        loop {
            if let Some(reason) = io.carry_out(&mut control) {
                stopped_for = Some(reason);
                break;
            }
            io.state
                .heartbeats
                .beat(state::Part::AgentLoop, std::time::Instant::now());
            let deadline = control.poll_timeout();
            tokio::select! {
                batch = routes.recv_batch() => {
                    let Some(first) = batch else {
                        // Nobody asked the speaker to stop: its task ended.
                        tracing::error!("the BGP speaker stopped: the agent stops");
                        stopped_for = Some(Stopped::Speaker);
                        break;
                    };
                    // Plan once per burst: take every batch already waiting
                    // (a table of one UPDATE per node arrives as thousands).
                    let now = now();
                    control.handle_routes(now, &first);
                    while let Some(batch) = routes.try_recv_batch() {
                        control.handle_routes(now, &batch);
                    }
                }
                () = sleep_until(deadline) => control.handle_timeout(now()),
                () = node_changed.notified() => control.handle_node_changed(now()),
                Some(result) = peer_results.recv() => control.handle_peer_result(now(), result),
                Some(outcome) = tunnels.recv() => control.handle_tunnel(now(), outcome),
                Some(exit) = exited.recv() => control.handle_tunnel_exited(now(), exit),
                // SIGHUP, or the file changed on disk (a ConfigMap update):
                // one reload for every request already waiting.
                _ = signals.hup.recv() => {
                    while file_changes.try_recv().is_ok() {}
                    reload(&mut control, options.config_file.as_deref(), pools.as_deref());
                }
                Some(()) = file_changes.recv() => {
                    while file_changes.try_recv().is_ok() {}
                    if let Some(file) = &options.config_file {
                        tracing::info!(file = %file.display(), "config file changed: reloading");
                    }
                    reload(&mut control, options.config_file.as_deref(), pools.as_deref());
                }
                Some(snapshot) = next_snapshot(&mut snapshots) => {
                    control.handle_nodes(now(), &snapshot);
                }
                _ = signals.term.recv() => break,
                _ = signals.int.recv() => break,
            }
        }
        // The record with our new address goes out before we do, so the
        // others move their routes however long our restart takes.
        if let Some(write) = io.record_write.take()
            && tokio::time::timeout(RECORD_WRITE_TIMEOUT, write)
                .await
                .is_err()
        {
            tracing::warn!(
                timeout_s = RECORD_WRITE_TIMEOUT.as_secs(),
                "this node's record could not be written before stopping: the restarted agent writes it"
            );
        }
        // Commands of a reload still queued do not matter any more: the
        // speaker stops next.
        executor.abort();
        probe.abort();
        heartbeat::stop_watching(&io.state);
        // With persist-routes: false the IPIP filter goes with the routes.
        let remove_filter = !control.config().persist_routes;
        let filter = io.filter;
        let _ = tokio::task::spawn_blocking(move || filter.stop(remove_filter)).await;
        stop(control.config(), &io.fib, &speaker, &mut routes).await;
        if remove_filter {
            // The routes that ran them are gone: the programs go too.
            let underlay = control.node_underlay().to_owned();
            let _ = tokio::task::spawn_blocking(move || remove_bpf(&bpf, &underlay)).await;
        }
        match stopped_for {
            None => Ok(()),
            Some(Stopped::Control(Stop::AddressChanged(change))) => {
                Err(AgentError::AddressChanged(change))
            }
            Some(Stopped::Control(Stop::TunnelUnusable(e))) => Err(AgentError::TunnelUnusable(e)),
            Some(Stopped::Speaker) => Err(AgentError::SpeakerStopped),
        }
    }
}

/// Detaches and unpins the `bpf` backend's programs (`persist-routes:
/// false`, after our routes are removed); nothing without them.
fn remove_bpf(shared: &bpf::SharedBpf, underlay: &str) {
    let taken = shared
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .take();
    if let Some(tunnel) = taken {
        let ifindex = ipip::sys::if_index(underlay).ok();
        match tunnel.remove(ifindex) {
            Ok(()) => {
                tracing::info!("bpf tunnel programs detached and unpinned (persist-routes: false)")
            }
            Err(e) => tracing::warn!("bpf tunnel programs not removed: {e}"),
        }
    }
}

/// Why the loop ended other than by a signal.
enum Stopped {
    /// The control step said so.
    Control(Stop),
    /// The speaker's route stream ended.
    Speaker,
}

/// Re-reads the config file (SIGHUP or a change on disk) and hands the
/// control step the result; without a file there is nothing to reload.
fn reload(
    control: &mut Control,
    file: Option<&std::path::Path>,
    pools: Option<&watch::Sender<Vec<ipnetwork::IpNetwork>>>,
) {
    match file {
        Some(file) => {
            control.handle_reload(now(), Config::load(file));
            send_pools(control, pools);
        }
        None => tracing::info!("SIGHUP: no config file to reload"),
    }
}

/// The datastore's next snapshot; never, without a datastore (or once it
/// stopped).
async fn next_snapshot(
    snapshots: &mut Option<watch::Receiver<Option<Arc<Snapshot>>>>,
) -> Option<Arc<Snapshot>> {
    let Some(rx) = snapshots else {
        return std::future::pending().await;
    };
    loop {
        if rx.changed().await.is_err() {
            *snapshots = None;
            return std::future::pending().await;
        }
        if let Some(s) = rx.borrow_and_update().clone() {
            return Some(s);
        }
    }
}

/// Hands the running pools to the datastore, which checks podCIDRs
/// against them.
fn send_pools(control: &Control, pools: Option<&watch::Sender<Vec<ipnetwork::IpNetwork>>>) {
    if let Some(tx) = pools {
        let now: Vec<ipnetwork::IpNetwork> =
            control.config().pools.iter().map(|p| p.cidr).collect();
        tx.send_if_modified(|p| {
            let changed = *p != now;
            if changed {
                p.clone_from(&now);
            }
            changed
        });
    }
}

/// Stops: routes persist (the kernel keeps forwarding while we are gone).
/// With graceful restart that is exactly the state RFC 4724 preserves, so
/// the sessions close without a NOTIFICATION and peers keep our routes for
/// the restart time: a restart or upgrade flaps nothing anywhere. A node
/// that never comes back is withdrawn when that time runs out.
async fn stop(config: &Config, fib: &Sender<FibWork>, speaker: &Speaker, routes: &mut RouteStream) {
    if !config.persist_routes {
        // persist-routes: false. Our routes go first, then Cease: nothing
        // is forwarded for us any more, so peers must not keep our routes.
        let (done, wait) = std::sync::mpsc::channel();
        if fib.send(FibWork::Last(Vec::new(), done)).is_ok() {
            let _ = tokio::task::spawn_blocking(move || wait.recv_timeout(Duration::from_secs(10)))
                .await;
        }
        tracing::info!(
            "stopping: our kernel routes removed (persist-routes: false), Cease to every peer"
        );
        draining(routes, speaker.shutdown("route-agent stopping")).await;
    } else if config.graceful_restart.enabled {
        tracing::info!(
            restart_time = config.graceful_restart.restart_time,
            "stopping: sessions closed for a graceful restart, peers keep our routes until the restart time runs out"
        );
        draining(routes, speaker.shutdown_for_restart()).await;
    } else {
        tracing::info!("stopping: Cease to every peer");
        draining(routes, speaker.shutdown("route-agent stopping")).await;
    }
}

/// Waits for `done` (a request to the speaker) while reading and dropping
/// the route stream, which the speaker may be blocked on: nobody else
/// reads it once the loop has ended.
async fn draining<F: Future>(routes: &mut RouteStream, done: F) -> F::Output {
    tokio::pin!(done);
    loop {
        tokio::select! {
            biased;
            out = &mut done => return out,
            batch = routes.recv_batch() => {
                if batch.is_none() {
                    return done.await;
                }
            }
        }
    }
}

/// The loop's clock, in the control step's terms (tokio's, so that a test
/// with paused time moves it).
fn now() -> std::time::Instant {
    Instant::now().into_std()
}

/// Sleeps until `deadline`, or forever without one.
async fn sleep_until(deadline: Option<std::time::Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(Instant::from_std(at)).await,
        None => std::future::pending().await,
    }
}

/// Carries the speaker's commands out in order, on a task of their own:
/// `add_peer` and `remove_peer` wait for the speaker's answer, and the
/// speaker may be waiting for the agent's loop to read its route stream.
/// The answers go back to the loop.
async fn speaker_commands(
    speaker: Speaker,
    mut commands: mpsc::UnboundedReceiver<SpeakerCommand>,
    results: mpsc::UnboundedSender<PeerResult>,
) {
    while let Some(command) = commands.recv().await {
        let result = match command {
            SpeakerCommand::Announce(prefix, route) => {
                if let Err(e) = speaker.announce(prefix, route) {
                    // Only when the speaker has stopped: nothing more to do.
                    tracing::error!(%prefix, "cannot announce: {e}");
                    return;
                }
                continue;
            }
            SpeakerCommand::Withdraw(prefix) => {
                if let Err(e) = speaker.withdraw(prefix) {
                    tracing::error!(%prefix, "cannot withdraw: {e}");
                    return;
                }
                continue;
            }
            SpeakerCommand::AddPeer(peer) => PeerResult {
                peer: peer.address,
                change: PeerChange::Add,
                result: speaker.add_peer(*peer).await,
            },
            SpeakerCommand::SetBlockOwners(owners) => {
                // The speaker's import guard then accepts a route inside an
                // owned block only with the owner's next hop.
                if let Err(e) = speaker.set_block_owners(owners) {
                    tracing::error!("cannot set the block owners: {e}");
                    return;
                }
                continue;
            }
            SpeakerCommand::RemovePeer(peer) => PeerResult {
                peer,
                change: PeerChange::Remove,
                result: speaker.remove_peer(peer).await,
            },
        };
        if results.send(result).is_err() {
            return;
        }
    }
}

/// Where the control step's outputs go.
struct Io {
    state: Arc<AgentState>,
    /// The kernel tunnel's IPIP filter (and the bpf backend's allow-list).
    filter: ipip_filter::FilterTask,
    /// The `bpf` backend's programs, once set up.
    bpf: bpf::SharedBpf,
    fib: Sender<FibWork>,
    commands: mpsc::UnboundedSender<SpeakerCommand>,
    tunnel: mpsc::UnboundedSender<TunnelOutcome>,
    /// Where a userspace tunnel process the agent started reports its
    /// exit.
    tunnel_exits: tunnel::ExitSink,
    /// How to find the node (a reload does not change it).
    node: NodeConfig,
    /// Where this node's record is written (`datastore: etcd`).
    etcd: Option<crate::config::EtcdConfig>,
    /// The last record write, still retrying.
    record_write: Option<tokio::task::JoinHandle<()>>,
}

impl Io {
    /// Carries out every output the control step has; returns why to
    /// stop, when it says so.
    fn carry_out(&mut self, control: &mut Control) -> Option<Stopped> {
        while let Some(output) = control.poll_output() {
            match output {
                Output::Plan(plan) => {
                    self.filter.plan(&plan.routes);
                    let _ = self.fib.send(FibWork::Plan(plan));
                }
                Output::NodeAddresses(nodes) => self.filter.nodes(nodes),
                Output::Speaker(command) => {
                    let _ = self.commands.send(command);
                }
                // A few netlink dumps: quick enough to do in the loop.
                Output::ReadNode => control.handle_node(now(), NodeView::read(&self.node)),
                Output::EnsureTunnel(setup) => self.ensure_tunnel(setup),
                // One small file, rarely: written in the loop, so writes
                // stay in order.
                Output::WriteCni(file) => write_cni(&file),
                Output::RemoveCni(path) => remove_cni(&path),
                Output::Status(StatusChange::PerPeerMetrics(on)) => {
                    self.state.metrics.set_per_peer(on);
                }
                Output::Status(change) => {
                    if let StatusChange::Tunnel(t) = &change {
                        self.filter.backend(t.backend);
                    }
                    self.state.update(|s| match change {
                        StatusChange::Node(node) => s.node = node,
                        StatusChange::ConfiguredPeers(peers) => s.configured_peers = peers,
                        StatusChange::Rejected(counts) => s.rejected = counts,
                        StatusChange::Tunnel(tunnel) => s.tunnel = tunnel,
                        StatusChange::Datastore(ds) => s.datastore = Some(ds),
                        // Handled above.
                        StatusChange::PerPeerMetrics(_) => {}
                    });
                }
                Output::Event(event) => events::log(&event),
                Output::WriteRecord(me) => self.write_record(me, control.config().asn),
                Output::Stop(Stop::AddressChanged(change)) => {
                    tracing::warn!(old = %change.old, new = %change.new, "this node's address changed: stopping to be restarted on it (routes persist)");
                    return Some(Stopped::Control(Stop::AddressChanged(change)));
                }
                Output::Stop(Stop::TunnelUnusable(e)) => {
                    tracing::error!("the tunnel cannot be set up: {e}");
                    return Some(Stopped::Control(Stop::TunnelUnusable(e)));
                }
            }
        }
        None
    }

    /// Writes this node's record on a task of its own, after the write
    /// before it, retrying while etcd fails; a fresh client, since the
    /// connections of the old one may be bound to an address that is gone.
    fn write_record(&mut self, me: crate::datastore::ClusterNode, asn: u32) {
        let Some(settings) = self.etcd.clone() else {
            return;
        };
        let before = self.record_write.take();
        self.record_write = Some(tokio::spawn(async move {
            if let Some(before) = before {
                let _ = before.await;
            }
            let record = crate::datastore::etcd::record::NodeRecord::of(&me, asn);
            let written = crate::datastore::etcd::retry("write this node's record", || {
                let record = record.clone();
                let settings = settings.clone();
                async move {
                    crate::datastore::etcd::Etcd::connect(&settings)?
                        .put_record(&record)
                        .await
                }
            })
            .await;
            match written {
                Ok(()) => tracing::info!(address = %me.address, "this node's etcd record written"),
                Err(e) => tracing::error!("this node's etcd record not written: {e}"),
            }
        }));
    }

    /// Sets up the tunnel on a blocking thread (a userspace tunnel may
    /// take seconds to create its device); the outcome goes back to the
    /// loop.
    fn ensure_tunnel(&self, setup: TunnelSetup) {
        let done = self.tunnel.clone();
        let exits = self.tunnel_exits.clone();
        let bpf = self.bpf.clone();
        tokio::spawn(async move {
            let outcome = tokio::task::spawn_blocking(move || tunnel::ensure(&setup, &exits, &bpf))
                .await
                .unwrap_or_else(|e| Err(TunnelError::Panicked(e)));
            let _ = done.send(outcome);
        });
    }
}

/// Writes the CNI config file; a failure is logged (with the path and the
/// errno) and not fatal: routes do not depend on it, and the periodic
/// re-check tries again.
fn write_cni(file: &crate::cni::CniFile) {
    let path = file.path.display();
    match crate::cni::write(&file.path, &file.contents) {
        Ok(crate::cni::Written::Replaced) => tracing::info!(%path, "CNI config written"),
        Ok(crate::cni::Written::Unchanged) => {
            tracing::debug!(%path, "CNI config unchanged");
        }
        Err(e) => tracing::error!(%path, errno = e.errno(), "CNI config not written: {e}"),
    }
}

/// Removes the CNI config file the agent wrote; a failure is logged.
fn remove_cni(path: &std::path::Path) {
    let shown = path.display();
    match crate::cni::remove(path) {
        Ok(true) => tracing::info!(path = %shown, "CNI config removed"),
        Ok(false) => {}
        Err(e) => tracing::error!(path = %shown, errno = e.errno(), "CNI config not removed: {e}"),
    }
}
