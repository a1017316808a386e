//! TUN offloads on byte buffers: the `virtio_net_hdr` a TUN device opened
//! with `IFF_VNET_HDR` puts in front of every packet, TCP segmentation of
//! the super-packets the kernel hands out once `TUNSETOFFLOAD` allows TSO
//! (what a NIC does with TSO), completion of partial checksums, and the
//! reverse on the way in: coalescing consecutive TCP segments of one flow
//! into one super-packet (what Linux GRO and wireguard-go's `tcpGRO` do).
//!
//! Pure functions over byte slices, no I/O; no input can make them panic
//! (the `offload` fuzz target checks that, and what comes out).
//!
//! One file per concept: `checksum.rs` (ones'-complement sums, partial
//! checksums), `segmentation.rs` (TSO: super-packet → segments),
//! `coalescing.rs` (GRO: segments → super-packets) and `merged.rs`
//! (packets the receiving kernel merged, cut back to the tunnel's size);
//! the vnet header and the header readers they share live here.

#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::panic,
        clippy::arithmetic_side_effects
    )
)]

mod checksum;
mod coalescing;
mod merged;
mod segmentation;
#[cfg(test)]
mod testutil;

pub use checksum::{complete_checksum, fold, sum};
pub use coalescing::coalesce;
pub use merged::cut_oversized;
pub use segmentation::segment;

/// Length of `struct virtio_net_hdr` (without `num_buffers`): the TUN
/// device's default vnet header size.
pub const VNET_HDR_LEN: usize = 10;
/// `VIRTIO_NET_HDR_F_NEEDS_CSUM`: the checksum at `csum_start +
/// csum_offset` holds only the pseudo-header sum; the rest is to be summed.
pub const VNET_F_NEEDS_CSUM: u8 = 1;
/// `VIRTIO_NET_HDR_F_DATA_VALID`: the checksums were verified.
pub const VNET_F_DATA_VALID: u8 = 2;
/// `VIRTIO_NET_HDR_GSO_NONE`.
pub const GSO_NONE: u8 = 0;
/// `VIRTIO_NET_HDR_GSO_TCPV4`.
pub const GSO_TCPV4: u8 = 1;
/// `VIRTIO_NET_HDR_GSO_ECN`: or-ed into `gso_type` when the first segment
/// carries CWR.
pub const GSO_ECN: u8 = 0x80;

pub(crate) const PROTO_TCP: u8 = 6;
pub(crate) const PROTO_UDP: u8 = 17;
pub(crate) const IPV4_MIN: usize = 20;
pub(crate) const TCP_MIN: usize = 20;
pub(crate) const TCP_FIN: u8 = 0x01;
pub(crate) const TCP_PSH: u8 = 0x08;
pub(crate) const TCP_ACK: u8 = 0x10;
pub(crate) const TCP_CWR: u8 = 0x80;
pub(crate) const MAX_DATAGRAM: usize = 65_535;

/// The `virtio_net_hdr` in front of each packet on a TUN device with
/// `IFF_VNET_HDR`, in host byte order (legacy virtio, as TUN uses unless
/// told otherwise).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VnetHdr {
    /// `VNET_F_*` flags.
    pub flags: u8,
    /// `GSO_*` type.
    pub gso_type: u8,
    /// Length of the headers (IP + TCP) of a GSO packet.
    pub hdr_len: u16,
    /// Segment payload size (the MSS) of a GSO packet.
    pub gso_size: u16,
    /// Where checksumming starts (NEEDS_CSUM).
    pub csum_start: u16,
    /// Offset of the checksum field from `csum_start` (NEEDS_CSUM).
    pub csum_offset: u16,
}

impl VnetHdr {
    /// Splits `bytes` into its vnet header and the packet after it.
    pub fn parse(bytes: &[u8]) -> Option<(VnetHdr, &[u8])> {
        let (h, rest) = bytes.split_at_checked(VNET_HDR_LEN)?;
        let ne16 = |at: usize| {
            h.get(at..at.saturating_add(2))
                .and_then(|s| <[u8; 2]>::try_from(s).ok())
                .map_or(0, u16::from_ne_bytes)
        };
        let hdr = VnetHdr {
            flags: h.first().copied().unwrap_or(0),
            gso_type: h.get(1).copied().unwrap_or(0),
            hdr_len: ne16(2),
            gso_size: ne16(4),
            csum_start: ne16(6),
            csum_offset: ne16(8),
        };
        Some((hdr, rest))
    }

    /// The 10 header bytes.
    pub fn to_bytes(&self) -> [u8; VNET_HDR_LEN] {
        let mut b = [0u8; VNET_HDR_LEN];
        let fields = [
            (2usize, self.hdr_len),
            (4, self.gso_size),
            (6, self.csum_start),
            (8, self.csum_offset),
        ];
        b[0] = self.flags;
        b[1] = self.gso_type;
        for (at, v) in fields {
            if let Some(s) = b.get_mut(at..at.saturating_add(2)) {
                s.copy_from_slice(&v.to_ne_bytes());
            }
        }
        b
    }

    /// Whether the packet behind it is a GSO super-packet.
    pub fn is_gso(&self) -> bool {
        self.gso_type != GSO_NONE
    }
}

/// Why a packet from the TUN device cannot be segmented or its checksum
/// completed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum OffloadError {
    /// The IPv4 or TCP header is cut short or malformed.
    #[error("truncated or malformed IPv4/TCP header")]
    Truncated,
    /// A GSO type other than TCPv4 (we only ask for TSO4).
    #[error("unsupported GSO type {0:#x}")]
    UnsupportedGso(u8),
    /// `csum_start`/`csum_offset` point past the packet.
    #[error("checksum offsets outside the packet")]
    BadChecksumRange,
    /// Longer than an IPv4 datagram can be.
    #[error("packet of {0} bytes is longer than an IPv4 datagram")]
    TooLong(usize),
    /// No payload fits in a segment of the allowed size.
    #[error("segment size leaves no room for payload")]
    NoRoom,
}

pub(crate) fn be16(b: &[u8], at: usize) -> u16 {
    b.get(at..at.saturating_add(2))
        .and_then(|s| <[u8; 2]>::try_from(s).ok())
        .map_or(0, u16::from_be_bytes)
}

pub(crate) fn be32(b: &[u8], at: usize) -> u32 {
    b.get(at..at.saturating_add(4))
        .and_then(|s| <[u8; 4]>::try_from(s).ok())
        .map_or(0, u32::from_be_bytes)
}

pub(crate) fn put16(b: &mut [u8], at: usize, v: u16) {
    if let Some(s) = b.get_mut(at..at.saturating_add(2)) {
        s.copy_from_slice(&v.to_be_bytes());
    }
}

pub(crate) fn put32(b: &mut [u8], at: usize, v: u32) {
    if let Some(s) = b.get_mut(at..at.saturating_add(4)) {
        s.copy_from_slice(&v.to_be_bytes());
    }
}

/// The IPv4 + TCP header lengths of a TCP/IPv4 packet, checked against its
/// length.
pub(crate) fn tcp_header_lens(packet: &[u8]) -> Result<(usize, usize), OffloadError> {
    let first = *packet.first().ok_or(OffloadError::Truncated)?;
    if first >> 4 != 4 {
        return Err(OffloadError::Truncated);
    }
    let ihl = usize::from(first & 0x0f).saturating_mul(4);
    if ihl < IPV4_MIN || packet.get(9) != Some(&PROTO_TCP) {
        return Err(OffloadError::Truncated);
    }
    let off = packet
        .get(ihl.saturating_add(12))
        .ok_or(OffloadError::Truncated)?;
    let thl = usize::from(off >> 4).saturating_mul(4);
    if thl < TCP_MIN || ihl.saturating_add(thl) > packet.len() {
        return Err(OffloadError::Truncated);
    }
    Ok((ihl, thl))
}

/// Whether `packet` is a TCP/IPv4 segment that carries data (not a bare
/// ACK, SYN or FIN).
pub fn carries_tcp_data(packet: &[u8]) -> bool {
    tcp_header_lens(packet).is_ok_and(|(ihl, thl)| packet.len() > ihl.saturating_add(thl))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vnet_header_round_trips_in_host_order() {
        let h = VnetHdr {
            flags: 1,
            gso_type: 1,
            hdr_len: 52,
            gso_size: 1428,
            csum_start: 20,
            csum_offset: 16,
        };
        let mut bytes = h.to_bytes().to_vec();
        bytes.extend_from_slice(b"pkt");
        assert_eq!(VnetHdr::parse(&bytes), Some((h, &b"pkt"[..])));
        assert_eq!(VnetHdr::parse(&bytes[..9]), None);
    }
}
