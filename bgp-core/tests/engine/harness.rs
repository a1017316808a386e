//! The engine harness: an [`Engine`] on a virtual clock whose outputs are
//! collected, with session events fed in as a peer task would report them
//! and what peers are sent decoded from their outboxes.

#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bgp_core::engine::{Action, Control, Engine, PeerOutbox};
use bgp_core::rib::{AdjRibOut, ExportContext, PathAttrs, PeerId};
use bgp_core::session::{DownReason, Negotiated, PeerGracefulRestart, SessionEvent, State};
use bgp_core::speaker::{PeerConfig, RouteChange, SpeakerConfig};
use bgp_core::wire::{
    AsPath, AttrValue, DecodeContext, Family, Message, Origin, PathAttribute, Prefix, Update,
    UpdateDecode,
};
use bytes::Bytes;
use ipnetwork::IpNetwork;

pub const AS: u32 = 64512;

pub fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

pub fn net(s: &str) -> IpNetwork {
    s.parse().unwrap()
}

/// The address of peer `n` (10.0.0.n), also its router ID.
pub fn peer_ip(n: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 0, 0, n)
}

/// Our address on every session.
pub const LOCAL: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);

/// An engine and everything it has output so far.
pub struct Harness {
    pub engine: Engine,
    pub now: Instant,
    pub outboxes: HashMap<PeerId, Arc<PeerOutbox>>,
    pub controls: Vec<(PeerId, Control)>,
    pub routes: Vec<RouteChange>,
    /// What each peer holds from us, decoded from what it was sent.
    pub held: HashMap<PeerId, BTreeMap<IpNetwork, PathAttrs>>,
    pub end_of_rib: HashMap<PeerId, Vec<Family>>,
    /// Messages taken from outboxes, for sharing checks.
    pub taken: HashMap<PeerId, Vec<Bytes>>,
    /// Prefixes announced to each peer so far (every announcement counts,
    /// a repeated one too).
    pub announced: HashMap<PeerId, usize>,
    /// ROUTE-REFRESH messages each peer was sent: (subtype, family, what
    /// `announced` was when it was sent).
    pub refresh_markers: HashMap<PeerId, Vec<(u8, Family, usize)>>,
}

impl Harness {
    pub fn new(config: SpeakerConfig) -> Harness {
        let mut h = Harness {
            engine: Engine::new(config).unwrap(),
            now: Instant::now(),
            outboxes: HashMap::new(),
            controls: Vec::new(),
            routes: Vec::new(),
            held: HashMap::new(),
            end_of_rib: HashMap::new(),
            taken: HashMap::new(),
            announced: HashMap::new(),
            refresh_markers: HashMap::new(),
        };
        h.pump();
        h
    }

    pub fn pump(&mut self) {
        while let Some(a) = self.engine.poll_action() {
            match a {
                Action::Spawn(setup) => {
                    self.outboxes.insert(setup.id, setup.outbox);
                }
                Action::Control(id, c) => self.controls.push((id, c)),
            }
        }
        while let Some(batch) = self.engine.poll_routes() {
            self.routes.extend(batch);
        }
    }

    pub fn event(&mut self, id: PeerId, event: SessionEvent) {
        let local = Some(SocketAddr::new(IpAddr::V4(LOCAL), 179));
        self.engine.handle_event(self.now, id, local, event);
        self.pump();
    }

    /// Brings peer `id` (router ID `router_id`) to Established.
    pub fn establish(&mut self, id: PeerId, router_id: Ipv4Addr, gr: Option<PeerGracefulRestart>) {
        self.establish_with(id, negotiated(router_id, gr));
    }

    /// Brings peer `id` to Established with what `negotiated` says.
    pub fn establish_with(&mut self, id: PeerId, negotiated: Negotiated) {
        self.event(
            id,
            SessionEvent::StateChanged {
                from: State::OpenConfirm,
                to: State::Established,
            },
        );
        self.event(id, SessionEvent::Established(Box::new(negotiated)));
    }

    pub fn update(&mut self, id: PeerId, update: Update) {
        self.event(
            id,
            SessionEvent::Update(UpdateDecode {
                update,
                faults: Vec::new(),
            }),
        );
    }

    /// Peer `id` announces `prefixes` with next hop `nh` (and, for a
    /// non-client's reflected route, `originator`).
    pub fn announce(&mut self, id: PeerId, prefixes: &[&str], nh: Ipv4Addr) {
        self.update(id, announcement(prefixes, nh, None));
    }

    pub fn withdraw(&mut self, id: PeerId, prefixes: &[&str]) {
        self.update(
            id,
            Update {
                withdrawn: prefixes.iter().map(|p| Prefix::new(net(p))).collect(),
                ..Update::default()
            },
        );
    }

    pub fn down(&mut self, id: PeerId, reason: DownReason) {
        self.event(
            id,
            SessionEvent::StateChanged {
                from: State::Established,
                to: State::Idle,
            },
        );
        self.event(id, SessionEvent::Down(reason));
        self.held.remove(&id);
        self.end_of_rib.remove(&id);
    }

    /// Moves the clock by `d`, firing the engine's deadlines on the way.
    pub fn advance(&mut self, d: Duration) {
        let until = self.now + d;
        while let Some(t) = self.engine.poll_timeout().filter(|t| *t <= until) {
            self.now = t.max(self.now);
            self.engine.handle_timeout(self.now);
            self.pump();
        }
        self.now = until;
    }

    /// Takes everything waiting in `id`'s outbox and applies it to what
    /// the peer holds.
    pub fn drain(&mut self, id: PeerId) -> &BTreeMap<IpNetwork, PathAttrs> {
        let outbox = self.outboxes[&id].clone();
        let mut msgs = Vec::new();
        while outbox.take(32, &mut msgs) {}
        let held = self.held.entry(id).or_default();
        let announced = self.announced.entry(id).or_default();
        for m in &msgs {
            let u = match Message::decode(m, &DecodeContext::ibgp()).unwrap().message {
                Message::Update(u) => u,
                Message::RouteRefresh(r) => {
                    let family = Family::from_afi_safi(r.afi, r.safi).unwrap();
                    self.refresh_markers
                        .entry(id)
                        .or_default()
                        .push((r.subtype, family, *announced));
                    continue;
                }
                other => panic!("not an UPDATE or ROUTE-REFRESH: {other:?}"),
            };
            if let Some((afi, safi)) = u.end_of_rib() {
                let family = Family::from_afi_safi(afi, safi).unwrap();
                self.end_of_rib.entry(id).or_default().push(family);
                continue;
            }
            for w in u.withdrawals() {
                held.remove(&w.network);
            }
            let announced_now: Vec<Prefix> = u.announced().copied().collect();
            if !announced_now.is_empty() {
                let attrs = PathAttrs::from_update(&u, Family::Ipv4Unicast).unwrap();
                *announced += announced_now.len();
                for p in announced_now {
                    held.insert(p.network, attrs.clone());
                }
            }
        }
        self.taken.entry(id).or_default().extend(msgs);
        &self.held[&id]
    }

    /// What `id` must hold now: a per-peer Adj-RIB-Out synced from the RIB.
    pub fn expected(&self, id: PeerId) -> BTreeMap<IpNetwork, PathAttrs> {
        let ctx = ExportContext {
            local_next_hop_v4: Some(LOCAL),
            ..ExportContext::default()
        };
        let mut out = AdjRibOut::new(id, ctx);
        let mut changes = Vec::new();
        out.sync(self.engine.rib(), |_| true, &mut changes);
        out.iter().map(|(n, a)| (n, (*a).clone())).collect()
    }

    pub fn best(&self, prefix: &str) -> Option<RouteChange> {
        self.routes
            .iter()
            .rev()
            .find(|c| c.prefix() == Some(net(prefix)))
            .cloned()
    }
}

pub fn announcement(prefixes: &[&str], nh: Ipv4Addr, originator: Option<Ipv4Addr>) -> Update {
    let mut attributes = vec![
        PathAttribute::new(AttrValue::Origin(Origin::Igp)),
        PathAttribute::new(AttrValue::AsPath(AsPath::default())),
        PathAttribute::new(AttrValue::NextHop(nh)),
        PathAttribute::new(AttrValue::LocalPref(100)),
    ];
    if let Some(o) = originator {
        attributes.push(PathAttribute::new(AttrValue::OriginatorId(o)));
        attributes.push(PathAttribute::new(AttrValue::ClusterList(vec![ip(
            "10.9.9.9",
        )])));
    }
    Update {
        withdrawn: Vec::new(),
        attributes,
        nlri: prefixes.iter().map(|p| Prefix::new(net(p))).collect(),
    }
}

/// What a session with peer `router_id` negotiated: IPv4 unicast, route
/// refresh without the enhanced kind, graceful restart as `gr` says.
pub fn negotiated(router_id: Ipv4Addr, gr: Option<PeerGracefulRestart>) -> Negotiated {
    Negotiated {
        peer_as: AS,
        peer_id: router_id,
        hold_time: 90,
        keepalive_time: None,
        families: vec![Family::Ipv4Unicast],
        rx: DecodeContext::ibgp(),
        tx: DecodeContext::ibgp(),
        route_refresh: true,
        enhanced_route_refresh: false,
        peer_graceful_restart: gr,
    }
}

pub fn config(peers: &[(u8, bool)]) -> SpeakerConfig {
    let mut c = SpeakerConfig::new(AS, LOCAL);
    for &(n, client) in peers {
        let mut p = PeerConfig::new(IpAddr::V4(peer_ip(n)), AS);
        p.route_reflector_client = client;
        c.peers.push(p);
    }
    c
}

pub fn gr(restart: u64) -> PeerGracefulRestart {
    PeerGracefulRestart {
        restart_time: Duration::from_secs(restart),
        restarting: false,
        families: vec![(Family::Ipv4Unicast, true)],
    }
}

pub fn is_best(c: Option<RouteChange>, stale: bool) -> bool {
    matches!(c, Some(RouteChange::Best(b)) if b.stale == stale)
}
