//! Import and export policy: prefix filters, the RFC 8212 default, and
//! maximum-prefix limits.
//!
//! - [`PrefixFilter`]: ordered [`PrefixRule`]s with FRR prefix-list
//!   semantics (`ge` / `le` ranges, first match wins, a default action).
//! - [`Policy`]: an optional filter per direction. Without one, an eBGP
//!   peer exchanges nothing and an iBGP peer everything (RFC 8212 §3).
//! - [`MaxPrefixTracker`]: warns once, or returns the Cease NOTIFICATION
//!   of RFC 4486 when a peer sends more prefixes than allowed.
//!
//! The config types derive serde with kebab-case names:
//!
//! ```
//! use bgp_core::policy::{Action, PrefixFilter, PrefixRule};
//! let f = PrefixFilter::new(
//!     vec![PrefixRule::new("10.0.0.0/8".parse().unwrap(), None, Some(26), Action::Accept).unwrap()],
//!     Action::Reject,
//! );
//! assert!(f.accepts(&"10.1.0.0/16".parse().unwrap()));
//! assert!(!f.accepts(&"10.1.0.0/28".parse().unwrap()));
//! ```

mod max_prefix;
mod prefix;

use ipnetwork::IpNetwork;
use serde::{Deserialize, Serialize};

pub use max_prefix::{MaxPrefix, MaxPrefixAction, MaxPrefixTracker, MaxPrefixVerdict};
pub use prefix::{Action, PrefixFilter, PrefixRule, RangeError};

/// A peer's filters.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Policy {
    /// Applied to received routes; `None`: the RFC 8212 default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub import: Option<PrefixFilter>,
    /// Applied to routes sent; `None`: the RFC 8212 default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub export: Option<PrefixFilter>,
}

/// RFC 8212 §3: with no policy configured, an eBGP session neither accepts
/// nor sends routes; an iBGP session does both.
fn allows(filter: Option<&PrefixFilter>, peer_is_ebgp: bool, prefix: &IpNetwork) -> bool {
    match filter {
        Some(f) => f.accepts(prefix),
        None => !peer_is_ebgp,
    }
}

impl Policy {
    /// Whether a received route for `prefix` is accepted.
    pub fn import_allows(&self, peer_is_ebgp: bool, prefix: &IpNetwork) -> bool {
        allows(self.import.as_ref(), peer_is_ebgp, prefix)
    }

    /// Whether a route for `prefix` may be sent.
    pub fn export_allows(&self, peer_is_ebgp: bool, prefix: &IpNetwork) -> bool {
        allows(self.export.as_ref(), peer_is_ebgp, prefix)
    }
}
