//! The thin tokio layer: one task per peer runs a [`crate::session::Session`]
//! over TCP (`peer.rs`), the listener accepts connections and keeps the
//! TCP-MD5 keys (`listener.rs`), and the speaker task runs the
//! [`crate::engine::Engine`] (`speaker.rs`).
//!
//! Everything protocol-related happens in the session and the engine; this
//! module only moves bytes and messages, arms one timer per task for the
//! next deadline, and sets the socket options (TCP-MD5, GTSM, source
//! address) in [`sys`].

mod listener;
mod peer;
pub(crate) mod speaker;
pub mod sys;

pub use crate::engine::Transport;
pub use peer::{PeerCommand, PeerEvent, UpdateSource, run_peer};
