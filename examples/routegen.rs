//! A route generator for ingestion benchmarks: one iBGP peer that sends N
//! IPv4 prefixes as fast as TCP allows, right after the session comes up.
//!
//! ```sh
//! routegen --connect 10.79.0.2:179 --local-as 64512 --router-id 10.79.0.1 \
//!          --next-hop 10.79.0.1 --count 1000000
//! ```
//!
//! Every UPDATE is encoded with `bgp_core::wire` *before* the connection is
//! made, so during the measurement the generator only copies one buffer into
//! the socket in large writes: the receiver, not the generator, is the
//! bottleneck. The prefixes are distinct /26s (or `--prefix-len`) counting up
//! from `--start` (10.0.0.0) without gaps, packed as many per UPDATE as fit
//! 4096 bytes (810 /26s), all with one attribute set: ORIGIN IGP, empty
//! AS_PATH, NEXT_HOP, LOCAL_PREF 100. End-of-RIB follows the last one.
//!
//! With `--next-hops K` the prefixes are split into K consecutive runs of
//! (nearly) equal size, run j with next hop `--next-hop` + j: a route
//! reflector's view of a cluster of K nodes, e.g. `--count 10000
//! --next-hops 5000` is two /26 blocks per node, one UPDATE per node.
//!
//! After that the session is kept up with KEEPALIVEs until the process is
//! killed or the receiver closes it. Whatever the receiver sends is read and
//! ignored, except a NOTIFICATION, which is printed before exiting.
//!
//! Progress goes to stderr as single lines a script can parse, with Unix
//! times in nanoseconds:
//! `routegen: established at_ns=...` and `routegen: sent n=... updates=... at_ns=...`.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::process::exit;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bgp_core::wire::iana::{afi, safi};
use bgp_core::wire::{
    AsPath, AttrValue, Capability, DecodeContext, Family, Framer, Message, Open, Origin,
    PathAttribute, Prefix, Update,
};
use bytes::BytesMut;
use ipnetwork::{IpNetwork, Ipv4Network};

/// The BGP message size limit without extended messages (RFC 4271 §4.1).
const MAX_MESSAGE: usize = 4096;
/// Bytes handed to the kernel per write: whole messages, about 1 MiB.
const WRITE_CHUNK: usize = 1 << 20;
/// Hold time we propose (RFC 4271 §4.2); the session uses the smaller one.
const HOLD_TIME: u16 = 90;

struct Args {
    connect: Option<SocketAddr>,
    listen: Option<SocketAddr>,
    local_as: u32,
    router_id: Ipv4Addr,
    count: u32,
    next_hop: Ipv4Addr,
    start: Ipv4Addr,
    prefix_len: u8,
    per_update: Option<usize>,
    next_hops: u32,
}

const USAGE: &str = "usage: routegen (--connect ADDR:PORT | --listen ADDR:PORT) --local-as AS \
--router-id ID --count N --next-hop ADDR [--next-hops K] [--start 10.0.0.0] [--prefix-len 26] \
[--per-update K]";

fn fail(msg: &str) -> ! {
    eprintln!("routegen: {msg}");
    exit(2)
}

fn parse<T: std::str::FromStr>(flag: &str, value: Option<String>) -> T
where
    T::Err: std::fmt::Display,
{
    let Some(value) = value else {
        fail(&format!("{flag} needs a value\n{USAGE}"))
    };
    value
        .parse()
        .unwrap_or_else(|e| fail(&format!("{flag} {value}: {e}")))
}

fn need(what: &str) -> ! {
    fail(&format!("{what} is required\n{USAGE}"))
}

fn parse_args() -> Args {
    let mut connect = None;
    let mut listen = None;
    let mut local_as = None;
    let mut router_id = None;
    let mut count = None;
    let mut next_hop = None;
    let mut start = Ipv4Addr::new(10, 0, 0, 0);
    let mut prefix_len = 26;
    let mut per_update = None;
    let mut next_hops = 1;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next();
        match flag.as_str() {
            "--connect" => connect = Some(parse(&flag, value)),
            "--listen" => listen = Some(parse(&flag, value)),
            "--local-as" => local_as = Some(parse(&flag, value)),
            "--router-id" => router_id = Some(parse(&flag, value)),
            "--count" => count = Some(parse(&flag, value)),
            "--next-hop" => next_hop = Some(parse(&flag, value)),
            "--start" => start = parse(&flag, value),
            "--prefix-len" => prefix_len = parse(&flag, value),
            "--per-update" => per_update = Some(parse(&flag, value)),
            "--next-hops" => next_hops = parse(&flag, value),
            _ => fail(&format!("unknown argument {flag}\n{USAGE}")),
        }
    }
    if connect.is_some() == listen.is_some() {
        fail(&format!(
            "give exactly one of --connect and --listen\n{USAGE}"
        ));
    }
    if next_hops == 0 {
        fail("--next-hops must be at least 1");
    }
    if !(1..=32).contains(&prefix_len) {
        fail("--prefix-len must be 1..=32");
    }
    Args {
        connect,
        listen,
        local_as: local_as.unwrap_or_else(|| need("--local-as")),
        router_id: router_id.unwrap_or_else(|| need("--router-id")),
        count: count.unwrap_or_else(|| need("--count")),
        next_hop: next_hop.unwrap_or_else(|| need("--next-hop")),
        start,
        prefix_len,
        per_update,
        next_hops,
    }
}

fn unix_ns() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

/// The `i`-th prefix: `start + i * 2^(32 - len)`, wrapping at 2^32.
fn nth_prefix(start: Ipv4Addr, len: u8, i: u32) -> Prefix {
    let step = 1u64 << (32 - u32::from(len));
    let base = u64::from(u32::from(start)) & !(step - 1);
    let addr = base.wrapping_add(u64::from(i) * step) as u32;
    let net = Ipv4Network::new(Ipv4Addr::from(addr), len).expect("length checked in parse_args");
    Prefix::new(IpNetwork::V4(net))
}

/// Every UPDATE of the run, End-of-RIB last, as one buffer, and the offsets
/// where messages start (so writes and KEEPALIVEs split only between
/// messages).
struct Encoded {
    bytes: BytesMut,
    boundaries: Vec<usize>,
    updates: usize,
}

/// The attribute set of the prefixes with next hop `next_hop`.
fn attributes(next_hop: Ipv4Addr) -> Vec<PathAttribute> {
    vec![
        PathAttribute::new(AttrValue::Origin(Origin::Igp)),
        PathAttribute::new(AttrValue::AsPath(AsPath::default())),
        PathAttribute::new(AttrValue::NextHop(next_hop)),
        PathAttribute::new(AttrValue::LocalPref(100)),
    ]
}

fn encode_all(args: &Args) -> Encoded {
    let ctx = DecodeContext::ibgp();
    let attributes = attributes(args.next_hop);
    // What fits: the message without NLRI, then one length octet plus the
    // significant octets per prefix (RFC 4271 §4.3).
    let mut probe = BytesMut::new();
    let empty = Update {
        withdrawn: Vec::new(),
        attributes: attributes.clone(),
        nlri: Vec::new(),
    };
    Message::Update(empty)
        .encode(&ctx, &mut probe)
        .expect("the attribute set encodes");
    let per_prefix = 1 + usize::from(args.prefix_len).div_ceil(8);
    let fit = (MAX_MESSAGE - probe.len()) / per_prefix;
    let per_update = args.per_update.unwrap_or(fit).clamp(1, fit);

    let count = args.count as usize;
    let groups = args.next_hops.min(args.count.max(1));
    let mut bytes =
        BytesMut::with_capacity((count.div_ceil(per_update) + groups as usize) * MAX_MESSAGE + 64);
    let mut boundaries = Vec::new();
    let mut updates = 0;
    for group in 0..groups {
        // Run `group` of the prefixes: [count * g / K, count * (g + 1) / K).
        let first = (u64::from(args.count) * u64::from(group) / u64::from(groups)) as u32;
        let end = (u64::from(args.count) * u64::from(group + 1) / u64::from(groups)) as u32;
        let attributes = if groups == 1 {
            attributes.clone()
        } else {
            self::attributes(Ipv4Addr::from(u32::from(args.next_hop).wrapping_add(group)))
        };
        let mut next = first;
        while next < end {
            let n = per_update.min((end - next) as usize) as u32;
            let nlri = (next..next + n)
                .map(|i| nth_prefix(args.start, args.prefix_len, i))
                .collect();
            next += n;
            boundaries.push(bytes.len());
            Message::Update(Update {
                withdrawn: Vec::new(),
                attributes: attributes.clone(),
                nlri,
            })
            .encode(&ctx, &mut bytes)
            .unwrap_or_else(|e| fail(&format!("cannot encode an UPDATE: {e}")));
            updates += 1;
        }
    }
    boundaries.push(bytes.len());
    Message::Update(Update::end_of_rib_marker(Family::Ipv4Unicast))
        .encode(&ctx, &mut bytes)
        .expect("End-of-RIB encodes");
    boundaries.push(bytes.len());
    Encoded {
        bytes,
        boundaries,
        updates,
    }
}

fn encode(msg: &Message) -> Vec<u8> {
    msg.to_bytes(&DecodeContext::ibgp())
        .unwrap_or_else(|e| fail(&format!("cannot encode {msg:?}: {e}")))
}

fn open_stream(args: &Args) -> TcpStream {
    if let Some(addr) = args.listen {
        let listener =
            TcpListener::bind(addr).unwrap_or_else(|e| fail(&format!("bind {addr}: {e}")));
        eprintln!("routegen: listening on {addr}");
        let (stream, from) = listener
            .accept()
            .unwrap_or_else(|e| fail(&format!("accept: {e}")));
        eprintln!("routegen: connection from {from}");
        return stream;
    }
    let addr = args.connect.expect("checked in parse_args");
    // The receiver may still be starting: retry refused connections briefly.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        match TcpStream::connect_timeout(&addr, Duration::from_secs(2)) {
            Ok(s) => return s,
            Err(e) if Instant::now() < deadline => {
                eprintln!("routegen: connect {addr}: {e}; retrying");
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(e) => fail(&format!("connect {addr}: {e}")),
        }
    }
}

/// The receiving half: whole messages out of the socket.
struct Reader {
    stream: TcpStream,
    framer: Framer,
    buf: Vec<u8>,
}

impl Reader {
    fn new(stream: TcpStream) -> Reader {
        Reader {
            stream,
            framer: Framer::new(false),
            buf: vec![0; 64 * 1024],
        }
    }

    /// The next whole message; exits on EOF or a read or framing error.
    fn next_message(&mut self) -> bytes::Bytes {
        loop {
            match self.framer.next_message() {
                Ok(Some(m)) => return m,
                Ok(None) => {}
                Err(e) => fail(&format!("bad message from the receiver: {e}")),
            }
            match self.stream.read(&mut self.buf) {
                Ok(0) => {
                    eprintln!("routegen: the receiver closed the connection");
                    exit(0)
                }
                Ok(n) => self.framer.push(&self.buf[..n]),
                Err(e) => fail(&format!("read: {e}")),
            }
        }
    }
}

/// Acts on one message from the receiver. UPDATEs (it may send End-of-RIB
/// or routes) are ignored without decoding; a NOTIFICATION ends the run.
fn handle(raw: &[u8]) -> Option<Message> {
    const UPDATE: u8 = 2;
    if raw.get(18) == Some(&UPDATE) {
        return None;
    }
    match Message::decode(raw, &DecodeContext::ibgp()) {
        Ok(d) => match d.message {
            Message::Notification(n) => fail(&format!("the receiver sent NOTIFICATION {n}")),
            m => Some(m),
        },
        Err(e) => fail(&format!("cannot decode a message from the receiver: {e}")),
    }
}

fn main() {
    let args = parse_args();
    let encoded = encode_all(&args);
    eprintln!(
        "routegen: {} prefixes in {} UPDATEs ({} bytes) ready",
        args.count,
        encoded.updates,
        encoded.bytes.len()
    );

    let mut stream = open_stream(&args);
    let _ = stream.set_nodelay(true);
    let capabilities = vec![
        Capability::Multiprotocol {
            afi: afi::IPV4,
            safi: safi::UNICAST,
        },
        Capability::FourOctetAs(args.local_as),
        Capability::RouteRefresh,
    ];
    let open = Message::Open(Open::new(
        args.local_as,
        HOLD_TIME,
        args.router_id,
        capabilities,
    ));
    let keepalive = encode(&Message::Keepalive);
    stream
        .write_all(&encode(&open))
        .unwrap_or_else(|e| fail(&format!("write OPEN: {e}")));

    // RFC 4271 §8.2.2: OpenSent → (OPEN) → OpenConfirm → (KEEPALIVE) →
    // Established. Our KEEPALIVE answers their OPEN.
    let mut reader = Reader::new(
        stream
            .try_clone()
            .unwrap_or_else(|e| fail(&format!("clone socket: {e}"))),
    );
    let mut hold = HOLD_TIME;
    let mut open_seen = false;
    loop {
        let raw = reader.next_message();
        match handle(&raw) {
            Some(Message::Open(o)) if !open_seen => {
                open_seen = true;
                hold = hold.min(o.hold_time);
                stream
                    .write_all(&keepalive)
                    .unwrap_or_else(|e| fail(&format!("write KEEPALIVE: {e}")));
            }
            Some(Message::Keepalive) if open_seen => break,
            Some(other) => fail(&format!("unexpected message before Established: {other:?}")),
            None => fail("UPDATE before Established"),
        }
    }
    eprintln!("routegen: established at_ns={}", unix_ns());

    // From here on the receiver's messages are drained by a thread so its
    // KEEPALIVEs and UPDATEs never back up; this thread only writes.
    std::thread::spawn(move || {
        loop {
            handle(&reader.next_message());
        }
    });

    // RFC 4271 §4.4: a KEEPALIVE every third of the hold time, never if 0.
    // While UPDATEs flow they reset the receiver's hold timer (§6.5).
    let interval = (hold > 0).then(|| Duration::from_secs(u64::from(hold / 3).max(1)));
    let b = &encoded.boundaries;
    let mut at = 0;
    while at + 1 < b.len() {
        // Up to WRITE_CHUNK bytes of whole messages, at least one.
        let mut to = at + 1;
        while to + 1 < b.len() && b[to + 1] - b[at] <= WRITE_CHUNK {
            to += 1;
        }
        stream
            .write_all(&encoded.bytes[b[at]..b[to]])
            .unwrap_or_else(|e| fail(&format!("write UPDATEs: {e}")));
        at = to;
    }
    eprintln!(
        "routegen: sent n={} updates={} at_ns={}",
        args.count,
        encoded.updates,
        unix_ns()
    );
    let Some(interval) = interval else {
        loop {
            std::thread::park();
        }
    };
    loop {
        std::thread::sleep(interval);
        stream
            .write_all(&keepalive)
            .unwrap_or_else(|e| fail(&format!("write KEEPALIVE: {e}")));
    }
}
