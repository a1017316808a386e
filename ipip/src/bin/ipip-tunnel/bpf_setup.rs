//! `ipip-tunnel bpf-setup`: the `bpf` backend without the agent (tests,
//! the benchmark, hosts that route by hand).

use std::collections::{BTreeMap, BTreeSet};
use std::process::ExitCode;

use ipip::bpf::{BpfError, BpfTunnel, Config, HEADROOM};
use ipip::cli::BpfSetupArgs;
use ipnetwork::Ipv4Network;
use netlink::consts::{NLM_F_CREATE, NLM_F_REPLACE};
use netlink::route::{self, KernelRoute, RouteShape};
use netlink::{Errno, MessageType, Netlink};

/// Our route protocol (route-agent's default).
const PROTOCOL: u8 = 98;

/// Why `bpf-setup` failed.
#[derive(Debug, thiserror::Error)]
enum SetupError {
    #[error(transparent)]
    Bpf(#[from] BpfError),
    #[error("no interface named {0}")]
    NoUnderlay(String),
    #[error("netlink: {0}")]
    Netlink(#[from] std::io::Error),
    #[error("{route}: the kernel refused it: {errno}")]
    Route { route: String, errno: Errno },
    #[error("{0} is not a network address with its prefix length")]
    Block(String),
}

pub fn run(args: &BpfSetupArgs) -> ExitCode {
    match setup(args) {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(e @ SetupError::Bpf(BpfError::NotBuilt(_) | BpfError::Load { .. })) => {
            eprintln!("ipip-tunnel bpf-setup: {e}");
            ExitCode::from(3)
        }
        Err(e) => {
            eprintln!("ipip-tunnel bpf-setup: {e}");
            ExitCode::FAILURE
        }
    }
}

fn setup(args: &BpfSetupArgs) -> Result<String, SetupError> {
    let ifindex = ipip::sys::if_index(&args.underlay)
        .map_err(|_| SetupError::NoUnderlay(args.underlay.clone()))?;
    let local = args.local.unwrap_or(std::net::Ipv4Addr::UNSPECIFIED);
    let config = Config {
        pin_root: args.pin_root.clone(),
        local,
    };
    if args.remove {
        let mut nl = Netlink::open()?;
        let removed = delete_our_routes(&mut nl)?;
        let (tunnel, _) = BpfTunnel::open_existing(&config)?;
        if let Some(tunnel) = tunnel {
            tunnel.remove(Some(ifindex))?;
        }
        return Ok(format!("bpf removed routes={removed}"));
    }
    let (mut tunnel, opened) = if args.show {
        match BpfTunnel::open_existing(&config)? {
            (Some(t), opened) => (t, opened),
            (None, _) => return Ok("bpf absent".to_owned()),
        }
    } else {
        BpfTunnel::open(&config)?
    };
    let mut blocks = BTreeMap::new();
    for r in &args.routes {
        let block = Ipv4Network::new(r.block, r.prefix)
            .ok()
            .filter(|b| b.network() == r.block)
            .ok_or_else(|| SetupError::Block(format!("{}/{}", r.block, r.prefix)))?;
        blocks.insert(block, r.node);
    }
    let mut line = String::new();
    if !args.show {
        let nodes: BTreeSet<_> = blocks.values().chain(&args.nodes).copied().collect();
        tunnel.set_nodes(&nodes)?;
        tunnel.write_blocks(&blocks)?;
        let ingress = tunnel.attach_ingress(ifindex)?;
        install_routes(&blocks, ifindex, &tunnel)?;
        tunnel.delete_blocks(&blocks)?;
        line = format!(" opened={opened:?} ingress={ingress:?}").to_lowercase();
    }
    let c = tunnel.counters()?;
    let gso = tunnel.settings()?.map(|s| s.gso_mode);
    // Tunnel routes read back from the kernel that run this program.
    let program = tunnel.encap_program();
    let routes = Netlink::open()?
        .routes(route::FAMILY_V4)?
        .iter()
        .filter(|r| r.protocol == PROTOCOL)
        .filter_map(KernelRoute::from_route)
        .filter(|r| matches!(r.shape, RouteShape::BpfGateway { program: p, .. } if p == program))
        .count();
    Ok(format!(
        "bpf encap={} decap={}{line} blocks={} nodes={} routes={routes} gso={gso:?} encapsulated={} encap_no_node={} encap_errors={} encap_gso_switched={} decapsulated={} decap_not_node={} decap_fragments={} decap_errors={}",
        tunnel.encap_program().id,
        tunnel.decap_program_id(),
        tunnel.blocks().len(),
        tunnel.nodes().len(),
        c.encapsulated,
        c.encap_no_node,
        c.encap_errors,
        c.encap_gso_switched,
        c.decapsulated,
        c.decap_not_node,
        c.decap_fragments,
        c.decap_errors,
    ))
}

/// `B via NODE dev UNDERLAY onlink encap bpf xmit … headroom 20 proto 98`
/// for each block, in one batch.
fn install_routes(
    blocks: &BTreeMap<Ipv4Network, std::net::Ipv4Addr>,
    oif: u32,
    tunnel: &BpfTunnel,
) -> Result<(), SetupError> {
    let program = tunnel.encap_program();
    let routes: Vec<_> = blocks
        .iter()
        .map(|(block, node)| {
            (
                ipnetwork::IpNetwork::V4(*block),
                RouteShape::BpfGateway {
                    via: (*node).into(),
                    oif,
                    program,
                    headroom: HEADROOM,
                },
            )
        })
        .collect();
    let mut nl = Netlink::open()?;
    let failures = nl.execute(routes.iter().enumerate().map(|(i, (dst, shape))| {
        (
            MessageType::NEW_ROUTE,
            NLM_F_CREATE | NLM_F_REPLACE,
            i,
            move |tx: &mut Vec<u8>| route::emit_new_route(tx, dst, shape, PROTOCOL),
        )
    }))?;
    match failures.first() {
        Some((i, errno)) => Err(SetupError::Route {
            route: routes
                .get(*i)
                .map(|(d, _)| d.to_string())
                .unwrap_or_default(),
            errno: *errno,
        }),
        None => Ok(()),
    }
}

/// Deletes every route of ours that runs one of our programs.
fn delete_our_routes(nl: &mut Netlink) -> Result<usize, SetupError> {
    let ours: Vec<KernelRoute> = nl
        .routes(route::FAMILY_V4)?
        .iter()
        .filter(|r| r.protocol == PROTOCOL)
        .filter_map(KernelRoute::from_route)
        .filter(|r| matches!(r.shape, RouteShape::BpfGateway { .. }))
        .collect();
    let failures = nl.execute(ours.iter().enumerate().map(|(i, r)| {
        (MessageType::DEL_ROUTE, 0, i, move |tx: &mut Vec<u8>| {
            route::emit_del_route(tx, r, PROTOCOL)
        })
    }))?;
    if let Some((i, errno)) = failures.first() {
        return Err(SetupError::Route {
            route: ours.get(*i).map(|r| r.dst.to_string()).unwrap_or_default(),
            errno: *errno,
        });
    }
    Ok(ours.len())
}
