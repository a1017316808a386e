//! What a running agent shares with its admin API (`/readyz`, `/metrics`,
//! `/api/v1/*`) and so with `route-agent status`.
//!
//! Besides the [`Status`] copy it holds the agent's start time (readiness
//! has a grace period counted from it) and the [`Heartbeats`] of the
//! agent's long-running parts, which `/healthz` checks for staleness.
//!
//! A module of its own so that neither side imports the other: the agent
//! ([`crate::agent`]) writes it, the admin API ([`crate::admin`]) reads
//! it, and [`crate::daemon`] starts both. The agent's loops write it;
//! readers take a snapshot ([`AgentState::snapshot`]) and never hold the
//! lock across an await. Peers and the Loc-RIB are not copied here: they
//! are asked from the speaker ([`AgentState::speaker`]).
//!
//! What cannot be read from a snapshot, the distribution of events over
//! time, is kept in [`Metrics`]: histograms the agent observes into and
//! `/metrics` encodes.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use bgp_core::speaker::Speaker;
use ipnetwork::Ipv4Network;
use prometheus_client::metrics::histogram::Histogram;
use serde::Serialize;

use crate::planner::{DesiredRoute, RejectReason};

/// The agent's shared state.
#[derive(Debug)]
pub struct AgentState {
    /// The BGP speaker: peers (`peers()`) and best routes (`routes()`).
    pub speaker: Speaker,
    /// When the agent started: readiness's grace period counts from here.
    pub started: Instant,
    /// Progress marks of the agent's long-running parts (`/healthz`).
    pub heartbeats: Heartbeats,
    /// Event histograms for `/metrics`.
    pub metrics: Metrics,
    status: Mutex<Status>,
}

/// A copy of everything the agent tracks besides the speaker.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Status {
    /// This node.
    pub node: NodeStatus,
    /// The configured peers (mesh and explicit), by address.
    pub configured_peers: Vec<IpAddr>,
    /// The kernel side.
    pub fib: FibStatus,
    /// The IPIP tunnel.
    pub tunnel: TunnelStatus,
    /// Learned routes the planner refused, by reason (each route counted
    /// once while it stays refused).
    pub rejected: BTreeMap<RejectReason, u64>,
    /// A BGP session has been Established at some time since the agent
    /// started (sticky). Readiness tells a node whose peers were never
    /// reachable (alone: the others are dead) from one that lost every
    /// session it had.
    pub peer_established_since_start: bool,
    /// The datastore's nodes (`datastore: kubernetes`); `None` with the
    /// file datastore.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub datastore: Option<DatastoreStatus>,
    /// The preflight findings of the start (`route-agent preflight`'s
    /// checks): check name and level.
    pub preflight: Vec<(&'static str, crate::preflight::Level)>,
    /// The kernel tunnel's IPIP filter; `None` when there is none (the
    /// userspace tunnel checks peers itself).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ipip_filter: Option<crate::agent::ipip_filter::IpipFilterStatus>,
    /// The `bpf` tunnel backend's programs; `None` without them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bpf_tunnel: Option<crate::agent::bpf::BpfTunnelStatus>,
}

/// The nodes a datastore reports.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct DatastoreStatus {
    /// Valid nodes.
    pub nodes: usize,
    /// Nodes skipped now, by reason (`no-internal-ip`, `bad-pod-cidr`,
    /// ...; every reason present).
    pub skipped: BTreeMap<&'static str, u64>,
}

/// This node as the agent sees it now.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct NodeStatus {
    /// The node name.
    pub name: Option<String>,
    /// The node address with its prefix length.
    pub address: Option<Ipv4Network>,
    /// The interface holding it.
    pub underlay: String,
    /// That interface's MTU.
    pub underlay_mtu: u32,
}

/// The FIB reconciler's state.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct FibStatus {
    /// True once the first plan was applied (graceful restart may hold it
    /// back until every peer sent End-of-RIB).
    pub started: bool,
    /// True when the newest plan is applied with no route failing.
    pub in_sync: bool,
    /// Whether the last pass put gateway routes through kernel nexthop
    /// objects (`nexthop-objects`: with `auto`, tables of over 1,000
    /// gateway routes).
    pub nexthop_objects: bool,
    /// The routes of our protocol as last applied: the plan minus the
    /// routes the kernel refused.
    pub installed: Vec<DesiredRoute>,
    /// Reconcile passes run.
    pub reconciles: u64,
    /// Netlink batches (`sendmsg` calls carrying route requests) sent.
    pub batches: u64,
    /// Routes the kernel refused, in total.
    pub errors: u64,
    /// Routes added, replaced and deleted, in total.
    pub added: u64,
    /// See `added`.
    pub replaced: u64,
    /// See `added`.
    pub deleted: u64,
    /// The newest error (a route and its errno, or a socket error).
    pub last_error: Option<String>,
    /// When the last reconcile finished.
    pub last_reconcile: Option<SystemTime>,
}

/// Which tunnel backend runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TunnelInUse {
    /// No IPv4 pool uses IPIP, or the tunnel is not set up yet.
    #[default]
    None,
    /// The kernel's tunl0 (ipip module).
    Kernel,
    /// Our userspace data plane (a `route-agent tunnel` process).
    Userspace,
    /// The eBPF programs of [`ipip::bpf`].
    Bpf,
}

/// The tunnel as set up by the agent.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct TunnelStatus {
    /// The backend in use.
    pub backend: TunnelInUse,
    /// The device (`tunl0`).
    pub device: String,
    /// Why the configured backend is not the one in use, or why setup
    /// failed.
    pub note: Option<String>,
    /// An IPv4 pool uses IPIP, so the tunnel should be running (with
    /// `backend: none` it is not: readiness fails).
    pub wanted: bool,
    /// Set-ups that failed and userspace tunnel processes that exited
    /// since the agent started (each is retried after a backoff).
    pub failures: u64,
}

impl AgentState {
    /// Wraps the speaker with an empty status and no heartbeats watched;
    /// the start time is now.
    pub fn new(speaker: Speaker) -> Self {
        Self {
            speaker,
            started: Instant::now(),
            heartbeats: Heartbeats::default(),
            metrics: Metrics::default(),
            status: Mutex::new(Status::default()),
        }
    }

    /// A copy of the current status.
    pub fn snapshot(&self) -> Status {
        self.status
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Changes the status under the lock.
    pub fn update(&self, f: impl FnOnce(&mut Status)) {
        f(&mut self.status.lock().unwrap_or_else(PoisonError::into_inner));
    }
}

/// Upper bounds (seconds) of the reconcile-duration buckets: a pass over
/// a small table takes a millisecond, 100,000 routes into an empty table
/// a few hundred (route-agent/benches/README.md); the top buckets catch a
/// kernel that holds the RTNL lock.
pub const RECONCILE_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Upper bounds (seconds) of the BGP-update-to-kernel buckets: a route
/// batch normally reaches the kernel within milliseconds; graceful
/// restart holds the first plan for up to its restart time (120 s by
/// default), which the top buckets show.
pub const UPDATE_TO_KERNEL_BUCKETS: [f64; 17] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
    120.0, 300.0,
];

/// The events `/metrics` reports as distributions, and how it reports
/// peers. The histograms are shared handles: the agent observes into
/// them, each scrape encodes the same ones (one lock each, taken once per
/// reconcile pass, never per route).
#[derive(Debug)]
pub struct Metrics {
    /// Seconds one reconcile pass took (kernel dump, diff, apply), as the
    /// FIB thread measures it around the pass.
    pub reconcile_duration: Histogram,
    /// Seconds from a route batch reaching the agent from the speaker to
    /// the end of the reconcile pass that applied the first plan holding
    /// it (one observation per pass, from the oldest batch it applied).
    pub update_to_kernel: Histogram,
    /// Whether `/metrics` carries the series labelled by peer
    /// (`admin.per-peer-metrics`).
    per_peer: AtomicBool,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            reconcile_duration: Histogram::new(RECONCILE_BUCKETS),
            update_to_kernel: Histogram::new(UPDATE_TO_KERNEL_BUCKETS),
            per_peer: AtomicBool::new(true),
        }
    }
}

impl Metrics {
    /// Whether the series labelled by peer are served (default: yes).
    pub fn per_peer(&self) -> bool {
        self.per_peer.load(Ordering::Relaxed)
    }

    /// Serves the series labelled by peer, or leaves them out (large
    /// meshes: one series per peer and metric on every node).
    pub fn set_per_peer(&self, on: bool) {
        self.per_peer.store(on, Ordering::Relaxed);
    }
}

/// A long-running part of the agent that must keep making progress; each
/// beats [`Heartbeats`] when it does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Part {
    /// The BGP speaker task (in bgp-core), observed from the agent: a
    /// `peers()` request it answered.
    Speaker,
    /// The agent's loop: one beat per turn (it wakes at least once per
    /// resync period).
    AgentLoop,
    /// The FIB thread: one beat per wake-up (at least once a second).
    FibThread,
    /// A reconcile pass that ran to its end (one is due per resync
    /// period once the first plan went out).
    Reconcile,
}

impl Part {
    /// The name `/healthz` and `/metrics` use.
    pub fn name(self) -> &'static str {
        match self {
            Part::Speaker => "speaker",
            Part::AgentLoop => "agent-loop",
            Part::FibThread => "fib-thread",
            Part::Reconcile => "reconcile",
        }
    }
}

/// What is known about one watched part.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Watch {
    /// The part.
    pub part: Part,
    /// When watching began.
    pub since: Instant,
    /// The last beat; `None` before the first.
    pub last: Option<Instant>,
    /// The next beat is due by then (the first one's own deadline, then
    /// the last beat plus `every`).
    pub due: Instant,
    /// The longest expected time between two beats.
    pub every: Duration,
}

/// The heartbeat table: each watched [`Part`] and its last beat. The
/// agent's parts write it; the admin API reads a [`Heartbeats::snapshot`]
/// and decides (`admin::live`).
#[derive(Debug, Default)]
pub struct Heartbeats {
    watches: Mutex<BTreeMap<Part, Watch>>,
}

impl Heartbeats {
    /// Starts watching `part` at `now`: its first beat is due within
    /// `first`, then one within each `every`. Watching again restarts the
    /// watch.
    pub fn watch(&self, part: Part, now: Instant, first: Duration, every: Duration) {
        let watch = Watch {
            part,
            since: now,
            last: None,
            due: now + first,
            every,
        };
        self.lock().insert(part, watch);
    }

    /// `part` made progress at `now` (ignored when it is not watched).
    pub fn beat(&self, part: Part, now: Instant) {
        if let Some(w) = self.lock().get_mut(&part) {
            w.last = Some(now);
            w.due = now + w.every;
        }
    }

    /// Stops watching `part` (it ended on purpose).
    pub fn forget(&self, part: Part) {
        self.lock().remove(&part);
    }

    /// Every watch, in [`Part`] order.
    pub fn snapshot(&self) -> Vec<Watch> {
        self.lock().values().copied().collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<Part, Watch>> {
        self.watches.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
