//! Packets the receiving kernel merged (GRO on the underlay NIC) or
//! reassembled: longer than the tunnel carries, they go on as a
//! super-packet or cut into complete segments, never whole.

use std::ops::Range;

use super::checksum::{fold, pseudo, sum};
use super::segmentation::segment;
use super::{
    GSO_TCPV4, IPV4_MIN, PROTO_TCP, TCP_MIN, VNET_F_NEEDS_CSUM, VnetHdr, be16, put16,
    tcp_header_lens,
};

/// Cuts a TCP/IPv4 packet longer than `max_len` that the receiving kernel
/// merged (or reassembled; see [`super::coalesce`]) into segments of at most
/// `max_len` bytes, each with complete checksums, appended to `out` with
/// their ranges pushed onto `segments`. For a TUN device without offloads,
/// which takes only packets it can forward as they are: a merged packet
/// written whole would meet the pod's MTU and be dropped. Returns `false`,
/// appending nothing, for any other packet.
pub fn cut_oversized(
    packet: &[u8],
    max_len: usize,
    out: &mut Vec<u8>,
    segments: &mut Vec<Range<usize>>,
) -> bool {
    if packet.len() <= max_len {
        return false;
    }
    let Some(gso_size) = oversized(packet, max_len) else {
        return false;
    };
    let vnet = VnetHdr {
        gso_type: GSO_TCPV4,
        gso_size: u16::try_from(gso_size).unwrap_or(u16::MAX),
        ..VnetHdr::default()
    };
    let (len, count) = (out.len(), segments.len());
    if segment(packet, &vnet, max_len, 0, out, segments).is_err() {
        out.truncate(len);
        segments.truncate(count);
        return false;
    }
    true
}

/// The segment size for a TCP/IPv4 packet longer than `max_len` that may
/// go on as a super-packet: no IP options, not a fragment, lengths and IP
/// checksum right, payload present, and a TCP checksum that is either
/// complete and valid or the pseudo-header sum GRO leaves there.
pub(super) fn oversized(p: &[u8], max_len: usize) -> Option<usize> {
    let (ihl, thl) = tcp_header_lens(p).ok()?;
    let hdrs = ihl.checked_add(thl)?;
    if ihl != IPV4_MIN || usize::from(be16(p, 2)) != p.len() || hdrs >= max_len {
        return None;
    }
    if be16(p, 6) & 0x3fff != 0 || fold(sum(p.get(..ihl)?, 0)) != 0xffff || p.len() <= hdrs {
        return None;
    }
    let tcp = p.get(ihl..)?;
    let pseudo_sum = pseudo(p, PROTO_TCP, tcp.len());
    let merged = be16(p, ihl.saturating_add(16)) == fold(pseudo_sum);
    // A merged packet's payload is summed by whoever completes it: the
    // kernel, told NEEDS_CSUM. Summing 64 KB here as well costs as much
    // as the copy.
    let valid = || fold(sum(tcp, pseudo_sum)) == 0xffff;
    (merged || valid()).then(|| max_len.saturating_sub(hdrs))
}

/// Appends the vnet header and packet `p` as a super-packet cut into
/// segments of `gso_size` payload bytes.
pub(super) fn write_cut(p: &[u8], gso_size: usize, out: &mut Vec<u8>) {
    let thl = tcp_header_lens(p).map_or(TCP_MIN, |(_, t)| t);
    let hdrs = IPV4_MIN.saturating_add(thl);
    let vnet = VnetHdr {
        flags: VNET_F_NEEDS_CSUM,
        gso_type: GSO_TCPV4,
        hdr_len: u16::try_from(hdrs).unwrap_or(0),
        gso_size: u16::try_from(gso_size).unwrap_or(0),
        csum_start: 20,
        csum_offset: 16,
    };
    out.extend_from_slice(&vnet.to_bytes());
    let start = out.len();
    out.extend_from_slice(p);
    let sp = out.get_mut(start..).unwrap_or_default();
    let tcp_len = sp.len().saturating_sub(IPV4_MIN);
    let partial = fold(pseudo(sp, PROTO_TCP, tcp_len));
    put16(sp, IPV4_MIN + 16, partial);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::offload::testutil::{gro_merged, payload, tcp, tcp_valid};
    use crate::offload::{TCP_ACK, TCP_PSH};

    #[test]
    fn without_offloads_a_merged_packet_is_cut_into_complete_segments() {
        let data = payload(5000);
        let merged = gro_merged(&data);
        let (mut out, mut segs) = (Vec::new(), Vec::new());
        assert!(cut_oversized(&merged, 1480, &mut out, &mut segs));
        assert_eq!(segs.len(), 4);
        let mut carried = Vec::new();
        for r in &segs {
            let seg = &out[r.clone()];
            assert!(seg.len() <= 1480 && tcp_valid(seg));
            carried.extend_from_slice(&seg[52..]);
        }
        assert_eq!(carried, data);
        // PSH only on the last segment, as the sender's TSO would have it.
        let flags: Vec<u8> = segs.iter().map(|r| out[r.start + 33]).collect();
        assert_eq!(flags, [TCP_ACK, TCP_ACK, TCP_ACK, TCP_ACK | TCP_PSH]);
        // Packets that fit, and big ones with a wrong checksum, are left
        // alone.
        let small = tcp(9000, TCP_ACK, &payload(100));
        let mut bad = tcp(1000, TCP_ACK, &data);
        bad[100] ^= 1;
        for p in [small, bad] {
            let (mut out, mut segs) = (Vec::new(), Vec::new());
            assert!(!cut_oversized(&p, 1480, &mut out, &mut segs));
            assert!(out.is_empty() && segs.is_empty());
        }
    }
}
