//! Packets for the offload tests.

use super::checksum::{fold, pseudo, sum};
use super::{GSO_TCPV4, TCP_ACK, TCP_PSH, VNET_F_NEEDS_CSUM, VnetHdr};
use crate::packet::checksum;

/// A TCP/IPv4 packet 10.244.1.2:40000 → 10.244.2.2:5201 with valid
/// checksums and a 12-byte timestamp option.
pub(crate) fn tcp(seq: u32, flags: u8, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0x45, 0, 0, 0, 0x12, 0x34, 0x40, 0, 64, 6, 0, 0];
    p.extend_from_slice(&[10, 244, 1, 2, 10, 244, 2, 2]);
    p.extend_from_slice(&40000u16.to_be_bytes());
    p.extend_from_slice(&5201u16.to_be_bytes());
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&7u32.to_be_bytes());
    p.extend_from_slice(&[0x80, flags, 0x01, 0xf6, 0, 0, 0, 0]);
    p.extend_from_slice(&[1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2]);
    p.extend_from_slice(payload);
    let len = p.len() as u16;
    p[2..4].copy_from_slice(&len.to_be_bytes());
    let c = checksum(&p[..20]);
    p[10..12].copy_from_slice(&c.to_be_bytes());
    let c = !fold(sum(&p[20..], pseudo(&p, 6, p.len() - 20)));
    p[36..38].copy_from_slice(&c.to_be_bytes());
    p
}

pub(crate) fn tcp_valid(p: &[u8]) -> bool {
    checksum(&p[..20]) == 0 && fold(sum(&p[20..], pseudo(p, 6, p.len() - 20))) == 0xffff
}

pub(crate) fn payload(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 + 3) as u8).collect()
}

/// What the kernel hands out for a TSO super-packet: the pseudo-header
/// sum in the checksum field.
pub(crate) fn super_packet(data: &[u8], flags: u8) -> (Vec<u8>, VnetHdr) {
    let mut p = tcp(1000, flags, data);
    let partial = fold(pseudo(&p, 6, p.len() - 20));
    p[36..38].copy_from_slice(&partial.to_be_bytes());
    let vnet = VnetHdr {
        flags: VNET_F_NEEDS_CSUM,
        gso_type: GSO_TCPV4,
        hdr_len: 52,
        gso_size: 1428,
        csum_start: 20,
        csum_offset: 16,
    };
    (p, vnet)
}

/// A TCP packet carrying `data` as the kernel's GRO leaves it after
/// merging segments: the checksum field holds the pseudo-header sum
/// (what `tcp4_gro_complete` writes there).
pub(crate) fn gro_merged(data: &[u8]) -> Vec<u8> {
    let mut merged = tcp(1000, TCP_ACK | TCP_PSH, data);
    let partial = fold(pseudo(&merged, 6, merged.len() - 20));
    merged[36..38].copy_from_slice(&partial.to_be_bytes());
    merged
}
