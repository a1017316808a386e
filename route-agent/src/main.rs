//! `route-agent`: the pod-route daemon's command line.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use route_agent::agent::AgentError;
use route_agent::config::{Config, resolve_node_name};
use route_agent::daemon::DaemonError;
use route_agent::datastore::DatastoreKind;

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
    /// Run the agent: BGP speaker, planner and kernel routes, until SIGTERM
    /// (routes persist after it exits). Exit codes: 2 for a config that
    /// cannot be used, 3 when this node's address changed in the
    /// Kubernetes datastore (start it again: the DaemonSet does), 1 when
    /// it cannot work (the BGP speaker stopped, the tunnel can never be set
    /// up; the cause is the last line on stderr).
    Run {
        /// The YAML config file.
        #[arg(long, env = "ROUTE_AGENT_CONFIG")]
        config: PathBuf,
        /// Log format.
        #[arg(long, env = "ROUTE_AGENT_LOG_FORMAT", value_enum, default_value_t = LogFormat::Human)]
        log_format: LogFormat,
    },
    /// Show the running agent's BGP peers and kernel routes, read from its
    /// admin API (`--json` for the raw document); exit code 1 when the
    /// agent cannot be reached.
    Status(route_agent::status::StatusArgs),
    /// The running agent's BGP neighbours, one line each (like `gobgp
    /// neighbor`), or one in detail with what its session negotiated (like
    /// `gobgp neighbor ADDR`, `birdc show protocols all`). Exit code 1 when
    /// the agent cannot be reached or has no such neighbour.
    Neighbor(route_agent::inspect::NeighborArgs),
    /// The running agent's BGP table (Loc-RIB best routes, like `gobgp
    /// global rib`), or the routes covering an address or prefix, most
    /// specific first (like `birdc show route for`). Exit code 1 when the
    /// agent cannot be reached or no route covers it.
    Rib(route_agent::inspect::RibArgs),
    /// A three-node cluster in network namespaces (two subnets, one pod per
    /// node): builds it, runs the agents, prints every node's routes and a
    /// pod-to-pod ping matrix, and removes it. Needs root.
    Demo,
    /// The userspace IPIP data plane for kernels without the ipip module
    /// (started by `run` when the tunnel backend is `userspace`, or `auto`
    /// on such a kernel). It learns its tunnel table from the kernel's
    /// routes through the device and runs until SIGTERM; SIGUSR1 prints
    /// its counters.
    Tunnel {
        /// The data plane's arguments, shared with `ipip-tunnel`.
        #[command(flatten)]
        args: ipip::cli::TunnelArgs,
        /// Log format.
        #[arg(long, env = "ROUTE_AGENT_LOG_FORMAT", value_enum, default_value_t = LogFormat::Human)]
        log_format: LogFormat,
    },
    /// What this node's kernel and sysctls mean for pod routing, as
    /// `kubeadm` preflight reports them: IPv4 forwarding, rp_filter, which
    /// tunnel backends can run, MTU headroom, TCP congestion control,
    /// conntrack size; each line says what was found, why it matters and
    /// the fix. Exit code 1 when a check fails (an `[ERROR]`), 2 for an
    /// unusable config file. `run` makes the same checks and logs them.
    Preflight {
        /// The node's config file, for its underlay, tunnel and blocks
        /// (without it, the node-specific checks are left out).
        #[arg(long, env = "ROUTE_AGENT_CONFIG")]
        config: Option<PathBuf>,
    },
    /// The cluster's nodes in the etcd datastore.
    #[command(subcommand)]
    Node(NodeCommand),
    /// Check a config file: prints `FILE: ok` and a summary, or the
    /// problems (`FILE:LINE:COL: what — fix`) on stderr with exit code 2.
    CheckConfig {
        /// The YAML config file.
        #[arg(env = "ROUTE_AGENT_CONFIG")]
        file: PathBuf,
    },
}

/// `route-agent node ...`.
#[derive(Debug, Subcommand)]
enum NodeCommand {
    /// Remove node NAME from the etcd datastore for good: deletes its
    /// record (every agent drops its sessions and routes) and releases its
    /// blocks. Exit code 1 when etcd has no such node or cannot be
    /// reached, 2 for a config that is not `datastore: etcd`.
    Remove {
        /// The node's name.
        name: String,
        /// A config file with the `etcd` section (any node's).
        #[arg(long, env = "ROUTE_AGENT_CONFIG")]
        config: PathBuf,
    },
}

/// `--log-format`: an unknown value is refused by the parser (exit 2)
/// rather than silently giving text logs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum LogFormat {
    /// Text lines for a terminal or journald.
    Human,
    /// One JSON object per line, for log collectors.
    Json,
}

impl LogFormat {
    /// The name the tunnel child is passed (`--log-format NAME`).
    fn name(self) -> &'static str {
        match self {
            LogFormat::Human => "human",
            LogFormat::Json => "json",
        }
    }
}

/// Exit code for a config that cannot be used (also clap's for bad usage).
const EXIT_CONFIG: u8 = 2;
/// Exit code when this node's address changed in the datastore: the agent
/// stopped (routes persist) to be started again on the new address.
const EXIT_RESTART: u8 = 3;

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

fn preflight(file: Option<&Path>) -> ExitCode {
    use route_agent::preflight::{Host, Level, Node, checks, render};
    let node = match file.map(Config::load).transpose() {
        Ok(None) => Node {
            uses_ipip: true,
            tunnel_device: "tunl0".into(),
            ..Node::default()
        },
        Ok(Some(config)) => {
            let underlay = route_agent::agent::node::NodeView::read(&config.node)
                .map(|n| (n.underlay, n.mtu))
                .map_err(|e| eprintln!("node address not found ({e}): the MTU check is left out"))
                .ok();
            Node::from_config(&config, underlay)
        }
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let findings = checks(&Host::default(), &node);
    print!("{}", render(&findings));
    if findings.iter().any(|f| f.level == Level::Error) {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

fn init_logs(log_format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("ROUTE_AGENT_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colours only on a terminal: log files and journald get plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    if log_format == LogFormat::Json {
        builder.json().init();
    } else {
        builder.init();
    }
    // A panicking task (the BGP speaker's, say) is logged like everything
    // else, so it is found next to the error the agent stops with.
    std::panic::set_hook(Box::new(|info| {
        let thread = std::thread::current();
        tracing::error!(thread = thread.name().unwrap_or("?"), "panic: {info}");
    }));
}

fn runtime() -> Option<tokio::runtime::Runtime> {
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => Some(r),
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            None
        }
    }
}

fn run(file: &Path, log_format: LogFormat) -> ExitCode {
    init_logs(log_format);
    let config = match Config::load(file) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let Some(runtime) = runtime() else {
        return ExitCode::FAILURE;
    };
    let config_datastore = config.datastore();
    tracing::info!(datastore = config_datastore.name(), "config loaded");
    let options = route_agent::agent::Options {
        config_file: Some(file.to_owned()),
        node_name: resolve_node_name(
            config.node.name.as_deref(),
            std::env::var("NODE_NAME").ok().as_deref(),
            hostname().as_deref(),
        ),
        log_format: log_format.name().to_owned(),
        datastore: None,
    };
    match runtime.block_on(route_agent::daemon::run(config, options)) {
        Ok(()) => ExitCode::SUCCESS,
        // The node address the config names (or its autodetection) does
        // not fit this host: a config problem, reported like one.
        Err(DaemonError::Node(e))
            if e.is_config_problem() && config_datastore == DatastoreKind::File =>
        {
            eprintln!("{}: {e}", file.display());
            ExitCode::from(EXIT_CONFIG)
        }
        Err(e @ DaemonError::Agent(AgentError::AddressChanged(_))) => {
            eprintln!("route-agent: {e}");
            ExitCode::from(EXIT_RESTART)
        }
        Err(e) => {
            eprintln!("route-agent: {e}");
            ExitCode::FAILURE
        }
    }
}

fn node_remove(name: &str, file: &Path) -> ExitCode {
    let config = match Config::load(file) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let Some(settings) = config
        .etcd
        .as_ref()
        .filter(|_| config.datastore() == DatastoreKind::Etcd)
    else {
        eprintln!(
            "{}: datastore is {}, not etcd — `node remove` works on the etcd datastore (with `datastore: kubernetes`, `kubectl delete node NAME`)",
            file.display(),
            config.datastore().name()
        );
        return ExitCode::from(EXIT_CONFIG);
    };
    let Some(runtime) = runtime() else {
        return ExitCode::FAILURE;
    };
    let result = runtime.block_on(async {
        let mut etcd = route_agent::datastore::etcd::Etcd::connect(settings)?;
        etcd.remove_node(name).await
    });
    match result {
        Ok(removed) if !removed.record && removed.blocks.is_empty() => {
            eprintln!(
                "no node {name} in etcd under {}: no record, no block claimed",
                settings.prefix
            );
            ExitCode::FAILURE
        }
        Ok(removed) => {
            let blocks: Vec<String> = removed.blocks.iter().map(ToString::to_string).collect();
            println!(
                "node {name} removed: record {}, blocks released: {}",
                if removed.record { "deleted" } else { "absent" },
                if blocks.is_empty() {
                    "none".to_owned()
                } else {
                    blocks.join(", ")
                }
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("cannot remove node {name}: {e}");
            ExitCode::FAILURE
        }
    }
}

fn tunnel(config: ipip::userspace::Config, log_format: LogFormat) -> ExitCode {
    init_logs(log_format);
    let Some(runtime) = runtime() else {
        return ExitCode::FAILURE;
    };
    match runtime.block_on(route_agent::agent::tunnel::run_userspace(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("route-agent tunnel: {e}");
            ExitCode::FAILURE
        }
    }
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::CheckConfig { file } => check_config(&file),
        Command::Node(NodeCommand::Remove { name, config }) => node_remove(&name, &config),
        Command::Preflight { config } => preflight(config.as_deref()),
        Command::Demo => route_agent::demo::run(),
        Command::Status(args) => route_agent::status::run(&args),
        Command::Neighbor(args) => route_agent::inspect::neighbor(&args),
        Command::Rib(args) => route_agent::inspect::rib(&args),
        Command::Run { config, log_format } => run(&config, log_format),
        Command::Tunnel { args, log_format } => tunnel(args.config(), log_format),
    }
}
