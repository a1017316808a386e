//! `datastore: kubernetes`: the cluster's Node objects, watched through
//! the API server, as [`Snapshot`]s of the [`NodeSet`].
//!
//! - **Watch.** `kube-runtime`'s watcher on `v1/Node`: a LIST (with its
//!   `resourceVersion`), then a WATCH from there with bookmarks; `410 Gone`
//!   (an expired resourceVersion) makes it list again, and so does a
//!   dropped connection once the API server answers again (retries after
//!   0.5 s, doubling to 5 s: an API server back after 30 s is seen within
//!   5 s). The objects of a relist replace the old ones at once, so a
//!   relist that finds what was there changes nothing.
//! - **Debounce.** A change is sent [`QUIET`] after the last event of a
//!   burst, and never later than [`MAX_DELAY`] after the first, so a burst
//!   (a relist, a rollout labelling nodes) is one change and a single
//!   change is not held back. A snapshot equal to the last one is not
//!   sent.
//! - **Bad nodes** ([`super::node::build`]): each newly skipped node gets
//!   one log line on every agent, a Warning Event on the Node (core/v1,
//!   named after node, reason and message, so the agents that all see it
//!   create one Event between them: the others get `409 AlreadyExists`) and
//!   counts in `route_agent_datastore_nodes_skipped{reason}`.
//! - **NetworkUnavailable.** [`mark_network_available`] sets the Node's
//!   condition to False (reason `RouteAgentIsUp`, as Calico's
//!   `CalicoIsUp`) with a strategic-merge PATCH of `nodes/status`, once
//!   this node's routes are programmed.
//!
//! Privileges: `nodes` get, list, watch; `nodes/status` patch; `events`
//! create. Nothing else.

use std::collections::{BTreeMap, BTreeSet};
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use ipnetwork::IpNetwork;
use k8s_openapi::api::core::v1::{Event as KubeEvent, EventSource, Node, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::utils::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Client, ResourceExt};
use tokio::sync::watch;
use tokio::time::Instant;

use super::NodeSet;
use super::node::{SkipReason, Skipped, build};

/// How long a burst of Node events must be quiet before it is sent.
pub const QUIET: Duration = Duration::from_millis(20);
/// The longest a change waits for its burst to end.
pub const MAX_DELAY: Duration = Duration::from_millis(200);
/// The namespace of the Events about Nodes (cluster-scoped objects; the
/// kubelet puts its Node Events in `default` too).
pub const EVENT_NAMESPACE: &str = "default";
/// The reason of the `NetworkUnavailable` condition we set.
pub const CONDITION_REASON: &str = "RouteAgentIsUp";

/// Why the Kubernetes datastore could not start.
#[derive(Debug, thiserror::Error)]
pub enum KubernetesError {
    /// Neither a kubeconfig (`KUBECONFIG`, `~/.kube/config`) nor the
    /// in-cluster service account.
    #[error(
        "no Kubernetes API to talk to: {0} — run in a pod with a service account, or point KUBECONFIG at a kubeconfig (or set `datastore: file`)"
    )]
    Config(#[from] kube::config::InferConfigError),
    /// The client could not be built from that config.
    #[error("cannot build the Kubernetes client: {0}")]
    Client(#[from] kube::Error),
}

/// What the Kubernetes source sends: every valid node and every skipped
/// one.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// Every valid node.
    pub nodes: NodeSet,
    /// Every skipped node, in name order.
    pub skipped: Vec<Skipped>,
}

impl Snapshot {
    /// Skipped nodes by reason, every reason present (zeros too).
    pub fn skipped_by_reason(&self) -> BTreeMap<SkipReason, u64> {
        let mut counts: BTreeMap<SkipReason, u64> =
            SkipReason::ALL.iter().map(|r| (*r, 0)).collect();
        for s in &self.skipped {
            *counts.entry(s.skip.reason()).or_insert(0) += 1;
        }
        counts
    }
}

/// The running source: snapshots out, the config's pools in.
pub struct Source {
    /// The newest snapshot; `None` until the first LIST is in.
    pub snapshots: watch::Receiver<Option<Arc<Snapshot>>>,
    /// The pools podCIDRs must be inside; send new ones after a reload.
    pub pools: watch::Sender<Vec<IpNetwork>>,
    /// The client, for [`mark_network_available`].
    pub client: Client,
}

impl std::fmt::Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Source")
            .field("snapshots", &self.snapshots)
            .field("pools", &self.pools)
            .finish_non_exhaustive()
    }
}

/// A client from `KUBECONFIG` / `~/.kube/config`, else the in-cluster
/// service account (`kube::Config::infer`).
pub async fn client() -> Result<Client, KubernetesError> {
    let config = kube::Config::infer().await?;
    Ok(Client::try_from(config)?)
}

/// Starts watching Nodes; `node_name` is this node (named in the Events'
/// source).
pub fn start(client: Client, node_name: String, pools: Vec<IpNetwork>) -> Source {
    let (tx, snapshots) = watch::channel(None);
    let (pools_tx, pools_rx) = watch::channel(pools);
    tokio::spawn(run(client.clone(), node_name, tx, pools_rx));
    Source {
        snapshots,
        pools: pools_tx,
        client,
    }
}

/// The watcher's retry delays: 0.5 s doubling to 5 s (kube's default
/// backoff goes to 30 s, too slow for routes).
fn backoff() -> kube::runtime::utils::ResetTimerBackoff<ExpBackoff> {
    kube::runtime::utils::ResetTimerBackoff::new(ExpBackoff::new(), Duration::from_secs(60))
}

/// Exponential backoff without jitter: 0.5, 1, 2, 4, 5, 5 ... seconds.
#[derive(Debug)]
pub struct ExpBackoff {
    next: Duration,
}

impl ExpBackoff {
    fn new() -> Self {
        ExpBackoff {
            next: Duration::from_millis(500),
        }
    }
}

impl Iterator for ExpBackoff {
    type Item = Duration;
    fn next(&mut self) -> Option<Duration> {
        let now = self.next;
        self.next = (self.next * 2).min(Duration::from_secs(5));
        Some(now)
    }
}

impl kube::runtime::utils::Backoff for ExpBackoff {
    fn reset(&mut self) {
        *self = ExpBackoff::new();
    }
}

/// The Node objects as the watcher reports them.
#[derive(Default)]
struct Objects {
    current: BTreeMap<String, Node>,
    /// A relist in progress (between `Init` and `InitDone`).
    relist: Option<BTreeMap<String, Node>>,
    /// The first LIST is in.
    listed: bool,
}

impl Objects {
    /// Takes one watcher event; true when the current objects changed.
    fn handle(&mut self, event: Event<Node>) -> bool {
        match event {
            Event::Init => {
                self.relist = Some(BTreeMap::new());
                false
            }
            Event::InitApply(n) => {
                if let Some(r) = &mut self.relist {
                    r.insert(n.name_any(), n);
                }
                false
            }
            Event::InitDone => {
                self.current = self.relist.take().unwrap_or_default();
                self.listed = true;
                true
            }
            Event::Apply(n) => {
                self.current.insert(n.name_any(), n);
                true
            }
            Event::Delete(n) => {
                self.current.remove(&n.name_any());
                true
            }
        }
    }
}

async fn run(
    client: Client,
    node_name: String,
    tx: watch::Sender<Option<Arc<Snapshot>>>,
    mut pools: watch::Receiver<Vec<IpNetwork>>,
) {
    let api: Api<Node> = Api::all(client.clone());
    let events: Api<KubeEvent> = Api::namespaced(client, EVENT_NAMESPACE);
    let stream = watcher::watcher(api, watcher::Config::default()).backoff(backoff());
    let mut stream = std::pin::pin!(stream);
    let mut objects = Objects::default();
    let mut last = Snapshot::default();
    let mut reported: BTreeSet<(String, SkipReason)> = BTreeSet::new();
    // (first event of the burst, send at).
    let mut pending: Option<(Instant, Instant)> = None;
    let mut unreachable = false;
    loop {
        let deadline = pending.map(|(_, at)| at);
        tokio::select! {
            event = stream.next() => match event {
                Some(Ok(e)) => {
                    if unreachable {
                        tracing::info!("Kubernetes API reachable again: Nodes listed and watched");
                        unreachable = false;
                    }
                    if objects.handle(e) {
                        pending = Some(debounce(pending, Instant::now()));
                    }
                }
                Some(Err(e)) => {
                    if !unreachable {
                        tracing::warn!("Kubernetes API: {e}; keeping the last node set (sessions and routes stay) and retrying");
                        unreachable = true;
                    }
                }
                None => return,
            },
            changed = pools.changed() => {
                if changed.is_err() {
                    return;
                }
                pending = Some(debounce(pending, Instant::now()));
            }
            () = sleep_until(deadline), if objects.listed => {
                pending = None;
                let nodes: Vec<Node> = objects.current.values().cloned().collect();
                let built = build(&nodes, &pools.borrow(), &last.nodes);
                let snapshot = Snapshot { nodes: built.set, skipped: built.skipped };
                report(&snapshot, &mut reported, &events, &node_name);
                if snapshot != last || tx.borrow().is_none() {
                    last = snapshot.clone();
                    if tx.send(Some(Arc::new(snapshot))).is_err() {
                        return;
                    }
                }
            }
        }
    }
}

/// The send time of a burst that had its first event at `first` (or
/// starts now) after an event at `now` (the etcd source debounces the
/// same way).
pub(crate) fn debounce(pending: Option<(Instant, Instant)>, now: Instant) -> (Instant, Instant) {
    let first = pending.map_or(now, |(f, _)| f);
    (first, (now + QUIET).min(first + MAX_DELAY))
}

/// Sleeps until `at`, or forever without one (a `select!` arm that waits
/// for a debounced send).
pub(crate) async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Logs and posts an Event for each skip not reported before; a skip that
/// goes away and comes back is reported again.
fn report(
    snapshot: &Snapshot,
    reported: &mut BTreeSet<(String, SkipReason)>,
    events: &Api<KubeEvent>,
    me: &str,
) {
    let now: BTreeSet<(String, SkipReason)> = snapshot
        .skipped
        .iter()
        .map(|s| (s.node.clone(), s.skip.reason()))
        .collect();
    for s in &snapshot.skipped {
        if reported.contains(&(s.node.clone(), s.skip.reason())) {
            continue;
        }
        let kept = if s.kept_previous {
            "it keeps its last valid settings"
        } else {
            "it gets no sessions or routes"
        };
        tracing::warn!(node = %s.node, reason = s.skip.reason().name(), "Node {} skipped ({kept}): {}", s.node, s.skip);
        let event = skip_event(s, me);
        let events = events.clone();
        tokio::spawn(async move {
            match events.create(&PostParams::default(), &event).await {
                Ok(_) => {}
                // Another agent reported it first.
                Err(kube::Error::Api(status)) if status.code == 409 => {}
                Err(e) => tracing::warn!("cannot post the Event about a skipped Node: {e}"),
            }
        });
    }
    *reported = now;
}

/// The Warning Event about a skipped node. Its name is the node's, the
/// reason's and a hash of the message, so every agent that sees the same
/// problem names the same Event.
pub fn skip_event(s: &Skipped, me: &str) -> KubeEvent {
    let message = format!(
        "route-agent skips this Node{}: {}",
        if s.kept_previous {
            " update (the node keeps its last valid settings)"
        } else {
            " (no sessions or routes for it)"
        },
        s.skip
    );
    let mut h = std::collections::hash_map::DefaultHasher::new();
    message.hash(&mut h);
    let now = Time(k8s_openapi::jiff::Timestamp::now());
    KubeEvent {
        metadata: ObjectMeta {
            name: Some(format!(
                "{}.podroute-{}.{:08x}",
                s.node,
                s.skip.reason().name(),
                h.finish() & 0xffff_ffff
            )),
            namespace: Some(EVENT_NAMESPACE.to_owned()),
            ..ObjectMeta::default()
        },
        involved_object: ObjectReference {
            api_version: Some("v1".to_owned()),
            kind: Some("Node".to_owned()),
            name: Some(s.node.clone()),
            uid: s.uid.clone(),
            ..ObjectReference::default()
        },
        reason: Some("NodeSkipped".to_owned()),
        message: Some(message),
        type_: Some("Warning".to_owned()),
        count: Some(1),
        first_timestamp: Some(now.clone()),
        last_timestamp: Some(now),
        source: Some(EventSource {
            component: Some("route-agent".to_owned()),
            host: Some(me.to_owned()),
        }),
        reporting_component: Some("podroute.io/route-agent".to_owned()),
        reporting_instance: Some(me.to_owned()),
        ..KubeEvent::default()
    }
}

/// The strategic-merge patch of `nodes/status` that sets
/// `NetworkUnavailable` to False (conditions merge by `type`).
pub fn network_available_patch() -> serde_json::Value {
    let now = Time(k8s_openapi::jiff::Timestamp::now());
    serde_json::json!({
        "status": {
            "conditions": [{
                "type": "NetworkUnavailable",
                "status": "False",
                "reason": CONDITION_REASON,
                "message": "route-agent is running on this node and its routes are programmed",
                "lastTransitionTime": now,
                "lastHeartbeatTime": now,
            }]
        }
    })
}

/// Waits until `programmed()` (this node's routes are in the kernel), then
/// sets the Node's `NetworkUnavailable` condition to False, retrying every
/// few seconds until the API server takes it.
pub async fn mark_network_available(
    client: Client,
    node_name: String,
    programmed: impl Fn() -> bool + Send + 'static,
) {
    while !programmed() {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let api: Api<Node> = Api::all(client);
    let mut wait = Duration::from_millis(500);
    loop {
        let patch = Patch::Strategic(network_available_patch());
        match api
            .patch_status(&node_name, &PatchParams::default(), &patch)
            .await
        {
            Ok(_) => {
                tracing::info!(node = %node_name, "Node condition NetworkUnavailable set to False");
                return;
            }
            Err(e) => {
                tracing::warn!("cannot set the Node's NetworkUnavailable condition: {e}; retrying");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(10));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_is_sent_once_after_it_is_quiet_and_never_later_than_the_limit() {
        let t0 = Instant::now();
        let (first, at) = debounce(None, t0);
        assert_eq!((first, at), (t0, t0 + QUIET));
        // Events every 10 ms push the send time, up to MAX_DELAY.
        let mut p = (first, at);
        for i in 1..100u32 {
            p = debounce(Some(p), t0 + Duration::from_millis(10) * i);
        }
        assert_eq!(p, (t0, t0 + MAX_DELAY));
    }

    #[test]
    fn retries_double_from_half_a_second_to_five() {
        let delays: Vec<u64> = ExpBackoff::new()
            .take(6)
            .map(|d| d.as_millis() as u64)
            .collect();
        assert_eq!(delays, [500, 1000, 2000, 4000, 5000, 5000]);
    }

    #[test]
    fn a_relist_replaces_the_objects_at_once() {
        let node = |name: &str| Node {
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
                ..ObjectMeta::default()
            },
            ..Node::default()
        };
        let mut o = Objects::default();
        assert!(!o.handle(Event::Init));
        assert!(!o.handle(Event::InitApply(node("a"))));
        assert!(!o.listed, "nothing is sent before the first list is whole");
        assert!(o.handle(Event::InitDone));
        assert!(o.handle(Event::Apply(node("b"))));
        // A relist (after 410 Gone) that no longer has b.
        o.handle(Event::Init);
        o.handle(Event::InitApply(node("a")));
        assert_eq!(
            o.current.len(),
            2,
            "the old objects stay until the relist is done"
        );
        o.handle(Event::InitDone);
        assert_eq!(o.current.keys().collect::<Vec<_>>(), ["a"]);
    }
}
