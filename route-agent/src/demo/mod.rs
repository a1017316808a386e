//! `route-agent demo`: a three-node cluster in network namespaces, built,
//! converged, shown and removed with one command (root only).
//!
//! Nodes A and B share subnet 10.0.1.0/24, node C sits behind a router on
//! 10.0.2.0/24; each runs `route-agent run` with the node-to-node mesh and
//! has one pod. The demo waits until every node holds exactly Calico's
//! CrossSubnet routes (A↔B direct over `eth0`, everything to or from C
//! through `tunl0`: the kernel's IPIP device, or the userspace data plane
//! on a kernel without ipip), prints each node's routing table and a
//! pod-to-pod ping matrix, and removes everything, also on Ctrl-C.

pub mod cluster;
pub mod echo;
mod sys;

use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use cluster::{Cluster, ClusterError};

/// The demo's nodes: name, subnet, host number, pod block.
pub const NODES: [(&str, u8, u8, &str); 3] = [
    ("node-a", 1, 10, "10.244.1.0/26"),
    ("node-b", 1, 11, "10.244.2.0/26"),
    ("node-c", 2, 10, "10.244.3.0/26"),
];

/// The agents' route protocol (the default).
const PROTO: u8 = crate::fib::DEFAULT_PROTOCOL;
/// Tunnel routes' MTU: the veths' 1500 − 20.
const TUNNEL_MTU: u32 = 1480;

/// The config of node `i` of `NODES`.
pub fn node_config(name: &str, address: &str, block: &str, mesh: &[String]) -> String {
    format!(
        "node:\n  name: {name}\n  address: {address}\n\
         pools:\n  - cidr: 10.244.0.0/16\n    ipip-mode: cross-subnet\n\
         blocks: [{block}]\n\
         tunnel:\n  backend: auto\n\
         mesh:\n  peers: [{}]\n\
         graceful-restart:\n  enabled: true\n  restart-time: 10\n\
         admin:\n  listen: 127.0.0.1:9179\n",
        mesh.join(", ")
    )
}

/// Builds the cluster and starts the agents.
fn build(cluster: &mut Cluster, agent: &Path) -> Result<(), ClusterError> {
    build_with(cluster, agent, |_, config| config)
}

/// Builds the demo's nodes ([`NODES`]) and their pods in `cluster` and
/// starts `agent` on each with [`node_config`] as `edit(name, config)`
/// changes it (the tests' variations: another backend, more settings).
///
/// # Errors
/// [`ClusterError`] when a namespace, link or agent cannot be set up.
pub fn build_with(
    cluster: &mut Cluster,
    agent: &Path,
    edit: impl Fn(&str, String) -> String,
) -> Result<(), ClusterError> {
    for (name, subnet, host, block) in NODES {
        println!("  {name}: namespace, 10.0.{subnet}.{host}/24, pod in {block}");
        cluster.add_node(name, subnet, host)?;
        let block = block
            .parse()
            .map_err(|source| ClusterError::Block { block, source })?;
        cluster.add_pod(name, block)?;
    }
    let addresses: Vec<String> = cluster
        .nodes
        .iter()
        .map(|n| n.address.ip().to_string())
        .collect();
    for (name, _, _, block) in NODES {
        let address = cluster.node(name)?.address;
        let others: Vec<String> = addresses
            .iter()
            .filter(|a| **a != address.ip().to_string())
            .cloned()
            .collect();
        let config = edit(
            name,
            node_config(name, &address.to_string(), block, &others),
        );
        cluster.start_agent(name, agent, &config)?;
    }
    Ok(())
}

fn body(
    tag: &str,
    cluster: &Mutex<Option<Cluster>>,
    stop: &AtomicBool,
) -> Result<bool, ClusterError> {
    let agent = std::env::current_exe().map_err(ClusterError::NoExecutable)?;
    println!("route-agent demo: building a three-node cluster in network namespaces");
    {
        let mut guard = cluster.lock().unwrap_or_else(PoisonError::into_inner);
        let c = guard.insert(Cluster::new(tag)?);
        build(c, &agent)?;
    }
    if stop.load(Ordering::SeqCst) {
        return Ok(false);
    }
    println!("\nwaiting for BGP and the kernel routes to converge ...");
    let mut guard = cluster.lock().unwrap_or_else(PoisonError::into_inner);
    let Some(c) = guard.as_mut() else {
        return Ok(false);
    };
    let wrong = c.wait_converged(PROTO, TUNNEL_MTU, Duration::from_secs(60));
    for n in &c.nodes {
        let table = cluster::run("ip", &["-n", &n.ns, "route", "show"])
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        println!("\n{} ({}): ip route", n.name, n.address);
        for line in table.lines() {
            println!("  {line}");
        }
    }
    for (name, want, have) in &wrong {
        println!(
            "\n{name} did not converge: wanted {want:?}, has {have:?}\nits log:\n{}",
            c.log(name)
        );
    }
    println!("\npod-to-pod ping:");
    let (matrix, all) = c.ping_matrix(3);
    print!("{matrix}");
    let tunnel = c
        .nodes
        .first()
        .and_then(|n| cluster::run("ip", &["-n", &n.ns, "-d", "link", "show", "tunl0"]).ok())
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let bpf_routes = c.nodes.first().is_some_and(|n| {
        cluster::routes(&n.ns, PROTO).is_ok_and(|r| r.iter().any(|l| l.ends_with("encap bpf")))
    });
    let backend = if tunnel.contains("ipip") {
        "kernel ipip"
    } else if bpf_routes {
        "bpf (eBPF programs: encap bpf xmit on tunnel routes, tc ingress; this kernel has no ipip module)"
    } else {
        "userspace (this kernel has no ipip module)"
    };
    println!("\ntunnel backend: {backend}");
    Ok(wrong.is_empty() && all)
}

/// Runs the demo; the exit code says whether every node converged and
/// every pod reached every other.
pub fn run() -> ExitCode {
    let is_root = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false);
    if !is_root {
        eprintln!(
            "route-agent demo creates network namespaces: run it as root (sudo route-agent demo)"
        );
        return ExitCode::from(2);
    }
    let missing = cluster::missing_tools();
    if !missing.is_empty() {
        let tools: Vec<&str> = missing.iter().map(|m| m.0).collect();
        let packages: Vec<&str> = missing.iter().map(|m| m.1).collect();
        eprintln!(
            "route-agent demo needs {} — install it first: apt-get install -y {}",
            tools.join(" and "),
            packages.join(" ")
        );
        return ExitCode::from(2);
    }
    let cluster: Arc<Mutex<Option<Cluster>>> = Arc::new(Mutex::new(None));
    let stop = Arc::new(AtomicBool::new(false));
    let tag = format!("rademo{}", std::process::id());
    let worker = {
        let (cluster, stop, tag) = (cluster.clone(), stop.clone(), tag.clone());
        std::thread::spawn(move || body(&tag, &cluster, &stop))
    };
    // Ctrl-C or SIGTERM: stop waiting and clean up.
    let interrupted = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt.block_on(async {
            use tokio::signal::unix::{SignalKind, signal};
            let Ok(mut term) = signal(SignalKind::terminate()) else {
                return false;
            };
            let finished = async {
                while !worker.is_finished() {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            };
            tokio::select! {
                () = finished => false,
                _ = tokio::signal::ctrl_c() => true,
                _ = term.recv() => true,
            }
        }),
        Err(_) => false,
    };
    if interrupted {
        // The worker may hold the cluster: clean up by name instead.
        stop.store(true, Ordering::SeqCst);
        println!("\ninterrupted: removing the namespaces and stopping the agents");
        cluster::remove_by_prefix(&tag);
        return ExitCode::FAILURE;
    }
    let outcome = worker.join().ok();
    println!("\nremoving the namespaces and stopping the agents");
    drop(
        cluster
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take(),
    );
    match outcome {
        Some(Ok(true)) => {
            println!("demo passed: every node converged and every pod reached every other pod");
            ExitCode::SUCCESS
        }
        Some(Ok(false)) | None => ExitCode::FAILURE,
        Some(Err(e)) => {
            eprintln!("route-agent demo: {e}");
            ExitCode::FAILURE
        }
    }
}
