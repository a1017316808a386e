//! The admin API over real HTTP on loopback, in front of a real BGP
//! speaker peered with a second one (127.0.0.1 ⇄ 127.0.0.2), and
//! `route-agent status` reading it. Nothing is installed in the kernel:
//! the FIB part of the state is filled in by hand, as the agent's loops
//! would.
//!
//! Loopback next hops are martian (RFC 4271 §6.3), so the routes carry a
//! documentation-range next hop.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bgp_core::speaker::{
    ListenConfig, LocalRoute, PeerConfig, RouteStream, Speaker, SpeakerConfig,
};
use route_agent::admin::dto::{BestRouteDoc, FibWithNodeDoc, PeerDoc, PeerType, StatusDoc};
use route_agent::inspect;
use route_agent::planner::{DesiredRoute, RejectReason, RouteKind};
use route_agent::state::{AgentState, Part, TunnelInUse};
use route_agent::status::{self, AdminArgs, FetchError, HttpResponse, StatusArgs};
use tokio::task::JoinHandle;

const A: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 1);
const B: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);
const DEADLINE: Duration = Duration::from_secs(20);

/// One request through the same blocking client `route-agent status`
/// uses (kept off the runtime's threads).
async fn get(addr: SocketAddr, method: &'static str, path: &'static str) -> HttpResponse {
    tokio::task::spawn_blocking(move || status::request(addr, method, path, status::TIMEOUT))
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
}

/// Polls `path` until `done` holds for the answer, or fails at the
/// deadline with the last answer.
async fn poll(
    addr: SocketAddr,
    path: &'static str,
    what: &str,
    mut done: impl FnMut(&HttpResponse) -> bool,
) -> HttpResponse {
    let start = Instant::now();
    loop {
        let r = get(addr, "GET", path).await;
        if done(&r) {
            return r;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "{what}: still {} {:?}",
            r.code,
            r.text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn speaker_config(ip: Ipv4Addr, listen: bool) -> SpeakerConfig {
    let mut c = SpeakerConfig::new(64512, ip);
    if listen {
        c.listen = Some(ListenConfig::new(IpAddr::V4(ip), 0));
    }
    c.connect_retry = 1;
    c
}

/// The agent under test: speaker A (waiting for B to connect), its state
/// and its admin API.
struct Agent {
    speaker: Speaker,
    _routes: RouteStream,
    state: Arc<AgentState>,
    addr: SocketAddr,
    server: JoinHandle<()>,
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn agent() -> Agent {
    let mut config = speaker_config(A, true);
    let mut to_b = PeerConfig::new(IpAddr::V4(B), 64512);
    to_b.passive = true;
    config.peers.push(to_b);
    let (speaker, routes) = Speaker::start(config).await.unwrap();
    speaker
        .announce("10.244.1.0/26".parse().unwrap(), via("192.0.2.5"))
        .unwrap();
    let state = Arc::new(AgentState::new(speaker.clone()));
    state.update(|s| {
        s.node.name = Some("node-a".into());
        s.node.address = Some("192.0.2.5/24".parse().unwrap());
        s.node.underlay = "eth0".into();
        s.node.underlay_mtu = 1500;
        s.configured_peers = vec![IpAddr::V4(B)];
    });
    let listener = route_agent::admin::bind(SocketAddr::from((A, 0)))
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(route_agent::admin::serve(listener, state.clone()));
    Agent {
        speaker,
        _routes: routes,
        state,
        addr,
        server,
    }
}

fn via(next_hop: &str) -> LocalRoute {
    LocalRoute::via(next_hop.parse().unwrap())
}

/// Speaker B: connects to A and announces 10.244.2.0/26.
async fn neighbour(a: &Agent) -> (Speaker, RouteStream) {
    let mut config = speaker_config(B, false);
    let mut to_a = PeerConfig::new(IpAddr::V4(A), 64512);
    to_a.port = a.speaker.listen_addr().unwrap().port();
    to_a.local_address = Some(IpAddr::V4(B));
    config.peers.push(to_a);
    let b = Speaker::start(config).await.unwrap();
    b.0.announce("10.244.2.0/26".parse().unwrap(), via("192.0.2.6"))
        .unwrap();
    b
}

/// What the agent's FIB thread would record after installing the plan.
fn fib_applied(a: &Agent) {
    a.state.update(|s| {
        s.fib.started = true;
        s.fib.in_sync = true;
        s.fib.reconciles = 3;
        s.fib.batches = 2;
        s.fib.added = 3;
        s.fib.installed = vec![
            DesiredRoute {
                dst: "10.244.1.0/26".parse().unwrap(),
                kind: RouteKind::Blackhole,
            },
            DesiredRoute {
                dst: "10.244.2.0/26".parse().unwrap(),
                kind: RouteKind::Direct {
                    via: "192.0.2.6".parse().unwrap(),
                    dev: "eth0".into(),
                },
            },
            DesiredRoute {
                dst: "10.244.3.0/26".parse().unwrap(),
                kind: RouteKind::Tunnel {
                    via: "198.51.100.7".parse().unwrap(),
                    dev: "tunl0".into(),
                    mtu: 1480,
                },
            },
        ];
        s.rejected.insert(RejectReason::OutsidePools, 2);
        s.tunnel.backend = TunnelInUse::Kernel;
        // No such device on the test machine: the tunnel counters are
        // left out rather than reported as zero.
        s.tunnel.device = "ratest-none0".into();
    });
    // The FIB thread's observations of those passes.
    for took in [0.004, 0.0007, 0.03] {
        a.state.metrics.reconcile_duration.observe(took);
    }
    a.state.metrics.update_to_kernel.observe(0.012);
}

/// A and B peered, B's route in A's Loc-RIB, the FIB "applied".
async fn peered() -> (Agent, (Speaker, RouteStream)) {
    let a = agent().await;
    let b = neighbour(&a).await;
    poll(a.addr, "/api/v1/routes", "B's route in A's Loc-RIB", |r| {
        r.text().contains("10.244.2.0/26")
    })
    .await;
    fib_applied(&a);
    (a, b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_answers_ok_unknown_paths_404_and_other_methods_405() {
    let a = agent().await;
    let r = get(a.addr, "GET", "/healthz").await;
    assert_eq!((r.code, r.text().as_str()), (200, "ok\n"));
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));

    let r = get(a.addr, "GET", "/nope").await;
    assert_eq!(r.code, 404, "{}", r.text());
    let r = get(a.addr, "GET", "/api/v1/peers/extra").await;
    assert_eq!(r.code, 404);

    for method in ["POST", "DELETE", "PUT"] {
        let r = get(a.addr, method, "/api/v1/peers").await;
        assert_eq!(r.code, 405, "{method}");
        assert_eq!(r.header("allow"), Some("GET, HEAD"));
    }
    let r = get(a.addr, "HEAD", "/healthz").await;
    assert_eq!((r.code, r.body.len()), (200, 0));
}

/// Within the start grace period (the test runs in well under 30 s):
/// every configured peer must be Established, after the initial sync and
/// with the kernel in sync. The rules after the grace period are unit
/// tests of `admin::ready` on a moved clock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_names_the_peer_until_established_then_waits_for_the_fib() {
    let a = agent().await;
    let r = get(a.addr, "GET", "/readyz").await;
    assert_eq!(r.code, 503);
    let text = r.text();
    assert!(text.starts_with("fib: not started"), "{text}");
    assert!(text.contains("\npeer 127.0.0.2: "), "{text}");
    assert!(!text.contains("Established\n"), "{text}");
    assert!(text.contains("\nstart grace period: "), "{text}");

    let _b = neighbour(&a).await;
    let r = poll(a.addr, "/readyz", "session with B", |r| {
        !r.text().contains("peer 127.0.0.2")
    })
    .await;
    assert_eq!(r.code, 503);
    assert_eq!(
        r.text(),
        "fib: not started (waiting for End-of-RIB or the first plan)\n"
    );

    a.state.update(|s| s.fib.started = true);
    let r = get(a.addr, "GET", "/readyz").await;
    assert_eq!((r.code, r.text().as_str()), (503, "fib: not in sync\n"));

    a.state.update(|s| s.fib.in_sync = true);
    let r = get(a.addr, "GET", "/readyz").await;
    assert_eq!(
        (r.code, r.text().as_str()),
        (200, "ready: every peer Established\n")
    );
}

/// One sample: name, labels, value.
type Sample = (String, BTreeMap<String, String>, f64);

/// Checks `text` line by line against the text exposition format 0.0.4
/// and returns the samples. Panics naming the offending line. A
/// histogram's samples (`_bucket` with `le`, `_sum`, `_count`) belong to
/// the family of its TYPE line; a counter's end in `_total`.
fn parse_exposition(text: &str) -> Vec<Sample> {
    fn is_name(s: &str, colon: bool) -> bool {
        let mut chars = s.chars();
        chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || (colon && c == ':'))
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || (colon && c == ':'))
    }
    assert!(text.ends_with('\n'), "the text must end with a newline");
    let mut typed: BTreeMap<String, String> = BTreeMap::new();
    let mut helped: BTreeMap<String, ()> = BTreeMap::new();
    let mut seen_samples: BTreeMap<String, ()> = BTreeMap::new();
    let mut samples = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let name = rest.split(' ').next().unwrap();
            assert!(is_name(name, true), "bad HELP name: {line}");
            assert!(
                helped.insert(name.to_owned(), ()).is_none(),
                "second HELP: {line}"
            );
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split(' ');
            let (name, kind) = (parts.next().unwrap(), parts.next().unwrap_or(""));
            assert!(is_name(name, true), "bad TYPE name: {line}");
            assert!(
                ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                "bad type: {line}"
            );
            assert!(parts.next().is_none(), "trailing text: {line}");
            assert!(
                !seen_samples.contains_key(name),
                "TYPE after samples: {line}"
            );
            assert!(
                typed.insert(name.to_owned(), kind.to_owned()).is_none(),
                "second TYPE: {line}"
            );
            continue;
        }
        assert!(
            !line.starts_with('#') || line.starts_with("# "),
            "bad comment: {line}"
        );
        if line.starts_with('#') {
            continue;
        }
        assert!(!line.is_empty(), "empty line");
        let name_end = line
            .find(['{', ' '])
            .unwrap_or_else(|| panic!("no value: {line}"));
        let name = &line[..name_end];
        assert!(is_name(name, true), "bad metric name: {line}");
        let mut labels = BTreeMap::new();
        let mut rest = &line[name_end..];
        if let Some(body) = rest.strip_prefix('{') {
            let mut chars = body.char_indices().peekable();
            loop {
                if let Some((i, '}')) = chars.peek().copied() {
                    rest = &body[i + 1..];
                    break;
                }
                let start = chars.peek().map(|(i, _)| *i).unwrap();
                let mut eq = None;
                for (i, c) in chars.by_ref() {
                    if c == '=' {
                        eq = Some(i);
                        break;
                    }
                }
                let eq = eq.unwrap_or_else(|| panic!("label without '=': {line}"));
                let lname = &body[start..eq];
                assert!(is_name(lname, false), "bad label name {lname:?}: {line}");
                assert_eq!(
                    chars.next().map(|(_, c)| c),
                    Some('"'),
                    "unquoted label value: {line}"
                );
                let mut value = String::new();
                loop {
                    match chars.next().map(|(_, c)| c) {
                        Some('"') => break,
                        Some('\\') => match chars.next().map(|(_, c)| c) {
                            Some('\\') => value.push('\\'),
                            Some('"') => value.push('"'),
                            Some('n') => value.push('\n'),
                            other => panic!("bad escape {other:?}: {line}"),
                        },
                        Some('\n') | None => panic!("unterminated label value: {line}"),
                        Some(c) => value.push(c),
                    }
                }
                assert!(
                    labels.insert(lname.to_owned(), value).is_none(),
                    "repeated label: {line}"
                );
                match chars.peek().copied() {
                    Some((_, ',')) => {
                        chars.next();
                    }
                    Some((_, '}')) => {}
                    _ => panic!("expected ',' or '}}': {line}"),
                }
            }
        }
        let mut fields = rest
            .strip_prefix(' ')
            .unwrap_or_else(|| panic!("no space before the value: {line}"))
            .split(' ');
        let value = fields.next().unwrap();
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            "NaN" => f64::NAN,
            v => v.parse().unwrap_or_else(|_| panic!("bad value: {line}")),
        };
        if let Some(ts) = fields.next() {
            ts.parse::<i64>()
                .unwrap_or_else(|_| panic!("bad timestamp: {line}"));
        }
        assert!(fields.next().is_none(), "trailing text: {line}");
        let histogram = ["_bucket", "_sum", "_count"].iter().find_map(|suffix| {
            let family = name.strip_suffix(suffix)?;
            (typed.get(family).map(String::as_str) == Some("histogram")).then_some(family)
        });
        let family = histogram.unwrap_or(name);
        let kind = typed
            .get(family)
            .unwrap_or_else(|| panic!("sample without TYPE: {line}"));
        assert!(helped.contains_key(family), "sample without HELP: {line}");
        if kind == "counter" {
            assert!(name.ends_with("_total"), "counter not named _total: {line}");
            assert!(value >= 0.0, "negative counter: {line}");
        }
        if kind == "histogram" {
            assert!(histogram.is_some(), "histogram sample {name}: {line}");
            assert_eq!(
                name.ends_with("_bucket"),
                labels.contains_key("le"),
                "le on buckets only: {line}"
            );
        }
        seen_samples.insert(family.to_owned(), ());
        samples.push((name.to_owned(), labels, value));
    }
    samples
}

fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let want: BTreeMap<String, String> = labels
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    samples
        .iter()
        .find(|(n, l, _)| n == name && *l == want)
        .map(|(_, _, v)| *v)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_valid_exposition_with_session_route_and_fib_values() {
    let (a, _b) = peered().await;
    let r = poll(a.addr, "/metrics", "B's prefix accepted", |r| {
        r.text()
            .contains("route_agent_bgp_prefixes_accepted{peer=\"127.0.0.2\"} 1\n")
    })
    .await;
    assert_eq!(r.code, 200);
    assert_eq!(
        r.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let s = parse_exposition(&r.text());
    let peer = [("peer", "127.0.0.2")];
    for (name, labels, want) in [
        (
            "route_agent_bgp_sessions",
            &[("state", "established")][..],
            1.0,
        ),
        ("route_agent_bgp_sessions", &[("state", "active")], 0.0),
        ("route_agent_bgp_sessions", &[("state", "idle")], 0.0),
        ("route_agent_bgp_peer_up", &peer, 1.0),
        ("route_agent_bgp_prefixes_received_total", &peer, 1.0),
        ("route_agent_bgp_prefixes_accepted", &peer, 1.0),
        ("route_agent_bgp_prefixes_advertised", &peer, 1.0),
        (
            "route_agent_routes_installed",
            &[("kind", "blackhole")],
            1.0,
        ),
        ("route_agent_routes_installed", &[("kind", "direct")], 1.0),
        ("route_agent_routes_installed", &[("kind", "tunnel")], 1.0),
        ("route_agent_routes_installed", &[("kind", "underlay")], 0.0),
        ("route_agent_fib_in_sync", &[], 1.0),
        ("route_agent_ready", &[], 1.0),
        ("route_agent_netlink_batches_total", &[], 2.0),
        ("route_agent_netlink_errors_total", &[], 0.0),
        ("route_agent_fib_reconciles_total", &[], 3.0),
        ("route_agent_fib_route_changes_total", &[("op", "add")], 3.0),
        (
            "route_agent_routes_rejected",
            &[("reason", "outside-pools")],
            2.0,
        ),
        (
            "route_agent_routes_rejected",
            &[("reason", "default-route")],
            0.0,
        ),
    ] {
        assert_eq!(value(&s, name, labels), Some(want), "{name} {labels:?}");
    }
    assert!(
        value(
            &s,
            "route_agent_bgp_peer_info",
            &[
                ("peer", "127.0.0.2"),
                ("asn", "64512"),
                ("type", "ibgp"),
                ("dynamic", "false"),
                ("state", "established")
            ]
        ) == Some(1.0)
    );
    for (name, labels, want) in [
        (
            "route_agent_fib_reconcile_duration_seconds_count",
            &[][..],
            3.0,
        ),
        (
            "route_agent_fib_reconcile_duration_seconds_bucket",
            &[("le", "0.001")],
            1.0,
        ),
        (
            "route_agent_fib_reconcile_duration_seconds_bucket",
            &[("le", "0.005")],
            2.0,
        ),
        (
            "route_agent_fib_reconcile_duration_seconds_bucket",
            &[("le", "+Inf")],
            3.0,
        ),
        ("route_agent_bgp_update_to_kernel_seconds_count", &[], 1.0),
        (
            "route_agent_bgp_update_to_kernel_seconds_bucket",
            &[("le", "0.01")],
            0.0,
        ),
        (
            "route_agent_bgp_update_to_kernel_seconds_bucket",
            &[("le", "0.025")],
            1.0,
        ),
    ] {
        assert_eq!(value(&s, name, labels), Some(want), "{name} {labels:?}");
    }
    let sum = value(&s, "route_agent_bgp_update_to_kernel_seconds_sum", &[]);
    assert!(sum.is_some_and(|v| (v - 0.012).abs() < 1e-9), "{sum:?}");
    // This test process's own figures (its CPU time counts in 10 ms
    // ticks: maybe still 0).
    assert!(value(&s, "process_cpu_seconds_total", &[]).is_some_and(|v| v >= 0.0));
    for name in [
        "process_resident_memory_bytes",
        "process_virtual_memory_bytes",
        "process_open_fds",
        "process_max_fds",
        "process_start_time_seconds",
    ] {
        assert!(value(&s, name, &[]).is_some_and(|v| v > 0.0), "{name}");
    }
    // The tunnel device does not exist here: no tunnel series at all.
    assert!(
        !s.iter()
            .any(|(n, _, _)| n.starts_with("route_agent_tunnel_"))
    );
}

/// `GET /metrics` with an `Accept` header, by hand (the status client
/// asks for JSON or text): the `Content-Type` and the body.
async fn scrape_accepting(addr: SocketAddr, accept: &'static str) -> (String, String) {
    tokio::task::spawn_blocking(move || {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(DEADLINE)).unwrap();
        write!(
            stream,
            "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nAccept: {accept}\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut raw = String::new();
        stream.read_to_string(&mut raw).unwrap();
        let (head, body) = raw.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        let content_type = head
            .lines()
            .find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("content-type: ")
                    .map(str::to_owned)
            })
            .unwrap_or_default();
        (content_type, body.to_owned())
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_gets_openmetrics_and_other_clients_the_text_format() {
    let (a, _b) = peered().await;
    // Prometheus 3's default Accept header.
    let prometheus = "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.5,application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.3,text/plain;version=0.0.4;q=0.2,*/*;q=0.1";
    let (content_type, body) = scrape_accepting(a.addr, prometheus).await;
    assert_eq!(
        content_type,
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    assert!(body.ends_with("# EOF\n"), "{body}");
    // OpenMetrics names a counter family without `_total`, its samples
    // with it; histograms and the info metric have their types.
    for line in [
        "# TYPE route_agent_fib_reconciles counter",
        "route_agent_fib_reconciles_total 3",
        "# TYPE route_agent_fib_reconcile_duration_seconds histogram",
        "# TYPE route_agent_bgp_update_to_kernel_seconds histogram",
        "# TYPE route_agent_build info",
        "# TYPE process_cpu_seconds counter",
        "route_agent_bgp_prefixes_received_total{peer=\"127.0.0.2\"} 1",
    ] {
        assert!(body.lines().any(|l| l == line), "no {line:?} in\n{body}");
    }
    // curl's `*/*` and an explicit text/plain get 0.0.4.
    for accept in ["*/*", "text/plain;version=0.0.4"] {
        let (content_type, body) = scrape_accepting(a.addr, accept).await;
        assert_eq!(content_type, "text/plain; version=0.0.4; charset=utf-8");
        parse_exposition(&body);
        assert!(!body.contains("# EOF"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_peer_metrics_off_serves_sessions_by_state_without_peer_series() {
    let (a, _b) = peered().await;
    poll(a.addr, "/metrics", "the peer's series", |r| {
        r.text()
            .contains("route_agent_bgp_peer_up{peer=\"127.0.0.2\"} 1\n")
    })
    .await;
    // What `admin: {per-peer-metrics: false}` sets at start.
    a.state.metrics.set_per_peer(false);
    let r = get(a.addr, "GET", "/metrics").await;
    let s = parse_exposition(&r.text());
    assert!(
        s.iter().all(|(_, labels, _)| !labels.contains_key("peer")),
        "{}",
        r.text()
    );
    assert!(
        !r.text().contains("route_agent_bgp_prefixes_"),
        "{}",
        r.text()
    );
    assert_eq!(
        value(&s, "route_agent_bgp_sessions", &[("state", "established")]),
        Some(1.0)
    );
    assert_eq!(
        value(&s, "route_agent_bgp_sessions", &[("state", "idle")]),
        Some(0.0)
    );
}

/// The metric names a PromQL expression uses: every name of ours
/// (`route_agent_*`) or of the process collector (`process_*`).
fn metric_names(expr: &str) -> Vec<String> {
    let mut names = Vec::new();
    let bytes = expr.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let starts = |p: &str| expr[i..].starts_with(p);
        let boundary = i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_');
        if boundary && (starts("route_agent_") || starts("process_")) {
            let end = expr[i..]
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
                .map_or(expr.len(), |n| i + n);
            names.push(expr[i..end].to_owned());
            i = end;
        } else {
            i += 1;
        }
    }
    names
}

/// Every string under the key `key` anywhere in `value`.
fn strings_under(value: &serde_json::Value, key: &str, out: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                if k == key
                    && let Some(s) = v.as_str()
                {
                    out.push(s.to_owned());
                }
                strings_under(v, key, out);
            }
        }
        serde_json::Value::Array(items) => {
            for v in items {
                strings_under(v, key, out);
            }
        }
        _ => {}
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_of_the_grafana_dashboard_is_in_a_scrape() {
    let dashboard: serde_json::Value =
        serde_json::from_str(include_str!("../../deploy/grafana-dashboard.json"))
            .expect("deploy/grafana-dashboard.json is JSON");
    let (a, _b) = peered().await;
    // A running agent watches its parts' heartbeats.
    a.state.heartbeats.watch(
        Part::FibThread,
        Instant::now(),
        Duration::from_secs(1),
        Duration::from_secs(1),
    );
    // `lo` stands in for the tunnel device, as in the tunnel test below.
    a.state.update(|s| {
        s.tunnel.backend = TunnelInUse::Userspace;
        s.tunnel.device = "lo".into();
    });
    let r = poll(a.addr, "/metrics", "the peer's series", |r| {
        r.text()
            .contains("route_agent_bgp_peer_up{peer=\"127.0.0.2\"} 1\n")
    })
    .await;
    let served: std::collections::BTreeSet<String> = parse_exposition(&r.text())
        .into_iter()
        .map(|(name, _, _)| name)
        .collect();
    let mut exprs = Vec::new();
    strings_under(&dashboard, "expr", &mut exprs);
    // The template variables' queries too (`label_values(…)`).
    strings_under(&dashboard["templating"], "definition", &mut exprs);
    let used: std::collections::BTreeSet<String> =
        exprs.iter().flat_map(|e| metric_names(e)).collect();
    let missing: Vec<&String> = used.iter().filter(|n| !served.contains(*n)).collect();
    assert!(missing.is_empty(), "not in a scrape: {missing:?}");
    // What the dashboard is for is there.
    for name in [
        "route_agent_bgp_sessions",
        "route_agent_bgp_peer_up",
        "route_agent_bgp_prefixes_accepted",
        "route_agent_routes_installed",
        "route_agent_fib_reconcile_duration_seconds_bucket",
        "route_agent_bgp_update_to_kernel_seconds_bucket",
        "route_agent_netlink_errors_total",
        "route_agent_tunnel_receive_bytes_total",
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
    ] {
        assert!(used.contains(name), "the dashboard does not show {name}");
    }
    // Every panel and query takes its data source from the variable.
    let mut sources = Vec::new();
    strings_under(&dashboard["panels"], "uid", &mut sources);
    assert!(!sources.is_empty());
    assert!(
        sources.iter().all(|u| u == "${DS_PROMETHEUS}"),
        "{sources:?}"
    );
    let variables = dashboard["templating"]["list"].as_array().unwrap();
    assert!(variables.iter().any(|v| v["name"] == "DS_PROMETHEUS"
        && v["type"] == "datasource"
        && v["query"] == "prometheus"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_endpoints_hold_the_peer_the_best_routes_and_the_fib() {
    let (a, _b) = peered().await;

    let r = get(a.addr, "GET", "/api/v1/peers").await;
    assert_eq!(r.header("content-type"), Some("application/json"));
    let peers: Vec<PeerDoc> = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(peers.len(), 1);
    let p = &peers[0];
    assert_eq!(p.address, IpAddr::V4(B));
    assert_eq!((p.asn, p.peer_type), (64512, PeerType::Ibgp));
    assert_eq!(p.state, "Established");
    assert!(p.uptime_seconds.is_some());
    assert_eq!(p.last_notification, None);
    // The raw keys are part of the API.
    let raw: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    for key in [
        "address",
        "asn",
        "type",
        "state",
        "uptime_seconds",
        "prefixes_received",
        "prefixes_accepted",
        "prefixes_advertised",
        "last_error",
        "last_notification",
    ] {
        assert!(raw[0].get(key).is_some(), "no {key} in {raw}");
    }

    let r = get(a.addr, "GET", "/api/v1/routes").await;
    let routes: Vec<BestRouteDoc> = serde_json::from_slice(&r.body).unwrap();
    let learned = routes
        .iter()
        .find(|r| r.prefix.to_string() == "10.244.2.0/26")
        .unwrap();
    assert_eq!(learned.peer, Some(IpAddr::V4(B)));
    assert_eq!(learned.next_hop.to_string(), "192.0.2.6");
    assert_eq!(
        (learned.origin.as_str(), learned.as_path.as_str()),
        ("igp", "")
    );
    assert_eq!(learned.local_pref, Some(100));
    assert!(!learned.stale);
    let own = routes
        .iter()
        .find(|r| r.prefix.to_string() == "10.244.1.0/26")
        .unwrap();
    assert_eq!(own.peer, None);

    let r = get(a.addr, "GET", "/api/v1/fib").await;
    let fib: FibWithNodeDoc = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(fib.node.name.as_deref(), Some("node-a"));
    assert_eq!(fib.tunnel.backend, "kernel");
    assert!(fib.fib.in_sync);
    assert_eq!(fib.fib.installed.len(), 3);
    assert_eq!(
        fib.fib.installed[1].route,
        "10.244.2.0/26 via 192.0.2.6 dev eth0 onlink"
    );
    assert_eq!(fib.fib.installed_by_kind["tunnel"], 1);
    assert_eq!(fib.fib.rejected["outside-pools"], 2);

    let r = get(a.addr, "GET", "/api/v1/status").await;
    let doc: StatusDoc = serde_json::from_slice(&r.body).unwrap();
    assert!(doc.ready, "{:?}", doc.unmet);
    assert_eq!(doc.configured_peers, [IpAddr::V4(B)]);
    assert_eq!(doc.peers, peers);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_prints_the_served_peers_and_routes() {
    let (a, _b) = peered().await;
    let addr = a.addr;
    let (raw, doc) = tokio::task::spawn_blocking(move || status::fetch(addr))
        .await
        .unwrap()
        .unwrap();
    let again: StatusDoc = serde_json::from_str(&raw).unwrap();
    assert_eq!(again, doc);
    let text = status::render(&doc, true);
    assert!(
        text.starts_with("route-agent 0.1.0 on node-a (192.0.2.5/24, eth0 mtu 1500)\nReady\n"),
        "{text}"
    );
    let row = text
        .lines()
        .find(|l| l.starts_with("| 127.0.0.2 "))
        .unwrap_or_else(|| panic!("no peer row in\n{text}"));
    let cells: Vec<&str> = row.split('|').map(str::trim).collect();
    assert_eq!(
        &cells[1..5],
        ["127.0.0.2", "64512", "iBGP", "Established"],
        "{row}"
    );
    assert_eq!(&cells[6..8], ["1/1", "1"], "{row}");
    assert!(
        text.contains(
            "Routes: 3 installed (1 blackhole, 1 direct, 1 tunnel), in sync, 2 rejected\n"
        ),
        "{text}"
    );
    assert!(
        text.contains("  10.244.3.0/26 via 198.51.100.7 dev tunl0 onlink mtu 1480\n"),
        "{text}"
    );
    assert!(text.contains("Tunnel: ratest-none0 (kernel)\n"), "{text}");

    let args = StatusArgs {
        target: AdminArgs {
            json: true,
            admin: Some(addr),
            config: None,
        },
        routes: false,
    };
    let code = tokio::task::spawn_blocking(move || status::run(&args))
        .await
        .unwrap();
    assert_eq!(code, std::process::ExitCode::SUCCESS);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_says_the_agent_is_not_running_and_exits_1() {
    // A port that was free a moment ago and has no listener now.
    let addr = {
        let l = std::net::TcpListener::bind((A, 0)).unwrap();
        l.local_addr().unwrap()
    };
    let err = tokio::task::spawn_blocking(move || status::fetch(addr))
        .await
        .unwrap()
        .unwrap_err();
    assert!(matches!(err, FetchError::Connect { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!(
            "cannot reach the route-agent admin API at {addr}: connection refused — is route-agent running?"
        )
    );
    let args = StatusArgs {
        target: AdminArgs {
            json: false,
            admin: Some(addr),
            config: None,
        },
        routes: false,
    };
    let code = tokio::task::spawn_blocking(move || status::run(&args))
        .await
        .unwrap();
    assert_eq!(code, std::process::ExitCode::FAILURE);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_takes_the_admin_address_from_the_config_file() {
    let dir = std::env::temp_dir().join(format!("ra-admin-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("node.yaml");
    let example =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/node.yaml"))
            .unwrap();
    let config = example.replace("listen: 127.0.0.1:9179", "listen: 0.0.0.0:19179");
    assert_ne!(config, example, "the example config lost its admin section");
    std::fs::write(&file, &config).unwrap();
    let args = AdminArgs {
        json: false,
        admin: None,
        config: Some(file.clone()),
    };
    let got = status::admin_address(&args);
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(got.unwrap(), "127.0.0.1:19179".parse().unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bind_names_the_address_in_use_and_serve_stops_when_aborted() {
    let a = agent().await;
    let err = route_agent::admin::bind(a.addr).await.unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with(&format!("cannot listen for the admin API on {}: ", a.addr)),
        "{text}"
    );
    assert!(text.contains("in use"), "{text}");

    a.server.abort();
    let addr = a.addr;
    let start = Instant::now();
    loop {
        let r = tokio::task::spawn_blocking(move || {
            status::request(addr, "GET", "/healthz", Duration::from_secs(1))
        })
        .await
        .unwrap();
        match r {
            Err(FetchError::Connect { .. }) => break,
            other => assert!(start.elapsed() < DEADLINE, "still served: {other:?}"),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tunnel_counters_come_from_the_devices_sysfs_statistics() {
    let a = agent().await;
    // `lo` stands in for tunl0: the kernel keeps the same statistics
    // files for every interface.
    a.state.update(|s| {
        s.tunnel.backend = TunnelInUse::Userspace;
        s.tunnel.device = "lo".into();
    });
    let r = get(a.addr, "GET", "/metrics").await;
    let s = parse_exposition(&r.text());
    let labels = [("device", "lo"), ("backend", "userspace")];
    for name in [
        "route_agent_tunnel_receive_packets_total",
        "route_agent_tunnel_receive_bytes_total",
        "route_agent_tunnel_receive_dropped_total",
        "route_agent_tunnel_transmit_packets_total",
        "route_agent_tunnel_transmit_bytes_total",
        "route_agent_tunnel_transmit_dropped_total",
    ] {
        assert!(
            value(&s, name, &labels).is_some(),
            "no {name} in\n{}",
            r.text()
        );
    }
    // Our own HTTP exchanges went over lo, so it has counted packets.
    let before = value(&s, "route_agent_tunnel_receive_packets_total", &labels).unwrap();
    assert!(before > 0.0);
    let r = get(a.addr, "GET", "/metrics").await;
    let after = parse_exposition(&r.text());
    assert!(value(&after, "route_agent_tunnel_receive_packets_total", &labels).unwrap() > before);
}

/// `route-agent neighbor` and `rib` on the documents a running agent
/// serves: the session's negotiated capabilities come from the real OPEN
/// exchange with B, the table from A's Loc-RIB.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn neighbor_and_rib_show_the_served_session_and_table() {
    let (a, _b) = peered().await;
    let addr = a.addr;
    let (_, peers): (String, Vec<PeerDoc>) =
        tokio::task::spawn_blocking(move || status::fetch_json(addr, "/api/v1/peers"))
            .await
            .unwrap()
            .unwrap();
    let b = inspect::find_neighbor(&peers, "127.0.0.2".parse().unwrap()).unwrap();
    let n = b
        .negotiated
        .as_ref()
        .expect("an established session's OPEN outcome");
    assert_eq!(n.families, ["ipv4-unicast", "ipv6-unicast"]);
    assert!(n.four_octet_as && n.route_refresh, "{n:?}");
    let text = inspect::render_neighbor(b);
    for want in [
        "BGP neighbor is 127.0.0.2, remote AS 64512 (iBGP)\n",
        "  BGP state:          Established, up for ",
        "  Families:           ipv4-unicast, ipv6-unicast\n",
        "  4-octet AS:         yes\n",
        "  Prefixes:           received 1, accepted 1, advertised 1\n",
    ] {
        assert!(text.contains(want), "no {want:?} in:\n{text}");
    }
    let list = inspect::render_neighbors(&peers);
    assert!(
        list.contains("| 127.0.0.2 | 64512 | iBGP | Established |"),
        "{list}"
    );

    let (_, routes): (String, Vec<BestRouteDoc>) =
        tokio::task::spawn_blocking(move || status::fetch_json(addr, "/api/v1/routes"))
            .await
            .unwrap()
            .unwrap();
    let found = inspect::routes_for(&routes, "10.244.2.9/32".parse().unwrap());
    assert_eq!(found.len(), 1, "{routes:?}");
    assert_eq!(found[0].prefix.to_string(), "10.244.2.0/26");
    assert_eq!(found[0].peer, Some("127.0.0.2".parse().unwrap()));
    let table = inspect::render_rib(&routes);
    assert!(table.contains("| 10.244.2.0/26 "), "{table}");

    // The binary: 0 for what is there, 1 (with the known neighbours named)
    // for what is not.
    let admin = addr.to_string();
    let cli = move |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_route-agent"))
            .args(args)
            .args(["--admin", &admin])
            .env_remove("ROUTE_AGENT_CONFIG")
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, out, _) = tokio::task::spawn_blocking({
        let cli = cli.clone();
        move || cli(&["neighbor", "127.0.0.2"])
    })
    .await
    .unwrap();
    assert_eq!(code, Some(0));
    assert!(out.contains("Remote router ID:"), "{out}");
    let (code, _, err) = tokio::task::spawn_blocking({
        let cli = cli.clone();
        move || cli(&["neighbor", "127.0.0.9"])
    })
    .await
    .unwrap();
    assert_eq!(code, Some(1));
    assert!(
        err.contains("no neighbor 127.0.0.9 (neighbours: 127.0.0.2)"),
        "{err}"
    );
    let (code, out, _) = tokio::task::spawn_blocking({
        let cli = cli.clone();
        move || cli(&["rib", "10.244.2.9"])
    })
    .await
    .unwrap();
    assert_eq!(code, Some(0));
    assert!(out.contains("| 10.244.2.0/26 "), "{out}");
    let (code, _, err) = tokio::task::spawn_blocking(move || cli(&["rib", "192.0.2.1"]))
        .await
        .unwrap();
    assert_eq!(code, Some(1));
    assert!(err.contains("network 192.0.2.1/32 not in table"), "{err}");
}
