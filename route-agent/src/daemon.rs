//! `route-agent run`: the agent and, beside it, the admin API on the
//! agent's shared state. Neither imports the other: the agent
//! ([`crate::agent`]) writes [`crate::state::AgentState`], the admin API
//! ([`crate::admin`]) reads it, and this module starts both.
//!
//! With `datastore: kubernetes` it first starts the Node watch
//! ([`crate::datastore::kubernetes`]), waits for this node's Node, reads
//! the prefix length of its address from the interface that holds it, and
//! starts the agent on [`crate::datastore::desired_config`]; once the
//! node's routes are programmed it sets the Node's `NetworkUnavailable`
//! condition to False.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;

use ipnetwork::{IpNetwork, Ipv4Network};

use crate::admin::{self, AdminError};
use crate::agent::node::{NodeError, NodeView};
use crate::agent::{Agent, AgentDatastore, AgentError, Options, Signals};
use crate::config::Config;
use crate::datastore::ClusterNode;
use crate::datastore::etcd::record::NodeRecord;
use crate::datastore::etcd::{Etcd, EtcdError, source as etcd_source};
use crate::datastore::kubernetes::{self, KubernetesError};
use crate::datastore::{DatastoreKind, desired_config};
use crate::fib::Netlink;

/// Why the daemon could not run.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The node (address, interface, MTU) could not be read.
    #[error("{0}")]
    Node(#[from] NodeError),
    /// The admin API could not listen.
    #[error("{0}")]
    Admin(#[from] AdminError),
    /// The agent could not start.
    #[error("{0}")]
    Agent(#[from] AgentError),
    /// The Kubernetes datastore could not start.
    #[error("{0}")]
    Kubernetes(#[from] KubernetesError),
    /// `datastore: kubernetes` without a node name.
    #[error(
        "no node name: with `datastore: kubernetes` set NODE_NAME (the DaemonSet passes spec.nodeName) or node.name"
    )]
    NoNodeName,
    /// `datastore: etcd` and etcd refused for good (a full pool, a
    /// configured block held by another node, unreadable TLS files).
    #[error("{0}")]
    Etcd(#[from] EtcdError),
    /// `datastore: etcd` without a node name.
    #[error("no node name: with `datastore: etcd` set node.name, NODE_NAME, or a hostname")]
    NoEtcdNodeName,
    /// `datastore: etcd` without the `etcd` section (the config check
    /// refuses it first).
    #[error("datastore is etcd but the config has no `etcd` section")]
    NoEtcdSection,
    /// The etcd source stopped before this node's record was in.
    #[error("the etcd watch stopped before node {0}'s record was in")]
    EtcdStopped(String),
    /// The Node watch ended before this node was found.
    #[error("the Kubernetes Node watch stopped before Node {0} was found")]
    WatchStopped(String),
    /// This node's address (from its Node) is on no interface here.
    #[error(
        "Node {name}'s address {address} (its InternalIP, or the projectcalico.org/IPv4Address annotation) is on no interface of this host — check the kubelet's --node-ip, or the annotation"
    )]
    NodeAddressNotHere {
        /// The node.
        name: String,
        /// Its address.
        address: Ipv4Addr,
    },
}

/// Runs the agent, with its admin API beside it, until SIGTERM or SIGINT.
///
/// In this order, so that each failure is reported before anything it
/// would leave half-started: the signal handlers are installed (first of
/// all, so that a SIGHUP during the start is kept for the agent and a
/// SIGTERM stops a start that waits, instead of either killing the
/// process), the node is read (a node address that does not fit this host
/// is a config problem), the admin listener is bound (a taken port fails
/// the start before any BGP session opens), the agent starts its speaker,
/// and only then is the admin API served, from the agent's state. The API
/// stops when the agent has stopped.
pub async fn run(config: Config, mut options: Options) -> Result<(), DaemonError> {
    let mut signals = Signals::install()?;
    let (config, node, client) = match config.datastore() {
        DatastoreKind::File => {
            let node = NodeView::read(&config.node)?;
            (config, node, None)
        }
        DatastoreKind::Kubernetes => {
            let started = tokio::select! {
                started = kubernetes_start(config, &mut options) => started?,
                () = signals.stop() => {
                    tracing::info!("stopped while waiting for the datastore");
                    return Ok(());
                }
            };
            let (config, node, client) = started;
            (config, node, Some(client))
        }
        DatastoreKind::Etcd => {
            let (config, node) = etcd_start(config, &mut options).await?;
            (config, node, None)
        }
    };
    tracing::info!(address = %node.address, underlay = %node.underlay, mtu = node.mtu, "node address");
    let preflight = crate::preflight::at_start(&config, (&node.underlay, node.mtu));
    let listener = admin::bind(config.admin.listen).await?;
    let node_name = options.node_name.clone();
    let agent = Agent::start(config, node, options, signals).await?;
    agent.state().update(|s| {
        s.preflight = preflight.iter().map(|f| (f.check, f.level)).collect();
    });
    if let (Some(client), Some(name)) = (client, node_name) {
        let state = agent.state();
        tokio::spawn(kubernetes::mark_network_available(
            client,
            name,
            move || {
                let s = state.snapshot();
                s.fib.reconciles > 0 && s.fib.in_sync
            },
        ));
    }
    let server = tokio::spawn(admin::serve(listener, agent.state()));
    let result = agent.run().await;
    server.abort();
    Ok(result?)
}

/// Starts the Node watch and waits for this node; returns the config to
/// run, the node and the client.
async fn kubernetes_start(
    file: Config,
    options: &mut Options,
) -> Result<(Config, NodeView, kube::Client), DaemonError> {
    let name = options.node_name.clone().ok_or(DaemonError::NoNodeName)?;
    let client = kubernetes::client().await?;
    let pools: Vec<IpNetwork> = file.pools.iter().map(|p| p.cidr).collect();
    let source = kubernetes::start(client.clone(), name.clone(), pools);
    let mut snapshots = source.snapshots.clone();
    let started = tokio::time::Instant::now();
    let snapshot = loop {
        let current = snapshots.borrow_and_update().clone();
        if let Some(s) = current.filter(|s| s.nodes.get(&name).is_some()) {
            break s;
        }
        tokio::select! {
            changed = snapshots.changed() => {
                if changed.is_err() {
                    return Err(DaemonError::WatchStopped(name));
                }
            }
            () = tokio::time::sleep(Duration::from_secs(10)) => tracing::info!(
                node = %name,
                waited_s = started.elapsed().as_secs(),
                "waiting for this node's Node object (listed, with an InternalIP and valid podCIDRs)"
            ),
        }
    };
    let me = snapshot
        .nodes
        .get(&name)
        .cloned()
        .ok_or(DaemonError::NoNodeName)?;
    let local = local_address(&name, me.address)?;
    tracing::info!(node = %name, nodes = snapshot.nodes.len(), blocks = ?me.blocks, "Kubernetes datastore in sync");
    let config = desired_config(&file, &snapshot.nodes, &me, local);
    let node = NodeView::read(&config.node)?;
    options.datastore = Some(AgentDatastore {
        name,
        file,
        initial: snapshot,
        snapshots,
        pools: Arc::new(source.pools),
        etcd: None,
    });
    Ok((config, node, client))
}

/// `datastore: etcd`: claims this node's blocks (the configured ones, else
/// one per pool, IPv4 and IPv6), writes its record, starts the watch and waits for
/// the record to come back in a snapshot. etcd being unreachable is
/// waited out (logged every 10 s); a full pool or a configured block held
/// by another node ends the start.
async fn etcd_start(
    file: Config,
    options: &mut Options,
) -> Result<(Config, NodeView), DaemonError> {
    let name = options
        .node_name
        .clone()
        .ok_or(DaemonError::NoEtcdNodeName)?;
    let settings = file.etcd.clone().ok_or(DaemonError::NoEtcdSection)?;
    let etcd = Etcd::connect(&settings)?;
    let view = NodeView::read(&file.node)?;
    let blocks = etcd_blocks(&etcd, &name, &file).await?;
    let me = ClusterNode {
        name: name.clone(),
        address: view.address,
        // As the record holds it, so that the record read back equals it.
        address_v6: crate::datastore::etcd::record::recorded_v6(
            view.address_v6.map(|a| a.ip()),
            &blocks,
        ),
        tunnel_address: file.tunnel.address.or_else(|| {
            blocks.iter().find_map(|b| match b {
                IpNetwork::V4(b) => Some(b.network()),
                IpNetwork::V6(_) => None,
            })
        }),
        blocks,
        reflector: file.route_reflector.as_ref().map(|r| r.cluster_id),
    };
    let record = NodeRecord::of(&me, file.asn);
    etcd_retry("write this node's record", || {
        let mut etcd = etcd.clone();
        let record = record.clone();
        async move { etcd.put_record(&record).await }
    })
    .await?;
    let pools: Vec<IpNetwork> = file.pools.iter().map(|p| p.cidr).collect();
    let source = etcd_source::start(etcd, pools, file.asn);
    let mut snapshots = source.snapshots.clone();
    let started = tokio::time::Instant::now();
    let snapshot = loop {
        let current = snapshots.borrow_and_update().clone();
        if let Some(s) = current.filter(|s| s.nodes.get(&name) == Some(&me)) {
            break s;
        }
        tokio::select! {
            changed = snapshots.changed() => {
                if changed.is_err() {
                    return Err(DaemonError::EtcdStopped(name));
                }
            }
            () = tokio::time::sleep(Duration::from_secs(10)) => tracing::info!(
                node = %name,
                waited_s = started.elapsed().as_secs(),
                "waiting for this node's etcd record to be listed (and accepted: see the skip lines)"
            ),
        }
    };
    tracing::info!(node = %name, nodes = snapshot.nodes.len(), blocks = ?me.blocks, "etcd datastore in sync");
    let config = desired_config(&file, &snapshot.nodes, &me, view.address);
    let node = NodeView::read(&config.node)?;
    options.datastore = Some(AgentDatastore {
        name,
        file,
        initial: snapshot,
        snapshots,
        pools: Arc::new(source.pools),
        etcd: Some(settings),
    });
    Ok((config, node))
}

/// This node's blocks in etcd: each configured block claimed as it is,
/// else one block claimed in each pool (its `block-size`; by default /26
/// in an IPv4 pool, /122 in an IPv6 one, as Calico's). A claim held
/// already is kept, so a restart keeps its blocks.
async fn etcd_blocks(
    etcd: &Etcd,
    name: &str,
    file: &Config,
) -> Result<Vec<IpNetwork>, DaemonError> {
    let mut out = Vec::new();
    if !file.blocks.is_empty() {
        for block in &file.blocks {
            let b = *block;
            etcd_retry("claim a configured block", || {
                let mut etcd = etcd.clone();
                async move { etcd.claim_exact(name, b).await }
            })
            .await?;
            out.push(b);
        }
        return Ok(out);
    }
    for pool in &file.pools {
        let cidr = pool.cidr;
        let size = file.block_size(pool);
        let block = etcd_retry("claim a block", || {
            let mut etcd = etcd.clone();
            async move { etcd.claim_block(name, cidr, size).await }
        })
        .await?;
        out.push(block);
    }
    Ok(out)
}

/// [`crate::datastore::etcd::retry`], failing as the daemon does.
async fn etcd_retry<T, F, Fut>(what: &str, attempt: F) -> Result<T, DaemonError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, EtcdError>>,
{
    Ok(crate::datastore::etcd::retry(what, attempt).await?)
}

/// This node's address with a prefix length: a known one (Calico's
/// annotation) as it is, else that of the local interface that holds it
/// (as autodetection reads it; CrossSubnet needs the subnet).
fn local_address(name: &str, address: Ipv4Network) -> Result<Ipv4Network, DaemonError> {
    if address.prefix() < 32 {
        return Ok(address);
    }
    let mut netlink = Netlink::open().map_err(NodeError::Netlink)?;
    let addrs = crate::netinfo::addresses(&mut netlink).map_err(NodeError::Netlink)?;
    addrs
        .iter()
        .find_map(|a| match a.address {
            IpNetwork::V4(n) if IpAddr::V4(n.ip()) == IpAddr::V4(address.ip()) => Some(n),
            _ => None,
        })
        .ok_or_else(|| DaemonError::NodeAddressNotHere {
            name: name.to_owned(),
            address: address.ip(),
        })
}
