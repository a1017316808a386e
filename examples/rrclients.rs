//! Route-reflector load: C simulated iBGP clients in one process, each
//! announcing B /26 blocks to one reflector, timed until every client holds
//! every client's blocks, then until one client's withdrawal has reached
//! every other client. The measuring half of `bench/reflector.sh`.
//!
//! ```sh
//! rrclients --reflector 10.81.0.1:179 --first-address 10.82.0.1 --clients 1000 \
//!           --blocks 10 --local-as 64512 --timeout 300 --watch-pid 4242
//! ```
//!
//! Client `i` connects from `--first-address + i` (the socket is bound to that
//! address before it connects; every address must already be on an interface)
//! and is a plain iBGP speaker: OPEN with the 4-octet AS and IPv4 unicast
//! multiprotocol capabilities, hold time 240 s (the smaller of the two
//! proposals is used; a KEEPALIVE every third of it, and the session fails if
//! the reflector is silent longer than the hold time). Its blocks are the
//! /26s number `i * B .. (i + 1) * B` counted from `--prefix-start`
//! (10.200.0.0), announced in one UPDATE with ORIGIN IGP, empty AS_PATH,
//! NEXT_HOP = the client's address and LOCAL_PREF 100, followed by
//! End-of-RIB. Every UPDATE is encoded with `bgp_core::wire` before the first
//! connection.
//!
//! Phases, each reported on stderr as one `rrclients: EVENT key=value ...`
//! line with Unix times in nanoseconds:
//!
//! 1. **setup**: connect every client (at most `--parallel` handshakes in
//!    flight) until all are Established. Then wait `--settle` seconds and,
//!    with `--watch-pid`, until the reflector is idle (under 5% of a CPU for
//!    250 ms; at most 30 s more), so the next phase starts from a quiet
//!    reflector.
//! 2. **converge**: every client sends its UPDATE when one barrier opens;
//!    t0 is the moment the first one is handed to the kernel (read just
//!    before the write). Each client decodes everything the reflector sends
//!    and keeps a bit per route (its own blocks count as held from the moment
//!    it announces them; the reflector sending them back changes nothing, and
//!    a route is only held if its NEXT_HOP is its owner's address, as
//!    reflection must leave it). t1 is when the last client holds all C × B.
//! 3. **withdraw**: after settling again, client `--withdrawer` (0) withdraws
//!    its blocks in one UPDATE at tw; t2 is when every other client has
//!    removed all of them.
//!
//! The summary line gives setup (last Established − first connect),
//! convergence (t1 − t0) and withdrawal (t2 − tw) in seconds, counters of
//! what the clients received, this process's CPU time, and with
//! `--watch-pid PID` the reflector's CPU time over each phase (the sum of
//! `/proc/PID/task/*/schedstat`, sampled just before t0 and at t1, before tw
//! and at t2; `cpu_stat` is the same from utime + stime in `/proc/PID/stat`,
//! which also keeps threads that exited, at 10 ms resolution) and its peak
//! RSS (VmHWM) read before the clients close their sessions with a Cease.
//!
//! `--timeout` limits each phase. On a timeout, a failed session, or
//! SIGTERM / SIGINT the summary says `result=timeout`, `failed` or
//! `terminated`, which phase, and how many clients were complete, and the
//! exit status is 1 (2 for bad arguments).

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::process::exit;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bgp_core::wire::iana::{afi, attr as code, msg_type, safi};
use bgp_core::wire::{
    AsPath, AttrValue, Capability, DecodeContext, Family, FaultAction, Framer, Message, NextHop,
    Notification, Open, OpenCheck, Origin, PathAttribute, Prefix, Update,
};
use ipnetwork::{IpNetwork, Ipv4Network};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::time::Instant;

/// The hold time every client proposes (RFC 4271 §4.2).
const HOLD_TIME: u16 = 240;
/// Each block is a /26.
const BLOCK_LEN: u8 = 26;
const BLOCK_SIZE: u32 = 1 << (32 - BLOCK_LEN);
/// The longest wait for an idle reflector between phases.
const SETTLE_LIMIT: Duration = Duration::from_secs(30);
/// Progress lines come this often during a long phase.
const PROGRESS_EVERY: Duration = Duration::from_secs(10);

const USAGE: &str = "usage: rrclients --reflector ADDR:PORT --first-address ADDR --clients C \
[--blocks 10] [--local-as 64512] [--prefix-start 10.200.0.0] [--timeout 120] [--parallel 64] \
[--settle 1] [--withdrawer 0] [--watch-pid PID] [--threads 2]";

struct Args {
    reflector: SocketAddrV4,
    plan: Plan,
    local_as: u32,
    timeout: Duration,
    parallel: usize,
    settle: Duration,
    withdrawer: u32,
    watch_pid: Option<u32>,
    threads: usize,
}

fn fail(msg: &str) -> ! {
    eprintln!("rrclients: {msg}");
    exit(2)
}

fn parse<T: std::str::FromStr>(flag: &str, value: Option<String>) -> T
where
    T::Err: std::fmt::Display,
{
    let Some(value) = value else {
        fail(&format!("{flag} needs a value\n{USAGE}"))
    };
    value
        .parse()
        .unwrap_or_else(|e| fail(&format!("{flag} {value}: {e}")))
}

fn seconds(flag: &str, value: Option<String>) -> Duration {
    let s: f64 = parse(flag, value);
    if !(s.is_finite() && s >= 0.0) {
        fail(&format!("{flag} must be a number of seconds"));
    }
    Duration::from_secs_f64(s)
}

fn parse_args() -> Args {
    let (mut reflector, mut first, mut clients) = (None, None, None);
    let mut blocks = 10u32;
    let mut local_as = 64512u32;
    let mut prefix_start = Ipv4Addr::new(10, 200, 0, 0);
    let mut timeout = Duration::from_secs(120);
    let mut parallel = 64usize;
    let mut settle = Duration::from_secs(1);
    let mut withdrawer = 0u32;
    let mut watch_pid = None;
    let mut threads = 2usize;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        if flag == "--help" || flag == "-h" {
            eprintln!("{USAGE}");
            exit(0);
        }
        let value = args.next();
        match flag.as_str() {
            "--reflector" => reflector = Some(parse::<SocketAddrV4>(&flag, value)),
            "--first-address" => first = Some(parse::<Ipv4Addr>(&flag, value)),
            "--clients" => clients = Some(parse::<u32>(&flag, value)),
            "--blocks" => blocks = parse(&flag, value),
            "--local-as" => local_as = parse(&flag, value),
            "--prefix-start" => prefix_start = parse(&flag, value),
            "--timeout" => timeout = seconds(&flag, value),
            "--parallel" => parallel = parse(&flag, value),
            "--settle" => settle = seconds(&flag, value),
            "--withdrawer" => withdrawer = parse(&flag, value),
            "--watch-pid" => watch_pid = Some(parse(&flag, value)),
            "--threads" => threads = parse(&flag, value),
            _ => fail(&format!("unknown argument {flag}\n{USAGE}")),
        }
    }
    let need = |what: &str| -> ! { fail(&format!("{what} is required\n{USAGE}")) };
    let reflector = reflector.unwrap_or_else(|| need("--reflector"));
    let first = first.unwrap_or_else(|| need("--first-address"));
    let clients = clients.unwrap_or_else(|| need("--clients"));
    let plan = Plan::new(clients, blocks, first, prefix_start).unwrap_or_else(|e| fail(&e));
    if withdrawer >= clients {
        fail("--withdrawer must be less than --clients");
    }
    if clients < 2 {
        fail("--clients must be at least 2 (one withdraws, the others watch)");
    }
    if parallel == 0 || threads == 0 {
        fail("--parallel and --threads must be at least 1");
    }
    Args {
        reflector,
        plan,
        local_as,
        timeout,
        parallel,
        settle,
        withdrawer,
        watch_pid,
        threads,
    }
}

/// Who has which address and which blocks. Route `g` (0 ≤ g < C × B) is the
/// `g`-th /26 from the prefix start and belongs to client `g / B`.
#[derive(Clone, Copy, Debug)]
struct Plan {
    clients: u32,
    blocks: u32,
    first_address: u32,
    prefix_start: u32,
}

impl Plan {
    fn new(clients: u32, blocks: u32, first: Ipv4Addr, start: Ipv4Addr) -> Result<Plan, String> {
        let (first_address, prefix_start) = (u32::from(first), u32::from(start));
        if clients == 0 || blocks == 0 {
            return Err("--clients and --blocks must be at least 1".into());
        }
        if first_address.checked_add(clients).is_none() {
            return Err("--first-address + --clients runs past 255.255.255.255".into());
        }
        if prefix_start % BLOCK_SIZE != 0 {
            return Err(format!(
                "--prefix-start {start} is not a /{BLOCK_LEN} boundary"
            ));
        }
        let routes = u64::from(clients) * u64::from(blocks);
        if u64::from(prefix_start) + routes * u64::from(BLOCK_SIZE) > 1 << 32 {
            return Err(format!(
                "{routes} /{BLOCK_LEN} blocks from {start} run past 255.255.255.255"
            ));
        }
        // One UPDATE per client: 4 bytes per /26 after ~50 bytes of header
        // and attributes must fit 4096 (RFC 4271 §4.1).
        if blocks > 1000 {
            return Err("--blocks must be at most 1000 (one UPDATE per client)".into());
        }
        Ok(Plan {
            clients,
            blocks,
            first_address,
            prefix_start,
        })
    }

    fn routes(&self) -> u32 {
        self.clients * self.blocks
    }

    fn address(&self, client: u32) -> Ipv4Addr {
        Ipv4Addr::from(self.first_address + client)
    }

    fn block(&self, route: u32) -> Prefix {
        let addr = Ipv4Addr::from(self.prefix_start + route * BLOCK_SIZE);
        let net = Ipv4Network::new(addr, BLOCK_LEN).expect("a /26 is a valid length");
        Prefix::new(IpNetwork::V4(net))
    }

    /// The route number of `p`, if it is one of ours.
    fn route_of(&self, p: &Prefix) -> Option<u32> {
        let IpNetwork::V4(net) = p.network else {
            return None;
        };
        if net.prefix() != BLOCK_LEN || p.path_id.is_some() {
            return None;
        }
        let offset = u32::from(net.ip()).checked_sub(self.prefix_start)?;
        let route = offset / BLOCK_SIZE;
        (offset % BLOCK_SIZE == 0 && route < self.routes()).then_some(route)
    }

    fn owner(&self, route: u32) -> u32 {
        route / self.blocks
    }
}

fn unix_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

fn secs(ns: u64) -> String {
    format!("{:.3}", ns as f64 / 1e9)
}

/// The messages a client sends, encoded once before any connection.
struct Encoded {
    open: Vec<u8>,
    keepalive: Vec<u8>,
    /// Its UPDATE with all its blocks, then End-of-RIB.
    announce: Vec<u8>,
    /// One UPDATE withdrawing all its blocks.
    withdraw: Vec<u8>,
}

fn encode(plan: &Plan, local_as: u32, client: u32) -> Encoded {
    let ctx = DecodeContext::ibgp();
    let addr = plan.address(client);
    let to_bytes = |m: &Message| {
        m.to_bytes(&ctx)
            .unwrap_or_else(|e| fail(&format!("cannot encode {m:?}: {e}")))
    };
    let blocks: Vec<Prefix> = (client * plan.blocks..(client + 1) * plan.blocks)
        .map(|r| plan.block(r))
        .collect();
    let open = Message::Open(Open::new(
        local_as,
        HOLD_TIME,
        addr,
        vec![
            Capability::Multiprotocol {
                afi: afi::IPV4,
                safi: safi::UNICAST,
            },
            Capability::FourOctetAs(local_as),
        ],
    ));
    let mut announce = to_bytes(&Message::Update(Update {
        withdrawn: Vec::new(),
        attributes: vec![
            PathAttribute::new(AttrValue::Origin(Origin::Igp)),
            PathAttribute::new(AttrValue::AsPath(AsPath::default())),
            PathAttribute::new(AttrValue::NextHop(addr)),
            PathAttribute::new(AttrValue::LocalPref(100)),
        ],
        nlri: blocks.clone(),
    }));
    announce.extend(to_bytes(&Message::Update(Update::end_of_rib_marker(
        Family::Ipv4Unicast,
    ))));
    Encoded {
        open: to_bytes(&open),
        keepalive: to_bytes(&Message::Keepalive),
        announce,
        withdraw: to_bytes(&Message::Update(Update {
            withdrawn: blocks,
            ..Update::default()
        })),
    }
}

/// What the main task tells every client to do next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Setup,
    Announce,
    Withdraw,
    Close,
}

/// What clients tell the main task, with the Unix time it happened.
#[derive(Debug)]
enum Event {
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
struct Counters {
    /// Socket reads that returned data (after Established).
    reads: AtomicU64,
    updates: AtomicU64,
    announced: AtomicU64,
    withdrawn: AtomicU64,
    /// Announcements of a route the client already held.
    duplicates: AtomicU64,
    /// The client's own blocks sent back to it (announced or withdrawn).
    echoed: AtomicU64,
    /// Prefixes that are nobody's block.
    unexpected: AtomicU64,
    /// Announcements whose NEXT_HOP is not the owner's address (not held).
    wrong_next_hop: AtomicU64,
    /// Withdrawals of a route the client did not hold.
    unheld_withdrawals: AtomicU64,
    /// Prefixes of UPDATEs that RFC 7606 says to treat as withdrawn.
    treated_as_withdraw: AtomicU64,
    /// Routes held by all clients together.
    held: AtomicU64,
}

impl Counters {
    fn line(&self) -> String {
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
struct Local {
    reads: u64,
    updates: u64,
    announced: u64,
    withdrawn: u64,
    duplicates: u64,
    echoed: u64,
    unexpected: u64,
    wrong_next_hop: u64,
    unheld_withdrawals: u64,
    treated_as_withdraw: u64,
    held_delta: i64,
}

impl Local {
    fn flush(&mut self, c: &Counters) {
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
struct Rib {
    plan: Plan,
    me: u32,
    withdrawer: u32,
    bits: Vec<u64>,
    held: u32,
    /// How many of the withdrawer's blocks are held.
    withdrawer_held: u32,
    local: Local,
}

impl Rib {
    fn new(plan: Plan, me: u32, withdrawer: u32) -> Rib {
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
    fn set(&mut self, r: u32, on: bool) -> bool {
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
    fn set_own(&mut self, on: bool) {
        let first = self.me * self.plan.blocks;
        for r in first..first + self.plan.blocks {
            self.set(r, on);
        }
    }

    fn announce(&mut self, p: &Prefix, next_hop: Option<Ipv4Addr>) {
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

    fn withdraw(&mut self, p: &Prefix) {
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
    fn apply(&mut self, u: &Update, treat_as_withdraw: bool) {
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

    fn complete(&self) -> bool {
        self.held == self.plan.routes()
    }
}

/// Why a client stopped.
type Failure = String;

/// Connects and runs the OPEN exchange (RFC 4271 §8.2.2) up to Established;
/// returns the stream, the framer holding whatever came after the
/// KEEPALIVE, and the negotiated hold time.
async fn establish(
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
async fn notify(stream: &mut TcpStream, n: Notification) -> Failure {
    if let Ok(bytes) = Message::Notification(n.clone()).to_bytes(&DecodeContext::ibgp()) {
        let _ = stream.write_all(&bytes).await;
    }
    format!("we sent {n}")
}

/// One client from connect to Cease.
async fn client(
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

async fn run_client(
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

/// CPU time and memory of a process, from /proc.
#[derive(Clone, Copy, Debug)]
struct Usage {
    /// Sum of the first field of /proc/PID/task/*/schedstat (ns on a CPU).
    sched_ns: u64,
    /// utime + stime of /proc/PID/stat, in clock ticks (1/100 s).
    ticks: u64,
}

fn usage(pid: &str) -> Option<Usage> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    let sched_ns = tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum();
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces): state is
    // field 3, utime 14 and stime 15 (proc(5)).
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    Some(Usage { sched_ns, ticks })
}

fn peak_rss_mb(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse::<f64>()
        .ok()?;
    Some(kb / 1024.0)
}

/// The soft limit on open files, from /proc/self/limits.
fn open_file_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// The run's measurements, printed as the summary line.
#[derive(Default)]
struct Report {
    phase: &'static str,
    setup_ns: Option<u64>,
    converge_ns: Option<u64>,
    withdraw_ns: Option<u64>,
    cpu_converge: Option<(u64, u64)>,
    cpu_withdraw: Option<(u64, u64)>,
    complete: usize,
}

/// Reads the watched process's usage, if one is watched.
struct Watch(Option<u32>);

impl Watch {
    fn usage(&self) -> Option<Usage> {
        usage(&self.0?.to_string())
    }

    /// CPU used since `before`, as (schedstat ns, stat ticks).
    fn since(&self, before: Option<Usage>) -> Option<(u64, u64)> {
        let (b, a) = (before?, self.usage()?);
        Some((
            a.sched_ns.saturating_sub(b.sched_ns),
            a.ticks.saturating_sub(b.ticks),
        ))
    }

    /// Waits `min`, then until the process used under 5% of a CPU over
    /// 250 ms (at most `limit`). Returns the time waited and whether it
    /// went idle (None: nothing watched).
    async fn settle(&self, min: Duration, limit: Duration) -> (Duration, Option<bool>) {
        let start = Instant::now();
        tokio::time::sleep(min).await;
        if self.0.is_none() {
            return (start.elapsed(), None);
        }
        let window = Duration::from_millis(250);
        loop {
            let before = self.usage();
            tokio::time::sleep(window).await;
            match self.since(before) {
                Some((ns, _)) if ns < window.as_nanos() as u64 / 20 => {
                    return (start.elapsed(), Some(true));
                }
                Some(_) if start.elapsed() < limit => {}
                _ => return (start.elapsed(), Some(false)),
            }
        }
    }
}

fn print_summary(args: &Args, result: &str, r: &Report, counters: &Counters) {
    let time = |v: Option<u64>| v.map_or("-".to_string(), secs);
    let sched = |v: Option<(u64, u64)>| v.map_or("-".to_string(), |(ns, _)| secs(ns));
    let ticks = |v: Option<(u64, u64)>| {
        v.map_or("-".to_string(), |(_, t)| format!("{:.2}", t as f64 / 100.0))
    };
    let rss = args
        .watch_pid
        .and_then(peak_rss_mb)
        .map_or("-".into(), |m| format!("{m:.1}"));
    let own = usage("self").map_or("-".into(), |u| format!("{:.2}", u.ticks as f64 / 100.0));
    eprintln!(
        "rrclients: summary result={result} phase={} clients={} blocks={} complete={} \
         setup_s={} converge_s={} withdraw_s={} reflector_cpu_converge_s={} \
         reflector_cpu_stat_converge_s={} reflector_cpu_withdraw_s={} \
         reflector_cpu_stat_withdraw_s={} reflector_peak_rss_mb={rss} client_cpu_s={own} {} \
         at_ns={}",
        r.phase,
        args.plan.clients,
        args.plan.blocks,
        r.complete,
        time(r.setup_ns),
        time(r.converge_ns),
        time(r.withdraw_ns),
        sched(r.cpu_converge),
        ticks(r.cpu_converge),
        sched(r.cpu_withdraw),
        ticks(r.cpu_withdraw),
        counters.line(),
        unix_ns()
    );
}

/// Receives events into `state` until `done` says so, a client fails, or
/// `deadline`. Prints `progress(state)` every [`PROGRESS_EVERY`].
async fn collect<S>(
    rx: &mut mpsc::UnboundedReceiver<Event>,
    deadline: Instant,
    what: &str,
    state: &mut S,
    progress: impl Fn(&S) -> String,
    mut done: impl FnMut(&mut S, Event) -> bool,
) -> Result<(), String> {
    let mut tick = tokio::time::interval_at(Instant::now() + PROGRESS_EVERY, PROGRESS_EVERY);
    loop {
        tokio::select! {
            ev = rx.recv() => match ev {
                None => return Err("failed: every client stopped".into()),
                Some(Event::Failed(id, why)) => return Err(format!("failed: client {id}: {why}")),
                Some(ev) => if done(state, ev) {
                    return Ok(());
                },
            },
            _ = tick.tick() => eprintln!(
                "rrclients: progress phase={what} {} at_ns={}", progress(state), unix_ns()
            ),
            _ = tokio::time::sleep_until(deadline) => return Err("timeout".into()),
            _ = terminated() => return Err("terminated".into()),
        }
    }
}

/// Resolves on SIGTERM or SIGINT, so a stopped run still prints its summary.
async fn terminated() {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => std::future::pending().await,
    }
}

fn main() {
    let args = parse_args();
    if let Some(limit) = open_file_limit()
        && limit < u64::from(args.plan.clients) + 64
    {
        fail(&format!(
            "the open-file limit is {limit}, too low for {} connections: run `ulimit -n {}` first",
            args.plan.clients,
            u64::from(args.plan.clients) * 2 + 64
        ));
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads)
        .enable_all()
        .build()
        .unwrap_or_else(|e| fail(&format!("tokio runtime: {e}")));
    let ok = runtime.block_on(run(Arc::new(args)));
    // Clients still closing are not waited for.
    runtime.shutdown_timeout(Duration::from_secs(2));
    exit(if ok { 0 } else { 1 })
}

/// Progress of the convergence phase.
struct Converge {
    clients: usize,
    announced: usize,
    t0: u64,
    last_announce: u64,
    complete: Vec<bool>,
    n_complete: usize,
    /// When each client last became complete.
    done_at: Vec<u64>,
}

/// Progress of the withdrawal phase.
struct Withdrawal {
    clients: usize,
    tw: Option<u64>,
    removed: usize,
    t2: u64,
}

/// Runs the three phases; prints the summary; returns whether all went well.
async fn run(args: Arc<Args>) -> bool {
    let plan = args.plan;
    let c = plan.clients as usize;
    let all_routes = plan.routes() as u64;
    let encoded: Vec<Encoded> = (0..plan.clients)
        .map(|i| encode(&plan, args.local_as, i))
        .collect();
    let counters = Arc::new(Counters::default());
    let (phase_tx, phase_rx) = watch::channel(Phase::Setup);
    let (tx, mut rx) = mpsc::unbounded_channel();
    let permits = Arc::new(Semaphore::new(args.parallel));
    let watch = Watch(args.watch_pid);
    let mut report = Report {
        phase: "setup",
        ..Report::default()
    };
    eprintln!(
        "rrclients: ready clients={c} blocks={} routes={all_routes} reflector={} at_ns={}",
        plan.blocks,
        args.reflector,
        unix_ns()
    );

    // Phase 1: every session up.
    let start_ns = unix_ns();
    for (i, enc) in encoded.into_iter().enumerate() {
        tokio::spawn(client(
            i as u32,
            args.clone(),
            enc,
            permits.clone(),
            phase_rx.clone(),
            tx.clone(),
            counters.clone(),
        ));
    }
    drop(tx);
    let mut up = (0usize, 0u64);
    let r = collect(
        &mut rx,
        Instant::now() + args.timeout,
        "setup",
        &mut up,
        |up| format!("established={}/{c}", up.0),
        |up, ev| {
            if let Event::Established(at) = ev {
                up.0 += 1;
                up.1 = up.1.max(at);
            }
            up.0 == c
        },
    )
    .await;
    report.complete = up.0;
    if let Err(e) = r {
        eprintln!(
            "rrclients: {e} in phase setup: {} of {c} clients Established (limit {} s)",
            up.0,
            args.timeout.as_secs_f64()
        );
        print_summary(&args, result_of(&e), &report, &counters);
        return false;
    }
    let last_up = up.1;
    report.setup_ns = Some(last_up.saturating_sub(start_ns));
    eprintln!(
        "rrclients: established clients={c} first_connect_ns={start_ns} at_ns={last_up} setup_s={}",
        secs(last_up.saturating_sub(start_ns))
    );
    if let Err(e) = settle(&watch, &args).await {
        print_summary(&args, result_of(&e), &report, &counters);
        return false;
    }

    // Phase 2: everybody announces; until everybody holds everything.
    report.phase = "converge";
    report.complete = 0;
    let cpu0 = watch.usage();
    let _ = phase_tx.send(Phase::Announce);
    let mut conv = Converge {
        clients: c,
        announced: 0,
        t0: u64::MAX,
        last_announce: 0,
        complete: vec![false; c],
        n_complete: 0,
        done_at: vec![0; c],
    };
    let r = collect(
        &mut rx,
        Instant::now() + args.timeout,
        "converge",
        &mut conv,
        |s| {
            format!(
                "complete={}/{c} announced={}/{c} held={}/{}",
                s.n_complete,
                s.announced,
                counters.held.load(Ordering::Relaxed),
                c as u64 * all_routes
            )
        },
        |s, ev| {
            match ev {
                Event::Announced(at) => {
                    s.announced += 1;
                    s.t0 = s.t0.min(at);
                    s.last_announce = s.last_announce.max(at);
                }
                Event::Complete(id, at) => {
                    let id = id as usize;
                    s.n_complete += usize::from(!s.complete[id]);
                    s.complete[id] = true;
                    s.done_at[id] = at;
                }
                Event::Incomplete(id) => {
                    let id = id as usize;
                    s.n_complete -= usize::from(s.complete[id]);
                    s.complete[id] = false;
                }
                _ => {}
            }
            s.n_complete == s.clients
        },
    )
    .await;
    // Read at once: this is the reflector's CPU time up to t1 (or the limit).
    report.cpu_converge = watch.since(cpu0);
    report.complete = conv.n_complete;
    if let Err(e) = r {
        eprintln!(
            "rrclients: {e} in phase converge: {} of {c} clients hold all {all_routes} routes \
             (limit {} s; {} of {} routes held in all; {} of {c} announced)",
            conv.n_complete,
            args.timeout.as_secs_f64(),
            counters.held.load(Ordering::Relaxed),
            c as u64 * all_routes,
            conv.announced
        );
        print_summary(&args, result_of(&e), &report, &counters);
        return false;
    }
    let t0 = conv.t0;
    let mut done_at = conv.done_at;
    done_at.sort_unstable();
    let t1 = done_at[c - 1];
    report.converge_ns = Some(t1.saturating_sub(t0));
    eprintln!(
        "rrclients: announced first_ns={t0} last_ns={} spread_s={}",
        conv.last_announce,
        secs(conv.last_announce.saturating_sub(t0))
    );
    eprintln!(
        "rrclients: converged at_ns={t1} seconds={} median_client_s={} reflector_cpu_s={}",
        secs(t1.saturating_sub(t0)),
        secs(done_at[c / 2].saturating_sub(t0)),
        report.cpu_converge.map_or("-".into(), |(ns, _)| secs(ns))
    );

    // Phase 3: one client withdraws; until nobody else holds its blocks.
    if let Err(e) = settle(&watch, &args).await {
        print_summary(&args, result_of(&e), &report, &counters);
        return false;
    }
    report.phase = "withdraw";
    report.complete = 0;
    let cpu0 = watch.usage();
    let _ = phase_tx.send(Phase::Withdraw);
    let mut wd = Withdrawal {
        clients: c,
        tw: None,
        removed: 0,
        t2: 0,
    };
    let r = collect(
        &mut rx,
        Instant::now() + args.timeout,
        "withdraw",
        &mut wd,
        |s| format!("removed={}/{}", s.removed, c - 1),
        |s, ev| {
            match ev {
                Event::Withdrew(at) => s.tw = Some(at),
                Event::Removed(at) => {
                    s.removed += 1;
                    s.t2 = s.t2.max(at);
                }
                _ => {}
            }
            s.tw.is_some() && s.removed == s.clients - 1
        },
    )
    .await;
    report.cpu_withdraw = watch.since(cpu0);
    report.complete = wd.removed;
    let tw = match (r, wd.tw) {
        (Ok(()), Some(tw)) => tw,
        (r, _) => {
            let e = r.err().unwrap_or_else(|| "failed".into());
            eprintln!(
                "rrclients: {e} in phase withdraw: {} of {} clients removed client {}'s blocks \
                 (limit {} s)",
                wd.removed,
                c - 1,
                args.withdrawer,
                args.timeout.as_secs_f64()
            );
            print_summary(&args, result_of(&e), &report, &counters);
            return false;
        }
    };
    report.withdraw_ns = Some(wd.t2.saturating_sub(tw));
    eprintln!(
        "rrclients: withdrawn client={} withdraw_ns={tw} at_ns={} seconds={} reflector_cpu_s={}",
        args.withdrawer,
        wd.t2,
        secs(wd.t2.saturating_sub(tw)),
        report.cpu_withdraw.map_or("-".into(), |(ns, _)| secs(ns))
    );
    report.phase = "done";
    report.complete = c;
    print_summary(&args, "ok", &report, &counters);
    let _ = phase_tx.send(Phase::Close);
    // Give the Ceases a moment to leave before the runtime is dropped.
    tokio::time::sleep(Duration::from_millis(200)).await;
    true
}

/// Waits for a quiet reflector before the next phase (at most
/// [`SETTLE_LIMIT`] beyond `--settle`), and says how long; `Err` on SIGTERM.
async fn settle(watch: &Watch, args: &Args) -> Result<(), String> {
    let (waited, idle) = tokio::select! {
        r = watch.settle(args.settle, args.settle + SETTLE_LIMIT) => r,
        _ = terminated() => return Err("terminated".into()),
    };
    eprintln!(
        "rrclients: settled s={:.3} reflector_idle={}",
        waited.as_secs_f64(),
        idle.map_or("unknown".into(), |b| b.to_string())
    );
    Ok(())
}

fn result_of(e: &str) -> &'static str {
    match e {
        "timeout" => "timeout",
        "terminated" => "terminated",
        _ => "failed",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> Plan {
        Plan::new(
            3,
            2,
            Ipv4Addr::new(10, 82, 0, 1),
            Ipv4Addr::new(10, 200, 0, 0),
        )
        .unwrap()
    }

    fn update(owner: u32, next_hop: Ipv4Addr) -> Update {
        let p = plan();
        Update {
            withdrawn: Vec::new(),
            attributes: vec![PathAttribute::new(AttrValue::NextHop(next_hop))],
            nlri: (owner * p.blocks..(owner + 1) * p.blocks)
                .map(|r| p.block(r))
                .collect(),
        }
    }

    #[test]
    fn blocks_map_back_to_their_route_and_owner() {
        let p = plan();
        assert_eq!(p.block(0).network.to_string(), "10.200.0.0/26");
        assert_eq!(p.block(5).network.to_string(), "10.200.1.64/26");
        for r in 0..p.routes() {
            assert_eq!(p.route_of(&p.block(r)), Some(r));
        }
        assert_eq!(p.owner(5), 2);
        assert_eq!(p.address(2), Ipv4Addr::new(10, 82, 0, 3));
        let past_end = Ipv4Network::new(Ipv4Addr::new(10, 200, 1, 128), 26).unwrap();
        assert_eq!(p.route_of(&Prefix::new(IpNetwork::V4(past_end))), None);
        let not_a_26 = Ipv4Network::new(Ipv4Addr::new(10, 200, 0, 0), 24).unwrap();
        assert_eq!(p.route_of(&Prefix::new(IpNetwork::V4(not_a_26))), None);
    }

    #[test]
    fn complete_once_every_block_is_held_and_echoes_change_nothing() {
        let p = plan();
        let mut rib = Rib::new(p, 0, 1);
        rib.set_own(true);
        rib.apply(&update(0, p.address(0)), false);
        assert_eq!((rib.held, rib.local.echoed), (2, 2));
        rib.apply(&update(1, p.address(1)), false);
        rib.apply(&update(1, p.address(1)), false);
        assert_eq!((rib.held, rib.local.duplicates), (4, 2));
        assert!(!rib.complete());
        rib.apply(&update(2, p.address(2)), false);
        assert!(rib.complete());
        assert_eq!(rib.withdrawer_held, 2);
    }

    #[test]
    fn a_wrong_next_hop_or_a_withdrawal_removes_the_route() {
        let p = plan();
        let mut rib = Rib::new(p, 0, 1);
        rib.apply(&update(1, p.address(1)), false);
        rib.apply(&update(2, p.address(2)), false);
        assert_eq!(rib.held, 4);
        rib.apply(&update(2, p.address(0)), false);
        assert_eq!((rib.held, rib.local.wrong_next_hop), (2, 2));
        let withdraw = Update {
            withdrawn: update(1, p.address(1)).nlri,
            ..Update::default()
        };
        rib.apply(&withdraw, false);
        assert_eq!((rib.held, rib.withdrawer_held), (0, 0));
        rib.apply(&withdraw, false);
        assert_eq!(rib.local.unheld_withdrawals, 2);
    }

    #[test]
    fn treat_as_withdraw_removes_the_announced_routes() {
        let p = plan();
        let mut rib = Rib::new(p, 0, 1);
        rib.apply(&update(1, p.address(1)), false);
        rib.apply(&update(1, p.address(1)), true);
        assert_eq!((rib.held, rib.local.treated_as_withdraw), (0, 2));
    }
}
