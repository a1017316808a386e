//! Readiness (`/readyz`): every configured peer Established and the kernel
//! routes applied and in sync.
//!
//! Stricter than Calico's `bird-ready`, which after 30 s settles for one
//! Established peer: here a pod-route node is ready only when it has every
//! route it was told about. A node without peers is ready once its own
//! routes are in.

use bgp_core::session::State;
use bgp_core::speaker::PeerSnapshot;

use crate::state::Status;

/// The unmet conditions, one line each (`peer 10.0.0.6: Active`,
/// `fib: not in sync`); empty when ready.
pub fn unmet(status: &Status, peers: &[PeerSnapshot]) -> Vec<String> {
    let mut lines = Vec::new();
    for address in &status.configured_peers {
        match peers.iter().find(|p| p.address == *address) {
            Some(p) if p.state == State::Established => {}
            Some(p) => lines.push(match &p.last_error {
                Some(e) => format!("peer {address}: {} ({e})", p.state),
                None => format!("peer {address}: {}", p.state),
            }),
            None => lines.push(format!("peer {address}: not running in the speaker")),
        }
    }
    if !status.fib.started {
        lines.push("fib: not started (waiting for End-of-RIB or the first plan)".to_owned());
    } else if !status.fib.in_sync {
        lines.push(match &status.fib.last_error {
            Some(e) => format!("fib: not in sync ({e})"),
            None => "fib: not in sync".to_owned(),
        });
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

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
        }
    }

    #[test]
    fn names_each_peer_not_established_and_the_fib() {
        let mut status = Status {
            configured_peers: vec![
                "10.0.0.6".parse().unwrap(),
                "10.0.0.7".parse().unwrap(),
                "10.0.0.8".parse().unwrap(),
            ],
            ..Status::default()
        };
        let peers = [
            peer("10.0.0.6", State::Active),
            peer("10.0.0.7", State::Established),
        ];
        assert_eq!(
            unmet(&status, &peers),
            [
                "peer 10.0.0.6: Active",
                "peer 10.0.0.8: not running in the speaker",
                "fib: not started (waiting for End-of-RIB or the first plan)",
            ]
        );
        status.fib.started = true;
        assert_eq!(unmet(&status, &peers).last().unwrap(), "fib: not in sync");
    }

    #[test]
    fn ready_with_no_peers_once_the_fib_is_in_sync() {
        let mut status = Status::default();
        status.fib.started = true;
        status.fib.in_sync = true;
        assert!(unmet(&status, &[]).is_empty());
    }
}
