//! The OPEN exchange of one session: checking the peer's OPEN (RFC 4271
//! §6.2), connection collisions (§6.8) and the step to Established.

use std::time::{Duration, Instant};

use super::{ConnId, DownReason, Phase, Session, SessionEvent};
use crate::session::negotiate::negotiate;
use crate::session::timers::{ConnTimer, Timer};
use crate::wire::iana::notify;
use crate::wire::{DecodeContext, Message, Notification, Open, OpenCheck, OpenError};

impl Session {
    pub(super) fn is_deferred(&self, id: ConnId) -> bool {
        self.conns
            .iter()
            .any(|c| c.id == id && c.deferred_open.is_some())
    }

    pub(super) fn check_open(&self, open: &Open) -> Result<(), OpenError> {
        open.check(&OpenCheck {
            local_as: self.config.local_as,
            local_id: self.config.router_id,
            expected_peer_as: Some(self.config.peer_as),
            required: self.config.required_capabilities.clone(),
        })?;
        if open.hold_time != 0 && open.hold_time < self.config.min_hold_time {
            return Err(OpenError::UnacceptableHoldTime {
                hold_time: open.hold_time,
            });
        }
        Ok(())
    }

    pub(super) fn handle_open(&mut self, now: Instant, id: ConnId, open: Open) {
        if let Err(e) = self.check_open(&open) {
            if !self.conns.iter().any(|c| c.id == id && c.open_sent) {
                // RFC 4271 §8.2.2 (DelayOpen): an OPEN error before ours
                // was sent still gets our OPEN first.
                self.send_open(now, id);
            }
            return self.fail(now, id, e.notification());
        }
        // RFC 4271 §6.8 collision detection.
        if let Some(other) = self.conns.iter().find(|c| c.id != id) {
            let other_id = other.id;
            let other_phase = other.phase;
            if other_phase == Phase::Established {
                // Against an Established connection the new one is closed
                // (as BIRD and GoBGP do), unless the peer says it has
                // restarted (Restart State bit): then the old connection is
                // dead and goes instead (RFC 4724 §4.2).
                let gr_negotiated = other
                    .negotiated
                    .as_ref()
                    .is_some_and(|n| n.peer_graceful_restart.is_some());
                let restarted = open.capabilities().any(|c| {
                    matches!(c, crate::wire::Capability::GracefulRestart { flags, .. }
                        if flags & crate::wire::gr_flags::RESTART_STATE != 0)
                });
                if !(gr_negotiated && restarted) {
                    return self.fail(now, id, collision_cease());
                }
                self.conn_down(now, other_id, DownReason::ConnectionClosed, false);
            } else {
                // The connection opened by the speaker with the higher BGP
                // identifier survives (AS number breaks a tie, RFC 6286
                // §2.3): both ends compute the same loser.
                let local = (u32::from(self.config.router_id), self.config.local_as);
                let remote = (u32::from(open.bgp_id), open.asn());
                let loser = if local > remote {
                    ConnId::Inbound
                } else {
                    ConnId::Outbound
                };
                if loser == id {
                    return self.fail(now, id, collision_cease());
                }
                if other_phase == Phase::OpenConfirm {
                    // We already sent our KEEPALIVE on the loser, so the
                    // peer may be Established there and will close this
                    // connection instead; or it is in OpenConfirm and closes
                    // the loser by the same rule. Let the peer decide: hold
                    // this OPEN (no KEEPALIVE yet) until one connection is
                    // closed, or the loser is confirmed by the peer's
                    // KEEPALIVE (see `establish`). Closing the loser now
                    // could lose both connections.
                    if let Some(c) = self.conn_mut(id) {
                        c.deferred_open = Some(open);
                    }
                    return;
                }
                self.fail(now, loser, collision_cease());
            }
        }
        self.accept_open(now, id, open);
    }

    /// Sends our OPEN (if not yet) and KEEPALIVE on `id` and moves it to
    /// OpenConfirm with what was negotiated.
    pub(super) fn accept_open(&mut self, now: Instant, id: ConnId, open: Open) {
        if !self.conns.iter().any(|c| c.id == id && c.open_sent) {
            self.send_open(now, id);
        }
        let negotiated = negotiate(&self.config, &self.our_open, &open);
        self.send(now, id, &Message::Keepalive, &DecodeContext::default());
        let hold = negotiated.hold_time;
        let keepalive = negotiated.keepalive();
        let extended = negotiated.rx.extended_message;
        if let Some(c) = self.conn_mut(id) {
            c.phase = Phase::OpenConfirm;
            c.framer.set_extended_message(extended);
            c.negotiated = Some(negotiated);
            if hold > 0 {
                c.timers
                    .set(ConnTimer::Hold, now + Duration::from_secs(u64::from(hold)));
            } else {
                c.timers.stop(ConnTimer::Hold);
            }
            if let Some(k) = keepalive {
                c.timers.set(ConnTimer::Keepalive, now + k);
            }
        }
    }

    pub(super) fn establish(&mut self, now: Instant, id: ConnId) {
        // The peer confirmed this connection while a collision was held:
        // the held one goes (see `handle_open`).
        if let Some(held) = self
            .conns
            .iter()
            .find(|c| c.id != id && c.deferred_open.is_some())
        {
            let held = held.id;
            if let Some(c) = self.conn_mut(held) {
                c.deferred_open = None;
            }
            self.fail(now, held, collision_cease());
        }
        let Some(c) = self.conn_mut(id) else { return };
        c.phase = Phase::Established;
        let negotiated = c.negotiated.clone();
        self.failures = 0;
        self.established_at = Some(now);
        self.timers.stop(Timer::ConnectRetry);
        if let Some(n) = negotiated {
            // Report the state before the event, so an owner sees
            // Established before it starts sending routes.
            self.report();
            self.events
                .push_back(SessionEvent::Established(Box::new(n)));
        }
    }
}

/// Cease / Connection Collision Resolution (RFC 4486).
pub(super) fn collision_cease() -> Notification {
    Notification::new(
        notify::CEASE,
        notify::cease::CONNECTION_COLLISION_RESOLUTION,
        Vec::new(),
    )
}
