//! `ipip-tunnel`: the userspace IPIP data plane as its own process, so it
//! keeps forwarding while route-agent restarts.
//!
//! ```text
//! ipip-tunnel [--device tunl0] --local NODE_IP [--underlay-mtu N] [--allow IP]... [--no-offload] [--no-gro-egress]
//! ipip-tunnel kernel-setup --address TUNNEL_IP [--device tunl0] [--mtu N] [--underlay-mtu N]
//! ipip-tunnel kernel-filter [--node IP]... | --show | --remove
//! ipip-tunnel bpf-setup --underlay DEV --local NODE_IP [--route BLOCK=NODE]... [--node IP]... | --show | --remove
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
//! without ipip support (run the userspace data plane there).
//!
//! `kernel-filter` installs the kernel backend's IPIP filter
//! ([`ipip::filter`]) with exactly the given node addresses (created, or
//! adopted and its set updated), prints `filter table=ip podroute
//! installed=… nodes=N added=A removed=R dropped_packets=P
//! dropped_bytes=B` and exits; `--show` prints the same without changing
//! anything (`filter absent` when there is none), `--remove` deletes it.
//! route-agent keeps the same filter current with the cluster's nodes;
//! this is the filter alone, for tests and for hosts without the agent.
//!
//! `bpf-setup` sets up the `bpf` backend ([`ipip::bpf`]) without the
//! agent: the programs loaded or adopted, this node's address and the
//! blocks and nodes written to their maps, the ingress program on the
//! underlay, and `BLOCK via NODE dev DEV onlink encap bpf xmit … headroom
//! 20 proto 98` for each `--route`; it prints `bpf encap=ID decap=ID
//! opened=… ingress=… blocks=N nodes=N` and exits (exit 3 when the
//! programs cannot run here). `--show` prints that and the counters,
//! `--remove` deletes the routes, detaches and unpins everything.
//!
//! Bad arguments exit 2.

#[path = "ipip-tunnel/bpf_setup.rs"]
mod bpf_setup;

use std::process::ExitCode;

use clap::error::ErrorKind;
use clap::{CommandFactory, Parser, Subcommand};
use ipip::cli::{BpfSetupArgs, KernelFilterArgs, KernelSetupArgs, TunnelArgs};
use ipip::filter::{FilterError, IpipFilter};
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
    /// Install or update the kernel tunnel's IPIP filter (accept IP
    /// protocol 4 only from the given nodes, count the drops), show it, or
    /// remove it; then exit.
    KernelFilter(KernelFilterArgs),
    /// Set up the `bpf` backend (programs, maps, ingress hook, tunnel
    /// routes), show it, or remove it; then exit.
    BpfSetup(BpfSetupArgs),
}

/// Runs `kernel-filter`: what it printed, or why it failed.
fn kernel_filter_run(args: &KernelFilterArgs) -> Result<String, FilterError> {
    let mut filter = IpipFilter::open()?;
    let table = format!("table={} {}", ipip::filter::FAMILY, ipip::filter::TABLE);
    if args.remove {
        let removed = filter.remove()?;
        return Ok(format!("filter {table} removed={removed}"));
    }
    if args.show {
        let Some(dropped) = filter.dropped()? else {
            return Ok("filter absent".to_owned());
        };
        let nodes = filter.nodes()?;
        return Ok(format!(
            "filter {table} nodes={} dropped_packets={} dropped_bytes={}",
            nodes.len(),
            dropped.packets,
            dropped.bytes
        ));
    }
    let nodes = args.nodes.iter().copied().collect();
    let applied = filter.apply(&nodes)?;
    let dropped = filter.dropped()?.unwrap_or_default();
    let mut line = format!(
        "filter {table} installed={} nodes={} added={} removed={} dropped_packets={} dropped_bytes={}",
        applied.installed,
        nodes.len(),
        applied.added,
        applied.removed,
        dropped.packets,
        dropped.bytes
    );
    if let Some(why) = applied.replaced {
        line.push_str(&format!(" (replaced: {why})"));
    }
    Ok(line)
}

fn kernel_filter(args: &KernelFilterArgs) -> ExitCode {
    match kernel_filter_run(args) {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("ipip-tunnel kernel-filter: {e}");
            ExitCode::FAILURE
        }
    }
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
        (Some(Command::KernelFilter(args)), _) => return kernel_filter(&args),
        (Some(Command::BpfSetup(args)), _) => return bpf_setup::run(&args),
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
