//! TUN offloads on byte buffers: the `virtio_net_hdr` a TUN device opened
//! with `IFF_VNET_HDR` puts in front of every packet, TCP segmentation of
//! the super-packets the kernel hands out once `TUNSETOFFLOAD` allows TSO
//! (what a NIC does with TSO), completion of partial checksums, and the
//! reverse on the way in: coalescing consecutive TCP segments of one flow
//! into one super-packet (what Linux GRO and wireguard-go's `tcpGRO` do).
//!
//! Pure functions over byte slices, no I/O; no input can make them panic
//! (the `offload` fuzz target checks that, and what comes out).

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

use std::ops::Range;

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

const PROTO_TCP: u8 = 6;
const PROTO_UDP: u8 = 17;
const IPV4_MIN: usize = 20;
const TCP_MIN: usize = 20;
const TCP_FIN: u8 = 0x01;
const TCP_PSH: u8 = 0x08;
const TCP_ACK: u8 = 0x10;
const TCP_CWR: u8 = 0x80;
const MAX_DATAGRAM: usize = 65_535;
/// Open flows a coalescing pass keeps looking at (like GRO's per-queue
/// flow list, bounded).
const OPEN_FLOWS: usize = 8;

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

fn be16(b: &[u8], at: usize) -> u16 {
    b.get(at..at.saturating_add(2))
        .and_then(|s| <[u8; 2]>::try_from(s).ok())
        .map_or(0, u16::from_be_bytes)
}

fn be32(b: &[u8], at: usize) -> u32 {
    b.get(at..at.saturating_add(4))
        .and_then(|s| <[u8; 4]>::try_from(s).ok())
        .map_or(0, u32::from_be_bytes)
}

fn put16(b: &mut [u8], at: usize, v: u16) {
    if let Some(s) = b.get_mut(at..at.saturating_add(2)) {
        s.copy_from_slice(&v.to_be_bytes());
    }
}

fn put32(b: &mut [u8], at: usize, v: u32) {
    if let Some(s) = b.get_mut(at..at.saturating_add(4)) {
        s.copy_from_slice(&v.to_be_bytes());
    }
}

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
fn pseudo(ip: &[u8], proto: u8, len: usize) -> u64 {
    let addrs = ip.get(12..20).unwrap_or_default();
    let len = u64::try_from(len).unwrap_or(0);
    sum(addrs, u64::from(proto).wrapping_add(len))
}

/// IPv4 header checksum, recomputed in place over `ihl` bytes.
fn fix_ip_checksum(ip: &mut [u8], ihl: usize) {
    put16(ip, 10, 0);
    let c = !fold(sum(ip.get(..ihl).unwrap_or_default(), 0));
    put16(ip, 10, c);
}

/// The IPv4 + TCP header lengths of a TCP/IPv4 packet, checked against its
/// length.
fn tcp_header_lens(packet: &[u8]) -> Result<(usize, usize), OffloadError> {
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

/// Cuts a TCP/IPv4 packet longer than `max_len` that the receiving kernel
/// merged (or reassembled; see [`coalesce`]) into segments of at most
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
fn oversized(p: &[u8], max_len: usize) -> Option<usize> {
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
fn write_cut(p: &[u8], gso_size: usize, out: &mut Vec<u8>) {
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
pub(crate) mod tests {
    use super::*;
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

    fn tcp_valid(p: &[u8]) -> bool {
        checksum(&p[..20]) == 0 && fold(sum(&p[20..], pseudo(p, 6, p.len() - 20))) == 0xffff
    }

    fn payload(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 7 + 3) as u8).collect()
    }

    /// What the kernel hands out for a TSO super-packet: the pseudo-header
    /// sum in the checksum field.
    fn super_packet(data: &[u8], flags: u8) -> (Vec<u8>, VnetHdr) {
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

    /// A TCP packet carrying `data` as the kernel's GRO leaves it after
    /// merging segments: the checksum field holds the pseudo-header sum
    /// (what `tcp4_gro_complete` writes there).
    fn gro_merged(data: &[u8]) -> Vec<u8> {
        let mut merged = tcp(1000, TCP_ACK | TCP_PSH, data);
        let partial = fold(pseudo(&merged, 6, merged.len() - 20));
        merged[36..38].copy_from_slice(&partial.to_be_bytes());
        merged
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
