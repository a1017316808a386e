//! The thread that owns the FIB's netlink socket (blocking) and applies
//! plans. Work coalesces: while one reconcile runs, only the newest plan
//! that arrives meanwhile is kept, and any number of resyncs count as one.
//!
//! Heartbeats (`/healthz`): the thread, named `fib`, beats
//! [`Part::FibThread`] each time it wakes, at least every
//! [`FIB_THREAD_EVERY`] when idle, so a reconcile pass that hangs shows as
//! a stale thread; each pass that runs to its end beats
//! [`Part::Reconcile`].
//!
//! Metrics: each pass is timed into
//! [`Metrics::reconcile_duration`](crate::state::Metrics); a pass that
//! applies a plan with new routes observes, into
//! [`Metrics::update_to_kernel`](crate::state::Metrics), the time since
//! the oldest route batch not applied before reached the agent (plans
//! that coalesced keep the oldest time). Two clock reads and two
//! histogram locks per pass; nothing per route.
//!
//! With the `bpf` tunnel backend ([`super::bpf`]) each pass writes the
//! plan's tunnel blocks into the programs' block map first and deletes
//! the blocks no longer planned last, so no route runs the program for a
//! block it has no node for; without it, nothing more is done.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc::{RecvTimeoutError, Sender, channel};
use std::time::{Instant, SystemTime};

use super::bpf::{SharedBpf, tunnel_blocks, with_bpf};
use super::control::Plan;
use super::heartbeat::FIB_THREAD_EVERY;
use super::monitor::ResyncRequests;
use super::state::{AgentState, Part};
use crate::fib::{Fib, NexthopMode};
use crate::planner::DesiredRoute;

/// What the FIB thread is asked to do.
#[derive(Debug)]
pub enum FibWork {
    /// Apply this plan (it replaces the previous one).
    Plan(Plan),
    /// The kernel's routes changed: apply the current plan again, which
    /// restores a route of ours someone removed or altered.
    Resync,
    /// Apply this plan now, say when done, and stop (a clean stop that
    /// removes our routes).
    Last(Vec<DesiredRoute>, Sender<()>),
}

/// Starts the thread; nothing is applied before the first
/// [`FibWork::Plan`] (graceful restart may be holding it back). The FIB
/// socket's netlink port id goes into `port`, so the monitor can tell our
/// own changes' notifications from everyone else's; `resync` is marked
/// taken as each [`FibWork::Resync`] is dequeued (the monitor sends one
/// only when none waits).
pub fn spawn(
    protocol: u8,
    nexthop_mode: NexthopMode,
    state: Arc<AgentState>,
    port: Arc<AtomicU32>,
    resync: ResyncRequests,
    bpf: SharedBpf,
) -> Sender<FibWork> {
    let (tx, rx) = channel::<FibWork>();
    state.heartbeats.watch(
        Part::FibThread,
        Instant::now(),
        FIB_THREAD_EVERY,
        FIB_THREAD_EVERY,
    );
    let thread = std::thread::Builder::new().name("fib".into());
    let shared = state.clone();
    let spawned = thread.spawn(move || {
        let state = shared;
        // On an early return the thread stops beating, and `/healthz`
        // reports it after the timeout: a restart may get a socket.
        let mut fib = match Fib::open(protocol) {
            Ok(f) => f,
            Err(e) => {
                tracing::error!("cannot open netlink for the FIB: {e}");
                state.update(|s| s.fib.last_error = Some(format!("cannot open netlink: {e}")));
                return;
            }
        };
        fib.set_nexthop_mode(nexthop_mode);
        if let Ok(id) = fib.port_id() {
            port.store(id, Ordering::Relaxed);
        }
        let mut current: Option<Vec<DesiredRoute>> = None;
        // When the oldest route batch not yet in the kernel arrived.
        let mut waiting: Option<Instant> = None;
        loop {
            state.heartbeats.beat(Part::FibThread, Instant::now());
            let first = match rx.recv_timeout(FIB_THREAD_EVERY) {
                Ok(w) => w,
                Err(RecvTimeoutError::Timeout) => continue,
                Err(RecvTimeoutError::Disconnected) => return,
            };
            for w in std::iter::once(first).chain(rx.try_iter()) {
                match w {
                    FibWork::Plan(p) => {
                        current = Some(p.routes);
                        // A plan replaced before it was applied took its
                        // routes into the newer one: the oldest time stays.
                        waiting = oldest(waiting, p.routes_since);
                    }
                    FibWork::Resync => resync.taken(),
                    FibWork::Last(p, done) => {
                        apply(&mut fib, &p, &state, None, &bpf);
                        let _ = done.send(());
                        return;
                    }
                }
            }
            let Some(desired) = &current else { continue };
            if apply(&mut fib, desired, &state, waiting, &bpf) {
                waiting = None;
            }
        }
    });
    if let Err(e) = spawned {
        // Not started: the watch above goes stale and `/healthz` says so.
        tracing::error!("cannot start the FIB thread: {e}");
        state.update(|s| s.fib.last_error = Some(format!("cannot start the FIB thread: {e}")));
    }
    tx
}

/// With the `bpf` backend open: gives the FIB its program and writes the
/// plan's blocks to the block map; returns them for [`bpf_after`]. A
/// failed write is logged and left to the next pass (the routes of blocks
/// not written drop their packets meanwhile, counted as `no_node`).
fn bpf_before(
    fib: &mut Fib,
    desired: &[DesiredRoute],
    bpf: &SharedBpf,
) -> Option<std::collections::BTreeMap<ipnetwork::Ipv4Network, std::net::Ipv4Addr>> {
    // Without the bpf backend, nothing: the plan is not walked again.
    let opened = with_bpf(bpf, |t| {
        let blocks = tunnel_blocks(desired);
        if let Err(e) = t.write_blocks(&blocks) {
            tracing::warn!("bpf tunnel: block map not updated: {e}");
        }
        (t.encap_program(), blocks)
    });
    fib.set_bpf_program(opened.as_ref().map(|(program, _)| *program));
    opened.map(|(_, blocks)| blocks)
}

/// Deletes the blocks no longer planned from the block map, once their
/// routes are gone.
fn bpf_after(
    blocks: &std::collections::BTreeMap<ipnetwork::Ipv4Network, std::net::Ipv4Addr>,
    bpf: &SharedBpf,
    state: &AgentState,
) {
    let Some((result, held)) = with_bpf(bpf, |t| (t.delete_blocks(blocks), t.blocks().len()))
    else {
        return;
    };
    if let Err(e) = &result {
        tracing::warn!("bpf tunnel: block map not pruned: {e}");
    }
    state.update(|s| {
        let b = s.bpf_tunnel.get_or_insert_default();
        b.blocks = held;
        if let Err(e) = result {
            b.error = Some(e.to_string());
        }
    });
}

/// The earlier of two times, either of which may be missing.
fn oldest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// One reconcile pass, logged and recorded in the shared state and its
/// histograms; `waiting`: when the oldest route batch this pass applies
/// arrived. True when the pass ran (the kernel may still have refused
/// single routes); false when it failed as a whole, so the routes still
/// wait.
fn apply(
    fib: &mut Fib,
    desired: &[DesiredRoute],
    state: &AgentState,
    waiting: Option<Instant>,
    bpf: &SharedBpf,
) -> bool {
    let started = Instant::now();
    let blocks = bpf_before(fib, desired, bpf);
    let result = fib.reconcile(desired);
    if let Some(blocks) = &blocks {
        bpf_after(blocks, bpf, state);
    }
    let finished = Instant::now();
    let took = finished.duration_since(started);
    state.metrics.reconcile_duration.observe(took.as_secs_f64());
    if let (Ok(_), Some(since)) = (&result, waiting) {
        state
            .metrics
            .update_to_kernel
            .observe(finished.saturating_duration_since(since).as_secs_f64());
    }
    tracing::debug!(
        routes = desired.len(),
        ms = took.as_secs_f64() * 1e3,
        "reconcile pass"
    );
    let batches = fib.batches_sent();
    match &result {
        Ok(done) => {
            let s = &done.stats;
            if s.added + s.replaced + s.deleted > 0 || !done.errors.is_empty() {
                tracing::info!(
                    added = s.added,
                    replaced = s.replaced,
                    deleted = s.deleted,
                    unchanged = s.unchanged,
                    errors = done.errors.len(),
                    "kernel routes reconciled"
                );
            }
            for e in &done.errors {
                tracing::warn!("{e}");
            }
        }
        Err(e) => tracing::error!("reconcile failed: {e}"),
    }
    let ran = result.is_ok();
    if ran {
        state.heartbeats.beat(Part::Reconcile, finished);
    }
    state.update(|st| {
        let f = &mut st.fib;
        f.started = true;
        f.reconciles += 1;
        f.batches = batches;
        f.last_reconcile = Some(SystemTime::now());
        match result {
            Ok(done) => {
                // The planned routes the kernel refused (or that were
                // refused for it) are the ones not installed.
                let failed: HashSet<&DesiredRoute> = done
                    .errors
                    .iter()
                    .filter_map(|e| e.route.planned())
                    .collect();
                f.installed = desired
                    .iter()
                    .filter(|r| failed.is_empty() || !failed.contains(r))
                    .cloned()
                    .collect();
                f.in_sync = done.errors.is_empty();
                f.nexthop_objects = done.nexthop_objects;
                f.added += done.stats.added as u64;
                f.replaced += done.stats.replaced as u64;
                f.deleted += done.stats.deleted as u64;
                f.errors += done.errors.len() as u64;
                if let Some(e) = done.errors.last() {
                    f.last_error = Some(e.to_string());
                }
            }
            Err(e) => {
                f.in_sync = false;
                f.last_error = Some(format!("reconcile failed: {e}"));
            }
        }
    });
    ran
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn coalesced_plans_keep_the_oldest_waiting_time() {
        let t0 = Instant::now();
        let t1 = t0 + Duration::from_millis(5);
        // A newer plan with routes does not move the wait forward.
        assert_eq!(oldest(Some(t0), Some(t1)), Some(t0));
        assert_eq!(oldest(Some(t1), Some(t0)), Some(t0));
        // A plan without new routes (a resync) keeps the routes waiting.
        assert_eq!(oldest(Some(t0), None), Some(t0));
        assert_eq!(oldest(None, Some(t1)), Some(t1));
        assert_eq!(oldest(None, None), None);
    }
}
