//! Installs N IPv4 /26 routes with the batched FIB reconciler, for
//! `benches/fib_install.sh` and `benches/fib_kernel.sh`. Run inside a
//! network namespace that has the underlay `veth0` (10.66.0.5/24):
//!
//! ```text
//! fib_install install 100000 via        # time a reconcile into an empty table
//! fib_install install 100000 via every  # the same, NLM_F_ACK on every request
//! fib_install install 10000 via last 5000  # through 5,000 gateways, 2 routes each
//! FIB_NEXTHOPS=0 fib_install install …  # `nexthop-objects: false` (default: auto)
//! FIB_NEXTHOPS=1 fib_install install …  # `nexthop-objects: true`
//! fib_install raw 100000 sorted         # the requests alone, no reconciler,
//! fib_install raw 100000 spread         #   in destination or spread order,
//! fib_install raw 100000 spread 1       #   or through nexthop object 1
//! fib_install ip-batch 100000 via       # the same routes as `ip -batch` lines
//! fib_install bird 100000 via           # the same routes as BIRD 2 static routes
//! fib_install watch 10000 98            # wait until the main table holds
//!                                       #   10,000 IPv4 routes of protocol 98
//! ```
//!
//! `watch` is the finish line of `benches/convergence.sh`: it listens to
//! the kernel's route notifications (no polling), prints `watch: ready`
//! once subscribed, then `watch: first_ns=… all_ns=… n=…` (Unix times in
//! nanoseconds: the first route of that protocol, and the moment all were
//! in) and exits.
//!
//! The routes are consecutive /26 blocks from 10.128.0.0, either
//! `blackhole` or `via 10.66.0.6 dev veth0 onlink`. Times are wall clock
//! and this thread's CPU time (user and system, which includes the
//! kernel's insertion: netlink handles a request inside `sendmsg`).

use std::collections::HashSet;
use std::io::{self, BufWriter, Write};
use std::process::ExitCode;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use ipnetwork::{IpNetwork, Ipv4Network};
use netlink::consts::{NLM_F_CREATE, NLM_F_REPLACE};
use netlink::route::{self, KernelRoute, MAIN_TABLE, Route};
use netlink::{Group, MessageType, Monitor, Received};
use route_agent::fib::{
    AckMode, DEFAULT_PROTOCOL, Fib, Netlink, NexthopMode, RouteShape, shape_of,
};
use route_agent::planner::{DesiredRoute, RouteKind};

const GATEWAY: [u8; 4] = [10, 66, 0, 6];

/// `count` consecutive /26 routes; with `via`, through `hops` gateways
/// (one: 10.66.0.6; more: 10.66.1.0, 10.66.1.1, …, each taking a run of
/// consecutive routes, as a cluster's nodes each have their blocks).
fn routes(count: u32, via: bool, hops: u32) -> Vec<DesiredRoute> {
    let base = u32::from_be_bytes([10, 128, 0, 0]);
    let first_hop = u32::from_be_bytes([10, 66, 1, 0]);
    (0..count)
        .map(|i| DesiredRoute {
            dst: IpNetwork::V4(Ipv4Network::new((base + (i << 6)).into(), 26).expect("/26")),
            kind: if via {
                RouteKind::Direct {
                    via: if hops <= 1 {
                        GATEWAY.into()
                    } else {
                        let hop = u64::from(i) * u64::from(hops) / u64::from(count);
                        std::net::Ipv4Addr::from(first_hop + hop as u32).into()
                    },
                    dev: "veth0".into(),
                }
            } else {
                RouteKind::Blackhole
            },
        })
        .collect()
}

fn usage() -> ExitCode {
    eprintln!(
        "usage: fib_install install|ip-batch|bird COUNT blackhole|via [last|every [HOPS]]\n       \
         fib_install raw COUNT sorted|spread [NHID]\n       \
         fib_install watch COUNT PROTOCOL"
    );
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let (Some(mode), Some(count), Some(kind)) = (args.get(1), args.get(2), args.get(3)) else {
        return usage();
    };
    let Ok(count) = count.parse::<u32>() else {
        eprintln!("COUNT must be a number, not {count:?}");
        return ExitCode::from(2);
    };
    if count > 1 << 17 && mode != "watch" {
        eprintln!(
            "COUNT must be at most {} (the /26 blocks of 10.128.0.0/9)",
            1 << 17
        );
        return ExitCode::from(2);
    }
    let result = if mode == "watch" {
        let Ok(protocol) = kind.parse::<u8>() else {
            return usage();
        };
        watch(count as usize, protocol)
    } else if mode == "raw" {
        let spread = match kind.as_str() {
            "sorted" => false,
            "spread" => true,
            other => {
                eprintln!("order must be `sorted` or `spread`, not {other:?}");
                return ExitCode::from(2);
            }
        };
        let nhid = match args.get(4).map(|a| a.parse::<u32>()) {
            None => None,
            Some(Ok(id)) => Some(id),
            Some(Err(_)) => return usage(),
        };
        raw(&routes(count, true, 1), spread, nhid)
    } else {
        let via = match kind.as_str() {
            "via" => true,
            "blackhole" => false,
            other => {
                eprintln!("route kind must be `blackhole` or `via`, not {other:?}");
                return ExitCode::from(2);
            }
        };
        let ack = match args.get(4).map(String::as_str) {
            None | Some("last") => AckMode::LastOfBatch,
            Some("every") => AckMode::EveryRequest,
            Some(other) => {
                eprintln!("ack mode must be `last` or `every`, not {other:?}");
                return ExitCode::from(2);
            }
        };
        let hops = match args.get(5).map(|a| a.parse::<u32>()) {
            None => 1,
            Some(Ok(hops)) if hops >= 1 => hops,
            Some(_) => return usage(),
        };
        let plan = routes(count, via, hops);
        match mode.as_str() {
            "install" => install(&plan, ack),
            "ip-batch" => print_ip_batch(&plan),
            "bird" => print_bird(&plan),
            _ => return usage(),
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("fib_install: {e}");
            ExitCode::FAILURE
        }
    }
}

/// This thread's CPU time so far in seconds (user and system), from the
/// scheduler's nanosecond count: unlike wall time, it leaves out the time
/// the thread waited for a core that another process held.
fn cpu_seconds() -> f64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(f64::NAN, |ns| ns / 1e9)
}

fn install(plan: &[DesiredRoute], ack: AckMode) -> io::Result<()> {
    let cpu = cpu_seconds();
    let start = Instant::now();
    let mut fib = Fib::open_default()?;
    fib.set_ack_mode(ack);
    // FIB_NEXTHOPS=1 / 0: gateway routes always / never through kernel
    // nexthop objects (`nexthop-objects: true / false`); unset: the
    // default, `auto` (objects above 1,000 gateway routes).
    match std::env::var("FIB_NEXTHOPS").as_deref() {
        Ok("0") => fib.set_nexthop_mode(NexthopMode::Off),
        Ok(_) => fib.set_nexthop_mode(NexthopMode::On),
        Err(_) => fib.set_nexthop_mode(NexthopMode::Auto),
    }
    let done = fib.reconcile(plan)?;
    let seconds = start.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu;
    if let Some(e) = done.errors.first() {
        return Err(io::Error::other(format!(
            "{} routes failed, first: {e}",
            done.errors.len()
        )));
    }
    println!(
        "install {seconds:.3} s, cpu {cpu:.3} s, {:.0} routes/s, {} batches, {:?}",
        plan.len() as f64 / seconds,
        fib.batches_sent(),
        done.stats
    );
    // The same plan again: a restart's pass, which must change nothing.
    let start = Instant::now();
    let again = fib.reconcile(plan)?;
    println!(
        "rerun {:.3} s, {:?}",
        start.elapsed().as_secs_f64(),
        again.stats
    );
    Ok(())
}

/// The route requests alone, without dump or diff: in destination order or
/// in the reconciler's spread (bit-reversed) order, and either with the
/// gateway in every route or through nexthop object `nhid` (which the
/// caller created: `ip nexthop add id NHID via 10.66.0.6 dev veth0
/// onlink`). Both go through [`Netlink::execute`] (the requests written
/// as the reconciler writes them, here inside the timed part), so only the
/// order and the route form differ.
fn raw(plan: &[DesiredRoute], spread: bool, nhid: Option<u32>) -> io::Result<()> {
    let mut fib = Fib::open_default()?;
    let links = fib.links()?;
    let mut order: Vec<usize> = (0..plan.len()).collect();
    if spread {
        let bits = usize::BITS - plan.len().saturating_sub(1).leading_zeros();
        order = (0..1usize << bits)
            .map(|k| {
                k.reverse_bits()
                    .checked_shr(usize::BITS - bits)
                    .unwrap_or(0)
            })
            .filter(|&i| i < plan.len())
            .collect();
    }
    let shape = match nhid {
        None => shape_of(&plan[0].kind, &links, None).map_err(io::Error::other)?,
        // `ip route replace B nhid ID proto 98`: no gateway or device of
        // its own.
        Some(id) => RouteShape::Nexthop { id, mtu: None },
    };
    let mut netlink = Netlink::open()?;
    let cpu = cpu_seconds();
    let start = Instant::now();
    let failures = netlink.execute(order.into_iter().map(|i| {
        let dst = plan[i].dst;
        let write =
            move |tx: &mut Vec<u8>| route::emit_new_route(tx, &dst, &shape, DEFAULT_PROTOCOL);
        (
            MessageType::NEW_ROUTE,
            NLM_F_CREATE | NLM_F_REPLACE,
            i,
            write,
        )
    }))?;
    let seconds = start.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu;
    if let Some((i, errno)) = failures.first() {
        return Err(io::Error::other(format!(
            "{} routes failed, first {}: {errno}",
            failures.len(),
            plan[*i]
        )));
    }
    println!(
        "raw {seconds:.3} s, cpu {cpu:.3} s, {:.0} routes/s",
        plan.len() as f64 / seconds
    );
    Ok(())
}

fn print_ip_batch(plan: &[DesiredRoute]) -> io::Result<()> {
    let mut out = BufWriter::new(io::stdout().lock());
    for route in plan {
        writeln!(out, "route add {route} proto {DEFAULT_PROTOCOL}")?;
    }
    out.flush()
}

fn print_bird(plan: &[DesiredRoute]) -> io::Result<()> {
    let mut out = BufWriter::new(io::stdout().lock());
    for route in plan {
        match &route.kind {
            RouteKind::Blackhole => writeln!(out, "  route {} blackhole;", route.dst)?,
            RouteKind::Direct { via, dev } => {
                writeln!(out, "  route {} via {via}%'{dev}' onlink;", route.dst)?
            }
            _ => return Err(io::Error::other("only blackhole and direct routes")),
        }
    }
    out.flush()
}

fn unix_ns() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

/// Waits until the main table holds `count` IPv4 routes of `protocol`,
/// counted from the kernel's new-route and delete-route notifications.
fn watch(count: usize, protocol: u8) -> io::Result<()> {
    let mut monitor = Monitor::open(&[Group::Ipv4Route])?;
    // As large as net.core.rmem_max allows: an install sends a burst.
    monitor.set_receive_buffer(64 << 20)?;
    let mut seen: HashSet<IpNetwork> = HashSet::new();
    // Routes already there (none in the benchmark, but a count must not
    // depend on it).
    let mut fib = Fib::open(protocol)?;
    seen.extend(
        fib.installed()?
            .into_iter()
            .filter(|r| r.dst.is_ipv4())
            .map(|r| r.dst),
    );
    println!("watch: ready");
    io::stdout().flush()?;
    let mut first_ns = None;
    let mut resyncs = 0;
    while seen.len() < count {
        match monitor.recv()? {
            Received::Messages(mut messages) => {
                for (header, body) in messages.by_ref() {
                    let ours = |r: &Route| r.protocol == protocol && r.table == MAIN_TABLE;
                    let Some(route) = Route::parse(body).filter(ours) else {
                        continue;
                    };
                    let Some(r) = KernelRoute::from_route(&route) else {
                        continue;
                    };
                    match header.kind {
                        MessageType::NEW_ROUTE if r.dst.is_ipv4() => {
                            seen.insert(r.dst);
                        }
                        MessageType::DEL_ROUTE => {
                            seen.remove(&r.dst);
                        }
                        _ => {}
                    }
                }
                if messages.malformed() {
                    return Err(io::Error::other("malformed netlink notification"));
                }
            }
            Received::Overrun => {
                // Notifications were dropped: the table itself is the
                // truth. Routes in it now are in, whatever was lost. The
                // queue is emptied first: until it is, the kernel drops
                // every new notification without a second ENOBUFS, and a
                // route added after the dump would never be counted (a
                // soak round waited forever for it).
                monitor.drain()?;
                resyncs += 1;
                seen = fib
                    .installed()?
                    .into_iter()
                    .filter(|r| r.dst.is_ipv4())
                    .map(|r| r.dst)
                    .collect();
            }
        }
        if first_ns.is_none() && !seen.is_empty() {
            first_ns = Some(unix_ns());
        }
    }
    let all_ns = unix_ns();
    println!(
        "watch: first_ns={} all_ns={all_ns} n={} resyncs={resyncs}",
        first_ns.unwrap_or(all_ns),
        seen.len()
    );
    Ok(())
}
