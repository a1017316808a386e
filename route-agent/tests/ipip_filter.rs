//! The agent's IPIP filter task ([`route_agent::agent::ipip_filter`]) on
//! this kernel's nf_tables, in a namespace of the test's own (root
//! required): told the kernel backend runs, it installs the filter with
//! the nodes and the plan's tunnel gateways, follows changes, reports
//! what it drops through the status and `/metrics`, and removes the table
//! when stopped with `persist-routes: false` (and keeps it otherwise).
//!
//! IPIP is sent to this namespace's own loopback address by a raw socket
//! with the outer source chosen (`IP_HDRINCL`): it passes the input hook
//! like IPIP from the wire. The kernel's ipip module is not needed for the
//! filter; `ipip/tests/vm.rs` runs it in front of the real module.

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bgp_core::speaker::{Speaker, SpeakerConfig};
use ipip::filter::IpipFilter;
use ipip::packet::{Tunnel, encapsulate};
use route_agent::admin::metrics;
use route_agent::admin::process::ProcessStats;
use route_agent::agent::ipip_filter::{FilterTask, IpipFilterStatus};
use route_agent::planner::{DesiredRoute, RouteKind};
use route_agent::state::{AgentState, TunnelInUse};
use socket2::SockAddr;

const NODE: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 8);
const GATEWAY: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 9);
const STRANGER: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 7);

fn require_root() {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let uid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_default();
    assert_eq!(
        uid, "0",
        "NOT ROOT: the IPIP filter test creates a network namespace and nftables tables and must run as root"
    );
}

/// An IPIP packet from `source` to 127.0.0.1 (an inner UDP datagram).
fn send_ipip(source: Ipv4Addr) {
    let mut inner = vec![0x45, 0, 0, 29, 0, 1, 0x40, 0, 64, 17, 0, 0];
    inner.extend_from_slice(&[10, 244, 2, 7, 10, 244, 1, 5]);
    inner.extend_from_slice(&[0x30, 0x39, 0x30, 0x39, 0, 9, 0, 0, 1]);
    let sum = ipip::packet::checksum(&inner[..20]).to_be_bytes();
    inner[10..12].copy_from_slice(&sum);
    let tunnel = Tunnel {
        local: source,
        mtu: 1500,
        ttl: 64,
        forwarding: false,
    };
    let mut out = Vec::new();
    encapsulate(&inner, Ipv4Addr::LOCALHOST, &tunnel, 1, &mut out).unwrap();
    let sock = ipip::sys::raw_ipip_socket(Ipv4Addr::LOCALHOST).expect("raw socket");
    let to = SockAddr::from(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0));
    sock.send_to(&out, &to).expect("send IPIP");
}

/// Waits until the status shows a filter for which `done` holds.
fn wait_for(state: &AgentState, what: &str, done: impl Fn(&IpipFilterStatus) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let status = state.snapshot().ipip_filter;
        if status.as_ref().is_some_and(&done) {
            return;
        }
        assert!(Instant::now() < deadline, "{what}: status {status:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn tunnel_route(dst: &str, via: Ipv4Addr) -> DesiredRoute {
    DesiredRoute {
        dst: dst.parse().unwrap(),
        kind: RouteKind::Tunnel {
            via: via.into(),
            dev: "tunl0".into(),
            mtu: 1480,
        },
    }
}

/// Starts a filter task in a fresh namespace (on this thread, which
/// `unshare`s), with a speaker for the state.
fn in_fresh_netns_with_state<T: Send + 'static>(
    f: impl FnOnce(Arc<AgentState>) -> T + Send + 'static,
) -> T {
    require_root();
    let result = std::thread::spawn(move || {
        ipip::sys::unshare_net().expect("unshare(CLONE_NEWNET)");
        let up = Command::new("ip")
            .args(["link", "set", "lo", "up"])
            .status()
            .expect("run ip (iproute2)");
        assert!(up.success());
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let (speaker, _routes) = runtime
            .block_on(Speaker::start(SpeakerConfig::new(
                64512,
                Ipv4Addr::new(192, 0, 2, 1),
            )))
            .unwrap();
        f(Arc::new(AgentState::new(speaker)))
    })
    .join();
    match result {
        Ok(v) => v,
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

#[test]
fn the_kernel_backend_gets_a_filter_that_follows_the_nodes_and_reports_its_drops() {
    in_fresh_netns_with_state(|state| {
        let mut task = FilterTask::spawn(state.clone(), Default::default());
        // The nodes, the backend and a plan whose tunnel goes to GATEWAY.
        task.nodes([NODE].into());
        task.backend(TunnelInUse::Kernel);
        task.plan(&[tunnel_route("10.244.3.0/26", GATEWAY)]);
        wait_for(&state, "installed with node and gateway", |f| f.nodes == 2);
        let mut filter = IpipFilter::open().unwrap();
        assert_eq!(filter.nodes().unwrap(), BTreeSet::from([NODE, GATEWAY]));

        // IPIP from a stranger is dropped and counted; from the node and
        // the gateway it is not.
        send_ipip(STRANGER);
        send_ipip(STRANGER);
        send_ipip(NODE);
        send_ipip(GATEWAY);
        // Any input makes the task re-read the counter.
        task.nodes([NODE].into());
        wait_for(&state, "two drops counted", |f| f.dropped_packets == 2);
        let status = state.snapshot();
        let text = metrics::render(
            metrics::Scrape {
                status,
                ..metrics::Scrape::default()
            },
            &route_agent::state::Metrics::default(),
            ProcessStats::default(),
            metrics::Format::Text,
        )
        .unwrap();
        assert!(
            text.lines()
                .any(|l| l == "route_agent_ipip_filter_dropped_packets_total 2"),
            "{text}"
        );

        // The gateway goes from the plan and the node from the cluster:
        // the set follows, element by element.
        task.plan(&[]);
        task.nodes([STRANGER].into());
        wait_for(&state, "the set follows", |f| f.nodes == 1);
        assert_eq!(filter.nodes().unwrap(), BTreeSet::from([STRANGER]));
        send_ipip(NODE);
        task.nodes([STRANGER].into());
        wait_for(&state, "the old node's IPIP dropped", |f| {
            f.dropped_packets == 3
        });

        // persist-routes: true (the default) keeps the filter in front of
        // the routes that stay.
        task.stop(false);
        assert!(filter.dropped().unwrap().is_some(), "kept");

        // A new agent adopts it (the count stays); stopped with
        // persist-routes: false it removes it.
        let mut task = FilterTask::spawn(state.clone(), Default::default());
        task.nodes([STRANGER].into());
        task.backend(TunnelInUse::Kernel);
        wait_for(&state, "adopted", |f| {
            f.nodes == 1 && f.dropped_packets == 3
        });
        task.stop(true);
        assert_eq!(filter.dropped().unwrap(), None, "removed at shutdown");
    });
}

#[test]
fn the_userspace_backend_removes_a_filter_an_earlier_run_left() {
    in_fresh_netns_with_state(|state| {
        let mut filter = IpipFilter::open().unwrap();
        filter.apply(&BTreeSet::from([NODE])).unwrap();
        let mut task = FilterTask::spawn(state.clone(), Default::default());
        task.nodes([NODE].into());
        task.backend(TunnelInUse::Userspace);
        let deadline = Instant::now() + Duration::from_secs(10);
        while filter.dropped().unwrap().is_some() {
            assert!(Instant::now() < deadline, "the table is still there");
            std::thread::sleep(Duration::from_millis(20));
        }
        task.stop(false);
        assert_eq!(state.snapshot().ipip_filter, None);
    });
}
