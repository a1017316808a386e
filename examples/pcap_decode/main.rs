//! Decodes the BGP messages in a packet capture, one line per message.
//!
//! ```sh
//! cargo run -p podroute-examples --example pcap_decode -- examples/data/bgp-session.pcap
//! # your own: capture with tcpdump (pcap), not tshark's default pcapng
//! tcpdump -i eth0 -w bgp.pcap tcp port 179
//! cargo run -p podroute-examples --example pcap_decode -- bgp.pcap [--port PORT]
//! ```
//!
//! It reads classic pcap files ([`pcap`]: Ethernet with or without VLAN
//! tags, Linux cooked v1 and v2 as `tcpdump -i any` writes, raw IP), puts
//! each direction of each TCP connection on the BGP port back in order
//! ([`reassembly`], which says what it does not handle), cuts the bytes
//! into messages with `bgp_core::wire::Framer`, and decodes each with
//! `Message::decode` under what the connection's two OPENs negotiated
//! (4-octet AS numbers, ADD-PATH per direction, extended messages):
//!
//! ```text
//! SECONDS      SOURCE > DESTINATION  TYPE  DETAILS
//! ```

mod pcap;
mod reassembly;

use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::Duration;

use bgp_core::wire::{
    AddPath, AttrValue, Capability, DecodeContext, Family, Framer, Message, MpReach, NextHop, Open,
    PeerKind, Update,
};

use pcap::{Capture, PcapError};
use reassembly::Stream;

/// What one line says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// OPEN.
    Open,
    /// UPDATE.
    Update,
    /// NOTIFICATION.
    Notification,
    /// KEEPALIVE.
    Keepalive,
    /// ROUTE-REFRESH.
    RouteRefresh,
    /// A message that did not decode: the session would be reset.
    DecodeError,
    /// Bytes that are not BGP framing (a bad marker or length).
    FramingError,
    /// Bytes missing from the capture: the rest of that direction is not
    /// decoded.
    Gap,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Open => "OPEN",
            Kind::Update => "UPDATE",
            Kind::Notification => "NOTIFICATION",
            Kind::Keepalive => "KEEPALIVE",
            Kind::RouteRefresh => "ROUTE-REFRESH",
            Kind::DecodeError => "DECODE-ERROR",
            Kind::FramingError => "FRAMING-ERROR",
            Kind::Gap => "GAP",
        }
    }
}

/// One message (or problem) in a capture.
#[derive(Debug)]
pub struct Line {
    /// Since the capture's first packet: when the message's last byte
    /// was captured.
    pub time: Duration,
    /// Sender.
    pub src: SocketAddr,
    /// Receiver.
    pub dst: SocketAddr,
    /// What it is.
    pub kind: Kind,
    /// The details.
    pub text: String,
}

impl std::fmt::Display for Line {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let t = self.time.as_secs_f64();
        let (src, dst, kind) = (self.src, self.dst, self.kind.name());
        write!(f, "{t:10.6} {src} > {dst} {kind}")?;
        if !self.text.is_empty() {
            write!(f, " {}", self.text)?;
        }
        Ok(())
    }
}

/// One direction of a connection.
#[derive(Debug, Default)]
struct Direction {
    stream: Stream,
    framer: Framer,
    /// Until both OPENs are seen: 4-octet AS assumed, the modern default.
    ctx: Option<DecodeContext>,
    open: Option<Open>,
    /// The framer failed: nothing more is decoded this way.
    stopped: bool,
}

/// A TCP connection: `dirs[0]` carries what `ends[0]` sends.
#[derive(Debug)]
struct Connection {
    ends: [SocketAddr; 2],
    dirs: [Direction; 2],
}

/// Every BGP message in a pcap file, on TCP port `port` at either end.
pub fn decode_capture(bytes: &[u8], port: u16) -> Result<Vec<Line>, PcapError> {
    let capture = Capture::parse(bytes)?;
    let link = capture.link();
    let mut first = None;
    let mut connections: HashMap<(SocketAddr, SocketAddr), Connection> = HashMap::new();
    // Connections in the order they appeared, for the closing gap report.
    let mut order = Vec::new();
    let mut lines = Vec::new();
    for record in capture {
        let record = record?;
        let time = record
            .time
            .saturating_sub(*first.get_or_insert(record.time));
        let Some(seg) = link.tcp(record.data) else {
            continue;
        };
        if seg.src.port() != port && seg.dst.port() != port {
            continue;
        }
        let key = if seg.src < seg.dst {
            (seg.src, seg.dst)
        } else {
            (seg.dst, seg.src)
        };
        // A new SYN on a used address pair is a new connection.
        if seg.syn
            && !seg.ack
            && let Some(old) = connections.remove(&key)
        {
            report_gaps(&old, time, &mut lines);
        }
        let conn = connections.entry(key).or_insert_with(|| {
            order.push(key);
            Connection {
                ends: [seg.src, seg.dst],
                dirs: Default::default(),
            }
        });
        let i = usize::from(seg.src != conn.ends[0]);
        let bytes = conn.dirs[i].stream.segment(seg.seq, seg.syn, seg.payload);
        if bytes.is_empty() || conn.dirs[i].stopped {
            continue;
        }
        conn.dirs[i].framer.push(&bytes);
        let mut line = |kind, text| {
            lines.push(Line {
                time,
                src: seg.src,
                dst: seg.dst,
                kind,
                text,
            })
        };
        loop {
            let message = match conn.dirs[i].framer.next_message() {
                Ok(Some(message)) => message,
                Ok(None) => break,
                Err(e) => {
                    line(Kind::FramingError, e.to_string());
                    conn.dirs[i].stopped = true;
                    break;
                }
            };
            let ctx = conn.dirs[i].ctx.unwrap_or_else(DecodeContext::ibgp);
            match Message::decode(&message, &ctx) {
                Ok(decoded) => {
                    let (kind, mut text) = describe(&decoded.message);
                    if !decoded.faults.is_empty() {
                        let _ = write!(text, " RFC 7606: {:?}", decoded.verdict());
                    }
                    line(kind, text);
                    if let Message::Open(open) = decoded.message {
                        conn.dirs[i].open = Some(open);
                        negotiate(conn);
                    }
                }
                Err(e) => line(Kind::DecodeError, e.to_string()),
            }
        }
    }
    for key in order {
        if let Some(conn) = connections.remove(&key) {
            let end = lines.last().map_or(Duration::ZERO, |l| l.time);
            report_gaps(&conn, end, &mut lines);
        }
    }
    Ok(lines)
}

fn report_gaps(conn: &Connection, time: Duration, lines: &mut Vec<Line>) {
    for (i, dir) in conn.dirs.iter().enumerate() {
        if let Some(gap) = dir.stream.gap() {
            lines.push(Line {
                time,
                src: conn.ends[i],
                dst: conn.ends[1 - i],
                kind: Kind::Gap,
                text: format!(
                    "{} bytes missing at stream byte {}; the {} captured bytes after them not decoded",
                    gap.missing, gap.at, gap.held
                ),
            });
        }
    }
}

/// Once both OPENs are in: what each direction is decoded with (RFC 5492
/// §3: a capability is in use when both sides advertised it).
fn negotiate(conn: &mut Connection) {
    let [Some(a), Some(b)] = [&conn.dirs[0].open, &conn.dirs[1].open] else {
        return;
    };
    let has = |open: &Open, wanted: fn(&Capability) -> bool| open.capabilities().any(wanted);
    let both = |wanted: fn(&Capability) -> bool| has(a, wanted) && has(b, wanted);
    let four_octet_as = both(|c| matches!(c, Capability::FourOctetAs(_)));
    let extended_message = both(|c| matches!(c, Capability::ExtendedMessage));
    // RFC 7911 §4: path IDs flow where the sender said "send" (2) and the
    // receiver "receive" (1).
    let add_path = |sender: &Open, receiver: &Open| {
        let bits = |open: &Open, family: Family| {
            open.capabilities()
                .filter_map(|c| match c {
                    Capability::AddPath(families) => Some(families),
                    _ => None,
                })
                .flatten()
                .filter(|f| Family::from_afi_safi(f.afi, f.safi) == Some(family))
                .fold(0, |acc, f| acc | f.send_receive)
        };
        let on = |f| bits(sender, f) & 2 != 0 && bits(receiver, f) & 1 != 0;
        AddPath {
            ipv4_unicast: on(Family::Ipv4Unicast),
            ipv6_unicast: on(Family::Ipv6Unicast),
        }
    };
    let peer = |sender: &Open| {
        if a.asn() == b.asn() {
            PeerKind::Internal
        } else {
            PeerKind::External {
                peer_as: sender.asn(),
                enforce_first_as: false,
            }
        }
    };
    let ctx = |sender: &Open, receiver: &Open| DecodeContext {
        four_octet_as,
        extended_message,
        add_path: add_path(sender, receiver),
        peer: peer(sender),
        ..DecodeContext::default()
    };
    let (ctx_a, ctx_b) = (ctx(a, b), ctx(b, a));
    for (dir, ctx) in conn.dirs.iter_mut().zip([ctx_a, ctx_b]) {
        dir.framer.set_extended_message(extended_message);
        dir.ctx = Some(ctx);
    }
}

fn describe(message: &Message) -> (Kind, String) {
    match message {
        Message::Open(open) => (Kind::Open, describe_open(open)),
        Message::Update(update) => (Kind::Update, describe_update(update)),
        Message::Notification(n) => {
            let mut text = format!("{}/{}", n.code, n.subcode);
            if let Some(name) = notification_name(n.code, n.subcode) {
                let _ = write!(text, " {name}");
            }
            if let Some(message) = n.shutdown_communication() {
                let _ = write!(text, " {message:?}");
            }
            (Kind::Notification, text)
        }
        Message::Keepalive => (Kind::Keepalive, String::new()),
        Message::RouteRefresh(r) => (Kind::RouteRefresh, format!("{r:?}")),
    }
}

fn family_name(afi: u16, safi: u8) -> String {
    match Family::from_afi_safi(afi, safi) {
        Some(Family::Ipv4Unicast) => "ipv4-unicast".into(),
        Some(Family::Ipv6Unicast) => "ipv6-unicast".into(),
        None => format!("afi {afi} safi {safi}"),
    }
}

fn describe_open(open: &Open) -> String {
    let caps: Vec<String> = open
        .capabilities()
        .map(|c| match c {
            Capability::Multiprotocol { afi, safi } => family_name(*afi, *safi),
            Capability::RouteRefresh => "route-refresh".into(),
            Capability::ExtendedNextHop(_) => "extended-next-hop".into(),
            Capability::ExtendedMessage => "extended-message".into(),
            Capability::GracefulRestart { restart_time, .. } => {
                format!("graceful-restart({restart_time}s)")
            }
            Capability::FourOctetAs(_) => "4-octet-as".into(),
            Capability::AddPath(_) => "add-path".into(),
            Capability::EnhancedRouteRefresh => "enhanced-route-refresh".into(),
            Capability::LongLivedGracefulRestart(_) => "llgr".into(),
            Capability::Unknown { code, .. } => format!("capability-{code}"),
        })
        .collect();
    format!(
        "AS {} hold {} id {} [{}]",
        open.asn(),
        open.hold_time,
        open.bgp_id,
        caps.join(" ")
    )
}

fn describe_update(update: &Update) -> String {
    if let Some((afi, safi)) = update.end_of_rib() {
        return format!("End-of-RIB {}", family_name(afi, safi));
    }
    let list = |prefixes: Vec<String>| match prefixes.len() {
        0..=4 => prefixes.join(" "),
        n => format!("{} ... ({n} prefixes)", prefixes[..3].join(" ")),
    };
    let mut parts = Vec::new();
    let announced: Vec<String> = update.announced().map(|p| p.network.to_string()).collect();
    if !announced.is_empty() {
        parts.push(format!("+ {}", list(announced)));
    }
    let withdrawn: Vec<String> = update
        .withdrawals()
        .map(|p| p.network.to_string())
        .collect();
    if !withdrawn.is_empty() {
        parts.push(format!("- {}", list(withdrawn)));
    }
    for attribute in &update.attributes {
        match &attribute.value {
            AttrValue::NextHop(nh) => parts.push(format!("next-hop {nh}")),
            AttrValue::MpReach(MpReach { next_hop, .. }) => match next_hop {
                NextHop::Ipv4(nh) => parts.push(format!("next-hop {nh}")),
                NextHop::Ipv6 { global, .. } => parts.push(format!("next-hop {global}")),
                NextHop::Other(bytes) => parts.push(format!("next-hop {bytes:02x?}")),
            },
            AttrValue::AsPath(path) => {
                let asns: Vec<String> = path
                    .segments
                    .iter()
                    .flat_map(|s| &s.asns)
                    .map(u32::to_string)
                    .collect();
                parts.push(format!("as-path [{}]", asns.join(" ")));
            }
            AttrValue::LocalPref(p) => parts.push(format!("local-pref {p}")),
            AttrValue::OriginatorId(id) => parts.push(format!("originator {id}")),
            AttrValue::ClusterList(ids) => {
                let ids: Vec<String> = ids.iter().map(ToString::to_string).collect();
                parts.push(format!("cluster-list [{}]", ids.join(" ")));
            }
            _ => {}
        }
    }
    parts.join(", ")
}

/// Names of the NOTIFICATION codes and the subcodes a session sees most
/// (RFC 4271 §4.5, RFC 4486 for Cease).
fn notification_name(code: u8, subcode: u8) -> Option<&'static str> {
    Some(match (code, subcode) {
        (1, _) => "Message Header Error",
        (2, _) => "OPEN Message Error",
        (3, _) => "UPDATE Message Error",
        (4, _) => "Hold Timer Expired",
        (5, _) => "Finite State Machine Error",
        (6, 1) => "Cease/Maximum Number of Prefixes Reached",
        (6, 2) => "Cease/Administrative Shutdown",
        (6, 3) => "Cease/Peer De-configured",
        (6, 4) => "Cease/Administrative Reset",
        (6, 5) => "Cease/Connection Rejected",
        (6, 6) => "Cease/Other Configuration Change",
        (6, 7) => "Cease/Connection Collision Resolution",
        (6, _) => "Cease",
        _ => return None,
    })
}

fn main() {
    let mut path = None;
    let mut port = 179;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match (arg.as_str(), args.len()) {
            ("--port", 1..) => match args.next().map(|p| p.parse()) {
                Some(Ok(p)) => port = p,
                _ => usage(),
            },
            (a, _) if !a.starts_with('-') && path.is_none() => path = Some(arg),
            _ => usage(),
        }
    }
    let Some(path) = path else { usage() };
    let bytes = std::fs::read(&path).unwrap_or_else(|e| {
        eprintln!("{path}: {e}");
        std::process::exit(1);
    });
    match decode_capture(&bytes, port) {
        Ok(lines) => lines.iter().for_each(|l| println!("{l}")),
        Err(e) => {
            eprintln!("{path}: {e}");
            std::process::exit(1);
        }
    }
}

fn usage() -> ! {
    eprintln!("usage: pcap_decode FILE.pcap [--port PORT]");
    std::process::exit(2);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The committed sample: our reflector (10.0.0.1) with BIRD 2
    /// (10.0.0.3) and our speaker (10.0.0.2) as clients, made by
    /// `examples/data/capture.sh` (see `examples/data/README.md`).
    const SESSION: &[u8] = include_bytes!("../data/bgp-session.pcap");

    #[test]
    fn sample_capture_decodes_to_the_sessions_message_sequence() {
        let lines = decode_capture(SESSION, 179).unwrap();
        let got: Vec<(String, &str)> = lines
            .iter()
            .map(|l| (format!("{} > {}", l.src.ip(), l.dst.ip()), l.kind.name()))
            .collect();
        let (bird, rr, ours) = ("10.0.0.3", "10.0.0.1", "10.0.0.2");
        let want: Vec<(String, &str)> = [
            // BIRD's session comes up and sends its block.
            (bird, rr, "OPEN"),
            (rr, bird, "OPEN"),
            (rr, bird, "KEEPALIVE"),
            (bird, rr, "KEEPALIVE"),
            (rr, bird, "UPDATE"), // End-of-RIB: nothing to reflect yet
            (bird, rr, "UPDATE"), // 10.244.3.0/26
            (bird, rr, "UPDATE"), // End-of-RIB
            // Our speaker's session: its block, then BIRD's reflected.
            (ours, rr, "OPEN"),
            (rr, ours, "OPEN"),
            (rr, ours, "KEEPALIVE"),
            (ours, rr, "KEEPALIVE"),
            (ours, rr, "UPDATE"), // 10.244.2.0/26
            (ours, rr, "UPDATE"), // End-of-RIB IPv4
            (ours, rr, "UPDATE"), // End-of-RIB IPv6
            (rr, ours, "UPDATE"), // 10.244.3.0/26, reflected
            (rr, ours, "UPDATE"), // End-of-RIB IPv4
            (rr, ours, "UPDATE"), // End-of-RIB IPv6
            (rr, bird, "UPDATE"), // 10.244.2.0/26, reflected
            // Withdrawn, reflected as withdrawn, then both sessions end.
            (ours, rr, "UPDATE"),
            (rr, bird, "UPDATE"),
            (ours, rr, "NOTIFICATION"),
            (rr, bird, "NOTIFICATION"),
        ]
        .into_iter()
        .map(|(src, dst, kind)| (format!("{src} > {dst}"), kind))
        .collect();
        assert_eq!(got, want);

        let text = |i: usize| lines[i].text.as_str();
        assert!(
            text(0).starts_with("AS 64512 hold 240 id 10.0.0.3"),
            "{}",
            text(0)
        );
        assert_eq!(text(4), "End-of-RIB ipv4-unicast");
        assert!(text(5).starts_with("+ 10.244.3.0/26"), "{}", text(5));
        assert!(
            text(14).ends_with("originator 10.0.0.3, cluster-list [10.0.0.1]"),
            "{}",
            text(14)
        );
        assert_eq!(text(18), "- 10.244.2.0/26");
        assert_eq!(
            text(20),
            r#"6/2 Cease/Administrative Shutdown "client maintenance""#
        );
        assert_eq!(
            text(21),
            r#"6/2 Cease/Administrative Shutdown "route reflector stopping""#
        );
    }

    #[test]
    fn another_port_finds_nothing() {
        assert!(decode_capture(SESSION, 1179).unwrap().is_empty());
    }

    #[test]
    fn pcapng_is_refused_with_the_conversion_to_use() {
        let pcapng = [0x0a, 0x0d, 0x0d, 0x0a, 0, 0, 0, 28];
        let err = decode_capture(&pcapng, 179).unwrap_err();
        assert_eq!(err, PcapError::Pcapng);
        assert!(err.to_string().contains("editcap -F pcap"));
    }

    #[test]
    fn a_capture_cut_inside_a_record_says_where() {
        let cut = &SESSION[..SESSION.len() - 10];
        assert!(matches!(
            decode_capture(cut, 179),
            Err(PcapError::Truncated { .. })
        ));
    }
}
