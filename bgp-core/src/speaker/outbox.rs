//! Adj-RIB-Out changes waiting for one peer, packed into as few UPDATEs as
//! the negotiated message size allows.
//!
//! Changes coalesce per prefix (the newest wins), so a flapping route costs
//! one entry however often it changes, and memory is bounded by the number
//! of prefixes, not by time. The peer task pulls batches when its socket
//! has room ([`UpdateSource`]); announcements sharing one attribute set go
//! out together, about 800 IPv4 /26 per 4096-byte UPDATE.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};

use bytes::BytesMut;
use tokio::sync::Notify;

use crate::driver::UpdateSource;
use crate::wire::{
    AttrValue, DecodeContext, Family, HEADER_LEN, MpNlri, MpReach, MpUnreach, NextHop,
    PathAttribute, Prefix, Update,
};

/// The attributes of routes we send: everything but the next hop (which
/// becomes NEXT_HOP or goes into MP_REACH_NLRI by family) and the MP
/// attributes.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct OutAttrs {
    /// Path attributes in ascending type order, without NEXT_HOP,
    /// MP_REACH_NLRI and MP_UNREACH_NLRI.
    pub attributes: Vec<PathAttribute>,
    /// The next hop: IPv4 for IPv4 routes (or IPv6, RFC 8950), IPv6 for IPv6.
    pub next_hop: NextHop,
}

/// One pending change for one prefix.
#[derive(Clone, Debug)]
enum Change {
    Announce(Arc<OutAttrs>),
    Withdraw,
}

#[derive(Debug, Default)]
struct State {
    /// Newest change per prefix, with its sequence number.
    latest: HashMap<Prefix, (u64, Change)>,
    /// Prefixes in the order their newest change arrived; an entry whose
    /// sequence number is not the newest is skipped (lazy deletion).
    order: VecDeque<(u64, Prefix)>,
    next_seq: u64,
    /// End-of-RIB markers to send once everything queued before them is out.
    end_of_rib: Vec<(u64, Family)>,
    ctx: DecodeContext,
}

/// The outgoing queue of one peer.
#[derive(Debug, Default)]
pub struct Outbox {
    state: Mutex<State>,
    notify: Notify,
}

impl Outbox {
    /// An empty outbox for a session with the send-direction context `ctx`.
    pub fn new(ctx: DecodeContext) -> Outbox {
        Outbox {
            state: Mutex::new(State {
                ctx,
                ..State::default()
            }),
            notify: Notify::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Forgets everything pending and sets the context of a new session.
    pub fn reset(&self, ctx: DecodeContext) {
        let mut s = self.lock();
        *s = State {
            ctx,
            ..State::default()
        };
    }

    /// Queues an announcement.
    pub fn announce(&self, prefix: Prefix, attrs: Arc<OutAttrs>) {
        self.push(prefix, Change::Announce(attrs));
    }

    /// Queues a withdrawal.
    pub fn withdraw(&self, prefix: Prefix) {
        self.push(prefix, Change::Withdraw);
    }

    /// Queues an End-of-RIB marker for `family` after what is queued now
    /// (RFC 4724 §2).
    pub fn end_of_rib(&self, family: Family) {
        let mut s = self.lock();
        let seq = s.next_seq;
        s.end_of_rib.push((seq, family));
        drop(s);
        self.notify.notify_one();
    }

    fn push(&self, prefix: Prefix, change: Change) {
        let mut s = self.lock();
        let seq = s.next_seq;
        s.next_seq = seq.wrapping_add(1);
        s.latest.insert(prefix, (seq, change));
        s.order.push_back((seq, prefix));
        drop(s);
        self.notify.notify_one();
    }

    /// Number of prefixes with a pending change.
    pub fn pending(&self) -> usize {
        self.lock().latest.len()
    }
}

impl UpdateSource for Outbox {
    fn take(&self, max: usize) -> Vec<Update> {
        let mut s = self.lock();
        let ctx = s.ctx;
        let max_len = ctx.max_message_len();
        let mut out = Vec::new();
        while out.len() < max {
            // The first live change decides the kind of the next UPDATE.
            let Some(&(seq, first)) = s.order.front() else {
                break;
            };
            let live = s
                .latest
                .get(&first)
                .filter(|(q, _)| *q == seq)
                .map(|(_, c)| c.clone());
            let Some(change) = live else {
                s.order.pop_front();
                continue;
            };
            let family = first.family();
            let mut builder = Builder::new(&change, family, &ctx, max_len);
            // Fill with further live changes of the same kind, scanning a
            // bounded window so one call stays cheap.
            let mut kept = VecDeque::new();
            let mut scanned = 0usize;
            while let Some((seq, prefix)) = s.order.pop_front() {
                let same = match s.latest.get(&prefix) {
                    Some((q, c)) if *q == seq => {
                        Some(prefix.family() == family && change_matches(c, &change))
                    }
                    _ => None, // superseded: drop the stale order entry
                };
                match same {
                    None => continue,
                    Some(true) if builder.fits(&prefix) => {
                        builder.add(prefix);
                        s.latest.remove(&prefix);
                    }
                    Some(true) => {
                        kept.push_back((seq, prefix));
                        break;
                    }
                    Some(false) => {
                        kept.push_back((seq, prefix));
                        scanned = scanned.saturating_add(1);
                        if scanned > 4096 {
                            break;
                        }
                    }
                }
            }
            while let Some(e) = kept.pop_back() {
                s.order.push_front(e);
            }
            out.push(builder.finish());
        }
        // End-of-RIB markers whose predecessors are all out.
        let oldest_pending = s.order.front().map(|(q, _)| *q);
        while out.len() < max {
            let Some(pos) = s
                .end_of_rib
                .iter()
                .position(|(seq, _)| oldest_pending.is_none_or(|o| *seq <= o))
            else {
                break;
            };
            let (_, family) = s.end_of_rib.remove(pos);
            out.push(Update::end_of_rib_marker(family));
        }
        out
    }

    fn notify(&self) -> &Notify {
        &self.notify
    }
}

fn change_matches(a: &Change, b: &Change) -> bool {
    match (a, b) {
        (Change::Withdraw, Change::Withdraw) => true,
        (Change::Announce(x), Change::Announce(y)) => Arc::ptr_eq(x, y) || x == y,
        _ => false,
    }
}

/// Builds one UPDATE of one kind (withdraw, or announce with one attribute
/// set) for one family, tracking its encoded size.
struct Builder {
    family: Family,
    attrs: Option<Arc<OutAttrs>>,
    prefixes: Vec<Prefix>,
    add_path: bool,
    budget: usize,
}

impl Builder {
    fn new(change: &Change, family: Family, ctx: &DecodeContext, max_len: usize) -> Builder {
        let attrs = match change {
            Change::Announce(a) => Some(a.clone()),
            Change::Withdraw => None,
        };
        // Header, withdrawn length, attribute length.
        let mut fixed = HEADER_LEN + 4;
        if let Some(a) = &attrs {
            let mut scratch = BytesMut::new();
            let update = Update {
                withdrawn: vec![],
                attributes: a.attributes.clone(),
                nlri: vec![],
            };
            if crate::wire::Message::Update(update)
                .encode(ctx, &mut scratch)
                .is_ok()
            {
                fixed += scratch.len().saturating_sub(HEADER_LEN + 4);
            }
        }
        fixed += match (attrs.as_deref().map(|a| &a.next_hop), family) {
            // NEXT_HOP: flags, type, length, 4 bytes.
            (Some(NextHop::Ipv4(_)), Family::Ipv4Unicast) => 7,
            // MP_REACH: 4-byte header, AFI, SAFI, NH length, NH (≤ 32), reserved.
            (Some(_), _) => 4 + 3 + 1 + 32 + 1,
            (None, Family::Ipv4Unicast) => 0,
            // MP_UNREACH: 4-byte header, AFI, SAFI.
            (None, Family::Ipv6Unicast) => 4 + 3,
        };
        Builder {
            family,
            attrs,
            prefixes: Vec::new(),
            add_path: ctx.add_path.enabled(family),
            budget: max_len.saturating_sub(fixed),
        }
    }

    fn cost(&self, p: &Prefix) -> usize {
        1 + usize::from(p.network.prefix().div_ceil(8)) + if self.add_path { 4 } else { 0 }
    }

    fn fits(&self, p: &Prefix) -> bool {
        self.cost(p) <= self.budget
    }

    fn add(&mut self, p: Prefix) {
        self.budget = self.budget.saturating_sub(self.cost(&p));
        self.prefixes.push(p);
    }

    fn finish(self) -> Update {
        match (self.attrs, self.family) {
            (None, Family::Ipv4Unicast) => Update {
                withdrawn: self.prefixes,
                ..Update::default()
            },
            (None, Family::Ipv6Unicast) => Update {
                attributes: vec![PathAttribute::new(AttrValue::MpUnreach(MpUnreach {
                    afi: self.family.afi(),
                    safi: self.family.safi(),
                    withdrawn: MpNlri::Unicast(self.prefixes),
                }))],
                ..Update::default()
            },
            (Some(a), family) => {
                let mut attributes = a.attributes.clone();
                match (family, &a.next_hop) {
                    (Family::Ipv4Unicast, NextHop::Ipv4(nh)) => {
                        attributes.push(PathAttribute::new(AttrValue::NextHop(*nh)));
                        attributes.sort_by_key(PathAttribute::code);
                        Update {
                            withdrawn: vec![],
                            attributes,
                            nlri: self.prefixes,
                        }
                    }
                    (family, next_hop) => {
                        // IPv6 routes, and IPv4 routes over an IPv6 next hop
                        // (RFC 8950), go in MP_REACH_NLRI.
                        attributes.push(PathAttribute::new(AttrValue::MpReach(MpReach {
                            afi: family.afi(),
                            safi: family.safi(),
                            next_hop: next_hop.clone(),
                            nlri: MpNlri::Unicast(self.prefixes),
                        })));
                        attributes.sort_by_key(PathAttribute::code);
                        Update {
                            withdrawn: vec![],
                            attributes,
                            nlri: vec![],
                        }
                    }
                }
            }
        }
    }
}
