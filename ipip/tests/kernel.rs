//! The kernel backend on the running kernel. Each test finds out whether
//! the kernel can make IPIP devices ([`kernel_has_ipip`]) and asserts what
//! is right for it: with ipip, tunl0 is made (or adopted) as an ipip
//! device; without (as on the project's build machines, see the
//! environment notes), a typed error naming the userspace fallback. Each
//! test runs in a fresh network namespace of its own (root required); the
//! namespace ends with the test's thread.
//!
//! `tests/vm.rs` runs this file's tests on a stock kernel, which has ipip,
//! and tests the backend there against the userspace one.

mod common;

use std::net::Ipv4Addr;
use std::process::Command;

use ipip::kernel::{Handle, InfoKind, KernelError, TunnelConfig, ensure_tunnel, link_kind};

/// Runs `f` on a thread that is alone in a fresh network namespace.
fn in_fresh_netns<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    common::require_root("the kernel backend tests create network namespaces and devices and");
    std::thread::spawn(move || {
        ipip::sys::unshare_net().expect("unshare(CLONE_NEWNET)");
        f()
    })
    .join()
    .expect("test thread panicked")
}

const TUNNEL_ADDR: Ipv4Addr = Ipv4Addr::new(10, 244, 1, 1);

/// Whether the running kernel can create IPIP devices (the ipip module
/// is built in, loaded, or loads on demand): asked by creating one in a
/// throwaway namespace.
fn kernel_has_ipip() -> bool {
    in_fresh_netns(|| {
        let mut nl = Handle::open().expect("netlink");
        match nl.link_add_ipip("probe0") {
            Ok(()) => true,
            Err(KernelError::NoIpipSupport { .. }) => false,
            Err(e) => panic!("cannot tell whether the kernel has ipip: {e}"),
        }
    })
}

#[test]
fn ensure_tunnel_makes_an_ipip_tunl0_or_reports_no_ipip_support_naming_the_fallback() {
    let has_ipip = kernel_has_ipip();
    let result = in_fresh_netns(|| {
        let result = ensure_tunnel(&TunnelConfig::new(TUNNEL_ADDR));
        let kind = Handle::open()
            .expect("netlink")
            .link_get("tunl0")
            .expect("ip link show tunl0")
            .and_then(|l| link_kind(&l));
        (result, kind)
    });
    match (has_ipip, result) {
        (true, (Ok(state), kind)) => {
            assert_eq!(kind, Some(InfoKind::IpIp), "tunl0 is an ipip device");
            // No interface but lo here: Calico's fallback underlay MTU.
            assert_eq!(state.mtu, ipip::kernel::FALLBACK_UNDERLAY_MTU - 20);
        }
        (false, (Err(e @ KernelError::NoIpipSupport { .. }), kind)) => {
            let text = e.to_string();
            assert!(text.contains("no IPIP support"), "{text}");
            assert!(text.contains("ipip-tunnel"), "names the fallback: {text}");
            assert!(text.contains("tunl0"), "names the device: {text}");
            assert_eq!(kind, None, "nothing was left behind");
        }
        (has_ipip, other) => panic!(
            "the kernel {} ipip, and ensure_tunnel gave {other:?}",
            if has_ipip { "has" } else { "lacks" }
        ),
    }
}

#[test]
fn existing_tun_of_the_tunnel_name_is_not_mistaken_for_ipip() {
    // Not named tunl0: where the kernel has ipip, every new namespace may
    // already hold the fallback tunl0, so the name would be taken.
    let result = in_fresh_netns(|| {
        let _tun = ipip::sys::open_tun("podtun0").expect("create TUN podtun0");
        ensure_tunnel(&TunnelConfig {
            device: "podtun0".into(),
            ..TunnelConfig::new(TUNNEL_ADDR)
        })
    });
    match result {
        Err(e @ KernelError::NotIpip { .. }) => {
            let text = e.to_string();
            let KernelError::NotIpip { device, kind } = e else {
                unreachable!()
            };
            assert_eq!(device, "podtun0");
            assert_eq!(kind, Some(InfoKind::Tun));
            assert!(text.contains("is a tun device"), "{text}");
        }
        other => panic!("expected NotIpip for a TUN device, got {other:?}"),
    }
}

#[test]
fn kernel_setup_command_sets_up_tunl0_or_exits_3_with_the_fallback_on_stderr() {
    common::require_root("the kernel backend tests create network namespaces and devices and");
    let has_ipip = kernel_has_ipip();
    // The VM (tests/vm.rs) runs this binary where cargo's path to
    // ipip-tunnel does not exist, and names its copy.
    let binary = std::env::var_os("IPIP_TUNNEL_BIN")
        .unwrap_or_else(|| env!("CARGO_BIN_EXE_ipip-tunnel").into());
    let out = Command::new("unshare")
        .arg("--net")
        .arg(binary)
        .args(["kernel-setup", "--address", "10.244.1.1"])
        .output()
        .expect("run unshare (util-linux)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if has_ipip {
        assert_eq!(out.status.code(), Some(0), "stderr: {stderr}");
        assert!(
            stdout.starts_with("kernel device=tunl0 ") && stdout.contains("address=10.244.1.1/32"),
            "{stdout}"
        );
    } else {
        assert_eq!(out.status.code(), Some(3), "stderr: {stderr}");
        assert!(
            stderr.contains("ipip-tunnel --device tunl0 --local NODE_IP"),
            "{stderr}"
        );
    }
}
