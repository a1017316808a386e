use std::collections::BTreeMap;
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

fn scrape(status: Status, peers: Vec<PeerSnapshot>) -> Scrape {
    Scrape {
        status,
        peers,
        per_peer: true,
        ..Scrape::default()
    }
}

fn text(s: Scrape) -> String {
    render(
        s,
        &Metrics::default(),
        ProcessStats::default(),
        Format::Text,
    )
    .unwrap()
}

fn lines(text: &str) -> Vec<&str> {
    text.lines().filter(|l| !l.starts_with('#')).collect()
}

/// One family as a scrape declares it.
#[derive(Debug, Default)]
struct Family {
    kind: String,
    help: bool,
    samples: Vec<(String, String, f64)>,
}

/// Reads `text` line by line as `format` requires and returns the
/// families by name (OpenMetrics names: counters without `_total`).
/// Panics naming the line that breaks a rule: every sample follows
/// its family's HELP and TYPE, counters' samples end in `_total`,
/// gauges' carry the family name, histograms have cumulative
/// buckets up to `+Inf`, a sum and a count equal to the last bucket;
/// OpenMetrics ends with `# EOF`.
fn check(text: &str, format: Format) -> BTreeMap<String, Family> {
    let mut families: BTreeMap<String, Family> = BTreeMap::new();
    let mut current: Option<String> = None;
    let body = match format {
        Format::Text => text,
        Format::OpenMetrics => text
            .strip_suffix("# EOF\n")
            .unwrap_or_else(|| panic!("no # EOF at the end:\n{text}")),
    };
    assert!(!body.contains("# EOF"), "EOF before the end");
    // In 0.0.4 a counter's HELP and TYPE name carries `_total`.
    let family_name = |name: &str, kind: &str| match (format, kind) {
        (Format::Text, "counter") => name
            .strip_suffix("_total")
            .unwrap_or_else(|| panic!("0.0.4 counter {name} without _total"))
            .to_owned(),
        _ => name.to_owned(),
    };
    let mut pending_help: Option<String> = None;
    for line in body.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').unwrap();
            assert!(!help.is_empty(), "empty help: {line}");
            pending_help = Some(name.to_owned());
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            assert_eq!(
                pending_help.take().as_deref(),
                Some(name),
                "TYPE without HELP: {line}"
            );
            let family = family_name(name, kind);
            let f = families.entry(family.clone()).or_default();
            assert!(f.kind.is_empty(), "second TYPE: {line}");
            f.kind = kind.to_owned();
            f.help = true;
            current = Some(family);
            continue;
        }
        assert!(!line.starts_with('#'), "stray comment: {line}");
        let family = current
            .as_ref()
            .unwrap_or_else(|| panic!("sample before TYPE: {line}"));
        let f = families.get_mut(family).unwrap();
        let (series, value) = line.rsplit_once(' ').unwrap();
        let (name, labels) = match series.split_once('{') {
            Some((n, l)) => (n, l.trim_end_matches('}')),
            None => (series, ""),
        };
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            v => v.parse().unwrap_or_else(|_| panic!("bad value: {line}")),
        };
        let suffix = name
            .strip_prefix(family.as_str())
            .unwrap_or_else(|| panic!("sample {name} in family {family}: {line}"));
        let allowed: &[&str] = match f.kind.as_str() {
            "counter" => &["_total"],
            "histogram" => &["_bucket", "_sum", "_count"],
            "info" => &["_info"],
            _ => &[""],
        };
        assert!(
            allowed.contains(&suffix),
            "{} sample {name}: {line}",
            f.kind
        );
        f.samples.push((name.to_owned(), labels.to_owned(), value));
    }
    for (name, f) in &families {
        assert!(f.help && !f.kind.is_empty(), "{name} without HELP/TYPE");
        if f.kind == "histogram" {
            let buckets: Vec<f64> = f
                .samples
                .iter()
                .filter(|(n, _, _)| n.ends_with("_bucket"))
                .map(|(_, _, v)| *v)
                .collect();
            assert!(
                buckets.windows(2).all(|w| w[0] <= w[1]),
                "{name}: buckets not cumulative"
            );
            let inf = f
                .samples
                .iter()
                .find(|(n, l, _)| n.ends_with("_bucket") && l == "le=\"+Inf\"")
                .unwrap_or_else(|| panic!("{name}: no +Inf bucket"));
            let count = f.samples.iter().find(|(n, _, _)| n.ends_with("_count"));
            let sum = f.samples.iter().find(|(n, _, _)| n.ends_with("_sum"));
            assert_eq!(count.map(|c| c.2), Some(inf.2), "{name}: count");
            assert!(sum.is_some(), "{name}: no sum");
        }
    }
    families
}

fn full_scrape() -> (Scrape, Metrics, ProcessStats) {
    let mut status = Status::default();
    status.fib.reconciles = 5;
    status.fib.last_reconcile = Some(std::time::SystemTime::now());
    status.datastore = Some(crate::state::DatastoreStatus {
        nodes: 3,
        skipped: [("no-internal-ip", 1)].into_iter().collect(),
    });
    let mut s = scrape(
        status,
        vec![
            peer("10.0.0.6", State::Established),
            peer("10.0.0.7", State::Active),
        ],
    );
    s.tunnel = Some(TunnelCounters {
        device: "tunl0".into(),
        backend: "kernel",
        values: vec![("receive_packets", 9), ("transmit_bytes", 1500)],
    });
    s.checks.heartbeats = vec![(Part::Speaker, Duration::from_millis(250))];
    let metrics = Metrics::default();
    metrics.reconcile_duration.observe(0.003);
    metrics.reconcile_duration.observe(0.2);
    metrics.update_to_kernel.observe(0.04);
    let process = ProcessStats::read(Path::new(super::super::process::PROC));
    (s, metrics, process)
}

#[test]
fn every_family_has_help_and_type_counters_total_histograms_buckets_sum_count() {
    for format in [Format::Text, Format::OpenMetrics] {
        let (s, metrics, process) = full_scrape();
        let text = render(s, &metrics, process, format).unwrap();
        let families = check(&text, format);
        let kind = |name: &str| families.get(name).map(|f| f.kind.as_str());
        let info = if format == Format::Text {
            "gauge"
        } else {
            "info"
        };
        for (name, want) in [
            ("route_agent_build", Some(info)),
            ("route_agent_bgp_sessions", Some("gauge")),
            ("route_agent_bgp_prefixes_received", Some("counter")),
            ("route_agent_fib_reconciles", Some("counter")),
            ("route_agent_tunnel_receive_packets", Some("counter")),
            ("route_agent_datastore_nodes_skipped", Some("gauge")),
            (
                "route_agent_fib_reconcile_duration_seconds",
                Some("histogram"),
            ),
            (
                "route_agent_bgp_update_to_kernel_seconds",
                Some("histogram"),
            ),
            ("process_cpu_seconds", Some("counter")),
            ("process_resident_memory_bytes", Some("gauge")),
            ("process_virtual_memory_bytes", Some("gauge")),
            ("process_open_fds", Some("gauge")),
            ("process_max_fds", Some("gauge")),
            ("process_start_time_seconds", Some("gauge")),
        ] {
            let name = match (format, name) {
                (Format::Text, "route_agent_build") => "route_agent_build_info",
                _ => name,
            };
            assert_eq!(kind(name), want, "{format:?} {name}\n{text}");
        }
        let l = lines(&text);
        for want in [
            "route_agent_build_info{version=\"0.1.0\"} 1",
            "route_agent_fib_reconciles_total 5",
            "route_agent_bgp_prefixes_received_total{peer=\"10.0.0.6\"} 3",
            "route_agent_fib_reconcile_duration_seconds_count 2",
            "route_agent_fib_reconcile_duration_seconds_bucket{le=\"0.005\"} 1",
            "route_agent_fib_reconcile_duration_seconds_bucket{le=\"0.25\"} 2",
            "route_agent_bgp_update_to_kernel_seconds_count 1",
            "route_agent_bgp_update_to_kernel_seconds_bucket{le=\"0.025\"} 0",
            "route_agent_bgp_update_to_kernel_seconds_bucket{le=\"0.05\"} 1",
            "route_agent_tunnel_transmit_bytes_total{device=\"tunl0\",backend=\"kernel\"} 1500",
            "route_agent_datastore_nodes 3",
        ] {
            assert!(l.contains(&want), "{format:?}: missing {want} in\n{text}");
        }
        assert!(
            text.contains("\nroute_agent_fib_reconcile_duration_seconds_sum 0.203"),
            "{text}"
        );
    }
}

#[test]
fn histograms_are_present_before_the_first_observation() {
    let text = text(scrape(Status::default(), Vec::new()));
    let families = check(&text, Format::Text);
    for name in [
        "route_agent_fib_reconcile_duration_seconds",
        "route_agent_bgp_update_to_kernel_seconds",
    ] {
        assert_eq!(families[name].kind, "histogram");
        assert!(
            lines(&text).contains(&format!("{name}_count 0").as_str()),
            "{text}"
        );
    }
}

#[test]
fn the_per_peer_switch_drops_every_peer_series_and_keeps_sessions_by_state() {
    let (mut s, metrics, process) = full_scrape();
    s.per_peer = false;
    let text = render(s, &metrics, process, Format::OpenMetrics).unwrap();
    let families = check(&text, Format::OpenMetrics);
    assert!(!text.contains("peer="), "{text}");
    for gone in [
        "route_agent_bgp_peer_info",
        "route_agent_bgp_peer_up",
        "route_agent_bgp_peer_uptime_seconds",
        "route_agent_bgp_prefixes_received",
        "route_agent_bgp_prefixes_accepted",
        "route_agent_bgp_prefixes_advertised",
    ] {
        assert!(!families.contains_key(gone), "{gone} still in\n{text}");
    }
    let l = lines(&text);
    assert!(l.contains(&"route_agent_bgp_sessions{state=\"established\"} 1"));
    assert!(l.contains(&"route_agent_bgp_sessions{state=\"active\"} 1"));
    // With the switch on, the same scrape has them.
    let (s, metrics, process) = full_scrape();
    let text = render(s, &metrics, process, Format::OpenMetrics).unwrap();
    assert!(text.contains("route_agent_bgp_peer_up{peer=\"10.0.0.7\"} 0"));
}

#[test]
fn accept_headers_choose_the_format() {
    // Prometheus 2.x and 3.x by default.
    for prometheus in [
        "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
        "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.5,application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.3,text/plain;version=0.0.4;q=0.2,*/*;q=0.1",
    ] {
        assert_eq!(Format::negotiate(Some(prometheus)), Format::OpenMetrics);
    }
    for text in [
        None,
        Some("*/*"),
        Some("text/plain"),
        Some("text/plain;version=0.0.4;q=0.9, application/openmetrics-text;q=0.5"),
        Some("application/openmetrics-text;q=0"),
        Some("application/json"),
    ] {
        assert_eq!(Format::negotiate(text), Format::Text, "{text:?}");
    }
    assert_eq!(
        Format::negotiate(Some("Application/OpenMetrics-Text; Q=0.3")),
        Format::OpenMetrics
    );
    assert_eq!(
        Format::Text.content_type(),
        "text/plain; version=0.0.4; charset=utf-8"
    );
    assert_eq!(
        Format::OpenMetrics.content_type(),
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
}

#[test]
fn process_families_are_left_out_when_unreadable() {
    let text = text(scrape(Status::default(), Vec::new()));
    assert!(!text.contains("process_"), "{text}");
    let s = ProcessStats {
        cpu_seconds: Some(1.5),
        max_fds: Some(1024),
        ..ProcessStats::default()
    };
    let text = render(Scrape::default(), &Metrics::default(), s, Format::Text).unwrap();
    let l = lines(&text);
    assert!(l.contains(&"process_cpu_seconds_total 1.5"), "{text}");
    assert!(l.contains(&"process_max_fds 1024"), "{text}");
    assert!(!text.contains("process_open_fds"), "{text}");
}

#[test]
fn every_session_state_is_present_with_zeros() {
    let text = text(scrape(
        Status::default(),
        vec![peer("10.0.0.6", State::Established)],
    ));
    let l = lines(&text);
    for want in [
        r#"route_agent_bgp_sessions{state="idle"} 0"#,
        r#"route_agent_bgp_sessions{state="active"} 0"#,
        r#"route_agent_bgp_sessions{state="opensent"} 0"#,
        r#"route_agent_bgp_sessions{state="established"} 1"#,
        r#"route_agent_bgp_peer_up{peer="10.0.0.6"} 1"#,
        r#"route_agent_bgp_peer_uptime_seconds{peer="10.0.0.6"} 42"#,
        r#"route_agent_bgp_prefixes_received_total{peer="10.0.0.6"} 3"#,
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
    let mut s = scrape(status, Vec::new());
    s.checks = Checks {
        ready: true,
        live: true,
        heartbeats: vec![
            (Part::Speaker, Duration::from_millis(250)),
            (Part::FibThread, Duration::from_secs(3)),
        ],
    };
    let text = text(s);
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
        r#"route_agent_heartbeat_age_seconds{part="speaker"} 0.25"#,
        r#"route_agent_heartbeat_age_seconds{part="fib-thread"} 3.0"#,
    ] {
        assert!(l.contains(&want), "missing {want} in\n{text}");
    }
    assert!(text.contains("# TYPE route_agent_netlink_batches_total counter\n"));
    assert!(!text.contains("route_agent_tunnel_"));
}

#[test]
fn the_ipip_filter_drop_counter_is_a_series_only_while_there_is_a_filter() {
    let text0 = text(scrape(Status::default(), vec![]));
    assert!(!text0.contains("route_agent_ipip_filter"), "{text0}");
    let status = Status {
        ipip_filter: Some(crate::agent::ipip_filter::IpipFilterStatus {
            nodes: 3,
            dropped_packets: 17,
            dropped_bytes: 1700,
            error: None,
        }),
        ..Status::default()
    };
    let t = text(scrape(status, vec![]));
    assert!(
        lines(&t).contains(&"route_agent_ipip_filter_dropped_packets_total 17"),
        "{t}"
    );
    assert!(t.contains("# TYPE route_agent_ipip_filter_dropped_packets_total counter\n"));
}

#[test]
fn the_tunnel_an_ipip_pool_needs_reports_up_and_failures() {
    let none = text(scrape(Status::default(), vec![]));
    assert!(!none.contains("route_agent_tunnel_up"), "{none}");
    let mut status = Status::default();
    status.tunnel.wanted = true;
    status.tunnel.device = "tunl0".into();
    status.tunnel.failures = 2;
    let down = text(scrape(status.clone(), vec![]));
    let l = lines(&down);
    assert!(
        l.contains(&r#"route_agent_tunnel_up{device="tunl0"} 0"#),
        "{down}"
    );
    assert!(
        l.contains(&r#"route_agent_tunnel_failures_total{device="tunl0"} 2"#),
        "{down}"
    );
    status.tunnel.backend = TunnelInUse::Userspace;
    let up = text(scrape(status, vec![]));
    assert!(
        lines(&up).contains(&r#"route_agent_tunnel_up{device="tunl0"} 1"#),
        "{up}"
    );
}

#[test]
fn each_preflight_check_has_one_series_per_level_with_the_found_one_at_1() {
    use crate::preflight::Level;
    let status = Status {
        preflight: vec![
            ("ip-forward", Level::Ok),
            ("tcp-congestion-control", Level::Warning),
        ],
        ..Status::default()
    };
    let t = text(scrape(status, vec![]));
    let l = lines(&t);
    for want in [
        r#"route_agent_preflight_checks{check="ip-forward",level="ok"} 1"#,
        r#"route_agent_preflight_checks{check="ip-forward",level="warning"} 0"#,
        r#"route_agent_preflight_checks{check="tcp-congestion-control",level="warning"} 1"#,
        r#"route_agent_preflight_checks{check="tcp-congestion-control",level="error"} 0"#,
    ] {
        assert!(l.contains(&want), "no {want} in:\n{t}");
    }
}

#[test]
fn label_values_escape_backslash_quote_and_newline() {
    let s = Scrape {
        tunnel: Some(TunnelCounters {
            device: "t\"0\\\n".into(),
            backend: "kernel",
            values: vec![("receive_packets", 9)],
        }),
        ..Scrape::default()
    };
    let text = text(s);
    assert!(
        text.contains(
            r#"route_agent_tunnel_receive_packets_total{device="t\"0\\\n",backend="kernel"} 9"#
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
