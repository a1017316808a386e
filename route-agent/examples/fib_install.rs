//! Installs N IPv4 /26 routes with the batched FIB reconciler, for
//! `benches/fib_install.sh`. Run inside a network namespace that has the
//! underlay `veth0` (10.66.0.5/24):
//!
//! ```text
//! fib_install install 100000 via        # time a reconcile into an empty table
//! fib_install install 100000 via every  # the same, NLM_F_ACK on every request
//! fib_install ip-batch 100000 via       # the same routes as `ip -batch` lines
//! fib_install bird 100000 via           # the same routes as BIRD 2 static routes
//! ```
//!
//! The routes are consecutive /26 blocks from 10.128.0.0, either
//! `blackhole` or `via 10.66.0.6 dev veth0 onlink`.

use std::io::{self, BufWriter, Write};
use std::process::ExitCode;
use std::time::Instant;

use ipnetwork::{IpNetwork, Ipv4Network};
use route_agent::fib::{AckMode, DEFAULT_PROTOCOL, Fib};
use route_agent::planner::{DesiredRoute, RouteKind};

const GATEWAY: [u8; 4] = [10, 66, 0, 6];

fn routes(count: u32, via: bool) -> Vec<DesiredRoute> {
    let base = u32::from_be_bytes([10, 128, 0, 0]);
    (0..count)
        .map(|i| DesiredRoute {
            dst: IpNetwork::V4(Ipv4Network::new((base + (i << 6)).into(), 26).expect("/26")),
            kind: if via {
                RouteKind::Direct {
                    via: GATEWAY.into(),
                    dev: "veth0".into(),
                }
            } else {
                RouteKind::Blackhole
            },
        })
        .collect()
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let (Some(mode), Some(count), Some(kind)) = (args.get(1), args.get(2), args.get(3)) else {
        eprintln!("usage: fib_install install|ip-batch|bird COUNT blackhole|via [every]");
        return ExitCode::from(2);
    };
    let Ok(count) = count.parse::<u32>() else {
        eprintln!("COUNT must be a number, not {count:?}");
        return ExitCode::from(2);
    };
    if count > 1 << 17 {
        eprintln!(
            "COUNT must be at most {} (the /26 blocks of 10.128.0.0/9)",
            1 << 17
        );
        return ExitCode::from(2);
    }
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
    let plan = routes(count, via);
    let result = match mode.as_str() {
        "install" => install(&plan, ack),
        "ip-batch" => print_ip_batch(&plan),
        "bird" => print_bird(&plan),
        other => {
            eprintln!("mode must be install, ip-batch or bird, not {other:?}");
            return ExitCode::from(2);
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

fn install(plan: &[DesiredRoute], ack: AckMode) -> io::Result<()> {
    let start = Instant::now();
    let mut fib = Fib::open_default()?;
    fib.set_ack_mode(ack);
    let done = fib.reconcile(plan)?;
    let seconds = start.elapsed().as_secs_f64();
    if let Some(e) = done.errors.first() {
        return Err(io::Error::other(format!(
            "{} routes failed, first: {e}",
            done.errors.len()
        )));
    }
    println!(
        "install {seconds:.3} s, {:.0} routes/s, {:?}",
        plan.len() as f64 / seconds,
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
