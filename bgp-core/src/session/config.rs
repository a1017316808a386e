//! What one session is configured with, and the OPEN it sends.

use std::net::Ipv4Addr;
use std::time::Duration;

use crate::wire::{AddPathFamily, Capability, Family, GracefulRestartFamily, Open, gr_flags};

/// Graceful restart as the local speaker advertises it (RFC 4724 §3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GracefulRestartConfig {
    /// How long the peer should keep our routes after we go down (≤ 4095 s).
    pub restart_time: u16,
    /// Set the Restart State bit: we have just restarted.
    pub restarting: bool,
    /// Advertise that forwarding state was preserved for every family (the
    /// kernel routes survived our restart).
    pub forwarding_preserved: bool,
}

impl Default for GracefulRestartConfig {
    /// 120 s, the BIRD and Calico default.
    fn default() -> Self {
        GracefulRestartConfig {
            restart_time: 120,
            restarting: false,
            forwarding_preserved: true,
        }
    }
}

/// The configuration of one BGP session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionConfig {
    /// Our AS.
    pub local_as: u32,
    /// Our BGP identifier.
    pub router_id: Ipv4Addr,
    /// The peer's AS: its OPEN must announce this one (RFC 4271 §6.2).
    pub peer_as: u32,
    /// Proposed hold time in seconds (0, or at least 3). BIRD proposes 240,
    /// GoBGP 90.
    pub hold_time: u16,
    /// Refuse a peer proposing a non-zero hold time below this.
    pub min_hold_time: u16,
    /// Keepalive interval in seconds; `None`: a third of the negotiated
    /// hold time (never more than that, see [`super::Negotiated::keepalive`]).
    pub keepalive_time: Option<u16>,
    /// First connect-retry interval; doubles on each failure up to
    /// `connect_retry_max`, with RFC 4271 §10 jitter (0.75-1.0).
    pub connect_retry: Duration,
    /// Cap of the connect-retry backoff.
    pub connect_retry_max: Duration,
    /// Wait this long after the TCP connection before sending OPEN
    /// (RFC 4271 §8.1.1 DelayOpen), unless the peer's OPEN comes first.
    pub delay_open: Option<Duration>,
    /// Close the session when we could not send for this long
    /// (RFC 9687 send hold timer; 8 minutes suggested).
    pub send_hold_time: Duration,
    /// Never connect; only accept.
    pub passive: bool,
    /// Families to negotiate (RFC 4760 multiprotocol capabilities).
    pub families: Vec<Family>,
    /// Families in which we accept ADD-PATH path identifiers.
    pub add_path_receive: Vec<Family>,
    /// Offer extended messages (RFC 8654).
    pub extended_message: bool,
    /// Graceful restart, if enabled.
    pub graceful_restart: Option<GracefulRestartConfig>,
    /// Capabilities the peer must offer, or the session is refused with
    /// Unsupported Capability.
    pub required_capabilities: Vec<Capability>,
    /// Our cluster ID when this peer is a route-reflector client or
    /// non-client of ours (loop detection, RFC 4456 §8).
    pub cluster_id: Option<Ipv4Addr>,
    /// Require eBGP paths to start with the peer's AS (RFC 4271 §6.3).
    pub enforce_first_as: bool,
    /// Our address on this session, if known: a NEXT_HOP equal to it is
    /// invalid.
    pub local_address: Option<Ipv4Addr>,
}

impl SessionConfig {
    /// A session with the usual defaults: hold time 90 s, connect retry
    /// 5 s backing off to 120 s (Calico's `connect retry time 5`), IPv4 and
    /// IPv6 unicast, extended messages, no graceful restart.
    pub fn new(local_as: u32, router_id: Ipv4Addr, peer_as: u32) -> SessionConfig {
        SessionConfig {
            local_as,
            router_id,
            peer_as,
            hold_time: 90,
            min_hold_time: 3,
            keepalive_time: None,
            connect_retry: Duration::from_secs(5),
            connect_retry_max: Duration::from_secs(120),
            delay_open: None,
            send_hold_time: Duration::from_secs(8 * 60),
            passive: false,
            families: vec![Family::Ipv4Unicast, Family::Ipv6Unicast],
            add_path_receive: Vec::new(),
            extended_message: true,
            graceful_restart: None,
            required_capabilities: Vec::new(),
            cluster_id: None,
            enforce_first_as: true,
            local_address: None,
        }
    }

    /// Whether the peer is in our AS.
    pub fn is_ibgp(&self) -> bool {
        self.local_as == self.peer_as
    }

    /// The OPEN this configuration sends.
    pub fn open(&self) -> Open {
        let mut caps: Vec<Capability> = self
            .families
            .iter()
            .map(|f| Capability::Multiprotocol {
                afi: f.afi(),
                safi: f.safi(),
            })
            .collect();
        caps.push(Capability::RouteRefresh);
        caps.push(Capability::EnhancedRouteRefresh);
        if self.extended_message {
            caps.push(Capability::ExtendedMessage);
        }
        if let Some(gr) = &self.graceful_restart {
            let fam_flags = if gr.forwarding_preserved {
                gr_flags::FORWARDING_PRESERVED
            } else {
                0
            };
            caps.push(Capability::GracefulRestart {
                flags: if gr.restarting {
                    gr_flags::RESTART_STATE
                } else {
                    0
                },
                restart_time: gr.restart_time.min(0x0fff),
                families: self
                    .families
                    .iter()
                    .map(|f| GracefulRestartFamily {
                        afi: f.afi(),
                        safi: f.safi(),
                        flags: fam_flags,
                    })
                    .collect(),
            });
        }
        caps.push(Capability::FourOctetAs(self.local_as));
        if !self.add_path_receive.is_empty() {
            caps.push(Capability::AddPath(
                self.add_path_receive
                    .iter()
                    .map(|f| AddPathFamily {
                        afi: f.afi(),
                        safi: f.safi(),
                        send_receive: 1,
                    })
                    .collect(),
            ));
        }
        Open::new(self.local_as, self.hold_time, self.router_id, caps)
    }
}
