//! The BGP session: the RFC 4271 §8 state machine for one peer, without I/O.
//!
//! A [`Session`] takes inputs through `handle_*` methods, each with the
//! current time, and is polled for outputs: bytes to write
//! ([`Session::poll_transmit`]), events for the driver and the owner
//! ([`Session::poll_event`]: connect, close, state changes, routes
//! received) and the next deadline ([`Session::poll_timeout`]). The tokio
//! driver is a thin loop around it; tests run two sessions against each
//! other on a virtual clock.
//!
//! It covers the hold, keepalive, connect-retry (with backoff and jitter),
//! delay-open and RFC 9687 send-hold timers, connection collision
//! detection (§6.8), OPEN validation with the exact NOTIFICATIONs, and
//! capability negotiation ([`Negotiated`]).

mod config;
mod fsm;
mod negotiate;
pub(crate) mod timers;

pub use config::{GracefulRestartConfig, SessionConfig};
pub use fsm::{ConnId, DownReason, SendError, Session, SessionEvent, State};
pub use negotiate::{Negotiated, PeerGracefulRestart, negotiate};
pub use timers::{ConnTimer, Timer};
