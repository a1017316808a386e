//! The body of the `ipip_packet` fuzz target, shared with the stable test
//! that replays its corpus: arbitrary bytes through decapsulation and
//! encapsulation, checking what comes out.

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
