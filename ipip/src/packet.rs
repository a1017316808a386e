//! RFC 2003 IPv4-in-IPv4 on byte buffers.
//!
//! [`Ipv4Header`] is a checked view over an IPv4 header; [`encapsulate`]
//! wraps an inner datagram in an outer header (or answers with the ICMP
//! message RFC 2003 §4-§5 requires instead); [`decapsulate`] validates an
//! outer packet and returns the inner datagram.

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

use std::net::Ipv4Addr;

/// IP protocol number of IP-in-IP (RFC 2003 §3).
pub const PROTO_IPIP: u8 = 4;
/// IP protocol number of ICMP.
pub const PROTO_ICMP: u8 = 1;
/// Length of an IPv4 header without options: the outer header we add.
pub const OUTER_HEADER_LEN: usize = 20;
/// Default TTL of the outer header (RFC 2003 §3.1 leaves it to the
/// encapsulator; Linux uses the route's TTL, 64 by default).
pub const DEFAULT_OUTER_TTL: u8 = 64;

const DF: u16 = 0x4000;
const MF: u16 = 0x2000;
const OFFSET_MASK: u16 = 0x1fff;

/// Why a buffer is not a usable IPv4 datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PacketError {
    /// Shorter than an IPv4 header.
    #[error("truncated IPv4 header")]
    Truncated,
    /// The version field is not 4.
    #[error("not IPv4 (version {0})")]
    NotIpv4(u8),
    /// IHL below 5 or past the buffer.
    #[error("bad header length {0}")]
    BadHeaderLength(usize),
    /// Total length below the header length or past the buffer.
    #[error("bad total length {0}")]
    BadTotalLength(usize),
    /// The header checksum does not verify.
    #[error("bad header checksum")]
    BadChecksum,
    /// The outer protocol is not 4.
    #[error("outer protocol {0} is not IP-in-IP")]
    NotIpip(u8),
    /// The outer datagram is a fragment (the kernel reassembles before a raw
    /// socket sees it, so this is unexpected input).
    #[error("outer datagram is a fragment")]
    Fragment,
}

/// The Internet checksum (RFC 1071) of `bytes`.
pub fn checksum(bytes: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    let mut chunks = bytes.chunks_exact(2);
    for c in &mut chunks {
        let word = <[u8; 2]>::try_from(c).map_or(0, u16::from_be_bytes);
        sum = sum.wrapping_add(u32::from(word));
    }
    if let [last] = chunks.remainder() {
        sum = sum.wrapping_add(u32::from(*last) << 8);
    }
    while sum > 0xffff {
        sum = (sum & 0xffff).wrapping_add(sum >> 16);
    }
    !(u16::try_from(sum).unwrap_or(0xffff))
}

/// A checked view over an IPv4 header: version 4, IHL within the buffer,
/// total length within the buffer, checksum valid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv4Header<'a> {
    bytes: &'a [u8],
    header_len: usize,
    total_len: usize,
}

fn be16(b: &[u8], at: usize) -> u16 {
    match (b.get(at), b.get(at.wrapping_add(1))) {
        (Some(&h), Some(&l)) => u16::from_be_bytes([h, l]),
        _ => 0,
    }
}

fn addr(b: &[u8], at: usize) -> Ipv4Addr {
    b.get(at..at.saturating_add(4))
        .and_then(|s| <[u8; 4]>::try_from(s).ok())
        .map_or(Ipv4Addr::UNSPECIFIED, Ipv4Addr::from)
}

impl<'a> Ipv4Header<'a> {
    /// Checks the header at the start of `bytes`.
    pub fn parse(bytes: &'a [u8]) -> Result<Ipv4Header<'a>, PacketError> {
        let first = *bytes.first().ok_or(PacketError::Truncated)?;
        if bytes.len() < OUTER_HEADER_LEN {
            return Err(PacketError::Truncated);
        }
        let version = first >> 4;
        if version != 4 {
            return Err(PacketError::NotIpv4(version));
        }
        let header_len = usize::from(first & 0x0f).saturating_mul(4);
        if header_len < OUTER_HEADER_LEN || header_len > bytes.len() {
            return Err(PacketError::BadHeaderLength(header_len));
        }
        let total_len = usize::from(be16(bytes, 2));
        if total_len < header_len || total_len > bytes.len() {
            return Err(PacketError::BadTotalLength(total_len));
        }
        let header = bytes.get(..header_len).ok_or(PacketError::Truncated)?;
        if checksum(header) != 0 {
            return Err(PacketError::BadChecksum);
        }
        Ok(Ipv4Header {
            bytes,
            header_len,
            total_len,
        })
    }

    /// Header length in bytes.
    pub fn header_len(&self) -> usize {
        self.header_len
    }
    /// Total length of the datagram.
    pub fn total_len(&self) -> usize {
        self.total_len
    }
    /// Type of service / DSCP+ECN byte.
    pub fn tos(&self) -> u8 {
        self.bytes.get(1).copied().unwrap_or(0)
    }
    /// Identification.
    pub fn id(&self) -> u16 {
        be16(self.bytes, 4)
    }
    /// The Don't Fragment flag.
    pub fn dont_fragment(&self) -> bool {
        be16(self.bytes, 6) & DF != 0
    }
    /// Whether this is a fragment (MF set or a non-zero offset).
    pub fn is_fragment(&self) -> bool {
        be16(self.bytes, 6) & (MF | OFFSET_MASK) != 0
    }
    /// Time to live.
    pub fn ttl(&self) -> u8 {
        self.bytes.get(8).copied().unwrap_or(0)
    }
    /// Protocol.
    pub fn protocol(&self) -> u8 {
        self.bytes.get(9).copied().unwrap_or(0)
    }
    /// Source address.
    pub fn src(&self) -> Ipv4Addr {
        addr(self.bytes, 12)
    }
    /// Destination address.
    pub fn dst(&self) -> Ipv4Addr {
        addr(self.bytes, 16)
    }
    /// The whole datagram (header and payload, without trailing padding).
    pub fn datagram(&self) -> &'a [u8] {
        self.bytes.get(..self.total_len).unwrap_or_default()
    }
    /// The payload.
    pub fn payload(&self) -> &'a [u8] {
        self.bytes
            .get(self.header_len..self.total_len)
            .unwrap_or_default()
    }
}

/// Writes a 20-byte IPv4 header into `out` with a valid checksum.
#[allow(clippy::too_many_arguments)]
fn write_header(
    out: &mut Vec<u8>,
    tos: u8,
    total_len: u16,
    id: u16,
    flags_offset: u16,
    ttl: u8,
    protocol: u8,
    src: Ipv4Addr,
    dst: Ipv4Addr,
) {
    let start = out.len();
    out.push(0x45);
    out.push(tos);
    out.extend_from_slice(&total_len.to_be_bytes());
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&flags_offset.to_be_bytes());
    out.push(ttl);
    out.push(protocol);
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(&src.octets());
    out.extend_from_slice(&dst.octets());
    let sum = checksum(out.get(start..).unwrap_or_default());
    if let Some(slot) = out.get_mut(start.saturating_add(10)..start.saturating_add(12)) {
        slot.copy_from_slice(&sum.to_be_bytes());
    }
}

/// The tunnel endpoint's side of one encapsulation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tunnel {
    /// Outer source: this node's address.
    pub local: Ipv4Addr,
    /// MTU of the path to the remote endpoint (the underlay MTU): the
    /// largest outer datagram sent unfragmented.
    pub mtu: u16,
    /// Outer TTL.
    pub ttl: u8,
    /// Decrement the inner TTL: set when the encapsulator forwards the
    /// datagram itself (RFC 2003 §3.1). A TUN device fed by kernel routing
    /// receives datagrams whose TTL the kernel already decremented.
    pub forwarding: bool,
}

/// What [`encapsulate`] put in its output buffer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Encapsulated {
    /// One outer datagram to send to the remote endpoint.
    Packet,
    /// Outer fragments to send, each the given range of the buffer: the
    /// inner datagram did not fit the MTU and had DF clear (RFC 2003 §5.1).
    Fragments(Vec<std::ops::Range<usize>>),
    /// An ICMP Destination Unreachable / Fragmentation Needed for the inner
    /// source, carrying the tunnel MTU (RFC 2003 §5.1, RFC 1191): deliver
    /// it back towards the sender instead.
    FragmentationNeeded,
    /// An ICMP Time Exceeded for the inner source: the inner TTL ran out
    /// (RFC 2003 §3.1).
    TimeExceeded,
}

/// The ICMP reply to `inner` with `icmp_type`/`code` and the 4 bytes after
/// the checksum (`rest`), quoting the inner header and 8 payload bytes
/// (RFC 792), from `from`.
fn icmp_reply(
    out: &mut Vec<u8>,
    inner: &Ipv4Header<'_>,
    from: Ipv4Addr,
    icmp_type: u8,
    code: u8,
    rest: [u8; 4],
) {
    let quote_len = inner.header_len().saturating_add(8).min(inner.total_len());
    let quote = inner.datagram().get(..quote_len).unwrap_or_default();
    let icmp_len = 8usize.saturating_add(quote.len());
    let total = u16::try_from(OUTER_HEADER_LEN.saturating_add(icmp_len)).unwrap_or(u16::MAX);
    write_header(
        out,
        0xc0,
        total,
        0,
        DF,
        DEFAULT_OUTER_TTL,
        PROTO_ICMP,
        from,
        inner.src(),
    );
    let start = out.len();
    out.push(icmp_type);
    out.push(code);
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(&rest);
    out.extend_from_slice(quote);
    let sum = checksum(out.get(start..).unwrap_or_default());
    if let Some(slot) = out.get_mut(start.saturating_add(2)..start.saturating_add(4)) {
        slot.copy_from_slice(&sum.to_be_bytes());
    }
}

/// Encapsulates the inner datagram `inner` for the endpoint `remote`,
/// appending to `out` (cleared first). `id` is the outer identification.
///
/// ```
/// use ipip::packet::{decapsulate, encapsulate, Encapsulated, Tunnel};
/// # fn ipv4(src: [u8; 4], dst: [u8; 4], payload: &[u8]) -> Vec<u8> {
/// #     let mut p = vec![0x45, 0, 0, 0, 0, 1, 0x40, 0, 64, 17, 0, 0];
/// #     p.extend_from_slice(&src); p.extend_from_slice(&dst); p.extend_from_slice(payload);
/// #     let len = (p.len() as u16).to_be_bytes(); p[2] = len[0]; p[3] = len[1];
/// #     let sum = ipip::packet::checksum(&p[..20]).to_be_bytes(); p[10] = sum[0]; p[11] = sum[1];
/// #     p
/// # }
/// let inner = ipv4([10, 244, 1, 5], [10, 244, 2, 7], b"hello");
/// let tunnel = Tunnel { local: "192.0.2.1".parse().unwrap(), mtu: 1500, ttl: 64, forwarding: false };
/// let mut out = Vec::new();
/// let r = encapsulate(&inner, "198.51.100.2".parse().unwrap(), &tunnel, 7, &mut out).unwrap();
/// assert_eq!(r, Encapsulated::Packet);
/// let d = decapsulate(&out).unwrap();
/// assert_eq!(d.inner, &inner[..]);
/// assert_eq!(d.outer_src.to_string(), "192.0.2.1");
/// ```
pub fn encapsulate(
    inner: &[u8],
    remote: Ipv4Addr,
    tunnel: &Tunnel,
    id: u16,
    out: &mut Vec<u8>,
) -> Result<Encapsulated, PacketError> {
    out.clear();
    let header = Ipv4Header::parse(inner)?;
    let datagram = header.datagram();
    if tunnel.forwarding && header.ttl() <= 1 {
        icmp_reply(out, &header, tunnel.local, 11, 0, [0; 4]);
        return Ok(Encapsulated::TimeExceeded);
    }
    let mtu = usize::from(tunnel.mtu).max(68);
    let outer_len = datagram.len().saturating_add(OUTER_HEADER_LEN);
    // RFC 2003 §3.1: DF is copied from the inner header.
    let df = header.dont_fragment();
    if outer_len > mtu && df {
        // RFC 2003 §5.1 / RFC 1191: tell the sender the MTU inside the
        // tunnel.
        let inner_mtu = u16::try_from(mtu.saturating_sub(OUTER_HEADER_LEN)).unwrap_or(u16::MAX);
        let mut rest = [0u8; 4];
        rest[2..].copy_from_slice(&inner_mtu.to_be_bytes());
        icmp_reply(out, &header, tunnel.local, 3, 4, rest);
        return Ok(Encapsulated::FragmentationNeeded);
    }
    let mut ttl_fixed = None;
    if tunnel.forwarding {
        // Rewrite the inner TTL and checksum in a copy.
        let mut copy = datagram.to_vec();
        if let Some(t) = copy.get_mut(8) {
            *t = t.saturating_sub(1);
        }
        if let Some(c) = copy.get_mut(10..12) {
            c.copy_from_slice(&[0, 0]);
        }
        let sum = checksum(copy.get(..header.header_len()).unwrap_or_default());
        if let Some(c) = copy.get_mut(10..12) {
            c.copy_from_slice(&sum.to_be_bytes());
        }
        ttl_fixed = Some(copy);
    }
    let payload: &[u8] = ttl_fixed.as_deref().unwrap_or(datagram);
    let tos = header.tos();
    if outer_len <= mtu {
        let total = u16::try_from(outer_len).map_err(|_| PacketError::BadTotalLength(outer_len))?;
        write_header(
            out,
            tos,
            total,
            id,
            if df { DF } else { 0 },
            tunnel.ttl,
            PROTO_IPIP,
            tunnel.local,
            remote,
        );
        out.extend_from_slice(payload);
        return Ok(Encapsulated::Packet);
    }
    // DF clear and too big: fragment the outer datagram (RFC 2003 §5.1,
    // RFC 791); the remote endpoint reassembles before decapsulating.
    let max_data = mtu.saturating_sub(OUTER_HEADER_LEN) & !7;
    let mut ranges = Vec::new();
    let mut offset = 0usize;
    for chunk in payload.chunks(max_data.max(8)) {
        let start = out.len();
        let last = offset.saturating_add(chunk.len()) >= payload.len();
        let frag = u16::try_from(offset / 8).unwrap_or(0) & OFFSET_MASK;
        let flags = if last { frag } else { frag | MF };
        let total = u16::try_from(chunk.len().saturating_add(OUTER_HEADER_LEN)).unwrap_or(u16::MAX);
        write_header(
            out,
            tos,
            total,
            id,
            flags,
            tunnel.ttl,
            PROTO_IPIP,
            tunnel.local,
            remote,
        );
        out.extend_from_slice(chunk);
        ranges.push(start..out.len());
        offset = offset.saturating_add(chunk.len());
    }
    Ok(Encapsulated::Fragments(ranges))
}

/// Encapsulates in place: `buf` holds [`OUTER_HEADER_LEN`] bytes of room
/// followed by exactly one inner datagram; the outer header for `remote`
/// is written into the room. For datagrams known to fit the tunnel (the
/// segments of a GSO super-packet, cut to the tunnel MTU): one that does
/// not fit, or does not validate, is an error and `buf` is left alone
/// (use [`encapsulate`] for those, which also answers "too big").
pub fn encapsulate_in_place(
    buf: &mut [u8],
    remote: Ipv4Addr,
    tunnel: &Tunnel,
    id: u16,
) -> Result<(), PacketError> {
    let inner = buf.get(OUTER_HEADER_LEN..).ok_or(PacketError::Truncated)?;
    let header = Ipv4Header::parse(inner)?;
    if header.total_len() != inner.len() {
        return Err(PacketError::BadTotalLength(header.total_len()));
    }
    if tunnel.forwarding || buf.len() > usize::from(tunnel.mtu).max(68) {
        return Err(PacketError::BadTotalLength(buf.len()));
    }
    let total = u16::try_from(buf.len()).map_err(|_| PacketError::BadTotalLength(buf.len()))?;
    let df = if header.dont_fragment() { DF } else { 0 };
    let mut out = Vec::with_capacity(OUTER_HEADER_LEN);
    write_header(
        &mut out,
        header.tos(),
        total,
        id,
        df,
        tunnel.ttl,
        PROTO_IPIP,
        tunnel.local,
        remote,
    );
    if let Some(room) = buf.get_mut(..OUTER_HEADER_LEN) {
        room.copy_from_slice(&out);
    }
    Ok(())
}

/// A decapsulated datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decapsulated<'a> {
    /// The outer source: the remote tunnel endpoint.
    pub outer_src: Ipv4Addr,
    /// The outer destination: this node.
    pub outer_dst: Ipv4Addr,
    /// The inner datagram, validated (version, header length, total length
    /// within the outer payload, checksum).
    pub inner: &'a [u8],
}

/// Validates an outer IP-in-IP datagram and returns the inner one
/// (RFC 2003 §3). The inner TTL is left alone: the kernel decrements it
/// when it forwards the datagram on.
pub fn decapsulate(outer: &[u8]) -> Result<Decapsulated<'_>, PacketError> {
    let header = Ipv4Header::parse(outer)?;
    if header.protocol() != PROTO_IPIP {
        return Err(PacketError::NotIpip(header.protocol()));
    }
    if header.is_fragment() {
        return Err(PacketError::Fragment);
    }
    let inner = Ipv4Header::parse(header.payload())?;
    Ok(Decapsulated {
        outer_src: header.src(),
        outer_dst: header.dst(),
        inner: inner.datagram(),
    })
}
