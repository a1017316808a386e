//! `ipip-tunnel`: the userspace IPIP data plane as its own process, so it
//! keeps forwarding while route-agent restarts.
//!
//! ```text
//! ipip-tunnel [--device tunl0] --local NODE_IP [--underlay-mtu N] [--allow IP]... [--no-offload] [--no-gro-egress]
//! ipip-tunnel kernel-setup --address TUNNEL_IP [--device tunl0] [--mtu N] [--underlay-mtu N]
//! ```
//!
//! The arguments are [`ipip::cli`]'s, the same `route-agent tunnel` takes
//! (`--mtu` is another name of `--underlay-mtu`). Runs until SIGTERM or
//! SIGINT; prints `ready device=… local=… offload=… egress=…` once
//! forwarding, and its counters (`name value` lines, then `--`) on SIGUSR1
//! and at exit. Packet counters count packets as they cross the underlay
//! (one per inner datagram), however the TUN device batched them.
//! `--no-offload` opens the TUN device without offloads (one plain packet
//! per read and write: slower, for comparison and old kernels).
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
//! without ipip support (run the userspace data plane there). Bad
//! arguments exit 2.

use std::process::ExitCode;

use clap::error::ErrorKind;
use clap::{CommandFactory, Parser, Subcommand};
use ipip::cli::{KernelSetupArgs, TunnelArgs};
use ipip::kernel::{KernelError, ensure_tunnel};
use ipip::userspace::{Config, Dataplane, Error};

/// The userspace IPIP data plane (RFC 2003) for kernels without the ipip
/// module: a TUN device named like the kernel's tunl0 plus a raw IP
/// protocol 4 socket, driven by the kernel's routes through the device.
#[derive(Debug, Parser)]
#[command(
    name = "ipip-tunnel",
    version,
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    tunnel: Option<TunnelArgs>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Set up the kernel's IPIP device instead (exists, up, MTU, exactly
    /// the /32) and exit; exit code 3 when the kernel has no ipip support.
    KernelSetup(KernelSetupArgs),
}

fn kernel_setup(args: &KernelSetupArgs) -> ExitCode {
    let config = args.config();
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

async fn run(config: Config) -> Result<(), Error> {
    let mut dp = Dataplane::start(config.clone())?;
    println!(
        "ready device={} local={} offload={} egress={}",
        config.device,
        config.local,
        config.offload,
        dp.egress()
    );
    dp.run_until_signal(|counters| println!("{counters}--"))
        .await
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let tunnel = match (cli.command, cli.tunnel) {
        (Some(Command::KernelSetup(args)), _) => return kernel_setup(&args),
        (None, Some(tunnel)) => tunnel,
        // No arguments at all (clap leaves an optional group of
        // arguments out without checking its required ones).
        (None, None) => Cli::command()
            .error(
                ErrorKind::MissingRequiredArgument,
                "--local NODE_IP is required (or run `ipip-tunnel kernel-setup`)",
            )
            .exit(),
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
    match runtime.block_on(run(tunnel.config())) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ipip-tunnel: {e}");
            ExitCode::FAILURE
        }
    }
}
