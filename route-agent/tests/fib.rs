//! The FIB reconciler against a real kernel: each test builds its own
//! network namespace (a veth pair as the underlay, a TUN named tunl0 as the
//! tunnel device), runs the reconciler inside it and checks the result with
//! `ip route`. Needs root (CAP_SYS_ADMIN and CAP_NET_ADMIN).
// The one unsafe call, setns(2), is confined to `enter` below.
#![allow(unsafe_code)]

use std::fs::File;
use std::os::fd::AsRawFd;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use route_agent::fib::{
    AckMode, DEFAULT_PROTOCOL, Errno, FailedRoute, Fib, NexthopMode, ReconcileStats, Reconciled,
    RouteOp,
};
use route_agent::planner::{DesiredRoute, RouteKind};

/// A throwaway network namespace, deleted on drop (on every path,
/// panics included).
struct Netns {
    name: String,
}

impl Netns {
    fn new(test: &str) -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "rafib-{}-{}-{test}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let out = Command::new("ip")
            .args(["netns", "add", &name])
            .output()
            .expect("run ip");
        assert!(
            out.status.success(),
            "`ip netns add {name}` failed: {} — these tests need root \
             (CAP_SYS_ADMIN, CAP_NET_ADMIN) and iproute2",
            String::from_utf8_lossy(&out.stderr)
        );
        Self { name }
    }

    /// A namespace with the underlay `veth0` (10.66.0.5/24, peer `veth1`)
    /// and a TUN named `tunl0`, all up.
    fn node(test: &str) -> Self {
        let ns = Self::new(test);
        ns.ip("link add veth0 type veth peer name veth1");
        ns.ip("addr add 10.66.0.5/24 dev veth0");
        ns.ip("link set veth0 up");
        ns.ip("link set veth1 up");
        ns.ip("tuntap add tunl0 mode tun");
        ns.ip("link set tunl0 up");
        ns
    }

    /// `ip -n NS <args>`; panics with ip's message on failure.
    fn ip(&self, args: &str) -> String {
        let out = Command::new("ip")
            .args(["-n", &self.name])
            .args(args.split_whitespace())
            .output()
            .expect("run ip");
        assert!(
            out.status.success(),
            "`ip -n {} {args}` failed: {}",
            self.name,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf-8")
    }

    /// Our routes as `ip route show proto 98` lists them, one per line,
    /// trailing blanks trimmed.
    fn our_routes(&self) -> Vec<String> {
        self.routes(&format!("proto {DEFAULT_PROTOCOL}"))
    }

    fn routes(&self, filter: &str) -> Vec<String> {
        self.ip(&format!("route show {filter}"))
            .lines()
            .map(|l| l.trim_end().to_string())
            .collect()
    }

    /// Runs `body` on a thread inside the namespace (netlink sockets it
    /// opens belong to the namespace).
    fn run<T: Send>(&self, body: impl FnOnce() -> T + Send) -> T {
        let path = format!("/run/netns/{}", self.name);
        std::thread::scope(|s| {
            s.spawn(|| {
                enter(&path);
                body()
            })
            .join()
            .unwrap_or_else(|e| std::panic::resume_unwind(e))
        })
    }

    /// One reconcile pass inside the namespace.
    fn reconcile(&self, plan: &[DesiredRoute]) -> Reconciled {
        self.reconcile_acking(plan, AckMode::default())
    }

    fn reconcile_acking(&self, plan: &[DesiredRoute], ack: AckMode) -> Reconciled {
        self.run(|| {
            let mut fib = Fib::open_default().expect("netlink socket");
            fib.set_ack_mode(ack);
            fib.reconcile(plan).expect("reconcile")
        })
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// Moves the calling thread into the network namespace at `path`.
fn enter(path: &str) {
    let file = File::open(path).expect("open netns");
    // SAFETY: setns(2) takes a valid fd (kept open by `file` for the
    // call) and a namespace type; it touches no memory of ours and only
    // changes this thread's network namespace.
    let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
    assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
}

fn route(dst: &str, kind: RouteKind) -> DesiredRoute {
    DesiredRoute {
        dst: dst.parse().expect("prefix"),
        kind,
    }
}

fn direct(via: &str, dev: &str) -> RouteKind {
    RouteKind::Direct {
        via: via.parse().expect("ip"),
        dev: dev.into(),
    }
}

fn tunnel(via: &str, mtu: u32) -> RouteKind {
    RouteKind::Tunnel {
        via: via.parse().expect("ip"),
        dev: "tunl0".into(),
        mtu,
    }
}

/// A local block, a same-subnet peer and a cross-subnet peer.
fn plan() -> Vec<DesiredRoute> {
    vec![
        route("10.244.1.0/26", RouteKind::Blackhole),
        route("10.244.2.0/26", direct("10.66.0.6", "veth0")),
        route("10.244.3.0/26", tunnel("10.67.0.7", 1440)),
    ]
}

/// `ip route show proto 98` after `plan()` (tunl0 has no carrier: no
/// process holds the TUN open).
fn plan_text() -> Vec<String> {
    [
        "blackhole 10.244.1.0/26",
        "10.244.2.0/26 via 10.66.0.6 dev veth0 onlink",
        "10.244.3.0/26 via 10.67.0.7 dev tunl0 onlink linkdown mtu 1440",
    ]
    .map(String::from)
    .to_vec()
}

fn stats(added: usize, replaced: usize, deleted: usize, unchanged: usize) -> ReconcileStats {
    ReconcileStats {
        added,
        replaced,
        deleted,
        unchanged,
        errors: 0,
    }
}

#[test]
fn installs_blackhole_direct_and_tunnel_routes_exactly() {
    let ns = Netns::node("install");
    let done = ns.reconcile(&plan());
    assert_eq!(done.errors, vec![]);
    assert_eq!(done.stats, stats(3, 0, 0, 0));
    assert_eq!(ns.our_routes(), plan_text());
}

#[test]
fn second_run_with_same_plan_changes_nothing() {
    let ns = Netns::node("rerun");
    ns.reconcile(&plan());
    // A fresh socket, as after a restart.
    let again = ns.reconcile(&plan());
    assert_eq!(again.errors, vec![]);
    assert_eq!(again.stats, stats(0, 0, 0, 3));
    assert_eq!(ns.our_routes(), plan_text());
}

#[test]
fn route_dropped_from_plan_is_deleted_and_only_it() {
    let ns = Netns::node("drop");
    ns.reconcile(&plan());
    let mut smaller = plan();
    smaller.remove(1);
    let done = ns.reconcile(&smaller);
    assert_eq!(done.errors, vec![]);
    assert_eq!(done.stats, stats(0, 0, 1, 2));
    let mut expected = plan_text();
    expected.remove(1);
    assert_eq!(ns.our_routes(), expected);
}

#[test]
fn route_altered_by_someone_else_is_restored() {
    let ns = Netns::node("restore");
    ns.reconcile(&plan());
    ns.ip("route replace 10.244.2.0/26 via 10.66.0.9 dev veth0 onlink proto 98");
    ns.ip("route replace 10.244.3.0/26 via 10.67.0.7 dev tunl0 onlink mtu 1300 proto 98");
    ns.ip("route add 10.244.1.0/26 via 10.66.0.9 dev veth0 onlink proto 98 metric 50");
    ns.ip("route add 10.244.9.0/26 via 10.66.0.9 dev veth0 onlink proto 98");
    let done = ns.reconcile(&plan());
    assert_eq!(done.errors, vec![]);
    // Two rewritten in place; the stray metric-50 twin and the unplanned
    // route deleted; the blackhole untouched.
    assert_eq!(done.stats, stats(0, 2, 2, 1));
    assert_eq!(ns.our_routes(), plan_text());
}

#[test]
fn missing_device_is_a_typed_error_and_the_rest_of_the_batch_installs() {
    let ns = Netns::node("nodev");
    let mut plan = plan();
    plan.insert(1, route("10.244.4.0/26", direct("10.66.0.6", "nosuch0")));
    let done = ns.reconcile(&plan);
    assert_eq!(done.stats.added, 3);
    assert_eq!(done.stats.errors, 1);
    let [error] = &done.errors[..] else {
        panic!("one error expected: {:?}", done.errors);
    };
    assert_eq!(error.op, RouteOp::Add);
    assert_eq!(error.errno, Errno::NoDevice);
    assert_eq!(error.route, FailedRoute::Planned(plan[1].clone()));
    assert_eq!(
        error.route.to_string(),
        "10.244.4.0/26 via 10.66.0.6 dev nosuch0 onlink"
    );
    assert!(error.to_string().contains("ENODEV"), "{error}");
    assert_eq!(ns.our_routes(), plan_text());
}

fn kernel_refusal_is_matched_to_its_route(ack: AckMode) {
    let ns = Netns::node("seq");
    // Not onlink, and 192.0.2.1 is on no connected subnet: the kernel
    // refuses this one request in the middle of the batch.
    let unreachable = route(
        "10.244.5.0/26",
        RouteKind::Underlay {
            via: "192.0.2.1".parse().expect("ip"),
            dev: "veth0".into(),
        },
    );
    let mut plan = plan();
    plan.insert(2, unreachable.clone());
    // More than one batch's worth, sent after it (the plan goes out in
    // prefix order), so the failure sits among many in its batch.
    for i in 0..300u32 {
        plan.push(route(
            &format!("10.{}.{}.0/24", 250 + i / 256, i % 256),
            RouteKind::Blackhole,
        ));
    }
    let done = ns.reconcile_acking(&plan, ack);
    let [error] = &done.errors[..] else {
        panic!("one error expected: {:?}", done.errors);
    };
    assert_eq!(error.errno, Errno::NetworkUnreachable);
    assert_eq!(error.route, FailedRoute::Planned(unreachable.clone()));
    assert_eq!(error.route.to_string(), unreachable.to_string());
    assert_eq!(done.stats.added, 303);
    assert_eq!(ns.our_routes().len(), 303);
}

#[test]
fn kernel_refusal_is_matched_to_its_route_by_sequence_number() {
    kernel_refusal_is_matched_to_its_route(AckMode::LastOfBatch);
}

#[test]
fn kernel_refusal_is_matched_to_its_route_when_every_request_is_acked() {
    kernel_refusal_is_matched_to_its_route(AckMode::EveryRequest);
}

#[test]
fn routes_of_other_protocols_are_never_touched() {
    let ns = Netns::node("others");
    ns.ip("route add 10.99.0.0/24 via 10.66.0.1 dev veth0 proto static");
    ns.ip("route add 10.244.1.0/26 via 10.66.0.1 dev veth0 proto static metric 100");
    ns.ip("route add 10.244.7.0/26 via 10.66.0.1 dev veth0 proto bird");
    let before = ns.routes("");
    // The plan asks for the destination bird holds at the same metric:
    // refused, not overwritten.
    let mut plan = plan();
    plan.push(route("10.244.7.0/26", RouteKind::Blackhole));
    let done = ns.reconcile(&plan);
    assert_eq!(done.stats.added, 3);
    let [error] = &done.errors[..] else {
        panic!("one error expected: {:?}", done.errors);
    };
    assert_eq!(error.errno, Errno::Exists);
    assert_eq!(
        error.route,
        FailedRoute::Planned(route("10.244.7.0/26", RouteKind::Blackhole))
    );
    assert_eq!(error.route.to_string(), "blackhole 10.244.7.0/26");
    // An empty plan removes ours and nothing else.
    let done = ns.reconcile(&[]);
    assert_eq!(done.stats, stats(0, 0, 3, 0));
    assert_eq!(ns.routes(""), before);
    assert_eq!(ns.our_routes(), Vec::<String>::new());
}

#[test]
fn ipv6_routes_install_and_a_rerun_leaves_them_alone() {
    let ns = Netns::node("v6");
    ns.ip("addr add fd00:66::5/64 dev veth0 nodad");
    let plan = vec![
        route("fd00:244:1::/122", RouteKind::Blackhole),
        route(
            "fd00:244:2::/122",
            RouteKind::Underlay {
                via: "fd00:66::6".parse().expect("ip"),
                dev: "veth0".into(),
            },
        ),
    ];
    let done = ns.reconcile(&plan);
    assert_eq!(done.errors, vec![]);
    assert_eq!(done.stats, stats(2, 0, 0, 0));
    // The kernel gives IPv6 routes metric 1024 and blackholes dev lo.
    let text = vec![
        "blackhole fd00:244:1::/122 dev lo metric 1024 pref medium".to_string(),
        "fd00:244:2::/122 via fd00:66::6 dev veth0 metric 1024 pref medium".to_string(),
    ];
    let shown: Vec<String> = ns
        .ip(&format!("-6 route show proto {DEFAULT_PROTOCOL}"))
        .lines()
        .map(|l| l.trim_end().to_string())
        .collect();
    assert_eq!(shown, text);
    let again = ns.reconcile(&plan);
    assert_eq!(again.stats, stats(0, 0, 0, 2));
    let done = ns.reconcile(&plan[..1]);
    assert_eq!(done.stats, stats(0, 0, 1, 1));
}

#[test]
fn with_nexthop_objects_ipv6_routes_go_through_objects_too_and_a_rerun_leaves_them_alone() {
    let ns = Netns::node_with_carrier("v6nh");
    ns.ip("addr add fd00:66::5/64 dev veth0 nodad");
    let mut plan = plan();
    plan.push(route("fd00:244:2::/122", direct("fd00:66::6", "veth0")));
    plan.push(route(
        "fd00:244:3::/122",
        RouteKind::Underlay {
            via: "fd00:66::7".parse().expect("ip"),
            dev: "veth0".into(),
        },
    ));
    let done = ns.reconcile_nexthops(&plan, true);
    assert_eq!(done.errors, vec![]);
    assert_eq!(done.stats, stats(5, 0, 0, 0));
    let shown = ns.ip(&format!("-6 route show proto {DEFAULT_PROTOCOL}"));
    for (dst, via) in [
        ("fd00:244:2::/122", "fd00:66::6"),
        ("fd00:244:3::/122", "fd00:66::7"),
    ] {
        assert!(
            shown
                .lines()
                .any(|l| l.starts_with(&format!("{dst} nhid ")) && l.contains(via)),
            "{dst} through an object via {via}:\n{shown}"
        );
    }
    let get = ns.ip("-6 route get fd00:244:3::9");
    assert!(get.contains("via fd00:66::7 dev veth0"), "{get}");
    let again = ns.reconcile_nexthops(&plan, true);
    assert_eq!(again.stats, stats(0, 0, 0, 5));
    assert_eq!((again.nexthops_created, again.nexthops_deleted), (0, 0));
}

#[test]
fn refusal_of_the_last_request_of_a_batch_closes_the_batch() {
    let ns = Netns::node("last");
    // Sent in prefix order: the unreachable route is the batch's last
    // request, whose reply is the one the batch waits for.
    let unreachable = route(
        "10.244.200.0/26",
        RouteKind::Underlay {
            via: "192.0.2.1".parse().expect("ip"),
            dev: "veth0".into(),
        },
    );
    let mut plan = plan();
    plan.push(unreachable.clone());
    let done = ns.reconcile(&plan);
    let [error] = &done.errors[..] else {
        panic!("one error expected: {:?}", done.errors);
    };
    assert_eq!(error.route, FailedRoute::Planned(unreachable.clone()));
    assert_eq!(error.route.to_string(), unreachable.to_string());
    assert_eq!(error.errno, Errno::NetworkUnreachable);
    assert_eq!(done.stats.added, 3);
    assert_eq!(ns.our_routes(), plan_text());
}

#[test]
fn second_route_appended_under_our_key_is_deleted_and_ours_kept() {
    let ns = Netns::node("append");
    ns.reconcile(&plan());
    // Same destination, metric and protocol: the kernel keeps both.
    ns.ip("route append 10.244.2.0/26 via 10.66.0.9 dev veth0 onlink proto 98");
    assert_eq!(ns.our_routes().len(), 4);
    let done = ns.reconcile(&plan());
    assert_eq!(done.errors, vec![]);
    assert_eq!(done.stats, stats(0, 0, 1, 3));
    assert_eq!(ns.our_routes(), plan_text());
}

impl Netns {
    /// One reconcile pass with nexthop objects on or off.
    fn reconcile_nexthops(&self, plan: &[DesiredRoute], on: bool) -> Reconciled {
        self.reconcile_mode(
            plan,
            if on {
                NexthopMode::On
            } else {
                NexthopMode::Off
            },
        )
    }

    /// One reconcile pass in nexthop mode `mode`.
    fn reconcile_mode(&self, plan: &[DesiredRoute], mode: NexthopMode) -> Reconciled {
        self.run(|| {
            let mut fib = Fib::open_default().expect("netlink socket");
            fib.set_nexthop_mode(mode);
            fib.reconcile(plan).expect("reconcile")
        })
    }

    /// `ip nexthop show proto 98`, one per line.
    fn our_nexthops(&self) -> Vec<String> {
        let mut lines: Vec<String> = self
            .ip(&format!("nexthop show proto {DEFAULT_PROTOCOL}"))
            .lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect();
        lines.sort();
        lines
    }
}

impl Netns {
    /// [`Netns::node`] with `tunl0` one end of a veth pair, which has
    /// carrier (the kernel makes no nexthop object on a link without one; a
    /// TUN has it only while a process holds it; this kernel has no dummy
    /// devices).
    fn node_with_carrier(test: &str) -> Self {
        let ns = Self::new(test);
        ns.ip("link add veth0 type veth peer name veth1");
        ns.ip("addr add 10.66.0.5/24 dev veth0");
        ns.ip("link set veth0 up");
        ns.ip("link set veth1 up");
        ns.ip("link add tunl0 type veth peer name tunl0p");
        ns.ip("link set tunl0 up");
        ns.ip("link set tunl0p up");
        ns
    }
}

#[test]
fn with_nexthop_objects_routes_share_one_object_per_next_hop_and_a_second_pass_changes_nothing() {
    let ns = Netns::node_with_carrier("nhobj");
    let mut p = plan();
    // A second block through the same node: one object for both.
    p.push(route("10.244.4.0/26", direct("10.66.0.6", "veth0")));
    let done = ns.reconcile_nexthops(&p, true);
    assert!(done.errors.is_empty(), "{:?}", done.errors);
    assert_eq!(done.stats, stats(4, 0, 0, 0));
    assert_eq!(done.nexthops_created, 2);
    let objects = ns.our_nexthops();
    assert_eq!(objects.len(), 2, "{objects:?}");
    assert!(
        objects
            .iter()
            .any(|o| o.contains("via 10.66.0.6 dev veth0") && o.contains("onlink")),
        "{objects:?}"
    );
    assert!(
        objects
            .iter()
            .any(|o| o.contains("via 10.67.0.7 dev tunl0") && o.contains("onlink")),
        "{objects:?}"
    );
    let routes = ns.our_routes();
    assert!(
        routes.contains(&"blackhole 10.244.1.0/26".to_owned()),
        "{routes:?}"
    );
    for dst in ["10.244.2.0/26", "10.244.3.0/26", "10.244.4.0/26"] {
        assert!(
            routes
                .iter()
                .any(|r| r.starts_with(&format!("{dst} nhid "))),
            "{dst} through an object: {routes:?}"
        );
    }
    assert!(
        routes
            .iter()
            .any(|r| r.starts_with("10.244.3.0/26") && r.contains("mtu 1440")),
        "the tunnel MTU stays on the route: {routes:?}"
    );
    // Traffic follows: the kernel resolves through the object.
    let get = ns.ip("route get 10.244.4.9");
    assert!(get.contains("via 10.66.0.6 dev veth0"), "{get}");

    let again = ns.reconcile_nexthops(&p, true);
    assert_eq!(again.stats, stats(0, 0, 0, 4));
    assert_eq!((again.nexthops_created, again.nexthops_deleted), (0, 0));
}

#[test]
fn a_next_hop_that_goes_away_takes_its_object_along_and_turning_objects_off_restores_gateway_routes()
 {
    let ns = Netns::node_with_carrier("nhoff");
    ns.reconcile_nexthops(&plan(), true);
    assert_eq!(ns.our_nexthops().len(), 2);
    // The tunnelled node moves: a new object, the old one removed.
    let mut moved = plan();
    moved[2] = route("10.244.3.0/26", tunnel("10.67.0.8", 1440));
    let done = ns.reconcile_nexthops(&moved, true);
    assert!(done.errors.is_empty(), "{:?}", done.errors);
    assert_eq!((done.nexthops_created, done.nexthops_deleted), (1, 1));
    let objects = ns.our_nexthops();
    assert!(
        objects.iter().all(|o| !o.contains("10.67.0.7")),
        "{objects:?}"
    );
    // Objects off: Calico's route shapes again, and no object of ours left.
    let off = ns.reconcile_nexthops(&plan(), false);
    assert!(off.errors.is_empty(), "{:?}", off.errors);
    let with_carrier: Vec<String> = plan_text()
        .iter()
        .map(|r| r.replace(" linkdown", ""))
        .collect();
    assert_eq!(ns.our_routes(), with_carrier);
    assert_eq!(ns.our_nexthops(), Vec::<String>::new());
    assert_eq!(off.nexthops_deleted, 2);
}

#[test]
fn by_default_objects_come_above_1000_gateway_routes_and_go_below_500_with_no_flapping_between() {
    let ns = Netns::node_with_carrier("nhauto");
    // `count` blocks, four per node, all direct on veth0.
    let plan = |count: u32| -> Vec<DesiredRoute> {
        (0..count)
            .map(|i| {
                let node = i / 4;
                let via = format!("10.66.{}.{}", 1 + node / 250, 1 + node % 250);
                let dst = format!(
                    "10.{}.{}.{}/26",
                    128 + i / 1024,
                    (i / 4) % 256,
                    (i % 4) * 64
                );
                route(&dst, direct(&via, "veth0"))
            })
            .collect()
    };
    // Each pass is a fresh FIB (as after a restart): the choice comes from
    // the plan and what the kernel holds, nothing else.
    let pass = |count: u32| {
        let done = ns.reconcile_mode(&plan(count), NexthopMode::Auto);
        assert!(done.errors.is_empty(), "{:?}", &done.errors[..1]);
        let routes = ns.our_routes();
        assert_eq!(routes.len(), count as usize);
        let through = routes.iter().filter(|r| r.contains(" nhid ")).count();
        // The pass reports the form it chose (for metrics and status).
        assert_eq!(done.nexthop_objects, through > 0);
        (done.stats, through)
    };
    // Up to 1,000: Calico's shapes.
    assert_eq!(pass(1000), (stats(1000, 0, 0, 0), 0));
    assert_eq!(ns.our_nexthops(), Vec::<String>::new());
    // Over: every gateway route through an object, one per node.
    assert_eq!(pass(1001), (stats(1, 1000, 0, 0), 1001));
    assert_eq!(ns.our_nexthops().len(), 251);
    // Between 500 and 1,000 the form stays: nothing rewritten.
    assert_eq!(pass(600), (stats(0, 0, 401, 600), 600));
    assert_eq!(pass(1000), (stats(400, 0, 0, 600), 1000));
    assert_eq!(pass(1000), (stats(0, 0, 0, 1000), 1000));
    assert_eq!(pass(500), (stats(0, 0, 500, 500), 500));
    // Below 500: gateway routes again, and no object of ours left.
    assert_eq!(pass(499), (stats(0, 499, 1, 0), 0));
    assert_eq!(ns.our_nexthops(), Vec::<String>::new());
    assert_eq!(pass(1000), (stats(501, 0, 0, 499), 0));
}

#[test]
fn nexthop_objects_of_other_protocols_are_never_touched() {
    let ns = Netns::node_with_carrier("nhother");
    ns.ip("nexthop add id 7 via 10.66.0.9 dev veth0 proto static");
    ns.ip("route add 192.0.2.0/24 nhid 7");
    ns.reconcile_nexthops(&plan(), true);
    ns.reconcile_nexthops(&plan(), false);
    assert!(ns.ip("nexthop show id 7").contains("via 10.66.0.9"));
    assert!(ns.ip("route show 192.0.2.0/24").contains("nhid 7"));
}

#[test]
fn a_next_hop_the_kernel_makes_no_object_for_gets_a_gateway_route_and_a_named_error() {
    // tunl0 here is a TUN without a process: no carrier, and the kernel
    // refuses objects on such a link (ENETDOWN).
    let ns = Netns::node("nhdown");
    let done = ns.reconcile_nexthops(&plan(), true);
    assert_eq!(done.errors.len(), 1, "{:?}", done.errors);
    let e = done.errors[0].to_string();
    assert!(
        e.contains("nexthop id") && e.contains("via 10.67.0.7 dev tunl0"),
        "{e}"
    );
    let routes = ns.our_routes();
    assert!(
        routes
            .contains(&"10.244.3.0/26 via 10.67.0.7 dev tunl0 onlink linkdown mtu 1440".to_owned()),
        "{routes:?}"
    );
    assert!(
        routes.iter().any(|r| r.starts_with("10.244.2.0/26 nhid ")),
        "{routes:?}"
    );
}
