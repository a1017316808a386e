//! The thread that owns the FIB's netlink socket (blocking) and applies
//! plans. Work coalesces: while one reconcile runs, only the newest plan
//! that arrives meanwhile is kept, and any number of resyncs count as one.
//!
//! Heartbeats (`/healthz`): the thread, named `fib`, beats
//! [`Part::FibThread`] each time it wakes, at least every
//! [`FIB_THREAD_EVERY`] when idle, so a reconcile pass that hangs shows as
//! a stale thread; each pass that runs to its end beats
//! [`Part::Reconcile`].

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc::{RecvTimeoutError, Sender, channel};
use std::time::{Instant, SystemTime};

use super::heartbeat::FIB_THREAD_EVERY;
use super::monitor::ResyncRequests;
use super::state::{AgentState, Part};
use crate::fib::{Fib, NexthopMode};
use crate::planner::DesiredRoute;

/// What the FIB thread is asked to do.
#[derive(Debug)]
pub enum FibWork {
    /// Apply this plan (it replaces the previous one).
    Plan(Vec<DesiredRoute>),
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
        loop {
            state.heartbeats.beat(Part::FibThread, Instant::now());
            let first = match rx.recv_timeout(FIB_THREAD_EVERY) {
                Ok(w) => w,
                Err(RecvTimeoutError::Timeout) => continue,
                Err(RecvTimeoutError::Disconnected) => return,
            };
            for w in std::iter::once(first).chain(rx.try_iter()) {
                match w {
                    FibWork::Plan(p) => current = Some(p),
                    FibWork::Resync => resync.taken(),
                    FibWork::Last(p, done) => {
                        apply(&mut fib, &p, &state);
                        let _ = done.send(());
                        return;
                    }
                }
            }
            let Some(desired) = &current else { continue };
            apply(&mut fib, desired, &state);
        }
    });
    if let Err(e) = spawned {
        // Not started: the watch above goes stale and `/healthz` says so.
        tracing::error!("cannot start the FIB thread: {e}");
        state.update(|s| s.fib.last_error = Some(format!("cannot start the FIB thread: {e}")));
    }
    tx
}

/// One reconcile pass, logged and recorded in the shared state.
fn apply(fib: &mut Fib, desired: &[DesiredRoute], state: &AgentState) {
    let started = std::time::Instant::now();
    let result = fib.reconcile(desired);
    tracing::debug!(
        routes = desired.len(),
        ms = started.elapsed().as_secs_f64() * 1e3,
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
    if result.is_ok() {
        state.heartbeats.beat(Part::Reconcile, Instant::now());
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
}
