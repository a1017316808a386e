//! Interned attribute sets: one `Arc<PathAttrs>` per distinct set.
//!
//! Routes refer to their set by a 4-byte [`AttrId`] rather than an 8-byte
//! `Arc`, which keeps a stored path at 12 bytes (see `table.rs`), and the
//! cache counts references itself: a set is freed the moment its last route
//! goes, so there is nothing to purge later. Handles given out (`Arc`
//! clones in [`super::Path`]) live on independently.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Arc;

use super::attrs::PathAttrs;

/// The index of an interned attribute set (1-based so `Option<AttrId>` and
/// the route enum need no extra tag).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct AttrId(NonZeroU32);

impl AttrId {
    /// An id never handed out, for probes that compare other fields.
    pub(crate) const DUMMY: AttrId = AttrId(NonZeroU32::MAX);

    /// A number for ordering: sets interned earlier come first.
    pub(crate) fn index(self) -> u32 {
        self.0.get()
    }
}

#[derive(Debug)]
struct Slot {
    attrs: Option<Arc<PathAttrs>>,
    refs: u32,
}

/// Distinct attribute sets and how many routes use each.
#[derive(Debug, Default)]
pub(crate) struct AttrCache {
    ids: HashMap<Arc<PathAttrs>, AttrId>,
    slots: Vec<Slot>,
    free: Vec<u32>,
}

impl AttrCache {
    /// An empty cache.
    pub(crate) fn new() -> AttrCache {
        AttrCache::default()
    }

    /// Number of distinct attribute sets held.
    pub(crate) fn len(&self) -> usize {
        self.ids.len()
    }

    /// The id of `attrs`, adding it with no references if new. A caller
    /// that ends up storing no route with it calls [`Self::release_unused`].
    pub(crate) fn intern(&mut self, attrs: Arc<PathAttrs>) -> AttrId {
        if let Some(id) = self.ids.get(&*attrs) {
            return *id;
        }
        let index = match self.free.pop() {
            Some(i) => {
                if let Some(s) = self.slots.get_mut(i as usize) {
                    s.attrs = Some(attrs.clone());
                    s.refs = 0;
                }
                i
            }
            None => {
                self.slots.push(Slot {
                    attrs: Some(attrs.clone()),
                    refs: 0,
                });
                u32::try_from(self.slots.len() - 1).unwrap_or(u32::MAX - 1)
            }
        };
        let id = AttrId(NonZeroU32::MIN.saturating_add(index));
        self.ids.insert(attrs, id);
        id
    }

    #[inline]
    fn slot(&self, id: AttrId) -> Option<&Slot> {
        self.slots.get(id.0.get() as usize - 1)
    }

    /// The set behind `id`.
    #[inline]
    pub(crate) fn get(&self, id: AttrId) -> &Arc<PathAttrs> {
        match self.slot(id).and_then(|s| s.attrs.as_ref()) {
            Some(a) => a,
            // Ids in stored routes always hold a reference; this is a bug.
            None => unreachable!("attribute id {id:?} used after release"),
        }
    }

    /// One more route uses `id`.
    #[inline]
    pub(crate) fn acquire(&mut self, id: AttrId) {
        if let Some(s) = self.slots.get_mut(id.0.get() as usize - 1) {
            s.refs = s.refs.saturating_add(1);
        }
    }

    /// One route fewer uses `id`; the set is dropped with its last route
    /// (then `true`: the id may be handed out again for another set).
    #[inline]
    pub(crate) fn release(&mut self, id: AttrId) -> bool {
        let index = id.0.get() - 1;
        let Some(s) = self.slots.get_mut(index as usize) else {
            return false;
        };
        s.refs = s.refs.saturating_sub(1);
        if s.refs == 0 {
            self.drop_slot(index);
            return true;
        }
        false
    }

    /// Drops `id` if no route took it after [`Self::intern`].
    pub(crate) fn release_unused(&mut self, id: AttrId) {
        let index = id.0.get() - 1;
        if self.slots.get(index as usize).is_some_and(|s| s.refs == 0) {
            self.drop_slot(index);
        }
    }

    fn drop_slot(&mut self, index: u32) {
        if let Some(attrs) = self
            .slots
            .get_mut(index as usize)
            .and_then(|s| s.attrs.take())
        {
            self.ids.remove(&*attrs);
            self.free.push(index);
        }
    }

    /// Drops every set (the owner dropped all its routes).
    pub(crate) fn clear(&mut self) {
        self.ids.clear();
        self.slots.clear();
        self.free.clear();
    }
}
