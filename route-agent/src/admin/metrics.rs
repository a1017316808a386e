//! `/metrics` on the prometheus-client crate, in the format the scraper
//! asks for ([`Format::negotiate`]): OpenMetrics 1.0 when its `Accept`
//! header prefers it (Prometheus's does), else the text format 0.0.4
//! (curl, older scrapers, a request without `Accept`).
//!
//! Two kinds of source, so that nothing is kept twice:
//! - values that already live in a snapshot (the speaker's peers, the
//!   agent's [`Status`], the tunnel's interface statistics, `/proc`) are
//!   encoded at scrape time by collectors ([`Scrape`], [`Process`]);
//! - events that exist only as they happen (a reconcile pass's duration,
//!   a route batch's way to the kernel) are observed into the histograms
//!   of [`Metrics`], which every scrape encodes.
//!
//! The families are listed in the [admin module docs](super).

use std::borrow::Cow;
use std::path::Path;
use std::time::Duration;

use bgp_core::session::State;
use bgp_core::speaker::PeerSnapshot;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeCounterValue, EncodeGaugeValue, EncodeMetric,
};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

use super::dto::{REJECT_REASONS, ROUTE_KINDS, backend_name, reject_reason_name, route_kind_name};
use super::process::ProcessStats;
use crate::state::{Metrics, Part, Status, TunnelInUse};

/// The `Content-Type` of the text format 0.0.4.
pub const CONTENT_TYPE_TEXT: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// The `Content-Type` of OpenMetrics text 1.0.0 (what prometheus-client's
/// `encoding::text` writes, ending in `# EOF`).
pub const CONTENT_TYPE_OPENMETRICS: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

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

/// The `statistics/` files read for the tunnel and the counter each feeds
/// (`route_agent_tunnel_<name>_total`).
const TUNNEL_FILES: [(&str, &str); 6] = [
    ("rx_packets", "receive_packets"),
    ("rx_bytes", "receive_bytes"),
    ("rx_dropped", "receive_dropped"),
    ("tx_packets", "transmit_packets"),
    ("tx_bytes", "transmit_bytes"),
    ("tx_dropped", "transmit_dropped"),
];

/// The exposition format of one answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// The Prometheus text format 0.0.4.
    Text,
    /// OpenMetrics text 1.0.0.
    OpenMetrics,
}

impl Format {
    /// The format for a request's `Accept` header: OpenMetrics when it is
    /// listed with a quality at least that of `text/plain`, else (no
    /// header, `*/*`, `text/plain` preferred) the text format 0.0.4.
    /// Prometheus lists OpenMetrics first unless told otherwise
    /// (`scrape_protocols`), so both of its choices are served.
    pub fn negotiate(accept: Option<&str>) -> Format {
        let (mut openmetrics, mut text) = (0.0_f64, 0.0_f64);
        for range in accept.unwrap_or("").split(',') {
            let mut params = range.split(';').map(str::trim);
            let media = params.next().unwrap_or("");
            let q = params
                .filter_map(|p| p.strip_prefix("q=").or_else(|| p.strip_prefix("Q=")))
                .find_map(|q| q.parse::<f64>().ok())
                .unwrap_or(1.0);
            if media.eq_ignore_ascii_case("application/openmetrics-text") {
                openmetrics = openmetrics.max(q);
            } else if media.eq_ignore_ascii_case("text/plain") {
                text = text.max(q);
            }
        }
        if openmetrics > 0.0 && openmetrics >= text {
            Format::OpenMetrics
        } else {
            Format::Text
        }
    }

    /// The `Content-Type` of an answer in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Text => CONTENT_TYPE_TEXT,
            Format::OpenMetrics => CONTENT_TYPE_OPENMETRICS,
        }
    }
}

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

/// One scrape's snapshot: the collector of every family whose values live
/// in the agent's state, the speaker or sysfs.
#[derive(Clone, Debug, Default)]
pub struct Scrape {
    /// The agent's status.
    pub status: Status,
    /// The speaker's peers (empty when it did not answer in time).
    pub peers: Vec<PeerSnapshot>,
    /// The tunnel device's counters, when there is one.
    pub tunnel: Option<TunnelCounters>,
    /// Readiness, liveness and heartbeats.
    pub checks: Checks,
    /// Whether the series labelled by peer go out
    /// (`admin.per-peer-metrics`).
    pub per_peer: bool,
}

/// The exposition of one scrape, the event histograms and the process
/// figures, in `format`. The error comes from the encoder only (writing
/// into a `String` does not fail).
pub fn render(
    scrape: Scrape,
    metrics: &Metrics,
    process: ProcessStats,
    format: Format,
) -> Result<String, std::fmt::Error> {
    let mut registry = Registry::default();
    // The registry appends the final period to these two help texts.
    registry.register(
        "route_agent_fib_reconcile_duration_seconds",
        "Seconds one reconcile pass took: kernel dump, diff and the netlink batches that apply it",
        metrics.reconcile_duration.clone(),
    );
    registry.register(
        "route_agent_bgp_update_to_kernel_seconds",
        "Seconds from a route batch of the BGP speaker reaching the agent to the end of the reconcile pass that put it in the kernel (one observation per pass, from the oldest batch it applied; a graceful-restart hold counts)",
        metrics.update_to_kernel.clone(),
    );
    registry.register_collector(Box::new(scrape));
    registry.register_collector(Box::new(Process(process)));
    let mut out = String::new();
    match format {
        Format::Text => prometheus_client::encoding::prometheus_text::encode(&mut out, &registry)?,
        Format::OpenMetrics => prometheus_client::encoding::text::encode(&mut out, &registry)?,
    }
    Ok(out)
}

/// A label set: names and values.
type Labels<'a> = Vec<(&'static str, Cow<'a, str>)>;

/// Encodes one family: its HELP and TYPE, then a sample per row.
/// Counters get their `_total` from the encoder.
fn family<'a, V: EncodeGaugeValue + EncodeCounterValue>(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    kind: MetricType,
    rows: impl IntoIterator<Item = (Labels<'a>, V)>,
) -> Result<(), std::fmt::Error> {
    let mut metric = encoder.encode_descriptor(name, help, None, kind)?;
    for (labels, value) in rows {
        let sample = metric.encode_family(&labels)?;
        match kind {
            MetricType::Counter => ConstCounter::new(value).encode(sample)?,
            _ => ConstGauge::new(value).encode(sample)?,
        }
    }
    Ok(())
}

/// A family of one sample without labels.
fn single<V: EncodeGaugeValue + EncodeCounterValue>(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    kind: MetricType,
    value: V,
) -> Result<(), std::fmt::Error> {
    family(encoder, name, help, kind, [(Labels::new(), value)])
}

fn label<'a>(name: &'static str, value: impl Into<Cow<'a, str>>) -> (&'static str, Cow<'a, str>) {
    (name, value.into())
}

impl Collector for Scrape {
    fn encode(&self, mut e: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        use MetricType::{Counter, Gauge};
        let e = &mut e;
        let info = Info::new(vec![("version", env!("CARGO_PKG_VERSION"))]);
        info.encode(e.encode_descriptor(
            "route_agent_build",
            "Always 1; the version is the label.",
            None,
            MetricType::Info,
        )?)?;

        single(
            e,
            "route_agent_ready",
            "1 when /readyz answers 200: initial sync done, kernel routes in sync, and the peers as bird-ready wants them (every one during the first 30 s, then one, or none when alone).",
            Gauge,
            u64::from(self.checks.ready),
        )?;
        single(
            e,
            "route_agent_live",
            "1 when /healthz answers 200: every watched part of the agent made progress in time.",
            Gauge,
            u64::from(self.checks.live),
        )?;
        family(
            e,
            "route_agent_heartbeat_age_seconds",
            "Seconds since each watched part of the agent (speaker, agent-loop, fib-thread, reconcile) last made progress.",
            Gauge,
            self.checks
                .heartbeats
                .iter()
                .map(|(part, age)| (vec![label("part", part.name())], age.as_secs_f64())),
        )?;

        family(
            e,
            "route_agent_bgp_sessions",
            "BGP sessions by state.",
            Gauge,
            STATES.iter().map(|(state, name)| {
                let n = self.peers.iter().filter(|p| p.state == *state).count();
                (vec![label("state", *name)], n as u64)
            }),
        )?;
        if self.per_peer {
            self.encode_peers(e)?;
        }

        let fib = &self.status.fib;
        family(
            e,
            "route_agent_routes_installed",
            "Kernel routes of our protocol as last applied, by kind.",
            Gauge,
            ROUTE_KINDS.iter().map(|kind| {
                let n = fib
                    .installed
                    .iter()
                    .filter(|r| route_kind_name(&r.kind) == *kind)
                    .count();
                (vec![label("kind", *kind)], n as u64)
            }),
        )?;
        single(
            e,
            "route_agent_fib_started",
            "1 once the first plan was applied (graceful restart may hold it back).",
            Gauge,
            u64::from(fib.started),
        )?;
        single(
            e,
            "route_agent_fib_in_sync",
            "1 when the newest plan is applied with no route failing.",
            Gauge,
            u64::from(fib.in_sync),
        )?;
        single(
            e,
            "route_agent_fib_nexthop_objects",
            "1 when gateway routes go through kernel nexthop objects (nexthop-objects: auto takes them for tables of over 1,000 gateway routes).",
            Gauge,
            u64::from(fib.nexthop_objects),
        )?;
        single(
            e,
            "route_agent_fib_reconciles",
            "Reconcile passes run (kernel dump, diff, apply).",
            Counter,
            fib.reconciles,
        )?;
        family(
            e,
            "route_agent_fib_route_changes",
            "Kernel routes changed, by operation.",
            Counter,
            [
                ("add", fib.added),
                ("replace", fib.replaced),
                ("delete", fib.deleted),
            ]
            .map(|(op, n)| (vec![label("op", op)], n)),
        )?;
        if let Some(t) = fib
            .last_reconcile
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        {
            single(
                e,
                "route_agent_fib_last_reconcile_timestamp_seconds",
                "When the last reconcile finished, in seconds since the Unix epoch.",
                Gauge,
                t.as_secs_f64(),
            )?;
        }
        single(
            e,
            "route_agent_netlink_batches",
            "Netlink sendmsg calls carrying route requests.",
            Counter,
            fib.batches,
        )?;
        single(
            e,
            "route_agent_netlink_errors",
            "Route requests the kernel refused.",
            Counter,
            fib.errors,
        )?;

        family(
            e,
            "route_agent_routes_rejected",
            "Learned routes the planner refuses to install now, by reason.",
            Gauge,
            REJECT_REASONS.iter().map(|reason| {
                let n = self.status.rejected.get(reason).copied().unwrap_or(0);
                (vec![label("reason", reject_reason_name(*reason))], n)
            }),
        )?;

        if let Some(ds) = &self.status.datastore {
            single(
                e,
                "route_agent_datastore_nodes",
                "Valid nodes in the datastore (datastore: kubernetes or etcd).",
                Gauge,
                ds.nodes as u64,
            )?;
            family(
                e,
                "route_agent_datastore_nodes_skipped",
                "Nodes skipped now for bad input (no InternalIP, bad or overlapping podCIDR, duplicate address, bad annotation; etcd: bad record, address outside its subnet, block not claimed for it, other AS), by reason.",
                Gauge,
                ds.skipped
                    .iter()
                    .map(|(reason, n)| (vec![label("reason", *reason)], *n)),
            )?;
        }

        if let Some(f) = &self.status.ipip_filter {
            single(
                e,
                "route_agent_ipip_filter_dropped_packets",
                "IPIP packets the kernel tunnel's filter dropped: IP protocol 4 from an address that is no node (nftables table ip podroute).",
                Counter,
                f.dropped_packets,
            )?;
        }

        if let Some(b) = &self.status.bpf_tunnel {
            family(
                e,
                "route_agent_bpf_tunnel_packets",
                "Packets of the bpf tunnel programs by direction and result: egress encapsulated, no_node (no block entry), error, gso_switched; ingress decapsulated, not_node (IPIP from an address that is no node, dropped), fragment (left to the stack), error.",
                Counter,
                b.packets.iter().map(|(direction, result, n)| {
                    (
                        vec![
                            label("direction", direction.as_str()),
                            label("result", result.as_str()),
                        ],
                        *n,
                    )
                }),
            )?;
        }

        if self.status.tunnel.wanted {
            let device = self.status.tunnel.device.as_str();
            family(
                e,
                "route_agent_tunnel_up",
                "1 when the IPIP tunnel an IPIP pool needs is set up; 0 while it is not (a failed set-up or an exited userspace tunnel, retried with a backoff).",
                Gauge,
                [(
                    vec![label("device", device)],
                    u64::from(self.status.tunnel.backend != TunnelInUse::None),
                )],
            )?;
            family(
                e,
                "route_agent_tunnel_failures",
                "Tunnel set-ups that failed and userspace tunnel processes that exited since the agent started.",
                Counter,
                [(vec![label("device", device)], self.status.tunnel.failures)],
            )?;
        }

        family(
            e,
            "route_agent_preflight_checks",
            "The start's preflight checks (route-agent preflight): 1 for the level each check found (ok, warning, error).",
            Gauge,
            self.status.preflight.iter().flat_map(|(check, found)| {
                [
                    crate::preflight::Level::Ok,
                    crate::preflight::Level::Warning,
                    crate::preflight::Level::Error,
                ]
                .into_iter()
                .map(move |level| {
                    (
                        vec![label("check", *check), label("level", level.name())],
                        u64::from(level == *found),
                    )
                })
            }),
        )?;

        if let Some(t) = &self.tunnel {
            for (name, value) in &t.values {
                let help = format!(
                    "The tunnel device's {} (kernel interface statistics).",
                    name.replace('_', " ")
                );
                family(
                    e,
                    &format!("route_agent_tunnel_{name}"),
                    &help,
                    Counter,
                    [(
                        vec![
                            label("device", t.device.as_str()),
                            label("backend", t.backend),
                        ],
                        *value,
                    )],
                )?;
            }
        }
        Ok(())
    }
}

impl Scrape {
    /// The families labelled by peer (`admin.per-peer-metrics`).
    fn encode_peers(&self, e: &mut DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        use MetricType::{Counter, Gauge};
        let addresses: Vec<String> = self.peers.iter().map(|p| p.address.to_string()).collect();
        let peers = || self.peers.iter().zip(&addresses);
        let per_peer = |e: &mut DescriptorEncoder<'_>,
                        name: &str,
                        help: &str,
                        kind: MetricType,
                        value: &dyn Fn(&PeerSnapshot) -> u64| {
            family(
                e,
                name,
                help,
                kind,
                peers().map(|(p, address)| (vec![label("peer", address.as_str())], value(p))),
            )
        };
        family(
            e,
            "route_agent_bgp_peer_info",
            "Always 1 per peer; its AS, type (ibgp, ebgp), whether it is a dynamic neighbour (a route-reflector client accepted from a range) and session state are labels.",
            Gauge,
            peers().map(|(p, address)| {
                let state = STATES
                    .iter()
                    .find(|(s, _)| *s == p.state)
                    .map_or("unknown", |(_, l)| l);
                let labels = vec![
                    label("peer", address.as_str()),
                    label("asn", p.asn.to_string()),
                    label("type", if p.ibgp { "ibgp" } else { "ebgp" }),
                    label("dynamic", if p.dynamic { "true" } else { "false" }),
                    label("state", state),
                ];
                (labels, 1_u64)
            }),
        )?;
        per_peer(
            e,
            "route_agent_bgp_peer_up",
            "1 when the session with the peer is Established.",
            Gauge,
            &|p| u64::from(p.state == State::Established),
        )?;
        per_peer(
            e,
            "route_agent_bgp_peer_uptime_seconds",
            "Seconds since the session came up (0 when down).",
            Gauge,
            &|p| p.uptime.map_or(0, |d| d.as_secs()),
        )?;
        per_peer(
            e,
            "route_agent_bgp_prefixes_received",
            "Prefixes the peer announced, before import policy, since it was configured.",
            Counter,
            &|p| p.received,
        )?;
        per_peer(
            e,
            "route_agent_bgp_prefixes_accepted",
            "Prefixes from the peer now in the Loc-RIB.",
            Gauge,
            &|p| u64::try_from(p.accepted).unwrap_or(u64::MAX),
        )?;
        per_peer(
            e,
            "route_agent_bgp_prefixes_advertised",
            "Prefixes advertised to the peer now.",
            Gauge,
            &|p| u64::try_from(p.advertised).unwrap_or(u64::MAX),
        )
    }
}

/// The `process_*` families ([`super::process`]), each left out when its
/// figure could not be read.
#[derive(Debug)]
pub struct Process(pub ProcessStats);

impl Collector for Process {
    fn encode(&self, mut e: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        use MetricType::{Counter, Gauge};
        let s = &self.0;
        let e = &mut e;
        if let Some(v) = s.cpu_seconds {
            single(
                e,
                "process_cpu_seconds",
                "Total user and system CPU time spent in seconds.",
                Counter,
                v,
            )?;
        }
        if let Some(v) = s.resident_bytes {
            single(
                e,
                "process_resident_memory_bytes",
                "Resident memory size in bytes.",
                Gauge,
                v,
            )?;
        }
        if let Some(v) = s.virtual_bytes {
            single(
                e,
                "process_virtual_memory_bytes",
                "Virtual memory size in bytes.",
                Gauge,
                v,
            )?;
        }
        if let Some(v) = s.open_fds {
            single(
                e,
                "process_open_fds",
                "Number of open file descriptors.",
                Gauge,
                v,
            )?;
        }
        if let Some(v) = s.max_fds {
            single(
                e,
                "process_max_fds",
                "Maximum number of open file descriptors.",
                Gauge,
                v,
            )?;
        }
        if let Some(v) = s.start_time_seconds {
            single(
                e,
                "process_start_time_seconds",
                "Start time of the process since unix epoch in seconds.",
                Gauge,
                v,
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
