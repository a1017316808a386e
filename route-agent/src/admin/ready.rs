//! Readiness (`/readyz`): Calico's `bird-ready` rules, adapted so that a
//! dead node never blocks a rollout.
//!
//! `bird-ready` (calico-node's readiness probe): ready if there are no
//! peers; within 30 s of the start every peer must be Established and no
//! graceful restart be in progress; after that one Established peer is
//! enough. Here, checked in this order, each unmet rule giving one line:
//!
//! | rule | not ready while |
//! |---|---|
//! | the speaker answers | it does not answer a `peers()` request in time (`speaker: …`) |
//! | initial sync | no reconcile pass has run yet: graceful restart holds the first plan until every peer sent End-of-RIB or the restart time passed (`fib: not started …`) |
//! | kernel in sync | the newest plan is not applied without failures (`fib: not in sync (…)`): this node's own routing is broken |
//! | tunnel | an IPIP pool needs the tunnel and it is not running (`tunnel: tunl0 not running (…)`): its set-up failed or its process exited, and it is retried with a backoff |
//! | start: every peer | during the first [`GRACE`] (30 s) after the start: a configured peer is not Established (`peer 10.0.0.6: Active`), or there is no peer at all (a node in the Kubernetes datastore learns its peers in its first second) |
//! | then: one peer, or alone | after the grace period: no peer is Established *and* one was since the start — every session this node had is down (`peers: none Established …`) |
//!
//! After the grace period a node is *alone*, and ready, when it has no
//! peer at all (the only node, or a reflector without clients) or when
//! none of its peers has been reachable since it started: from here a dead
//! peer and an unreachable one look the same, and the node being rolled
//! out must not wait for nodes that are gone. A node that *had* sessions
//! and lost them all is not ready. Dynamic neighbours (route-reflector
//! clients) count as peers once Established. The `200` body says which
//! rule made the node ready.

use std::time::Duration;

use bgp_core::session::State;
use bgp_core::speaker::PeerSnapshot;

use crate::state::{Status, TunnelInUse};

/// How long after the start every configured peer must be Established
/// (Calico's `bird-ready` uses 30 s).
pub const GRACE: Duration = Duration::from_secs(30);

/// What readiness is decided from.
#[derive(Clone, Copy, Debug)]
pub struct Inputs<'a> {
    /// Time since the agent started.
    pub since_start: Duration,
    /// The agent's status.
    pub status: &'a Status,
    /// The speaker's peers; `None` when it did not answer in time.
    pub peers: Option<&'a [PeerSnapshot]>,
}

/// Why a node is ready.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadyBy {
    /// Every configured peer is Established (at least one peer is).
    EveryPeer,
    /// After the grace period, at least one peer is Established.
    OnePeer,
    /// After the grace period, no peer is configured or connected.
    AloneNoPeers,
    /// After the grace period, none of the peers has been reachable since
    /// the start.
    AloneNoneReachable,
}

impl ReadyBy {
    /// The `/readyz` body line.
    pub fn text(self) -> &'static str {
        match self {
            ReadyBy::EveryPeer => "ready: every peer Established",
            ReadyBy::OnePeer => "ready: at least one peer Established",
            ReadyBy::AloneNoPeers => "ready: alone (no peers)",
            ReadyBy::AloneNoneReachable => {
                "ready: alone (no peer reachable since the start; they may be down)"
            }
        }
    }
}

/// The verdict: ready and why, or the unmet rules.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Readiness {
    /// `/readyz` answers 200.
    Ready(ReadyBy),
    /// `/readyz` answers 503 with these lines.
    NotReady(Vec<String>),
}

impl Readiness {
    /// Whether `/readyz` answers 200.
    pub fn is_ready(&self) -> bool {
        matches!(self, Readiness::Ready(_))
    }

    /// The unmet rules (empty when ready).
    pub fn unmet(&self) -> Vec<String> {
        match self {
            Readiness::Ready(_) => Vec::new(),
            Readiness::NotReady(lines) => lines.clone(),
        }
    }
}

/// Applies the rules of the module docs.
pub fn check(inputs: &Inputs<'_>) -> Readiness {
    let status = inputs.status;
    let mut lines = Vec::new();
    if !status.fib.started {
        lines.push("fib: not started (waiting for End-of-RIB or the first plan)".to_owned());
    } else if !status.fib.in_sync {
        lines.push(match &status.fib.last_error {
            Some(e) => format!("fib: not in sync ({e})"),
            None => "fib: not in sync".to_owned(),
        });
    }
    let tunnel = &status.tunnel;
    if tunnel.wanted && tunnel.backend == TunnelInUse::None {
        lines.push(match &tunnel.note {
            Some(note) => format!("tunnel: {} not running ({note})", tunnel.device),
            None => format!("tunnel: {} not set up yet", tunnel.device),
        });
    }
    let Some(peers) = inputs.peers else {
        lines.insert(0, "speaker: no answer in time".to_owned());
        return Readiness::NotReady(lines);
    };
    let established = |p: &&PeerSnapshot| p.state == State::Established;
    let any_established = peers.iter().any(|p| established(&p));
    let down: Vec<String> = status
        .configured_peers
        .iter()
        .filter_map(
            |address| match peers.iter().find(|p| p.address == *address) {
                Some(p) if p.state == State::Established => None,
                Some(p) => Some(match &p.last_error {
                    Some(e) => format!("peer {address}: {} ({e})", p.state),
                    None => format!("peer {address}: {}", p.state),
                }),
                None => Some(format!("peer {address}: not running in the speaker")),
            },
        )
        .collect();
    let by = if inputs.since_start < GRACE {
        let left = GRACE.saturating_sub(inputs.since_start).as_secs_f64();
        if !any_established && down.is_empty() {
            lines.push(format!(
                "peers: none yet ({left:.0} s left of the start grace period, then ready alone)"
            ));
            None
        } else if !down.is_empty() {
            lines.extend(down);
            lines.push(format!(
                "start grace period: {left:.0} s left (until then every peer must be Established)"
            ));
            None
        } else {
            Some(ReadyBy::EveryPeer)
        }
    } else if any_established {
        Some(ReadyBy::OnePeer)
    } else if status.configured_peers.is_empty() && peers.is_empty() {
        Some(ReadyBy::AloneNoPeers)
    } else if !status.peer_established_since_start {
        Some(ReadyBy::AloneNoneReachable)
    } else {
        lines.push("peers: none Established (every session this node had is down)".to_owned());
        lines.extend(down);
        None
    };
    match by {
        Some(by) if lines.is_empty() => Readiness::Ready(by),
        _ => Readiness::NotReady(lines),
    }
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use super::*;

    const SEC: Duration = Duration::from_secs(1);

    fn peer(address: &str, state: State) -> PeerSnapshot {
        PeerSnapshot {
            address: address.parse().unwrap(),
            asn: 64512,
            ibgp: true,
            dynamic: false,
            state,
            uptime: None,
            received: 0,
            accepted: 0,
            advertised: 0,
            last_error: None,
            last_notification: None,
            negotiated: None,
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    /// A status after the initial sync, the kernel in sync, with these
    /// configured peers.
    fn synced(peers: &[&str]) -> Status {
        let mut status = Status {
            configured_peers: peers.iter().map(|p| ip(p)).collect(),
            ..Status::default()
        };
        status.fib.started = true;
        status.fib.in_sync = true;
        status
    }

    fn at(since_start: Duration, status: &Status, peers: &[PeerSnapshot]) -> Readiness {
        check(&Inputs {
            since_start,
            status,
            peers: Some(peers),
        })
    }

    #[test]
    fn a_tunnel_an_ipip_pool_needs_and_that_is_not_running_holds_readiness_with_its_note() {
        let mut status = synced(&["10.0.0.6"]);
        status.tunnel = crate::state::TunnelStatus {
            backend: TunnelInUse::None,
            device: "tunl0".into(),
            note: Some("the userspace tunnel exited (set up again in 2 s)".into()),
            wanted: true,
            failures: 2,
        };
        let peers = [peer("10.0.0.6", State::Established)];
        assert_eq!(
            at(40 * SEC, &status, &peers),
            Readiness::NotReady(vec![
                "tunnel: tunl0 not running (the userspace tunnel exited (set up again in 2 s))"
                    .into()
            ])
        );
        status.tunnel.backend = TunnelInUse::Userspace;
        assert!(at(40 * SEC, &status, &peers).is_ready());
        // No IPIP pool: no tunnel is wanted, none is missing.
        status.tunnel = crate::state::TunnelStatus::default();
        assert!(at(40 * SEC, &status, &peers).is_ready());
    }

    #[test]
    fn ready_early_when_every_peer_is_established_within_the_grace_period() {
        let status = synced(&["10.0.0.6", "10.0.0.7"]);
        let peers = [
            peer("10.0.0.6", State::Established),
            peer("10.0.0.7", State::Established),
        ];
        assert_eq!(
            at(2 * SEC, &status, &peers),
            Readiness::Ready(ReadyBy::EveryPeer)
        );
    }

    #[test]
    fn one_peer_down_holds_readiness_until_the_grace_period_ends_then_one_established_is_enough() {
        let status = synced(&["10.0.0.6", "10.0.0.7", "10.0.0.8"]);
        let peers = [
            peer("10.0.0.6", State::Active),
            peer("10.0.0.7", State::Established),
        ];
        assert_eq!(
            at(10 * SEC, &status, &peers),
            Readiness::NotReady(vec![
                "peer 10.0.0.6: Active".into(),
                "peer 10.0.0.8: not running in the speaker".into(),
                "start grace period: 20 s left (until then every peer must be Established)".into(),
            ])
        );
        assert!(!at(GRACE - SEC / 10, &status, &peers).is_ready());
        assert_eq!(
            at(GRACE, &status, &peers),
            Readiness::Ready(ReadyBy::OnePeer)
        );
    }

    #[test]
    fn a_node_without_peers_is_ready_alone_once_the_grace_period_ends() {
        let status = synced(&[]);
        assert_eq!(
            at(5 * SEC, &status, &[]),
            Readiness::NotReady(vec![
                "peers: none yet (25 s left of the start grace period, then ready alone)".into()
            ])
        );
        assert_eq!(
            at(GRACE, &status, &[]),
            Readiness::Ready(ReadyBy::AloneNoPeers)
        );
    }

    #[test]
    fn peers_never_reachable_since_the_start_do_not_block_readiness_after_the_grace_period() {
        // The node being rolled out, while the only other node is dead.
        let status = synced(&["10.0.0.6"]);
        let peers = [peer("10.0.0.6", State::Connect)];
        assert_eq!(
            at(29 * SEC, &status, &peers),
            Readiness::NotReady(vec![
                "peer 10.0.0.6: Connect".into(),
                "start grace period: 1 s left (until then every peer must be Established)".into(),
            ])
        );
        assert_eq!(
            at(GRACE, &status, &peers),
            Readiness::Ready(ReadyBy::AloneNoneReachable)
        );
    }

    #[test]
    fn losing_every_session_after_one_was_up_is_not_ready() {
        let mut status = synced(&["10.0.0.6", "10.0.0.7"]);
        status.peer_established_since_start = true;
        let mut down = peer("10.0.0.6", State::Active);
        down.last_error = Some("hold timer expired".into());
        let peers = [down, peer("10.0.0.7", State::Idle)];
        assert_eq!(
            at(3600 * SEC, &status, &peers),
            Readiness::NotReady(vec![
                "peers: none Established (every session this node had is down)".into(),
                "peer 10.0.0.6: Active (hold timer expired)".into(),
                "peer 10.0.0.7: Idle".into(),
            ])
        );
    }

    #[test]
    fn a_dynamic_neighbour_counts_as_an_established_peer() {
        // A route reflector with no configured peers and one client.
        let status = synced(&[]);
        let mut client = peer("10.0.5.9", State::Established);
        client.dynamic = true;
        assert_eq!(
            at(SEC, &status, std::slice::from_ref(&client)),
            Readiness::Ready(ReadyBy::EveryPeer)
        );
        assert_eq!(
            at(GRACE, &status, &[client]),
            Readiness::Ready(ReadyBy::OnePeer)
        );
    }

    #[test]
    fn the_initial_sync_and_a_kernel_out_of_sync_hold_readiness_whatever_the_peers() {
        let mut status = synced(&["10.0.0.6"]);
        status.fib.started = false;
        let peers = [peer("10.0.0.6", State::Established)];
        assert_eq!(
            at(3600 * SEC, &status, &peers),
            Readiness::NotReady(vec![
                "fib: not started (waiting for End-of-RIB or the first plan)".into()
            ])
        );
        status.fib.started = true;
        status.fib.in_sync = false;
        status.fib.last_error = Some("10.244.2.0/26: No such device".into());
        assert_eq!(
            at(3600 * SEC, &status, &peers).unmet(),
            ["fib: not in sync (10.244.2.0/26: No such device)"]
        );
        // Alone does not excuse the kernel either.
        assert!(!at(3600 * SEC, &status, &[]).is_ready());
    }

    #[test]
    fn a_speaker_that_does_not_answer_is_not_ready() {
        let status = synced(&["10.0.0.6"]);
        let r = check(&Inputs {
            since_start: 3600 * SEC,
            status: &status,
            peers: None,
        });
        assert_eq!(r.unmet(), ["speaker: no answer in time"]);
    }
}
