//! Fuzz target bodies, shared by `fuzz/` (cargo-fuzz, nightly) and the
//! stable test that replays the committed corpus, so both exercise the same
//! code. Each function takes arbitrary bytes and panics only when an
//! invariant of the codec is broken, which is what the fuzzer looks for.

use crate::wire::{AddPath, DecodeContext, Framer, Message, PeerKind, Update};

/// Builds a session context from two bytes, so every target can explore
/// every combination of negotiated capabilities and peer kinds.
pub fn context_from(bits: u8, extra: u8) -> DecodeContext {
    let bit = |n: u8| bits & (1 << n) != 0;
    DecodeContext {
        four_octet_as: bit(0),
        extended_message: bit(1),
        add_path: AddPath {
            ipv4_unicast: bit(2),
            ipv6_unicast: bit(3),
        },
        peer: if bit(4) {
            PeerKind::External {
                peer_as: u32::from(extra),
                enforce_first_as: bit(5),
            }
        } else {
            PeerKind::Internal
        },
        local_router_id: bit(6).then(|| std::net::Ipv4Addr::new(10, 0, 0, extra)),
        cluster_id: bit(7).then(|| std::net::Ipv4Addr::new(10, 0, 0, extra)),
        local_address: bit(6).then(|| std::net::Ipv4Addr::new(10, 0, 0, extra)),
    }
}

fn split_context(data: &[u8]) -> (DecodeContext, &[u8]) {
    match data {
        [bits, extra, rest @ ..] => (context_from(*bits, *extra), rest),
        _ => (DecodeContext::default(), &[]),
    }
}

/// Whole-message decode under an arbitrary context; a success must
/// re-encode.
pub fn message(data: &[u8]) {
    let (ctx, bytes) = split_context(data);
    if let Ok(decoded) = Message::decode(bytes, &ctx) {
        // Everything we accept we must be able to write back.
        assert!(
            decoded.message.to_bytes(&ctx).is_ok(),
            "decoded message does not re-encode"
        );
    }
}

/// UPDATE body decode; every verdict must be well-formed.
pub fn update(data: &[u8]) {
    let (ctx, body) = split_context(data);
    match Update::decode(body, &ctx) {
        Ok(d) => {
            let _ = d.verdict();
            for p in d.update.announced().chain(d.update.withdrawals()) {
                assert!(p.network.prefix() <= 128);
            }
        }
        Err(e) => {
            let n = e.notification();
            assert_eq!(n.code, crate::wire::iana::notify::UPDATE_MESSAGE);
        }
    }
}

/// OPEN decode: a body wrapped in a header; a success must round-trip.
pub fn open(data: &[u8]) {
    let mut msg = vec![0xff; 16];
    let len = data.len().saturating_add(19);
    let Ok(len16) = u16::try_from(len) else {
        return;
    };
    msg.extend_from_slice(&len16.to_be_bytes());
    msg.push(crate::wire::iana::msg_type::OPEN);
    msg.extend_from_slice(data);
    let ctx = DecodeContext::default();
    match Message::decode(&msg, &ctx) {
        Ok(d) => {
            let Message::Open(open) = &d.message else {
                panic!("an OPEN header decoded to {:?}", d.message);
            };
            let again = d.message.to_bytes(&ctx).expect("decoded OPEN re-encodes");
            let d2 = Message::decode(&again, &ctx).expect("re-encoded OPEN decodes");
            assert_eq!(d2.message, Message::Open(open.clone()));
        }
        Err(e) => {
            let n = e.notification();
            assert!(
                n.code == 1 || n.code == 2,
                "OPEN error with NOTIFICATION {n}"
            );
        }
    }
}

/// decode → encode → decode must give the same message, and encoding it
/// again the same bytes.
pub fn roundtrip(data: &[u8]) {
    let (ctx, bytes) = split_context(data);
    let Ok(first) = Message::decode(bytes, &ctx) else {
        return;
    };
    let encoded = first
        .message
        .to_bytes(&ctx)
        .expect("decoded message re-encodes");
    let second = Message::decode(&encoded, &ctx).expect("re-encoded message decodes");
    assert_eq!(first.message, second.message, "decode(encode(m)) != m");
    let again = second.message.to_bytes(&ctx).expect("second encode");
    assert_eq!(encoded, again, "encoding is not stable");
}

/// The framer fed arbitrary chunks must give the same messages as when fed
/// everything at once.
pub fn framer(data: &[u8]) {
    let Some((&sizes_len, rest)) = data.split_first() else {
        return;
    };
    let (sizes, stream) = rest.split_at(usize::from(sizes_len).min(rest.len()));
    let extended = sizes_len & 1 == 1;

    let collect = |chunks: &mut dyn Iterator<Item = &[u8]>| {
        let mut f = Framer::new(extended);
        let mut out = Vec::new();
        let mut error = None;
        for chunk in chunks {
            f.push(chunk);
            loop {
                match f.next_message() {
                    Ok(Some(m)) => {
                        assert!(m.len() >= 19 && m.len() <= if extended { 65535 } else { 4096 });
                        out.push(m);
                    }
                    Ok(None) => break,
                    Err(e) => {
                        error = Some(e);
                        break;
                    }
                }
            }
            if error.is_some() {
                break;
            }
            assert!(f.buffered() <= 65535 + chunk.len());
        }
        (out, error)
    };

    let whole = collect(&mut std::iter::once(stream));
    let mut pos = 0usize;
    let mut size_iter = sizes.iter().cycle();
    let mut pieces = Vec::new();
    while pos < stream.len() {
        let step = usize::from(*size_iter.next().unwrap_or(&255)).max(1);
        let end = pos.saturating_add(step).min(stream.len());
        pieces.push(&stream[pos..end]);
        pos = end;
    }
    let chunked = collect(&mut pieces.into_iter());
    assert_eq!(whole, chunked, "framing depends on how the stream was cut");
}
