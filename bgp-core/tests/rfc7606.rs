//! One test per row of the RFC 7606 table in
//! `shared/reference/rfc7606.md`: what every malformed UPDATE, header and
//! OPEN must do.
//!
//! The bytes are built by hand from the field layouts of RFC 4271 §4,
//! RFC 4760 and the attribute RFCs each test names; the helpers below show
//! the layout. Unless a test says otherwise the session is iBGP with
//! 4-octet AS numbers, and the UPDATE announces 10.244.1.0/24.

use std::net::Ipv4Addr;

use bgp_core::wire::*;

const WELL_KNOWN: u8 = 0x40;
const OPT: u8 = 0x80;
const OPT_TRANS: u8 = 0xc0;
const EXT_LEN: u8 = 0x10;

/// 10.244.1.0/24 as NLRI: length, then 3 significant bytes.
const NLRI: &[u8] = &[24, 10, 244, 1];

/// One attribute: flags, type, 1-byte length (2 with EXT_LEN), value.
fn attr(flags: u8, code: u8, value: &[u8]) -> Vec<u8> {
    let mut a = vec![flags, code];
    if flags & EXT_LEN != 0 {
        a.extend_from_slice(&(value.len() as u16).to_be_bytes());
    } else {
        a.push(value.len() as u8);
    }
    a.extend_from_slice(value);
    a
}

fn origin() -> Vec<u8> {
    attr(WELL_KNOWN, 1, &[0])
}
/// AS_SEQUENCE [65001] with 4-octet AS numbers.
fn as_path() -> Vec<u8> {
    attr(WELL_KNOWN, 2, &[2, 1, 0, 0, 0xfd, 0xe9])
}
fn next_hop() -> Vec<u8> {
    attr(WELL_KNOWN, 3, &[192, 0, 2, 1])
}
fn local_pref() -> Vec<u8> {
    attr(WELL_KNOWN, 5, &[0, 0, 0, 100])
}

/// The four attributes an iBGP UPDATE with IPv4 NLRI needs.
fn base() -> Vec<Vec<u8>> {
    vec![origin(), as_path(), next_hop(), local_pref()]
}

/// `base()` with the attribute of type `code` replaced (or removed).
fn base_with(code: u8, replacement: Option<Vec<u8>>) -> Vec<Vec<u8>> {
    let mut attrs: Vec<Vec<u8>> = base().into_iter().filter(|a| a[1] != code).collect();
    if let Some(r) = replacement {
        attrs.push(r);
    }
    attrs
}

/// An UPDATE body: withdrawn length, withdrawn, attribute length,
/// attributes, NLRI (RFC 4271 §4.3).
fn body(withdrawn: &[u8], attrs: &[Vec<u8>], nlri: &[u8]) -> Vec<u8> {
    let attrs: Vec<u8> = attrs.concat();
    let mut b = (withdrawn.len() as u16).to_be_bytes().to_vec();
    b.extend_from_slice(withdrawn);
    b.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
    b.extend_from_slice(&attrs);
    b.extend_from_slice(nlri);
    b
}

fn ibgp() -> DecodeContext {
    DecodeContext::ibgp()
}

fn ebgp() -> DecodeContext {
    DecodeContext::ebgp(65001)
}

fn decode(body: &[u8], ctx: &DecodeContext) -> UpdateDecode {
    Update::decode(body, ctx).expect("the session survives this UPDATE")
}

fn reset(body: &[u8], ctx: &DecodeContext) -> Notification {
    Update::decode(body, ctx)
        .expect_err("this UPDATE resets the session")
        .notification()
}

/// Asserts the verdict is treat-as-withdraw because of attribute `code`,
/// and that the UPDATE's prefix is still reported so it can be withdrawn.
fn assert_taw(d: &UpdateDecode, code: u8, problem: AttrProblem) {
    match d.verdict() {
        Verdict::TreatAsWithdraw(faults) => assert!(
            faults.iter().any(|f| f.code == code
                && f.problem == problem
                && f.action == FaultAction::TreatAsWithdraw),
            "expected TaW for attribute {code} ({problem:?}), got {faults:?}"
        ),
        other => panic!("expected treat-as-withdraw for {code}, got {other:?}"),
    }
    assert!(d.is_treat_as_withdraw());
    let announced: Vec<_> = d
        .update
        .announced()
        .map(|p| p.network.to_string())
        .collect();
    assert_eq!(
        announced,
        ["10.244.1.0/24"],
        "the prefixes to withdraw are kept"
    );
}

/// Asserts attribute `code` was discarded, the rest accepted.
fn assert_discarded(d: &UpdateDecode, code: u8, problem: AttrProblem) {
    match d.verdict() {
        Verdict::AttributesDiscarded(faults) => assert!(
            faults.iter().any(|f| f.code == code
                && f.problem == problem
                && f.action == FaultAction::Discard),
            "expected discard of {code} ({problem:?}), got {faults:?}"
        ),
        other => panic!("expected attribute {code} discarded, got {other:?}"),
    }
    assert!(
        d.update.attribute(code).is_none(),
        "a discarded attribute is not kept"
    );
    assert_eq!(d.update.nlri.len(), 1, "the route stands");
}

fn assert_notification(n: &Notification, code: u8, subcode: u8) {
    assert_eq!((n.code, n.subcode), (code, subcode), "got {n}");
}

fn bad_length(length: usize) -> AttrProblem {
    AttrProblem::BadLength { length }
}

// ---- General rules (RFC 7606 §3-§5) ----

#[test]
fn flags_conflict_well_known_marked_optional_is_treat_as_withdraw() {
    let b = body(&[], &base_with(1, Some(attr(OPT_TRANS, 1, &[0]))), NLRI);
    assert_taw(
        &decode(&b, &ibgp()),
        1,
        AttrProblem::FlagsConflict { flags: OPT_TRANS },
    );
}

#[test]
fn flags_conflict_optional_marked_well_known_is_treat_as_withdraw() {
    let mut attrs = base();
    attrs.push(attr(WELL_KNOWN, 8, &[0, 0, 0, 1]));
    assert_taw(
        &decode(&body(&[], &attrs, NLRI), &ibgp()),
        8,
        AttrProblem::FlagsConflict { flags: WELL_KNOWN },
    );
}

#[test]
fn missing_origin_with_nlri_is_treat_as_withdraw() {
    let b = body(&[], &base_with(1, None), NLRI);
    assert_taw(&decode(&b, &ibgp()), 1, AttrProblem::Missing);
}

#[test]
fn missing_as_path_with_nlri_is_treat_as_withdraw() {
    let b = body(&[], &base_with(2, None), NLRI);
    assert_taw(&decode(&b, &ibgp()), 2, AttrProblem::Missing);
}

#[test]
fn missing_next_hop_with_ipv4_nlri_is_treat_as_withdraw() {
    let b = body(&[], &base_with(3, None), NLRI);
    assert_taw(&decode(&b, &ibgp()), 3, AttrProblem::Missing);
}

#[test]
fn missing_local_pref_on_ibgp_is_treat_as_withdraw() {
    let b = body(&[], &base_with(5, None), NLRI);
    assert_taw(&decode(&b, &ibgp()), 5, AttrProblem::Missing);
}

#[test]
fn missing_local_pref_on_ebgp_is_accepted() {
    let b = body(&[], &base_with(5, None), NLRI);
    assert_eq!(decode(&b, &ebgp()).verdict(), Verdict::Accepted);
}

#[test]
fn missing_mandatory_attributes_without_nlri_is_accepted() {
    // Only withdrawals: no attribute is mandatory (RFC 7606 §3d).
    let b = body(NLRI, &[], &[]);
    let d = decode(&b, &ibgp());
    assert_eq!(d.verdict(), Verdict::Accepted);
    assert_eq!(d.update.withdrawn.len(), 1);
}

#[test]
fn duplicate_attribute_keeps_first_and_discards_the_rest() {
    let mut attrs = base();
    attrs.push(attr(OPT, 4, &[0, 0, 0, 10]));
    attrs.push(attr(OPT, 4, &[0, 0, 0, 20]));
    let d = decode(&body(&[], &attrs, NLRI), &ibgp());
    assert_eq!(
        d.verdict(),
        Verdict::AttributesDiscarded(vec![AttrFault {
            code: 4,
            problem: AttrProblem::Duplicate,
            action: FaultAction::Discard
        }])
    );
    assert_eq!(d.update.attribute(4), Some(&AttrValue::MultiExitDisc(10)));
}

/// MP_UNREACH_NLRI for IPv6 unicast withdrawing 2001:db8::/32.
fn mp_unreach_v6() -> Vec<u8> {
    attr(OPT, 15, &[0, 2, 1, 32, 0x20, 0x01, 0x0d, 0xb8])
}

/// MP_REACH_NLRI for IPv6 unicast: next hop 2001:db8::1, NLRI
/// 2001:db8:1::/48.
fn mp_reach_v6() -> Vec<u8> {
    let mut v = vec![0, 2, 1, 16];
    v.extend_from_slice(
        &"2001:db8::1"
            .parse::<std::net::Ipv6Addr>()
            .unwrap()
            .octets(),
    );
    v.push(0);
    v.extend_from_slice(&[48, 0x20, 0x01, 0x0d, 0xb8, 0, 1]);
    attr(OPT, 14, &v)
}

#[test]
fn duplicate_mp_reach_resets_with_malformed_attribute_list() {
    let attrs = vec![
        origin(),
        as_path(),
        local_pref(),
        mp_reach_v6(),
        mp_reach_v6(),
    ];
    assert_notification(&reset(&body(&[], &attrs, &[]), &ibgp()), 3, 1);
}

#[test]
fn duplicate_mp_unreach_resets_with_malformed_attribute_list() {
    let attrs = vec![mp_unreach_v6(), mp_unreach_v6()];
    assert_notification(&reset(&body(&[], &attrs, &[]), &ibgp()), 3, 1);
}

#[test]
fn attribute_overrunning_the_section_is_treat_as_withdraw_and_nlri_still_found() {
    // The last attribute claims 9 bytes but the section ends after 4; the
    // total length still locates the NLRI (RFC 7606 §4).
    let mut attrs = base();
    attrs.push(vec![OPT, 4, 9, 0, 0, 0, 10]);
    assert_taw(
        &decode(&body(&[], &attrs, NLRI), &ibgp()),
        4,
        AttrProblem::SectionOverrun,
    );
}

#[test]
fn attribute_header_cut_off_is_treat_as_withdraw() {
    let mut attrs = base();
    attrs.push(vec![OPT]);
    assert_taw(
        &decode(&body(&[], &attrs, NLRI), &ibgp()),
        0,
        AttrProblem::SectionOverrun,
    );
}

#[test]
fn total_attribute_length_past_the_message_resets() {
    // The NLRI cannot be located: the total length overruns the message.
    let mut b = body(&[], &base(), NLRI);
    let len = u16::from_be_bytes([b[2], b[3]]) + 100;
    b[2..4].copy_from_slice(&len.to_be_bytes());
    assert_notification(&reset(&b, &ibgp()), 3, 1);
}

#[test]
fn withdrawn_length_past_the_message_resets() {
    let mut b = body(&[], &base(), NLRI);
    b[0..2].copy_from_slice(&500u16.to_be_bytes());
    assert_notification(&reset(&b, &ibgp()), 3, 1);
}

#[test]
fn nlri_prefix_length_above_32_resets_invalid_network_field() {
    let b = body(&[], &base(), &[33, 10, 244, 1, 0, 0]);
    assert_notification(&reset(&b, &ibgp()), 3, 10);
}

#[test]
fn truncated_nlri_prefix_resets_invalid_network_field() {
    let b = body(&[], &base(), &[24, 10, 244]);
    assert_notification(&reset(&b, &ibgp()), 3, 10);
}

#[test]
fn unparsable_withdrawn_routes_reset_invalid_network_field() {
    let b = body(&[40, 1, 2, 3, 4, 5], &[], &[]);
    assert_notification(&reset(&b, &ibgp()), 3, 10);
}

#[test]
fn mp_reach_prefix_length_above_128_resets() {
    let mut v = vec![0, 2, 1, 16];
    v.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    v.push(0);
    v.push(129);
    v.extend_from_slice(&[0xff; 17]);
    let attrs = vec![
        origin(),
        as_path(),
        local_pref(),
        attr(OPT | EXT_LEN, 14, &v),
    ];
    assert_notification(&reset(&body(&[], &attrs, &[]), &ibgp()), 3, 10);
}

#[test]
fn mp_reach_next_hop_length_invalid_for_family_resets() {
    // IPv6 unicast with an 8-byte next hop: neither 16 nor 32 (§7.11).
    let v = [
        0, 2, 1, 8, 1, 2, 3, 4, 5, 6, 7, 8, 0, 48, 0x20, 0x01, 0x0d, 0xb8, 0, 1,
    ];
    let attrs = vec![origin(), as_path(), local_pref(), attr(OPT, 14, &v)];
    let n = reset(&body(&[], &attrs, &[]), &ibgp());
    assert_notification(&n, 3, 9);
    assert_eq!(
        n.data,
        attr(OPT, 14, &v),
        "the attribute is returned as data"
    );
}

#[test]
fn unknown_optional_transitive_is_kept_and_passed_on_with_partial() {
    let mut attrs = base();
    attrs.push(attr(OPT_TRANS, 201, b"opaque"));
    let d = decode(&body(&[], &attrs, NLRI), &ibgp());
    assert_eq!(d.verdict(), Verdict::Accepted);
    let kept = d
        .update
        .attributes
        .iter()
        .find(|a| a.code() == 201)
        .expect("kept");
    assert_eq!(kept.flags, OPT_TRANS);
    let passed_on = kept
        .for_propagation()
        .expect("transitive attributes are passed on");
    assert_eq!(passed_on.flags, OPT_TRANS | 0x20, "Partial bit set");
}

#[test]
fn unknown_optional_non_transitive_is_dropped_quietly() {
    let mut attrs = base();
    attrs.push(attr(OPT, 202, b"opaque"));
    let d = decode(&body(&[], &attrs, NLRI), &ibgp());
    assert_eq!(d.verdict(), Verdict::Accepted);
    assert!(d.update.attribute(202).is_none());
}

#[test]
fn unknown_well_known_attribute_resets_with_unrecognized_well_known() {
    let unknown = attr(WELL_KNOWN, 203, &[1, 2]);
    let mut attrs = base();
    attrs.push(unknown.clone());
    let n = reset(&body(&[], &attrs, NLRI), &ibgp());
    assert_notification(&n, 3, 2);
    assert_eq!(n.data, unknown);
}

#[test]
fn malformed_attribute_in_update_without_nlri_affects_no_route_and_keeps_session() {
    // Only a withdrawal and a bad ORIGIN: the withdrawal is a withdrawal
    // either way; nothing is announced, nothing resets.
    let d = decode(&body(NLRI, &[attr(WELL_KNOWN, 1, &[7])], &[]), &ibgp());
    assert_eq!(d.update.announced().count(), 0);
    assert_eq!(d.update.withdrawals().count(), 1);
    assert!(matches!(d.verdict(), Verdict::TreatAsWithdraw(_)));
}

#[test]
fn end_of_rib_ipv4_empty_update_is_a_marker_not_an_error() {
    let d = decode(&body(&[], &[], &[]), &ibgp());
    assert_eq!(d.verdict(), Verdict::Accepted);
    assert_eq!(d.update.end_of_rib(), Some((1, 1)));
}

#[test]
fn end_of_rib_ipv6_empty_mp_unreach_is_a_marker_not_an_error() {
    let d = decode(&body(&[], &[attr(OPT, 15, &[0, 2, 1])], &[]), &ibgp());
    assert_eq!(d.verdict(), Verdict::Accepted);
    assert_eq!(d.update.end_of_rib(), Some((2, 1)));
    assert_eq!(Update::end_of_rib_marker(Family::Ipv6Unicast), d.update);
}

// ---- Per attribute (RFC 7606 §7) ----

#[test]
fn origin_length_not_one_is_treat_as_withdraw() {
    let b = body(&[], &base_with(1, Some(attr(WELL_KNOWN, 1, &[0, 0]))), NLRI);
    assert_taw(&decode(&b, &ibgp()), 1, bad_length(2));
}

#[test]
fn origin_value_above_two_is_treat_as_withdraw() {
    let b = body(&[], &base_with(1, Some(attr(WELL_KNOWN, 1, &[3]))), NLRI);
    assert_taw(&decode(&b, &ibgp()), 1, AttrProblem::InvalidValue);
}

fn with_as_path(value: &[u8]) -> Vec<u8> {
    body(&[], &base_with(2, Some(attr(WELL_KNOWN, 2, value))), NLRI)
}

#[test]
fn as_path_bad_segment_type_is_treat_as_withdraw() {
    let b = with_as_path(&[5, 1, 0, 0, 0xfd, 0xe9]);
    assert_taw(&decode(&b, &ibgp()), 2, AttrProblem::MalformedSegments);
}

#[test]
fn as_path_zero_length_segment_is_treat_as_withdraw() {
    let b = with_as_path(&[2, 0]);
    assert_taw(&decode(&b, &ibgp()), 2, AttrProblem::MalformedSegments);
}

#[test]
fn as_path_overrunning_segment_is_treat_as_withdraw() {
    let b = with_as_path(&[2, 2, 0, 0, 0xfd, 0xe9]);
    assert_taw(&decode(&b, &ibgp()), 2, AttrProblem::MalformedSegments);
}

#[test]
fn as_path_odd_bytes_left_is_treat_as_withdraw() {
    let b = with_as_path(&[2, 1, 0, 0, 0xfd, 0xe9, 2]);
    assert_taw(&decode(&b, &ibgp()), 2, AttrProblem::MalformedSegments);
}

#[test]
fn as_path_with_as_zero_is_treat_as_withdraw() {
    let b = with_as_path(&[2, 2, 0, 0, 0xfd, 0xe9, 0, 0, 0, 0]);
    assert_taw(&decode(&b, &ibgp()), 2, AttrProblem::ZeroAs);
}

#[test]
fn as_path_first_as_not_the_ebgp_peer_resets_malformed_as_path() {
    let b = with_as_path(&[2, 1, 0, 0, 0xfd, 0xea]); // 65002, peer is 65001
    assert_notification(&reset(&b, &ebgp()), 3, 11);
}

#[test]
fn as_path_first_as_of_the_ebgp_peer_is_accepted() {
    let attrs = vec![origin(), as_path(), next_hop()]; // no LOCAL_PREF on eBGP
    assert_eq!(
        decode(&body(&[], &attrs, NLRI), &ebgp()).verdict(),
        Verdict::Accepted
    );
}

#[test]
fn next_hop_length_not_four_is_treat_as_withdraw() {
    let b = body(
        &[],
        &base_with(3, Some(attr(WELL_KNOWN, 3, &[192, 0, 2, 1, 0]))),
        NLRI,
    );
    assert_taw(&decode(&b, &ibgp()), 3, bad_length(5));
}

#[test]
fn next_hop_martians_are_treat_as_withdraw() {
    for nh in [
        [0, 0, 0, 0],
        [127, 0, 0, 1],
        [224, 0, 0, 5],
        [240, 0, 0, 1],
        [255, 255, 255, 255],
    ] {
        let b = body(&[], &base_with(3, Some(attr(WELL_KNOWN, 3, &nh))), NLRI);
        assert_taw(
            &decode(&b, &ibgp()),
            3,
            AttrProblem::MartianNextHop(Ipv4Addr::from(nh)),
        );
    }
}

#[test]
fn next_hop_equal_to_our_own_address_is_treat_as_withdraw() {
    let ctx = DecodeContext {
        local_address: Some(Ipv4Addr::new(192, 0, 2, 1)),
        ..ibgp()
    };
    let d = decode(&body(&[], &base(), NLRI), &ctx);
    assert_taw(
        &d,
        3,
        AttrProblem::MartianNextHop(Ipv4Addr::new(192, 0, 2, 1)),
    );
}

#[test]
fn med_length_not_four_is_treat_as_withdraw() {
    let mut attrs = base();
    attrs.push(attr(OPT, 4, &[0, 0, 10]));
    assert_taw(&decode(&body(&[], &attrs, NLRI), &ibgp()), 4, bad_length(3));
}

#[test]
fn local_pref_from_ebgp_is_discarded() {
    let d = decode(&body(&[], &base(), NLRI), &ebgp());
    assert_discarded(&d, 5, AttrProblem::LocalPrefFromExternal);
}

#[test]
fn local_pref_length_not_four_on_ibgp_is_treat_as_withdraw() {
    let b = body(
        &[],
        &base_with(5, Some(attr(WELL_KNOWN, 5, &[0, 100]))),
        NLRI,
    );
    assert_taw(&decode(&b, &ibgp()), 5, bad_length(2));
}

#[test]
fn atomic_aggregate_with_a_value_is_discarded() {
    let mut attrs = base();
    attrs.push(attr(WELL_KNOWN, 6, &[1]));
    assert_discarded(&decode(&body(&[], &attrs, NLRI), &ibgp()), 6, bad_length(1));
}

#[test]
fn aggregator_length_not_six_on_a_two_octet_session_is_discarded() {
    let ctx = DecodeContext::default(); // 2-octet AS
    let attrs = vec![
        origin(),
        attr(WELL_KNOWN, 2, &[2, 1, 0xfd, 0xe9]),
        next_hop(),
        local_pref(),
        attr(OPT_TRANS, 7, &[0, 0, 0xfd, 0xe9, 192, 0, 2, 1]),
    ];
    assert_discarded(&decode(&body(&[], &attrs, NLRI), &ctx), 7, bad_length(8));
}

#[test]
fn aggregator_length_not_eight_on_a_four_octet_session_is_discarded() {
    let mut attrs = base();
    attrs.push(attr(OPT_TRANS, 7, &[0xfd, 0xe9, 192, 0, 2, 1]));
    assert_discarded(&decode(&body(&[], &attrs, NLRI), &ibgp()), 7, bad_length(6));
}

#[test]
fn communities_length_zero_is_treat_as_withdraw() {
    let mut attrs = base();
    attrs.push(attr(OPT_TRANS, 8, &[]));
    assert_taw(&decode(&body(&[], &attrs, NLRI), &ibgp()), 8, bad_length(0));
}

#[test]
fn communities_length_not_a_multiple_of_four_is_treat_as_withdraw() {
    let mut attrs = base();
    attrs.push(attr(OPT_TRANS, 8, &[0, 1, 0, 2, 0]));
    assert_taw(&decode(&body(&[], &attrs, NLRI), &ibgp()), 8, bad_length(5));
}

#[test]
fn originator_id_length_not_four_is_treat_as_withdraw_on_ibgp() {
    let mut attrs = base();
    attrs.push(attr(OPT, 9, &[10, 0, 0]));
    assert_taw(&decode(&body(&[], &attrs, NLRI), &ibgp()), 9, bad_length(3));
}

#[test]
fn originator_id_length_not_four_is_discarded_on_ebgp() {
    let mut attrs = base_with(5, None);
    attrs.push(attr(OPT, 9, &[10, 0, 0]));
    assert_discarded(&decode(&body(&[], &attrs, NLRI), &ebgp()), 9, bad_length(3));
}

#[test]
fn originator_id_equal_to_our_router_id_ignores_the_route() {
    let ctx = DecodeContext {
        local_router_id: Some(Ipv4Addr::new(10, 0, 0, 9)),
        ..ibgp()
    };
    let mut attrs = base();
    attrs.push(attr(OPT, 9, &[10, 0, 0, 9]));
    assert_taw(
        &decode(&body(&[], &attrs, NLRI), &ctx),
        9,
        AttrProblem::OriginatorIsUs,
    );
}

#[test]
fn cluster_list_length_zero_is_treat_as_withdraw_on_ibgp() {
    let mut attrs = base();
    attrs.push(attr(OPT, 10, &[]));
    assert_taw(
        &decode(&body(&[], &attrs, NLRI), &ibgp()),
        10,
        bad_length(0),
    );
}

#[test]
fn cluster_list_length_not_a_multiple_of_four_is_treat_as_withdraw_on_ibgp() {
    let mut attrs = base();
    attrs.push(attr(OPT, 10, &[10, 0, 0, 1, 10]));
    assert_taw(
        &decode(&body(&[], &attrs, NLRI), &ibgp()),
        10,
        bad_length(5),
    );
}

#[test]
fn cluster_list_malformed_is_discarded_on_ebgp() {
    let mut attrs = base_with(5, None);
    attrs.push(attr(OPT, 10, &[10, 0]));
    assert_discarded(
        &decode(&body(&[], &attrs, NLRI), &ebgp()),
        10,
        bad_length(2),
    );
}

#[test]
fn cluster_list_containing_our_cluster_id_ignores_the_route() {
    let ctx = DecodeContext {
        cluster_id: Some(Ipv4Addr::new(10, 0, 0, 254)),
        ..ibgp()
    };
    let mut attrs = base();
    attrs.push(attr(OPT, 10, &[10, 0, 0, 1, 10, 0, 0, 254]));
    assert_taw(
        &decode(&body(&[], &attrs, NLRI), &ctx),
        10,
        AttrProblem::ClusterLoop,
    );
}

#[test]
fn mp_reach_cut_short_resets() {
    let attrs = vec![
        origin(),
        as_path(),
        local_pref(),
        attr(OPT, 14, &[0, 2, 1, 16, 0x20]),
    ];
    assert_notification(&reset(&body(&[], &attrs, &[]), &ibgp()), 3, 9);
}

#[test]
fn mp_reach_unparsable_nlri_resets() {
    let mut v = vec![0, 2, 1, 16];
    v.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    v.extend_from_slice(&[0, 64, 0x20, 0x01]); // /64 with 2 of 8 bytes
    let attrs = vec![origin(), as_path(), local_pref(), attr(OPT, 14, &v)];
    assert_notification(&reset(&body(&[], &attrs, &[]), &ibgp()), 3, 10);
}

#[test]
fn mp_unreach_unparsable_nlri_resets() {
    let attrs = vec![attr(OPT, 15, &[0, 2, 1, 64, 0x20, 0x01])];
    assert_notification(&reset(&body(&[], &attrs, &[]), &ibgp()), 3, 10);
}

#[test]
fn mp_unreach_cut_short_resets() {
    let attrs = vec![attr(OPT, 15, &[0, 2])];
    assert_notification(&reset(&body(&[], &attrs, &[]), &ibgp()), 3, 9);
}

#[test]
fn extended_communities_length_not_a_multiple_of_eight_is_treat_as_withdraw() {
    let mut attrs = base();
    attrs.push(attr(OPT_TRANS, 16, &[0, 2, 0xfd, 0xe9, 0, 0, 0]));
    assert_taw(
        &decode(&body(&[], &attrs, NLRI), &ibgp()),
        16,
        bad_length(7),
    );
}

/// A 2-octet session: AS_PATH [AS_TRANS].
fn two_octet_base() -> Vec<Vec<u8>> {
    vec![
        origin(),
        attr(WELL_KNOWN, 2, &[2, 1, 0x5b, 0xa0]),
        next_hop(),
        local_pref(),
    ]
}

#[test]
fn as4_path_malformed_is_discarded() {
    let mut attrs = two_octet_base();
    attrs.push(attr(OPT_TRANS, 17, &[2, 2, 0, 1, 0, 0]));
    let d = decode(&body(&[], &attrs, NLRI), &DecodeContext::default());
    assert_discarded(&d, 17, AttrProblem::MalformedSegments);
}

#[test]
fn as4_path_from_a_four_octet_peer_is_discarded() {
    let mut attrs = base();
    attrs.push(attr(OPT_TRANS, 17, &[2, 1, 0, 1, 0, 0]));
    assert_discarded(
        &decode(&body(&[], &attrs, NLRI), &ibgp()),
        17,
        AttrProblem::FromFourOctetPeer,
    );
}

#[test]
fn as4_path_from_a_two_octet_peer_is_kept() {
    let mut attrs = two_octet_base();
    attrs.push(attr(OPT_TRANS, 17, &[2, 1, 0, 1, 0, 0]));
    let d = decode(&body(&[], &attrs, NLRI), &DecodeContext::default());
    assert_eq!(d.verdict(), Verdict::Accepted);
    assert_eq!(
        d.update.attribute(17),
        Some(&AttrValue::As4Path(AsPath::sequence(vec![65536])))
    );
}

#[test]
fn as4_aggregator_from_a_four_octet_peer_is_discarded() {
    let mut attrs = base();
    attrs.push(attr(OPT_TRANS, 18, &[0, 1, 0, 0, 192, 0, 2, 1]));
    assert_discarded(
        &decode(&body(&[], &attrs, NLRI), &ibgp()),
        18,
        AttrProblem::FromFourOctetPeer,
    );
}

#[test]
fn as4_aggregator_length_not_eight_is_discarded() {
    let mut attrs = two_octet_base();
    attrs.push(attr(OPT_TRANS, 18, &[0, 1, 0, 0, 192, 0, 2]));
    let d = decode(&body(&[], &attrs, NLRI), &DecodeContext::default());
    assert_discarded(&d, 18, bad_length(7));
}

#[test]
fn ipv6_extended_communities_length_not_a_multiple_of_twenty_is_treat_as_withdraw() {
    let mut attrs = base();
    attrs.push(attr(OPT_TRANS, 25, &[0; 19]));
    assert_taw(
        &decode(&body(&[], &attrs, NLRI), &ibgp()),
        25,
        bad_length(19),
    );
}

#[test]
fn large_community_length_zero_is_treat_as_withdraw() {
    let mut attrs = base();
    attrs.push(attr(OPT_TRANS, 32, &[]));
    assert_taw(
        &decode(&body(&[], &attrs, NLRI), &ibgp()),
        32,
        bad_length(0),
    );
}

#[test]
fn large_community_length_not_a_multiple_of_twelve_is_treat_as_withdraw() {
    let mut attrs = base();
    attrs.push(attr(OPT_TRANS, 32, &[0; 13]));
    assert_taw(
        &decode(&body(&[], &attrs, NLRI), &ibgp()),
        32,
        bad_length(13),
    );
}

#[test]
fn otc_length_not_four_is_treat_as_withdraw() {
    let mut attrs = base();
    attrs.push(attr(OPT_TRANS, 35, &[0, 0, 0xfd]));
    assert_taw(
        &decode(&body(&[], &attrs, NLRI), &ibgp()),
        35,
        bad_length(3),
    );
}

#[test]
fn tunnel_encapsulation_with_malformed_tlvs_is_treat_as_withdraw() {
    // The CVE-2023-38802 shape: a tunnel TLV whose length overruns.
    let mut attrs = base();
    attrs.push(attr(OPT_TRANS, 23, &[0, 8, 0, 40, 1, 4, 0, 0]));
    assert_taw(
        &decode(&body(&[], &attrs, NLRI), &ibgp()),
        23,
        AttrProblem::MalformedTlvs,
    );
}

#[test]
fn tunnel_encapsulation_well_formed_is_kept() {
    // VXLAN (type 8) with one Encapsulation sub-TLV (type 1, 8 bytes).
    let mut attrs = base();
    let value = [0, 8, 0, 10, 1, 8, 0, 0, 0, 0, 0, 0, 0, 0];
    attrs.push(attr(OPT_TRANS, 23, &value));
    let d = decode(&body(&[], &attrs, NLRI), &ibgp());
    assert_eq!(d.verdict(), Verdict::Accepted);
    assert!(d.update.attribute(23).is_some());
}

#[test]
fn aigp_malformed_is_discarded() {
    let mut attrs = base();
    attrs.push(attr(OPT, 26, &[1, 0, 9, 0, 0, 0, 0, 0, 0]));
    assert_discarded(
        &decode(&body(&[], &attrs, NLRI), &ibgp()),
        26,
        AttrProblem::MalformedTlvs,
    );
}

#[test]
fn prefix_sid_malformed_is_discarded() {
    let mut attrs = base();
    attrs.push(attr(OPT_TRANS, 40, &[1, 0, 7, 0, 0, 0]));
    assert_discarded(
        &decode(&body(&[], &attrs, NLRI), &ibgp()),
        40,
        AttrProblem::MalformedTlvs,
    );
}

#[test]
fn bgp_ls_malformed_is_discarded() {
    let mut attrs = base();
    attrs.push(attr(OPT, 29, &[4, 2, 0, 8, 0]));
    assert_discarded(
        &decode(&body(&[], &attrs, NLRI), &ibgp()),
        29,
        AttrProblem::MalformedTlvs,
    );
}

#[test]
fn deprecated_attribute_28_is_passed_on_and_never_resets() {
    // The 2023 trigger: garbage in attribute 28, optional transitive.
    let mut attrs = base();
    attrs.push(attr(OPT_TRANS, 28, &[0xff, 0x00, 0x13]));
    let d = decode(&body(&[], &attrs, NLRI), &ibgp());
    assert_eq!(d.verdict(), Verdict::Accepted);
    let a = d
        .update
        .attributes
        .iter()
        .find(|a| a.code() == 28)
        .expect("kept");
    assert_eq!(a.for_propagation().map(|a| a.flags), Some(OPT_TRANS | 0x20));
}

// ---- Do not re-emit what you cannot re-parse ----

#[test]
fn discarded_attributes_are_not_re_encoded() {
    let mut attrs = base();
    attrs.push(attr(OPT_TRANS, 7, &[0xfd, 0xe9, 192, 0, 2, 1])); // bad AGGREGATOR
    let d = decode(&body(&[], &attrs, NLRI), &ibgp());
    let bytes = Message::Update(d.update).to_bytes(&ibgp()).unwrap();
    let again = Message::decode(&bytes, &ibgp()).unwrap();
    assert!(again.faults.is_empty());
    let Message::Update(u) = again.message else {
        panic!()
    };
    assert!(u.attribute(7).is_none());
}

#[test]
fn unknown_optional_non_transitive_is_not_propagated() {
    let a = PathAttribute {
        flags: OPT,
        value: AttrValue::Opaque {
            code: 202,
            value: vec![1],
        },
    };
    assert_eq!(a.for_propagation(), None);
}

// ---- Header and OPEN errors (RFC 4271 §6.1, §6.2) ----

fn message(msg_type: u8, body: &[u8]) -> Vec<u8> {
    let mut m = vec![0xff; 16];
    m.extend_from_slice(&((19 + body.len()) as u16).to_be_bytes());
    m.push(msg_type);
    m.extend_from_slice(body);
    m
}

fn message_error(bytes: &[u8], ctx: &DecodeContext) -> Notification {
    Message::decode(bytes, ctx)
        .expect_err("a session reset")
        .notification()
}

#[test]
fn marker_not_all_ones_is_connection_not_synchronized() {
    let mut m = message(4, &[]);
    m[3] = 0xfe;
    assert_notification(&message_error(&m, &ibgp()), 1, 1);
}

#[test]
fn length_below_19_is_bad_message_length_with_the_length_as_data() {
    let mut m = message(4, &[]);
    m[16..18].copy_from_slice(&18u16.to_be_bytes());
    let n = message_error(&m, &ibgp());
    assert_notification(&n, 1, 2);
    assert_eq!(n.data, vec![0, 18]);
}

#[test]
fn length_above_4096_is_bad_message_length_without_extended_messages() {
    let m = message(
        2,
        &body(&[], &[attr(OPT_TRANS | EXT_LEN, 201, &[0; 4100])], &[]),
    );
    let n = message_error(&m, &ibgp());
    assert_notification(&n, 1, 2);
    assert_eq!(n.data, ((m.len()) as u16).to_be_bytes().to_vec());
    let extended = DecodeContext {
        extended_message: true,
        ..ibgp()
    };
    assert!(
        Message::decode(&m, &extended).is_ok(),
        "fine with extended messages (RFC 8654)"
    );
}

#[test]
fn keepalive_with_a_body_is_bad_message_length() {
    assert_notification(&message_error(&message(4, &[0]), &ibgp()), 1, 2);
}

#[test]
fn open_above_4096_is_bad_message_length_even_with_extended_messages() {
    let extended = DecodeContext {
        extended_message: true,
        ..ibgp()
    };
    assert_notification(&message_error(&message(1, &[0; 5000]), &extended), 1, 2);
}

#[test]
fn notification_shorter_than_21_is_bad_message_length() {
    assert_notification(&message_error(&message(3, &[6]), &ibgp()), 1, 2);
}

#[test]
fn unknown_message_type_is_bad_message_type_with_the_type_as_data() {
    let n = message_error(&message(9, &[]), &ibgp());
    assert_notification(&n, 1, 3);
    assert_eq!(n.data, vec![9]);
}

/// An OPEN body: version, AS, hold time, identifier, parameters.
fn open_body(version: u8, asn: u16, hold: u16, id: [u8; 4], params: &[u8]) -> Vec<u8> {
    let mut b = vec![version];
    b.extend_from_slice(&asn.to_be_bytes());
    b.extend_from_slice(&hold.to_be_bytes());
    b.extend_from_slice(&id);
    b.push(params.len() as u8);
    b.extend_from_slice(params);
    b
}

#[test]
fn open_version_other_than_4_is_unsupported_version_with_4_as_data() {
    let n = message_error(
        &message(1, &open_body(3, 65001, 90, [10, 0, 0, 1], &[])),
        &ibgp(),
    );
    assert_notification(&n, 2, 1);
    assert_eq!(n.data, vec![0, 4]);
}

fn decoded_open(body: &[u8]) -> Open {
    match Message::decode(&message(1, body), &ibgp()).unwrap().message {
        Message::Open(o) => o,
        other => panic!("{other:?}"),
    }
}

fn check() -> OpenCheck {
    OpenCheck {
        local_as: 65001,
        local_id: Ipv4Addr::new(10, 0, 0, 1),
        expected_peer_as: Some(65001),
        required: vec![],
    }
}

#[test]
fn open_peer_as_mismatch_is_bad_peer_as() {
    let open = decoded_open(&open_body(4, 65002, 90, [10, 0, 0, 2], &[]));
    assert_notification(&open.check(&check()).unwrap_err().notification(), 2, 2);
}

#[test]
fn open_peer_as_from_the_four_octet_capability_is_used() {
    // AS_TRANS in the fixed field, 4200000000 in capability 65.
    let caps = [2, 6, 65, 4, 0xfa, 0x56, 0xea, 0x00];
    let open = decoded_open(&open_body(4, 23456, 90, [10, 0, 0, 2], &caps));
    assert_eq!(open.asn(), 4_200_000_000);
    let c = OpenCheck {
        expected_peer_as: Some(4_200_000_000),
        ..check()
    };
    assert_eq!(open.check(&c), Ok(()));
}

#[test]
fn open_bgp_identifier_zero_is_bad_bgp_identifier() {
    let n = message_error(
        &message(1, &open_body(4, 65001, 90, [0, 0, 0, 0], &[])),
        &ibgp(),
    );
    assert_notification(&n, 2, 3);
}

#[test]
fn open_bgp_identifier_equal_to_ours_on_ibgp_is_bad_bgp_identifier() {
    let open = decoded_open(&open_body(4, 65001, 90, [10, 0, 0, 1], &[]));
    assert_notification(&open.check(&check()).unwrap_err().notification(), 2, 3);
}

#[test]
fn open_unknown_optional_parameter_is_unsupported_optional_parameter() {
    let n = message_error(
        &message(1, &open_body(4, 65001, 90, [10, 0, 0, 2], &[1, 2, 0, 0])),
        &ibgp(),
    );
    assert_notification(&n, 2, 4);
}

#[test]
fn open_hold_time_one_or_two_is_unacceptable_hold_time() {
    for hold in [1, 2] {
        let n = message_error(
            &message(1, &open_body(4, 65001, hold, [10, 0, 0, 2], &[])),
            &ibgp(),
        );
        assert_notification(&n, 2, 6);
    }
}

#[test]
fn open_hold_time_zero_or_three_is_accepted() {
    for hold in [0, 3] {
        assert_eq!(
            decoded_open(&open_body(4, 65001, hold, [10, 0, 0, 2], &[])).hold_time,
            hold
        );
    }
}

#[test]
fn open_required_capability_missing_is_unsupported_capability_naming_it() {
    let open = decoded_open(&open_body(4, 65001, 90, [10, 0, 0, 2], &[]));
    let c = OpenCheck {
        required: vec![Capability::Multiprotocol { afi: 2, safi: 1 }],
        ..check()
    };
    let n = open.check(&c).unwrap_err().notification();
    assert_notification(&n, 2, 7);
    assert_eq!(n.data, vec![1, 4, 0, 2, 0, 1]);
}

#[test]
fn open_malformed_known_capability_is_unspecific_open_error() {
    // 4-octet AS capability with 3 bytes.
    let caps = [2, 5, 65, 3, 0, 0, 1];
    let n = message_error(
        &message(1, &open_body(4, 65001, 90, [10, 0, 0, 2], &caps)),
        &ibgp(),
    );
    assert_notification(&n, 2, 0);
}

#[test]
fn update_whose_attribute_list_cannot_be_walked_is_malformed_attribute_list() {
    let mut m = message(2, &body(&[], &base(), NLRI));
    m[21] = 0xff; // total path attribute length far past the message
    assert_notification(&message_error(&m, &ibgp()), 3, 1);
}

#[test]
fn max_prefix_cease_carries_afi_safi_and_the_limit() {
    // RFC 4486 §4: AFI (2), SAFI (1), upper bound (4).
    let n = Notification::max_prefixes_reached(Family::Ipv4Unicast, 1000);
    assert_notification(&n, 6, 1);
    assert_eq!(n.data, vec![0, 1, 1, 0, 0, 0x03, 0xe8]);
}

#[test]
fn admin_shutdown_carries_a_utf8_shutdown_communication_up_to_255_bytes() {
    let n = Notification::admin_shutdown("drain before upgrade ✓");
    assert_notification(&n, 6, 2);
    let bytes = Message::Notification(n.clone()).to_bytes(&ibgp()).unwrap();
    let back = Message::decode(&bytes, &ibgp()).unwrap().message;
    let Message::Notification(back) = back else {
        panic!()
    };
    assert_eq!(
        back.shutdown_communication(),
        Some("drain before upgrade ✓")
    );

    let long = "é".repeat(200); // 400 bytes: cut to 254 at a char boundary
    let n = Notification::admin_shutdown(&long);
    assert_eq!(n.data[0], 254);
    assert_eq!(n.shutdown_communication().map(str::len), Some(254));
}
