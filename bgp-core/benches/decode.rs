//! UPDATE decode throughput: `bgp_core::wire::Message::decode` against
//! bgpkit-parser's `parse_bgp_message` on the same bytes.
//!
//! Three messages, each built with our own encoder and checked once at setup
//! (both decoders must accept it and agree on the prefix count):
//!
//! - `ipv4_max_26`: a maximal 4096-byte UPDATE packed with distinct IPv4
//!   /26 NLRI under one small attribute set (the decoder's hot loop);
//! - `ipv4_mixed`: a few withdrawals, a realistic attribute set (communities
//!   of all three kinds, MED, several ASes) and /16../32 NLRI;
//! - `ipv6_mp_reach`: MP_REACH_NLRI with /48../64 prefixes and a global +
//!   link-local next hop.
//!
//! Each message is one criterion group holding both decoders, so the report
//! shows them side by side. Both run under `iter_batched` with a fresh
//! `Bytes` clone per iteration (bgpkit consumes its input). The timed
//! routine decodes *and drops* the result: handing the outputs back to
//! criterion would keep a whole batch of ~20 KB prefix vectors alive, and
//! freeing them in bulk makes malloc return pages to the kernel, so every
//! batch paid page faults that dwarfed the decode itself. Throughput is in
//! prefixes (withdrawn + announced); `benches/ns_per_prefix.sh` turns the
//! saved estimates into ns per prefix.

use std::hint::black_box;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use bgp_core::wire::iana::afi;
use bgp_core::wire::iana::safi;
use bgp_core::wire::{
    AsPath, AttrValue, DecodeContext, LargeCommunity, Message, MpNlri, MpReach, NextHop, Origin,
    PathAttribute, Prefix, Update,
};
use bgpkit_parser::models::{AsnLength, BgpMessage};
use bgpkit_parser::parser::bgp::messages::parse_bgp_message;
use bytes::Bytes;
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use ipnetwork::{IpNetwork, Ipv4Network, Ipv6Network};

/// Largest message without the extended-message capability (RFC 4271 §4.1).
const MAX_MESSAGE: usize = 4096;

/// An IPv4 prefix; panics on a bad length (setup only).
fn v4(addr: u32, len: u8) -> Prefix {
    let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
    let net = Ipv4Network::new(Ipv4Addr::from(addr & mask), len).expect("valid IPv4 prefix");
    Prefix::new(IpNetwork::V4(net))
}

/// An IPv6 prefix; panics on a bad length (setup only).
fn v6(addr: u128, len: u8) -> Prefix {
    let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
    let net = Ipv6Network::new(Ipv6Addr::from(addr & mask), len).expect("valid IPv6 prefix");
    Prefix::new(IpNetwork::V6(net))
}

fn attr(value: AttrValue) -> PathAttribute {
    PathAttribute::new(value)
}

fn encode(update: Update, ctx: &DecodeContext) -> Vec<u8> {
    Message::Update(update)
        .to_bytes(ctx)
        .expect("benchmark UPDATE encodes")
}

/// The 4096-byte UPDATE full of /26s, and its prefix count.
fn ipv4_max_26(ctx: &DecodeContext) -> (Vec<u8>, usize) {
    let mut update = Update {
        attributes: vec![
            attr(AttrValue::Origin(Origin::Igp)),
            attr(AttrValue::AsPath(AsPath::sequence(vec![65001]))),
            attr(AttrValue::NextHop(Ipv4Addr::new(10, 0, 0, 1))),
            attr(AttrValue::LocalPref(100)),
        ],
        ..Update::default()
    };
    let base = encode(update.clone(), ctx).len();
    // A /26 takes one length byte and four address bytes.
    let count = (MAX_MESSAGE - base) / 5;
    // 10.0.0.0/26, 10.0.0.64/26, ...: distinct, 64 addresses apart.
    update.nlri = (0..count)
        .map(|i| v4(0x0a00_0000 + (u32::try_from(i).expect("small") << 6), 26))
        .collect();
    let bytes = encode(update, ctx);
    assert!(
        bytes.len() <= MAX_MESSAGE,
        "{} > {MAX_MESSAGE}",
        bytes.len()
    );
    assert!(
        bytes.len() + 5 > MAX_MESSAGE,
        "room for another /26: {} bytes",
        bytes.len()
    );
    (bytes, count)
}

/// A realistic IPv4 UPDATE: withdrawals, a full attribute set, /16../32 NLRI.
fn ipv4_mixed(ctx: &DecodeContext) -> (Vec<u8>, usize) {
    const WITHDRAWN: u32 = 6;
    const ANNOUNCED: u32 = 200;
    let withdrawn: Vec<Prefix> = (0..WITHDRAWN)
        .map(|i| v4(0xc0a8_0000 + (i << 8), 24))
        .collect();
    // Lengths cycle through /16../32; each prefix gets its own /16 block so
    // all are distinct.
    let nlri: Vec<Prefix> = (0..ANNOUNCED)
        .map(|i| {
            let len = 16 + u8::try_from(i % 17).expect("small");
            v4(0x2c00_0000 + (i << 16) + 0x1234_u32, len)
        })
        .collect();
    let update = Update {
        withdrawn,
        attributes: vec![
            attr(AttrValue::Origin(Origin::Igp)),
            attr(AttrValue::AsPath(AsPath::sequence(vec![
                65001, 64512, 3356, 1299, 174, 13335,
            ]))),
            attr(AttrValue::NextHop(Ipv4Addr::new(10, 0, 0, 1))),
            attr(AttrValue::MultiExitDisc(50)),
            attr(AttrValue::LocalPref(100)),
            attr(AttrValue::Communities(vec![
                0xfde9_0001,
                0xfde9_0064,
                0xfde9_00c8,
                0x0d1c_0d1c,
                0xffff_ff03,
            ])),
            attr(AttrValue::ExtendedCommunities(vec![
                // Route target 65001:100 and route origin 65001:1
                // (2-octet AS specific).
                [0x00, 0x02, 0xfd, 0xe9, 0x00, 0x00, 0x00, 0x64],
                [0x00, 0x03, 0xfd, 0xe9, 0x00, 0x00, 0x00, 0x01],
            ])),
            attr(AttrValue::LargeCommunities(vec![
                LargeCommunity {
                    global: 65001,
                    local1: 1,
                    local2: 2,
                },
                LargeCommunity {
                    global: 4_200_000_000,
                    local1: 100,
                    local2: 200,
                },
            ])),
        ],
        nlri,
    };
    let bytes = encode(update, ctx);
    assert!(bytes.len() <= MAX_MESSAGE);
    (
        bytes,
        usize::try_from(WITHDRAWN + ANNOUNCED).expect("small"),
    )
}

/// An IPv6 UPDATE: MP_REACH_NLRI with /48../64 prefixes and a global +
/// link-local next hop.
fn ipv6_mp_reach(ctx: &DecodeContext) -> (Vec<u8>, usize) {
    const ANNOUNCED: u32 = 200;
    let prefixes: Vec<Prefix> = (0..ANNOUNCED)
        .map(|i| {
            let len = 48 + u8::try_from(i % 17).expect("small");
            // 2001:db8:<i>::/len, each in its own /48.
            let addr = 0x2001_0db8_0000_u128 << 80 | u128::from(i) << 80;
            v6(addr, len)
        })
        .collect();
    let update = Update {
        attributes: vec![
            attr(AttrValue::MpReach(MpReach {
                afi: afi::IPV6,
                safi: safi::UNICAST,
                next_hop: NextHop::Ipv6 {
                    global: "2001:db8:ffff::1".parse().expect("address"),
                    link_local: Some("fe80::1".parse().expect("address")),
                },
                nlri: MpNlri::Unicast(prefixes),
            })),
            attr(AttrValue::Origin(Origin::Igp)),
            attr(AttrValue::AsPath(AsPath::sequence(vec![65001, 64512]))),
            attr(AttrValue::LocalPref(100)),
            attr(AttrValue::Communities(vec![0xfde9_0001, 0xfde9_0064])),
        ],
        ..Update::default()
    };
    let bytes = encode(update, ctx);
    assert!(bytes.len() <= MAX_MESSAGE);
    (bytes, usize::try_from(ANNOUNCED).expect("small"))
}

/// Our decoder's prefix count; panics unless the UPDATE decodes cleanly.
fn ours_count(bytes: &[u8], ctx: &DecodeContext) -> usize {
    let decoded = Message::decode(bytes, ctx).expect("bgp-core decodes");
    assert!(decoded.faults.is_empty(), "faults: {:?}", decoded.faults);
    let Message::Update(u) = decoded.message else {
        panic!("not an UPDATE");
    };
    u.withdrawals().count() + u.announced().count()
}

/// bgpkit-parser's prefix count; panics unless it parses without warnings.
fn bgpkit_count(bytes: &Bytes) -> usize {
    let mut data = bytes.clone();
    let msg = parse_bgp_message(&mut data, false, &AsnLength::Bits32).expect("bgpkit parses");
    let BgpMessage::Update(u) = msg else {
        panic!("bgpkit: not an UPDATE");
    };
    let warnings = u.attributes.validation_warnings();
    assert!(warnings.is_empty(), "bgpkit warnings: {warnings:?}");
    let mp = |n: Option<&bgpkit_parser::models::Nlri>| n.map_or(0, |n| n.prefixes.len());
    u.withdrawn_prefixes.len()
        + u.announced_prefixes.len()
        + mp(u.attributes.get_reachable_nlri())
        + mp(u.attributes.get_unreachable_nlri())
}

fn bench_message(c: &mut Criterion, name: &str, bytes: Vec<u8>, expected: usize) {
    let ctx = DecodeContext::ibgp();
    let bytes = Bytes::from(bytes);
    let ours = ours_count(&bytes, &ctx);
    let theirs = bgpkit_count(&bytes);
    eprintln!(
        "{name}: {} bytes, {expected} prefixes built, bgp-core decodes {ours}, bgpkit-parser {theirs}",
        bytes.len()
    );
    assert_eq!(ours, expected, "bgp-core prefix count");
    assert_eq!(theirs, expected, "bgpkit-parser prefix count");

    let mut group = c.benchmark_group(name);
    group.throughput(Throughput::Elements(
        u64::try_from(expected).expect("small"),
    ));
    group.bench_function("bgp-core", |b| {
        b.iter_batched(
            || bytes.clone(),
            |data| {
                drop(black_box(Message::decode(
                    black_box(&data),
                    black_box(&ctx),
                )))
            },
            BatchSize::SmallInput,
        );
    });
    group.bench_function("bgpkit", |b| {
        b.iter_batched(
            || bytes.clone(),
            |mut data| {
                drop(black_box(parse_bgp_message(
                    black_box(&mut data),
                    false,
                    &AsnLength::Bits32,
                )))
            },
            BatchSize::SmallInput,
        );
    });
    group.finish();
}

fn decode(c: &mut Criterion) {
    let ctx = DecodeContext::ibgp();
    let (bytes, n) = ipv4_max_26(&ctx);
    bench_message(c, "ipv4_max_26", bytes, n);
    let (bytes, n) = ipv4_mixed(&ctx);
    bench_message(c, "ipv4_mixed", bytes, n);
    let (bytes, n) = ipv6_mp_reach(&ctx);
    bench_message(c, "ipv6_mp_reach", bytes, n);
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = decode
}
criterion_main!(benches);
