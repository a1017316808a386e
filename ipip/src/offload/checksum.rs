//! Internet checksums (RFC 1071) over byte buffers: the sums the other
//! offload steps use, and completion of the partial checksum the kernel
//! leaves in a packet marked `NEEDS_CSUM`.

use super::{OffloadError, PROTO_UDP, VNET_F_NEEDS_CSUM, VnetHdr, put16};

/// Adds `bytes` to a ones'-complement accumulator, four bytes at a time
/// (a 32-bit big-endian word is two 16-bit words modulo 0xffff). An odd
/// tail is padded with zeros, as RFC 1071 says; only the last piece of a
/// summed region may have a length that is not a multiple of 2.
pub fn sum(bytes: &[u8], mut acc: u64) -> u64 {
    let mut chunks = bytes.chunks_exact(4);
    for c in &mut chunks {
        let w = <[u8; 4]>::try_from(c).map_or(0, u32::from_be_bytes);
        acc = acc.wrapping_add(u64::from(w));
    }
    let mut tail = [0u8; 4];
    for (slot, b) in tail.iter_mut().zip(chunks.remainder()) {
        *slot = *b;
    }
    acc.wrapping_add(u64::from(u32::from_be_bytes(tail)))
}

/// Folds an accumulator to 16 bits (not inverted).
pub fn fold(mut acc: u64) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff).wrapping_add(acc >> 16);
    }
    u16::try_from(acc).unwrap_or(0xffff)
}

/// The TCP/UDP pseudo-header sum for an IPv4 header `ip` and an upper-layer
/// length.
pub(crate) fn pseudo(ip: &[u8], proto: u8, len: usize) -> u64 {
    let addrs = ip.get(12..20).unwrap_or_default();
    let len = u64::try_from(len).unwrap_or(0);
    sum(addrs, u64::from(proto).wrapping_add(len))
}

/// IPv4 header checksum, recomputed in place over `ihl` bytes.
pub(crate) fn fix_ip_checksum(ip: &mut [u8], ihl: usize) {
    put16(ip, 10, 0);
    let c = !fold(sum(ip.get(..ihl).unwrap_or_default(), 0));
    put16(ip, 10, c);
}

/// Completes the checksum of a non-GSO packet the kernel handed out with
/// `NEEDS_CSUM` (a TUN device with `TUN_F_CSUM` does that for locally
/// generated TCP and UDP): the field at `csum_start + csum_offset` holds the
/// pseudo-header sum, the sum over everything from `csum_start` on goes
/// in. Does nothing without the flag.
pub fn complete_checksum(packet: &mut [u8], vnet: &VnetHdr) -> Result<(), OffloadError> {
    if vnet.flags & VNET_F_NEEDS_CSUM == 0 {
        return Ok(());
    }
    let start = usize::from(vnet.csum_start);
    let field = start.saturating_add(usize::from(vnet.csum_offset));
    if field.saturating_add(2) > packet.len() {
        return Err(OffloadError::BadChecksumRange);
    }
    let mut c = !fold(sum(packet.get(start..).unwrap_or_default(), 0));
    // RFC 768: a computed UDP checksum of 0 goes out as all ones.
    if c == 0 && packet.get(9) == Some(&PROTO_UDP) && packet.first().is_some_and(|b| b >> 4 == 4) {
        c = 0xffff;
    }
    put16(packet, field, c);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::offload::testutil::{payload, super_packet, tcp_valid};
    use crate::offload::{GSO_NONE, TCP_ACK};

    #[test]
    fn completes_a_partial_tcp_checksum() {
        let (mut p, mut vnet) = super_packet(&payload(300), TCP_ACK);
        vnet.gso_type = GSO_NONE;
        assert!(!tcp_valid(&p));
        complete_checksum(&mut p, &vnet).unwrap();
        assert!(tcp_valid(&p));
        vnet.csum_offset = 400;
        assert_eq!(
            complete_checksum(&mut p, &vnet),
            Err(OffloadError::BadChecksumRange)
        );
    }
}
