//! The `tunnel` section: device names, MTUs, the backends and the bpf
//! backend's pin root.

use super::*;

#[test]
fn bad_tunnel_device_names_are_rejected() {
    for name in ["\"\"", "a-very-long-devname", "tun/0", "\"tun 0\""] {
        let got = problems(&with(&format!("tunnel: {{device: {name}}}\n")));
        assert!(
            matches!(got.as_slice(), [Problem::BadDeviceName(_)]),
            "{name}: {got:?}"
        );
    }
}

#[test]
fn mtu_below_68_is_rejected() {
    assert_eq!(
        problems(&with("tunnel: {mtu: 67}\n")),
        [Problem::MtuOutOfRange(67)]
    );
    assert_eq!(
        problems(&with("tunnel: {mtu: 65516}\n")),
        [Problem::MtuOutOfRange(65516)]
    );
    assert_eq!(ok(&with("tunnel: {mtu: 68}\n")).tunnel.mtu, 68);
}

#[test]
fn the_bpf_backend_is_named_bpf_and_its_pin_root_must_be_absolute() {
    let c = ok(&with(
        "tunnel: {backend: bpf, bpf-pin-root: /run/podroute/bpf}\n",
    ));
    assert_eq!(c.tunnel.backend, TunnelBackend::Bpf);
    assert_eq!(
        c.tunnel.bpf_pin_root,
        std::path::Path::new("/run/podroute/bpf")
    );
    assert_eq!(
        problems(&with("tunnel: {bpf-pin-root: pins}\n")),
        [Problem::RelativeBpfPinRoot("pins".into())]
    );
}

#[test]
fn tunnel_mtu_zero_means_underlay_minus_20() {
    let c = ok(BASE);
    assert_eq!(c.tunnel.effective_mtu(1500), 1480);
    assert_eq!(c.tunnel.effective_mtu(9001), 8981);
    assert_eq!(
        ok(&with("tunnel: {mtu: 1400}\n"))
            .tunnel
            .effective_mtu(1500),
        1400
    );
}
