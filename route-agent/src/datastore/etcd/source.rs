//! The etcd source: every record and claim listed, then watched from the
//! listing's revision, debounced into [`Snapshot`]s of the [`NodeSet`](crate::datastore::NodeSet) —
//! the same snapshots the Kubernetes source sends, read by the same agent
//! code (`agent/control/`, `handle_nodes`).
//!
//! - **Durable.** Losing etcd (a member, quorum, or this node's link to
//!   it) sends nothing: the agent keeps the last node set, so no session
//!   or route goes. The source lists again once etcd answers
//!   ([`retry_delay`]: a few quick retries, then 0.5 s doubling to 5 s)
//!   and watches from there; a listing that
//!   finds what was there builds an equal snapshot, which is not sent, so
//!   a resync churns no route.
//! - **Debounce** as with Kubernetes: [`QUIET`](super::super::kubernetes::QUIET) after the last change of
//!   a burst, at most [`MAX_DELAY`](super::super::kubernetes::MAX_DELAY) after the first.
//! - **Bad records** ([`super::record::build`]): each newly skipped node
//!   gets one log line; the agent counts them in
//!   `route_agent_datastore_nodes_skipped{reason}`.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use ipnetwork::IpNetwork;
use tokio::sync::watch;
use tokio::time::Instant;

use super::super::kubernetes::{Snapshot, debounce, sleep_until};
use super::super::node::SkipReason;
use super::{Etcd, Listing, QUICK_RETRIES, QUICK_RETRY, record};

/// The first backed-off retry delay; it doubles up to [`RETRY_MAX`].
const RETRY_MIN: Duration = Duration::from_millis(500);
/// The longest retry delay.
const RETRY_MAX: Duration = Duration::from_secs(5);

/// How long to wait before listing again after `failures` failed rounds
/// in a row (1 for the first). The first few retries are quick: with one
/// member down, the client still sends some requests to it (it spreads
/// them over every endpoint), and those fail at once with the connection
/// refused while the next goes to a live member; backing off from the
/// first such failure held changes back for seconds (seen: over 10 s with
/// a member killed, one refused request after another). An etcd that is
/// really away is asked every 0.5 s, doubling to 5 s, after that.
pub fn retry_delay(failures: u32) -> Duration {
    match failures.checked_sub(QUICK_RETRIES + 1) {
        None => QUICK_RETRY,
        Some(n) => RETRY_MIN
            .checked_mul(1u32.checked_shl(n).unwrap_or(u32::MAX))
            .map_or(RETRY_MAX, |d| d.min(RETRY_MAX)),
    }
}

/// The running source: snapshots out, the config's pools in.
#[derive(Debug)]
pub struct Source {
    /// The newest snapshot; `None` until the first listing is in.
    pub snapshots: watch::Receiver<Option<Arc<Snapshot>>>,
    /// The pools blocks must be inside; send new ones after a reload.
    pub pools: watch::Sender<Vec<IpNetwork>>,
}

/// Starts listing and watching under `etcd`'s prefix; `asn` is ours
/// (records with another are skipped).
pub fn start(etcd: Etcd, pools: Vec<IpNetwork>, asn: u32) -> Source {
    let (tx, snapshots) = watch::channel(None);
    let (pools_tx, pools_rx) = watch::channel(pools);
    tokio::spawn(run(etcd, tx, pools_rx, asn));
    Source {
        snapshots,
        pools: pools_tx,
    }
}

/// What one list-and-watch round ended with.
enum Round {
    /// etcd failed or the watch ended: list again after a delay.
    Retry {
        /// The round had listed and watched before it failed: the
        /// failures in a row start again.
        listed: bool,
    },
    /// Nobody reads the snapshots any more.
    Stop,
}

async fn run(
    mut etcd: Etcd,
    tx: watch::Sender<Option<Arc<Snapshot>>>,
    mut pools: watch::Receiver<Vec<IpNetwork>>,
    asn: u32,
) {
    let mut state = State {
        last: Snapshot::default(),
        reported: BTreeSet::new(),
        asn,
    };
    let mut failures = 0u32;
    let mut unreachable = false;
    loop {
        match round(&mut etcd, &tx, &mut pools, &mut state, &mut unreachable).await {
            Round::Stop => return,
            Round::Retry { listed } => {
                failures = if listed {
                    1
                } else {
                    failures.saturating_add(1)
                };
                tokio::time::sleep(retry_delay(failures)).await;
            }
        }
    }
}

/// What the source keeps across rounds.
struct State {
    last: Snapshot,
    reported: BTreeSet<(String, SkipReason)>,
    asn: u32,
}

impl State {
    /// Builds the snapshot of `listing`; sends it when it differs from the
    /// last one (or none was sent). False when nobody reads any more.
    fn publish(
        &mut self,
        listing: &Listing,
        pools: &[IpNetwork],
        tx: &watch::Sender<Option<Arc<Snapshot>>>,
    ) -> bool {
        let built = record::build(
            &listing.records,
            &listing.claims,
            pools,
            &self.last.nodes,
            self.asn,
        );
        let snapshot = Snapshot {
            nodes: built.set,
            skipped: built.skipped,
        };
        self.report(&snapshot);
        if snapshot != self.last || tx.borrow().is_none() {
            self.last = snapshot.clone();
            return tx.send(Some(Arc::new(snapshot))).is_ok();
        }
        true
    }

    /// One log line per newly skipped node and reason.
    fn report(&mut self, snapshot: &Snapshot) {
        let now: BTreeSet<(String, SkipReason)> = snapshot
            .skipped
            .iter()
            .map(|s| (s.node.clone(), s.skip.reason()))
            .collect();
        for s in &snapshot.skipped {
            if self.reported.contains(&(s.node.clone(), s.skip.reason())) {
                continue;
            }
            let kept = if s.kept_previous {
                "it keeps its last valid settings"
            } else {
                "it gets no sessions or routes"
            };
            tracing::warn!(node = %s.node, reason = s.skip.reason().name(), "etcd record of node {} skipped ({kept}): {}", s.node, s.skip);
        }
        self.reported = now;
    }
}

async fn round(
    etcd: &mut Etcd,
    tx: &watch::Sender<Option<Arc<Snapshot>>>,
    pools: &mut watch::Receiver<Vec<IpNetwork>>,
    state: &mut State,
    unreachable: &mut bool,
) -> Round {
    let failed = |e: &dyn std::fmt::Display, unreachable: &mut bool, listed: bool| {
        if !*unreachable {
            tracing::warn!(
                "etcd: {e}; keeping the last node set (sessions and routes stay) and retrying"
            );
            *unreachable = true;
        }
        Round::Retry { listed }
    };
    let mut listing = match etcd.list().await {
        Ok(l) => l,
        Err(e) => return failed(&e, unreachable, false),
    };
    let mut stream = match etcd.watch_from(listing.revision + 1).await {
        Ok(s) => s,
        Err(e) => return failed(&e, unreachable, false),
    };
    if *unreachable {
        tracing::info!("etcd reachable again: records listed and watched");
        *unreachable = false;
    }
    if !state.publish(&listing, &pools.borrow(), tx) {
        return Round::Stop;
    }
    let prefix = etcd.prefix().to_owned();
    let mut pending: Option<(Instant, Instant)> = None;
    loop {
        let deadline = pending.map(|(_, at)| at);
        tokio::select! {
            message = stream.message() => match message {
                Ok(Some(response)) => {
                    if response.canceled || response.compact_revision > 0 {
                        // The watch was cancelled (or its start compacted
                        // away): list again.
                        return failed(&format_args!("watch cancelled: {}", response.cancel_reason), unreachable, true);
                    }
                    for event in &response.events {
                        let Some(kv) = &event.kv else { continue };
                        let put = event.r#type == etcdv3client::pb::event::EventType::Put as i32;
                        let change = put.then_some((kv.value.as_slice(), kv.create_revision));
                        listing.apply(&prefix, &kv.key, change);
                    }
                    if !response.events.is_empty() {
                        pending = Some(debounce(pending, Instant::now()));
                    }
                }
                Ok(None) => return failed(&"the watch ended", unreachable, true),
                Err(e) => return failed(&e, unreachable, true),
            },
            changed = pools.changed() => {
                if changed.is_err() {
                    return Round::Stop;
                }
                pending = Some(debounce(pending, Instant::now()));
            }
            () = sleep_until(deadline) => {
                pending = None;
                if !state.publish(&listing, &pools.borrow(), tx) {
                    return Round::Stop;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_retries_are_quick_then_the_delay_backs_off_to_five_seconds() {
        let delays: Vec<Duration> = (1..=10).map(retry_delay).collect();
        let ms = |n| Duration::from_millis(n);
        assert_eq!(
            delays,
            [
                ms(100),
                ms(100),
                ms(100),
                ms(100),
                ms(100),
                ms(500),
                ms(1000),
                ms(2000),
                ms(4000),
                ms(5000)
            ]
        );
        assert_eq!(retry_delay(u32::MAX), RETRY_MAX);
        assert_eq!(retry_delay(0), QUICK_RETRY);
    }
}
