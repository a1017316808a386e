//! ICMP echo sent by the agent itself from inside a network namespace, so
//! `route-agent demo`'s ping matrix needs no `ping` binary (Debian's base
//! images have none).
//!
//! A thread joins the namespace (`setns(2)` changes only the calling
//! thread's), opens a raw ICMP socket there and sends one echo request
//! (RFC 792); the reply is matched by source address, identifier and
//! sequence number, so concurrent echoes and other ICMP traffic in the
//! namespace do not confuse it.

use std::io::{self, Read};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};

/// Why an echo could not be sent (a missing reply is not an error: it is
/// `Ok(false)`).
#[derive(Debug, thiserror::Error)]
pub enum EchoError {
    /// The namespace's file under `/run/netns` could not be opened or
    /// joined.
    #[error("cannot enter network namespace {ns}: {source}")]
    Namespace {
        /// The namespace name.
        ns: String,
        /// The OS error.
        source: io::Error,
    },
    /// The raw ICMP socket (needs CAP_NET_RAW) could not be opened or set
    /// up.
    #[error("cannot open an ICMP socket in {ns}: {source}")]
    Socket {
        /// The namespace name.
        ns: String,
        /// The OS error.
        source: io::Error,
    },
    /// The echo request could not be sent (other than "no route", which
    /// counts as no reply).
    #[error("cannot send an ICMP echo to {dst} from {ns}: {source}")]
    Send {
        /// The namespace name.
        ns: String,
        /// The destination.
        dst: Ipv4Addr,
        /// The OS error.
        source: io::Error,
    },
    /// The thread that joins the namespace panicked or could not start.
    #[error("the echo thread for {ns} failed")]
    Thread {
        /// The namespace name.
        ns: String,
    },
}

/// ICMP message types (RFC 792).
const ECHO_REQUEST: u8 = 8;
const ECHO_REPLY: u8 = 0;
/// The payload length `ping` uses by default.
const PAYLOAD: usize = 56;

/// Identifiers of this process's echoes: one per request, so two echoes in
/// flight at once never take each other's reply.
static NEXT_ID: AtomicU16 = AtomicU16::new(1);

/// Sends one ICMP echo request to `dst` from network namespace `ns` and
/// waits up to `timeout` for its reply: `Ok(true)` when it came.
pub fn echo(ns: &str, dst: Ipv4Addr, timeout: Duration) -> Result<bool, EchoError> {
    let ns_owned = ns.to_owned();
    std::thread::scope(|s| {
        s.spawn(move || echo_in_thread(&ns_owned, dst, timeout))
            .join()
            .unwrap_or_else(|_| Err(EchoError::Thread { ns: ns.to_owned() }))
    })
}

fn echo_in_thread(ns: &str, dst: Ipv4Addr, timeout: Duration) -> Result<bool, EchoError> {
    super::sys::enter_netns(ns).map_err(|source| EchoError::Namespace {
        ns: ns.to_owned(),
        source,
    })?;
    let socket_error = |source| EchoError::Socket {
        ns: ns.to_owned(),
        source,
    };
    // A raw socket (CAP_NET_RAW, which the demo has as root): an
    // unprivileged ICMP datagram socket would need ping_group_range set in
    // every pod namespace.
    let socket =
        Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::ICMPV4)).map_err(socket_error)?;

    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed) ^ (std::process::id() as u16);
    let request = echo_request(id, 1);
    if let Err(err) = socket.send_to(&request, &SocketAddr::from((dst, 0)).into()) {
        // No route, or the neighbour is unreachable: the echo got no reply.
        return match err.raw_os_error() {
            Some(libc::ENETUNREACH | libc::EHOSTUNREACH | libc::EHOSTDOWN) => Ok(false),
            _ => Err(EchoError::Send {
                ns: ns.to_owned(),
                dst,
                source: err,
            }),
        };
    }

    let deadline = Instant::now() + timeout;
    let mut buf = [0u8; 1500];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(false);
        }
        // A zero timeout would mean "block forever".
        socket
            .set_read_timeout(Some(left.max(Duration::from_micros(1))))
            .map_err(socket_error)?;
        match (&socket).read(&mut buf) {
            Ok(n) => {
                if is_reply(buf.get(..n).unwrap_or_default(), dst, id, 1) {
                    return Ok(true);
                }
            }
            Err(err) => match err.kind() {
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => return Ok(false),
                io::ErrorKind::Interrupted => {}
                _ => return Err(socket_error(err)),
            },
        }
    }
}

/// An ICMP echo request (RFC 792): type 8, code 0, checksum, identifier,
/// sequence number, and `PAYLOAD` bytes of pattern as `ping` sends.
fn echo_request(id: u16, seq: u16) -> Vec<u8> {
    let mut m = Vec::with_capacity(8 + PAYLOAD);
    m.extend_from_slice(&[ECHO_REQUEST, 0, 0, 0]);
    m.extend_from_slice(&id.to_be_bytes());
    m.extend_from_slice(&seq.to_be_bytes());
    m.extend((0..PAYLOAD).map(|i| i as u8));
    let sum = checksum(&m);
    m[2..4].copy_from_slice(&sum.to_be_bytes());
    m
}

/// The Internet checksum (RFC 1071).
fn checksum(bytes: &[u8]) -> u16 {
    let mut sum: u32 = bytes
        .chunks(2)
        .map(|c| {
            let byte = |i: usize| c.get(i).copied().unwrap_or(0);
            u32::from(u16::from_be_bytes([byte(0), byte(1)]))
        })
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Whether `packet` (an IPv4 packet as a raw socket receives it, header
/// included) is the echo reply from `from` to request `id`/`seq`. Bytes
/// from the network: every read is checked.
fn is_reply(packet: &[u8], from: Ipv4Addr, id: u16, seq: u16) -> bool {
    let Some(&first) = packet.first() else {
        return false;
    };
    let header = usize::from(first & 0x0f) * 4;
    let (Some(protocol), Some(src)) = (packet.get(9), packet.get(12..16)) else {
        return false;
    };
    let Some(icmp) = packet.get(header..) else {
        return false;
    };
    let (Some(&kind), Some(got_id), Some(got_seq)) = (icmp.first(), icmp.get(4..6), icmp.get(6..8))
    else {
        return false;
    };
    first >> 4 == 4
        && header >= 20
        && *protocol == 1
        && src == from.octets()
        && kind == ECHO_REPLY
        && got_id == id.to_be_bytes()
        && got_seq == seq.to_be_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_echo_request_carries_a_checksum_that_verifies() {
        let m = echo_request(0x1234, 1);
        assert_eq!(m.len(), 64, "8-byte header and ping's 56-byte payload");
        assert_eq!(&m[..2], &[ECHO_REQUEST, 0]);
        assert_eq!(&m[4..8], &[0x12, 0x34, 0, 1]);
        // RFC 1071: the sum over a message with its checksum is all ones.
        assert_eq!(checksum(&m), 0);
    }

    /// A reply as Linux sends it: 20-byte IPv4 header, then ICMP.
    fn reply(src: [u8; 4], kind: u8, id: u16, seq: u16) -> Vec<u8> {
        let mut p = vec![0x45, 0, 0, 84, 0, 0, 0x40, 0, 64, 1, 0, 0];
        p.extend_from_slice(&src);
        p.extend_from_slice(&[10, 244, 1, 2]);
        p.extend_from_slice(&[kind, 0, 0, 0]);
        p.extend_from_slice(&id.to_be_bytes());
        p.extend_from_slice(&seq.to_be_bytes());
        p
    }

    #[test]
    fn only_the_reply_to_our_request_from_the_destination_counts() {
        let dst = Ipv4Addr::new(10, 244, 2, 2);
        assert!(is_reply(
            &reply([10, 244, 2, 2], ECHO_REPLY, 7, 1),
            dst,
            7,
            1
        ));
        assert!(
            !is_reply(&reply([10, 244, 3, 2], ECHO_REPLY, 7, 1), dst, 7, 1),
            "another source"
        );
        assert!(
            !is_reply(&reply([10, 244, 2, 2], ECHO_REPLY, 8, 1), dst, 7, 1),
            "another id"
        );
        assert!(
            !is_reply(&reply([10, 244, 2, 2], ECHO_REPLY, 7, 2), dst, 7, 1),
            "another seq"
        );
        assert!(
            !is_reply(&reply([10, 244, 2, 2], ECHO_REQUEST, 7, 1), dst, 7, 1),
            "our own request"
        );
    }

    #[test]
    fn truncated_or_odd_packets_are_not_replies() {
        let dst = Ipv4Addr::new(10, 244, 2, 2);
        let full = reply([10, 244, 2, 2], ECHO_REPLY, 7, 1);
        for n in 0..full.len() {
            assert!(!is_reply(&full[..n], dst, 7, 1), "{n} bytes");
        }
        let mut long_header = full.clone();
        long_header[0] = 0x4f; // IHL 15: the ICMP part would start past the end
        assert!(!is_reply(&long_header, dst, 7, 1));
        let mut v6 = full;
        v6[0] = 0x65;
        assert!(!is_reply(&v6, dst, 7, 1));
    }
}
