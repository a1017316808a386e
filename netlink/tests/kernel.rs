//! The sockets against a real kernel: each test runs on a thread alone in
//! a fresh network namespace (gone with the thread), so it needs root
//! (CAP_SYS_ADMIN and CAP_NET_ADMIN).
// The one unsafe call, unshare(2), is confined to `in_fresh_netns` below.
#![allow(unsafe_code)]

use std::net::{IpAddr, Ipv4Addr};

use netlink::consts::{NLM_F_CREATE, NLM_F_REPLACE};
use netlink::link::{self, LinkFlags};
use netlink::route::{self, FAMILY_ANY, FAMILY_V4, KernelRoute, RouteShape};
use netlink::{Control, Errno, Group, MessageType, Monitor, Netlink, Received};

/// Runs `f` on a thread that is alone in a fresh network namespace (with
/// only `lo`, down).
fn in_fresh_netns<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::spawn(move || {
        // SAFETY: unshare(2) takes flags only and touches no memory of
        // ours; CLONE_NEWNET moves this thread alone into a new namespace.
        let rc = unsafe { libc::unshare(libc::CLONE_NEWNET) };
        assert_eq!(
            rc,
            0,
            "unshare(CLONE_NEWNET): {} — these tests need root (CAP_SYS_ADMIN, CAP_NET_ADMIN)",
            std::io::Error::last_os_error()
        );
        f()
    })
    .join()
    .unwrap_or_else(|e| std::panic::resume_unwind(e))
}

const LO: u32 = 1;

#[test]
fn control_sets_a_link_up_and_manages_its_addresses_with_named_errnos() {
    in_fresh_netns(|| {
        let control = Control::open().expect("rtnetlink connection");
        let lo = control.link("lo").expect("ip link show").expect("lo");
        assert_eq!(lo.header.index, LO);
        assert!(!lo.header.flags.contains(LinkFlags::Up));
        assert!(control.link("nosuch0").expect("ip link show").is_none());

        control.set_mtu_up(LO, 60000).expect("ip link set up");
        let lo = control.link("lo").unwrap().unwrap();
        assert!(lo.header.flags.contains(LinkFlags::Up));
        assert_eq!(link::mtu(&lo), Some(60000));
        // lo takes any MTU from 0 up; the kernel reads this one as -1.
        let refused = control.set_mtu_up(LO, u32::MAX).expect_err("an MTU of -1");
        assert_eq!(refused.errno(), Some(Errno::Invalid));

        let address = Ipv4Addr::new(10, 9, 9, 9);
        control
            .add_address(LO, IpAddr::V4(address), 32)
            .expect("ip addr add");
        let twice = control
            .add_address(LO, IpAddr::V4(address), 32)
            .expect_err("added twice");
        assert_eq!(twice.errno(), Some(Errno::Exists));
        let listed = control.ipv4_addresses(LO).expect("ip addr show");
        assert!(listed.contains(&(address, 32)), "{listed:?}");
        // Bringing lo up gave it 127.0.0.1/8.
        assert!(listed.contains(&(Ipv4Addr::LOCALHOST, 8)), "{listed:?}");
        control.del_address(LO, address, 32).expect("ip addr del");
        let listed = control.ipv4_addresses(LO).unwrap();
        assert!(!listed.contains(&(address, 32)), "{listed:?}");
    });
}

#[test]
fn control_says_whether_the_kernel_can_make_ipip_devices() {
    in_fresh_netns(|| {
        let control = Control::open().expect("rtnetlink connection");
        match control.add_ipip("tunl9") {
            Ok(()) => {
                let made = control.link("tunl9").unwrap().expect("tunl9");
                assert_eq!(link::kind(&made), Some(link::InfoKind::IpIp));
            }
            // A kernel without the ipip module (this test machine's).
            Err(e) => assert_eq!(e.errno(), Some(Errno::NotSupported), "{e}"),
        }
    });
}

#[test]
fn a_batch_installs_reports_refusals_by_errno_and_the_monitor_sees_whose_changes_they_were() {
    in_fresh_netns(|| {
        Control::open().unwrap().set_mtu_up(LO, 65536).unwrap();
        let mut monitor = Monitor::open(&[Group::Ipv4Route, Group::Nexthop]).expect("monitor");
        let mut netlink = Netlink::open().expect("netlink");
        let port = netlink.port_id().unwrap();
        let blackhole: ipnetwork::IpNetwork = "10.244.1.0/26".parse().unwrap();
        let unreachable = RouteShape::Gateway {
            via: "192.0.2.1".parse().unwrap(),
            oif: LO,
            onlink: false,
            mtu: None,
        };
        let requests = [
            (blackhole, RouteShape::Blackhole),
            ("10.244.2.0/26".parse().unwrap(), unreachable),
        ];
        let failures = netlink
            .execute(requests.iter().enumerate().map(|(i, (dst, shape))| {
                let write = move |tx: &mut Vec<u8>| route::emit_new_route(tx, dst, shape, 98);
                (
                    MessageType::NEW_ROUTE,
                    NLM_F_CREATE | NLM_F_REPLACE,
                    i,
                    write,
                )
            }))
            .expect("batch");
        assert_eq!(failures, [(1, Errno::NetworkUnreachable)]);
        assert_eq!(netlink.batches_sent(), 1);

        let Received::Messages(mut notes) = monitor.recv().expect("a notification") else {
            panic!("lost notifications");
        };
        let (header, body) = notes.next().expect("one message");
        assert_eq!((header.kind, header.port), (MessageType::NEW_ROUTE, port));
        let read = route::Route::parse(body).unwrap();
        assert_eq!(
            KernelRoute::from_route(&read).map(|r| (r.dst, r.shape)),
            Some((blackhole, RouteShape::Blackhole))
        );
        monitor.drain().expect("drain");

        let ours: Vec<_> = netlink
            .routes(FAMILY_V4)
            .unwrap()
            .into_iter()
            .filter(|r| r.protocol == 98)
            .collect();
        assert_eq!(ours.len(), 1);
        assert!(
            netlink
                .links()
                .unwrap()
                .iter()
                .any(|l| link::name(l) == Some("lo"))
        );
        let addresses = netlink.addresses(FAMILY_ANY).unwrap();
        assert!(
            addresses
                .iter()
                .any(|a| link::address(a) == Some(IpAddr::V4(Ipv4Addr::LOCALHOST)))
        );
        // This kernel has nexthop objects (Linux ≥ 5.3): none yet.
        assert_eq!(netlink.nexthops().unwrap(), Some(Vec::new()));
    });
}

/// Blackholes 10.200.(i / 4).(64 * (i % 4))/26 of protocol 98, for each i
/// of `range`, in one batch.
fn install_blackholes(netlink: &mut Netlink, range: std::ops::Range<u32>) {
    let prefixes: Vec<ipnetwork::IpNetwork> = range.map(blackhole).collect();
    let failures = netlink
        .execute(prefixes.iter().enumerate().map(|(i, dst)| {
            let write = move |tx: &mut Vec<u8>| {
                route::emit_new_route(tx, dst, &RouteShape::Blackhole, 98);
            };
            (
                MessageType::NEW_ROUTE,
                NLM_F_CREATE | NLM_F_REPLACE,
                i,
                write,
            )
        }))
        .expect("batch");
    assert!(failures.is_empty(), "{failures:?}");
}

fn blackhole(i: u32) -> ipnetwork::IpNetwork {
    let ip = Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 200, 0, 0)) + 64 * i);
    ipnetwork::IpNetwork::V4(ipnetwork::Ipv4Network::new(ip, 26).unwrap())
}

/// The IPv4 routes of every notification queued now, and how many
/// overruns were reported meanwhile.
fn read_queued(monitor: &mut Monitor) -> (Vec<ipnetwork::IpNetwork>, usize) {
    let (mut routes, mut overruns) = (Vec::new(), 0);
    while let Some(received) = monitor.try_recv().expect("receive") {
        match received {
            Received::Messages(messages) => routes.extend(messages.filter_map(|(_, body)| {
                let r = route::Route::parse(body)?;
                KernelRoute::from_route(&r).map(|r| r.dst)
            })),
            Received::Overrun => overruns += 1,
        }
    }
    (routes, overruns)
}

#[test]
fn after_an_overrun_new_notifications_are_dropped_unreported_until_the_queue_is_read_empty() {
    // Why a watcher drains its monitor before it dumps the table again
    // (the convergence benchmark's finish line once dumped first and
    // waited forever for routes whose notifications this dropped).
    in_fresh_netns(|| {
        Control::open().unwrap().set_mtu_up(LO, 65536).unwrap();
        let mut monitor = Monitor::open(&[Group::Ipv4Route]).expect("monitor");
        // The kernel's smallest buffer: a few notifications fill it.
        monitor.set_receive_buffer(0).expect("buffer");
        let mut netlink = Netlink::open().expect("netlink");
        install_blackholes(&mut netlink, 0..400);
        assert!(
            matches!(monitor.recv().expect("receive"), Received::Overrun),
            "400 notifications overflowed the smallest buffer"
        );
        // Congested: this route's notification is dropped, and no second
        // overrun says so.
        install_blackholes(&mut netlink, 400..401);
        let (seen, overruns) = read_queued(&mut monitor);
        assert!(!seen.is_empty(), "what was queued before the overrun");
        assert!(!seen.contains(&blackhole(400)), "{seen:?}");
        assert_eq!(overruns, 0);
        // Read empty: the next one comes.
        install_blackholes(&mut netlink, 401..402);
        assert_eq!(read_queued(&mut monitor), (vec![blackhole(401)], 0));
        assert_eq!(
            netlink
                .routes(FAMILY_V4)
                .unwrap()
                .iter()
                .filter(|r| r.protocol == 98)
                .count(),
            402,
            "every route is in the table all the same"
        );
    });
}
