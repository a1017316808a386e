//! The central task: owns the RIB, applies import and export policy, moves
//! routes between peers' sessions and the route stream.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ipnetwork::IpNetwork;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::config::{PeerConfig, SpeakerConfig};
use super::outbox::{OutAttrs, Outbox};
use super::{BestRoute, Command, LocalRoute, PeerSnapshot, RouteChange, SpeakerError};
use crate::driver::{self, PeerCommand, PeerEvent, Transport, UpdateSource};
use crate::policy::{MaxPrefixTracker, MaxPrefixVerdict, Policy};
use crate::rib::{
    AdjRibOut, BestChange, ExportContext, NextHop, OutChange, PathAttrs, PeerId, PeerInfo, Rib,
    RibConfig,
};
use crate::session::{
    DownReason, GracefulRestartConfig, Negotiated, Session, SessionConfig, SessionEvent, State,
};
use crate::wire::iana::{attr, notify};
use crate::wire::{AsPath, Family, Notification, Origin, Prefix, UpdateDecode};

/// Route-stream batches buffered before the speaker waits for its reader.
const ROUTE_QUEUE: usize = 1024;
/// Peer events buffered before peer tasks wait (and stop reading sockets).
const EVENT_QUEUE: usize = 256;

struct Peer {
    config: PeerConfig,
    id: PeerId,
    policy: Policy,
    commands: mpsc::UnboundedSender<PeerCommand>,
    task: JoinHandle<()>,
    outbox: Arc<Outbox>,
    adj_out: Option<AdjRibOut>,
    state: State,
    established_at: Option<Instant>,
    negotiated: Option<Negotiated>,
    received: u64,
    last_error: Option<String>,
    last_notification: Option<Notification>,
    max_prefix: Vec<MaxPrefixTracker>,
    /// Families whose paths are stale while the peer restarts (RFC 4724
    /// §4.2), and when to give up on them.
    stale: Vec<Family>,
    stale_deadline: Option<Instant>,
}

impl Peer {
    fn ebgp(&self, local_as: u32) -> bool {
        self.config.asn != local_as
    }
}

/// Wire forms of exported attribute sets, keyed by the exported `Arc`'s
/// address, 4-octet AS, and IPv4 family; the `Arc` is kept so the address
/// stays unique while cached.
type OutCache = HashMap<(usize, bool, bool), (Arc<PathAttrs>, Arc<OutAttrs>)>;

struct Core {
    config: SpeakerConfig,
    rib: Rib,
    peers: HashMap<IpAddr, Peer>,
    /// Peer addresses by `PeerId` (ids are handed out in order and never
    /// reused, so a vector: this lookup runs once per route change).
    by_id: Vec<Option<IpAddr>>,
    next_id: u32,
    listener: Option<Arc<TcpListener>>,
    routes: mpsc::Sender<Vec<RouteChange>>,
    events: mpsc::Sender<PeerEvent<IpAddr>>,
    changes: Vec<BestChange>,
    /// Wire attributes of exported sets, by the address of the exported
    /// `Arc<PathAttrs>` (kept alive here so the address stays unique).
    out_cache: OutCache,
}

/// Binds the listener (dual-stack for `::`), with TTL 255 so GTSM peers
/// accept our handshake.
fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    if addr.is_ipv6() {
        socket2::SockRef::from(&socket).set_only_v6(false)?;
    }
    let _ = driver::sys::set_max_ttl(&socket, false);
    let _ = driver::sys::set_max_ttl(&socket, addr.is_ipv6());
    socket.bind(addr)?;
    socket.listen(1024)
}

/// Builds and starts the speaker's tasks.
pub(crate) async fn spawn(
    config: SpeakerConfig,
) -> Result<
    (
        mpsc::UnboundedSender<Command>,
        Option<SocketAddr>,
        mpsc::Receiver<Vec<RouteChange>>,
    ),
    SpeakerError,
> {
    let listener = match &config.listen {
        Some(l) => {
            let addr = SocketAddr::new(l.address, l.port);
            let listener = bind(addr).map_err(|source| SpeakerError::Listen { addr, source })?;
            Some(Arc::new(listener))
        }
        None => None,
    };
    let listen_addr = listener.as_ref().and_then(|l| l.local_addr().ok());
    let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
    let (route_tx, route_rx) = mpsc::channel(ROUTE_QUEUE);
    let (ev_tx, ev_rx) = mpsc::channel(EVENT_QUEUE);
    let (in_tx, in_rx) = mpsc::channel(16);

    let any_rr_client = config.peers.iter().any(|p| p.route_reflector_client);
    let mut rib_config = RibConfig::new(config.local_as, config.router_id);
    rib_config.cluster_id = config
        .cluster_id
        .or(any_rr_client.then_some(config.router_id));
    rib_config.forward_unknown_from_ebgp = config.forward_unknown_from_ebgp;
    let peers = config.peers.clone();
    let mut core = Core {
        config,
        rib: Rib::new(rib_config),
        peers: HashMap::new(),
        by_id: Vec::new(),
        next_id: 0,
        listener: listener.clone(),
        routes: route_tx,
        events: ev_tx,
        changes: Vec::new(),
        out_cache: HashMap::new(),
    };
    for p in peers {
        core.add_peer(p)?;
    }
    if let Some(listener) = listener {
        tokio::spawn(accept_loop(listener, in_tx));
    }
    tokio::spawn(core.run(cmd_rx, ev_rx, in_rx));
    Ok((cmd_tx, listen_addr, route_rx))
}

async fn accept_loop(listener: Arc<TcpListener>, to_core: mpsc::Sender<(TcpStream, SocketAddr)>) {
    loop {
        match listener.accept().await {
            Ok((stream, from)) => {
                if to_core.send((stream, from)).await.is_err() {
                    return;
                }
            }
            Err(e) => {
                tracing::warn!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// An IPv4 peer seen through a dual-stack socket has a mapped address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

fn family_of(net: &IpNetwork) -> Family {
    match net {
        IpNetwork::V4(_) => Family::Ipv4Unicast,
        IpNetwork::V6(_) => Family::Ipv6Unicast,
    }
}

impl Core {
    async fn run(
        mut self,
        mut commands: mpsc::UnboundedReceiver<Command>,
        mut events: mpsc::Receiver<PeerEvent<IpAddr>>,
        mut inbound: mpsc::Receiver<(TcpStream, SocketAddr)>,
    ) {
        loop {
            let deadline = self.peers.values().filter_map(|p| p.stale_deadline).min();
            tokio::select! {
                cmd = commands.recv() => match cmd {
                    None => {
                        self.shutdown(Some("speaker stopped")).await;
                        return;
                    }
                    Some(Command::Shutdown(message, reply)) => {
                        self.shutdown(message.as_deref()).await;
                        let _ = reply.send(());
                        return;
                    }
                    Some(cmd) => self.command(cmd).await,
                },
                Some(ev) = events.recv() => self.peer_event(ev).await,
                Some((stream, from)) = inbound.recv() => {
                    match self.peers.get(&canonical(from.ip())) {
                        Some(p) => {
                            let _ = p.commands.send(PeerCommand::Inbound(stream));
                        }
                        // Not a configured neighbour: drop the connection.
                        None => tracing::info!(%from, "refused a connection from an unknown address"),
                    }
                }
                _ = async { tokio::time::sleep_until(deadline.map(tokio::time::Instant::from_std).unwrap_or_else(tokio::time::Instant::now)).await }, if deadline.is_some() => {
                    self.stale_timers().await;
                }
            }
        }
    }

    /// Ends every peer task: with Cease / Administrative Shutdown carrying
    /// `message`, or (`None`) without a NOTIFICATION (a restart).
    async fn shutdown(&mut self, message: Option<&str>) {
        let n = message.map(Notification::admin_shutdown);
        let tasks: Vec<JoinHandle<()>> = self
            .peers
            .drain()
            .map(|(_, p)| {
                let command = match &n {
                    Some(n) => PeerCommand::Shutdown(n.clone()),
                    None => PeerCommand::Abandon,
                };
                let _ = p.commands.send(command);
                p.task
            })
            .collect();
        for t in tasks {
            let _ = tokio::time::timeout(Duration::from_secs(2), t).await;
        }
    }

    async fn command(&mut self, cmd: Command) {
        match cmd {
            Command::Announce(prefix, route) => {
                let attrs = local_attrs(family_of(&prefix), &route);
                self.rib.announce_local(prefix, attrs, &mut self.changes);
                self.propagate().await;
            }
            Command::Withdraw(prefix) => {
                self.rib.withdraw_local(prefix, &mut self.changes);
                self.propagate().await;
            }
            Command::AddPeer(config, reply) => {
                let _ = reply.send(self.add_peer(*config));
            }
            Command::RemovePeer(address, reply) => {
                let _ = reply.send(self.remove_peer(address).await);
            }
            Command::Peers(reply) => {
                let _ = reply.send(self.snapshots());
            }
            Command::Routes(reply) => {
                let routes = self
                    .rib
                    .iter_best()
                    .map(|(prefix, path)| self.best_route(prefix, &path))
                    .collect();
                let _ = reply.send(routes);
            }
            Command::Shutdown(..) => {}
        }
    }

    fn add_peer(&mut self, pc: PeerConfig) -> Result<(), SpeakerError> {
        let address = canonical(pc.address);
        if self.peers.contains_key(&address) {
            return Err(SpeakerError::DuplicatePeer(address));
        }
        if let (Some(key), Some(listener)) = (&pc.password, &self.listener) {
            // A dual-stack listener sees IPv4 peers as mapped addresses.
            let on_listener = match (address, listener.local_addr().map(|a| a.is_ipv6())) {
                (IpAddr::V4(v4), Ok(true)) => IpAddr::V6(v4.to_ipv6_mapped()),
                (ip, _) => ip,
            };
            driver::sys::set_tcp_md5(
                listener.as_ref(),
                SocketAddr::new(on_listener, 0),
                key.as_bytes(),
            )
            .map_err(|source| SpeakerError::Md5 {
                peer: address,
                source,
            })?;
        }
        let id = PeerId(self.next_id);
        self.next_id = self.next_id.wrapping_add(1);

        let mut sc = SessionConfig::new(self.config.local_as, self.config.router_id, pc.asn);
        sc.hold_time = pc.hold_time.unwrap_or(self.config.hold_time);
        sc.connect_retry = Duration::from_secs(self.config.connect_retry.max(1));
        sc.passive = pc.passive;
        sc.families = [
            (pc.ipv4, Family::Ipv4Unicast),
            (pc.ipv6, Family::Ipv6Unicast),
        ]
        .into_iter()
        .filter_map(|(on, f)| on.then_some(f))
        .collect();
        if pc.add_path_receive {
            sc.add_path_receive = sc.families.clone();
        }
        sc.graceful_restart =
            self.config
                .graceful_restart
                .as_ref()
                .map(|gr| GracefulRestartConfig {
                    restart_time: gr.restart_time,
                    restarting: gr.restarting,
                    forwarding_preserved: true,
                });
        sc.cluster_id = self.rib.config().cluster_id;
        sc.local_address = match pc.local_address {
            Some(IpAddr::V4(a)) => Some(a),
            _ => None,
        };
        let mut transport = Transport::new(SocketAddr::new(address, pc.port));
        transport.local = pc.local_address;
        transport.md5_key = pc.password.clone();
        transport.ttl_security = pc.ttl_security;

        let outbox = Arc::new(Outbox::default());
        let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
        let source: Arc<dyn UpdateSource> = outbox.clone();
        let seed = u64::from(u32::from(self.config.router_id)) << 32 | u64::from(id.0);
        let task = tokio::spawn(driver::run_peer(
            address,
            Session::new(sc, seed),
            transport,
            cmd_rx,
            self.events.clone(),
            source,
        ));
        let _ = cmd_tx.send(PeerCommand::Start);
        let max_prefix = pc
            .max_prefixes
            .map(|m| {
                vec![
                    MaxPrefixTracker::new(m, Family::Ipv4Unicast),
                    MaxPrefixTracker::new(m, Family::Ipv6Unicast),
                ]
            })
            .unwrap_or_default();
        if let Ok(slot) = usize::try_from(id.0) {
            if self.by_id.len() <= slot {
                self.by_id.resize(slot + 1, None);
            }
            self.by_id[slot] = Some(address);
        }
        self.peers.insert(
            address,
            Peer {
                policy: Policy {
                    import: pc.import.clone(),
                    export: pc.export.clone(),
                },
                config: pc,
                id,
                commands: cmd_tx,
                task,
                outbox,
                adj_out: None,
                state: State::Idle,
                established_at: None,
                negotiated: None,
                received: 0,
                last_error: None,
                last_notification: None,
                max_prefix,
                stale: Vec::new(),
                stale_deadline: None,
            },
        );
        Ok(())
    }

    async fn remove_peer(&mut self, address: IpAddr) -> Result<(), SpeakerError> {
        let address = canonical(address);
        let peer = self
            .peers
            .remove(&address)
            .ok_or(SpeakerError::UnknownPeer(address))?;
        if let Some(slot) = usize::try_from(peer.id.0)
            .ok()
            .and_then(|i| self.by_id.get_mut(i))
        {
            *slot = None;
        }
        let n = Notification::new(notify::CEASE, notify::cease::PEER_DECONFIGURED, Vec::new());
        let _ = peer.commands.send(PeerCommand::Shutdown(n));
        if let (Some(_), Some(listener)) = (&peer.config.password, &self.listener) {
            let _ = driver::sys::set_tcp_md5(listener.as_ref(), SocketAddr::new(address, 0), &[]);
        }
        self.rib.remove_peer(peer.id, &mut self.changes);
        self.propagate().await;
        Ok(())
    }

    fn snapshots(&self) -> Vec<PeerSnapshot> {
        let mut out: Vec<PeerSnapshot> = self
            .peers
            .iter()
            .map(|(address, p)| PeerSnapshot {
                address: *address,
                asn: p.config.asn,
                ibgp: !p.ebgp(self.config.local_as),
                state: p.state,
                uptime: p.established_at.map(|t| t.elapsed()),
                received: p.received,
                accepted: self.rib.received(p.id, Family::Ipv4Unicast)
                    + self.rib.received(p.id, Family::Ipv6Unicast),
                advertised: p.adj_out.as_ref().map_or(0, AdjRibOut::len),
                last_error: p.last_error.clone(),
                last_notification: p.last_notification.clone(),
            })
            .collect();
        out.sort_by_key(|s| s.address);
        out
    }

    fn best_route(&self, prefix: IpNetwork, path: &crate::rib::Path) -> BestRoute {
        let next_hop = match path.attrs.next_hop {
            NextHop::V4(a) => IpAddr::V4(a),
            NextHop::V6 { global, link_local } => match (global.is_unspecified(), link_local) {
                (true, Some(ll)) => IpAddr::V6(ll),
                _ => IpAddr::V6(global),
            },
        };
        BestRoute {
            prefix,
            next_hop,
            peer: usize::try_from(path.peer.0)
                .ok()
                .and_then(|i| self.by_id.get(i).copied().flatten()),
            attrs: path.attrs.clone(),
            stale: path.stale,
        }
    }

    async fn peer_event(&mut self, ev: PeerEvent<IpAddr>) {
        let address = ev.peer;
        let Some(peer) = self.peers.get_mut(&address) else {
            return;
        };
        match ev.event {
            SessionEvent::StateChanged { to, .. } => {
                peer.state = to;
                if to == State::Established {
                    peer.established_at = Some(Instant::now());
                    tracing::info!(peer = %address, asn = peer.config.asn, "session established");
                } else {
                    peer.established_at = None;
                }
            }
            SessionEvent::Established(negotiated) => {
                self.established(address, *negotiated, ev.local).await
            }
            SessionEvent::Update(update) => self.update(address, update).await,
            SessionEvent::RouteRefresh(_) => {
                if let Some(p) = self.peers.get_mut(&address)
                    && let Some(out) = p.adj_out.as_mut()
                {
                    out.clear();
                }
                self.sync_peer(address);
            }
            SessionEvent::Down(reason) => self.down(address, reason).await,
            SessionEvent::AttemptFailed(reason) => {
                let (error, notification) = describe(&reason);
                peer.last_error = Some(error);
                if notification.is_some() {
                    peer.last_notification = notification;
                }
            }
            SessionEvent::Connect | SessionEvent::Close(_) => {}
        }
    }

    async fn established(
        &mut self,
        address: IpAddr,
        negotiated: Negotiated,
        local: Option<SocketAddr>,
    ) {
        let local_as = self.config.local_as;
        let Some(peer) = self.peers.get_mut(&address) else {
            return;
        };
        let mut info = PeerInfo::new(
            peer.id,
            address,
            peer.config.asn,
            negotiated.peer_id,
            local_as,
        );
        if peer.config.route_reflector_client {
            info = info.rr_client();
        }
        if self.rib.peer(peer.id).is_none() {
            self.rib.add_peer(info);
        }
        // RFC 4724 §4.2: families the restarted peer no longer preserves
        // lose their stale routes now; the others wait for End-of-RIB.
        let keep: Vec<Family> = negotiated
            .peer_graceful_restart
            .as_ref()
            .map(|gr| {
                gr.families
                    .iter()
                    .filter(|(_, f)| *f)
                    .map(|(fam, _)| *fam)
                    .collect()
            })
            .unwrap_or_default();
        let drop: Vec<Family> = peer
            .stale
            .iter()
            .copied()
            .filter(|f| !keep.contains(f))
            .collect();
        peer.stale.retain(|f| keep.contains(f));
        let id = peer.id;
        for f in drop {
            self.rib.sweep_stale(id, f, &mut self.changes);
        }

        let local_ip = local.map(|l| canonical(l.ip()));
        let ctx = ExportContext {
            local_next_hop_v4: match local_ip {
                Some(IpAddr::V4(a)) => Some(a),
                _ => Some(self.config.router_id),
            },
            local_next_hop_v6: match local_ip {
                Some(IpAddr::V6(a)) if !is_link_local(&a) => Some(a),
                _ => None,
            },
            local_link_local_v6: None,
            next_hop_self: peer.config.next_hop_self,
        };
        if self
            .config
            .graceful_restart
            .as_ref()
            .is_some_and(|gr| gr.restarting)
        {
            let _ = peer.commands.send(PeerCommand::ClearRestartState);
        }
        peer.outbox.reset(negotiated.tx);
        peer.adj_out = Some(AdjRibOut::new(id, ctx));
        peer.max_prefix.iter_mut().for_each(|t| {
            let _ = t.check(0);
        });
        peer.last_error = None;
        let families = negotiated.families.clone();
        peer.negotiated = Some(negotiated);
        self.sync_peer(address);
        if let Some(peer) = self.peers.get(&address) {
            for f in families {
                peer.outbox.end_of_rib(f);
            }
        }
        self.propagate().await;
    }

    /// Queues this peer's whole Adj-RIB-Out (after establishment or a
    /// ROUTE-REFRESH).
    fn sync_peer(&mut self, address: IpAddr) {
        let local_as = self.config.local_as;
        let Some(peer) = self.peers.get_mut(&address) else {
            return;
        };
        let Some(adj) = peer.adj_out.as_mut() else {
            return;
        };
        let ebgp = peer.config.asn != local_as;
        let policy = &peer.policy;
        let mut outs = Vec::new();
        adj.sync(&self.rib, |p| policy.export_allows(ebgp, p), &mut outs);
        let four = peer.negotiated.as_ref().is_some_and(|n| n.tx.four_octet_as);
        let outbox = peer.outbox.clone();
        for o in outs {
            push_out(&mut self.out_cache, &outbox, o, four);
        }
    }

    async fn update(&mut self, address: IpAddr, decoded: UpdateDecode) {
        let local_as = self.config.local_as;
        let Some(peer) = self.peers.get_mut(&address) else {
            return;
        };
        let id = peer.id;
        let ebgp = peer.ebgp(local_as);
        let u = &decoded.update;
        for f in &decoded.faults {
            tracing::warn!(peer = %address, code = f.code, problem = ?f.problem, action = ?f.action, "malformed attribute");
        }
        let withdrawn: Vec<Prefix> = u.withdrawals().copied().collect();
        self.rib.withdraw(id, &withdrawn, &mut self.changes);
        let announced: Vec<Prefix> = u.announced().copied().collect();
        peer.received = peer.received.saturating_add(announced.len() as u64);
        if decoded.is_treat_as_withdraw() {
            // RFC 7606 §2: every prefix of the UPDATE is withdrawn; the
            // session stays up.
            self.rib.withdraw(id, &announced, &mut self.changes);
        } else {
            for family in [Family::Ipv4Unicast, Family::Ipv6Unicast] {
                let (accepted, rejected): (Vec<Prefix>, Vec<Prefix>) =
                    if peer.policy.import.is_none() && !ebgp {
                        // No filter on iBGP accepts everything (RFC 8212
                        // only blocks eBGP): skip the per-prefix test.
                        let fam = announced
                            .iter()
                            .filter(|p| p.family() == family)
                            .copied()
                            .collect();
                        (fam, Vec::new())
                    } else {
                        announced
                            .iter()
                            .filter(|p| p.family() == family)
                            .partition(|p| peer.policy.import_allows(ebgp, &p.network))
                    };
                // A route the filter rejects replaces (withdraws) what the
                // peer sent for it before (RFC 4271 §3.1).
                self.rib.withdraw(id, &rejected, &mut self.changes);
                if accepted.is_empty() {
                    continue;
                }
                match PathAttrs::from_update(u, family) {
                    Some(attrs) => {
                        if let Err(reason) =
                            self.rib
                                .update(id, &accepted, Arc::new(attrs), &mut self.changes)
                        {
                            tracing::info!(peer = %address, %reason, "routes not accepted");
                        }
                    }
                    None => {
                        self.rib.withdraw(id, &accepted, &mut self.changes);
                    }
                }
            }
        }
        if let Some((afi, safi)) = u.end_of_rib()
            && let Some(family) = Family::from_afi_safi(afi, safi)
        {
            if peer.stale.contains(&family) {
                self.rib.sweep_stale(id, family, &mut self.changes);
                peer.stale.retain(|f| *f != family);
                if peer.stale.is_empty() {
                    peer.stale_deadline = None;
                }
            }
            let eor = RouteChange::EndOfRib {
                peer: address,
                family,
            };
            self.propagate().await;
            let _ = self.routes.send(vec![eor]).await;
            return;
        }
        // Maximum prefixes (RFC 4486): checked on what the RIB holds.
        let mut cease = None;
        let mut restart_after = None;
        // The trackers are in [IPv4, IPv6] order (see add_peer).
        for (t, family) in peer
            .max_prefix
            .iter_mut()
            .zip([Family::Ipv4Unicast, Family::Ipv6Unicast])
        {
            match t.check(self.rib.received(id, family)) {
                MaxPrefixVerdict::Ok => {}
                MaxPrefixVerdict::Warn { count, limit } => {
                    tracing::warn!(peer = %address, count, limit, ?family, "maximum prefixes reached");
                }
                MaxPrefixVerdict::Cease(n) => {
                    cease = Some(n);
                    restart_after = restart_after.or(t.config().restart_after);
                }
            }
        }
        if let Some(n) = cease {
            peer.last_error = Some("maximum number of prefixes reached".into());
            let _ = peer.commands.send(PeerCommand::Stop(n));
            if let Some(secs) = restart_after {
                tracing::warn!(peer = %address, secs, "maximum prefixes: session closed, restarting it later");
                // A removed peer's channel is closed by then: nothing happens.
                let commands = peer.commands.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_secs(u64::from(secs))).await;
                    let _ = commands.send(PeerCommand::Start);
                });
            }
        }
        self.propagate().await;
    }

    async fn down(&mut self, address: IpAddr, reason: DownReason) {
        let Some(peer) = self.peers.get_mut(&address) else {
            return;
        };
        let id = peer.id;
        let graceful = match &reason {
            DownReason::ConnectionClosed => true,
            DownReason::NotificationSent(n) => n.code == notify::HOLD_TIMER_EXPIRED,
            DownReason::NotificationReceived(_) => false,
        };
        let (error, notification) = describe(&reason);
        tracing::info!(peer = %address, %error, "session down");
        peer.last_error = Some(error);
        if notification.is_some() {
            peer.last_notification = notification;
        }
        let gr = peer.negotiated.take().and_then(|n| n.peer_graceful_restart);
        peer.adj_out = None;
        peer.outbox.reset(Default::default());
        match gr.filter(|_| graceful) {
            Some(gr) => {
                // RFC 4724 §4.2: keep the peer's routes, marked stale, for
                // the families it preserves, until it is back and sends
                // End-of-RIB or the restart time passes.
                let kept: Vec<Family> = gr.families.iter().map(|(f, _)| *f).collect();
                for f in [Family::Ipv4Unicast, Family::Ipv6Unicast] {
                    if kept.contains(&f) {
                        self.rib.mark_stale(id, f, &mut self.changes);
                    } else {
                        self.rib.mark_stale(id, f, &mut self.changes);
                        self.rib.sweep_stale(id, f, &mut self.changes);
                    }
                }
                peer.stale = kept;
                peer.stale_deadline = Some(Instant::now() + gr.restart_time);
            }
            None => {
                peer.stale.clear();
                peer.stale_deadline = None;
                self.rib.remove_peer(id, &mut self.changes);
            }
        }
        self.propagate().await;
    }

    /// Restart timers that ran out: the peer did not come back (or did not
    /// finish) in time; its stale routes go.
    async fn stale_timers(&mut self) {
        let now = Instant::now();
        let due: Vec<(IpAddr, PeerId, Vec<Family>)> = self
            .peers
            .iter_mut()
            .filter(|(_, p)| p.stale_deadline.is_some_and(|d| d <= now))
            .map(|(a, p)| {
                p.stale_deadline = None;
                (*a, p.id, std::mem::take(&mut p.stale))
            })
            .collect();
        for (address, id, families) in due {
            tracing::info!(peer = %address, "graceful restart time expired; removing stale routes");
            for f in families {
                self.rib.sweep_stale(id, f, &mut self.changes);
            }
        }
        self.propagate().await;
    }

    /// Sends the accumulated best-path changes to the route stream and to
    /// every established peer's Adj-RIB-Out.
    async fn propagate(&mut self) {
        if self.changes.is_empty() {
            return;
        }
        let changes = std::mem::take(&mut self.changes);
        let local_as = self.config.local_as;
        let mut outs = Vec::new();
        for peer in self.peers.values_mut() {
            let Some(adj) = peer.adj_out.as_mut() else {
                continue;
            };
            let ebgp = peer.config.asn != local_as;
            let four = peer.negotiated.as_ref().is_some_and(|n| n.tx.four_octet_as);
            let policy = &peer.policy;
            adj.apply_all(
                &self.rib,
                &changes,
                |p| policy.export_allows(ebgp, p),
                &mut outs,
            );
            for o in outs.drain(..) {
                push_out(&mut self.out_cache, &peer.outbox, o, four);
            }
        }
        let batch: Vec<RouteChange> = changes
            .iter()
            .map(|c| match &c.new {
                Some(path) => RouteChange::Best(self.best_route(c.prefix, path)),
                None => RouteChange::Withdrawn(c.prefix),
            })
            .collect();
        let mut changes = changes;
        changes.clear();
        self.changes = changes;
        if self.out_cache.len() > 4096 {
            self.out_cache.retain(|_, (a, _)| Arc::strong_count(a) > 1);
        }
        let _ = self.routes.send(batch).await;
    }
}

/// The last error in words, and the NOTIFICATION involved.
fn describe(reason: &DownReason) -> (String, Option<Notification>) {
    match reason {
        DownReason::NotificationSent(n) => (format!("sent {n}"), Some(n.clone())),
        DownReason::NotificationReceived(n) => (format!("received {n}"), Some(n.clone())),
        DownReason::ConnectionClosed => ("connection closed".to_owned(), None),
    }
}

fn is_link_local(a: &Ipv6Addr) -> bool {
    a.segments().first().is_some_and(|s| s & 0xffc0 == 0xfe80)
}

/// Converts an export decision into outbox entries.
fn push_out(cache: &mut OutCache, outbox: &Outbox, change: OutChange, four_octet_as: bool) {
    match change {
        OutChange::Withdraw(net) => outbox.withdraw(Prefix::new(net)),
        OutChange::Announce(net, attrs) => {
            let family = family_of(&net);
            let key = (
                Arc::as_ptr(&attrs) as usize,
                four_octet_as,
                family == Family::Ipv4Unicast,
            );
            let out = cache
                .entry(key)
                .or_insert_with(|| {
                    let attributes = attrs
                        .to_attributes(family, four_octet_as)
                        .into_iter()
                        .filter(|a| a.code() != attr::NEXT_HOP)
                        .collect();
                    let out = OutAttrs {
                        attributes,
                        next_hop: attrs.next_hop.to_wire(),
                    };
                    (attrs.clone(), Arc::new(out))
                })
                .1
                .clone();
            outbox.announce(Prefix::new(net), out);
        }
    }
}

/// The attributes of a route we originate. An unspecified next hop means
/// "ourselves": export replaces it with the session's address.
fn local_attrs(family: Family, route: &LocalRoute) -> PathAttrs {
    let next_hop = match (route.next_hop, family) {
        (Some(IpAddr::V4(a)), _) => NextHop::V4(a),
        (Some(IpAddr::V6(a)), _) => NextHop::V6 {
            global: a,
            link_local: None,
        },
        (None, Family::Ipv4Unicast) => NextHop::V4(Ipv4Addr::UNSPECIFIED),
        (None, Family::Ipv6Unicast) => NextHop::V6 {
            global: Ipv6Addr::UNSPECIFIED,
            link_local: None,
        },
    };
    let mut attrs = PathAttrs::new(
        route.origin.unwrap_or(Origin::Igp),
        AsPath::default(),
        next_hop,
    );
    attrs.med = route.med;
    attrs.local_pref = route.local_pref;
    attrs.communities = route.communities.clone();
    attrs
}
