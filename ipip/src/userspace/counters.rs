//! Data-plane counters: shared atomics, printable as `name value` lines.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

/// Why a packet was dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DropReason {
    /// Egress: no tunnel route covers the inner destination.
    NoRoute,
    /// Egress: the TUN device gave us something other than IPv4 (the
    /// kernel's IPv6 on the device: router solicitations, MLD).
    NotIpv4,
    /// Egress: an IPv4 packet from the TUN device that does not validate
    /// (truncated, bad checksum).
    BadInner,
    /// Egress: the raw socket refused the outer datagram.
    SendFailed,
    /// Ingress: IPIP from an address that is neither a route gateway nor a
    /// configured extra peer (Calico drops these too).
    UnknownPeer,
    /// Ingress: the outer or inner header did not validate.
    BadOuter,
    /// Ingress: writing the inner packet to the TUN device failed.
    TunWriteFailed,
}

impl DropReason {
    /// Every reason, in counter order.
    pub const ALL: [DropReason; 7] = [
        DropReason::NoRoute,
        DropReason::NotIpv4,
        DropReason::BadInner,
        DropReason::SendFailed,
        DropReason::UnknownPeer,
        DropReason::BadOuter,
        DropReason::TunWriteFailed,
    ];

    /// The counter's printed name.
    pub fn name(self) -> &'static str {
        match self {
            DropReason::NoRoute => "drop_no_route",
            DropReason::NotIpv4 => "drop_not_ipv4",
            DropReason::BadInner => "drop_bad_inner",
            DropReason::SendFailed => "drop_send_failed",
            DropReason::UnknownPeer => "drop_unknown_peer",
            DropReason::BadOuter => "drop_bad_outer",
            DropReason::TunWriteFailed => "drop_tun_write_failed",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Packet and byte counts each way, ICMP replies, and drops by reason.
/// Shared as `Arc<Counters>`; every field is updated with relaxed atomics.
#[derive(Debug, Default)]
pub struct Counters {
    /// Inner packets encapsulated and sent.
    pub tx_packets: AtomicU64,
    /// Inner bytes encapsulated and sent.
    pub tx_bytes: AtomicU64,
    /// Inner packets decapsulated and written to the TUN device.
    pub rx_packets: AtomicU64,
    /// Inner bytes decapsulated and written to the TUN device.
    pub rx_bytes: AtomicU64,
    /// ICMP fragmentation-needed replies sent back to inner sources.
    pub icmp_frag_needed: AtomicU64,
    /// Outer datagrams longer than one wire packet can be (inner longer
    /// than the underlay MTU − 20): several wire packets the kernel merged
    /// before the raw socket read them, by GRO on the underlay device (the
    /// IPIP GRO handler is built into Linux, module or not) or by
    /// reassembling fragments. Each is still counted in `rx_packets` as
    /// the wire packets it stands for.
    pub rx_merged: AtomicU64,
    /// Outer datagrams sent through the GRO device (bulk TCP; the rest went
    /// on the raw socket). Also counted in `tx_packets`.
    pub tx_gro: AtomicU64,
    /// Routes in the tunnel table after the last refresh.
    pub routes: AtomicU64,
    /// Errors the raw socket reported on receive that the data plane rode
    /// over. (ICMP errors for earlier outer datagrams do not show up here:
    /// an unconnected raw socket without IP_RECVERR does not report them.)
    pub socket_errors: AtomicU64,
    drops: [AtomicU64; DropReason::ALL.len()],
}

impl Counters {
    /// Counts one drop for `reason`.
    pub fn count_drop(&self, reason: DropReason) {
        if let Some(c) = self.drops.get(reason.index()) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Drops counted so far for `reason`.
    pub fn drops(&self, reason: DropReason) -> u64 {
        self.drops
            .get(reason.index())
            .map_or(0, |c| c.load(Ordering::Relaxed))
    }

    pub(crate) fn add(counter: &AtomicU64, n: usize) {
        counter.fetch_add(u64::try_from(n).unwrap_or(u64::MAX), Ordering::Relaxed);
    }
}

impl fmt::Display for Counters {
    /// One `name value` line per counter.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        writeln!(f, "tx_packets {}", get(&self.tx_packets))?;
        writeln!(f, "tx_bytes {}", get(&self.tx_bytes))?;
        writeln!(f, "tx_gro {}", get(&self.tx_gro))?;
        writeln!(f, "rx_packets {}", get(&self.rx_packets))?;
        writeln!(f, "rx_bytes {}", get(&self.rx_bytes))?;
        writeln!(f, "rx_merged {}", get(&self.rx_merged))?;
        writeln!(f, "icmp_frag_needed {}", get(&self.icmp_frag_needed))?;
        writeln!(f, "routes {}", get(&self.routes))?;
        writeln!(f, "socket_errors {}", get(&self.socket_errors))?;
        for reason in DropReason::ALL {
            writeln!(f, "{} {}", reason.name(), self.drops(reason))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_has_its_own_slot() {
        for (i, reason) in DropReason::ALL.into_iter().enumerate() {
            assert_eq!(reason.index(), i, "{reason:?}");
        }
    }

    #[test]
    fn prints_every_counter_by_name() {
        let c = Counters::default();
        c.count_drop(DropReason::UnknownPeer);
        c.count_drop(DropReason::UnknownPeer);
        Counters::add(&c.tx_bytes, 1500);
        let text = c.to_string();
        assert!(text.contains("drop_unknown_peer 2\n"), "{text}");
        assert!(text.contains("tx_bytes 1500\n"), "{text}");
        assert!(text.contains("drop_no_route 0\n"), "{text}");
        assert_eq!(text.lines().count(), 9 + DropReason::ALL.len());
    }
}
