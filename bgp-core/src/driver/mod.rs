//! The thin tokio layer: one task per peer runs a [`crate::session::Session`]
//! over TCP, a listener hands accepted connections to the right peer.
//!
//! Everything protocol-related happens in the session; this module only
//! moves bytes, arms one timer for the session's next deadline, and sets
//! the socket options (TCP-MD5, GTSM, source address) in [`sys`].

mod peer;
pub mod sys;

pub use peer::{PeerCommand, PeerEvent, Transport, UpdateSource, run_peer};
