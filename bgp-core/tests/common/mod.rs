//! A pair of sessions joined by in-memory pipes on a virtual clock (the
//! quinn `Pair` idea): time jumps straight to the next deadline, so timer
//! tests run in microseconds and never flake.

#![allow(dead_code)]

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use bgp_core::session::{ConnId, Session, SessionConfig, SessionEvent, State};

/// Which side of the pair.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    A,
    B,
}

/// Two sessions, A and B. A's outbound connection is B's inbound one and
/// vice versa.
pub struct Pair {
    pub a: Session,
    pub b: Session,
    pub now: Instant,
    pub start: Instant,
    /// A connection attempt succeeds only while the network is up.
    pub network_up: bool,
    /// Bytes from this side are silently dropped (the peer hangs).
    pub mute: Option<Side>,
    /// Do not take transmits from this side (its peer stopped reading).
    pub stalled: Option<Side>,
    /// Link A→B (A outbound) and B→A (B outbound) are up.
    pub link_ab: bool,
    pub link_ba: bool,
    /// Every event, with the time it was seen.
    pub events: Vec<(Duration, Side, SessionEvent)>,
    /// Every message delivered: time, sender, bytes.
    pub wire: Vec<(Duration, Side, Vec<u8>)>,
}

pub fn other(id: ConnId) -> ConnId {
    match id {
        ConnId::Outbound => ConnId::Inbound,
        ConnId::Inbound => ConnId::Outbound,
    }
}

/// iBGP AS 65001; A is 10.0.0.1, B is 10.0.0.2.
pub fn configs() -> (SessionConfig, SessionConfig) {
    (
        SessionConfig::new(65001, Ipv4Addr::new(10, 0, 0, 1), 65001),
        SessionConfig::new(65001, Ipv4Addr::new(10, 0, 0, 2), 65001),
    )
}

impl Pair {
    pub fn new(a: SessionConfig, b: SessionConfig) -> Pair {
        let now = Instant::now();
        Pair {
            a: Session::new(a, 1),
            b: Session::new(b, 2),
            now,
            start: now,
            network_up: true,
            mute: None,
            stalled: None,
            link_ab: false,
            link_ba: false,
            events: Vec::new(),
            wire: Vec::new(),
        }
    }

    pub fn session(&mut self, side: Side) -> &mut Session {
        match side {
            Side::A => &mut self.a,
            Side::B => &mut self.b,
        }
    }

    pub fn elapsed(&self) -> Duration {
        self.now - self.start
    }

    fn link(&mut self, from: Side, id: ConnId) -> &mut bool {
        match (from, id) {
            (Side::A, ConnId::Outbound) | (Side::B, ConnId::Inbound) => &mut self.link_ab,
            (Side::B, ConnId::Outbound) | (Side::A, ConnId::Inbound) => &mut self.link_ba,
        }
    }

    pub fn start_both(&mut self) {
        let now = self.now;
        self.a.handle_start(now);
        self.b.handle_start(now);
        self.drive();
    }

    /// Delivers everything until both sides are quiet.
    pub fn drive(&mut self) {
        for _ in 0..10_000 {
            let mut progress = false;
            for side in [Side::A, Side::B] {
                progress |= self.step(side);
            }
            if !progress {
                return;
            }
        }
        panic!("the pair did not settle");
    }

    /// Hands everything `side` has queued to the other side over the links
    /// that are up (unless `side` is muted); returns whether anything was
    /// queued.
    fn deliver(&mut self, side: Side) -> bool {
        let now = self.now;
        let peer = match side {
            Side::A => Side::B,
            Side::B => Side::A,
        };
        let mut any = false;
        while let Some((id, bytes)) = self.session(side).poll_transmit(now) {
            any = true;
            if *self.link(side, id) && self.mute != Some(side) {
                self.wire.push((self.elapsed(), side, bytes.to_vec()));
                self.session(peer).handle_bytes(now, other(id), &bytes);
            }
        }
        any
    }

    fn step(&mut self, side: Side) -> bool {
        let now = self.now;
        let peer = match side {
            Side::A => Side::B,
            Side::B => Side::A,
        };
        let mut progress = self.stalled != Some(side) && self.deliver(side);
        while let Some(ev) = self.session(side).poll_event() {
            progress = true;
            match &ev {
                SessionEvent::Connect => {
                    if self.network_up && !*self.link(side, ConnId::Outbound) {
                        *self.link(side, ConnId::Outbound) = true;
                        self.session(side).handle_connected(now, ConnId::Outbound);
                        self.session(peer).handle_connected(now, ConnId::Inbound);
                    } else if !self.network_up {
                        self.session(side).handle_connect_failed(now);
                    }
                }
                SessionEvent::Close(id) => {
                    // Deliver what was queued before the close, then close.
                    self.deliver(side);
                    if *self.link(side, *id) {
                        *self.link(side, *id) = false;
                        self.session(peer).handle_closed(now, other(*id));
                    }
                }
                _ => {}
            }
            self.events.push((self.elapsed(), side, ev));
        }
        progress
    }

    /// Advances the virtual clock by `d`, firing every deadline on the way.
    pub fn advance(&mut self, d: Duration) {
        let target = self.now + d;
        loop {
            let next = [self.a.poll_timeout(), self.b.poll_timeout()]
                .into_iter()
                .flatten()
                .min();
            match next {
                Some(t) if t <= target => {
                    self.now = t.max(self.now);
                    let now = self.now;
                    self.a.handle_timeout(now);
                    self.b.handle_timeout(now);
                    self.drive();
                }
                _ => break,
            }
        }
        self.now = target;
    }

    pub fn states(&self) -> (State, State) {
        (self.a.state(), self.b.state())
    }

    /// The states `side` went through, in order.
    pub fn state_trace(&self, side: Side) -> Vec<State> {
        let mut trace = vec![State::Idle];
        for (_, s, ev) in &self.events {
            if let (true, SessionEvent::StateChanged { to, .. }) = (*s == side, ev) {
                trace.push(*to);
            }
        }
        trace
    }

    pub fn events_of(&self, side: Side) -> Vec<&SessionEvent> {
        self.events
            .iter()
            .filter(|(_, s, _)| *s == side)
            .map(|(_, _, e)| e)
            .collect()
    }
}
