//! RFC 2003 encapsulation and decapsulation. Packets are built by hand
//! from the RFC 791 header layout (`ipv4()` below).

use std::net::Ipv4Addr;

use ipip::packet::*;

/// An IPv4 datagram: header fields as given, UDP protocol, valid checksum.
fn ipv4(src: [u8; 4], dst: [u8; 4], ttl: u8, df: bool, tos: u8, payload_len: usize) -> Vec<u8> {
    let mut p = vec![
        0x45,
        tos,
        0,
        0,
        0x12,
        0x34,
        if df { 0x40 } else { 0 },
        0,
        ttl,
        17,
        0,
        0,
    ];
    p.extend_from_slice(&src);
    p.extend_from_slice(&dst);
    p.extend((0..payload_len).map(|i| i as u8));
    let len = (p.len() as u16).to_be_bytes();
    p[2..4].copy_from_slice(&len);
    let sum = checksum(&p[..20]).to_be_bytes();
    p[10..12].copy_from_slice(&sum);
    p
}

const POD_A: [u8; 4] = [10, 244, 1, 5];
const POD_B: [u8; 4] = [10, 244, 2, 7];

fn tunnel(mtu: u16) -> Tunnel {
    Tunnel {
        local: Ipv4Addr::new(192, 0, 2, 1),
        mtu,
        ttl: 64,
        forwarding: false,
    }
}

fn remote() -> Ipv4Addr {
    Ipv4Addr::new(198, 51, 100, 2)
}

#[test]
fn outer_header_is_protocol_4_with_tos_and_df_copied_and_a_valid_checksum() {
    let inner = ipv4(POD_A, POD_B, 63, true, 0x2e, 100);
    let mut out = Vec::new();
    assert_eq!(
        encapsulate(&inner, remote(), &tunnel(1500), 0x77, &mut out),
        Ok(Encapsulated::Packet)
    );
    let outer = Ipv4Header::parse(&out).unwrap();
    assert_eq!(outer.protocol(), 4);
    assert_eq!(outer.tos(), 0x2e);
    assert!(outer.dont_fragment());
    assert_eq!(outer.id(), 0x77);
    assert_eq!(outer.ttl(), 64);
    assert_eq!(outer.src(), Ipv4Addr::new(192, 0, 2, 1));
    assert_eq!(outer.dst(), remote());
    assert_eq!(outer.total_len(), inner.len() + 20);
    assert_eq!(
        outer.payload(),
        &inner[..],
        "the inner datagram is carried unchanged"
    );
}

#[test]
fn decapsulation_returns_the_inner_datagram_and_endpoints() {
    let inner = ipv4(POD_A, POD_B, 63, false, 0, 40);
    let mut out = Vec::new();
    encapsulate(&inner, remote(), &tunnel(1500), 1, &mut out).unwrap();
    let d = decapsulate(&out).unwrap();
    assert_eq!(d.inner, &inner[..]);
    assert_eq!(
        (d.outer_src, d.outer_dst),
        (Ipv4Addr::new(192, 0, 2, 1), remote())
    );
}

#[test]
fn too_big_with_df_set_answers_fragmentation_needed_with_the_tunnel_mtu() {
    let inner = ipv4(POD_A, POD_B, 63, true, 0, 1480); // 1500 bytes
    let mut out = Vec::new();
    let r = encapsulate(&inner, remote(), &tunnel(1500), 1, &mut out).unwrap();
    assert_eq!(r, Encapsulated::FragmentationNeeded);
    let icmp = Ipv4Header::parse(&out).unwrap();
    assert_eq!(icmp.protocol(), 1);
    assert_eq!(
        icmp.dst(),
        Ipv4Addr::from(POD_A),
        "sent back to the inner source"
    );
    let body = icmp.payload();
    assert_eq!(
        (body[0], body[1]),
        (3, 4),
        "destination unreachable, fragmentation needed"
    );
    assert_eq!(
        u16::from_be_bytes([body[6], body[7]]),
        1480,
        "next-hop MTU = tunnel MTU - 20 (RFC 1191)"
    );
    assert_eq!(
        &body[8..36],
        &inner[..28],
        "quotes the inner header and 8 bytes"
    );
    assert_eq!(checksum(body), 0);
}

#[test]
fn exactly_fitting_datagram_is_not_refused() {
    let inner = ipv4(POD_A, POD_B, 63, true, 0, 1460); // 1480 + 20 = 1500
    let mut out = Vec::new();
    assert_eq!(
        encapsulate(&inner, remote(), &tunnel(1500), 1, &mut out),
        Ok(Encapsulated::Packet)
    );
    assert_eq!(out.len(), 1500);
}

#[test]
fn too_big_without_df_is_sent_as_outer_fragments() {
    let inner = ipv4(POD_A, POD_B, 63, false, 0, 3000);
    let mut out = Vec::new();
    let Encapsulated::Fragments(ranges) =
        encapsulate(&inner, remote(), &tunnel(1500), 9, &mut out).unwrap()
    else {
        panic!("expected fragments")
    };
    assert_eq!(ranges.len(), 3);
    let mut reassembled = Vec::new();
    for (i, r) in ranges.iter().enumerate() {
        let f = Ipv4Header::parse(&out[r.clone()]).unwrap();
        assert!(f.total_len() <= 1500);
        assert_eq!(f.id(), 9);
        let flags = u16::from_be_bytes([out[r.start + 6], out[r.start + 7]]);
        assert_eq!(
            flags & 0x1fff,
            (reassembled.len() / 8) as u16,
            "offset in 8-byte units"
        );
        assert_eq!(
            flags & 0x2000 != 0,
            i + 1 < ranges.len(),
            "MF on all but the last"
        );
        reassembled.extend_from_slice(f.payload());
    }
    assert_eq!(reassembled, inner);
}

#[test]
fn forwarding_encapsulator_decrements_the_inner_ttl_and_fixes_its_checksum() {
    let inner = ipv4(POD_A, POD_B, 10, false, 0, 20);
    let t = Tunnel {
        forwarding: true,
        ..tunnel(1500)
    };
    let mut out = Vec::new();
    encapsulate(&inner, remote(), &t, 1, &mut out).unwrap();
    let d = decapsulate(&out).unwrap();
    let h = Ipv4Header::parse(d.inner).unwrap();
    assert_eq!(h.ttl(), 9);
}

#[test]
fn forwarding_encapsulator_answers_time_exceeded_when_the_inner_ttl_runs_out() {
    let inner = ipv4(POD_A, POD_B, 1, false, 0, 20);
    let t = Tunnel {
        forwarding: true,
        ..tunnel(1500)
    };
    let mut out = Vec::new();
    assert_eq!(
        encapsulate(&inner, remote(), &t, 1, &mut out),
        Ok(Encapsulated::TimeExceeded)
    );
    let icmp = Ipv4Header::parse(&out).unwrap();
    assert_eq!((icmp.payload()[0], icmp.payload()[1]), (11, 0));
}

#[test]
fn inner_ttl_is_untouched_when_the_kernel_already_routed_the_datagram() {
    let inner = ipv4(POD_A, POD_B, 1, false, 0, 20);
    let mut out = Vec::new();
    assert_eq!(
        encapsulate(&inner, remote(), &tunnel(1500), 1, &mut out),
        Ok(Encapsulated::Packet)
    );
}

fn outer_around(inner: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    encapsulate(
        &ipv4(POD_A, POD_B, 63, false, 0, 8),
        remote(),
        &tunnel(1500),
        1,
        &mut out,
    )
    .unwrap();
    out.truncate(20);
    out.extend_from_slice(inner);
    let len = (out.len() as u16).to_be_bytes();
    out[2..4].copy_from_slice(&len);
    out[10..12].copy_from_slice(&[0, 0]);
    let sum = checksum(&out[..20]).to_be_bytes();
    out[10..12].copy_from_slice(&sum);
    out
}

#[test]
fn decapsulation_rejects_other_protocols() {
    let udp = ipv4(POD_A, POD_B, 63, false, 0, 20);
    assert_eq!(decapsulate(&udp), Err(PacketError::NotIpip(17)));
}

#[test]
fn decapsulation_rejects_a_bad_outer_checksum() {
    let mut out = outer_around(&ipv4(POD_A, POD_B, 63, false, 0, 8));
    out[10] ^= 0xff;
    assert_eq!(decapsulate(&out), Err(PacketError::BadChecksum));
}

#[test]
fn decapsulation_rejects_an_inner_packet_that_is_not_ipv4() {
    let mut inner = ipv4(POD_A, POD_B, 63, false, 0, 8);
    inner[0] = 0x65;
    assert_eq!(
        decapsulate(&outer_around(&inner)),
        Err(PacketError::NotIpv4(6))
    );
}

#[test]
fn decapsulation_rejects_an_inner_length_past_the_outer_payload() {
    let mut inner = ipv4(POD_A, POD_B, 63, false, 0, 8);
    inner[2..4].copy_from_slice(&100u16.to_be_bytes());
    inner[10..12].copy_from_slice(&[0, 0]);
    let sum = checksum(&inner[..20]).to_be_bytes();
    inner[10..12].copy_from_slice(&sum);
    assert_eq!(
        decapsulate(&outer_around(&inner)),
        Err(PacketError::BadTotalLength(100))
    );
}

#[test]
fn decapsulation_rejects_a_bad_inner_checksum() {
    let mut inner = ipv4(POD_A, POD_B, 63, false, 0, 8);
    inner[11] ^= 1;
    assert_eq!(
        decapsulate(&outer_around(&inner)),
        Err(PacketError::BadChecksum)
    );
}

#[test]
fn decapsulation_rejects_truncated_and_bad_header_lengths() {
    assert_eq!(decapsulate(&[0x45, 0, 0]), Err(PacketError::Truncated));
    let mut p = ipv4(POD_A, POD_B, 63, false, 0, 8);
    p[0] = 0x44;
    assert_eq!(Ipv4Header::parse(&p), Err(PacketError::BadHeaderLength(16)));
}

#[test]
fn decapsulation_rejects_outer_fragments() {
    let mut out = outer_around(&ipv4(POD_A, POD_B, 63, false, 0, 8));
    out[6] = 0x20; // MF
    out[10..12].copy_from_slice(&[0, 0]);
    let sum = checksum(&out[..20]).to_be_bytes();
    out[10..12].copy_from_slice(&sum);
    assert_eq!(decapsulate(&out), Err(PacketError::Fragment));
}

#[test]
fn checksum_matches_rfc_1071_example() {
    // RFC 1071 §3: the sum of 0001 f203 f4f5 f6f7 is ddf2, complement 220d.
    assert_eq!(
        checksum(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]),
        0x220d
    );
}

#[test]
fn fuzz_body_holds_on_these_inputs() {
    for mtu in [0u8, 1, 100, 255] {
        let mut data = vec![mtu];
        data.extend(ipv4(POD_A, POD_B, 2, mtu % 2 == 0, 0, 1400));
        ipip::fuzzing::packet(&data);
    }
}

#[test]
fn encapsulating_in_place_writes_the_same_outer_header_as_encapsulate() {
    let inner = ipv4(POD_A, POD_B, 63, true, 0x28, 1000);
    let mut want = Vec::new();
    let r = encapsulate(&inner, remote(), &tunnel(1500), 9, &mut want).unwrap();
    assert_eq!(r, Encapsulated::Packet);
    let mut buf = vec![0u8; OUTER_HEADER_LEN];
    buf.extend_from_slice(&inner);
    encapsulate_in_place(&mut buf, remote(), &tunnel(1500), 9).unwrap();
    assert_eq!(buf, want);
}

#[test]
fn encapsulating_in_place_refuses_what_does_not_fit_and_leaves_the_buffer() {
    let inner = ipv4(POD_A, POD_B, 63, true, 0, 1481);
    let mut buf = vec![0u8; OUTER_HEADER_LEN];
    buf.extend_from_slice(&inner);
    let before = buf.clone();
    assert!(encapsulate_in_place(&mut buf, remote(), &tunnel(1500), 9).is_err());
    assert!(encapsulate_in_place(&mut buf[..30], remote(), &tunnel(1500), 9).is_err());
    assert_eq!(buf, before);
}
