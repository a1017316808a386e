//! The agent's heartbeats for `/healthz` ([`crate::admin::live`]): which
//! parts are watched, how often each must beat, and the probe that stands
//! in for the BGP speaker's own heartbeat.
//!
//! The speaker task lives in bgp-core and has no heartbeat of its own;
//! [`probe_speaker`] asks it for its peers every [`SPEAKER_PROBE_EVERY`]
//! and counts each answer as a beat. A wedged speaker (say, blocked on its
//! bounded route stream because the agent's loop stopped reading it)
//! stops answering, so its beat goes stale. A *stopped* speaker answers
//! at once with no peers, but then its route stream ends, and with it the
//! agent ([`super::Agent::run`] returns). The same answers feed
//! readiness: the first Established session sets
//! [`crate::state::Status::peer_established_since_start`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use bgp_core::session::State;
use bgp_core::speaker::Speaker;

use super::RESYNC;
use crate::state::{AgentState, Part};

/// How often the speaker is asked for its peers, and so the longest
/// expected time between two of its beats.
pub const SPEAKER_PROBE_EVERY: Duration = Duration::from_secs(1);

/// How often the FIB thread wakes when it has no work, to beat.
pub const FIB_THREAD_EVERY: Duration = Duration::from_secs(1);

/// A speaker answer slower than this is logged (once per request).
const SLOW_ANSWER: Duration = Duration::from_secs(10);

/// Starts watching the agent loop and the reconciles at `now`. The first
/// reconcile may wait for the graceful-restart hold (`hold`: the restart
/// time when restarting, else zero) and is due one resync period after
/// it; later ones every resync period. The loop wakes at least once per
/// resync period (its resync timer).
pub fn watch_agent(state: &AgentState, now: Instant, hold: Duration) {
    state.heartbeats.watch(Part::AgentLoop, now, RESYNC, RESYNC);
    state
        .heartbeats
        .watch(Part::Reconcile, now, hold + RESYNC, RESYNC);
}

/// The agent is stopping: nothing is expected any more.
pub fn stop_watching(state: &AgentState) {
    for part in [
        Part::Speaker,
        Part::AgentLoop,
        Part::FibThread,
        Part::Reconcile,
    ] {
        state.heartbeats.forget(part);
    }
}

/// Asks the speaker for its peers every [`SPEAKER_PROBE_EVERY`], beats
/// [`Part::Speaker`] at each answer and notes the first Established
/// session. Runs until its task is dropped.
pub async fn probe_speaker(speaker: Speaker, state: Arc<AgentState>) {
    state.heartbeats.watch(
        Part::Speaker,
        Instant::now(),
        SPEAKER_PROBE_EVERY,
        SPEAKER_PROBE_EVERY,
    );
    loop {
        let asked = Instant::now();
        let answer = speaker.peers();
        tokio::pin!(answer);
        // One request at a time: a wedged speaker is not sent one more
        // each second (its command channel is unbounded).
        let peers = match tokio::time::timeout(SLOW_ANSWER, &mut answer).await {
            Ok(peers) => peers,
            Err(_) => {
                tracing::warn!(
                    seconds = SLOW_ANSWER.as_secs(),
                    "the BGP speaker has not answered a request for its peers"
                );
                let peers = answer.await;
                tracing::info!(
                    seconds = asked.elapsed().as_secs_f64(),
                    "the BGP speaker answers again"
                );
                peers
            }
        };
        // A stopped speaker beats no more: /healthz then says so.
        let Ok(peers) = peers else {
            tracing::error!("the BGP speaker has stopped");
            return;
        };
        state.heartbeats.beat(Part::Speaker, Instant::now());
        if peers.iter().any(|p| p.state == State::Established) {
            state.update(|s| s.peer_established_since_start = true);
        }
        tokio::time::sleep(SPEAKER_PROBE_EVERY).await;
    }
}
