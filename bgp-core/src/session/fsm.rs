//! The RFC 4271 §8 state machine for one peer, without I/O.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

use crate::wire::iana::notify;
use crate::wire::{
    DecodeContext, EncodeError, Framer, Message, Notification, Open, RouteRefresh, Update,
    UpdateDecode,
};

use super::config::SessionConfig;
use super::negotiate::Negotiated;
use super::timers::{ConnTimer, Deadlines, Rng, Timer, backoff};

mod open;
use open::collision_cease;

/// Hold time while waiting for the peer's OPEN (RFC 4271 §8.2.2: "a large
/// value", 4 minutes suggested).
const OPEN_HOLD_TIME: Duration = Duration::from_secs(240);

/// The session states of RFC 4271 §8.2.2.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum State {
    /// Refusing connections; waiting for a start or the idle-hold timer.
    Idle,
    /// Waiting for our outbound connection.
    Connect,
    /// Waiting for the peer to connect.
    Active,
    /// OPEN sent, waiting for the peer's.
    OpenSent,
    /// OPENs exchanged, waiting for the peer's KEEPALIVE.
    OpenConfirm,
    /// Exchanging routes.
    Established,
}

impl std::fmt::Display for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self, f)
    }
}

/// Which of the (at most two) transport connections an input or output is
/// about: the one we opened or the one the peer opened. Two exist only
/// during a connection collision (RFC 4271 §6.8).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ConnId {
    /// We connected to the peer.
    Outbound,
    /// The peer connected to us.
    Inbound,
}

/// Why an established session (or an attempt) ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DownReason {
    /// We sent this NOTIFICATION (a decode error, hold timer, collision...).
    NotificationSent(Notification),
    /// The peer sent this NOTIFICATION.
    NotificationReceived(Notification),
    /// The transport closed without a NOTIFICATION.
    ConnectionClosed,
}

/// What the session asks of its driver, or tells its owner.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SessionEvent {
    /// Open an outbound TCP connection to the peer, then call
    /// [`Session::handle_connected`] with [`ConnId::Outbound`] or
    /// [`Session::handle_connect_failed`]. Drops any attempt in flight.
    Connect,
    /// Close this connection once its pending transmits are written.
    Close(ConnId),
    /// The session state changed.
    StateChanged {
        /// The previous state.
        from: State,
        /// The new state.
        to: State,
    },
    /// The session is established with these negotiated parameters.
    Established(Box<Negotiated>),
    /// An UPDATE arrived (its RFC 7606 faults included).
    Update(UpdateDecode),
    /// A ROUTE-REFRESH arrived.
    RouteRefresh(RouteRefresh),
    /// The established session went down.
    Down(DownReason),
    /// An attempt to establish failed before Established (an OPEN error, a
    /// closed connection...); reported once the last connection is gone.
    AttemptFailed(DownReason),
}

/// Where one connection is in the OPEN exchange.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Connected, our OPEN held back by DelayOpen.
    DelayOpen,
    OpenSent,
    OpenConfirm,
    Established,
}

#[derive(Debug)]
struct Conn {
    id: ConnId,
    phase: Phase,
    framer: Framer,
    open_sent: bool,
    negotiated: Option<Negotiated>,
    timers: Deadlines<ConnTimer>,
    /// Transmits of this connection not yet taken by the driver.
    pending: usize,
    /// The peer's OPEN, held while a collision waits to be resolved by the
    /// peer (see `handle_open`).
    deferred_open: Option<Open>,
}

/// One BGP session, as a deterministic state machine.
///
/// Inputs are `handle_*` calls, each taking the current time; outputs are
/// polled. After any input, a driver:
/// 1. writes every [`poll_transmit`](Session::poll_transmit) to its
///    connection (only taking the next one once the socket accepted the
///    previous one, which is what makes the RFC 9687 send hold timer work);
/// 2. acts on every [`poll_event`](Session::poll_event);
/// 3. sleeps until [`poll_timeout`](Session::poll_timeout) or the next
///    input, and calls [`handle_timeout`](Session::handle_timeout) at that
///    deadline.
///
/// It never does I/O and never reads the clock, so tests drive a pair of
/// sessions on a virtual clock.
#[derive(Debug)]
pub struct Session {
    config: SessionConfig,
    our_open: Open,
    /// Idle, Connect or Active: the state when no connection has sent OPEN.
    base: State,
    started: bool,
    conns: Vec<Conn>,
    transmit: VecDeque<(ConnId, Bytes)>,
    events: VecDeque<SessionEvent>,
    timers: Deadlines<Timer>,
    failures: u32,
    rng: Rng,
    reported: State,
    established_at: Option<Instant>,
    last_down: Option<DownReason>,
}

impl Session {
    /// A session in Idle. `seed` seeds the timer jitter.
    pub fn new(config: SessionConfig, seed: u64) -> Session {
        let our_open = config.open();
        Session {
            config,
            our_open,
            base: State::Idle,
            started: false,
            conns: Vec::new(),
            transmit: VecDeque::new(),
            events: VecDeque::new(),
            timers: Deadlines::default(),
            failures: 0,
            rng: Rng::new(seed),
            reported: State::Idle,
            established_at: None,
            last_down: None,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &SessionConfig {
        &self.config
    }

    /// Replaces the OPEN we send from now on (e.g. to clear the graceful
    /// restart Restart State bit after the first session).
    pub fn set_config(&mut self, config: SessionConfig) {
        self.our_open = config.open();
        self.config = config;
    }

    /// The current state.
    pub fn state(&self) -> State {
        self.conns
            .iter()
            .map(|c| match c.phase {
                Phase::Established => State::Established,
                Phase::OpenConfirm => State::OpenConfirm,
                Phase::OpenSent => State::OpenSent,
                Phase::DelayOpen => self.base,
            })
            .max()
            .unwrap_or(self.base)
            .max(self.base)
    }

    /// What was negotiated, once established.
    pub fn negotiated(&self) -> Option<&Negotiated> {
        self.established().and_then(|c| c.negotiated.as_ref())
    }

    /// When the session became established.
    pub fn established_at(&self) -> Option<Instant> {
        self.established_at
    }

    /// Why the session last went down.
    pub fn last_down(&self) -> Option<&DownReason> {
        self.last_down.as_ref()
    }

    /// Bytes queued for the driver and not yet taken.
    pub fn queued_transmits(&self) -> usize {
        self.transmit.len()
    }

    fn established(&self) -> Option<&Conn> {
        self.conns.iter().find(|c| c.phase == Phase::Established)
    }

    fn conn_mut(&mut self, id: ConnId) -> Option<&mut Conn> {
        self.conns.iter_mut().find(|c| c.id == id)
    }

    /// The connection the next transmit is for, without taking it (a
    /// driver waits for room on that connection first).
    pub fn next_transmit_conn(&self) -> Option<ConnId> {
        self.transmit.front().map(|(id, _)| *id)
    }

    /// Takes every transmit queued for connection `id`, in order: what a
    /// driver writes before closing that connection (the NOTIFICATION that
    /// explains the close may sit behind another connection's messages).
    pub fn take_transmits_for(&mut self, id: ConnId) -> Vec<Bytes> {
        let mut taken = Vec::new();
        self.transmit.retain(|(c, b)| {
            if *c == id {
                taken.push(b.clone());
                false
            } else {
                true
            }
        });
        if let Some(c) = self.conn_mut(id) {
            c.pending = 0;
            c.timers.stop(ConnTimer::SendHold);
        }
        taken
    }

    /// The next bytes to write, on which connection.
    pub fn poll_transmit(&mut self, now: Instant) -> Option<(ConnId, Bytes)> {
        let (id, bytes) = self.transmit.pop_front()?;
        let send_hold = self.config.send_hold_time;
        if let Some(c) = self.conn_mut(id) {
            c.pending = c.pending.saturating_sub(1);
            if c.pending == 0 {
                c.timers.stop(ConnTimer::SendHold);
            } else {
                c.timers.set(ConnTimer::SendHold, now + send_hold);
            }
        }
        Some((id, bytes))
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<SessionEvent> {
        self.events.pop_front()
    }

    /// The next deadline at which [`handle_timeout`](Session::handle_timeout)
    /// must be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.conns
            .iter()
            .filter_map(|c| c.timers.next())
            .chain(self.timers.next())
            .min()
    }

    /// ManualStart / AutomaticStart: leave Idle.
    pub fn handle_start(&mut self, now: Instant) {
        if !self.started {
            self.started = true;
            self.failures = 0;
            self.timers.stop(Timer::IdleHold);
            self.leave_idle(now);
        }
        self.report();
    }

    /// ManualStop: send `notification` (normally Cease / Administrative
    /// Shutdown with a shutdown communication) on every connection, close
    /// them, and stay Idle until the next start.
    pub fn handle_stop(&mut self, now: Instant, notification: Notification) {
        self.started = false;
        for id in self.conns.iter().map(|c| c.id).collect::<Vec<_>>() {
            self.fail(now, id, notification.clone());
        }
        self.base = State::Idle;
        self.timers.clear();
        self.report();
    }

    /// A transport connection is up: ours ([`ConnId::Outbound`], after a
    /// [`SessionEvent::Connect`]) or the peer's ([`ConnId::Inbound`]).
    pub fn handle_connected(&mut self, now: Instant, id: ConnId) {
        let refuse = !self.started
            || (self.base == State::Idle && id == ConnId::Outbound)
            || self.conns.iter().any(|c| c.id == id)
            || (id == ConnId::Outbound && self.config.passive);
        if refuse {
            self.events.push_back(SessionEvent::Close(id));
            self.report();
            return;
        }
        if self.base == State::Idle {
            // Waiting out the idle hold after an error: a connection from
            // the peer restarts us passively (RFC 4271 §8.1.1, event 5,
            // AutomaticStart_with_PassiveTcpEstablishment). Refusing it
            // would keep two active peers failing in lockstep.
            self.timers.stop(Timer::IdleHold);
            self.base = State::Active;
            if !self.config.passive {
                let wait = self.retry_interval();
                self.timers.set(Timer::ConnectRetry, now + wait);
            }
        }
        if id == ConnId::Outbound {
            self.timers.stop(Timer::ConnectRetry);
        }
        let mut conn = Conn {
            id,
            phase: Phase::DelayOpen,
            framer: Framer::new(false),
            open_sent: false,
            negotiated: None,
            timers: Deadlines::default(),
            pending: 0,
            deferred_open: None,
        };
        conn.timers.set(ConnTimer::Hold, now + OPEN_HOLD_TIME);
        if let Some(delay) = self.config.delay_open {
            conn.timers.set(ConnTimer::DelayOpen, now + delay);
            self.conns.push(conn);
        } else {
            self.conns.push(conn);
            self.send_open(now, id);
        }
        self.report();
    }

    /// Our outbound connection attempt failed.
    pub fn handle_connect_failed(&mut self, now: Instant) {
        if self.started && self.base == State::Connect {
            self.failures = self.failures.saturating_add(1);
            self.base = State::Active;
            let wait = self.retry_interval();
            self.timers.set(Timer::ConnectRetry, now + wait);
        }
        self.report();
    }

    /// The transport of connection `id` closed or failed.
    pub fn handle_closed(&mut self, now: Instant, id: ConnId) {
        if self.conns.iter().any(|c| c.id == id) {
            self.conn_down(now, id, DownReason::ConnectionClosed, false);
        }
        self.report();
    }

    /// Bytes arrived on connection `id`.
    pub fn handle_bytes(&mut self, now: Instant, id: ConnId, data: &[u8]) {
        let Some(conn) = self.conn_mut(id) else {
            return;
        };
        conn.framer.push(data);
        while let Some(conn) = self.conn_mut(id) {
            match conn.framer.next_message() {
                Ok(Some(frame)) => self.handle_frame(now, id, &frame),
                Ok(None) => break,
                Err(e) => {
                    self.fail(now, id, e.notification());
                    break;
                }
            }
        }
        self.report();
    }

    /// Call when [`poll_timeout`](Session::poll_timeout) is reached.
    pub fn handle_timeout(&mut self, now: Instant) {
        for timer in self.timers.expire(now) {
            match timer {
                Timer::IdleHold => {
                    if self.started && self.base == State::Idle {
                        self.leave_idle(now);
                    }
                }
                Timer::ConnectRetry => {
                    if self.started
                        && !self.config.passive
                        && !self.conns.iter().any(|c| c.id == ConnId::Outbound)
                    {
                        // An attempt still unanswered when the timer fires
                        // failed too: back off as for a refused one.
                        if self.base == State::Connect {
                            self.failures = self.failures.saturating_add(1);
                        }
                        self.base = State::Connect;
                        self.events.push_back(SessionEvent::Connect);
                        let wait = self.retry_interval();
                        self.timers.set(Timer::ConnectRetry, now + wait);
                    }
                }
            }
        }
        let due: Vec<(ConnId, ConnTimer)> = self
            .conns
            .iter_mut()
            .flat_map(|c| {
                let id = c.id;
                c.timers.expire(now).into_iter().map(move |t| (id, t))
            })
            .collect();
        for (id, timer) in due {
            if !self.conns.iter().any(|c| c.id == id) {
                continue;
            }
            match timer {
                ConnTimer::DelayOpen => self.send_open(now, id),
                ConnTimer::Hold => {
                    self.fail(
                        now,
                        id,
                        Notification::new(notify::HOLD_TIMER_EXPIRED, 0, Vec::new()),
                    );
                }
                ConnTimer::Keepalive => {
                    self.send(now, id, &Message::Keepalive, &DecodeContext::default());
                }
                ConnTimer::SendHold => {
                    // RFC 9687 §3: the peer stopped reading; the NOTIFICATION
                    // is best effort, the connection is closed regardless.
                    let n = Notification::new(notify::SEND_HOLD_TIMER_EXPIRED, 0, Vec::new());
                    self.fail(now, id, n);
                }
            }
        }
        self.report();
    }

    /// Queues an UPDATE on the established connection.
    pub fn send_update(&mut self, now: Instant, update: &Update) -> Result<(), SendError> {
        self.send_established(now, &Message::Update(update.clone()))
    }

    /// Queues an UPDATE that is already encoded, for the session's send
    /// context (an update group encodes once for many sessions). The
    /// caller vouches that `message` is one whole UPDATE built for this
    /// session's negotiated context (4-octet AS, ADD-PATH, size limit).
    pub fn send_encoded(&mut self, now: Instant, message: Bytes) -> Result<(), SendError> {
        let id = self
            .established()
            .map(|c| c.id)
            .ok_or(SendError::NotEstablished)?;
        self.queue(now, id, message);
        Ok(())
    }

    /// Queues a ROUTE-REFRESH on the established connection.
    pub fn send_route_refresh(
        &mut self,
        now: Instant,
        refresh: RouteRefresh,
    ) -> Result<(), SendError> {
        self.send_established(now, &Message::RouteRefresh(refresh))
    }

    fn send_established(&mut self, now: Instant, msg: &Message) -> Result<(), SendError> {
        let (id, ctx) = self
            .established()
            .and_then(|c| c.negotiated.as_ref().map(|n| (c.id, n.tx)))
            .ok_or(SendError::NotEstablished)?;
        let mut out = BytesMut::new();
        msg.encode(&ctx, &mut out)?;
        self.queue(now, id, out.freeze());
        Ok(())
    }

    fn retry_interval(&mut self) -> Duration {
        let b = backoff(
            self.config.connect_retry,
            self.config.connect_retry_max,
            self.failures.saturating_sub(1),
        );
        self.rng.jitter(b)
    }

    fn leave_idle(&mut self, now: Instant) {
        if self.config.passive {
            self.base = State::Active;
        } else {
            self.base = State::Connect;
            self.events.push_back(SessionEvent::Connect);
            let wait = self.retry_interval();
            self.timers.set(Timer::ConnectRetry, now + wait);
        }
    }

    fn queue(&mut self, now: Instant, id: ConnId, bytes: Bytes) {
        let send_hold = self.config.send_hold_time;
        let keepalive = self
            .conns
            .iter()
            .find(|c| c.id == id)
            .and_then(|c| c.negotiated.as_ref()?.keepalive());
        if let Some(c) = self.conn_mut(id) {
            if c.pending == 0 {
                c.timers.set(ConnTimer::SendHold, now + send_hold);
            }
            c.pending = c.pending.saturating_add(1);
            // RFC 4271 §10: any UPDATE or KEEPALIVE restarts the keepalive
            // timer.
            if let Some(k) = keepalive
                && matches!(c.phase, Phase::OpenConfirm | Phase::Established)
            {
                c.timers.set(ConnTimer::Keepalive, now + k);
            }
        }
        self.transmit.push_back((id, bytes));
    }

    fn send(&mut self, now: Instant, id: ConnId, msg: &Message, ctx: &DecodeContext) {
        match msg.to_bytes(ctx) {
            Ok(bytes) => self.queue(now, id, Bytes::from(bytes)),
            // Only our own messages reach here, and they are built to fit.
            Err(_) => self.fail(
                now,
                id,
                Notification::new(notify::CEASE, notify::cease::OUT_OF_RESOURCES, vec![]),
            ),
        }
    }

    fn send_open(&mut self, now: Instant, id: ConnId) {
        let open = Message::Open(self.our_open.clone());
        self.send(now, id, &open, &DecodeContext::default());
        if let Some(c) = self.conn_mut(id) {
            c.open_sent = true;
            c.timers.stop(ConnTimer::DelayOpen);
            if c.phase == Phase::DelayOpen {
                c.phase = Phase::OpenSent;
            }
        }
    }

    /// Sends `n` and closes connection `id`.
    fn fail(&mut self, now: Instant, id: ConnId, n: Notification) {
        self.send(
            now,
            id,
            &Message::Notification(n.clone()),
            &DecodeContext::default(),
        );
        self.conn_down(now, id, DownReason::NotificationSent(n), true);
    }

    fn conn_down(&mut self, now: Instant, id: ConnId, reason: DownReason, close: bool) {
        let Some(pos) = self.conns.iter().position(|c| c.id == id) else {
            return;
        };
        let conn = self.conns.remove(pos);
        // A collision held for the peer to resolve is resolved: the other
        // connection carries on with the OPEN it received.
        let resume = self
            .conns
            .iter_mut()
            .find_map(|c| c.deferred_open.take().map(|o| (c.id, o)));
        if !close {
            // The transport is gone: what we queued for it cannot be sent.
            self.transmit.retain(|(c, _)| *c != id);
        }
        self.events.push_back(SessionEvent::Close(id));
        if conn.phase == Phase::Established {
            self.established_at = None;
            self.events.push_back(SessionEvent::Down(reason.clone()));
        } else if self.conns.is_empty() {
            self.events
                .push_back(SessionEvent::AttemptFailed(reason.clone()));
        }
        self.last_down = Some(reason);
        if self.conns.is_empty() && self.started {
            // Back to Idle, restarting after a growing pause (RFC 4271
            // §8.1.1 DampPeerOscillations).
            self.failures = self.failures.saturating_add(1);
            self.base = State::Idle;
            self.timers.stop(Timer::ConnectRetry);
            let wait = self.retry_interval();
            self.timers.set(Timer::IdleHold, now + wait);
        }
        if let Some((other, open)) = resume {
            self.accept_open(now, other, open);
        }
    }

    fn handle_frame(&mut self, now: Instant, id: ConnId, frame: &[u8]) {
        let Some(conn) = self.conns.iter().find(|c| c.id == id) else {
            return;
        };
        let phase = conn.phase;
        let ctx = conn.negotiated.as_ref().map(|n| n.rx).unwrap_or_default();
        let decoded = match Message::decode(frame, &ctx) {
            Ok(d) => d,
            Err(e) => return self.fail(now, id, e.notification()),
        };
        // Any message from the peer restarts the hold timer (RFC 4271 §8.2.2).
        if let Some(c) = self.conn_mut(id)
            && let Some(hold) = c.negotiated.as_ref().map(|n| n.hold_time)
            && hold > 0
        {
            c.timers
                .set(ConnTimer::Hold, now + Duration::from_secs(u64::from(hold)));
        }
        match (phase, decoded.message) {
            (_, Message::Notification(n)) => {
                self.conn_down(now, id, DownReason::NotificationReceived(n), false);
            }
            (Phase::DelayOpen | Phase::OpenSent, Message::Open(open)) => {
                self.handle_open(now, id, open)
            }
            (Phase::OpenConfirm, Message::Keepalive) => self.establish(now, id),
            (Phase::OpenSent, Message::Keepalive) if self.is_deferred(id) => {
                // The peer accepted the held connection, so it gave up the
                // other one: do the same, then take this KEEPALIVE.
                if let Some(loser) = self.conns.iter().find(|c| c.id != id).map(|c| c.id) {
                    self.fail(now, loser, collision_cease());
                }
                if self.is_deferred(id) {
                    let open = self.conn_mut(id).and_then(|c| c.deferred_open.take());
                    if let Some(open) = open {
                        self.accept_open(now, id, open);
                    }
                }
                self.establish(now, id);
            }
            (Phase::Established, Message::Keepalive) => {}
            (Phase::Established, Message::Update(update)) => {
                self.events.push_back(SessionEvent::Update(UpdateDecode {
                    update,
                    faults: decoded.faults,
                }));
            }
            (Phase::Established, Message::RouteRefresh(r)) => {
                self.events.push_back(SessionEvent::RouteRefresh(r));
            }
            (phase, _) => {
                // RFC 6608 §4: unexpected message, subcode by state.
                let subcode = match phase {
                    Phase::DelayOpen | Phase::OpenSent => 1,
                    Phase::OpenConfirm => 2,
                    Phase::Established => 3,
                };
                self.fail(now, id, Notification::new(notify::FSM, subcode, Vec::new()));
            }
        }
    }

    fn report(&mut self) {
        let now_state = self.state();
        if now_state != self.reported {
            self.events.push_back(SessionEvent::StateChanged {
                from: self.reported,
                to: now_state,
            });
            self.reported = now_state;
        }
    }
}

/// Why a message could not be queued.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// Routes are only sent on an established session.
    #[error("the session is not established")]
    NotEstablished,
    /// The message does not encode under the negotiated context.
    #[error(transparent)]
    Encode(#[from] EncodeError),
}
