//! The receiving side of the ingestion benchmark: our speaker with one
//! passive iBGP peer, timed from the moment the session is Established until
//! the Loc-RIB holds every route the peer sends.
//!
//! ```sh
//! ingest_receiver --listen 10.79.0.2:179 --peer 10.79.0.1 --local-as 64512 \
//!                 --router-id 10.79.0.2 --count 1000000
//! ```
//!
//! It runs [`bgp_core::speaker::Speaker`] as an embedder would, reading the
//! best-route stream the way a FIB programmer does (reading it is part of
//! the work being measured). t0 is when the speaker's core marked the peer
//! Established (polled every millisecond until then, and back-dated by the
//! session's reported uptime, so the poll interval does not count); t1 is
//! when the stream has delivered `--count` best-route changes. It prints one
//! JSON line and exits:
//!
//! `{"receiver":"podroute","n":N,"seconds":t1-t0,"peak_rss_mb":VmHWM,"cpu_seconds":C}`
//!
//! where C is the CPU time all threads used between t0 and t1 (the speaker
//! runs on every core of a multi-threaded tokio runtime, so it can exceed
//! the wall time).
//!
//! Nothing is written to the kernel's routing table. Exit status 1 means the
//! speaker could not start, 3 that the stream ended early.

use std::net::{IpAddr, SocketAddr};
use std::process::exit;
use std::time::{Duration, Instant};

use bgp_core::session::State;
use bgp_core::speaker::{ListenConfig, PeerConfig, RouteChange, Speaker, SpeakerConfig};

struct Args {
    listen: SocketAddr,
    peer: IpAddr,
    local_as: u32,
    router_id: std::net::Ipv4Addr,
    count: usize,
}

const USAGE: &str = "usage: ingest_receiver --listen ADDR:PORT --peer ADDR --local-as AS \
--router-id ID --count N";

fn fail(msg: &str) -> ! {
    eprintln!("ingest_receiver: {msg}\n{USAGE}");
    exit(2)
}

fn parse<T: std::str::FromStr>(flag: &str, value: Option<String>) -> T
where
    T::Err: std::fmt::Display,
{
    let Some(value) = value else {
        fail(&format!("{flag} needs a value"))
    };
    value
        .parse()
        .unwrap_or_else(|e| fail(&format!("{flag} {value}: {e}")))
}

fn parse_args() -> Args {
    let (mut listen, mut peer, mut local_as, mut router_id, mut count) =
        (None, None, None, None, None);
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next();
        match flag.as_str() {
            "--listen" => listen = Some(parse(&flag, value)),
            "--peer" => peer = Some(parse(&flag, value)),
            "--local-as" => local_as = Some(parse(&flag, value)),
            "--router-id" => router_id = Some(parse(&flag, value)),
            "--count" => count = Some(parse(&flag, value)),
            _ => fail(&format!("unknown argument {flag}")),
        }
    }
    Args {
        listen: listen.unwrap_or_else(|| fail("--listen is required")),
        peer: peer.unwrap_or_else(|| fail("--peer is required")),
        local_as: local_as.unwrap_or_else(|| fail("--local-as is required")),
        router_id: router_id.unwrap_or_else(|| fail("--router-id is required")),
        count: count.unwrap_or_else(|| fail("--count is required")),
    }
}

/// CPU time of every thread of this process so far, in seconds (the first
/// field of /proc/self/task/*/schedstat is nanoseconds on a CPU).
fn cpu_seconds() -> f64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return f64::NAN;
    };
    let ns: u64 = tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum();
    ns as f64 / 1e9
}

/// Peak resident set size of this process in MB (VmHWM, in kB in
/// /proc/self/status).
fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

#[tokio::main]
async fn main() {
    let args = parse_args();
    let mut config = SpeakerConfig::new(args.local_as, args.router_id);
    config.listen = Some(ListenConfig::new(args.listen.ip(), args.listen.port()));
    let mut peer = PeerConfig::new(args.peer, args.local_as);
    peer.passive = true;
    peer.ipv6 = false;
    config.peers.push(peer);
    let (speaker, mut routes) = Speaker::start(config).await.unwrap_or_else(|e| {
        eprintln!("ingest_receiver: cannot start: {e}");
        exit(1)
    });
    eprintln!("ingest_receiver: listening on {}", args.listen);

    // Until the session is up, ask the core for the peer's state every
    // millisecond. Its uptime dates the transition exactly; after that the
    // stream is the only thing read, so polling costs nothing while routes
    // are processed.
    let mut t0: Option<Instant> = None;
    // Replaced at t0; starting here only matters if t0 is never polled.
    let mut cpu0 = cpu_seconds();
    let mut poll = tokio::time::interval(Duration::from_millis(1));
    let mut best = 0usize;
    let t1 = loop {
        tokio::select! {
            batch = routes.recv_batch() => {
                let Some(batch) = batch else {
                    eprintln!("ingest_receiver: route stream ended after {best} routes");
                    exit(3)
                };
                best += batch.iter().filter(|c| matches!(c, RouteChange::Best(_))).count();
                if best >= args.count {
                    break Instant::now();
                }
            }
            _ = poll.tick(), if t0.is_none() => {
                let now = Instant::now();
                if let Some(p) = speaker.peers().await.unwrap_or_default().into_iter().find(|p| p.state == State::Established) {
                    t0 = Some(now.checked_sub(p.uptime.unwrap_or_default()).unwrap_or(now));
                    cpu0 = cpu_seconds();
                    eprintln!("ingest_receiver: established");
                }
            }
        }
    };
    let rss = peak_rss_mb();
    let cpu = cpu_seconds() - cpu0;
    // Routes can only arrive on an established session; if the poll never
    // saw it (all routes in the first millisecond), ask once more.
    let t0 = match t0 {
        Some(t) => t,
        None => speaker
            .peers()
            .await
            .unwrap_or_default()
            .into_iter()
            .find_map(|p| p.uptime)
            .map_or(t1, |u| Instant::now().checked_sub(u).unwrap_or(t1)),
    };
    let accepted: usize = speaker
        .peers()
        .await
        .unwrap_or_default()
        .iter()
        .map(|p| p.accepted)
        .sum();
    if accepted != args.count {
        eprintln!(
            "ingest_receiver: warning: {best} best-route changes but the peer has {accepted} routes accepted"
        );
    }
    println!(
        "{{\"receiver\":\"podroute\",\"n\":{},\"seconds\":{:.3},\"peak_rss_mb\":{:.1},\"cpu_seconds\":{:.3}}}",
        args.count,
        t1.saturating_duration_since(t0).as_secs_f64(),
        rss,
        cpu
    );
    // Tearing down a million-route RIB is not part of the measurement.
    exit(0)
}
