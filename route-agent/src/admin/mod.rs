//! The admin HTTP API: health, readiness, Prometheus metrics and JSON
//! status, served from the agent's shared state ([`AgentState`]).
//!
//! [`bind`] opens the listener (`admin.listen` in the config, loopback
//! port 9179 by default) so a taken port fails the start; [`serve`] answers
//! on it until its task is dropped. Every endpoint is a `GET` (`HEAD` too);
//! other methods get 405, other paths 404.
//!
//! | path | answer |
//! |---|---|
//! | `/healthz` | liveness ([`live`]): 200 `ok` while every watched part of the agent (speaker, agent loop, FIB thread, reconciles) makes progress in time; else 503 with one line per stale part (`fib-thread: no progress for 63.2 s …`) |
//! | `/readyz` | readiness ([`ready`], Calico's `bird-ready` adapted): 200 with the rule that made it ready (`ready: at least one peer Established`); else 503 with one line per unmet rule (`peer 10.0.0.6: Active`, `fib: not in sync`) |
//! | `/metrics` | Prometheus metrics ([`metrics`]), below: OpenMetrics 1.0 (`application/openmetrics-text`) when the `Accept` header prefers it, as Prometheus's does; else the text format 0.0.4 (`text/plain; version=0.0.4`) |
//! | `/api/v1/peers` | JSON array of [`dto::PeerDoc`] |
//! | `/api/v1/routes` | JSON array of [`dto::BestRouteDoc`]: the Loc-RIB best routes |
//! | `/api/v1/fib` | [`dto::FibWithNodeDoc`]: installed kernel routes, counters, node, tunnel |
//! | `/api/v1/status` | [`dto::StatusDoc`]: what `route-agent status` prints |
//!
//! # Metrics
//!
//! Encoded by the `prometheus-client` crate: counters end in `_total`,
//! durations are histograms in seconds, and the process figures carry the
//! names every client library uses. Names follow the operators' habits
//! listed for Calico, kube-router, GoBGP and MetalLB (`*_bgp_peer_up{peer}`,
//! `*_bgp_peer_info{…}`, prefixes received / accepted / advertised; a
//! reconcile histogram as kube-router's `controller_routes_sync_time` and
//! Felix's `felix_int_dataplane_apply_time_seconds`), under one
//! `route_agent_` prefix. Every label value that can be zero is present
//! with 0, so a rate or an alert does not see series appear and vanish.
//! The series marked *per peer* are left out with
//! `admin: {per-peer-metrics: false}` (a large mesh: several series per
//! peer on every node; a reload applies it); the sessions by state stay.
//!
//! | metric | type | labels | meaning |
//! |---|---|---|---|
//! | `route_agent_build_info` | info (a gauge in 0.0.4) | `version` | always 1 |
//! | `route_agent_ready` | gauge | | 1 when `/readyz` answers 200 |
//! | `route_agent_live` | gauge | | 1 when `/healthz` answers 200 |
//! | `route_agent_heartbeat_age_seconds` | gauge | `part` (speaker, agent-loop, fib-thread, reconcile) | seconds since the part last made progress; only watched parts |
//! | `route_agent_bgp_sessions` | gauge | `state` (idle, connect, active, opensent, openconfirm, established) | sessions per state |
//! | `route_agent_bgp_peer_info` | gauge | `peer`, `asn`, `type` (ibgp, ebgp), `dynamic` (true, false), `state` | always 1 per peer; *per peer* |
//! | `route_agent_bgp_peer_up` | gauge | `peer` | 1 when Established; *per peer* |
//! | `route_agent_bgp_peer_uptime_seconds` | gauge | `peer` | seconds since Established, 0 when down; *per peer* |
//! | `route_agent_bgp_prefixes_received_total` | counter | `peer` | prefixes the peer announced, before import policy, since it was configured; *per peer* (was the gauge `route_agent_bgp_prefixes_received`) |
//! | `route_agent_bgp_prefixes_accepted` | gauge | `peer` | the peer's prefixes in the Loc-RIB; *per peer* |
//! | `route_agent_bgp_prefixes_advertised` | gauge | `peer` | prefixes we advertise to the peer; *per peer* |
//! | `route_agent_bgp_update_to_kernel_seconds` | histogram | | from a route batch of the speaker reaching the agent to the end of the reconcile pass that applied it (one observation per pass with new routes, from its oldest batch; a graceful-restart hold counts) |
//! | `route_agent_routes_installed` | gauge | `kind` (blackhole, direct, tunnel, underlay) | kernel routes of our protocol |
//! | `route_agent_fib_started` | gauge | | 1 once the first plan was applied |
//! | `route_agent_fib_in_sync` | gauge | | 1 when the newest plan is applied without failures |
//! | `route_agent_fib_nexthop_objects` | gauge | | 1 when gateway routes go through kernel nexthop objects |
//! | `route_agent_fib_reconciles_total` | counter | | reconcile passes |
//! | `route_agent_fib_reconcile_duration_seconds` | histogram | | one reconcile pass: kernel dump, diff, netlink batches |
//! | `route_agent_fib_route_changes_total` | counter | `op` (add, replace, delete) | kernel routes changed |
//! | `route_agent_fib_last_reconcile_timestamp_seconds` | gauge | | end of the last reconcile (absent before the first) |
//! | `route_agent_netlink_batches_total` | counter | | netlink sends carrying route requests |
//! | `route_agent_netlink_errors_total` | counter | | route requests the kernel refused |
//! | `route_agent_routes_rejected` | gauge | `reason` (overlaps-local-block, default-route, outside-pools, next-hop-is-this-node, next-hop-family, no-underlay-route) | learned routes the planner refuses now |
//! | `route_agent_datastore_nodes` | gauge | | valid nodes in the datastore; only with `datastore: kubernetes` |
//! | `route_agent_datastore_nodes_skipped` | gauge | `reason` (every skip reason) | nodes skipped now for bad input; only with `datastore: kubernetes` |
//! | `route_agent_tunnel_{receive,transmit}_{packets,bytes,dropped}_total` | counter | `device`, `backend` (kernel, userspace) | the tunnel device's interface statistics from `/sys/class/net/<device>/statistics`; absent without a tunnel device |
//! | `route_agent_preflight_checks` | gauge | `check` (ip-forward, rp-filter, tunnel-backend, mtu, tcp-congestion-control, conntrack), `level` (ok, warning, error) | 1 for the level the start's preflight found ([`crate::preflight`]), 0 for the others |
//! | `route_agent_ipip_filter_dropped_packets_total` | counter | | IPIP the kernel tunnel's filter dropped (IP protocol 4 from an address that is no node: `table ip podroute`); absent without the filter |
//! | `route_agent_bpf_tunnel_packets_total` | counter | `direction`, `result` | the bpf tunnel programs' packets: `egress` `encapsulated`, `no_node`, `error`, `gso_switched`; `ingress` `decapsulated`, `not_node` (IPIP from an address that is no node, dropped), `fragment`, `error`; absent without the bpf backend |
//! | `process_cpu_seconds_total` | counter | | user and system CPU time ([`process`]: `/proc/self/stat`) |
//! | `process_resident_memory_bytes` | gauge | | resident set size (`/proc/self/status` `VmRSS`) |
//! | `process_virtual_memory_bytes` | gauge | | virtual memory size (`VmSize`) |
//! | `process_open_fds` | gauge | | open file descriptors (`/proc/self/fd`) |
//! | `process_max_fds` | gauge | | the soft limit on them (`/proc/self/limits`; absent when unlimited) |
//! | `process_start_time_seconds` | gauge | | process start, seconds since the Unix epoch (`/proc/self/stat` and the boot time) |
//!
//! `deploy/grafana-dashboard.json` is a dashboard over these names;
//! `route-agent/tests/admin.rs` checks that every metric its queries use
//! is in a scrape of a running agent.

pub mod dto;
pub mod live;
pub mod metrics;
pub mod process;
pub mod ready;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{ACCEPT, ALLOW, CONTENT_TYPE, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use serde::Serialize;
use tokio::net::TcpListener;
use tokio::task::JoinSet;

use bgp_core::speaker::PeerSnapshot;

use crate::state::{AgentState, Watch};
use dto::{BestRouteDoc, FibWithNodeDoc, PeerDoc, StatusDoc};
use live::Limits;
use metrics::{Checks, Format, Scrape};
use process::ProcessStats;
use ready::Readiness;

/// Connections served at once; more wait in the listen backlog. The API is
/// for a local scraper and an operator, not for the public.
const MAX_CONNECTIONS: usize = 64;

/// A client must send its request headers within this time.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// Pause after a failed `accept` (out of file descriptors, say), so the
/// loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// How long a request waits for the BGP speaker's answer (peers, routes)
/// before it answers without it: less than the probes' `timeoutSeconds`
/// in `deploy/daemonset.yaml` (5 s), so a wedged speaker makes `/readyz`
/// say so instead of timing out.
pub const SPEAKER_TIMEOUT: Duration = Duration::from_secs(3);

/// Why the admin API could not start.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The listener could not be bound.
    #[error(
        "cannot listen for the admin API on {addr}: {source} — is another route-agent running? Change admin.listen in the config"
    )]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
}

/// Binds the admin listener on `addr` (port 0 picks a free port; see
/// `local_addr()` on the result).
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, AdminError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| AdminError::Bind { addr, source })
}

/// Serves the admin API on `listener` until the returned future is
/// dropped (or its task aborted); open connections end with it. The
/// liveness timeout comes from `ROUTE_AGENT_HEALTH_TIMEOUT`
/// ([`Limits::from_env`]).
pub async fn serve(listener: TcpListener, state: Arc<AgentState>) {
    serve_with(listener, state, Limits::from_env()).await;
}

/// [`serve`] with the liveness limits given.
pub async fn serve_with(listener: TcpListener, state: Arc<AgentState>, limits: Limits) {
    // Connections live in a JoinSet so that dropping this future drops
    // them too: the API never outlives the agent that owns the state.
    let mut connections = JoinSet::new();
    loop {
        while connections.try_join_next().is_some() {}
        if connections.len() >= MAX_CONNECTIONS {
            connections.join_next().await;
            continue;
        }
        let (stream, client) = match listener.accept().await {
            Ok(c) => c,
            Err(error) => {
                tracing::warn!(%error, "admin API: accept failed");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        let state = state.clone();
        connections.spawn(async move {
            let service = service_fn(move |req| {
                let state = state.clone();
                async move { Ok::<_, Infallible>(handle(&req, &state, &limits).await) }
            });
            let conn = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service);
            if let Err(error) = conn.await {
                tracing::debug!(%client, %error, "admin API connection ended with an error");
            }
        });
    }
}

/// The endpoints.
const PATHS: [&str; 7] = [
    "/healthz",
    "/readyz",
    "/metrics",
    "/api/v1/peers",
    "/api/v1/routes",
    "/api/v1/fib",
    "/api/v1/status",
];

/// The speaker's peers, or `None` when it does not answer within
/// [`SPEAKER_TIMEOUT`].
async fn peers(state: &AgentState) -> Option<Vec<PeerSnapshot>> {
    tokio::time::timeout(SPEAKER_TIMEOUT, state.speaker.peers())
        .await
        .ok()?
        .ok()
}

/// The readiness verdict now, on the peers if the speaker answered.
fn readiness(state: &AgentState, peers: Option<&[PeerSnapshot]>) -> Readiness {
    ready::check(&ready::Inputs {
        since_start: state.started.elapsed(),
        status: &state.snapshot(),
        peers,
    })
}

/// The stale parts now (empty when live) and the watches they come from.
fn liveness(state: &AgentState, limits: &Limits) -> (Vec<String>, Vec<Watch>) {
    let watches = state.heartbeats.snapshot();
    (live::unmet(Instant::now(), &watches, limits), watches)
}

/// 503 for an endpoint that needs the speaker's answer.
fn speaker_silent() -> Response<Full<Bytes>> {
    text(
        StatusCode::SERVICE_UNAVAILABLE,
        format!(
            "the BGP speaker did not answer within {} s\n",
            SPEAKER_TIMEOUT.as_secs()
        ),
    )
}

/// 200 with `ok_body`, or 503 with one line per problem.
fn verdict(problems: &[String], ok_body: &str) -> Response<Full<Bytes>> {
    if problems.is_empty() {
        return text(StatusCode::OK, format!("{ok_body}\n"));
    }
    let mut body = problems.join("\n");
    body.push('\n');
    text(StatusCode::SERVICE_UNAVAILABLE, body)
}

/// Answers one request.
async fn handle(
    req: &Request<Incoming>,
    state: &AgentState,
    limits: &Limits,
) -> Response<Full<Bytes>> {
    let path = req.uri().path();
    if !PATHS.contains(&path) {
        return text(StatusCode::NOT_FOUND, format!("no such path: {path}\n"));
    }
    // hyper leaves the body out of HEAD answers by itself.
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut r = text(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("{} not allowed: the admin API is read-only\n", req.method()),
        );
        r.headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    match path {
        "/healthz" => verdict(&liveness(state, limits).0, "ok"),
        "/readyz" => match readiness(state, peers(state).await.as_deref()) {
            Readiness::Ready(by) => text(StatusCode::OK, format!("{}\n", by.text())),
            Readiness::NotReady(unmet) => verdict(&unmet, ""),
        },
        "/metrics" => {
            let peers = peers(state).await;
            let ready = readiness(state, peers.as_deref()).is_ready();
            let (stale, watches) = liveness(state, limits);
            let now = Instant::now();
            let checks = Checks {
                ready,
                live: stale.is_empty(),
                heartbeats: watches
                    .iter()
                    .map(|w| (w.part, live::age(now, w)))
                    .collect(),
            };
            let status = state.snapshot();
            let tunnel = metrics::read_tunnel_counters(
                Path::new(metrics::SYS_CLASS_NET),
                &status.tunnel.device,
                status.tunnel.backend,
            );
            let scrape = Scrape {
                status,
                // Without the speaker's answer the peer series are left
                // out of this scrape; `route_agent_ready` says 0.
                peers: peers.unwrap_or_default(),
                tunnel,
                checks,
                per_peer: state.metrics.per_peer(),
            };
            let format = Format::negotiate(req.headers().get(ACCEPT).and_then(|v| v.to_str().ok()));
            let process = ProcessStats::read(Path::new(process::PROC));
            match metrics::render(scrape, &state.metrics, process, format) {
                Ok(body) => respond(StatusCode::OK, format.content_type(), body.into()),
                Err(e) => text(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("cannot encode the metrics: {e}\n"),
                ),
            }
        }
        "/api/v1/peers" => {
            let Some(peers) = peers(state).await else {
                return speaker_silent();
            };
            let mut peers: Vec<PeerDoc> = peers.iter().map(PeerDoc::from_snapshot).collect();
            peers.sort_by_key(|p| p.address);
            json(&peers)
        }
        "/api/v1/routes" => {
            let Ok(Ok(routes)) =
                tokio::time::timeout(SPEAKER_TIMEOUT, state.speaker.routes()).await
            else {
                return speaker_silent();
            };
            let mut routes: Vec<BestRouteDoc> =
                routes.iter().map(BestRouteDoc::from_route).collect();
            // In prefix order, as `ip route` and `birdc show route` list.
            routes.sort_by_key(|r| r.prefix);
            json(&routes)
        }
        "/api/v1/fib" => json(&FibWithNodeDoc::new(&state.snapshot())),
        _ => {
            let Some(peers) = peers(state).await else {
                return speaker_silent();
            };
            let readiness = readiness(state, Some(&peers));
            json(&StatusDoc::new(&state.snapshot(), &peers, &readiness))
        }
    }
}

fn respond(status: StatusCode, content_type: &'static str, body: Bytes) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    respond(status, "text/plain; charset=utf-8", body.into())
}

fn json(value: &impl Serialize) -> Response<Full<Bytes>> {
    match serde_json::to_vec_pretty(value) {
        Ok(mut body) => {
            body.push(b'\n');
            respond(StatusCode::OK, "application/json", body.into())
        }
        // Our documents hold no maps with non-string keys, so this is a bug.
        Err(e) => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot encode the answer: {e}\n"),
        ),
    }
}
