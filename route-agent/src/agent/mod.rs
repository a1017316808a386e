//! The daemon: the BGP speaker's best routes → the planner → the kernel.
//!
//! One task owns the speaker and the learned routes ([`run`]); a plain
//! thread owns the netlink socket and applies the newest plan
//! ([`fib_thread`]: plans coalesce, only the latest is applied). The
//! kernel's notifications ([`monitor`]) put back a route of ours that
//! someone removes or alters, and re-read the node address, underlay MTU
//! and tunnel device when links or addresses change; a full re-plan every
//! [`RESYNC`] is the backstop for anything missed. [`tunnel`] sets up the
//! IPIP device (kernel or userspace), [`reload`] applies a changed config
//! on SIGHUP. The agent writes [`crate::state`], which the admin API reads;
//! the agent does not start the admin API ([`crate::daemon`] starts both).
//!
//! On SIGTERM or SIGINT the kernel routes stay (Calico runs BIRD with
//! `persist`); the sessions close for a graceful restart when it is
//! enabled (peers keep our routes meanwhile), with Cease otherwise. With graceful restart enabled, the
//! first reconcile waits until every peer has sent End-of-RIB (or the
//! restart time has passed), so a restarted agent does not remove routes
//! its peers are about to re-announce.

pub mod fib_thread;
pub mod monitor;
pub mod node;
pub mod reload;
pub mod tunnel;

/// The shared state lives in [`crate::state`]; this name keeps
/// `super::state` working in `fib_thread.rs`.
pub use crate::state;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bgp_core::speaker::{LocalRoute, RouteChange, Speaker, SpeakerError};
use bgp_core::wire::Family;
use ipnetwork::IpNetwork;

use crate::config::Config;
use crate::fib::Netlink;
use crate::netinfo::UnderlayRoutes;
use crate::planner::{DesiredRoute, LearnedRoute, LocalNode, Pool, Rejection, plan};
use crate::state::{AgentState, TunnelInUse, TunnelStatus};
use fib_thread::FibWork;
use node::NodeView;
use tunnel::TunnelSetup;

/// How often the whole plan is re-applied regardless of changes.
pub const RESYNC: Duration = Duration::from_secs(30);

/// How long a burst of link or address changes gets to settle before the
/// agent reads the node again.
const NODE_SETTLE: Duration = Duration::from_millis(50);

/// Why the agent could not start.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The signal handlers (SIGTERM, SIGINT, SIGHUP) could not be set.
    #[error("cannot install the signal handlers: {0}")]
    Signals(std::io::Error),
    /// The speaker did not start.
    #[error("BGP speaker: {0}")]
    Speaker(#[from] SpeakerError),
}

/// How we announce `block`: IPv4 blocks with ourselves as next hop (the
/// session's address); IPv6 blocks with the node's IPv6 address, and not
/// at all without one (peers could not reach it).
fn local_route(block: &IpNetwork, node: &NodeView) -> Option<LocalRoute> {
    match block {
        IpNetwork::V4(_) => Some(LocalRoute::default()),
        IpNetwork::V6(_) => node.address_v6.map(|a| LocalRoute {
            next_hop: Some(IpAddr::V6(a.ip())),
            ..LocalRoute::default()
        }),
    }
}

/// Announces `block` as [`local_route`] says, or warns why not.
fn announce(speaker: &Speaker, block: &IpNetwork, node: &NodeView) {
    match local_route(block, node) {
        Some(route) => speaker.announce(*block, route),
        None => tracing::warn!(
            %block,
            "IPv6 block not announced: this node has no IPv6 address (set node.address-v6 or give the underlay interface one)"
        ),
    }
}

/// The planner's inputs and what was already reported.
struct Planner {
    node: LocalNode,
    pools: Vec<Pool>,
    learned: BTreeMap<IpNetwork, IpAddr>,
    reported: HashSet<Rejection>,
    /// Our route protocol (its routes never route our next hops).
    protocol: u8,
    /// For the underlay routes of IPv6 next hops off our subnet, opened
    /// the first time one is needed.
    netlink: Option<Netlink>,
}

impl Planner {
    fn apply(&mut self, change: &RouteChange) {
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
            RouteChange::EndOfRib { .. } => {}
        }
    }

    /// The kernel routes to have now. Refused routes are logged once per
    /// route and reason (a peer re-announcing one does not flood the log)
    /// and counted in `state` while they stay refused.
    fn desired(&mut self, state: &AgentState) -> Vec<DesiredRoute> {
        let learned: Vec<LearnedRoute> = self
            .learned
            .iter()
            .map(|(prefix, next_hop)| LearnedRoute {
                prefix: *prefix,
                next_hop: *next_hop,
            })
            .collect();
        let underlay = self.underlay(&learned);
        let p = plan(&self.node, &self.pools, &learned, &underlay);
        let mut counts = BTreeMap::new();
        for r in &p.rejected {
            *counts.entry(r.reason).or_insert(0u64) += 1;
            if self.reported.insert(*r) {
                tracing::warn!(prefix = %r.route.prefix, next_hop = %r.route.next_hop, reason = ?r.reason, "learned route not installed");
            }
        }
        // Forget what is no longer refused, so it is logged again if it
        // comes back.
        let now: HashSet<Rejection> = p.rejected.into_iter().collect();
        self.reported.retain(|r| now.contains(r));
        state.update(|s| s.rejected = counts);
        p.routes.into_values().collect()
    }

    /// The underlay's IPv6 routes, read only when a learned IPv6 block has
    /// its next hop off our IPv6 subnet (dual stack across subnets).
    fn underlay(&mut self, learned: &[LearnedRoute]) -> UnderlayRoutes {
        let Some(v6) = self.node.ipv6 else {
            return UnderlayRoutes::default();
        };
        let needed = learned
            .iter()
            .any(|r| matches!(r.next_hop, IpAddr::V6(nh) if !v6.contains(nh)));
        if !needed {
            return UnderlayRoutes::default();
        }
        if self.netlink.is_none() {
            self.netlink = Netlink::open()
                .map_err(|e| tracing::warn!("cannot read the IPv6 underlay routes: {e}"))
                .ok();
        }
        let Some(netlink) = self.netlink.as_mut() else {
            return UnderlayRoutes::default();
        };
        UnderlayRoutes::read(netlink, self.protocol).unwrap_or_else(|e| {
            tracing::warn!("cannot read the IPv6 underlay routes: {e}");
            UnderlayRoutes::default()
        })
    }
}

/// The tunnel for this config and node, if any pool uses IPIP.
fn tunnel_setup(config: &Config, node: &NodeView, options: &Options) -> Option<TunnelSetup> {
    let mut setup = TunnelSetup::from_config(config, node.address.ip(), node.mtu)?;
    setup.log_format.clone_from(&options.log_format);
    Some(setup)
}

/// Sets up the tunnel (blocking: a userspace tunnel may take a moment to
/// create its device) and records the outcome.
async fn ensure_tunnel(setup: Option<TunnelSetup>, state: &AgentState) {
    let Some(setup) = setup else { return };
    let device = setup.device.clone();
    let outcome = tokio::task::spawn_blocking(move || tunnel::ensure(&setup)).await;
    let status = match outcome {
        Ok(Ok((backend, note))) => TunnelStatus {
            backend,
            device,
            note,
        },
        Ok(Err(e)) => {
            tracing::error!("{e}");
            TunnelStatus {
                backend: TunnelInUse::None,
                device,
                note: Some(e.to_string()),
            }
        }
        Err(e) => TunnelStatus {
            backend: TunnelInUse::None,
            device,
            note: Some(format!("tunnel setup panicked: {e}")),
        },
    };
    state.update(|s| s.tunnel = status);
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
}

/// A started agent: its speaker runs and its state can be served.
pub struct Agent {
    config: Config,
    options: Options,
    node: NodeView,
    restarting: bool,
    peers: BTreeSet<IpAddr>,
    speaker: Speaker,
    routes: bgp_core::speaker::RouteStream,
    state: Arc<AgentState>,
}

impl Agent {
    /// Starts the BGP speaker on `node` (read with [`NodeView::read`]) and
    /// announces our blocks.
    pub async fn start(
        config: Config,
        node: NodeView,
        options: Options,
    ) -> Result<Agent, AgentError> {
        let mut speaker_config = config.to_speaker_config(node.address.ip());
        let mut restarting = false;
        if let Some(gr) = &mut speaker_config.graceful_restart {
            // Routes of ours from an earlier run are still in the kernel: we
            // are a restarting speaker that kept its forwarding state, so our
            // OPENs carry the Restart State bit (RFC 4724 §4.1) and peers keep
            // our routes until our End-of-RIB instead of flapping them.
            gr.restarting = crate::fib::Fib::open(config.route_protocol)
                .and_then(|mut f| f.installed())
                .is_ok_and(|routes| !routes.is_empty());
            restarting = gr.restarting;
            if gr.restarting {
                tracing::info!(
                    "routes of an earlier run are installed: restarting with graceful restart"
                );
            }
        }
        let peers: BTreeSet<IpAddr> = speaker_config.peers.iter().map(|p| p.address).collect();
        let (speaker, routes) = Speaker::start(speaker_config).await?;
        for block in &config.blocks {
            announce(&speaker, block, &node);
        }
        let state = Arc::new(AgentState::new(speaker.clone()));
        Ok(Agent {
            config,
            options,
            node,
            restarting,
            peers,
            speaker,
            routes,
            state,
        })
    }

    /// The state the agent writes, for the admin API.
    pub fn state(&self) -> Arc<AgentState> {
        self.state.clone()
    }

    /// Runs the agent until SIGTERM or SIGINT.
    pub async fn run(self) -> Result<(), AgentError> {
        let Agent {
            mut config,
            options,
            mut node,
            restarting,
            peers,
            speaker,
            mut routes,
            state,
        } = self;
        state.update(|s| {
            s.node = node.status(options.node_name.clone());
            s.configured_peers = peers.iter().copied().collect();
        });
        // The tunnel device must exist before routes through it are installed.
        ensure_tunnel(tunnel_setup(&config, &node, &options), &state).await;
        let fib_port = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let fib = fib_thread::spawn(
            config.route_protocol,
            config.nexthop_objects,
            state.clone(),
            fib_port.clone(),
        );
        let node_changed = Arc::new(tokio::sync::Notify::new());
        monitor::spawn(fib.clone(), node_changed.clone(), fib_port);
        let mut planner = Planner {
            node: node.local_node(&config),
            pools: config.pools(),
            learned: BTreeMap::new(),
            reported: HashSet::new(),
            protocol: config.route_protocol,
            netlink: None,
        };

        // Restarting with graceful restart, hold the first reconcile until
        // every peer has sent its table (End-of-RIB) or the restart time is up
        // (RFC 4724 §4.1's deferral): a restarted agent must not remove routes
        // its peers are about to re-announce. A first start has nothing in the
        // kernel to protect and installs routes as they come.
        let mut waiting_for: BTreeSet<IpAddr> = if restarting { peers } else { BTreeSet::new() };
        let hold_until = tokio::time::Instant::now()
            + Duration::from_secs(u64::from(config.graceful_restart.restart_time));
        let mut synced = waiting_for.is_empty();
        if synced {
            let _ = fib.send(FibWork::Plan(planner.desired(&state)));
        }

        let mut resync = tokio::time::interval(RESYNC);
        // When to look at the node again after a link or address change: a
        // moment later, so a burst of changes settles, but without holding up
        // the route stream meanwhile (it used to be a 50 ms sleep right here,
        // and the monitor's lost-notification signal, common while thousands
        // of our own routes go in, stalled convergence by as much).
        let mut node_check: Option<tokio::time::Instant> = None;
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).map_err(AgentError::Signals)?;
        let mut hup = signal(SignalKind::hangup()).map_err(AgentError::Signals)?;
        loop {
            tokio::select! {
                batch = routes.recv_batch() => {
                    let Some(first) = batch else { return Ok(()) };
                    // Plan once per burst: take every batch already waiting (a
                    // table of one UPDATE per node arrives as thousands).
                    let mut next = Some(first);
                    while let Some(batch) = next {
                        for change in &batch {
                            planner.apply(change);
                            if let RouteChange::EndOfRib { peer, family: Family::Ipv4Unicast } = change {
                                waiting_for.remove(peer);
                            }
                        }
                        next = routes.try_recv_batch();
                    }
                    if !synced && waiting_for.is_empty() {
                        tracing::info!("every peer sent End-of-RIB: routes in sync");
                        synced = true;
                    }
                    if synced {
                        let plan = planner.desired(&state);
                        tracing::debug!(routes = plan.len(), "route changes planned");
                        let _ = fib.send(FibWork::Plan(plan));
                    }
                }
                _ = tokio::time::sleep_until(hold_until), if !synced => {
                    tracing::info!(missing = ?waiting_for, "restart time passed without End-of-RIB from every peer");
                    synced = true;
                    let _ = fib.send(FibWork::Plan(planner.desired(&state)));
                }
                () = node_changed.notified(), if node_check.is_none() => {
                    node_check = Some(tokio::time::Instant::now() + NODE_SETTLE);
                }
                () = tokio::time::sleep_until(node_check.unwrap_or(hold_until)), if node_check.is_some() => {
                    node_check = None;
                    match NodeView::read(&config.node) {
                        Ok(now) if now != node => {
                            tracing::info!(address = %now.address, underlay = %now.underlay, mtu = now.mtu, "node address, interface or MTU changed: re-planning");
                            if now.address.ip() != node.address.ip() {
                                tracing::warn!(old = %node.address.ip(), new = %now.address.ip(), "BGP sessions keep using the old address until the agent restarts");
                            }
                            node = now;
                            planner.node = node.local_node(&config);
                            state.update(|s| s.node = node.status(options.node_name.clone()));
                            if synced {
                                let _ = fib.send(FibWork::Plan(planner.desired(&state)));
                            }
                        }
                        Ok(_) => {}
                        Err(e) => tracing::warn!("after a link or address change: {e}"),
                    }
                    // The tunnel device may have gone (or its MTU changed).
                    ensure_tunnel(tunnel_setup(&config, &node, &options), &state).await;
                }
                _ = resync.tick(), if synced => {
                    let _ = fib.send(FibWork::Plan(planner.desired(&state)));
                }
                _ = hup.recv() => {
                    let Some(file) = &options.config_file else { continue };
                    let new = match Config::load(file) {
                        Ok(c) => c,
                        Err(e) => {
                            tracing::error!("SIGHUP: config not reloaded, the running one stays: {e}");
                            continue;
                        }
                    };
                    let change = reload::diff(&config, &new, node.address.ip());
                    apply_reload(&speaker, &change, &node).await;
                    if !change.needs_restart.is_empty() {
                        tracing::warn!(keys = ?change.needs_restart, "SIGHUP: these settings take effect only after a restart");
                    }
                    config.peers = new.peers;
                    config.mesh = new.mesh;
                    config.blocks = new.blocks;
                    config.pools = new.pools;
                    config.persist_routes = new.persist_routes;
                    planner.pools = config.pools();
                    planner.node.blocks = config.blocks.clone();
                    let configured: Vec<IpAddr> = config
                        .to_speaker_config(node.address.ip())
                        .peers
                        .iter()
                        .map(|p| p.address)
                        .collect();
                    // A removed peer's End-of-RIB is no longer awaited.
                    waiting_for.retain(|p| configured.contains(p));
                    state.update(|s| s.configured_peers = configured);
                    tracing::info!(?change, "SIGHUP: config reloaded");
                    if synced {
                        let _ = fib.send(FibWork::Plan(planner.desired(&state)));
                    }
                }
                _ = term.recv() => break,
                _ = tokio::signal::ctrl_c() => break,
            }
        }
        // Routes persist: the kernel keeps forwarding while we are gone. With
        // graceful restart that is exactly the state RFC 4724 preserves, so the
        // sessions close without a NOTIFICATION and peers keep our routes for
        // the restart time: a restart or upgrade flaps nothing anywhere. A
        // node that never comes back is withdrawn when that time runs out.
        if !config.persist_routes {
            // persist-routes: false. Our routes go first, then Cease: nothing
            // is forwarded for us any more, so peers must not keep our routes.
            let (done, wait) = std::sync::mpsc::channel();
            if fib.send(FibWork::Last(Vec::new(), done)).is_ok() {
                let _ =
                    tokio::task::spawn_blocking(move || wait.recv_timeout(Duration::from_secs(10)))
                        .await;
            }
            tracing::info!(
                "stopping: our kernel routes removed (persist-routes: false), Cease to every peer"
            );
            speaker.shutdown("route-agent stopping").await;
        } else if config.graceful_restart.enabled {
            tracing::info!(
                restart_time = config.graceful_restart.restart_time,
                "stopping: sessions closed for a graceful restart, peers keep our routes until the restart time runs out"
            );
            speaker.shutdown_for_restart().await;
        } else {
            tracing::info!("stopping: Cease to every peer");
            speaker.shutdown("route-agent stopping").await;
        }
        Ok(())
    }
}

/// Applies the peer and block changes of a reload to the speaker.
async fn apply_reload(speaker: &Speaker, change: &reload::Reload, node: &NodeView) {
    for address in &change.remove_peers {
        if let Err(e) = speaker.remove_peer(*address).await {
            tracing::warn!("SIGHUP: removing peer {address}: {e}");
        }
    }
    for peer in &change.add_peers {
        if let Err(e) = speaker.add_peer(peer.clone()).await {
            tracing::warn!("SIGHUP: adding peer {}: {e}", peer.address);
        }
    }
    for block in &change.withdraw {
        speaker.withdraw(*block);
    }
    for block in &change.announce {
        announce(speaker, block, node);
    }
}
