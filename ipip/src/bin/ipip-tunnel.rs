//! `ipip-tunnel`: the userspace IPIP data plane as its own process, so it
//! keeps forwarding while route-agent restarts.
//!
//! ```text
//! ipip-tunnel --device tunl0 --local NODE_IP [--mtu N] [--allow IP]... [--no-offload] [--no-gro-egress]
//! ipip-tunnel kernel-setup --address TUNNEL_IP [--device tunl0] [--mtu N] [--underlay-mtu N]
//! ```
//!
//! Runs until SIGTERM or SIGINT; prints its counters (`name value` lines)
//! on SIGUSR1 and at exit. Packet counters count packets as they cross
//! the underlay (one per inner datagram), however the TUN device batched
//! them. `--no-offload` opens the TUN device without offloads (one plain
//! packet per read and write: slower, for comparison and old kernels).
//! `--no-gro-egress` sends every outer datagram on the raw socket instead
//! of passing bulk TCP through the GRO device (`tunl0-gro`, see
//! [`ipip::userspace::gro`]); the `ready` line says which path is in use.
//! The environment variable `IPIP_SPIN_US` sets how long the forwarding
//! thread keeps polling after traffic before it sleeps (default 50; 0
//! turns spinning off).
//!
//! `kernel-setup` instead uses the kernel backend ([`ipip::kernel`]): it
//! makes the kernel's IPIP device exist, be up, have its MTU and carry
//! exactly the /32, prints the result and exits; it exits 3 on a kernel
//! without ipip support (run the userspace data plane there).

use std::net::Ipv4Addr;
use std::process::ExitCode;

use ipip::kernel::{KernelError, TunnelConfig, ensure_tunnel};
use ipip::userspace::{Config, Dataplane};

const USAGE: &str =
    "usage: ipip-tunnel --device tunl0 --local NODE_IP [--mtu N] [--allow IP]... [--no-offload] [--no-gro-egress]
       ipip-tunnel kernel-setup --address TUNNEL_IP [--device tunl0] [--mtu N] [--underlay-mtu N]";

fn parse_kernel_args(mut args: impl Iterator<Item = String>) -> Result<TunnelConfig, String> {
    let mut device = ipip::kernel::DEFAULT_DEVICE.to_string();
    let mut address = None;
    let mut mtu = None;
    let mut underlay_mtu = None;
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--device" => device = value()?,
            "--address" => {
                let v = value()?;
                address = Some(
                    v.parse::<Ipv4Addr>()
                        .map_err(|e| format!("--address {v}: {e}"))?,
                );
            }
            "--mtu" => {
                let v = value()?;
                mtu = Some(v.parse().map_err(|e| format!("--mtu {v}: {e}"))?);
            }
            "--underlay-mtu" => {
                let v = value()?;
                underlay_mtu = Some(v.parse().map_err(|e| format!("--underlay-mtu {v}: {e}"))?);
            }
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(TunnelConfig {
        device,
        address: address.ok_or("--address TUNNEL_IP is required")?,
        mtu,
        underlay_mtu,
    })
}

fn kernel_setup(args: impl Iterator<Item = String>) -> ExitCode {
    let config = match parse_kernel_args(args) {
        Ok(c) => c,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("ipip-tunnel kernel-setup: {e}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match ensure_tunnel(&config) {
        Ok(state) => {
            println!(
                "kernel device={} index={} mtu={} address={}/32 created={} removed={}",
                config.device,
                state.index,
                state.mtu,
                config.address,
                state.created,
                state.removed.len()
            );
            ExitCode::SUCCESS
        }
        Err(e @ KernelError::NoIpipSupport { .. }) => {
            eprintln!("ipip-tunnel kernel-setup: {e}");
            ExitCode::from(3)
        }
        Err(e) => {
            eprintln!("ipip-tunnel kernel-setup: {e}");
            ExitCode::FAILURE
        }
    }
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Config, String> {
    let mut device = "tunl0".to_string();
    let mut local = None;
    let mut mtu = 1500u16;
    let mut extra_peers = Vec::new();
    let mut offload = true;
    let mut gro_egress = true;
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
            "--no-offload" => offload = false,
            "--no-gro-egress" => gro_egress = false,
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
        offload,
        gro_egress,
    })
}

async fn run(config: Config) -> Result<(), String> {
    let mut dp = Dataplane::start(config.clone()).map_err(|e| e.to_string())?;
    println!(
        "ready device={} local={} offload={} egress={}",
        config.device,
        config.local,
        config.offload,
        dp.egress()
    );
    dp.run_until_signal(|counters| println!("{counters}--"))
        .await
        .map_err(|e| e.to_string())
}

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1).peekable();
    if args.peek().map(String::as_str) == Some("kernel-setup") {
        return kernel_setup(args.skip(1));
    }
    let config = match parse_args(args) {
        Ok(c) => c,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("ipip-tunnel: {e}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
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
