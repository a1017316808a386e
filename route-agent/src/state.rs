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

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use bgp_core::speaker::Speaker;
use ipnetwork::Ipv4Network;
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
