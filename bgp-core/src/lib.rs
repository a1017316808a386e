//! A BGP-4 speaker for pod-route daemons.
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
//!   TCP, the listener accepts connections, one task runs the engine.
//! - [`speaker`]: the public API: [`speaker::Speaker`] starts all of it from a
//!   [`speaker::SpeakerConfig`] and hands back a stream of best-route changes
//!   (the configuration and event types the engine speaks live here too).
//!
//! Cargo features: `speaker` (default) brings the tokio [`driver`] and the
//! [`speaker::Speaker`] handle; without it (`default-features = false`)
//! the crate is the codec, the session and engine state machines, the RIB
//! and policy, with no runtime and no sockets. `fuzzing` adds the fuzz
//! target bodies (`fuzzing`), shared by cargo-fuzz and the corpus replay.
//!
//! Decoding bytes needs only [`wire`]:
//!
//! ```
//! use bgp_core::wire::{DecodeContext, Message};
//!
//! // A KEEPALIVE: 16 bytes of marker, length 19, type 4 (RFC 4271 §4.4).
//! let mut bytes = vec![0xff; 16];
//! bytes.extend_from_slice(&[0, 19, 4]);
//! let decoded = Message::decode(&bytes, &DecodeContext::default()).unwrap();
//! assert_eq!(decoded.message, Message::Keepalive);
//! assert_eq!(decoded.message.to_bytes(&DecodeContext::default()).unwrap(), bytes);
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
