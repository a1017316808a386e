//! The daemon: the BGP speaker's best routes → the planner → the kernel.
//!
//! One task owns the speaker and the learned routes; a plain thread owns
//! the netlink socket and applies the newest plan (plans coalesce: while
//! one is applied, only the latest of those that arrive meanwhile is kept).
//! A route of ours that someone removes or alters is put back after the
//! kernel's route notification; a full re-plan every [`RESYNC`] is the
//! backstop for anything missed.
//!
//! On SIGTERM or SIGINT the speaker sends Cease and the kernel routes stay
//! (Calico runs BIRD with `persist`). With graceful restart enabled, the
//! first reconcile waits until every peer has sent End-of-RIB (or the
//! restart time has passed), so a restarted agent does not remove routes
//! its peers are about to re-announce.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::time::Duration;

use bgp_core::speaker::{LocalRoute, RouteChange, Speaker, SpeakerError};
use bgp_core::wire::Family;
use ipnetwork::{IpNetwork, Ipv4Network};

use crate::config::{Config, DetectError, detect_address};
use crate::fib::{Fib, Netlink};
use crate::netinfo;
use crate::planner::{DesiredRoute, LearnedRoute, LocalNode, NoUnderlay, Pool, Rejection, plan};

pub mod state;

/// How often the whole plan is re-applied regardless of changes.
pub const RESYNC: Duration = Duration::from_secs(30);

/// Why the agent could not start.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// Netlink failed while reading the node's interfaces.
    #[error("cannot read the node's interfaces over netlink: {0}")]
    Netlink(#[from] std::io::Error),
    /// The node address could not be found.
    #[error("{0}")]
    Detect(#[from] DetectError),
    /// Neither `node.address` nor `node.autodetect` is set.
    #[error("no node address: set node.address (e.g. 10.0.0.5/24) or node.autodetect")]
    NoAddress,
    /// The configured address is on no interface.
    #[error(
        "node address {0} is on no interface of this host — fix node.address or use node.autodetect"
    )]
    AddressNotHere(Ipv4Network),
    /// The speaker did not start.
    #[error("BGP speaker: {0}")]
    Speaker(#[from] SpeakerError),
}

/// The kernel's source address towards `target` (a connected UDP socket
/// sends nothing).
fn source_towards(target: Ipv4Addr) -> Option<Ipv4Addr> {
    let socket = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).ok()?;
    socket.connect((target, 9)).ok()?;
    match socket.local_addr().ok()? {
        SocketAddr::V4(a) => Some(*a.ip()),
        SocketAddr::V6(_) => None,
    }
}

/// Finds the node address, its interface and that interface's MTU.
fn node_address(config: &Config) -> Result<(String, Ipv4Network, u32), AgentError> {
    let mut netlink = Netlink::open()?;
    let addrs = netinfo::addresses(&mut netlink)?;
    let (underlay, net) = match (&config.node.address, &config.node.autodetect) {
        (Some(net), _) => {
            let dev = addrs
                .iter()
                .find(|a| a.address.ip() == IpAddr::V4(net.ip()))
                .map(|a| a.interface.clone())
                .ok_or(AgentError::AddressNotHere(*net))?;
            (dev, *net)
        }
        (None, Some(method)) => detect_address(method, &addrs, source_towards)?,
        (None, None) => return Err(AgentError::NoAddress),
    };
    let mtu = netinfo::interfaces(&mut netlink)?
        .into_iter()
        .find(|i| i.name == underlay)
        .map_or(1500, |i| i.mtu);
    Ok((underlay, net, mtu))
}

/// What the FIB thread is asked to do.
enum FibWork {
    /// Apply this plan (it replaces the previous one).
    Plan(Vec<DesiredRoute>),
    /// The kernel's routes changed: apply the current plan again, which
    /// restores a route of ours someone removed or altered.
    Resync,
}

/// Kernel route notifications (`ip monitor route`): multicast groups
/// RTMGRP_IPV4_ROUTE and RTMGRP_IPV6_ROUTE.
const ROUTE_GROUPS: u32 = 0x40 | 0x400;

/// Watches the kernel's route changes and asks the FIB thread to re-apply
/// the plan after each burst. The reconcile is a diff, so the notifications
/// our own changes cause end in one dump that changes nothing.
fn spawn_route_monitor(fib: std::sync::mpsc::Sender<FibWork>) {
    std::thread::spawn(move || {
        let socket =
            netlink_sys::Socket::new(netlink_sys::protocols::NETLINK_ROUTE).and_then(|mut s| {
                s.bind(&netlink_sys::SocketAddr::new(0, ROUTE_GROUPS))?;
                Ok(s)
            });
        let socket = match socket {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(
                    "cannot watch route changes (only the periodic resync repairs routes): {e}"
                );
                return;
            }
        };
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match socket.recv(&mut &mut buf[..], 0) {
                Ok(_) => {
                    if fib.send(FibWork::Resync).is_err() {
                        return;
                    }
                }
                Err(e) => {
                    // ENOBUFS: notifications were lost; a resync covers it.
                    tracing::debug!("route monitor: {e}");
                    if fib.send(FibWork::Resync).is_err() {
                        return;
                    }
                }
            }
        }
    });
}

/// Applies plans on a thread of its own (netlink here is blocking). Work
/// coalesces: while one reconcile runs, only the newest plan that arrives
/// meanwhile is kept, and any number of resyncs count as one.
fn spawn_fib(protocol: u8) -> std::sync::mpsc::Sender<FibWork> {
    let (tx, rx) = std::sync::mpsc::channel::<FibWork>();
    std::thread::spawn(move || {
        let mut fib = match Fib::open(protocol) {
            Ok(f) => f,
            Err(e) => {
                tracing::error!("cannot open netlink for the FIB: {e}");
                return;
            }
        };
        let mut current: Option<Vec<DesiredRoute>> = None;
        while let Ok(first) = rx.recv() {
            let mut work = vec![first];
            work.extend(rx.try_iter());
            for w in work {
                if let FibWork::Plan(p) = w {
                    current = Some(p);
                }
            }
            // Nothing is applied before the first plan (graceful restart
            // may be holding it back).
            let Some(desired) = &current else { continue };
            match fib.reconcile(desired) {
                Ok(done) => {
                    let s = &done.stats;
                    if s.added + s.replaced + s.deleted > 0 || !done.errors.is_empty() {
                        tracing::info!(
                            added = s.added,
                            replaced = s.replaced,
                            deleted = s.deleted,
                            unchanged = s.unchanged,
                            errors = done.errors.len(),
                            "kernel routes reconciled"
                        );
                    }
                    for e in &done.errors {
                        tracing::warn!("{e}");
                    }
                }
                Err(e) => tracing::error!("reconcile failed: {e}"),
            }
        }
    });
    tx
}

/// The planner's inputs and what was already reported.
struct Planner {
    node: LocalNode,
    pools: Vec<Pool>,
    learned: BTreeMap<IpNetwork, IpAddr>,
    reported: HashSet<Rejection>,
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

    fn desired(&mut self) -> Vec<DesiredRoute> {
        let learned: Vec<LearnedRoute> = self
            .learned
            .iter()
            .map(|(prefix, next_hop)| LearnedRoute {
                prefix: *prefix,
                next_hop: *next_hop,
            })
            .collect();
        let p = plan(&self.node, &self.pools, &learned, &NoUnderlay);
        for r in p.rejected {
            // Logged once per route and reason: a peer re-announcing it
            // does not flood the log.
            if self.reported.insert(r) {
                tracing::warn!(prefix = %r.route.prefix, next_hop = %r.route.next_hop, reason = ?r.reason, "learned route not installed");
            }
        }
        p.routes.into_values().collect()
    }
}

/// Runs the agent until SIGTERM or SIGINT.
pub async fn run(config: Config) -> Result<(), AgentError> {
    let (underlay, net, mtu) = node_address(&config)?;
    tracing::info!(address = %net, %underlay, mtu, "node address");
    let speaker_config = config.to_speaker_config(net.ip());
    let peers: BTreeSet<IpAddr> = speaker_config.peers.iter().map(|p| p.address).collect();
    let (speaker, mut routes) = Speaker::start(speaker_config).await?;
    for block in &config.blocks {
        speaker.announce(*block, LocalRoute::default());
    }
    let fib = spawn_fib(config.route_protocol);
    spawn_route_monitor(fib.clone());
    let mut planner = Planner {
        node: config.local_node(net, &underlay, mtu),
        pools: config.pools(),
        learned: BTreeMap::new(),
        reported: HashSet::new(),
    };

    // With graceful restart, hold the first reconcile until every peer has
    // sent its table (End-of-RIB) or the restart time is up.
    let gr = config.graceful_restart();
    let mut waiting_for: BTreeSet<IpAddr> = if gr.is_some() { peers } else { BTreeSet::new() };
    let hold_until = tokio::time::Instant::now()
        + Duration::from_secs(gr.as_ref().map_or(0, |g| u64::from(g.restart_time)));
    let mut synced = waiting_for.is_empty();
    if synced {
        let _ = fib.send(FibWork::Plan(planner.desired()));
    }

    let mut resync = tokio::time::interval(RESYNC);
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    loop {
        tokio::select! {
            batch = routes.recv_batch() => {
                let Some(batch) = batch else { return Ok(()) };
                for change in &batch {
                    planner.apply(change);
                    if let RouteChange::EndOfRib { peer, family: Family::Ipv4Unicast } = change {
                        waiting_for.remove(peer);
                    }
                }
                if !synced && waiting_for.is_empty() {
                    tracing::info!("every peer sent End-of-RIB: routes in sync");
                    synced = true;
                }
                if synced {
                    let _ = fib.send(FibWork::Plan(planner.desired()));
                }
            }
            _ = tokio::time::sleep_until(hold_until), if !synced => {
                tracing::info!(missing = ?waiting_for, "restart time passed without End-of-RIB from every peer");
                synced = true;
                let _ = fib.send(FibWork::Plan(planner.desired()));
            }
            _ = resync.tick(), if synced => {
                let _ = fib.send(FibWork::Plan(planner.desired()));
            }
            _ = term.recv() => break,
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    // Routes persist: the kernel keeps forwarding while we are gone.
    speaker.shutdown("route-agent stopping").await;
    Ok(())
}
