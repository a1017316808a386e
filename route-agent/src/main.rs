//! `route-agent`: the pod-route daemon's command line.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use route_agent::config::{Config, resolve_node_name};

/// Announces this node's pod blocks over BGP and keeps the kernel's pod
/// routes right (Calico's CrossSubnet rule).
#[derive(Debug, Parser)]
#[command(name = "route-agent", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check a config file: prints `FILE: ok` and a summary, or the
    /// problems (`FILE:LINE:COL: what — fix`) on stderr with exit code 2.
    CheckConfig {
        /// The YAML config file.
        #[arg(env = "ROUTE_AGENT_CONFIG")]
        file: PathBuf,
    },
}

/// Exit code for a config that cannot be used (also clap's for bad usage).
const EXIT_CONFIG: u8 = 2;

fn hostname() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname").ok()
}

fn check_config(file: &Path) -> ExitCode {
    match Config::load(file) {
        Ok(config) => {
            let env = std::env::var("NODE_NAME").ok();
            let host = hostname();
            let name =
                resolve_node_name(config.node.name.as_deref(), env.as_deref(), host.as_deref());
            for w in config.warnings() {
                eprintln!("{}: warning: {w}", file.display());
            }
            println!("{}: ok", file.display());
            println!("{}", config.summary(name.as_deref()));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(EXIT_CONFIG)
        }
    }
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::CheckConfig { file } => check_config(&file),
    }
}
