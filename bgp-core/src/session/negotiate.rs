//! What two OPENs agree on (RFC 5492 §3: a capability is in use when both
//! sides advertised it).

use std::net::Ipv4Addr;
use std::time::Duration;

use crate::wire::{AddPath, Capability, DecodeContext, Family, Open, PeerKind, gr_flags};

use super::config::SessionConfig;

/// The peer's graceful-restart capability (RFC 4724 §3).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerGracefulRestart {
    /// How long to keep the peer's routes when its session drops.
    pub restart_time: Duration,
    /// The peer has just restarted (Restart State bit).
    pub restarting: bool,
    /// Families the peer preserves, with the forwarding-preserved flag.
    pub families: Vec<(Family, bool)>,
}

/// The outcome of the OPEN exchange.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Negotiated {
    /// The peer's AS.
    pub peer_as: u32,
    /// The peer's BGP identifier.
    pub peer_id: Ipv4Addr,
    /// Hold time in use: the smaller of the two proposals (0 = none).
    pub hold_time: u16,
    /// Our configured keepalive interval in seconds, if any (see
    /// [`Negotiated::keepalive`]).
    pub keepalive_time: Option<u16>,
    /// Families both sides enabled.
    pub families: Vec<Family>,
    /// Context for decoding what the peer sends.
    pub rx: DecodeContext,
    /// Context for encoding what we send.
    pub tx: DecodeContext,
    /// Both support route refresh.
    pub route_refresh: bool,
    /// Both support enhanced route refresh (RFC 7313).
    pub enhanced_route_refresh: bool,
    /// The peer's graceful-restart capability, if it sent one.
    pub peer_graceful_restart: Option<PeerGracefulRestart>,
}

impl Negotiated {
    /// The keepalive interval: the configured one, or a third of the hold
    /// time (RFC 4271 §10), and never more than that third so the peer's
    /// hold timer cannot run out; none with a hold time of 0.
    pub fn keepalive(&self) -> Option<Duration> {
        let third = self.hold_time / 3;
        let secs = self.keepalive_time.map_or(third, |k| k.min(third));
        (self.hold_time > 0).then(|| Duration::from_secs(u64::from(secs).max(1)))
    }
}

fn families_of(open: &Open) -> Vec<Family> {
    let mp: Vec<Family> = open
        .capabilities()
        .filter_map(|c| match c {
            Capability::Multiprotocol { afi, safi } => Family::from_afi_safi(*afi, *safi),
            _ => None,
        })
        .collect();
    if open
        .capabilities()
        .any(|c| matches!(c, Capability::Multiprotocol { .. }))
    {
        mp
    } else {
        // RFC 4760 §8: a speaker without multiprotocol capabilities does
        // IPv4 unicast only.
        vec![Family::Ipv4Unicast]
    }
}

/// Add-path send/receive bits the peer advertised for `family`.
fn add_path_bits(open: &Open, family: Family) -> u8 {
    open.capabilities()
        .filter_map(|c| match c {
            Capability::AddPath(fams) => Some(fams),
            _ => None,
        })
        .flatten()
        .filter(|f| Family::from_afi_safi(f.afi, f.safi) == Some(family))
        .fold(0, |acc, f| acc | f.send_receive)
}

/// Computes what is in use between our configuration and the peer's OPEN.
pub fn negotiate(config: &SessionConfig, ours: &Open, theirs: &Open) -> Negotiated {
    let has = |open: &Open, code: u8| open.capabilities().any(|c| c.code() == code);
    let four_octet_as = has(ours, crate::wire::iana::capability::FOUR_OCTET_AS)
        && has(theirs, crate::wire::iana::capability::FOUR_OCTET_AS);
    let extended_message = has(ours, crate::wire::iana::capability::EXTENDED_MESSAGE)
        && has(theirs, crate::wire::iana::capability::EXTENDED_MESSAGE);
    let their_families = families_of(theirs);
    let families: Vec<Family> = families_of(ours)
        .into_iter()
        .filter(|f| their_families.contains(f))
        .collect();

    // RFC 7911 §4: we receive path IDs where we said "receive" and they
    // said "send"; we send them where both ways round hold.
    let mut rx_add_path = AddPath::default();
    let mut tx_add_path = AddPath::default();
    for &f in &families {
        let ours_bits = add_path_bits(ours, f);
        let theirs_bits = add_path_bits(theirs, f);
        let rx = ours_bits & 1 != 0 && theirs_bits & 2 != 0;
        let tx = ours_bits & 2 != 0 && theirs_bits & 1 != 0;
        match f {
            Family::Ipv4Unicast => {
                rx_add_path.ipv4_unicast = rx;
                tx_add_path.ipv4_unicast = tx;
            }
            Family::Ipv6Unicast => {
                rx_add_path.ipv6_unicast = rx;
                tx_add_path.ipv6_unicast = tx;
            }
        }
    }

    let peer = if config.is_ibgp() {
        PeerKind::Internal
    } else {
        PeerKind::External {
            peer_as: config.peer_as,
            enforce_first_as: config.enforce_first_as,
        }
    };
    let base = DecodeContext {
        four_octet_as,
        extended_message,
        add_path: AddPath::default(),
        peer,
        local_router_id: Some(config.router_id),
        cluster_id: config.cluster_id,
        local_address: config.local_address,
    };

    let peer_graceful_restart = theirs.capabilities().find_map(|c| match c {
        Capability::GracefulRestart {
            flags,
            restart_time,
            families,
        } => Some(PeerGracefulRestart {
            restart_time: Duration::from_secs(u64::from(*restart_time)),
            restarting: flags & gr_flags::RESTART_STATE != 0,
            families: families
                .iter()
                .filter_map(|f| {
                    Family::from_afi_safi(f.afi, f.safi)
                        .map(|fam| (fam, f.flags & gr_flags::FORWARDING_PRESERVED != 0))
                })
                .collect(),
        }),
        _ => None,
    });

    Negotiated {
        peer_as: theirs.asn(),
        peer_id: theirs.bgp_id,
        hold_time: ours.hold_time.min(theirs.hold_time),
        keepalive_time: config.keepalive_time,
        families,
        rx: DecodeContext {
            add_path: rx_add_path,
            ..base
        },
        tx: DecodeContext {
            add_path: tx_add_path,
            ..base
        },
        route_refresh: has(ours, crate::wire::iana::capability::ROUTE_REFRESH)
            && has(theirs, crate::wire::iana::capability::ROUTE_REFRESH),
        enhanced_route_refresh: has(ours, crate::wire::iana::capability::ENHANCED_ROUTE_REFRESH)
            && has(
                theirs,
                crate::wire::iana::capability::ENHANCED_ROUTE_REFRESH,
            ),
        peer_graceful_restart,
    }
}
