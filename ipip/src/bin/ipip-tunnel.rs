//! `ipip-tunnel`: the userspace IPIP data plane as its own process, so it
//! keeps forwarding while route-agent restarts.
//!
//! ```text
//! ipip-tunnel --device tunl0 --local NODE_IP [--mtu N] [--allow IP]...
//! ```
//!
//! Runs until SIGTERM or SIGINT; prints its counters (`name value` lines)
//! on SIGUSR1 and at exit.

use std::net::Ipv4Addr;
use std::process::ExitCode;

use ipip::userspace::{Config, Dataplane};
use tokio::signal::unix::{SignalKind, signal};

const USAGE: &str = "usage: ipip-tunnel --device tunl0 --local NODE_IP [--mtu N] [--allow IP]...";

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Config, String> {
    let mut device = "tunl0".to_string();
    let mut local = None;
    let mut mtu = 1500u16;
    let mut extra_peers = Vec::new();
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--device" => device = value()?,
            "--local" => {
                let v = value()?;
                local = Some(
                    v.parse::<Ipv4Addr>()
                        .map_err(|e| format!("--local {v}: {e}"))?,
                );
            }
            "--mtu" => {
                let v = value()?;
                mtu = v.parse().map_err(|e| format!("--mtu {v}: {e}"))?;
            }
            "--allow" => {
                let v = value()?;
                extra_peers.push(v.parse().map_err(|e| format!("--allow {v}: {e}"))?);
            }
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    let local = local.ok_or("--local NODE_IP is required")?;
    Ok(Config {
        device,
        local,
        mtu,
        extra_peers,
    })
}

async fn run(config: Config) -> Result<(), String> {
    let mut term = signal(SignalKind::terminate()).map_err(|e| e.to_string())?;
    let mut int = signal(SignalKind::interrupt()).map_err(|e| e.to_string())?;
    let mut usr1 = signal(SignalKind::user_defined1()).map_err(|e| e.to_string())?;
    let mut dp = Dataplane::start(config.clone()).map_err(|e| e.to_string())?;
    let counters = dp.counters();
    println!("ready device={} local={}", config.device, config.local);
    let result = loop {
        tokio::select! {
            _ = term.recv() => break Ok(()),
            _ = int.recv() => break Ok(()),
            _ = usr1.recv() => println!("{counters}--"),
            r = dp.wait() => break r.map_err(|e| e.to_string()),
        }
    };
    println!("{counters}--");
    result
}

fn main() -> ExitCode {
    let config = match parse_args(std::env::args().skip(1)) {
        Ok(c) => c,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("ipip-tunnel: {e}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("ipip-tunnel: cannot start tokio: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ipip-tunnel: {e}");
            ExitCode::FAILURE
        }
    }
}
