//! A BGP-4 speaker to embed: the wire codec, a session state machine and a
//! speaker engine without I/O, the Loc-RIB with the RFC 4271 decision
//! process, route reflection and graceful restart, prefix policy, and a thin
//! tokio driver that runs it all over TCP.
//!
//! Three ways in, each with a first example below:
//!
//! - [Decode bytes](#decode-bytes): turn BGP messages you captured or read
//!   yourself into typed values ([`wire`]; no runtime, no sockets).
//! - [Run a speaker](#run-a-speaker): peer with routers or other nodes,
//!   announce your prefixes, and read a stream of best routes and session
//!   events ([`speaker`]).
//! - [Reflect routes](#reflect-routes): a route reflector whose clients
//!   connect from an address range without being listed one by one.
//!
//! The workspace's `examples/` folder has the longer versions: `decode.rs`
//! (one message in hex), `pcap_decode.rs` (every message of a capture file),
//! `speaker.rs` (a JSON config in, route changes out as JSON lines) and
//! `reflector.rs` (a route reflector in 30 lines).
//!
//! # Layers
//!
//! The crate is layered by folder, lowest first:
//!
//! - [`wire`]: bytes ↔ messages. A stream [`wire::Framer`] cuts TCP reads into
//!   whole messages; [`wire::Message::decode`] turns one into an owned value
//!   under an explicit [`wire::DecodeContext`] (4-octet AS, add-path, extended
//!   messages, iBGP/eBGP), and every malformed input becomes data: an UPDATE
//!   decodes to its routes plus an RFC 7606 [`wire::Verdict`], anything that
//!   must reset the session becomes an error carrying the exact NOTIFICATION.
//!   Nothing in this layer panics or allocates more than its input justifies.
//! - [`session`]: one peer's RFC 4271 §8 state machine without I/O: inputs
//!   are `handle_*(now, ...)` calls, outputs are polled (bytes to write,
//!   events, the next deadline). It frames and decodes what arrives and
//!   negotiates capabilities.
//! - [`rib`]: the Loc-RIB. Paths from every peer with interned attributes,
//!   the RFC 4271 §9.1 decision process keeping the best path first, route
//!   reflection (RFC 4456), graceful-restart stale paths (RFC 4724), and
//!   the export rules.
//! - [`policy`]: prefix filters with FRR prefix-list semantics, the RFC 8212
//!   eBGP default (nothing without a policy), and maximum-prefix limits.
//! - [`engine`]: the speaker's decisions without I/O: neighbours (configured
//!   and dynamic), import into the RIB, graceful-restart and max-prefix
//!   timers, and export through update groups whose encoded UPDATEs every
//!   member shares. Same `handle_*` / `poll_*` shape as the session.
//! - [`driver`]: the thin tokio layer: a task per peer runs its session over
//!   TCP, the listener accepts connections, one task runs the engine
//!   (feature `speaker`).
//! - [`speaker`]: the public API: [`speaker::Speaker`] starts all of it from a
//!   [`speaker::SpeakerConfig`] and hands back a stream of best-route
//!   changes and session events (the configuration and event types the
//!   engine speaks live here too).
//!
//! # Cargo features
//!
//! - `speaker` (default): the tokio [`driver`] and the [`speaker::Speaker`]
//!   handle. Without it (`default-features = false`) the crate is the
//!   codec, the session and engine state machines, the RIB and policy, with
//!   no runtime and no sockets.
//! - `fuzzing`: the fuzz target bodies (`bgp_core::fuzzing`), shared by
//!   cargo-fuzz and the workspace's corpus replay on stable.
//!
//! # Decode bytes
//!
//! Decoding needs only [`wire`]. Feed a [`wire::Framer`] whatever a socket
//! or a capture gives you, take out whole messages, and decode each under
//! the session's [`wire::DecodeContext`] (what the two OPENs negotiated):
//!
//! ```
//! use bgp_core::wire::{DecodeContext, Framer, Message};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // A KEEPALIVE (RFC 4271 §4.4) and an IPv4 End-of-RIB, which is an empty
//! // UPDATE (RFC 4724 §2), as one TCP read might return them.
//! let mut stream = vec![0xff; 16];
//! stream.extend_from_slice(&[0, 19, 4]);
//! stream.extend_from_slice(&[0xff; 16]);
//! stream.extend_from_slice(&[0, 23, 2, 0, 0, 0, 0]);
//!
//! // 4-octet AS numbers, no ADD-PATH, 4096-byte messages, iBGP.
//! let ctx = DecodeContext::ibgp();
//! let mut framer = Framer::new(ctx.extended_message);
//! framer.push(&stream);
//! let mut seen = Vec::new();
//! while let Some(bytes) = framer.next_message()? {
//!     let decoded = Message::decode(&bytes, &ctx)?;
//!     // RFC 7606: malformed attributes the session survives are data.
//!     assert!(decoded.faults.is_empty());
//!     match decoded.message {
//!         Message::Keepalive => seen.push("KEEPALIVE"),
//!         Message::Update(u) if u.end_of_rib().is_some() => seen.push("End-of-RIB"),
//!         _ => seen.push("other"),
//!     }
//! }
//! assert_eq!(seen, ["KEEPALIVE", "End-of-RIB"]);
//!
//! // Values encode back to the same bytes.
//! assert_eq!(Message::Keepalive.to_bytes(&ctx)?, stream[..19]);
//! # Ok(())
//! # }
//! ```
//!
//! # Run a speaker
//!
//! [`speaker::SpeakerConfig`] says who we are and whom to peer with (it is
//! serde, so a YAML or JSON file works too); [`speaker::Speaker::start`] binds the
//! listener, connects to the neighbours and returns a handle and a
//! [`speaker::RouteStream`]. The stream says when sessions come up
//! ([`speaker::RouteChange::PeerUp`], with the negotiated capabilities) and
//! go down ([`speaker::RouteChange::PeerDown`], with the NOTIFICATION), and
//! carries every change of best route: what a FIB programmer needs.
//!
//! Here the neighbour is a second speaker on loopback, so the example runs
//! anywhere; in life it is a router or another node, on port 179 (binding
//! that needs root or `CAP_NET_BIND_SERVICE`; port 0 takes any free port).
//!
//! ```
//! use std::net::IpAddr;
//!
//! use bgp_core::speaker::{
//!     ListenConfig, LocalRoute, PeerConfig, RouteChange, Speaker, SpeakerConfig,
//! };
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # tokio::time::timeout(std::time::Duration::from_secs(60), async {
//! // Us: AS 64512, accepting connections from our neighbour 127.0.0.2.
//! let mut config = SpeakerConfig::new(64512, "10.0.0.1".parse()?);
//! config.listen = Some(ListenConfig::new("127.0.0.1".parse()?, 0));
//! let mut neighbour = PeerConfig::new("127.0.0.2".parse()?, 64512);
//! neighbour.passive = true;
//! config.peers.push(neighbour);
//! let (speaker, mut routes) = Speaker::start(config).await?;
//! // Loopback addresses are martian next hops (RFC 4271 §6.3), so the
//! // routes here name a documentation address as next hop.
//! speaker.announce("10.244.1.0/26".parse()?, LocalRoute::via("192.0.2.1".parse()?))?;
//!
//! // The neighbour: it connects to us from 127.0.0.2 and announces a block.
//! let mut theirs = SpeakerConfig::new(64512, "10.0.0.2".parse()?);
//! let mut to_us = PeerConfig::new("127.0.0.1".parse()?, 64512);
//! to_us.port = speaker.listen_addr().ok_or("no listener")?.port();
//! to_us.local_address = Some("127.0.0.2".parse()?);
//! theirs.peers.push(to_us);
//! let (neighbour, _) = Speaker::start(theirs).await?;
//! neighbour.announce("10.244.2.0/26".parse()?, LocalRoute::via("192.0.2.2".parse()?))?;
//!
//! // Our own route comes first, then the session, then its routes.
//! let learned = loop {
//!     match routes.recv().await.ok_or("the speaker stopped")? {
//!         RouteChange::PeerUp(up) => {
//!             println!("{} up, hold time {} s", up.peer, up.negotiated.hold_time);
//!         }
//!         RouteChange::Best(route) if route.peer.is_some() => break route,
//!         other => println!("{other:?}"),
//!     }
//! };
//! assert_eq!(learned.prefix, "10.244.2.0/26".parse()?);
//! assert_eq!(learned.next_hop, "192.0.2.2".parse::<IpAddr>()?);
//!
//! // Cease / Administrative Shutdown with this message (RFC 9003).
//! speaker.shutdown("maintenance").await;
//! neighbour.shutdown("maintenance").await;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).await?
//! # }
//! ```
//!
//! # Reflect routes
//!
//! A route reflector (RFC 4456) passes what one iBGP client announces on to
//! the others, so nodes peer with two reflectors instead of with each other.
//! [`speaker::NeighborRange`] accepts clients from an address range (BIRD's
//! `neighbor range`, FRR's `bgp listen range`), each a passive neighbour
//! with the range's settings, up to its `limit`; a cluster ID shared by
//! redundant reflectors keeps them from reflecting each other's routes back.
//!
//! ```
//! use std::net::{IpAddr, Ipv4Addr};
//!
//! use bgp_core::speaker::{
//!     ListenConfig, LocalRoute, NeighborRange, PeerConfig, RouteChange, RouteStream,
//!     Speaker, SpeakerConfig,
//! };
//!
//! type Error = Box<dyn std::error::Error>;
//!
//! /// A node, 127.0.0.`n`, peering with the reflector only.
//! async fn node(n: u8, reflector: u16) -> Result<(Speaker, RouteStream), Error> {
//!     let mut config = SpeakerConfig::new(64512, Ipv4Addr::new(10, 0, 0, n));
//!     let mut rr = PeerConfig::new("127.0.0.1".parse()?, 64512);
//!     rr.port = reflector;
//!     rr.local_address = Some(IpAddr::V4(Ipv4Addr::new(127, 0, 0, n)));
//!     config.peers.push(rr);
//!     Ok(Speaker::start(config).await?)
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Error> {
//! # tokio::time::timeout(std::time::Duration::from_secs(60), async {
//! // The reflector: its clients connect from 127.0.0.0/24 (the nodes'
//! // subnet, in life), at most 500 at once.
//! let mut config = SpeakerConfig::new(64512, "10.0.0.1".parse()?);
//! config.listen = Some(ListenConfig::new("127.0.0.1".parse()?, 0));
//! config.cluster_id = Some("10.0.0.1".parse()?);
//! let mut clients = NeighborRange::new("127.0.0.0/24".parse()?, 64512);
//! clients.route_reflector_client = true;
//! clients.limit = 500;
//! config.dynamic_neighbors.push(clients);
//! let (reflector, mut events) = Speaker::start(config).await?;
//! let port = reflector.listen_addr().ok_or("no listener")?.port();
//!
//! let (a, _) = node(2, port).await?;
//! let (b, mut b_routes) = node(3, port).await?;
//! let mut up = 0;
//! while up < 2 {
//!     if let RouteChange::PeerUp(client) = events.recv().await.ok_or("stopped")? {
//!         println!("client {} up", client.peer);
//!         up += 1;
//!     }
//! }
//!
//! // a announces its block; b learns it through the reflector, next hop
//! // unchanged, with a's router ID as ORIGINATOR_ID and our cluster ID in
//! // CLUSTER_LIST (what stops reflection loops).
//! a.announce("10.244.2.0/26".parse()?, LocalRoute::via("192.0.2.2".parse()?))?;
//! let route = loop {
//!     if let RouteChange::Best(route) = b_routes.recv().await.ok_or("stopped")? {
//!         break route;
//!     }
//! };
//! assert_eq!(route.prefix, "10.244.2.0/26".parse()?);
//! assert_eq!(route.next_hop, "192.0.2.2".parse::<IpAddr>()?);
//! assert_eq!(route.attrs.originator_id, Some("10.0.0.2".parse()?));
//! assert_eq!(route.attrs.cluster_list, ["10.0.0.1".parse::<Ipv4Addr>()?]);
//!
//! // Status like `birdc show protocols`: the clients show as dynamic peers.
//! let peers = reflector.peers().await?;
//! assert_eq!(peers.len(), 2);
//! assert!(peers.iter().all(|p| p.dynamic));
//! for speaker in [a, b, reflector] {
//!     speaker.shutdown("done").await;
//! }
//! # Ok::<(), Error>(())
//! # }).await?
//! # }
//! ```

#[cfg(feature = "speaker")]
pub mod driver;
pub mod engine;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
pub mod policy;
pub mod rib;
pub mod session;
pub mod speaker;
pub mod wire;

// The README's examples are doc tests too, so they cannot go stale.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
