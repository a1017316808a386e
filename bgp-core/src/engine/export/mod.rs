//! Export: best-path changes → per-group Adj-RIB-Out → encoded UPDATEs that
//! peer tasks pull when their sockets have room.
//!
//! The engine writes; each peer's driver task reads through its
//! [`PeerOutbox`]. Both sides meet in one [`ExportHub`] behind a mutex
//! (held briefly on either side; nothing in it does I/O).
//!
//! Each update group ([`group`]) keeps a log of the encoded messages its
//! changes produced, each tagged with its audience. A member reads the log
//! from its own cursor, taking the shared `Bytes` addressed to it, so a
//! message encoded once goes to every member without a copy. An entry is
//! dropped once every member has passed it.
//!
//! A member that is new (its session just came up), asked for a
//! ROUTE-REFRESH, or fell so far behind that the log outgrew
//! [`LOG_LIMIT`], catches up instead: it takes the prefixes of the log
//! entries it skips (deduplicated) and a shared snapshot of the table's
//! prefixes, and is sent each prefix as the table has it at that moment.
//! So a slow peer costs at most one set of prefixes, never a queue of
//! messages, and the log's memory stays bounded. End-of-RIB (RFC 4724 §2)
//! follows a new member's catch-up. A ROUTE-REFRESH (RFC 2918) catches up
//! one family, between BoRR and EoRR when the session negotiated
//! Enhanced Route Refresh (RFC 7313 §4).

pub(crate) mod group;
mod pack;

pub use pack::OutAttrs;
pub(crate) use pack::encoding_context;

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use bytes::Bytes;
use ipnetwork::IpNetwork;

use super::signal::Signal;
use crate::rib::{BestChange, PeerId, Rib};
use crate::wire::Family;
use crate::wire::iana::refresh_subtype;
use group::{Group, GroupKey, MemberInfo, Output, family_of};

/// Bytes of encoded messages (and their prefixes) a group's log may hold
/// before the members furthest behind are switched to catching up.
pub const LOG_LIMIT: usize = 32 << 20;

/// Prefixes a catching-up member is sent per message asked for.
const CATCH_UP_PER_MESSAGE: usize = 256;

/// One log entry: what one batch of changes sends one audience.
#[derive(Debug)]
struct LogEntry {
    out: Output,
    bytes: usize,
    /// Members whose cursor has not passed this entry.
    waiting: usize,
}

/// A group and its log.
#[derive(Debug)]
struct GroupSlot {
    group: Group,
    log: VecDeque<LogEntry>,
    /// Sequence number of `log[0]`.
    base: u64,
    bytes: usize,
    /// Bumped whenever the table changes, so a snapshot is reused only
    /// while it is current.
    generation: u64,
    snapshot: Option<(u64, Arc<[IpNetwork]>)>,
}

impl GroupSlot {
    fn tail(&self) -> u64 {
        self.base + self.log.len() as u64
    }

    fn entry_mut(&mut self, seq: u64) -> Option<&mut LogEntry> {
        let i = usize::try_from(seq.checked_sub(self.base)?).ok()?;
        self.log.get_mut(i)
    }

    fn trim(&mut self) {
        while self.log.front().is_some_and(|e| e.waiting == 0) {
            if let Some(e) = self.log.pop_front() {
                self.bytes = self.bytes.saturating_sub(e.bytes);
            }
            self.base += 1;
        }
    }

    fn snapshot(&mut self) -> Arc<[IpNetwork]> {
        match &self.snapshot {
            Some((g, s)) if *g == self.generation => s.clone(),
            _ => {
                let s: Arc<[IpNetwork]> = self.group.snapshot().into();
                self.snapshot = Some((self.generation, s.clone()));
                s
            }
        }
    }
}

/// What a member still needs besides the log.
#[derive(Debug, Default)]
struct CatchUp {
    /// Table prefixes to send (a new member, or a ROUTE-REFRESH), from
    /// `next` on.
    snapshot: Option<Arc<[IpNetwork]>>,
    next: usize,
    /// Prefixes changed in log entries the member skipped.
    dirty: VecDeque<IpNetwork>,
    dirty_set: HashSet<IpNetwork>,
}

impl CatchUp {
    fn add(&mut self, prefixes: &[IpNetwork]) {
        for p in prefixes {
            if self.dirty_set.insert(*p) {
                self.dirty.push_back(*p);
            }
        }
    }

    fn is_done(&self) -> bool {
        self.dirty.is_empty() && self.snapshot.as_ref().is_none_or(|s| self.next >= s.len())
    }
}

/// A peer whose session is up: where it reads in its group's log.
#[derive(Debug)]
struct Member {
    info: MemberInfo,
    group: usize,
    cursor: u64,
    catch_up: Option<CatchUp>,
    /// End-of-RIB markers due once the first catch-up is done.
    end_of_rib: Vec<Family>,
    /// Families whose BoRR is to be sent before anything else (RFC 7313
    /// §4).
    begin_refresh: Vec<Family>,
    /// Families whose EoRR is due once the catch-up is done.
    end_of_refresh: Vec<Family>,
}

#[derive(Debug)]
struct Slot {
    signal: Arc<Signal>,
    member: Option<Member>,
}

#[derive(Debug)]
struct Hub {
    local_as: u32,
    /// [`LOG_LIMIT`] unless changed.
    limit: usize,
    groups: Vec<Option<GroupSlot>>,
    peers: HashMap<PeerId, Slot>,
}

/// The export state shared by the engine and the peer tasks.
#[derive(Debug)]
pub struct ExportHub {
    hub: Mutex<Hub>,
}

/// One peer's view of the hub: where its driver task takes the encoded
/// UPDATEs it is to send.
#[derive(Debug)]
pub struct PeerOutbox {
    hub: Arc<ExportHub>,
    peer: PeerId,
    signal: Arc<Signal>,
}

impl ExportHub {
    /// An empty hub for a speaker in `local_as`.
    pub(crate) fn new(local_as: u32) -> Arc<ExportHub> {
        Arc::new(ExportHub {
            hub: Mutex::new(Hub {
                local_as,
                limit: LOG_LIMIT,
                groups: Vec::new(),
                peers: HashMap::new(),
            }),
        })
    }

    /// Sets the most bytes a group's log holds (see [`LOG_LIMIT`]).
    pub(crate) fn set_limit(&self, bytes: usize) {
        self.lock().limit = bytes;
    }

    fn lock(&self) -> MutexGuard<'_, Hub> {
        self.hub.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The outbox of a new peer (nothing to send until it joins a group).
    pub(crate) fn register(self: &Arc<Self>, peer: PeerId) -> Arc<PeerOutbox> {
        let signal = Arc::new(Signal::new());
        self.lock().peers.insert(
            peer,
            Slot {
                signal: signal.clone(),
                member: None,
            },
        );
        Arc::new(PeerOutbox {
            hub: self.clone(),
            peer,
            signal,
        })
    }

    /// Forgets a peer that was removed.
    pub(crate) fn unregister(&self, peer: PeerId) {
        let mut hub = self.lock();
        hub.leave(peer);
        hub.peers.remove(&peer);
    }

    /// The peer's session came up: it joins the group for `key` and will be
    /// sent the whole table, then End-of-RIB for `families`.
    pub(crate) fn join(&self, rib: &Rib, member: MemberInfo, key: GroupKey, families: &[Family]) {
        let mut hub = self.lock();
        hub.leave(member.peer);
        let local_as = hub.local_as;
        let gi = match hub
            .groups
            .iter()
            .position(|g| g.as_ref().is_some_and(|g| g.group.key == key))
        {
            Some(i) => i,
            None => {
                let slot = GroupSlot {
                    group: Group::new(key, local_as),
                    log: VecDeque::new(),
                    base: 0,
                    bytes: 0,
                    generation: 0,
                    snapshot: None,
                };
                match hub.groups.iter().position(Option::is_none) {
                    Some(i) => {
                        if let Some(g) = hub.groups.get_mut(i) {
                            *g = Some(slot);
                        }
                        i
                    }
                    None => {
                        hub.groups.push(Some(slot));
                        hub.groups.len() - 1
                    }
                }
            }
        };
        let Hub { groups, peers, .. } = &mut *hub;
        let Some(gs) = groups.get_mut(gi).and_then(Option::as_mut) else {
            return;
        };
        if gs.group.join(rib, member) {
            gs.generation += 1;
        }
        let snapshot = gs.snapshot();
        let cursor = gs.tail();
        if let Some(slot) = peers.get_mut(&member.peer) {
            slot.member = Some(Member {
                info: member,
                group: gi,
                cursor,
                catch_up: Some(CatchUp {
                    snapshot: Some(snapshot),
                    ..CatchUp::default()
                }),
                end_of_rib: families.to_vec(),
                begin_refresh: Vec::new(),
                end_of_refresh: Vec::new(),
            });
            slot.signal.raise();
        }
    }

    /// The peer's session went down: it leaves its group.
    pub(crate) fn leave(&self, peer: PeerId) {
        self.lock().leave(peer);
    }

    /// The peer asked for `family` again (ROUTE-REFRESH, RFC 2918 §4):
    /// every prefix of that family is sent as the table has it, after a
    /// BoRR and followed by an EoRR if `enhanced` (RFC 7313 §4).
    pub(crate) fn refresh(&self, peer: PeerId, family: Family, enhanced: bool) {
        let mut hub = self.lock();
        let Hub { groups, peers, .. } = &mut *hub;
        let Some(slot) = peers.get_mut(&peer) else {
            return;
        };
        let Some(m) = slot.member.as_mut() else {
            return;
        };
        let Some(gs) = groups.get_mut(m.group).and_then(Option::as_mut) else {
            return;
        };
        let table = gs.snapshot();
        absorb(gs, m);
        if let Some(c) = m.catch_up.as_mut() {
            // What an earlier catch-up has still to send of the other
            // families stays; this family is sent whole, once, after it.
            let mut todo: Vec<IpNetwork> = c
                .snapshot
                .as_ref()
                .and_then(|s| s.get(c.next..))
                .unwrap_or_default()
                .iter()
                .filter(|n| family_of(n) != family)
                .copied()
                .collect();
            todo.extend(table.iter().filter(|n| family_of(n) == family));
            c.snapshot = Some(todo.into());
            c.next = 0;
        }
        // A refresh of this family already between its BoRR and EoRR
        // gets no second BoRR: the family is sent whole before the EoRR.
        if enhanced && !m.end_of_refresh.contains(&family) {
            m.begin_refresh.push(family);
            m.end_of_refresh.push(family);
        }
        slot.signal.raise();
    }

    /// Prefixes the peer holds from us.
    pub(crate) fn advertised(&self, peer: PeerId) -> usize {
        let hub = self.lock();
        let Some(m) = hub.peers.get(&peer).and_then(|s| s.member.as_ref()) else {
            return 0;
        };
        hub.groups
            .get(m.group)
            .and_then(Option::as_ref)
            .map_or(0, |g| g.group.advertised(m.info))
    }

    /// Number of update groups and of prefixes in their tables (status and
    /// tests).
    pub(crate) fn groups(&self) -> Vec<(usize, usize)> {
        self.lock()
            .groups
            .iter()
            .flatten()
            .map(|g| (g.group.members.len(), g.group.len()))
            .collect()
    }

    /// Sends best-path changes to every group.
    pub(crate) fn propagate(&self, rib: &Rib, changes: &[BestChange]) {
        if changes.is_empty() {
            return;
        }
        let mut wake: Vec<Arc<Signal>> = Vec::new();
        {
            let mut hub = self.lock();
            let limit = hub.limit;
            let Hub { groups, peers, .. } = &mut *hub;
            for (gi, gs) in groups.iter_mut().enumerate() {
                let Some(gs) = gs.as_mut() else { continue };
                let outputs = gs.group.apply(rib, changes);
                if outputs.is_empty() {
                    continue;
                }
                gs.generation += 1;
                let members = gs.group.members.len();
                for out in outputs {
                    let bytes = out.messages.iter().map(Bytes::len).sum::<usize>()
                        + out.prefixes.len() * std::mem::size_of::<IpNetwork>();
                    gs.bytes += bytes;
                    gs.log.push_back(LogEntry {
                        out,
                        bytes,
                        waiting: members,
                    });
                }
                while gs.bytes > limit {
                    let base = gs.base;
                    let mut forced = 0;
                    for slot in peers.values_mut() {
                        if let Some(m) = slot.member.as_mut()
                            && m.group == gi
                            && m.cursor == base
                        {
                            absorb(gs, m);
                            forced += 1;
                        }
                    }
                    gs.trim();
                    if forced == 0 {
                        break;
                    }
                }
                wake.extend(
                    peers
                        .values()
                        .filter(|s| s.member.as_ref().is_some_and(|m| m.group == gi))
                        .map(|s| s.signal.clone()),
                );
            }
        }
        for s in wake {
            s.raise();
        }
    }
}

/// Moves `m` past every log entry, taking the prefixes of those addressed
/// to it into its catch-up.
fn absorb(gs: &mut GroupSlot, m: &mut Member) {
    let tail = gs.tail();
    let catch_up = m.catch_up.get_or_insert_with(CatchUp::default);
    while m.cursor < tail {
        if let Some(e) = gs.entry_mut(m.cursor) {
            if e.out.audience.includes(m.info.peer) {
                catch_up.add(&e.out.prefixes);
            }
            e.waiting = e.waiting.saturating_sub(1);
        }
        m.cursor += 1;
    }
}

impl Hub {
    fn leave(&mut self, peer: PeerId) {
        let Some(m) = self.peers.get_mut(&peer).and_then(|s| s.member.take()) else {
            return;
        };
        let Some(gs) = self.groups.get_mut(m.group).and_then(Option::as_mut) else {
            return;
        };
        let tail = gs.tail();
        let mut seq = m.cursor;
        while seq < tail {
            if let Some(e) = gs.entry_mut(seq) {
                e.waiting = e.waiting.saturating_sub(1);
            }
            seq += 1;
        }
        gs.trim();
        gs.group.leave(peer);
        if gs.group.members.is_empty()
            && let Some(slot) = self.groups.get_mut(m.group)
        {
            *slot = None;
        }
    }
}

impl PeerOutbox {
    /// The peer this outbox belongs to.
    pub fn peer(&self) -> PeerId {
        self.peer
    }

    /// Raised whenever [`PeerOutbox::take`] may return something.
    pub fn signal(&self) -> &Signal {
        &self.signal
    }

    /// Appends the next encoded UPDATEs for this peer (about `max`
    /// messages) to `out`; returns whether more are waiting.
    pub fn take(&self, max: usize, out: &mut Vec<Bytes>) -> bool {
        let mut hub = self.hub.lock();
        let Hub { groups, peers, .. } = &mut *hub;
        let Some(m) = peers.get_mut(&self.peer).and_then(|s| s.member.as_mut()) else {
            return false;
        };
        let Some(gs) = groups.get_mut(m.group).and_then(Option::as_mut) else {
            return false;
        };
        for f in std::mem::take(&mut m.begin_refresh) {
            out.extend(gs.group.refresh_marker(f, refresh_subtype::BORR));
        }
        if m.catch_up.is_some() {
            absorb(gs, m);
            if let Some(c) = m.catch_up.as_mut() {
                let budget = max.max(1) * CATCH_UP_PER_MESSAGE;
                let mut chunk = Vec::with_capacity(budget);
                while chunk.len() < budget {
                    let Some(p) = c.dirty.pop_front() else { break };
                    c.dirty_set.remove(&p);
                    chunk.push(p);
                }
                // Prefixes that changed may have been withdrawn: those are
                // sent as withdrawals. Snapshot prefixes are all present.
                out.extend(gs.group.catch_up(m.info, &chunk, true));
                chunk.clear();
                if let Some(s) = &c.snapshot {
                    let end = c.next.saturating_add(budget).min(s.len());
                    chunk.extend_from_slice(s.get(c.next..end).unwrap_or_default());
                    c.next = end;
                }
                out.extend(gs.group.catch_up(m.info, &chunk, false));
                if c.is_done() {
                    m.catch_up = None;
                }
            }
        } else {
            let mut taken = 0;
            while taken < max {
                let Some(e) = gs.entry_mut(m.cursor) else {
                    break;
                };
                if e.out.audience.includes(m.info.peer) {
                    taken += e.out.messages.len();
                    out.extend(e.out.messages.iter().cloned());
                }
                e.waiting = e.waiting.saturating_sub(1);
                m.cursor += 1;
            }
        }
        gs.trim();
        if m.catch_up.is_none() && m.cursor == gs.tail() {
            for f in std::mem::take(&mut m.end_of_rib) {
                out.extend(gs.group.end_of_rib(f));
            }
            for f in std::mem::take(&mut m.end_of_refresh) {
                out.extend(gs.group.refresh_marker(f, refresh_subtype::EORR));
            }
        }
        m.catch_up.is_some() || m.cursor < gs.tail()
    }
}
