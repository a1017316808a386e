//! How paths are stored: 12 bytes per path, one table bucket per prefix,
//! and the per-prefix operations (add, remove, whole-table sweeps) that
//! keep the best path first and report best-path changes.

use std::collections::hash_map::Entry;
use std::iter::once;

use ipnetwork::IpNetwork;

use super::decision::Env;
use super::intern::{AttrCache, AttrId};
pub(super) use super::path::{LOCAL_INDEX, STALE, StoredPath};
use super::table::{AddrKey, LenTables};
use super::{BestChange, Path, PeerId, PeerInfo};

/// The paths of one prefix: 12 bytes for the common single path, an index
/// into [`Multi`] otherwise.
#[derive(Clone, Copy, Debug)]
pub(super) enum Route {
    One(StoredPath),
    Many(u32),
}

// The memory budget rests on these: a 16-byte IPv4 bucket (4-byte key and
// a 12-byte route), the variant tag living in the attribute id's niche.
const _: () = assert!(std::mem::size_of::<StoredPath>() == 12);
const _: () = assert!(std::mem::size_of::<Route>() == 12);
const _: () = assert!(std::mem::size_of::<(u32, Route)>() == 16);

/// The paths of one prefix with more than one, best first. Two paths (a
/// prefix learned from two route reflectors, the common redundant case)
/// are held inline: no allocation, and one cache miss fewer per prefix on
/// a whole-table sweep.
#[derive(Clone, Debug)]
pub(super) enum PathList {
    /// Up to two paths: the count and the paths.
    Inline(u8, [StoredPath; 2]),
    /// More.
    Heap(Vec<StoredPath>),
}

impl Default for PathList {
    fn default() -> PathList {
        PathList::Heap(Vec::new())
    }
}

impl std::ops::Deref for PathList {
    type Target = [StoredPath];

    fn deref(&self) -> &[StoredPath] {
        match self {
            PathList::Inline(n, a) => a.get(..usize::from(*n)).unwrap_or_default(),
            PathList::Heap(v) => v,
        }
    }
}

impl std::ops::DerefMut for PathList {
    fn deref_mut(&mut self) -> &mut [StoredPath] {
        match self {
            PathList::Inline(n, a) => a.get_mut(..usize::from(*n)).unwrap_or_default(),
            PathList::Heap(v) => v,
        }
    }
}

impl PathList {
    /// A list of two paths.
    pub(super) fn two(a: StoredPath, b: StoredPath) -> PathList {
        PathList::Inline(2, [a, b])
    }

    pub(super) fn push(&mut self, p: StoredPath) {
        match self {
            PathList::Inline(n, a) if *n < 2 => {
                if let Some(slot) = a.get_mut(usize::from(*n)) {
                    *slot = p;
                    *n += 1;
                }
            }
            PathList::Inline(_, [a, b]) => *self = PathList::Heap(vec![*a, *b, p]),
            PathList::Heap(v) => v.push(p),
        }
    }

    /// Removes the path at `i`, keeping the order of the others.
    pub(super) fn remove(&mut self, i: usize) -> Option<StoredPath> {
        let mut gone = None;
        self.retain_indexed(|j, p| {
            if j == i {
                gone = Some(*p);
            }
            j != i
        });
        gone
    }

    /// Keeps the paths for which `f` holds, in order.
    pub(super) fn retain(&mut self, mut f: impl FnMut(&StoredPath) -> bool) {
        self.retain_indexed(|_, p| f(p));
    }

    fn retain_indexed(&mut self, mut f: impl FnMut(usize, &StoredPath) -> bool) {
        match self {
            PathList::Inline(n, a) => {
                let mut kept = 0u8;
                for j in 0..usize::from(*n) {
                    let Some(p) = a.get(j).copied() else { break };
                    if f(j, &p) {
                        if let Some(slot) = a.get_mut(usize::from(kept)) {
                            *slot = p;
                        }
                        kept += 1;
                    }
                }
                *n = kept;
            }
            PathList::Heap(v) => {
                let mut j = 0usize;
                v.retain(|p| {
                    let keep = f(j, p);
                    j += 1;
                    keep
                });
            }
        }
    }
}

/// Path lists of prefixes with more than one path.
#[derive(Debug, Default)]
pub(super) struct Multi {
    lists: Vec<PathList>,
    free: Vec<u32>,
}

impl Multi {
    pub(super) fn alloc(&mut self, list: PathList) -> u32 {
        match self.free.pop() {
            Some(i) => {
                if let Some(slot) = self.lists.get_mut(i as usize) {
                    *slot = list;
                }
                i
            }
            None => {
                self.lists.push(list);
                u32::try_from(self.lists.len() - 1).unwrap_or(u32::MAX)
            }
        }
    }

    pub(super) fn free(&mut self, i: u32) {
        if let Some(slot) = self.lists.get_mut(i as usize) {
            *slot = PathList::default();
            self.free.push(i);
        }
    }

    pub(super) fn list(&self, i: u32) -> &[StoredPath] {
        self.lists.get(i as usize).map_or(&[], |l| l)
    }

    pub(super) fn list_mut(&mut self, i: u32) -> Option<&mut PathList> {
        self.lists.get_mut(i as usize)
    }
}

/// A best-path change in stored form.
#[derive(Clone, Copy, Debug)]
pub(super) struct Delta {
    pub(super) old: Option<StoredPath>,
    pub(super) new: Option<StoredPath>,
}

impl Delta {
    pub(super) fn between(old: Option<StoredPath>, new: Option<StoredPath>) -> Option<Delta> {
        (old != new).then_some(Delta { old, new })
    }
}

/// What [`upsert`] did.
pub(super) struct Upserted {
    pub(super) new_path: bool,
    pub(super) delta: Option<Delta>,
}

/// The parts of the RIB a per-prefix operation touches besides the table.
pub(super) struct Store<'a> {
    pub(super) attrs: &'a mut AttrCache,
    pub(super) multi: &'a mut Multi,
    pub(super) peers: &'a [Option<PeerInfo>],
    pub(super) local_as: u32,
}

impl Store<'_> {
    pub(super) fn reselect(&mut self, list: u32) {
        let env = Env {
            attrs: self.attrs,
            peers: self.peers,
            local_as: self.local_as,
        };
        if let Some(l) = self.multi.list_mut(list) {
            env.reselect(l);
        }
    }

    pub(super) fn best_of(&self, list: u32) -> Option<StoredPath> {
        self.multi.list(list).first().copied()
    }

    pub(super) fn path(&self, p: &StoredPath) -> Path {
        path_of(self.attrs, self.peers, p)
    }

    pub(super) fn change(&self, prefix: IpNetwork, d: Delta) -> BestChange {
        BestChange {
            prefix,
            new: d.new.map(|p| self.path(&p)),
            old_peer: d
                .old
                .and_then(|p| self.peers.get(p.peer_index()).and_then(Option::as_ref))
                .map(|i| i.id),
        }
    }
}

pub(super) fn path_of(attrs: &AttrCache, peers: &[Option<PeerInfo>], p: &StoredPath) -> Path {
    Path {
        peer: peers
            .get(p.peer_index())
            .and_then(Option::as_ref)
            .map_or(PeerId::LOCAL, |i| i.id),
        path_id: p.path_id,
        attrs: attrs.get(p.attr).clone(),
        stale: p.is_stale(),
    }
}

/// Adds or replaces `new` in the paths of `addr/len`.
#[inline]
pub(super) fn upsert<K: AddrKey>(
    table: &mut LenTables<K, Route>,
    s: &mut Store<'_>,
    addr: K,
    len: u8,
    new: StoredPath,
) -> Upserted {
    let Some(entry) = table.entry(addr, len) else {
        return Upserted {
            new_path: false,
            delta: None,
        };
    };
    // Acquire before any release: re-announcing the same set must not free it.
    s.attrs.acquire(new.attr);
    let mut new_prefix = false;
    let result = match entry {
        Entry::Vacant(v) => {
            v.insert(Route::One(new));
            new_prefix = true;
            Upserted {
                new_path: true,
                delta: Delta::between(None, Some(new)),
            }
        }
        Entry::Occupied(mut o) => match *o.get() {
            Route::One(old) if old.same(&new) => {
                *o.get_mut() = Route::One(new);
                s.attrs.release(old.attr);
                Upserted {
                    new_path: false,
                    delta: Delta::between(Some(old), Some(new)),
                }
            }
            Route::One(old) => {
                let i = s.multi.alloc(PathList::two(old, new));
                *o.get_mut() = Route::Many(i);
                s.reselect(i);
                Upserted {
                    new_path: true,
                    delta: Delta::between(Some(old), s.best_of(i)),
                }
            }
            Route::Many(i) => {
                let old_best = s.best_of(i);
                let mut new_path = false;
                let mut released = None;
                if let Some(list) = s.multi.list_mut(i) {
                    match list.iter_mut().find(|p| p.same(&new)) {
                        Some(p) => released = Some(std::mem::replace(p, new).attr),
                        None => {
                            list.push(new);
                            new_path = true;
                        }
                    }
                }
                if let Some(a) = released {
                    s.attrs.release(a);
                }
                s.reselect(i);
                Upserted {
                    new_path,
                    delta: Delta::between(old_best, s.best_of(i)),
                }
            }
        },
    };
    if new_prefix {
        table.added();
    }
    result
}

/// Removes the path of `peer_index`/`path_id` from `addr/len`; returns
/// whether there was one, and the best-path change.
#[inline]
pub(super) fn remove<K: AddrKey>(
    table: &mut LenTables<K, Route>,
    s: &mut Store<'_>,
    addr: K,
    len: u8,
    peer_index: u32,
    path_id: u32,
) -> (bool, Option<Delta>) {
    let probe = StoredPath {
        attr: AttrId::DUMMY,
        peer: peer_index,
        path_id,
    };
    let Some(route) = table.get_mut(addr, len) else {
        return (false, None);
    };
    match *route {
        Route::One(old) if old.same(&probe) => {
            s.attrs.release(old.attr);
            table.remove(addr, len);
            (true, Delta::between(Some(old), None))
        }
        Route::One(_) => (false, None),
        Route::Many(i) => {
            let old_best = s.best_of(i);
            let Some(list) = s.multi.list_mut(i) else {
                return (false, None);
            };
            let Some(at) = list.iter().position(|p| p.same(&probe)) else {
                return (false, None);
            };
            let Some(gone) = list.remove(at) else {
                return (false, None);
            };
            let only = (list.len() == 1).then(|| list.first().copied()).flatten();
            s.attrs.release(gone.attr);
            let new_best = match only {
                Some(p) => {
                    *route = Route::One(p);
                    s.multi.free(i);
                    Some(p)
                }
                None => {
                    // Even removing a path that is not the best can change
                    // the best: the MED step (RFC 4271 §9.1.2.2 c) is not a
                    // total order, and the removed path may have been what
                    // eliminated another.
                    s.reselect(i);
                    s.best_of(i)
                }
            };
            (true, Delta::between(old_best, new_best))
        }
    }
}

/// What a whole-table walk does to one peer's paths.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Sweep {
    /// Drop them all (the peer went away).
    All,
    /// Set their stale bit (the peer is restarting).
    Mark,
    /// Drop those still stale (End-of-RIB, or the restart timer expired).
    Stale,
}

/// Applies `op` to `peer_index`'s paths in one family's table; returns the
/// number of paths removed or marked.
pub(super) fn sweep<K: AddrKey>(
    table: &mut LenTables<K, Route>,
    s: &mut Store<'_>,
    peer_index: u32,
    op: Sweep,
    out: &mut impl Extend<BestChange>,
) -> usize {
    let mut touched = 0usize;
    let mine = |p: &StoredPath| p.peer & !STALE == peer_index;
    // Whether to act on one of the peer's paths.
    let hit = |p: &StoredPath| match op {
        Sweep::All => true,
        Sweep::Mark => !p.is_stale(),
        Sweep::Stale => p.is_stale(),
    };
    table.retain(|net, route| match *route {
        Route::One(p) if mine(&p) && hit(&p) => {
            touched += 1;
            if op == Sweep::Mark {
                let marked = StoredPath {
                    peer: p.peer | STALE,
                    ..p
                };
                *route = Route::One(marked);
                out.extend(once(s.change(
                    net,
                    Delta {
                        old: Some(p),
                        new: Some(marked),
                    },
                )));
                true
            } else {
                s.attrs.release(p.attr);
                out.extend(once(s.change(
                    net,
                    Delta {
                        old: Some(p),
                        new: None,
                    },
                )));
                false
            }
        }
        Route::One(_) => true,
        Route::Many(i) => {
            let old_best = s.best_of(i);
            let mut released = Vec::new();
            let mut marked = 0usize;
            let Some(list) = s.multi.list_mut(i) else {
                return true;
            };
            let before = list.len();
            if op == Sweep::Mark {
                for p in list.iter_mut().filter(|p| mine(p) && hit(p)) {
                    p.peer |= STALE;
                    marked += 1;
                }
                touched += marked;
            } else {
                list.retain(|p| {
                    let drop = mine(p) && hit(p);
                    if drop {
                        released.push(p.attr);
                    }
                    !drop
                });
                touched += before - list.len();
            }
            let changed = marked > 0 || list.len() != before;
            let remaining = list.len();
            let first = list.first().copied();
            for a in released {
                s.attrs.release(a);
            }
            if !changed {
                return true;
            }
            let keep = match (remaining, first) {
                (0, _) | (_, None) => {
                    s.multi.free(i);
                    false
                }
                (1, Some(p)) => {
                    s.multi.free(i);
                    *route = Route::One(p);
                    true
                }
                _ => {
                    s.reselect(i);
                    true
                }
            };
            let new_best = match *route {
                Route::One(p) if keep => Some(p),
                Route::Many(i) if keep => s.best_of(i),
                _ => None,
            };
            if let Some(d) = Delta::between(old_best, new_best) {
                out.extend(once(s.change(net, d)));
            }
            keep
        }
    });
    touched
}
