//! One simulated client: its session, the routes it holds, its counters.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bgp_core::wire::iana::{afi, attr as code, msg_type, safi};
use bgp_core::wire::{
    AttrValue, Capability, DecodeContext, FaultAction, Framer, Message, NextHop, Notification,
    OpenCheck, Prefix, Update,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::time::Instant;

use super::*;

/// What the main task tells every client to do next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    Setup,
    Announce,
    Withdraw,
    Close,
}

/// What clients tell the main task, with the Unix time it happened.
#[derive(Debug)]
pub(crate) enum Event {
    Established(u64),
    /// Time read just before the announcement was written.
    Announced(u64),
    /// The client holds all C × B routes.
    Complete(u32, u64),
    /// It held them all and lost some.
    Incomplete(u32),
    /// The withdrawer's UPDATE is written (time read just before).
    Withdrew(u64),
    /// A client other than the withdrawer holds none of its blocks.
    Removed(u64),
    Failed(u32, String),
}

/// What the clients received, summed over all of them.
#[derive(Default)]
pub(crate) struct Counters {
    /// Socket reads that returned data (after Established).
    pub(crate) reads: AtomicU64,
    pub(crate) updates: AtomicU64,
    pub(crate) announced: AtomicU64,
    pub(crate) withdrawn: AtomicU64,
    /// Announcements of a route the client already held.
    pub(crate) duplicates: AtomicU64,
    /// The client's own blocks sent back to it (announced or withdrawn).
    pub(crate) echoed: AtomicU64,
    /// Prefixes that are nobody's block.
    pub(crate) unexpected: AtomicU64,
    /// Announcements whose NEXT_HOP is not the owner's address (not held).
    pub(crate) wrong_next_hop: AtomicU64,
    /// Withdrawals of a route the client did not hold.
    pub(crate) unheld_withdrawals: AtomicU64,
    /// Prefixes of UPDATEs that RFC 7606 says to treat as withdrawn.
    pub(crate) treated_as_withdraw: AtomicU64,
    /// Routes held by all clients together.
    pub(crate) held: AtomicU64,
}

impl Counters {
    pub(crate) fn line(&self) -> String {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        format!(
            "reads={} updates={} announced={} withdrawn={} duplicates={} echoed={} unexpected={} \
             wrong_next_hop={} unheld_withdrawals={} treated_as_withdraw={}",
            g(&self.reads),
            g(&self.updates),
            g(&self.announced),
            g(&self.withdrawn),
            g(&self.duplicates),
            g(&self.echoed),
            g(&self.unexpected),
            g(&self.wrong_next_hop),
            g(&self.unheld_withdrawals),
            g(&self.treated_as_withdraw)
        )
    }
}

/// Counts of one client, added to the shared [`Counters`] after each read.
#[derive(Default)]
pub(crate) struct Local {
    pub(crate) reads: u64,
    pub(crate) updates: u64,
    pub(crate) announced: u64,
    pub(crate) withdrawn: u64,
    pub(crate) duplicates: u64,
    pub(crate) echoed: u64,
    pub(crate) unexpected: u64,
    pub(crate) wrong_next_hop: u64,
    pub(crate) unheld_withdrawals: u64,
    pub(crate) treated_as_withdraw: u64,
    pub(crate) held_delta: i64,
}

impl Local {
    pub(crate) fn flush(&mut self, c: &Counters) {
        let add = |a: &AtomicU64, v: u64| {
            if v != 0 {
                a.fetch_add(v, Ordering::Relaxed);
            }
        };
        add(&c.reads, self.reads);
        add(&c.updates, self.updates);
        add(&c.announced, self.announced);
        add(&c.withdrawn, self.withdrawn);
        add(&c.duplicates, self.duplicates);
        add(&c.echoed, self.echoed);
        add(&c.unexpected, self.unexpected);
        add(&c.wrong_next_hop, self.wrong_next_hop);
        add(&c.unheld_withdrawals, self.unheld_withdrawals);
        add(&c.treated_as_withdraw, self.treated_as_withdraw);
        if self.held_delta >= 0 {
            add(&c.held, self.held_delta as u64);
        } else {
            c.held
                .fetch_sub(self.held_delta.unsigned_abs(), Ordering::Relaxed);
        }
        *self = Local::default();
    }
}

/// One client's view of the routes: a bit per route of the plan.
pub(crate) struct Rib {
    pub(crate) plan: Plan,
    pub(crate) me: u32,
    pub(crate) withdrawer: u32,
    pub(crate) bits: Vec<u64>,
    pub(crate) held: u32,
    /// How many of the withdrawer's blocks are held.
    pub(crate) withdrawer_held: u32,
    pub(crate) local: Local,
}

impl Rib {
    pub(crate) fn new(plan: Plan, me: u32, withdrawer: u32) -> Rib {
        Rib {
            plan,
            me,
            withdrawer,
            bits: vec![0; plan.routes().div_ceil(64) as usize],
            held: 0,
            withdrawer_held: 0,
            local: Local::default(),
        }
    }

    /// Sets or clears route `r`; returns whether it changed.
    pub(crate) fn set(&mut self, r: u32, on: bool) -> bool {
        let (word, bit) = ((r / 64) as usize, 1u64 << (r % 64));
        let was = self.bits[word] & bit != 0;
        if was == on {
            return false;
        }
        self.bits[word] ^= bit;
        let delta: i32 = if on { 1 } else { -1 };
        self.held = self.held.wrapping_add_signed(delta);
        self.local.held_delta += i64::from(delta);
        if self.plan.owner(r) == self.withdrawer {
            self.withdrawer_held = self.withdrawer_held.wrapping_add_signed(delta);
        }
        true
    }

    /// Our own blocks: held from the moment we announce them until we
    /// withdraw them, whatever the reflector says about them.
    pub(crate) fn set_own(&mut self, on: bool) {
        let first = self.me * self.plan.blocks;
        for r in first..first + self.plan.blocks {
            self.set(r, on);
        }
    }

    pub(crate) fn announce(&mut self, p: &Prefix, next_hop: Option<Ipv4Addr>) {
        self.local.announced += 1;
        let Some(r) = self.plan.route_of(p) else {
            self.local.unexpected += 1;
            return;
        };
        let owner = self.plan.owner(r);
        if owner == self.me {
            self.local.echoed += 1;
        } else if next_hop != Some(self.plan.address(owner)) {
            // Not a usable route; it replaces whatever was held (RFC 4271
            // §9.1.4: an announcement implicitly withdraws the old path).
            self.local.wrong_next_hop += 1;
            self.set(r, false);
        } else if !self.set(r, true) {
            self.local.duplicates += 1;
        }
    }

    pub(crate) fn withdraw(&mut self, p: &Prefix) {
        self.local.withdrawn += 1;
        let Some(r) = self.plan.route_of(p) else {
            self.local.unexpected += 1;
            return;
        };
        if self.plan.owner(r) == self.me {
            self.local.echoed += 1;
        } else if !self.set(r, false) {
            self.local.unheld_withdrawals += 1;
        }
    }

    /// Applies one decoded UPDATE (RFC 4271 §9, RFC 7606 treat-as-withdraw).
    pub(crate) fn apply(&mut self, u: &Update, treat_as_withdraw: bool) {
        self.local.updates += 1;
        for p in u.withdrawals() {
            self.withdraw(p);
        }
        if treat_as_withdraw {
            for p in u.announced() {
                self.local.treated_as_withdraw += 1;
                self.withdraw(p);
            }
            return;
        }
        let next_hop = match u.attribute(code::NEXT_HOP) {
            Some(AttrValue::NextHop(nh)) => Some(*nh),
            _ => None,
        };
        for p in &u.nlri {
            self.announce(p, next_hop);
        }
        if let Some(mp) = u.mp_reach() {
            let next_hop = match mp.next_hop {
                NextHop::Ipv4(nh) => Some(nh),
                _ => None,
            };
            for p in mp.nlri.prefixes() {
                self.announce(p, next_hop);
            }
        }
    }

    pub(crate) fn complete(&self) -> bool {
        self.held == self.plan.routes()
    }
}

/// Why a client stopped.
pub(crate) type Failure = String;

/// Connects and runs the OPEN exchange (RFC 4271 §8.2.2) up to Established;
/// returns the stream, the framer holding whatever came after the
/// KEEPALIVE, and the negotiated hold time.
pub(crate) async fn establish(
    id: u32,
    args: &Args,
    enc: &Encoded,
    permits: &Semaphore,
) -> Result<(TcpStream, Framer, u16), Failure> {
    let _permit = permits.acquire().await.map_err(|e| e.to_string())?;
    let addr = args.plan.address(id);
    let socket = TcpSocket::new_v4().map_err(|e| match e.raw_os_error() {
        Some(24) => format!(
            "socket: {e}: raise the open-file limit (ulimit -n) above {}",
            args.plan.clients + 64
        ),
        _ => format!("socket: {e}"),
    })?;
    socket
        .bind(SocketAddr::new(addr.into(), 0))
        .map_err(|e| format!("bind {addr}: {e} (is the address on an interface?)"))?;
    let mut stream = socket
        .connect(args.reflector.into())
        .await
        .map_err(|e| format!("connect {}: {e}", args.reflector))?;
    let _ = stream.set_nodelay(true);
    stream
        .write_all(&enc.open)
        .await
        .map_err(|e| format!("write OPEN: {e}"))?;
    let mut framer = Framer::new(false);
    let ctx = DecodeContext::ibgp();
    let check = OpenCheck {
        local_as: args.local_as,
        local_id: addr,
        expected_peer_as: Some(args.local_as),
        required: vec![
            Capability::Multiprotocol {
                afi: afi::IPV4,
                safi: safi::UNICAST,
            },
            Capability::FourOctetAs(args.local_as),
        ],
    };
    let mut hold = None;
    loop {
        let raw = loop {
            match framer.next_message() {
                Ok(Some(raw)) => break raw,
                Ok(None) => {}
                Err(e) => return Err(notify(&mut stream, e.notification()).await),
            }
            framer.buffer_mut().reserve(4096);
            match stream.read_buf(framer.buffer_mut()).await {
                Ok(0) => return Err("the reflector closed the connection during OPEN".into()),
                Ok(_) => {}
                Err(e) => return Err(format!("read: {e}")),
            }
        };
        let message = match Message::decode(&raw, &ctx) {
            Ok(d) => d.message,
            Err(e) => return Err(notify(&mut stream, e.notification()).await),
        };
        match (message, hold) {
            (Message::Open(open), None) => {
                if let Err(e) = open.check(&check) {
                    return Err(notify(&mut stream, e.notification()).await);
                }
                // RFC 4271 §4.2: 0 or at least 3 seconds; the smaller wins.
                if matches!(open.hold_time, 1 | 2) {
                    let n = bgp_core::wire::OpenError::UnacceptableHoldTime {
                        hold_time: open.hold_time,
                    };
                    return Err(notify(&mut stream, n.notification()).await);
                }
                hold = Some(open.hold_time.min(HOLD_TIME));
                stream
                    .write_all(&enc.keepalive)
                    .await
                    .map_err(|e| format!("write KEEPALIVE: {e}"))?;
            }
            (Message::Keepalive, Some(hold)) => return Ok((stream, framer, hold)),
            (Message::Notification(n), _) => return Err(format!("the reflector sent {n}")),
            (other, _) => {
                let fsm = Notification::new(bgp_core::wire::iana::notify::FSM, 0, Vec::new());
                let why = notify(&mut stream, fsm).await;
                return Err(format!("{why} after an unexpected {other:?}"));
            }
        }
    }
}

/// Sends `n` (best effort) and returns the failure to report.
pub(crate) async fn notify(stream: &mut TcpStream, n: Notification) -> Failure {
    if let Ok(bytes) = Message::Notification(n.clone()).to_bytes(&DecodeContext::ibgp()) {
        let _ = stream.write_all(&bytes).await;
    }
    format!("we sent {n}")
}

/// One client from connect to Cease.
pub(crate) async fn client(
    id: u32,
    args: Arc<Args>,
    enc: Encoded,
    permits: Arc<Semaphore>,
    mut phase: watch::Receiver<Phase>,
    events: mpsc::UnboundedSender<Event>,
    counters: Arc<Counters>,
) {
    if let Err(why) = run_client(id, &args, &enc, &permits, &mut phase, &events, &counters).await {
        let _ = events.send(Event::Failed(id, why));
    }
}

pub(crate) async fn run_client(
    id: u32,
    args: &Args,
    enc: &Encoded,
    permits: &Semaphore,
    phase: &mut watch::Receiver<Phase>,
    events: &mpsc::UnboundedSender<Event>,
    counters: &Counters,
) -> Result<(), Failure> {
    let (mut stream, mut framer, hold) = establish(id, args, enc, permits).await?;
    let _ = events.send(Event::Established(unix_ns()));

    let ctx = DecodeContext::ibgp();
    let mut rib = Rib::new(args.plan, id, args.withdrawer);
    let (mut announced, mut was_complete, mut removed) = (false, false, false);
    let hold = Duration::from_secs(u64::from(hold));
    // RFC 4271 §4.4: KEEPALIVEs a third of the hold time apart, none if 0.
    let period = if hold.is_zero() {
        Duration::from_secs(86400)
    } else {
        hold / 3
    };
    let mut keepalive = tokio::time::interval_at(Instant::now() + period, period);
    let mut last_heard = Instant::now();
    // Whatever arrived right behind the KEEPALIVE is handled first.
    let mut pending = framer.buffered() > 0;
    loop {
        if !pending {
            tokio::select! {
                read = async {
                    framer.buffer_mut().reserve(16 * 1024);
                    stream.read_buf(framer.buffer_mut()).await
                } => match read {
                    Ok(0) => return Err("the reflector closed the session".into()),
                    Ok(_) => {
                        last_heard = Instant::now();
                        rib.local.reads += 1;
                    }
                    Err(e) => return Err(format!("read: {e}")),
                },
                _ = keepalive.tick() => {
                    // RFC 4271 §6.5, checked at each KEEPALIVE (so up to a
                    // third of the hold time late).
                    let silent = last_heard.elapsed();
                    if !hold.is_zero() && silent > hold {
                        let n = Notification::new(bgp_core::wire::iana::notify::HOLD_TIMER_EXPIRED, 0, Vec::new());
                        let sent = notify(&mut stream, n).await;
                        return Err(format!(
                            "hold timer expired: nothing from the reflector for {:.0} s (hold time {} s); {sent}",
                            silent.as_secs_f64(),
                            hold.as_secs()
                        ));
                    }
                    stream.write_all(&enc.keepalive).await.map_err(|e| format!("write KEEPALIVE: {e}"))?;
                    continue;
                }
                changed = phase.changed() => {
                    if changed.is_err() {
                        return Ok(());
                    }
                    let now = *phase.borrow_and_update();
                    match now {
                        Phase::Setup => {}
                        Phase::Announce if !announced => {
                            announced = true;
                            rib.set_own(true);
                            let at = unix_ns();
                            stream.write_all(&enc.announce).await.map_err(|e| format!("write UPDATE: {e}"))?;
                            let _ = events.send(Event::Announced(at));
                        }
                        Phase::Announce => {}
                        Phase::Withdraw if id == args.withdrawer => {
                            rib.set_own(false);
                            let at = unix_ns();
                            stream.write_all(&enc.withdraw).await.map_err(|e| format!("write UPDATE: {e}"))?;
                            let _ = events.send(Event::Withdrew(at));
                        }
                        Phase::Withdraw => {}
                        Phase::Close => {
                            let _ = notify(&mut stream, Notification::admin_shutdown("benchmark done")).await;
                            let _ = stream.shutdown().await;
                            return Ok(());
                        }
                    }
                }
            }
        }
        pending = false;
        while let Some(raw) = framer.next_message().map_err(|e| format!("framing: {e}"))? {
            if raw.get(18) == Some(&msg_type::KEEPALIVE) {
                continue;
            }
            let decoded = match Message::decode(&raw, &ctx) {
                Ok(d) => d,
                Err(e) => return Err(notify(&mut stream, e.notification()).await),
            };
            match decoded.message {
                Message::Update(u) => {
                    let taw = decoded
                        .faults
                        .iter()
                        .any(|f| f.action == FaultAction::TreatAsWithdraw);
                    rib.apply(&u, taw);
                }
                Message::Notification(n) => return Err(format!("the reflector sent {n}")),
                // We advertised no route refresh; a stray request is ignored.
                Message::RouteRefresh(_) | Message::Keepalive => {}
                Message::Open(_) => {
                    let fsm = Notification::new(bgp_core::wire::iana::notify::FSM, 0, Vec::new());
                    return Err(notify(&mut stream, fsm).await);
                }
            }
        }
        rib.local.flush(counters);
        let now = unix_ns();
        let complete = announced && rib.complete();
        if complete != was_complete {
            was_complete = complete;
            let _ = events.send(if complete {
                Event::Complete(id, now)
            } else {
                Event::Incomplete(id)
            });
        }
        if !removed
            && id != args.withdrawer
            && *phase.borrow() == Phase::Withdraw
            && rib.withdrawer_held == 0
        {
            removed = true;
            let _ = events.send(Event::Removed(now));
        }
    }
}
