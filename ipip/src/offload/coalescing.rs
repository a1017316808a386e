//! Coalescing on the way in (what Linux GRO and wireguard-go's `tcpGRO`
//! do): consecutive TCP segments of one flow become one super-packet
//! that the TUN device takes whole.

use std::ops::Range;

use super::checksum::{fix_ip_checksum, fold, pseudo, sum};
use super::merged::{oversized, write_cut};
use super::{
    GSO_TCPV4, IPV4_MIN, MAX_DATAGRAM, PROTO_TCP, TCP_ACK, TCP_MIN, TCP_PSH, VNET_F_NEEDS_CSUM,
    VnetHdr, be16, be32, put16, tcp_header_lens,
};

/// Open flows a coalescing pass keeps looking at (like GRO's per-queue
/// flow list, bounded).
const OPEN_FLOWS: usize = 8;

/// What coalescing needs to know of one TCP/IPv4 segment.
#[derive(Clone, Copy, Debug)]
struct Seg {
    /// Source and destination addresses and ports.
    flow: [u8; 12],
    thl: usize,
    seq: u32,
    flags: u8,
    payload: usize,
}

/// The flow of a TCP/IPv4 packet, whether or not it can be coalesced.
fn flow_of(p: &[u8]) -> Option<[u8; 12]> {
    let (ihl, _) = tcp_header_lens(p).ok()?;
    let mut flow = [0u8; 12];
    flow.get_mut(..8)?.copy_from_slice(p.get(12..20)?);
    flow.get_mut(8..)?
        .copy_from_slice(p.get(ihl..ihl.saturating_add(4))?);
    Some(flow)
}

/// A segment that may be coalesced: IPv4 without options, valid header
/// checksum, not a fragment, TCP with payload and only ACK (and PSH) set,
/// valid TCP checksum (coalesced packets go on with NEEDS_CSUM, so a
/// corrupted segment must not get in).
fn candidate(p: &[u8]) -> Option<Seg> {
    let flow = flow_of(p)?;
    let (ihl, thl) = tcp_header_lens(p).ok()?;
    if ihl != IPV4_MIN || usize::from(be16(p, 2)) != p.len() {
        return None;
    }
    if be16(p, 6) & 0x3fff != 0 || fold(sum(p.get(..ihl)?, 0)) != 0xffff {
        return None;
    }
    let flags = *p.get(ihl.saturating_add(13))?;
    if flags & !TCP_PSH != TCP_ACK {
        return None;
    }
    let payload = p.len().checked_sub(ihl.checked_add(thl)?)?;
    if payload == 0 {
        return None;
    }
    let tcp = p.get(ihl..)?;
    if fold(sum(tcp, pseudo(p, PROTO_TCP, tcp.len()))) != 0xffff {
        return None;
    }
    Some(Seg {
        flow,
        thl,
        seq: be32(p, ihl.saturating_add(4)),
        flags,
        payload,
    })
}

/// Whether two candidates' headers agree on everything but what changes
/// from one segment to the next (IP total length, identification and
/// checksum; TCP sequence number, PSH, window and checksum).
fn same_headers(a: &[u8], b: &[u8], thl: usize) -> bool {
    let ip_same = a.get(..2) == b.get(..2) && a.get(6..10) == b.get(6..10);
    // Ports, acknowledgment number, data offset; then options (the TCP
    // header starts at 20: candidates carry no IP options).
    let end = IPV4_MIN.saturating_add(thl);
    let tcp_same = a.get(20..24) == b.get(20..24)
        && a.get(28..33) == b.get(28..33)
        && a.get(38..end) == b.get(38..end);
    ip_same && tcp_same
}

#[derive(Clone, Copy, Debug)]
struct Group {
    first: usize,
    last: usize,
    count: usize,
    /// Payload of the first segment: the MSS of the super-packet.
    gso_size: usize,
    /// Headers plus all payload so far.
    len: usize,
    open: bool,
    /// The last segment's facts (None when the group is one
    /// non-candidate packet).
    tail: Option<Seg>,
    /// For one packet bigger than the tunnel's inner MTU that is to go out
    /// as a super-packet: its segment size.
    cut: Option<usize>,
}

/// Coalesces consecutive in-order TCP segments of the same flow among
/// `packets` (whole IPv4 datagrams, in arrival order; `max_len` is the
/// largest inner packet the tunnel carries) into super-packets,
/// as Linux GRO does, and appends every resulting packet to `out` with its
/// vnet header in front, pushing its range (vnet header included) onto
/// `items`. Items come out in the order of their first packet, so packets
/// of one flow keep their order.
///
/// Segments join when they are candidates (IPv4 without options, not a
/// fragment, valid IP and TCP checksums, TCP payload, only ACK and PSH
/// set), of the same flow, with identical headers except sequence number and PSH, the sequence
/// number right after the previous segment, no more payload than the
/// first (a shorter one or one with PSH ends the super-packet), and the
/// whole within 65,535 bytes. A super-packet goes out with `GSO_TCPV4`,
/// `gso_size` the first segment's payload, and `NEEDS_CSUM` over a TCP
/// checksum field holding the pseudo-header sum. A TCP packet longer than
/// `max_len` cannot have crossed the tunnel as one datagram: the receiving
/// kernel merged it (GRO on the underlay NIC; its TCP checksum field then
/// holds the pseudo-header sum) or reassembled it from fragments; if its
/// checksum is either of those it goes out alone as a super-packet with
/// segments of `max_len`, so it is never forwarded whole over a link of
/// the tunnel's MTU. Anything else goes out as it came, behind a zero vnet
/// header.
pub fn coalesce(
    packets: &[&[u8]],
    max_len: usize,
    out: &mut Vec<u8>,
    items: &mut Vec<Range<usize>>,
) {
    let mut groups: Vec<Group> = Vec::with_capacity(packets.len());
    let mut next = vec![usize::MAX; packets.len()];
    // Open groups by flow: indices into `groups`, most recent last.
    let mut open: Vec<([u8; 12], usize)> = Vec::with_capacity(OPEN_FLOWS);
    for (i, p) in packets.iter().enumerate() {
        let cut = (p.len() > max_len).then(|| oversized(p, max_len)).flatten();
        let seg = if p.len() > max_len {
            None
        } else {
            candidate(p)
        };
        let flow = seg.map(|s| s.flow).or_else(|| flow_of(p));
        let slot = flow.and_then(|f| open.iter().position(|(k, _)| *k == f));
        let joined = match (seg, slot) {
            (Some(s), Some(at)) => {
                let g_index = open.get(at).map_or(usize::MAX, |(_, g)| *g);
                let joins = groups.get(g_index).is_some_and(|g| {
                    let last = packets.get(g.last).copied().unwrap_or_default();
                    g.tail.is_some_and(|prev| {
                        prev.seq
                            .wrapping_add(u32::try_from(prev.payload).unwrap_or(0))
                            == s.seq
                            && prev.thl == s.thl
                            && s.payload <= g.gso_size
                            && g.len.saturating_add(s.payload) <= MAX_DATAGRAM
                            && same_headers(last, p, s.thl)
                    })
                });
                if joins && let Some(g) = groups.get_mut(g_index) {
                    if let Some(n) = next.get_mut(g.last) {
                        *n = i;
                    }
                    g.last = i;
                    g.tail = Some(s);
                    g.count = g.count.saturating_add(1);
                    g.len = g.len.saturating_add(s.payload);
                    g.open = s.flags & TCP_PSH == 0 && s.payload == g.gso_size;
                    if !g.open {
                        open.remove(at);
                    }
                }
                joins
            }
            _ => false,
        };
        if joined {
            continue;
        }
        // Whatever does not join ends its flow's open group, so nothing of
        // that flow can later join a super-packet that goes out before it.
        if let Some(at) = slot {
            open.remove(at);
        }
        let can_grow = seg.is_some_and(|s| s.flags & TCP_PSH == 0);
        groups.push(Group {
            first: i,
            last: i,
            count: 1,
            gso_size: seg.map_or(0, |s| s.payload),
            len: p.len(),
            open: can_grow,
            tail: seg,
            cut,
        });
        if let (true, Some(f)) = (can_grow, flow) {
            if open.len() >= OPEN_FLOWS {
                open.remove(0);
            }
            open.push((f, groups.len().saturating_sub(1)));
        }
    }
    for g in &groups {
        let start = out.len();
        if let Some(gso_size) = g.cut {
            write_cut(
                packets.get(g.first).copied().unwrap_or_default(),
                gso_size,
                out,
            );
        } else if g.count < 2 {
            out.extend_from_slice(&VnetHdr::default().to_bytes());
            out.extend_from_slice(packets.get(g.first).copied().unwrap_or_default());
        } else {
            write_super_packet(packets, &next, g, out);
        }
        items.push(start..out.len());
    }
}

/// Appends the vnet header and the super-packet of group `g` to `out`.
fn write_super_packet(packets: &[&[u8]], next: &[usize], g: &Group, out: &mut Vec<u8>) {
    let first = packets.get(g.first).copied().unwrap_or_default();
    let last = packets.get(g.last).copied().unwrap_or_default();
    let thl = tcp_header_lens(first).map_or(TCP_MIN, |(_, t)| t);
    let hdrs = IPV4_MIN.saturating_add(thl);
    let vnet = VnetHdr {
        flags: VNET_F_NEEDS_CSUM,
        gso_type: GSO_TCPV4,
        hdr_len: u16::try_from(hdrs).unwrap_or(0),
        gso_size: u16::try_from(g.gso_size).unwrap_or(0),
        csum_start: 20,
        csum_offset: 16,
    };
    out.extend_from_slice(&vnet.to_bytes());
    let start = out.len();
    out.extend_from_slice(first.get(..hdrs).unwrap_or_default());
    let mut i = g.first;
    for _ in 0..g.count {
        let p = packets.get(i).copied().unwrap_or_default();
        out.extend_from_slice(p.get(hdrs..).unwrap_or_default());
        i = next.get(i).copied().unwrap_or(usize::MAX);
    }
    let sp = out.get_mut(start..).unwrap_or_default();
    let total = u16::try_from(sp.len()).unwrap_or(u16::MAX);
    put16(sp, 2, total);
    fix_ip_checksum(sp, IPV4_MIN);
    let last_flags = last.get(IPV4_MIN + 13).copied().unwrap_or(0);
    if let Some(f) = sp.get_mut(IPV4_MIN + 13) {
        *f |= last_flags & TCP_PSH;
    }
    // The newest window the sender advertised.
    put16(sp, IPV4_MIN + 14, be16(last, IPV4_MIN + 14));
    let tcp_len = sp.len().saturating_sub(IPV4_MIN);
    let partial = fold(pseudo(sp, PROTO_TCP, tcp_len));
    put16(sp, IPV4_MIN + 16, partial);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::offload::testutil::{gro_merged, payload, tcp, tcp_valid};
    use crate::offload::{TCP_FIN, segment};
    use crate::packet::checksum;

    fn coalesce_all(packets: &[Vec<u8>]) -> Vec<(VnetHdr, Vec<u8>)> {
        coalesce_to(packets, 1480)
    }

    fn coalesce_to(packets: &[Vec<u8>], max_len: usize) -> Vec<(VnetHdr, Vec<u8>)> {
        let refs: Vec<&[u8]> = packets.iter().map(Vec::as_slice).collect();
        let (mut out, mut items) = (Vec::new(), Vec::new());
        coalesce(&refs, max_len, &mut out, &mut items);
        items
            .into_iter()
            .map(|r| {
                let (h, p) = VnetHdr::parse(&out[r]).unwrap();
                (h, p.to_vec())
            })
            .collect()
    }

    #[test]
    fn coalesces_consecutive_segments_and_resegments_to_the_same_bytes() {
        let data = payload(1428 * 3 + 100);
        let segs: Vec<Vec<u8>> = data
            .chunks(1428)
            .enumerate()
            .map(|(i, c)| {
                let last = i == 3;
                tcp(
                    1000 + 1428 * i as u32,
                    TCP_ACK | if last { TCP_PSH } else { 0 },
                    c,
                )
            })
            .collect();
        let items = coalesce_all(&segs);
        assert_eq!(items.len(), 1);
        let (h, sp) = &items[0];
        assert_eq!(h.gso_type, GSO_TCPV4);
        assert_eq!(h.flags, VNET_F_NEEDS_CSUM);
        assert_eq!(
            (h.gso_size, h.hdr_len, h.csum_start, h.csum_offset),
            (1428, 52, 20, 16)
        );
        assert_eq!(usize::from(be16(sp, 2)), sp.len());
        assert_eq!(checksum(&sp[..20]), 0);
        assert_eq!(&sp[52..], &data[..]);
        assert!(sp[33] & TCP_PSH != 0);
        // Segmenting it again gives back the packets (same ids, as the
        // originals all carry one id here, only the first's is kept).
        let (mut out, mut ranges) = (Vec::new(), Vec::new());
        segment(sp, h, 1480, 0, &mut out, &mut ranges).unwrap();
        assert_eq!(ranges.len(), 4);
        for (r, orig) in ranges.iter().zip(&segs) {
            assert_eq!(&out[r.clone()][52..], &orig[52..]);
            assert_eq!(&out[r.clone()][20..52], &orig[20..52]);
        }
    }

    #[test]
    fn pure_acks_gaps_and_other_flows_are_not_merged() {
        let a = tcp(1000, TCP_ACK, &payload(100));
        let ack = tcp(1100, TCP_ACK, &[]);
        let gap = tcp(1300, TCP_ACK, &payload(100));
        let items = coalesce_all(&[a.clone(), ack.clone(), gap.clone()]);
        assert_eq!(items.len(), 3);
        assert!(items.iter().all(|(h, _)| *h == VnetHdr::default()));
        assert_eq!(items[1].1, ack);
        let mut other = tcp(1100, TCP_ACK, &payload(100));
        other[21] = 1; // a different destination port
        let items = coalesce_all(&[a, other]);
        assert_eq!(items.len(), 2);
    }

    #[test]
    fn a_non_mergeable_packet_ends_its_flows_super_packet_so_order_is_kept() {
        let p1 = tcp(1000, TCP_ACK, &payload(100));
        let fin = tcp(1100, TCP_ACK | TCP_FIN, &[]);
        let p2 = tcp(1100, TCP_ACK, &payload(100));
        let items = coalesce_all(&[p1.clone(), fin.clone(), p2.clone()]);
        let bodies: Vec<Vec<u8>> = items.into_iter().map(|(_, p)| p).collect();
        assert_eq!(bodies, [p1, fin, p2]);
    }

    #[test]
    fn segments_with_a_bad_tcp_checksum_are_not_merged() {
        let p1 = tcp(1000, TCP_ACK, &payload(100));
        let mut p2 = tcp(1100, TCP_ACK, &payload(100));
        p2[60] ^= 0xff;
        let items = coalesce_all(&[p1, p2.clone()]);
        assert_eq!(items.len(), 2);
        assert_eq!(items[1].1, p2);
    }

    #[test]
    fn interleaved_flows_coalesce_separately() {
        let a1 = tcp(1000, TCP_ACK, &payload(100));
        let a2 = tcp(1100, TCP_ACK, &payload(100));
        let mut b1 = tcp(5000, TCP_ACK, &payload(100));
        let mut b2 = tcp(5100, TCP_ACK, &payload(100));
        for b in [&mut b1, &mut b2] {
            b[20] = 0x11; // another source port; fix the checksum
            b[36..38].copy_from_slice(&[0, 0]);
            let c = !fold(sum(&b[20..], pseudo(b, 6, b.len() - 20)));
            b[36..38].copy_from_slice(&c.to_be_bytes());
        }
        let items = coalesce_all(&[a1, b1, a2, b2]);
        assert_eq!(items.len(), 2);
        assert!(
            items
                .iter()
                .all(|(h, p)| h.gso_type == GSO_TCPV4 && p.len() == 52 + 200)
        );
    }

    #[test]
    fn a_packet_merged_by_the_kernels_gro_goes_on_as_a_super_packet_cut_to_the_tunnel() {
        let data = payload(5000);
        let merged = gro_merged(&data);
        let small = tcp(9000, TCP_ACK, &payload(100));
        let items = coalesce_to(&[merged.clone(), small.clone()], 1480);
        assert_eq!(items.len(), 2);
        let (h, p) = &items[0];
        assert_eq!(
            (h.gso_type, h.flags, h.gso_size),
            (GSO_TCPV4, VNET_F_NEEDS_CSUM, 1428)
        );
        assert_eq!(p, &merged);
        assert_eq!(items[1], (VnetHdr::default(), small));
        let (mut out, mut segs) = (Vec::new(), Vec::new());
        segment(p, h, 1480, 0, &mut out, &mut segs).unwrap();
        assert_eq!(segs.len(), 4);
        assert!(
            segs.iter()
                .all(|r| r.len() <= 1480 && tcp_valid(&out[r.clone()]))
        );
        // A big packet with a wrong checksum is passed on untouched.
        let mut bad = tcp(1000, TCP_ACK, &data);
        bad[100] ^= 1;
        let items = coalesce_to(&[bad.clone()], 1480);
        assert_eq!(items, [(VnetHdr::default(), bad)]);
    }

    #[test]
    fn super_packets_stay_within_64_kb() {
        let segs: Vec<Vec<u8>> = (0..60)
            .map(|i| tcp(1000 + 1428 * i, TCP_ACK, &payload(1428)))
            .collect();
        let items = coalesce_all(&segs);
        assert!(items.len() >= 2);
        assert!(items.iter().all(|(_, p)| p.len() <= 65_535));
        let total: usize = items.iter().map(|(_, p)| p.len() - 52).sum();
        assert_eq!(total, 60 * 1428);
    }
}
