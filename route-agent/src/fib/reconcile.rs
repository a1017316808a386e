//! Converge the kernel's routes of our protocol onto the plan.
//!
//! One pass ([`Fib::reconcile`]): dump the links and the routes, keep the
//! main-table routes with our protocol, diff them against the desired set,
//! and send only the difference in batches:
//!
//! - a destination we want and the kernel lacks: a new-route request
//!   (`ip route replace`, `NLM_F_CREATE | NLM_F_REPLACE`), counted as added;
//! - a destination whose route differs (another gateway, device, flag or
//!   MTU, or a route type we never write): the same request, which replaces
//!   it in place, counted as replaced;
//! - a route of ours the plan does not hold, or a second route of ours for
//!   a planned destination at another metric: `RTM_DELROUTE`, counted as
//!   deleted;
//! - a planned destination held (at our metric) by a route of another
//!   protocol is reported as `EEXIST` and not sent: a replace would
//!   overwrite that route, and routes of other protocols are never ours;
//! - everything else is left alone, counted as unchanged: a restart with
//!   the same plan sends nothing at all.

use std::collections::{HashMap, HashSet};
use std::io;

use ipnetwork::IpNetwork;
use netlink::consts::{NLM_F_CREATE, NLM_F_REPLACE};
use netlink::link::Links;
use netlink::nexthop::{self, Nexthop, NexthopKey};
use netlink::route::{
    self, BpfProgram, FAMILY_ANY, KernelRoute, MAIN_TABLE, RouteShape, default_priority,
};
use netlink::{AckMode, Errno, MessageType, Netlink};

use super::error::{FailedRoute, RouteError, RouteOp};
use super::nexthop::{IdAllocator, NexthopMode};
use super::shape::{DEFAULT_PROTOCOL, ShapeError, shape_of};
use crate::planner::{DesiredRoute, RouteKind};

/// What one reconcile pass did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReconcileStats {
    /// Routes installed where there was none.
    pub added: usize,
    /// Routes of ours rewritten because they differed from the plan.
    pub replaced: usize,
    /// Routes of ours removed.
    pub deleted: usize,
    /// Routes already right, not touched.
    pub unchanged: usize,
    /// Requests that failed (see [`Reconciled::errors`]).
    pub errors: usize,
}

/// The outcome of [`Fib::reconcile`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Reconciled {
    /// Counts.
    pub stats: ReconcileStats,
    /// One error per failed route; the others were applied.
    pub errors: Vec<RouteError>,
    /// Nexthop objects of ours created (with `nexthop-objects`).
    pub nexthops_created: usize,
    /// Nexthop objects of ours removed because no route uses them.
    pub nexthops_deleted: usize,
    /// Whether this pass put gateway routes through nexthop objects (the
    /// [`NexthopMode`]'s choice, on a kernel that has them).
    pub nexthop_objects: bool,
}

/// The routes of one protocol in the main table of the current network
/// namespace.
#[derive(Debug)]
pub struct Fib {
    netlink: Netlink,
    protocol: u8,
    /// When gateway routes point at nexthop objects ([`super::nexthop`]).
    nexthop_mode: NexthopMode,
    /// Objects of ours may be in the kernel (from an earlier run with
    /// `nexthop-objects`): with objects off, the nexthop dump stays out of
    /// every pass once one pass found none left.
    nexthops_maybe_left: bool,
    /// The `bpf` backend's encapsulation program, for `bpf` tunnel routes.
    bpf_program: Option<BpfProgram>,
}

/// A route's key in its table, as far as we compare: destination and
/// metric.
type RouteKey = (IpNetwork, u32);

/// One planned change.
struct Change {
    op: RouteOp,
    /// What to write, and what to name when the change fails.
    route: Route,
}

/// What one request writes ([`Fib::reconcile`]).
enum Staged<'a> {
    /// Install this destination with this shape.
    New(IpNetwork, RouteShape),
    /// Delete this route of ours.
    Delete(&'a KernelRoute),
}

enum Route {
    /// `desired[index]`, installed with this shape.
    Desired(usize, RouteShape),
    /// A route of ours to delete.
    Kernel(KernelRoute),
}

impl Fib {
    /// Opens a netlink socket in the current network namespace, owning the
    /// routes of protocol `protocol` ([`DEFAULT_PROTOCOL`] unless
    /// configured otherwise).
    ///
    /// # Errors
    /// When the netlink socket cannot be opened.
    pub fn open(protocol: u8) -> io::Result<Self> {
        Ok(Self {
            netlink: Netlink::open()?,
            protocol,
            nexthop_mode: NexthopMode::default(),
            nexthops_maybe_left: true,
            bpf_program: None,
        })
    }

    /// The encapsulation program `bpf` tunnel routes run ([`ipip::bpf`]);
    /// a route of ours running another (an earlier build's) is replaced.
    /// Without one, such routes are refused with `EBADF`.
    pub fn set_bpf_program(&mut self, program: Option<BpfProgram>) {
        self.bpf_program = program;
    }

    /// When gateway routes go through nexthop objects (`ip nexthop`)
    /// instead of carrying their gateway: much faster to install with
    /// thousands of next hops, but `ip route` then shows `nhid N`
    /// ([`super::nexthop`]). [`NexthopMode::Auto`] by default: only for
    /// large tables. Every pass converts the routes of ours to the form
    /// chosen and removes our nexthop objects that no route uses.
    pub fn set_nexthop_mode(&mut self, mode: NexthopMode) {
        self.nexthop_mode = mode;
    }

    /// Every nexthop object in the namespace, and whether the kernel
    /// supports them; none when it has none to show or no support for
    /// them.
    fn nexthops(&mut self) -> (Vec<Nexthop>, bool) {
        match self.netlink.nexthops() {
            Ok(Some(all)) => (all, true),
            // Kernels before 5.3 refuse the request; a failed dump is
            // taken as the same (the pass then writes gateway routes).
            Ok(None) | Err(_) => (Vec::new(), false),
        }
    }

    /// Opens with [`DEFAULT_PROTOCOL`].
    ///
    /// # Errors
    /// As [`Fib::open`].
    pub fn open_default() -> io::Result<Self> {
        Self::open(DEFAULT_PROTOCOL)
    }

    /// Sets which batched requests ask for an ACK ([`AckMode`]).
    pub fn set_ack_mode(&mut self, mode: AckMode) {
        self.netlink.set_ack_mode(mode);
    }

    /// The netlink port id of this FIB's socket (see [`Netlink::port_id`]).
    ///
    /// # Errors
    /// When the socket's address cannot be read.
    pub fn port_id(&self) -> io::Result<u32> {
        self.netlink.port_id()
    }

    /// How many netlink batches this FIB has sent.
    pub fn batches_sent(&self) -> u64 {
        self.netlink.batches_sent()
    }

    /// The protocol number this FIB owns.
    pub fn protocol(&self) -> u8 {
        self.protocol
    }

    /// The interfaces (`ip link show`).
    ///
    /// # Errors
    /// When the dump fails.
    pub fn links(&mut self) -> io::Result<Links> {
        Ok(Links::from_messages(&self.netlink.links()?))
    }

    /// Our routes in the main table (`ip route show table main proto 98`,
    /// IPv4 and IPv6).
    ///
    /// # Errors
    /// When the dump fails.
    pub fn installed(&mut self) -> io::Result<Vec<KernelRoute>> {
        Ok(self.scan()?.0)
    }

    /// Our main-table routes, and the keys (destination, metric) of the
    /// main-table routes of every other protocol.
    fn scan(&mut self) -> io::Result<(Vec<KernelRoute>, HashSet<RouteKey>)> {
        let protocol = self.protocol;
        // Every family in one dump, read from the bytes (a resync of
        // 100,000 routes builds no message values).
        self.netlink.fold_routes(
            FAMILY_ANY,
            || (Vec::new(), HashSet::new()),
            |(ours, others): &mut (Vec<KernelRoute>, HashSet<RouteKey>), dumped| {
                if dumped.table != MAIN_TABLE {
                    return;
                }
                let Some(route) = KernelRoute::from_route(&dumped) else {
                    return;
                };
                if dumped.protocol == protocol {
                    ours.push(route);
                } else {
                    others.insert((route.dst, route.priority));
                }
            },
        )
    }

    /// Makes the kernel's routes of our protocol exactly `desired`, touching
    /// only what differs. When two desired routes share a destination, the
    /// last one wins.
    ///
    /// A route that cannot be applied (its device is missing, the kernel
    /// refuses it) is reported in [`Reconciled::errors`]; the rest of the
    /// plan is applied regardless.
    ///
    /// # Errors
    /// Only when netlink itself fails (the socket, a dump, lost replies).
    pub fn reconcile(&mut self, desired: &[DesiredRoute]) -> io::Result<Reconciled> {
        let links = self.links()?;
        let (mut installed, others) = self.scan()?;
        let gateway_routes = desired
            .iter()
            .filter(|d| !matches!(d.kind, RouteKind::Blackhole))
            .count();
        let objects_now = installed
            .iter()
            .any(|r| matches!(r.shape, RouteShape::Nexthop { .. }));
        let want_nexthops = self.nexthop_mode.use_objects(gateway_routes, objects_now);
        let (all_nexthops, nexthops_supported) = if want_nexthops || self.nexthops_maybe_left {
            self.nexthops()
        } else {
            (Vec::new(), false)
        };
        let protocol = self.protocol;
        let mut ours_by_key: HashMap<NexthopKey, u32> = HashMap::new();
        let mut our_ids: Vec<u32> = Vec::new();
        for n in &all_nexthops {
            if n.protocol == protocol {
                our_ids.push(n.id);
                if let Some(key) = n.key() {
                    ours_by_key.entry(key).or_insert(n.id);
                }
            }
        }
        let use_nexthops = want_nexthops && nexthops_supported;
        let mut ids = IdAllocator::new(all_nexthops.iter().map(|n| n.id).collect());
        // Nexthop objects to create: (id, what, the gateway shape it stands for).
        let mut create: Vec<(u32, NexthopKey)> = Vec::new();
        let mut used_ids: HashSet<u32> = HashSet::new();
        let mut through_nexthop = |shape: RouteShape| -> RouteShape {
            let RouteShape::Gateway {
                via,
                oif,
                onlink,
                mtu,
            } = shape
            else {
                return shape;
            };
            if !use_nexthops {
                return shape;
            }
            let key = NexthopKey { via, oif, onlink };
            let id = match ours_by_key.get(&key) {
                Some(&id) => id,
                None => match ids.allocate() {
                    Some(id) => {
                        ours_by_key.insert(key, id);
                        create.push((id, key));
                        id
                    }
                    None => return shape,
                },
            };
            used_ids.insert(id);
            RouteShape::Nexthop { id, mtu }
        };
        // Both sides sorted by destination and walked together: no map
        // is built per pass (a pass runs on every kernel route change).
        // The sort is stable, so a destination's routes keep the kernel's
        // order.
        installed.sort_by_key(|r| r.dst);
        let mut wanted: Vec<usize> = (0..desired.len()).collect();
        // By destination, and for a destination given twice the last one
        // first, which `dedup` keeps: the last one wins.
        wanted.sort_unstable_by(|&a, &b| desired[a].dst.cmp(&desired[b].dst).then(b.cmp(&a)));
        wanted.dedup_by_key(|&mut i| desired[i].dst);
        let mut rest = installed.as_slice();

        let mut out = Reconciled {
            nexthop_objects: use_nexthops,
            ..Reconciled::default()
        };
        let mut changes = Vec::new();
        let mut deletes = Vec::new();
        for &index in &wanted {
            let dst = &desired[index].dst;
            // Ours below this destination are not planned: deleted.
            let below = rest.partition_point(|r| r.dst < *dst);
            let (unplanned, from_here) = rest.split_at(below);
            deletes.extend_from_slice(unplanned);
            let here = from_here.partition_point(|r| r.dst == *dst);
            let (current, after) = from_here.split_at(here);
            rest = after;
            let op = if current.is_empty() {
                RouteOp::Add
            } else {
                RouteOp::Replace
            };
            let shape = match shape_of(&desired[index].kind, &links, self.bpf_program) {
                Ok(shape) => through_nexthop(shape),
                Err(e) => {
                    // What the kernel would answer for an unknown ifindex,
                    // or for a program descriptor that is none; the route
                    // is reported, not sent.
                    out.errors.push(RouteError {
                        op,
                        route: FailedRoute::Planned(desired[index].clone()),
                        errno: match e {
                            ShapeError::UnknownDevice { .. } => Errno::NoDevice,
                            ShapeError::NoBpfProgram => Errno::Other(libc::EBADF),
                        },
                    });
                    // A stale route of ours for this destination stays until
                    // the device is back: deleting it would not help.
                    continue;
                }
            };
            let priority = default_priority(dst);
            if current.is_empty() && others.contains(&(*dst, priority)) {
                // Another protocol's route holds this key (destination and
                // metric; the kernel's key has no protocol), and a replace
                // would overwrite it: it is not ours to touch.
                out.errors.push(RouteError {
                    op,
                    route: FailedRoute::Planned(desired[index].clone()),
                    errno: Errno::Exists,
                });
                continue;
            }
            let keep = current
                .iter()
                .position(|k| k.shape == shape && k.priority == priority && k.tos == 0);
            for (i, route) in current.iter().enumerate() {
                // The one we keep, and the one at our metric that the
                // replace below overwrites in place, stay.
                if Some(i) == keep
                    || (keep.is_none() && route.priority == priority && route.tos == 0)
                {
                    continue;
                }
                deletes.push(route.clone());
            }
            if keep.is_some() {
                out.stats.unchanged += 1;
            } else {
                changes.push(Change {
                    op,
                    route: Route::Desired(index, shape),
                });
            }
        }
        // Ours above the last planned destination.
        deletes.extend_from_slice(rest);
        changes.extend(deletes.into_iter().map(|route| Change {
            op: RouteOp::Delete,
            route: Route::Kernel(route),
        }));

        // The objects first: the routes below name them.
        if !create.is_empty() {
            let requests = create.iter().enumerate().map(|(i, (id, key))| {
                let write = move |tx: &mut Vec<u8>| nexthop::emit_new(tx, *id, key, protocol);
                (
                    MessageType::NEW_NEXTHOP,
                    NLM_F_CREATE | NLM_F_REPLACE,
                    i,
                    write,
                )
            });
            // Objects the kernel refused, by id, with what they stood for.
            let mut refused: HashMap<u32, NexthopKey> = HashMap::new();
            for (i, errno) in self.netlink.execute(requests)? {
                let (id, key) = create[i];
                refused.insert(id, key);
                out.errors.push(RouteError {
                    op: RouteOp::Add,
                    route: FailedRoute::Nexthop {
                        id,
                        key: Some(key),
                        device: links.name(key.oif).map(str::to_owned),
                    },
                    errno,
                });
            }
            out.nexthops_created = create.len() - refused.len();
            // Routes whose object could not be made carry their gateway.
            for change in &mut changes {
                if let Route::Desired(_, shape) = &mut change.route
                    && let RouteShape::Nexthop { id, mtu } = *shape
                    && let Some(key) = refused.get(&id)
                {
                    *shape = RouteShape::Gateway {
                        via: key.via,
                        oif: key.oif,
                        onlink: key.onlink,
                        mtu,
                    };
                }
            }
        }

        // What each request writes, gathered in send order first: the
        // spread order jumps through `changes` and `desired`, and doing
        // that inside the encoding loop cost a cache miss or two per route
        // (most of the encoder's time in `perf`); this loop only loads, so
        // the misses overlap.
        let staged: Vec<(usize, RouteOp, Staged<'_>)> = send_order(&changes)
            .into_iter()
            .filter_map(|i| {
                let change = changes.get(i)?;
                let what = match &change.route {
                    Route::Desired(index, shape) => Staged::New(desired.get(*index)?.dst, *shape),
                    Route::Kernel(route) => Staged::Delete(route),
                };
                Some((i, change.op, what))
            })
            .collect();
        let requests = staged.iter().map(|(i, op, what)| {
            let (kind, flags) = match op {
                RouteOp::Add | RouteOp::Replace => {
                    (MessageType::NEW_ROUTE, NLM_F_CREATE | NLM_F_REPLACE)
                }
                RouteOp::Delete => (MessageType::DEL_ROUTE, 0),
            };
            let write = move |tx: &mut Vec<u8>| match what {
                Staged::New(dst, shape) => route::emit_new_route(tx, dst, shape, protocol),
                Staged::Delete(route) => route::emit_del_route(tx, route, protocol),
            };
            (kind, flags, *i, write)
        });
        let failures = self.netlink.execute(requests)?;

        let mut failed = vec![false; changes.len()];
        for (i, errno) in failures {
            failed[i] = true;
            let change = &changes[i];
            out.errors.push(RouteError {
                op: change.op,
                route: match &change.route {
                    Route::Desired(index, _) => FailedRoute::Planned(desired[*index].clone()),
                    Route::Kernel(k) => FailedRoute::Installed {
                        route: k.clone(),
                        device: match k.shape {
                            RouteShape::Gateway { oif, .. } => links.name(oif).map(str::to_owned),
                            _ => None,
                        },
                    },
                },
                errno,
            });
        }
        for (change, failed) in changes.iter().zip(failed) {
            if failed {
                continue;
            }
            match change.op {
                RouteOp::Add => out.stats.added += 1,
                RouteOp::Replace => out.stats.replaced += 1,
                RouteOp::Delete => out.stats.deleted += 1,
            }
        }
        // Our objects no route of the plan uses: removed once no route of
        // ours names them any more (removing an object removes the routes
        // through it, so a route whose replace failed keeps its object).
        let ours_before = our_ids.len();
        let unused: Vec<u32> = our_ids
            .into_iter()
            .filter(|id| !used_ids.contains(id))
            .collect();
        if !unused.is_empty() {
            let (now, _) = self.scan()?;
            let named: HashSet<u32> = now
                .iter()
                .filter_map(|r| match r.shape {
                    RouteShape::Nexthop { id, .. } => Some(id),
                    _ => None,
                })
                .collect();
            let doomed: Vec<u32> = unused
                .into_iter()
                .filter(|id| !named.contains(id))
                .collect();
            let requests = doomed.iter().enumerate().map(|(i, id)| {
                let write = move |tx: &mut Vec<u8>| nexthop::emit_del(tx, *id);
                (MessageType::DEL_NEXTHOP, 0, i, write)
            });
            let failures = self.netlink.execute(requests)?;
            out.nexthops_deleted = doomed.len() - failures.len();
            for (i, errno) in failures {
                out.errors.push(RouteError {
                    op: RouteOp::Delete,
                    route: FailedRoute::Nexthop {
                        id: doomed[i],
                        key: None,
                        device: None,
                    },
                    errno,
                });
            }
        }
        self.nexthops_maybe_left = want_nexthops || ours_before > out.nexthops_deleted;
        out.stats.errors = out.errors.len();
        Ok(out)
    }
}

/// The order the changes go to the kernel in: the routes to install
/// grouped by shape (gateway, device, flags, MTU), the groups in [`spread`]
/// order of their first destination, each group's routes in [`spread`]
/// order, then the deletes in [`spread`] order. Every change has its own
/// key, so the order does not change the outcome, only the kernel's work:
///
/// - The IPv4 FIB shares one `fib_info` among routes with the same next
///   hop, found by a hash that covers the device but not the gateway, so
///   with many next hops on one device each insert walks a chain of them,
///   newest first. A group's routes sent together find theirs at the head.
///   10,000 routes through 5,000 gateways, two each (a cluster's nodes):
///   spread over all changes 0.69 s with `ip -batch`, grouped 0.41 s.
/// - Destinations spread over the key space spare the FIB's trie its
///   repeated resizing (see [`spread`]); spreading the groups and the
///   routes inside each keeps that for one next hop and for many.
fn send_order(changes: &[Change]) -> Vec<usize> {
    let mut groups: Vec<Vec<usize>> = Vec::new();
    let mut group_of: HashMap<RouteShape, usize> = HashMap::new();
    let mut deletes = Vec::new();
    for (i, change) in changes.iter().enumerate() {
        match &change.route {
            Route::Desired(_, shape) => {
                let g = *group_of.entry(*shape).or_insert_with(|| {
                    groups.push(Vec::new());
                    groups.len() - 1
                });
                groups[g].push(i);
            }
            Route::Kernel(_) => deletes.push(i),
        }
    }
    let mut order = Vec::with_capacity(changes.len());
    for g in spread(groups.len()) {
        let group = &groups[g];
        order.extend(spread(group.len()).map(|i| group[i]));
    }
    order.extend(spread(deletes.len()).map(|i| deletes[i]));
    order
}

/// The indexes `0..len` in bit-reversed order: 0, n/2, n/4, 3n/4, …
///
/// Changes come sorted by destination, and the kernel's IPv4 FIB (an
/// LC-trie) pays for sorted inserts: each new leaf lands next to the last
/// one, so the same trie nodes fill up and are inflated (rebuilt twice as
/// wide) again and again (`resize` was 31% of the install's samples in
/// `perf`). Spread over the key space from the start, the upper nodes reach
/// their final width early. Measured on 100,000 /26 routes
/// (`benches/fib_kernel.sh`, `benches/README.md`): 0.37 s of CPU sorted,
/// 0.30 s in this order.
/// Requests for distinct keys are independent, and every change has its
/// own key, so the order does not change the outcome.
fn spread(len: usize) -> impl Iterator<Item = usize> {
    let bits = usize::BITS - len.saturating_sub(1).leading_zeros();
    (0..1usize << bits)
        // The low `bits` bits of k reversed: a permutation of 0..2^bits,
        // of which the indexes past the end are skipped.
        .map(move |k| {
            k.reverse_bits()
                .checked_shr(usize::BITS - bits)
                .unwrap_or(0)
        })
        .filter(move |&index| index < len)
}

#[cfg(test)]
mod tests {
    use super::spread;

    #[test]
    fn spread_is_a_permutation_for_every_length() {
        for len in 0..70usize {
            let mut order: Vec<usize> = spread(len).collect();
            order.sort_unstable();
            assert_eq!(order, (0..len).collect::<Vec<_>>(), "len {len}");
        }
    }

    #[test]
    fn send_order_keeps_each_next_hop_together_and_deletes_last() {
        use super::{Change, Route, send_order};
        use crate::fib::{KernelRoute, RouteOp, RouteShape};
        let via = |last: u8| RouteShape::Gateway {
            via: std::net::IpAddr::from([10, 0, 0, last]),
            oif: 2,
            onlink: true,
            mtu: None,
        };
        // Destinations 0..12 in order: next hops .1 .1 .2 .2 .3 .3 …, then
        // two deletes.
        let mut changes: Vec<Change> = (0..12)
            .map(|i| Change {
                op: RouteOp::Add,
                route: Route::Desired(i, via(1 + (i / 2) as u8)),
            })
            .collect();
        for last in [1, 2] {
            changes.push(Change {
                op: RouteOp::Delete,
                route: Route::Kernel(KernelRoute {
                    dst: format!("10.9.{last}.0/26").parse().expect("prefix"),
                    priority: 0,
                    tos: 0,
                    shape: RouteShape::Blackhole,
                }),
            });
        }
        let order = send_order(&changes);
        let mut sorted = order.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..14).collect::<Vec<_>>());
        // Pairs stay together, the pairs go out spread (0, 4, 2, 1, 5, 3 of
        // the six groups), the deletes come last.
        assert_eq!(order, [0, 1, 8, 9, 4, 5, 2, 3, 10, 11, 6, 7, 12, 13]);
    }

    #[test]
    fn spread_halves_the_range_first() {
        let order: Vec<usize> = spread(8).collect();
        assert_eq!(order, [0, 4, 2, 6, 1, 5, 3, 7]);
    }
}
