//! Decodes one BGP message given as hex and prints it with its RFC 7606
//! verdict: a quick way to look at bytes from a capture.
//!
//! ```sh
//! cargo run -p podroute-examples --example decode -- \
//!     ffffffffffffffffffffffffffffffff001304
//! cargo run -p podroute-examples --example decode -- --four-octet-as --add-path-v4 HEX
//! ```

use bgp_core::wire::{DecodeContext, Message, Verdict};

fn main() {
    let mut ctx = DecodeContext::default();
    let mut hex = String::new();
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--four-octet-as" => ctx.four_octet_as = true,
            "--extended-message" => ctx.extended_message = true,
            "--add-path-v4" => ctx.add_path.ipv4_unicast = true,
            "--add-path-v6" => ctx.add_path.ipv6_unicast = true,
            other => hex.push_str(other),
        }
    }
    let bytes = match decode_hex(&hex) {
        Some(b) if !b.is_empty() => b,
        _ => {
            eprintln!(
                "usage: decode [--four-octet-as] [--extended-message] [--add-path-v4] [--add-path-v6] HEX"
            );
            std::process::exit(2);
        }
    };
    let result = Message::decode(&bytes, &ctx);
    match &result {
        Ok(decoded) => println!("{:#?}", decoded.message),
        Err(e) => println!("error: {e}"),
    }
    match Verdict::of(&result) {
        Verdict::SessionReset(n) => println!("verdict: session reset with {n}"),
        other => println!("verdict: {other:?}"),
    }
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    let digits: Vec<u8> = s
        .bytes()
        .filter(|b| !b.is_ascii_whitespace() && *b != b':')
        .collect();
    digits
        .chunks(2)
        .map(|pair| {
            std::str::from_utf8(pair)
                .ok()
                .and_then(|p| u8::from_str_radix(p, 16).ok())
        })
        .collect()
}
