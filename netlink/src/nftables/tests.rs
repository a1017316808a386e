use super::parse::{Chain, Rule, Set, set_element_keys};
use super::*;
use crate::attr::attributes;
use crate::consts::{NF_ACCEPT, NF_DROP, NFTA_SET_ELEM_LIST_ELEMENTS};

/// A dump reply body as the kernel sends one: `nfgenmsg` and the request's
/// attributes (the kernel echoes what the objects were created with).
fn reply(r: &Request) -> Vec<u8> {
    let mut body = vec![r.family.0, 0, 0, 0];
    body.extend_from_slice(&r.attributes);
    body
}

#[test]
fn a_rule_reads_back_with_its_expressions_in_order_and_its_comment() {
    let r = Request::new_rule(
        Family::IPV4,
        "podroute",
        "ipip-input",
        &[
            Expr::NetworkPayload {
                offset: 9,
                len: 1,
                dreg: 1,
            },
            Expr::Equal {
                sreg: 1,
                value: &[4],
            },
            Expr::Lookup {
                set: "ipip-nodes",
                set_id: Some(7),
                sreg: 1,
                invert: true,
            },
            Expr::CounterRef {
                name: "ipip-dropped",
            },
            Expr::Verdict(NF_DROP),
        ],
        "podroute: IPIP only from nodes",
    );
    assert_eq!(
        (r.kind, r.flags),
        (NFT_MSG_NEWRULE, NLM_F_CREATE | NLM_F_APPEND)
    );
    let rule = Rule::parse(&reply(&r)).unwrap();
    assert_eq!(rule.table, "podroute");
    assert_eq!(rule.chain, "ipip-input");
    assert_eq!(
        rule.expressions,
        ["payload", "cmp", "lookup", "objref", "immediate"]
    );
    assert_eq!(
        rule.comment.as_deref(),
        Some("podroute: IPIP only from nodes")
    );
}

#[test]
fn comment_user_data_is_nfts_tlv_with_the_nul_counted() {
    // As nft writes `comment "ab"`: type 0, length 3, "ab\0".
    assert_eq!(comment_userdata("ab"), [0, 3, b'a', b'b', 0]);
    assert_eq!(comment_userdata(&"x".repeat(300)).len(), 2 + 254 + 1);
}

#[test]
fn a_base_chain_reads_back_with_hook_priority_policy_and_type() {
    let hook = Hook {
        number: crate::consts::NF_INET_LOCAL_IN,
        priority: -150,
    };
    let r = Request::new_filter_chain(Family::IPV4, "t", "c", hook, NF_ACCEPT);
    let chain = Chain::parse(&reply(&r)).unwrap();
    assert_eq!(chain.hook, Some(hook));
    assert_eq!(chain.policy, Some(NF_ACCEPT));
    assert_eq!(chain.kind.as_deref(), Some("filter"));
    assert_eq!((chain.table.as_str(), chain.name.as_str()), ("t", "c"));
}

#[test]
fn an_ipv4_set_has_four_byte_keys_of_nfts_ipv4_addr_type() {
    let r = Request::new_ipv4_set(Family::IPV4, "t", "s", 1);
    let set = Set::parse(&reply(&r)).unwrap();
    assert_eq!((set.name.as_str(), set.key_len, set.flags), ("s", 4, 0));
    let key_type = attributes(&r.attributes)
        .find(|(k, _)| *k == crate::consts::NFTA_SET_KEY_TYPE)
        .unwrap()
        .1;
    assert_eq!(key_type, 7u32.to_be_bytes());
}

#[test]
fn element_requests_carry_every_key_and_split_past_the_attribute_limit() {
    let keys: Vec<[u8; 4]> = (0..2500u32).map(u32::to_be_bytes).collect();
    let refs: Vec<&[u8]> = keys.iter().map(|k| &k[..]).collect();
    let requests = Request::new_elements(Family::IPV4, "t", "s", &refs);
    assert_eq!(requests.len(), 3);
    let mut back = Vec::new();
    for r in &requests {
        assert_eq!(r.kind, NFT_MSG_NEWSETELEM);
        // The element list is one attribute: it must fit its 16-bit length.
        let list = attributes(&r.attributes)
            .find(|(k, _)| *k == NFTA_SET_ELEM_LIST_ELEMENTS)
            .unwrap()
            .1;
        assert!(list.len() < usize::from(u16::MAX));
        back.extend(set_element_keys(&reply(r)));
    }
    assert_eq!(back, keys.iter().map(|k| k.to_vec()).collect::<Vec<_>>());
    let del = Request::del_elements(Family::IPV4, "t", "s", &refs[..2]);
    assert_eq!((del.len(), del[0].kind), (1, NFT_MSG_DELSETELEM));
}

#[test]
fn nested_attributes_carry_the_nested_flag_as_nft_sends_them() {
    let r = Request::new_elements(Family::IPV4, "t", "s", &[&[10, 0, 0, 1]]);
    let raw_type = |bytes: &[u8], at: usize| u16::from_ne_bytes([bytes[at + 2], bytes[at + 3]]);
    // table "t\0" (8 bytes), set "s\0" (8 bytes), then the list.
    assert_eq!(raw_type(&r[0].attributes, 16), NLA_F_NESTED | 3);
}

#[test]
fn replies_too_short_or_nameless_are_none_and_do_not_panic() {
    assert!(Chain::parse(&[2, 0]).is_none());
    assert!(Set::parse(&[2, 0, 0, 0]).is_none());
    assert!(parse::Table::parse(&[2, 0, 0, 0, 8, 0]).is_none());
    assert!(set_element_keys(&[1]).is_empty());
    let r = Request::new_rule(Family::IPV4, "t", "c", &[Expr::Verdict(NF_DROP)], "x");
    let body = reply(&r);
    for cut in 0..body.len() {
        let _ = Rule::parse(&body[..cut]);
        let _ = Chain::parse(&body[..cut]);
        let _ = parse::Counter::parse(&body[..cut]);
    }
}

#[test]
fn a_counter_is_created_with_its_data_which_the_kernel_requires() {
    // nf_tables_newobj refuses an object without NFTA_OBJ_DATA (EINVAL):
    // the counter starts from explicit zeros, as nft sends it.
    let r = Request::new_counter(Family::IPV4, "t", "dropped");
    assert_eq!(r.kind, crate::consts::NFT_MSG_NEWOBJ);
    let data = attributes(&r.attributes)
        .find(|(k, _)| *k == crate::consts::NFTA_OBJ_DATA)
        .expect("NFTA_OBJ_DATA")
        .1;
    let kinds: Vec<u16> = attributes(data).map(|(k, _)| k).collect();
    assert_eq!(
        kinds,
        [
            crate::consts::NFTA_COUNTER_BYTES,
            crate::consts::NFTA_COUNTER_PACKETS
        ]
    );
    let counter = parse::Counter::parse(&reply(&r)).unwrap();
    assert_eq!((counter.name.as_str(), counter.packets), ("dropped", 0));
}
