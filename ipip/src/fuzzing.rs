//! The bodies of the ipip fuzz targets, shared with the stable test that
//! replays their corpora: arbitrary bytes through decapsulation and
//! encapsulation (`ipip_packet`), and through TCP segmentation and
//! coalescing (`ipip_offload`), checking what comes out.

use std::net::Ipv4Addr;

use crate::packet::{Encapsulated, Ipv4Header, Tunnel, decapsulate, encapsulate};

/// Panics only if the codec breaks an invariant.
pub fn packet(data: &[u8]) {
    let _ = decapsulate(data);
    let Some((&mtu_byte, inner)) = data.split_first() else {
        return;
    };
    let tunnel = Tunnel {
        local: Ipv4Addr::new(192, 0, 2, 1),
        mtu: 68u16.saturating_add(u16::from(mtu_byte).saturating_mul(6)),
        ttl: 64,
        forwarding: mtu_byte & 1 == 1,
    };
    let mut out = Vec::new();
    let Ok(result) = encapsulate(inner, Ipv4Addr::new(198, 51, 100, 2), &tunnel, 1, &mut out)
    else {
        return;
    };
    let original = Ipv4Header::parse(inner)
        .expect("encapsulate accepted it")
        .datagram();
    match result {
        Encapsulated::Packet => {
            assert!(out.len() <= usize::from(tunnel.mtu));
            let d = decapsulate(&out).expect("our own packet decapsulates");
            assert_eq!(d.inner.len(), original.len());
            if !tunnel.forwarding {
                assert_eq!(d.inner, original);
            }
        }
        Encapsulated::Fragments(ranges) => {
            let mut payload = Vec::new();
            for r in ranges {
                let frag = out.get(r).expect("range inside the buffer");
                assert!(frag.len() <= usize::from(tunnel.mtu));
                let h = Ipv4Header::parse(frag).expect("valid fragment header");
                payload.extend_from_slice(h.payload());
            }
            assert_eq!(payload.len(), original.len());
        }
        Encapsulated::FragmentationNeeded | Encapsulated::TimeExceeded => {
            let h = Ipv4Header::parse(&out).expect("valid ICMP");
            assert_eq!(h.protocol(), crate::packet::PROTO_ICMP);
            assert_eq!(crate::packet::checksum(h.payload()), 0);
        }
    }
}

/// The `ipip_offload` target. The first byte picks the mode and a size:
/// even → segmentation: a vnet header and a packet follow, cut to at most
/// `68 + 6 * byte` bytes per segment; odd → coalescing: packets follow,
/// each behind a 2-byte big-endian length, for a tunnel carrying inner
/// packets of at most `68 + 6 * byte` bytes (65,535 if bit 1 is set). Panics only if an invariant
/// breaks.
pub fn offload(data: &[u8]) {
    use crate::offload::{VnetHdr, coalesce, complete_checksum, cut_oversized, fold, segment, sum};
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let tcp_ok = |p: &[u8]| {
        let h = Ipv4Header::parse(p).expect("segment has a valid IPv4 header");
        assert_eq!(h.total_len(), p.len());
        let tcp = h.payload();
        let mut pseudo = p[12..20].to_vec();
        pseudo.extend_from_slice(&[0, 6]);
        pseudo.extend_from_slice(&(tcp.len() as u16).to_be_bytes());
        assert_eq!(fold(sum(tcp, sum(&pseudo, 0))), 0xffff, "TCP checksum");
    };
    if mode & 1 == 0 {
        let Some((vnet, packet)) = VnetHdr::parse(rest) else {
            return;
        };
        let mut copy = packet.to_vec();
        let _ = complete_checksum(&mut copy, &vnet);
        let max_len = 68 + 6 * usize::from(mode);
        let (mut out, mut segs) = (Vec::new(), Vec::new());
        if segment(packet, &vnet, max_len, 20, &mut out, &mut segs).is_err() {
            assert!(segs.is_empty() || out.len() >= 20);
            return;
        }
        assert!(!segs.is_empty());
        let ihl = usize::from(packet[0] & 15) * 4;
        let hdrs = ihl + usize::from(packet[ihl + 12] >> 4) * 4;
        let mut payload = Vec::new();
        for r in &segs {
            assert!(out[r.start - 20..r.start].iter().all(|&b| b == 0));
            let seg = &out[r.clone()];
            assert!(seg.len() <= max_len, "segment over the size limit");
            tcp_ok(seg);
            payload.extend_from_slice(&seg[hdrs..]);
        }
        assert_eq!(
            payload,
            packet[hdrs..],
            "segments carry the payload in order"
        );
    } else {
        let mut packets = Vec::new();
        let mut rest = rest;
        while let [a, b, tail @ ..] = rest {
            let len = usize::from(u16::from_be_bytes([*a, *b])).min(tail.len());
            let (p, more) = tail.split_at(len);
            packets.push(p);
            rest = more;
        }
        // Bit 1 set: no packet is over the tunnel MTU, so none is cut.
        let max_len = if mode & 2 != 0 {
            65_535
        } else {
            68 + 6 * usize::from(mode)
        };
        // Without offloads, every packet over the limit is either cut into
        // valid segments within it that carry its payload, or left alone.
        for p in packets.iter().filter(|p| p.len() > max_len) {
            let (mut out, mut segs) = (Vec::new(), Vec::new());
            if !cut_oversized(p, max_len, &mut out, &mut segs) {
                assert!(out.is_empty() && segs.is_empty());
                continue;
            }
            let hdrs = 20 + usize::from(p[32] >> 4) * 4;
            let mut payload = Vec::new();
            for r in &segs {
                let seg = &out[r.clone()];
                assert!(seg.len() <= max_len, "cut segment over the size limit");
                tcp_ok(seg);
                payload.extend_from_slice(&seg[hdrs..]);
            }
            assert_eq!(payload, p[hdrs..], "cut segments carry the payload");
        }
        let (mut out, mut items) = (Vec::new(), Vec::new());
        coalesce(&packets, max_len, &mut out, &mut items);
        assert!(items.len() <= packets.len());
        let mut count = 0;
        for r in &items {
            let (vnet, p) = VnetHdr::parse(&out[r.clone()]).expect("item has a vnet header");
            if !vnet.is_gso() {
                assert_eq!(vnet, VnetHdr::default());
                assert!(packets.contains(&p), "a single packet passes unchanged");
                count += 1;
                continue;
            }
            assert!(p.len() <= 65_535);
            // A cut packet is one input packet over the size limit, only
            // its TCP checksum field rewritten; a coalesced super-packet may
            // be over the limit too (it goes to the local TUN, not over the
            // tunnel) and is checked below like any other.
            let cut = packets.iter().any(|q| {
                q.len() > max_len && q.len() == p.len() && q[..36] == p[..36] && q[38..] == p[38..]
            });
            if cut {
                assert!(usize::from(vnet.hdr_len) + usize::from(vnet.gso_size) <= max_len);
                count += 1;
                continue;
            }
            let (mut segs_out, mut segs) = (Vec::new(), Vec::new());
            segment(p, &vnet, 65_535, 0, &mut segs_out, &mut segs).expect("super-packet segments");
            for s in &segs {
                tcp_ok(&segs_out[s.clone()]);
            }
            count += segs.len();
        }
        assert_eq!(count, packets.len(), "every packet is in exactly one item");
    }
}
