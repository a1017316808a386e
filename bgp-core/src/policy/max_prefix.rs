//! Maximum-prefix limits (RFC 4271 §8.2.2 "optional" limit, the
//! NOTIFICATION of RFC 4486 §4).

use serde::{Deserialize, Serialize};

use crate::wire::{Family, Notification};

/// What crossing the limit does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MaxPrefixAction {
    /// Log a warning and keep the session.
    WarnOnly,
    /// Close the session with Cease / Maximum Number of Prefixes Reached.
    Cease,
}

/// A limit on the prefixes accepted from a peer in one family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct MaxPrefix {
    /// The most prefixes accepted; one more crosses the limit.
    pub limit: u32,
    /// What crossing does.
    pub action: MaxPrefixAction,
    /// Warn once when the count first exceeds this percentage of `limit`
    /// (FRR's threshold), before the limit itself. `None`: no early
    /// warning.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warn_percent: Option<u8>,
    /// With [`MaxPrefixAction::Cease`]: start the session again this many
    /// seconds after the Cease (Cisco's and FRR's `maximum-prefix N
    /// restart`, BIRD's `action restart`). `None`: the peer stays down
    /// until it is re-added or the speaker restarts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart_after: Option<u32>,
}

impl MaxPrefix {
    /// A limit without early warning.
    pub fn new(limit: u32, action: MaxPrefixAction) -> MaxPrefix {
        MaxPrefix {
            limit,
            action,
            warn_percent: None,
            restart_after: None,
        }
    }

    /// The count above which the early warning fires.
    fn warn_at(&self) -> Option<u64> {
        let pct = u64::from(self.warn_percent?.min(100));
        Some(u64::from(self.limit) * pct / 100)
    }
}

/// The verdict after an update.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MaxPrefixVerdict {
    /// Within bounds, or already warned.
    Ok,
    /// Log a warning: the count crossed the threshold or, with
    /// [`MaxPrefixAction::WarnOnly`], the limit.
    Warn {
        /// The accepted count.
        count: usize,
        /// The configured limit.
        limit: u32,
    },
    /// Send this NOTIFICATION and close the session (RFC 4486 §4).
    Cease(Notification),
}

/// Tracks one peer's count in one family against a [`MaxPrefix`].
///
/// A warning fires once when its level is first crossed and re-arms when
/// the count falls back to or below it, so a peer hovering at the limit
/// does not flood the log. Cease is returned every time the count is over
/// the limit (the session is going down anyway).
///
/// ```
/// use bgp_core::policy::{MaxPrefix, MaxPrefixAction, MaxPrefixTracker, MaxPrefixVerdict};
/// use bgp_core::wire::Family;
/// let mut t = MaxPrefixTracker::new(MaxPrefix::new(2, MaxPrefixAction::Cease), Family::Ipv4Unicast);
/// assert_eq!(t.check(2), MaxPrefixVerdict::Ok);
/// assert!(matches!(t.check(3), MaxPrefixVerdict::Cease(_)));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MaxPrefixTracker {
    config: MaxPrefix,
    family: Family,
    warned_threshold: bool,
    warned_limit: bool,
}

impl MaxPrefixTracker {
    /// A tracker for `family`.
    pub fn new(config: MaxPrefix, family: Family) -> MaxPrefixTracker {
        MaxPrefixTracker {
            config,
            family,
            warned_threshold: false,
            warned_limit: false,
        }
    }

    /// The limit.
    pub fn config(&self) -> &MaxPrefix {
        &self.config
    }

    /// The verdict for `accepted` prefixes (e.g.
    /// [`crate::rib::Rib::received`] after an update).
    pub fn check(&mut self, accepted: usize) -> MaxPrefixVerdict {
        let count = u64::try_from(accepted).unwrap_or(u64::MAX);
        let limit = self.config.limit;
        if count > u64::from(limit) {
            return match self.config.action {
                MaxPrefixAction::Cease => {
                    MaxPrefixVerdict::Cease(Notification::max_prefixes_reached(self.family, limit))
                }
                MaxPrefixAction::WarnOnly if !self.warned_limit => {
                    self.warned_limit = true;
                    self.warned_threshold = true;
                    MaxPrefixVerdict::Warn {
                        count: accepted,
                        limit,
                    }
                }
                MaxPrefixAction::WarnOnly => MaxPrefixVerdict::Ok,
            };
        }
        self.warned_limit = false;
        match self.config.warn_at() {
            Some(at) if count > at => {
                if self.warned_threshold {
                    MaxPrefixVerdict::Ok
                } else {
                    self.warned_threshold = true;
                    MaxPrefixVerdict::Warn {
                        count: accepted,
                        limit,
                    }
                }
            }
            _ => {
                self.warned_threshold = false;
                MaxPrefixVerdict::Ok
            }
        }
    }
}
