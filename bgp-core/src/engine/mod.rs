//! The speaker engine: every decision between the sessions and the RIB,
//! without I/O.
//!
//! An [`Engine`] owns the Loc-RIB, the neighbours, import and export
//! policy, maximum-prefix limits, graceful-restart stale paths and the
//! update groups that share encoded UPDATEs between peers (`export/`). It
//! never reads the clock and never touches a socket: like
//! [`crate::session::Session`], every input is a `handle_*` call (or a
//! command) that takes `now`, and every output is polled. The tokio task
//! in `driver/speaker.rs` is a thin shell around it; tests drive it
//! on a virtual clock.
//!
//! Call order, after any input:
//! 1. act on every [`Engine::poll_action`]: spawn a peer task
//!    ([`Action::Spawn`], which carries the peer's [`crate::session::Session`]
//!    and its [`PeerOutbox`]) or tell one what to do ([`Action::Control`]);
//! 2. deliver every [`Engine::poll_routes`] batch to the route stream;
//! 3. sleep until [`Engine::poll_timeout`] or the next input, and call
//!    [`Engine::handle_timeout`] at that deadline.
//!
//! Peer tasks pull what to send from their [`PeerOutbox`] and report what
//! their session does through [`Engine::handle_event`]; connections the
//! listener accepts are matched to a peer by [`Engine::handle_inbound`],
//! which also creates dynamic neighbours (BIRD's `neighbor range`).

mod action;
mod dynamic;
mod export;
mod import;
mod owners;
mod peer;
mod refresh;
mod signal;

pub use action::{Action, Control, PeerSetup, Transport};
pub use export::{ExportHub, LOG_LIMIT, OutAttrs, PeerOutbox};
pub use owners::BlockOwner;
pub use signal::{Signal, Wait};

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ipnetwork::IpNetwork;

use crate::policy::{MaxPrefixTracker, Policy};
use crate::rib::{BestChange, ExportContext, NextHop, PeerId, PeerInfo, Rib, RibConfig};
use crate::session::timers::Deadlines;
use crate::session::{
    DownReason, GracefulRestartConfig, Negotiated, Session, SessionConfig, SessionEvent, State,
};
use crate::speaker::{
    BestRoute, LocalRoute, PeerConfig, PeerDown, PeerSnapshot, PeerUp, RouteChange, SpeakerConfig,
    SpeakerError,
};
use crate::wire::iana::notify;
use crate::wire::{Family, Notification, Prefix, RouteRefresh};
use dynamic::Ranges;
use export::group::{GroupKey, MemberInfo, family_of};
use peer::Peer;

/// The engine's timers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Timer {
    /// The peer's restart time ran out: its stale routes go (RFC 4724
    /// §4.2).
    Stale(PeerId),
    /// Start the peer again after a maximum-prefix Cease.
    Restart(PeerId),
}

/// The speaker's decisions; see the module docs for the call order.
#[derive(Debug)]
pub struct Engine {
    config: SpeakerConfig,
    rib: Rib,
    peers: HashMap<PeerId, Peer>,
    by_address: HashMap<IpAddr, PeerId>,
    /// Peer addresses by id (ids are handed out in order and never
    /// reused): [`Engine::best_route`] looks one up per route change, so an
    /// index, not a hash.
    addresses: Vec<Option<IpAddr>>,
    next_id: u32,
    ranges: Ranges,
    /// Pod blocks and their owners' addresses (see [`BlockOwner`]).
    owners: owners::Owners,
    hub: Arc<ExportHub>,
    timers: Deadlines<Timer>,
    changes: Vec<BestChange>,
    routes: VecDeque<Vec<RouteChange>>,
    actions: VecDeque<Action>,
}

/// An IPv4 peer seen through a dual-stack socket has a mapped address.
pub(crate) fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

impl Engine {
    /// An engine for `config`; its configured peers come out of
    /// [`Engine::poll_action`] as [`Action::Spawn`] and `Start`.
    pub fn new(config: SpeakerConfig) -> Result<Engine, SpeakerError> {
        let any_rr_client = config.peers.iter().any(|p| p.route_reflector_client)
            || config
                .dynamic_neighbors
                .iter()
                .any(|r| r.route_reflector_client);
        let mut rib_config = RibConfig::new(config.local_as, config.router_id);
        rib_config.cluster_id = config
            .cluster_id
            .or(any_rr_client.then_some(config.router_id));
        rib_config.forward_unknown_from_ebgp = config.forward_unknown_from_ebgp;
        let peers = config.peers.clone();
        let mut engine = Engine {
            ranges: Ranges::new(config.dynamic_neighbors.clone()),
            owners: owners::Owners::default(),
            hub: ExportHub::new(config.local_as),
            rib: Rib::new(rib_config),
            config,
            peers: HashMap::new(),
            by_address: HashMap::new(),
            addresses: Vec::new(),
            next_id: 0,
            timers: Deadlines::default(),
            changes: Vec::new(),
            routes: VecDeque::new(),
            actions: VecDeque::new(),
        };
        for p in peers {
            engine.add_peer(p)?;
        }
        Ok(engine)
    }

    /// The configuration (peers as configured at start).
    pub fn config(&self) -> &SpeakerConfig {
        &self.config
    }

    /// The Loc-RIB.
    pub fn rib(&self) -> &Rib {
        &self.rib
    }

    /// The next thing for the driver to do.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// The next batch of best-route changes for the route stream.
    pub fn poll_routes(&mut self) -> Option<Vec<RouteChange>> {
        self.routes.pop_front()
    }

    /// When [`Engine::handle_timeout`] is next due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.next()
    }

    /// The configuration of peer `id`.
    pub fn peer_config(&self, id: PeerId) -> Option<&PeerConfig> {
        self.peers.get(&id).map(|p| &p.config)
    }

    /// The engine's handle for the peer at `address`.
    pub fn peer_id(&self, address: IpAddr) -> Option<PeerId> {
        self.by_address.get(&canonical(address)).copied()
    }

    /// Sets the most bytes of encoded UPDATEs an update group keeps for
    /// peers that have not taken them yet ([`LOG_LIMIT`] by default); peers
    /// further behind catch up from the group's table instead.
    pub fn set_log_limit(&mut self, bytes: usize) {
        self.hub.set_limit(bytes);
    }

    /// Update groups as (members, prefixes) pairs.
    pub fn update_groups(&self) -> Vec<(usize, usize)> {
        self.hub.groups()
    }

    // ---- commands ------------------------------------------------------

    /// Originates `prefix` (replacing an earlier announcement of it).
    pub fn announce(&mut self, prefix: IpNetwork, route: &LocalRoute) {
        let attrs = import::local_attrs(family_of(&prefix), route);
        self.rib.announce_local(prefix, attrs, &mut self.changes);
        self.propagate();
    }

    /// Stops originating `prefix`.
    pub fn withdraw(&mut self, prefix: IpNetwork) {
        self.rib.withdraw_local(prefix, &mut self.changes);
        self.propagate();
    }

    /// Sets which node owns which pod block (replacing the previous set):
    /// a route inside an owned block is accepted only with its owner's
    /// address as NEXT_HOP ([`BlockOwner`]). Held routes that break the new
    /// set are withdrawn now; when an owner changed or a block stopped
    /// being owned, routes refused before may be fine, so every peer that
    /// supports it is asked to send its routes again (ROUTE-REFRESH, RFC
    /// 2918).
    pub fn set_block_owners(&mut self, owners: &[BlockOwner]) {
        let new = owners::Owners::new(owners);
        let refresh = self.owners.loosened_by(&new);
        self.owners = new;
        if !self.owners.is_empty() {
            let mut doomed: Vec<(PeerId, Prefix)> = Vec::new();
            for (prefix, _) in self.rib.iter_best() {
                if self.owners.owner(&prefix).is_none() {
                    continue;
                }
                for path in self.rib.paths(&prefix) {
                    if path.peer != PeerId::LOCAL
                        && !self.owners.allows(&prefix, &path.attrs.next_hop)
                    {
                        doomed.push((
                            path.peer,
                            Prefix {
                                path_id: Some(path.path_id),
                                network: prefix,
                            },
                        ));
                    }
                }
            }
            for (peer, prefix) in doomed {
                self.rib.withdraw(peer, &[prefix], &mut self.changes);
            }
        }
        if refresh {
            for peer in self.peers.values() {
                let Some(n) = peer.negotiated.as_ref().filter(|n| n.route_refresh) else {
                    continue;
                };
                for f in &n.families {
                    self.actions.push_back(Action::Control(
                        peer.id,
                        Control::RouteRefresh(RouteRefresh::request(f.afi(), f.safi())),
                    ));
                }
            }
        }
        self.propagate();
    }

    /// Adds a neighbour; its task comes out as [`Action::Spawn`].
    pub fn add_peer(&mut self, pc: PeerConfig) -> Result<PeerId, SpeakerError> {
        self.add(pc, None)
    }

    fn add(&mut self, pc: PeerConfig, dynamic: Option<usize>) -> Result<PeerId, SpeakerError> {
        let address = canonical(pc.address);
        if self.by_address.contains_key(&address) {
            return Err(SpeakerError::DuplicatePeer(address));
        }
        let id = PeerId(self.next_id);
        self.next_id = self.next_id.wrapping_add(1);

        let mut sc = SessionConfig::new(self.config.local_as, self.config.router_id, pc.asn);
        sc.hold_time = pc.hold_time.unwrap_or(self.config.hold_time);
        sc.keepalive_time = pc.keepalive_time.or(self.config.keepalive_time);
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
        let seed = u64::from(u32::from(self.config.router_id)) << 32 | u64::from(id.0);
        let outbox = self.hub.register(id);
        self.actions.push_back(Action::Spawn(Box::new(PeerSetup {
            id,
            address,
            session: Session::new(sc, seed),
            transport,
            outbox,
        })));
        self.actions.push_back(Action::Control(id, Control::Start));
        let max_prefix = pc
            .max_prefixes
            .map(|m| {
                vec![
                    MaxPrefixTracker::new(m, Family::Ipv4Unicast),
                    MaxPrefixTracker::new(m, Family::Ipv6Unicast),
                ]
            })
            .unwrap_or_default();
        self.by_address.insert(address, id);
        if let Ok(slot) = usize::try_from(id.0) {
            if self.addresses.len() <= slot {
                self.addresses.resize(slot + 1, None);
            }
            if let Some(a) = self.addresses.get_mut(slot) {
                *a = Some(address);
            }
        }
        self.peers.insert(
            id,
            Peer {
                policy: Policy {
                    import: pc.import.clone(),
                    export: pc.export.clone(),
                },
                config: pc,
                id,
                address,
                state: State::Idle,
                established_at: None,
                negotiated: None,
                received: 0,
                last_error: None,
                last_notification: None,
                max_prefix,
                stale: Vec::new(),
                refreshing: Vec::new(),
                dynamic,
            },
        );
        Ok(id)
    }

    /// Removes a neighbour (Cease / Peer De-configured), withdrawing its
    /// routes.
    pub fn remove_peer(&mut self, address: IpAddr) -> Result<(), SpeakerError> {
        let address = canonical(address);
        let id = self
            .by_address
            .get(&address)
            .copied()
            .ok_or(SpeakerError::UnknownPeer(address))?;
        let n = Notification::new(notify::CEASE, notify::cease::PEER_DECONFIGURED, Vec::new());
        self.forget(id, Control::Shutdown(n));
        self.propagate();
        Ok(())
    }

    /// Drops peer `id` and its routes, telling its task `control`.
    fn forget(&mut self, id: PeerId, control: Control) {
        let Some(peer) = self.peers.remove(&id) else {
            return;
        };
        self.by_address.remove(&peer.address);
        if let Some(a) = usize::try_from(id.0)
            .ok()
            .and_then(|i| self.addresses.get_mut(i))
        {
            *a = None;
        }
        if let Some(range) = peer.dynamic {
            self.ranges.released(range);
        }
        self.timers.stop(Timer::Stale(id));
        self.timers.stop(Timer::Restart(id));
        self.actions.push_back(Action::Control(id, control));
        self.hub.unregister(id);
        self.rib.remove_peer(id, &mut self.changes);
    }

    /// Ends every session: with Cease / Administrative Shutdown carrying
    /// `message`, or (`None`) without a NOTIFICATION, for a graceful
    /// restart. Returns the peers whose tasks were told.
    pub fn shutdown(&mut self, message: Option<&str>) -> Vec<PeerId> {
        let n = message.map(Notification::admin_shutdown);
        let ids: Vec<PeerId> = self.peers.keys().copied().collect();
        for id in &ids {
            let control = match &n {
                Some(n) => Control::Shutdown(n.clone()),
                None => Control::Abandon,
            };
            self.actions.push_back(Action::Control(*id, control));
        }
        ids
    }

    // ---- inputs --------------------------------------------------------

    /// A connection from `from` was accepted: the peer to hand it to, or
    /// `None` to refuse it. An address no neighbour has, inside a
    /// [`crate::speaker::NeighborRange`] with room, becomes a dynamic
    /// neighbour (its task comes out of [`Engine::poll_action`] first).
    pub fn handle_inbound(&mut self, _now: Instant, from: IpAddr) -> Option<PeerId> {
        let from = canonical(from);
        if let Some(id) = self.by_address.get(&from) {
            return Some(*id);
        }
        let (range, pc) = match self.ranges.admit(from) {
            Ok(admitted) => admitted,
            Err(why) => {
                // The driver may hold the connection a moment for a peer
                // about to be added, and logs if it refuses it.
                tracing::debug!(%from, "no neighbour takes the connection: {why}");
                return None;
            }
        };
        match self.add(pc, Some(range)) {
            Ok(id) => {
                tracing::info!(%from, "dynamic neighbour accepted");
                Some(id)
            }
            Err(e) => {
                self.ranges.released(range);
                tracing::warn!(%from, "dynamic neighbour not added: {e}");
                None
            }
        }
    }

    /// Something happened to peer `id`'s session. `local` is our address on
    /// its connection, when one is up.
    pub fn handle_event(
        &mut self,
        now: Instant,
        id: PeerId,
        local: Option<SocketAddr>,
        event: SessionEvent,
    ) {
        let Some(peer) = self.peers.get_mut(&id) else {
            return;
        };
        match event {
            SessionEvent::StateChanged { to, .. } => {
                peer.state = to;
                if to == State::Established {
                    peer.established_at = Some(now);
                    tracing::info!(peer = %peer.address, asn = peer.config.asn, "session established");
                } else {
                    peer.established_at = None;
                }
            }
            SessionEvent::Established(negotiated) => {
                self.established(id, *negotiated, local);
            }
            SessionEvent::Update(update) => self.update(now, id, local, update),
            SessionEvent::RouteRefresh(r) => self.route_refresh(id, &r),
            SessionEvent::Down(reason) => self.down(now, id, reason),
            SessionEvent::AttemptFailed(reason) => {
                let (error, notification) = describe(&reason);
                peer.last_error = Some(error);
                if notification.is_some() {
                    peer.last_notification = notification;
                }
                // A dynamic neighbour that never got up is not kept.
                if peer.dynamic.is_some() && peer.stale.is_empty() {
                    self.forget(id, Control::Abandon);
                }
            }
            SessionEvent::Connect | SessionEvent::Close(_) => {}
        }
        self.propagate();
    }

    /// Deadlines that have passed.
    pub fn handle_timeout(&mut self, now: Instant) {
        for timer in self.timers.expire(now) {
            match timer {
                Timer::Stale(id) => {
                    let Some(peer) = self.peers.get_mut(&id) else {
                        continue;
                    };
                    tracing::info!(peer = %peer.address, "graceful restart time expired; removing stale routes");
                    let families = std::mem::take(&mut peer.stale);
                    let dynamic_down = peer.dynamic.is_some() && peer.state != State::Established;
                    for f in families {
                        self.rib.sweep_stale(id, f, &mut self.changes);
                    }
                    if dynamic_down {
                        self.forget(id, Control::Abandon);
                    }
                }
                Timer::Restart(id) => {
                    if self.peers.contains_key(&id) {
                        self.actions.push_back(Action::Control(id, Control::Start));
                    }
                }
            }
        }
        self.propagate();
    }

    // ---- queries -------------------------------------------------------

    /// A snapshot of every peer, sorted by address.
    pub fn peers(&self, now: Instant) -> Vec<PeerSnapshot> {
        let local_as = self.config.local_as;
        let mut out: Vec<PeerSnapshot> = self
            .peers
            .values()
            .map(|p| PeerSnapshot {
                address: p.address,
                asn: p.config.asn,
                ibgp: !p.ebgp(local_as),
                dynamic: p.dynamic.is_some(),
                state: p.state,
                uptime: p.established_at.map(|t| now.saturating_duration_since(t)),
                received: p.received,
                accepted: self.rib.received(p.id, Family::Ipv4Unicast)
                    + self.rib.received(p.id, Family::Ipv6Unicast),
                advertised: self.hub.advertised(p.id),
                last_error: p.last_error.clone(),
                last_notification: p.last_notification.clone(),
                negotiated: p
                    .negotiated
                    .clone()
                    .filter(|_| p.state == crate::session::State::Established),
            })
            .collect();
        out.sort_by_key(|s| s.address);
        out
    }

    /// Every best route in the Loc-RIB.
    pub fn routes(&self) -> Vec<BestRoute> {
        self.rib
            .iter_best()
            .map(|(prefix, path)| self.best_route(prefix, &path))
            .collect()
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
                .and_then(|i| self.addresses.get(i).copied().flatten()),
            attrs: path.attrs.clone(),
            stale: path.stale,
        }
    }

    // ---- session events ------------------------------------------------

    fn established(&mut self, id: PeerId, negotiated: Negotiated, local: Option<SocketAddr>) {
        let local_as = self.config.local_as;
        let restarting = self
            .config
            .graceful_restart
            .as_ref()
            .is_some_and(|gr| gr.restarting);
        let router_id = self.config.router_id;
        let Some(peer) = self.peers.get_mut(&id) else {
            return;
        };
        let mut info = PeerInfo::new(
            id,
            peer.address,
            peer.config.asn,
            negotiated.peer_id,
            local_as,
        );
        if peer.config.route_reflector_client {
            info = info.rr_client();
        }
        if self.rib.peer(id).is_none() {
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
        for f in drop {
            self.rib.sweep_stale(id, f, &mut self.changes);
        }

        let local_ip = local.map(|l| canonical(l.ip()));
        let ctx = ExportContext {
            local_next_hop_v4: match local_ip {
                Some(IpAddr::V4(a)) => Some(a),
                _ => Some(router_id),
            },
            local_next_hop_v6: match local_ip {
                Some(IpAddr::V6(a)) if !is_link_local(&a) => Some(a),
                _ => None,
            },
            local_link_local_v6: None,
            next_hop_self: peer.config.next_hop_self,
        };
        if restarting {
            self.actions
                .push_back(Action::Control(id, Control::ClearRestartState));
        }
        peer.max_prefix.iter_mut().for_each(|t| {
            let _ = t.check(0);
        });
        peer.last_error = None;
        let key = GroupKey {
            ibgp: !peer.ebgp(local_as),
            rr_client: info.rr_client,
            ctx,
            encoding: export::encoding_context(&negotiated.tx),
            families: negotiated.families.clone(),
            export: peer.policy.export.clone(),
        };
        let families = negotiated.families.clone();
        peer.negotiated = Some(negotiated);
        let member = MemberInfo {
            peer: id,
            router_id: info.router_id,
        };
        self.hub.join(&self.rib, member, key, &families);
        // Before any route of this session.
        if let Some(peer) = self.peers.get(&id)
            && let Some(negotiated) = &peer.negotiated
        {
            self.routes.push_back(vec![RouteChange::PeerUp(PeerUp {
                peer: peer.address,
                local,
                negotiated: negotiated.clone(),
            })]);
        }
    }

    fn down(&mut self, now: Instant, id: PeerId, reason: DownReason) {
        let Some(peer) = self.peers.get_mut(&id) else {
            return;
        };
        let graceful = match &reason {
            DownReason::ConnectionClosed => true,
            DownReason::NotificationSent(n) => n.code == notify::HOLD_TIMER_EXPIRED,
            DownReason::NotificationReceived(_) => false,
        };
        let (error, notification) = describe(&reason);
        tracing::info!(peer = %peer.address, %error, "session down");
        peer.last_error = Some(error);
        if notification.is_some() {
            peer.last_notification = notification;
        }
        // A refresh the session did not finish ends with it (its stale
        // paths go with the session or wait for graceful restart's).
        peer.refreshing.clear();
        let gr = peer.negotiated.take().and_then(|n| n.peer_graceful_restart);
        let dynamic = peer.dynamic.is_some();
        let address = peer.address;
        self.hub.leave(id);
        let routes_kept = gr.is_some() && graceful;
        match gr.filter(|_| graceful) {
            Some(gr) => {
                // RFC 4724 §4.2: keep the peer's routes, marked stale, for
                // the families it preserves, until it is back and sends
                // End-of-RIB or the restart time passes.
                let kept: Vec<Family> = gr.families.iter().map(|(f, _)| *f).collect();
                for f in [Family::Ipv4Unicast, Family::Ipv6Unicast] {
                    self.rib.mark_stale(id, f, &mut self.changes);
                    if !kept.contains(&f) {
                        self.rib.sweep_stale(id, f, &mut self.changes);
                    }
                }
                peer.stale = kept;
                self.timers.set(Timer::Stale(id), now + gr.restart_time);
            }
            None if dynamic => {
                // A dynamic neighbour is forgotten when its session ends.
                self.forget(id, Control::Abandon);
            }
            None => {
                peer.stale.clear();
                self.timers.stop(Timer::Stale(id));
                self.rib.remove_peer(id, &mut self.changes);
            }
        }
        // After the changes going down made.
        self.propagate();
        self.routes.push_back(vec![RouteChange::PeerDown(PeerDown {
            peer: address,
            reason,
            routes_kept,
        })]);
    }

    /// Sends the accumulated best-path changes to every update group and
    /// queues them for the route stream.
    fn propagate(&mut self) {
        if self.changes.is_empty() {
            return;
        }
        let changes = std::mem::take(&mut self.changes);
        self.hub.propagate(&self.rib, &changes);
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
        self.routes.push_back(batch);
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
