//! `/metrics` in the Prometheus text exposition format 0.0.4, written by
//! hand: a dozen families rendered from one snapshot do not need a metrics
//! registry, and the values already live in the speaker and the agent's
//! state (a registry would be a second copy to keep in step).
//!
//! The families are listed in the [admin module docs](super).

use std::fmt::{Display, Write as _};
use std::path::Path;
use std::time::Duration;

use bgp_core::session::State;
use bgp_core::speaker::PeerSnapshot;

use super::dto::{REJECT_REASONS, ROUTE_KINDS, backend_name, reject_reason_name, route_kind_name};
use crate::state::{Part, Status, TunnelInUse};

/// The `Content-Type` of the exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Where the kernel publishes interface counters.
pub const SYS_CLASS_NET: &str = "/sys/class/net";

/// Every session state, in RFC 4271 order, with its label.
const STATES: [(State, &str); 6] = [
    (State::Idle, "idle"),
    (State::Connect, "connect"),
    (State::Active, "active"),
    (State::OpenSent, "opensent"),
    (State::OpenConfirm, "openconfirm"),
    (State::Established, "established"),
];

/// The `statistics/` files read for the tunnel and the metric each feeds
/// (`route_agent_tunnel_<name>_total`).
const TUNNEL_FILES: [(&str, &str); 6] = [
    ("rx_packets", "receive_packets"),
    ("rx_bytes", "receive_bytes"),
    ("rx_dropped", "receive_dropped"),
    ("tx_packets", "transmit_packets"),
    ("tx_bytes", "transmit_bytes"),
    ("tx_dropped", "transmit_dropped"),
];

/// The tunnel device's interface counters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TunnelCounters {
    /// The device (`tunl0`).
    pub device: String,
    /// `kernel` or `userspace`.
    pub backend: &'static str,
    /// `(metric name part, value)`, for the files that could be read.
    pub values: Vec<(&'static str, u64)>,
}

/// Reads the tunnel's counters from `<sys_class_net>/<device>/statistics`.
///
/// The kernel keeps these for its tunl0 and for our TUN device alike, so
/// both backends report the same way. `None` when no tunnel is in use or
/// the device does not exist.
pub fn read_tunnel_counters(
    sys_class_net: &Path,
    device: &str,
    backend: TunnelInUse,
) -> Option<TunnelCounters> {
    if backend == TunnelInUse::None || !is_interface_name(device) {
        return None;
    }
    let dir = sys_class_net.join(device).join("statistics");
    if !dir.is_dir() {
        return None;
    }
    let values = TUNNEL_FILES
        .iter()
        .filter_map(|(file, name)| {
            let text = std::fs::read_to_string(dir.join(file)).ok()?;
            Some((*name, text.trim().parse().ok()?))
        })
        .collect();
    Some(TunnelCounters {
        device: device.to_owned(),
        backend: backend_name(backend),
        values,
    })
}

/// A name the kernel could have given an interface: the path built from
/// it stays inside `/sys/class/net`.
fn is_interface_name(name: &str) -> bool {
    !name.is_empty() && name.len() < 16 && name != "." && name != ".." && !name.contains('/')
}

/// What `/readyz` and `/healthz` would answer at the time of the scrape.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Checks {
    /// `/readyz` answers 200.
    pub ready: bool,
    /// `/healthz` answers 200.
    pub live: bool,
    /// Each watched part and the time since its last beat (since it
    /// began to be watched, before the first).
    pub heartbeats: Vec<(Part, Duration)>,
}

/// The exposition text for one snapshot.
pub fn render(
    status: &Status,
    peers: &[PeerSnapshot],
    tunnel: Option<&TunnelCounters>,
    checks: &Checks,
) -> String {
    let mut m = Exposition::default();
    m.family(
        "route_agent_build_info",
        "gauge",
        "Always 1; the version is the label.",
    );
    m.sample(
        "route_agent_build_info",
        &[("version", env!("CARGO_PKG_VERSION"))],
        1,
    );

    m.family(
        "route_agent_ready",
        "gauge",
        "1 when /readyz answers 200: initial sync done, kernel routes in sync, and the peers as bird-ready wants them (every one during the first 30 s, then one, or none when alone).",
    );
    m.sample("route_agent_ready", &[], u8::from(checks.ready));
    m.family(
        "route_agent_live",
        "gauge",
        "1 when /healthz answers 200: every watched part of the agent made progress in time.",
    );
    m.sample("route_agent_live", &[], u8::from(checks.live));
    m.family(
        "route_agent_heartbeat_age_seconds",
        "gauge",
        "Seconds since each watched part of the agent (speaker, agent-loop, fib-thread, reconcile) last made progress.",
    );
    for (part, age) in &checks.heartbeats {
        m.sample(
            "route_agent_heartbeat_age_seconds",
            &[("part", part.name())],
            format!("{:.3}", age.as_secs_f64()),
        );
    }

    m.family(
        "route_agent_bgp_sessions",
        "gauge",
        "BGP sessions by state.",
    );
    for (state, label) in STATES {
        let n = peers.iter().filter(|p| p.state == state).count();
        m.sample("route_agent_bgp_sessions", &[("state", label)], n);
    }
    let addresses: Vec<String> = peers.iter().map(|p| p.address.to_string()).collect();
    let per_peer = |m: &mut Exposition,
                    name: &str,
                    kind: &str,
                    help: &str,
                    value: &dyn Fn(&PeerSnapshot) -> u64| {
        m.family(name, kind, help);
        for (p, address) in peers.iter().zip(&addresses) {
            m.sample(name, &[("peer", address)], value(p));
        }
    };
    m.family(
        "route_agent_bgp_peer_info",
        "gauge",
        "Always 1 per peer; its AS, type (ibgp, ebgp), whether it is a dynamic neighbour (a route-reflector client accepted from a range) and session state are labels.",
    );
    for (p, address) in peers.iter().zip(&addresses) {
        let asn = p.asn.to_string();
        let state = STATES
            .iter()
            .find(|(s, _)| *s == p.state)
            .map_or("unknown", |(_, l)| l);
        let kind = if p.ibgp { "ibgp" } else { "ebgp" };
        m.sample(
            "route_agent_bgp_peer_info",
            &[
                ("peer", address),
                ("asn", &asn),
                ("type", kind),
                ("dynamic", if p.dynamic { "true" } else { "false" }),
                ("state", state),
            ],
            1,
        );
    }
    per_peer(
        &mut m,
        "route_agent_bgp_peer_up",
        "gauge",
        "1 when the session with the peer is Established.",
        &|p| u64::from(p.state == State::Established),
    );
    per_peer(
        &mut m,
        "route_agent_bgp_peer_uptime_seconds",
        "gauge",
        "Seconds since the session came up (0 when down).",
        &|p| p.uptime.map_or(0, |d| d.as_secs()),
    );
    per_peer(
        &mut m,
        "route_agent_bgp_prefixes_received",
        "gauge",
        "Prefixes received from the peer in the last UPDATEs, before import policy.",
        &|p| p.received,
    );
    per_peer(
        &mut m,
        "route_agent_bgp_prefixes_accepted",
        "gauge",
        "Prefixes from the peer now in the Loc-RIB.",
        &|p| u64::try_from(p.accepted).unwrap_or(u64::MAX),
    );
    per_peer(
        &mut m,
        "route_agent_bgp_prefixes_advertised",
        "gauge",
        "Prefixes advertised to the peer.",
        &|p| u64::try_from(p.advertised).unwrap_or(u64::MAX),
    );

    let fib = &status.fib;
    m.family(
        "route_agent_routes_installed",
        "gauge",
        "Kernel routes of our protocol as last applied, by kind.",
    );
    for kind in ROUTE_KINDS {
        let n = fib
            .installed
            .iter()
            .filter(|r| route_kind_name(&r.kind) == kind)
            .count();
        m.sample("route_agent_routes_installed", &[("kind", kind)], n);
    }
    m.family(
        "route_agent_fib_started",
        "gauge",
        "1 once the first plan was applied (graceful restart may hold it back).",
    );
    m.sample("route_agent_fib_started", &[], u8::from(fib.started));
    m.family(
        "route_agent_fib_in_sync",
        "gauge",
        "1 when the newest plan is applied with no route failing.",
    );
    m.sample("route_agent_fib_in_sync", &[], u8::from(fib.in_sync));
    m.family(
        "route_agent_fib_nexthop_objects",
        "gauge",
        "1 when gateway routes go through kernel nexthop objects (nexthop-objects: auto takes them for tables of over 1,000 gateway routes).",
    );
    m.sample(
        "route_agent_fib_nexthop_objects",
        &[],
        u8::from(fib.nexthop_objects),
    );
    m.family(
        "route_agent_fib_reconciles_total",
        "counter",
        "Reconcile passes run (kernel dump, diff, apply).",
    );
    m.sample("route_agent_fib_reconciles_total", &[], fib.reconciles);
    m.family(
        "route_agent_fib_route_changes_total",
        "counter",
        "Kernel routes changed, by operation.",
    );
    for (op, n) in [
        ("add", fib.added),
        ("replace", fib.replaced),
        ("delete", fib.deleted),
    ] {
        m.sample("route_agent_fib_route_changes_total", &[("op", op)], n);
    }
    if let Some(t) = fib
        .last_reconcile
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
    {
        m.family(
            "route_agent_fib_last_reconcile_timestamp_seconds",
            "gauge",
            "When the last reconcile finished, in seconds since the Unix epoch.",
        );
        m.sample(
            "route_agent_fib_last_reconcile_timestamp_seconds",
            &[],
            t.as_secs(),
        );
    }
    m.family(
        "route_agent_netlink_batches_total",
        "counter",
        "Netlink sendmsg calls carrying route requests.",
    );
    m.sample("route_agent_netlink_batches_total", &[], fib.batches);
    m.family(
        "route_agent_netlink_errors_total",
        "counter",
        "Route requests the kernel refused.",
    );
    m.sample("route_agent_netlink_errors_total", &[], fib.errors);

    m.family(
        "route_agent_routes_rejected",
        "gauge",
        "Learned routes the planner refuses to install now, by reason.",
    );
    for reason in REJECT_REASONS {
        let n = status.rejected.get(&reason).copied().unwrap_or(0);
        m.sample(
            "route_agent_routes_rejected",
            &[("reason", reject_reason_name(reason))],
            n,
        );
    }

    if let Some(ds) = &status.datastore {
        m.family(
            "route_agent_datastore_nodes",
            "gauge",
            "Valid nodes in the datastore (datastore: kubernetes).",
        );
        m.sample("route_agent_datastore_nodes", &[], ds.nodes);
        m.family(
            "route_agent_datastore_nodes_skipped",
            "gauge",
            "Nodes skipped now for bad input (no InternalIP, bad or overlapping podCIDR, duplicate address, bad annotation; etcd: bad record, address outside its subnet, block not claimed for it, other AS), by reason.",
        );
        for (reason, n) in &ds.skipped {
            m.sample(
                "route_agent_datastore_nodes_skipped",
                &[("reason", reason)],
                n,
            );
        }
    }

    if let Some(f) = &status.ipip_filter {
        m.family(
            "route_agent_ipip_filter_dropped_packets_total",
            "counter",
            "IPIP packets the kernel tunnel's filter dropped: IP protocol 4 from an address that is no node (nftables table ip podroute).",
        );
        m.sample(
            "route_agent_ipip_filter_dropped_packets_total",
            &[],
            f.dropped_packets,
        );
    }

    if let Some(t) = tunnel {
        for (name, value) in &t.values {
            let family = format!("route_agent_tunnel_{name}_total");
            let help = format!(
                "The tunnel device's {} (kernel interface statistics).",
                name.replace('_', " ")
            );
            m.family(&family, "counter", &help);
            m.sample(
                &family,
                &[("device", &t.device), ("backend", t.backend)],
                value,
            );
        }
    }
    m.out
}

/// The text being written.
#[derive(Default)]
struct Exposition {
    out: String,
}

impl Exposition {
    /// `# HELP` and `# TYPE` for a family.
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        // In HELP text only backslash and newline are escaped.
        let help = help.replace('\\', r"\\").replace('\n', r"\n");
        let _ = writeln!(self.out, "# HELP {name} {help}");
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
    }

    /// One sample line.
    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl Display) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{k}=\"{}\"", escape_label(v));
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {value}");
    }
}

/// A label value with backslash, double quote and newline escaped.
fn escape_label(v: &str) -> String {
    let mut s = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => s.push_str(r"\\"),
            '"' => s.push_str(r#"\""#),
            '\n' => s.push_str(r"\n"),
            c => s.push(c),
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::planner::{DesiredRoute, RejectReason, RouteKind};

    fn peer(address: &str, state: State) -> PeerSnapshot {
        PeerSnapshot {
            address: address.parse().unwrap(),
            asn: 64512,
            ibgp: true,
            dynamic: false,
            state,
            uptime: (state == State::Established).then(|| Duration::from_secs(42)),
            received: 3,
            accepted: 2,
            advertised: 1,
            last_error: None,
            last_notification: None,
            negotiated: None,
        }
    }

    fn lines(text: &str) -> Vec<&str> {
        text.lines().filter(|l| !l.starts_with('#')).collect()
    }

    #[test]
    fn every_session_state_is_present_with_zeros() {
        let text = render(
            &Status::default(),
            &[peer("10.0.0.6", State::Established)],
            None,
            &Checks::default(),
        );
        let l = lines(&text);
        for want in [
            r#"route_agent_bgp_sessions{state="idle"} 0"#,
            r#"route_agent_bgp_sessions{state="active"} 0"#,
            r#"route_agent_bgp_sessions{state="opensent"} 0"#,
            r#"route_agent_bgp_sessions{state="established"} 1"#,
            r#"route_agent_bgp_peer_up{peer="10.0.0.6"} 1"#,
            r#"route_agent_bgp_peer_uptime_seconds{peer="10.0.0.6"} 42"#,
            r#"route_agent_bgp_prefixes_received{peer="10.0.0.6"} 3"#,
            r#"route_agent_bgp_prefixes_accepted{peer="10.0.0.6"} 2"#,
            r#"route_agent_bgp_prefixes_advertised{peer="10.0.0.6"} 1"#,
            r#"route_agent_bgp_peer_info{peer="10.0.0.6",asn="64512",type="ibgp",dynamic="false",state="established"} 1"#,
            r#"route_agent_routes_rejected{reason="default-route"} 0"#,
            r#"route_agent_routes_installed{kind="underlay"} 0"#,
            "route_agent_ready 0",
            "route_agent_live 0",
        ] {
            assert!(l.contains(&want), "missing {want} in\n{text}");
        }
    }

    #[test]
    fn counts_routes_by_kind_and_rejections_by_reason() {
        let mut status = Status::default();
        status.fib.started = true;
        status.fib.in_sync = true;
        status.fib.batches = 7;
        status.fib.errors = 2;
        status.fib.reconciles = 5;
        status.fib.installed = vec![
            DesiredRoute {
                dst: "10.244.1.0/26".parse().unwrap(),
                kind: RouteKind::Blackhole,
            },
            DesiredRoute {
                dst: "10.244.2.0/26".parse().unwrap(),
                kind: RouteKind::Tunnel {
                    via: "10.0.1.6".parse().unwrap(),
                    dev: "tunl0".into(),
                    mtu: 1480,
                },
            },
        ];
        status.rejected.insert(RejectReason::OutsidePools, 4);
        let checks = Checks {
            ready: true,
            live: true,
            heartbeats: vec![
                (Part::Speaker, Duration::from_millis(250)),
                (Part::FibThread, Duration::from_secs(3)),
            ],
        };
        let text = render(&status, &[], None, &checks);
        let l = lines(&text);
        for want in [
            r#"route_agent_routes_installed{kind="blackhole"} 1"#,
            r#"route_agent_routes_installed{kind="direct"} 0"#,
            r#"route_agent_routes_installed{kind="tunnel"} 1"#,
            "route_agent_fib_in_sync 1",
            "route_agent_fib_nexthop_objects 0",
            "route_agent_netlink_batches_total 7",
            "route_agent_netlink_errors_total 2",
            "route_agent_fib_reconciles_total 5",
            r#"route_agent_routes_rejected{reason="outside-pools"} 4"#,
            "route_agent_ready 1",
            "route_agent_live 1",
            r#"route_agent_heartbeat_age_seconds{part="speaker"} 0.250"#,
            r#"route_agent_heartbeat_age_seconds{part="fib-thread"} 3.000"#,
        ] {
            assert!(l.contains(&want), "missing {want} in\n{text}");
        }
        assert!(text.contains("# TYPE route_agent_netlink_batches_total counter\n"));
        assert!(!text.contains("route_agent_tunnel_"));
    }

    #[test]
    fn the_ipip_filter_drop_counter_is_a_series_only_while_there_is_a_filter() {
        let mut status = Status::default();
        let text = render(&status, &[], None, &Checks::default());
        assert!(!text.contains("route_agent_ipip_filter"), "{text}");
        status.ipip_filter = Some(crate::agent::ipip_filter::IpipFilterStatus {
            nodes: 3,
            dropped_packets: 17,
            dropped_bytes: 1700,
            error: None,
        });
        let text = render(&status, &[], None, &Checks::default());
        assert!(
            lines(&text).contains(&"route_agent_ipip_filter_dropped_packets_total 17"),
            "{text}"
        );
        assert!(text.contains("# TYPE route_agent_ipip_filter_dropped_packets_total counter\n"));
    }

    #[test]
    fn label_values_escape_backslash_quote_and_newline() {
        assert_eq!(escape_label("a\\b\"c\nd"), r#"a\\b\"c\nd"#);
        let t = TunnelCounters {
            device: "t\"0".into(),
            backend: "kernel",
            values: vec![("receive_packets", 9)],
        };
        let text = render(&Status::default(), &[], Some(&t), &Checks::default());
        assert!(
            text.contains(
                r#"route_agent_tunnel_receive_packets_total{device="t\"0",backend="kernel"} 9"#
            ),
            "{text}"
        );
    }

    #[test]
    fn tunnel_counters_come_from_sysfs_statistics() {
        let root = std::env::temp_dir().join(format!("ra-metrics-{}", std::process::id()));
        let stats = root.join("tunl0").join("statistics");
        std::fs::create_dir_all(&stats).unwrap();
        for (file, value) in [
            ("rx_packets", "10\n"),
            ("tx_bytes", "2000\n"),
            ("rx_dropped", "1\n"),
        ] {
            std::fs::write(stats.join(file), value).unwrap();
        }
        let c = read_tunnel_counters(&root, "tunl0", TunnelInUse::Userspace).unwrap();
        let absent = read_tunnel_counters(&root, "tunl9", TunnelInUse::Kernel);
        let unused = read_tunnel_counters(&root, "tunl0", TunnelInUse::None);
        let escape = read_tunnel_counters(&root, "..", TunnelInUse::Kernel);
        std::fs::remove_dir_all(&root).unwrap();
        assert_eq!(c.backend, "userspace");
        assert_eq!(
            c.values,
            [
                ("receive_packets", 10),
                ("receive_dropped", 1),
                ("transmit_bytes", 2000)
            ]
        );
        assert_eq!(absent, None);
        assert_eq!(unused, None);
        assert_eq!(escape, None);
    }
}
