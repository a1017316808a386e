//! TCP segmentation (what a NIC does with TSO): a super-packet the kernel
//! handed out becomes segments that fit the tunnel.

use std::ops::Range;

use super::checksum::{fix_ip_checksum, fold, pseudo, sum};
use super::{
    GSO_ECN, GSO_TCPV4, MAX_DATAGRAM, OffloadError, PROTO_TCP, TCP_CWR, TCP_FIN, TCP_PSH, VnetHdr,
    be16, be32, put16, put32, tcp_header_lens,
};

/// Splits a TCP/IPv4 GSO super-packet (`packet`, the bytes after its vnet
/// header) into segments of at most `max_len` bytes each (the inner MTU:
/// a super-packet is cut to fit the tunnel, never answered with "too big"),
/// with at most `gso_size` payload bytes each. Each segment is appended to
/// `out` after `headroom` zero bytes (room for the outer header) and its
/// range (without the headroom) pushed onto `segments`.
///
/// Per segment, as a NIC doing TSO: IP total length, identification
/// (incremented per segment), header checksum; TCP sequence number
/// advanced, FIN and PSH only on the last segment, CWR only on the first,
/// the full TCP checksum.
pub fn segment(
    packet: &[u8],
    vnet: &VnetHdr,
    max_len: usize,
    headroom: usize,
    out: &mut Vec<u8>,
    segments: &mut Vec<Range<usize>>,
) -> Result<(), OffloadError> {
    if vnet.gso_type & !GSO_ECN != GSO_TCPV4 {
        return Err(OffloadError::UnsupportedGso(vnet.gso_type));
    }
    if packet.len() > MAX_DATAGRAM {
        return Err(OffloadError::TooLong(packet.len()));
    }
    let (ihl, thl) = tcp_header_lens(packet)?;
    let hdrs = ihl.saturating_add(thl);
    let (headers, payload) = packet
        .split_at_checked(hdrs)
        .ok_or(OffloadError::Truncated)?;
    let mss = usize::from(vnet.gso_size)
        .min(max_len.saturating_sub(hdrs))
        .max(usize::from(payload.is_empty()));
    if mss == 0 || (payload.is_empty() && hdrs > max_len) {
        return Err(OffloadError::NoRoom);
    }
    let id0 = be16(headers, 4);
    let seq0 = be32(headers, ihl.saturating_add(4));
    let flags0 = headers.get(ihl.saturating_add(13)).copied().unwrap_or(0);
    let chunks = payload.chunks(mss);
    let count = chunks.len().max(1);
    let chunks = chunks.chain(payload.is_empty().then_some(&[][..]));
    let mut offset = 0usize;
    for (i, chunk) in chunks.enumerate() {
        out.resize(out.len().saturating_add(headroom), 0);
        let start = out.len();
        out.extend_from_slice(headers);
        out.extend_from_slice(chunk);
        let seg = out.get_mut(start..).unwrap_or_default();
        let total = u16::try_from(seg.len()).map_err(|_| OffloadError::TooLong(seg.len()))?;
        put16(seg, 2, total);
        put16(seg, 4, id0.wrapping_add(u16::try_from(i).unwrap_or(0)));
        fix_ip_checksum(seg, ihl);
        let seq = seq0.wrapping_add(u32::try_from(offset).unwrap_or(0));
        put32(seg, ihl.saturating_add(4), seq);
        let mut flags = flags0;
        if i.saturating_add(1) < count {
            flags &= !(TCP_FIN | TCP_PSH);
        }
        if i > 0 {
            flags &= !TCP_CWR;
        }
        if let Some(f) = seg.get_mut(ihl.saturating_add(13)) {
            *f = flags;
        }
        let csum_at = ihl.saturating_add(16);
        put16(seg, csum_at, 0);
        let tcp_len = seg.len().saturating_sub(ihl);
        let acc = pseudo(seg, PROTO_TCP, tcp_len);
        let c = !fold(sum(seg.get(ihl..).unwrap_or_default(), acc));
        put16(seg, csum_at, c);
        segments.push(start..out.len());
        offset = offset.saturating_add(chunk.len());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::offload::TCP_ACK;
    use crate::offload::testutil::{payload, super_packet, tcp_valid};

    #[test]
    fn segments_a_super_packet_into_mss_sized_valid_segments() {
        let data = payload(5000);
        let (p, vnet) = super_packet(&data, TCP_ACK | TCP_PSH | TCP_CWR);
        let (mut out, mut segs) = (Vec::new(), Vec::new());
        segment(&p, &vnet, 1480, 20, &mut out, &mut segs).unwrap();
        assert_eq!(segs.len(), 4);
        let mut joined = Vec::new();
        for (i, r) in segs.iter().enumerate() {
            assert!(r.start >= 20 && out[r.start - 20..r.start].iter().all(|&b| b == 0));
            let s = &out[r.clone()];
            assert!(tcp_valid(s), "segment {i} checksums");
            assert_eq!(usize::from(be16(s, 2)), s.len());
            assert_eq!(be16(s, 4), 0x1234 + i as u16);
            assert_eq!(be32(s, 24), 1000 + 1428 * i as u32);
            let flags = s[33];
            assert_eq!(flags & TCP_PSH != 0, i == 3, "PSH only on the last");
            assert_eq!(flags & TCP_CWR != 0, i == 0, "CWR only on the first");
            assert!(flags & TCP_ACK != 0);
            joined.extend_from_slice(&s[52..]);
        }
        assert_eq!(out[segs[0].clone()].len(), 52 + 1428);
        assert_eq!(joined, data);
    }

    #[test]
    fn segments_are_cut_to_the_tunnel_mtu_when_the_mss_is_larger() {
        let data = payload(3000);
        let (p, mut vnet) = super_packet(&data, TCP_ACK);
        vnet.gso_size = 1448;
        let (mut out, mut segs) = (Vec::new(), Vec::new());
        segment(&p, &vnet, 1000, 0, &mut out, &mut segs).unwrap();
        assert!(segs.iter().all(|r| r.len() <= 1000));
        assert_eq!(segs.len(), 4);
        assert!(segs.iter().all(|r| tcp_valid(&out[r.clone()])));
    }

    #[test]
    fn fin_stays_on_the_last_segment_only() {
        let (p, vnet) = super_packet(&payload(3000), TCP_ACK | TCP_FIN);
        let (mut out, mut segs) = (Vec::new(), Vec::new());
        segment(&p, &vnet, 1480, 0, &mut out, &mut segs).unwrap();
        let fins: Vec<bool> = segs
            .iter()
            .map(|r| out[r.start + 33] & TCP_FIN != 0)
            .collect();
        assert_eq!(fins, [false, false, true]);
    }

    #[test]
    fn rejects_udp_gso_and_truncated_headers() {
        let (p, mut vnet) = super_packet(&payload(100), TCP_ACK);
        let (mut out, mut segs) = (Vec::new(), Vec::new());
        vnet.gso_type = 3;
        assert_eq!(
            segment(&p, &vnet, 1480, 0, &mut out, &mut segs),
            Err(OffloadError::UnsupportedGso(3))
        );
        vnet.gso_type = GSO_TCPV4;
        assert_eq!(
            segment(&p[..40], &vnet, 1480, 0, &mut out, &mut segs),
            Err(OffloadError::Truncated)
        );
        assert!(segs.is_empty());
    }
}
