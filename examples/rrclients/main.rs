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

mod client;
mod plan;
mod report;

use std::net::{Ipv4Addr, SocketAddrV4};
use std::process::exit;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::{Semaphore, mpsc, watch};
use tokio::time::Instant;

use client::*;
use plan::*;
use report::*;

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
