//! Classic libpcap capture files (what `tcpdump -w` writes; not pcapng),
//! and the link, IP and TCP headers of each packet in them.
//!
//! The file format is the one in pcap-savefile(5) and
//! draft-ietf-opsawg-pcap: a 24-byte file header whose magic number gives
//! the byte order and the time resolution, then records of a 16-byte
//! header and the captured bytes. Link types are tcpdump.org's
//! `LINKTYPE_*` numbers.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

/// Why a file cannot be read as a capture.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PcapError {
    /// A pcapng file, which this reader does not take.
    Pcapng,
    /// The file does not start with a pcap magic number.
    NotPcap(u32),
    /// A link type this reader does not take apart.
    LinkType(u32),
    /// The file ends inside a header or a record.
    Truncated {
        /// Where the cut header or record starts.
        offset: usize,
    },
}

impl fmt::Display for PcapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PcapError::Pcapng => write!(
                f,
                "a pcapng file: convert it with `editcap -F pcap IN OUT` or capture with `tcpdump -w`"
            ),
            PcapError::NotPcap(magic) => write!(f, "not a pcap file (magic {magic:#010x})"),
            PcapError::LinkType(t) => write!(
                f,
                "link type {t} is not supported (Ethernet, Linux cooked v1/v2 and raw IP are)"
            ),
            PcapError::Truncated { offset } => {
                write!(f, "the file ends inside the record at byte {offset}")
            }
        }
    }
}

impl std::error::Error for PcapError {}

/// How a record's bytes start (`LINKTYPE_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Link {
    /// `LINKTYPE_ETHERNET` (1), with or without 802.1Q / 802.1ad tags.
    Ethernet,
    /// `LINKTYPE_LINUX_SLL` (113): `tcpdump -i any` before libpcap 1.10.
    LinuxSll,
    /// `LINKTYPE_LINUX_SLL2` (276): `tcpdump -i any` since libpcap 1.10.
    LinuxSll2,
    /// `LINKTYPE_RAW` (101), `LINKTYPE_IPV4` (228), `LINKTYPE_IPV6` (229):
    /// the IP header first.
    RawIp,
}

/// A capture file's records, in file order.
#[derive(Debug)]
pub struct Capture<'a> {
    bytes: &'a [u8],
    offset: usize,
    big_endian: bool,
    nanoseconds: bool,
    link: Link,
}

/// One captured packet.
#[derive(Debug)]
pub struct Record<'a> {
    /// When it was captured, since the Unix epoch.
    pub time: Duration,
    /// The bytes captured (at most the snap length).
    pub data: &'a [u8],
}

const FILE_HEADER_LEN: usize = 24;
const RECORD_HEADER_LEN: usize = 16;

impl<'a> Capture<'a> {
    /// Reads the file header.
    pub fn parse(bytes: &'a [u8]) -> Result<Capture<'a>, PcapError> {
        let truncated = PcapError::Truncated { offset: 0 };
        let magic: [u8; 4] = bytes
            .get(..4)
            .and_then(|m| m.try_into().ok())
            .ok_or(truncated.clone())?;
        // 0xa1b2c3d4: microseconds, 0xa1b23c4d: nanoseconds, written in
        // the byte order of the machine that captured.
        let (big_endian, nanoseconds) = match magic {
            [0xd4, 0xc3, 0xb2, 0xa1] => (false, false),
            [0xa1, 0xb2, 0xc3, 0xd4] => (true, false),
            [0x4d, 0x3c, 0xb2, 0xa1] => (false, true),
            [0xa1, 0xb2, 0x3c, 0x4d] => (true, true),
            [0x0a, 0x0d, 0x0d, 0x0a] => return Err(PcapError::Pcapng),
            _ => return Err(PcapError::NotPcap(u32::from_be_bytes(magic))),
        };
        if bytes.len() < FILE_HEADER_LEN {
            return Err(truncated);
        }
        let mut capture = Capture {
            bytes,
            offset: FILE_HEADER_LEN,
            big_endian,
            nanoseconds,
            link: Link::RawIp,
        };
        // The low 16 bits are the link type; the top bits may carry the
        // FCS length, which no link type here uses.
        let link_type = capture.u32_at(20).unwrap_or_default() & 0xffff;
        capture.link = match link_type {
            1 => Link::Ethernet,
            113 => Link::LinuxSll,
            276 => Link::LinuxSll2,
            101 | 228 | 229 => Link::RawIp,
            other => return Err(PcapError::LinkType(other)),
        };
        Ok(capture)
    }

    /// The link type of every record.
    pub fn link(&self) -> Link {
        self.link
    }

    fn u32_at(&self, offset: usize) -> Option<u32> {
        let b: [u8; 4] = self.bytes.get(offset..offset + 4)?.try_into().ok()?;
        Some(if self.big_endian {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        })
    }
}

impl<'a> Iterator for Capture<'a> {
    type Item = Result<Record<'a>, PcapError>;

    fn next(&mut self) -> Option<Self::Item> {
        let start = self.offset;
        if start == self.bytes.len() {
            return None;
        }
        let truncated = Some(Err(PcapError::Truncated { offset: start }));
        let (Some(seconds), Some(fraction), Some(captured)) = (
            self.u32_at(start),
            self.u32_at(start + 4),
            self.u32_at(start + 8),
        ) else {
            self.offset = self.bytes.len();
            return truncated;
        };
        let data_start = start + RECORD_HEADER_LEN;
        let Some(data) = self.bytes.get(data_start..data_start + captured as usize) else {
            self.offset = self.bytes.len();
            return truncated;
        };
        self.offset = data_start + data.len();
        let fraction = if self.nanoseconds {
            Duration::from_nanos(u64::from(fraction))
        } else {
            Duration::from_micros(u64::from(fraction))
        };
        Some(Ok(Record {
            time: Duration::from_secs(u64::from(seconds)) + fraction,
            data,
        }))
    }
}

/// A TCP segment as captured.
#[derive(Debug, PartialEq, Eq)]
pub struct Segment<'a> {
    /// Source address and port.
    pub src: SocketAddr,
    /// Destination address and port.
    pub dst: SocketAddr,
    /// Sequence number.
    pub seq: u32,
    /// SYN set.
    pub syn: bool,
    /// ACK set.
    pub ack: bool,
    /// The payload bytes in the capture (fewer than on the wire when the
    /// snap length cut the packet short).
    pub payload: &'a [u8],
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86dd;
const ETHERTYPE_VLAN: [u16; 2] = [0x8100, 0x88a8];
const PROTO_TCP: u8 = 6;

impl Link {
    /// The TCP segment in `frame`, or `None` for anything else: other
    /// protocols, IPv4 fragments, IPv6 with extension headers before TCP,
    /// and headers the capture cut.
    pub fn tcp(self, frame: &[u8]) -> Option<Segment<'_>> {
        let (ethertype, ip) = match self {
            Link::Ethernet => {
                let mut at = 12;
                let mut ethertype = be16(frame, at)?;
                while ETHERTYPE_VLAN.contains(&ethertype) {
                    at += 4;
                    ethertype = be16(frame, at)?;
                }
                (Some(ethertype), frame.get(at + 2..)?)
            }
            // Packet type, address type and length, address, protocol.
            Link::LinuxSll => (Some(be16(frame, 14)?), frame.get(16..)?),
            // Protocol first, then reserved, interface, and the rest.
            Link::LinuxSll2 => (Some(be16(frame, 0)?), frame.get(20..)?),
            Link::RawIp => (None, frame),
        };
        match (ethertype, ip.first()? >> 4) {
            (Some(ETHERTYPE_IPV4) | None, 4) => ipv4(ip),
            (Some(ETHERTYPE_IPV6) | None, 6) => ipv6(ip),
            _ => None,
        }
    }
}

fn ipv4(ip: &[u8]) -> Option<Segment<'_>> {
    let header_len = usize::from(ip.first()? & 0x0f) * 4;
    let total_len = usize::from(be16(ip, 2)?);
    let more_fragments_or_offset = be16(ip, 6)? & 0x3fff;
    if ip.get(9) != Some(&PROTO_TCP) || more_fragments_or_offset != 0 || total_len < header_len {
        return None;
    }
    let src = Ipv4Addr::from(be32(ip, 12)?);
    let dst = Ipv4Addr::from(be32(ip, 16)?);
    // The total length, not the frame, says where the datagram ends:
    // Ethernet pads short frames.
    let end = total_len.min(ip.len());
    tcp(src.into(), dst.into(), ip.get(header_len..end)?)
}

fn ipv6(ip: &[u8]) -> Option<Segment<'_>> {
    let payload_len = usize::from(be16(ip, 4)?);
    if ip.get(6) != Some(&PROTO_TCP) {
        return None;
    }
    let src: [u8; 16] = ip.get(8..24)?.try_into().ok()?;
    let dst: [u8; 16] = ip.get(24..40)?.try_into().ok()?;
    let end = (40 + payload_len).min(ip.len());
    tcp(
        Ipv6Addr::from(src).into(),
        Ipv6Addr::from(dst).into(),
        ip.get(40..end)?,
    )
}

fn tcp(src: IpAddr, dst: IpAddr, tcp: &[u8]) -> Option<Segment<'_>> {
    let header_len = usize::from(tcp.get(12)? >> 4) * 4;
    let flags = *tcp.get(13)?;
    Some(Segment {
        src: SocketAddr::new(src, be16(tcp, 0)?),
        dst: SocketAddr::new(dst, be16(tcp, 2)?),
        seq: be32(tcp, 4)?,
        syn: flags & 0x02 != 0,
        ack: flags & 0x10 != 0,
        payload: tcp.get(header_len..)?,
    })
}
