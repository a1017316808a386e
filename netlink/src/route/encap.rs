//! Lightweight-tunnel state on routes (`RTA_ENCAP_TYPE` and `RTA_ENCAP`,
//! <linux/lwtunnel.h>): the BPF xmit program the FIB puts on tunnel routes
//! of the `bpf` tunnel backend (`ip route … encap bpf xmit … headroom 20`),
//! and what a dump says of any route's encapsulation.
//!
//! ```text
//! RTA_ENCAP_TYPE = LWTUNNEL_ENCAP_BPF (u16)
//! RTA_ENCAP
//!   LWT_BPF_XMIT
//!     LWT_BPF_PROG_FD   (u32, written only)
//!     LWT_BPF_PROG_NAME ("podroute-ipip-<id>+<headroom>", NUL-terminated)
//!   LWT_BPF_XMIT_HEADROOM (u32)
//! ```
//!
//! The kernel requires both the descriptor and a name, and dumps only the
//! name: neither the descriptor nor the headroom comes back
//! (`bpf_fill_encap_info`, net/core/lwt_bpf.c). So the name we give
//! carries the program's id and the headroom, and a dumped route says
//! which program it runs with how much room.

use std::hash::{Hash, Hasher};
use std::io::Write;

use crate::attr::{self, attributes, u32_of};
use crate::consts::{
    LWT_BPF_PROG_FD, LWT_BPF_PROG_NAME, LWT_BPF_XMIT, LWT_BPF_XMIT_HEADROOM, LWTUNNEL_ENCAP_BPF,
    RTA_ENCAP, RTA_ENCAP_TYPE,
};

/// What the names of our programs on routes start with; the program's id
/// and `+` and the headroom follow in decimal.
pub const PROGRAM_NAME_PREFIX: &str = "podroute-ipip-";

/// A loaded BPF lightweight-tunnel xmit program, as routes refer to it.
///
/// Its identity is the kernel's program id: two values with the same id
/// are equal whatever their descriptors. `fd` is how this process hands
/// the program to the kernel when it writes a route; a route read back from
/// a dump has none (`-1`).
#[derive(Clone, Copy, Debug)]
pub struct BpfProgram {
    /// The kernel's program id.
    pub id: u32,
    /// An open descriptor of the program in this process, or `-1`.
    pub fd: i32,
}

impl PartialEq for BpfProgram {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
    }
}

impl Eq for BpfProgram {}

impl Hash for BpfProgram {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.id.hash(state);
    }
}

impl BpfProgram {
    /// The program with `id`, known by name only (read from a dump).
    pub fn by_id(id: u32) -> Self {
        Self { id, fd: -1 }
    }

    /// The program id and headroom in a route's program name, when the
    /// name is one of ours.
    pub fn parse_name(name: &str) -> Option<(u32, u16)> {
        let (id, headroom) = name.strip_prefix(PROGRAM_NAME_PREFIX)?.split_once('+')?;
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if !digits(id) || !digits(headroom) {
            return None;
        }
        Some((id.parse().ok()?, headroom.parse().ok()?))
    }
}

/// A route's encapsulation, as read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Encap {
    /// `encap bpf xmit NAME headroom H` and no other BPF hook.
    BpfXmit {
        /// `LWT_BPF_PROG_NAME` of the xmit program.
        name: String,
        /// `LWT_BPF_XMIT_HEADROOM`, 0 when absent.
        headroom: u32,
    },
    /// Any other encapsulation (MPLS, seg6, BPF `in`/`out` hooks, …), by
    /// its `RTA_ENCAP_TYPE`.
    Other(u16),
}

impl Encap {
    /// Reads `RTA_ENCAP` of type `kind`.
    pub(crate) fn parse(kind: u16, value: &[u8]) -> Self {
        if kind != LWTUNNEL_ENCAP_BPF {
            return Encap::Other(kind);
        }
        let mut name = None;
        let mut headroom = 0;
        let mut other_hooks = false;
        for (k, v) in attributes(value) {
            match k {
                LWT_BPF_XMIT => {
                    name = attributes(v)
                        .find(|(k, _)| *k == LWT_BPF_PROG_NAME)
                        .map(|(_, v)| {
                            let text = v.split(|b| *b == 0).next().unwrap_or_default();
                            String::from_utf8_lossy(text).into_owned()
                        });
                }
                LWT_BPF_XMIT_HEADROOM => headroom = u32_of(v).unwrap_or(0),
                _ => other_hooks = true,
            }
        }
        match name {
            Some(name) if !other_hooks => Encap::BpfXmit { name, headroom },
            _ => Encap::Other(kind),
        }
    }

    /// Our program and the headroom its route gives it, when this is one
    /// of our xmit programs (by its name: dumps carry no headroom).
    pub fn our_program(&self) -> Option<(BpfProgram, u16)> {
        match self {
            Encap::BpfXmit { name, .. } => {
                BpfProgram::parse_name(name).map(|(id, headroom)| (BpfProgram::by_id(id), headroom))
            }
            Encap::Other(_) => None,
        }
    }
}

/// Appends `RTA_ENCAP_TYPE` and `RTA_ENCAP` for `program` as the route's
/// xmit program with `headroom` bytes to push.
pub(crate) fn emit_bpf_xmit(buf: &mut Vec<u8>, program: &BpfProgram, headroom: u16) {
    attr::emit(buf, RTA_ENCAP_TYPE, &LWTUNNEL_ENCAP_BPF.to_ne_bytes());
    // "podroute-ipip-", ten digits, "+", five digits, NUL-terminated.
    let mut name = [0u8; 40];
    let used = {
        let mut cursor = &mut name[..];
        let room = cursor.len();
        // Cannot fail: 30 bytes at most of the 40.
        let _ = write!(cursor, "{PROGRAM_NAME_PREFIX}{}+{headroom}", program.id);
        room.saturating_sub(cursor.len())
    };
    let name = name.get(..used.saturating_add(1)).unwrap_or(&name);
    attr::emit_nested(buf, RTA_ENCAP, |buf| {
        attr::emit_nested(buf, LWT_BPF_XMIT, |buf| {
            attr::emit(buf, LWT_BPF_PROG_FD, &program.fd.to_ne_bytes());
            attr::emit(buf, LWT_BPF_PROG_NAME, name);
        });
        attr::emit_u32(buf, LWT_BPF_XMIT_HEADROOM, u32::from(headroom));
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_our_prefix_and_digits_name_a_program_of_ours() {
        assert_eq!(
            BpfProgram::parse_name("podroute-ipip-17+20"),
            Some((17, 20))
        );
        for other in [
            "podroute-ipip-17",
            "podroute-ipip-+20",
            "podroute-ipip-1x+20",
            "podroute-ipip-1+2x",
            "tunnel.o:[lwt_xmit]",
            "podroute-ipip-99999999999+20",
            "podroute-ipip-1+99999",
        ] {
            assert_eq!(BpfProgram::parse_name(other), None, "{other}");
        }
    }

    #[test]
    fn programs_are_equal_by_id_whatever_their_descriptors() {
        assert_eq!(BpfProgram { id: 4, fd: 9 }, BpfProgram::by_id(4));
        assert_ne!(BpfProgram { id: 4, fd: 9 }, BpfProgram { id: 5, fd: 9 });
    }

    #[test]
    fn an_encap_with_in_or_out_hooks_is_not_an_xmit_program() {
        let mut value = Vec::new();
        attr::emit_nested(&mut value, LWT_BPF_XMIT, |b| {
            attr::emit(b, LWT_BPF_PROG_NAME, b"podroute-ipip-3+20\0");
        });
        assert_eq!(
            Encap::parse(LWTUNNEL_ENCAP_BPF, &value).our_program(),
            Some((BpfProgram::by_id(3), 20))
        );
        // LWT_BPF_IN = 1.
        attr::emit_nested(&mut value, 1, |b| {
            attr::emit(b, LWT_BPF_PROG_NAME, b"x\0");
        });
        assert_eq!(
            Encap::parse(LWTUNNEL_ENCAP_BPF, &value),
            Encap::Other(LWTUNNEL_ENCAP_BPF)
        );
        // MPLS = 1.
        assert_eq!(Encap::parse(1, &[]), Encap::Other(1));
    }
}
