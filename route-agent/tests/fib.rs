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
    AckMode, DEFAULT_PROTOCOL, Fib, ReconcileStats, Reconciled, RouteErrno, RouteOp,
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
    assert_eq!(error.errno, RouteErrno::NoDevice);
    assert_eq!(
        error.route,
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
    assert_eq!(error.errno, RouteErrno::NetworkUnreachable);
    assert_eq!(error.route, unreachable.to_string());
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
    assert_eq!(error.errno, RouteErrno::Exists);
    assert_eq!(error.route, "blackhole 10.244.7.0/26");
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
    assert_eq!(error.route, unreachable.to_string());
    assert_eq!(error.errno, RouteErrno::NetworkUnreachable);
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
