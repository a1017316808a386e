//! Prefix filters with FRR prefix-list semantics.

use ipnetwork::IpNetwork;
use serde::{Deserialize, Serialize};

/// What a filter does with a matching route.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// Let the route through.
    Accept,
    /// Drop the route.
    Reject,
}

/// A rule's prefix-length range is impossible.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid prefix range for {prefix}: need {} <= ge <= le <= {max}, got ge {ge:?} le {le:?}",
    prefix.prefix()
)]
pub struct RangeError {
    /// The rule's prefix.
    pub prefix: IpNetwork,
    /// The `ge` given.
    pub ge: Option<u8>,
    /// The `le` given.
    pub le: Option<u8>,
    /// The family's longest prefix (32 or 128).
    pub max: u8,
}

/// One rule of a [`PrefixFilter`], as in an FRR `ip prefix-list` entry.
///
/// A route matches when it lies inside `prefix` (its first `prefix.prefix()`
/// bits equal the rule's; host bits of the rule are ignored) and its length
/// is within a range:
///
/// | given       | lengths matched                        |
/// |-------------|----------------------------------------|
/// | neither     | exactly the rule's length              |
/// | `ge` only   | `ge` ..= 32 (IPv4) or 128 (IPv6)      |
/// | `le` only   | the rule's length ..= `le`             |
/// | both        | `ge` ..= `le`                          |
///
/// Valid rules satisfy rule length <= `ge` <= `le` <= family maximum
/// ([`PrefixRule::new`] and deserialisation check it); a rule built by hand
/// outside that range simply matches nothing there. An IPv4 rule never
/// matches an IPv6 route and vice versa.
///
/// ```
/// use bgp_core::policy::{Action, PrefixRule};
/// let r = PrefixRule::new("10.0.0.0/8".parse().unwrap(), Some(24), None, Action::Accept).unwrap();
/// assert!(r.matches(&"10.1.2.0/24".parse().unwrap()));
/// assert!(r.matches(&"10.1.2.64/26".parse().unwrap()));
/// assert!(!r.matches(&"10.1.0.0/16".parse().unwrap()));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", try_from = "RawRule")]
pub struct PrefixRule {
    /// The covering prefix.
    pub prefix: IpNetwork,
    /// Shortest length matched (see the table).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ge: Option<u8>,
    /// Longest length matched (see the table).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub le: Option<u8>,
    /// What to do with a match.
    pub action: Action,
}

/// [`PrefixRule`] before its range is checked.
#[derive(Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct RawRule {
    prefix: IpNetwork,
    #[serde(default)]
    ge: Option<u8>,
    #[serde(default)]
    le: Option<u8>,
    action: Action,
}

impl TryFrom<RawRule> for PrefixRule {
    type Error = RangeError;

    fn try_from(r: RawRule) -> Result<PrefixRule, RangeError> {
        PrefixRule::new(r.prefix, r.ge, r.le, r.action)
    }
}

fn max_len(net: &IpNetwork) -> u8 {
    match net {
        IpNetwork::V4(_) => 32,
        IpNetwork::V6(_) => 128,
    }
}

impl PrefixRule {
    /// A rule, checking rule length <= `ge` <= `le` <= 32 / 128.
    pub fn new(
        prefix: IpNetwork,
        ge: Option<u8>,
        le: Option<u8>,
        action: Action,
    ) -> Result<PrefixRule, RangeError> {
        let rule = PrefixRule {
            prefix,
            ge,
            le,
            action,
        };
        let (lo, hi) = rule.range();
        if lo < prefix.prefix() || lo > hi || hi > max_len(&prefix) {
            return Err(RangeError {
                prefix,
                ge,
                le,
                max: max_len(&prefix),
            });
        }
        Ok(rule)
    }

    /// A rule matching exactly `prefix`.
    pub fn exact(prefix: IpNetwork, action: Action) -> PrefixRule {
        PrefixRule {
            prefix,
            ge: None,
            le: None,
            action,
        }
    }

    /// The matched lengths, inclusive (see the table on the type).
    pub fn range(&self) -> (u8, u8) {
        let len = self.prefix.prefix();
        match (self.ge, self.le) {
            (None, None) => (len, len),
            (Some(ge), None) => (ge, max_len(&self.prefix)),
            (None, Some(le)) => (len, le),
            (Some(ge), Some(le)) => (ge, le),
        }
    }

    /// Whether `route` matches.
    pub fn matches(&self, route: &IpNetwork) -> bool {
        let (lo, hi) = self.range();
        let r = route.prefix();
        if r < lo || r > hi || r < self.prefix.prefix() {
            return false;
        }
        let len = u32::from(self.prefix.prefix());
        match (self.prefix, route) {
            (IpNetwork::V4(p), IpNetwork::V4(n)) => {
                let mask = u32::MAX.checked_shl(32 - len).unwrap_or(0);
                (u32::from(p.ip()) ^ u32::from(n.ip())) & mask == 0
            }
            (IpNetwork::V6(p), IpNetwork::V6(n)) => {
                let mask = u128::MAX.checked_shl(128 - len).unwrap_or(0);
                (u128::from(p.ip()) ^ u128::from(n.ip())) & mask == 0
            }
            _ => false,
        }
    }
}

/// An ordered list of rules: the first matching rule decides, and
/// `default` applies when none matches (FRR's implicit deny is
/// `default: reject`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct PrefixFilter {
    /// The rules, in order.
    #[serde(default)]
    pub rules: Vec<PrefixRule>,
    /// The action when no rule matches.
    pub default: Action,
}

impl PrefixFilter {
    /// A filter.
    pub fn new(rules: Vec<PrefixRule>, default: Action) -> PrefixFilter {
        PrefixFilter { rules, default }
    }

    /// The action for `route`.
    pub fn evaluate(&self, route: &IpNetwork) -> Action {
        self.rules
            .iter()
            .find(|r| r.matches(route))
            .map_or(self.default, |r| r.action)
    }

    /// Whether `route` is accepted.
    pub fn accepts(&self, route: &IpNetwork) -> bool {
        self.evaluate(route) == Action::Accept
    }
}
