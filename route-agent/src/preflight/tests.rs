use super::*;

/// A made-up host: `files` as (absolute path, content) under a fresh root.
fn host(files: &[(&str, &str)]) -> (Host, PathBuf) {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let root = std::env::temp_dir().join(format!(
        "preflight-{}-{}",
        std::process::id(),
        N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&root);
    for (path, content) in files {
        let p = root.join(path.trim_start_matches('/'));
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
    }
    (Host::at(&root), root)
}

/// A node as a stock Debian kernel with everything right presents it.
fn good() -> Vec<(&'static str, &'static str)> {
    vec![
        ("/proc/sys/net/ipv4/ip_forward", "1\n"),
        ("/proc/sys/net/ipv4/conf/all/rp_filter", "2\n"),
        ("/proc/sys/net/ipv4/conf/eth0/rp_filter", "0\n"),
        ("/proc/sys/net/ipv4/conf/tunl0/rp_filter", "0\n"),
        ("/proc/sys/kernel/osrelease", "6.12.48-amd64\n"),
        ("/sys/module/ipip/refcnt", "1\n"),
        ("/dev/net/tun", ""),
        ("/proc/sys/net/ipv4/tcp_congestion_control", "bbr\n"),
        (
            "/proc/sys/net/ipv4/tcp_available_congestion_control",
            "reno cubic bbr\n",
        ),
        ("/proc/sys/net/netfilter/nf_conntrack_max", "262144\n"),
    ]
}

fn node() -> Node {
    Node {
        underlay: Some(("eth0".into(), 1500)),
        backend: TunnelBackend::Auto,
        tunnel_device: "tunl0".into(),
        tunnel_mtu: 0,
        pod_addresses: 64,
        uses_ipip: true,
    }
}

fn finding<'a>(all: &'a [Finding], check: &str) -> &'a Finding {
    all.iter().find(|f| f.check == check).unwrap()
}

fn with(
    mut files: Vec<(&'static str, &'static str)>,
    path: &'static str,
    v: &'static str,
) -> Vec<(&'static str, &'static str)> {
    files.retain(|(p, _)| *p != path);
    files.push((path, v));
    files
}

fn without(
    mut files: Vec<(&'static str, &'static str)>,
    prefix: &str,
) -> Vec<(&'static str, &'static str)> {
    files.retain(|(p, _)| !p.starts_with(prefix));
    files
}

#[test]
fn a_well_set_node_passes_every_check() {
    let (h, root) = host(&good());
    let all = checks(&h, &node());
    std::fs::remove_dir_all(root).unwrap();
    assert_eq!(all.len(), 6);
    for f in &all {
        assert_eq!(f.level, Level::Ok, "{f}");
    }
    assert_eq!(
        finding(&all, "mtu").found,
        "eth0 MTU 1500, tunnel routes MTU 1480"
    );
}

#[test]
fn forwarding_off_is_reported_and_turned_on() {
    let (h, root) = host(&with(good(), "/proc/sys/net/ipv4/ip_forward", "0\n"));
    let all = checks(&h, &node());
    let f = finding(&all, "ip-forward");
    assert_eq!(f.level, Level::Warning);
    assert!(f.why.contains("turns it on at start"), "{f}");
    assert!(enable_forwarding(&h).unwrap());
    assert!(!enable_forwarding(&h).unwrap(), "already on");
    let after = std::fs::read_to_string(root.join("proc/sys/net/ipv4/ip_forward")).unwrap();
    std::fs::remove_dir_all(root).unwrap();
    assert_eq!(after.trim(), "1");
}

#[test]
fn strict_rp_filter_anywhere_on_the_path_is_a_warning_with_the_fix() {
    // `all` strict makes every device strict (the kernel takes the larger).
    let (h, root) = host(&with(
        good(),
        "/proc/sys/net/ipv4/conf/all/rp_filter",
        "1\n",
    ));
    let f = finding(&checks(&h, &node()), "rp-filter").clone();
    std::fs::remove_dir_all(root).unwrap();
    assert_eq!(f.level, Level::Warning);
    assert_eq!(f.found, "rp_filter (effective): eth0 1, tunl0 1");
    assert!(f.fix.unwrap().contains("rp_filter=2"));
}

#[test]
fn the_tunnel_backend_follows_what_the_kernel_has() {
    // No ipip module loaded, none for this release: auto falls back to
    // userspace (a warning); kernel cannot work (an error).
    let files = without(good(), "/sys/module/ipip");
    let (h, root) = host(&files);
    let f = finding(&checks(&h, &node()), "tunnel-backend").clone();
    assert_eq!(f.level, Level::Warning, "{f}");
    assert!(f.found.contains("ipip module absent; TUN present"), "{f}");
    let mut kernel = node();
    kernel.backend = TunnelBackend::Kernel;
    let f = finding(&checks(&h, &kernel), "tunnel-backend").clone();
    std::fs::remove_dir_all(root).unwrap();
    assert_eq!(f.level, Level::Error, "{f}");

    // A module file for this release: loadable, the kernel backend runs.
    let mut files = without(good(), "/sys/module/ipip");
    files.push((
        "/lib/modules/6.12.48-amd64/modules.dep",
        "kernel/net/ipv4/ipip.ko.xz: kernel/net/ipv4/ip_tunnel.ko.xz\n",
    ));
    let (h, root) = host(&files);
    let f = finding(&checks(&h, &kernel), "tunnel-backend").clone();
    std::fs::remove_dir_all(root).unwrap();
    assert_eq!(f.level, Level::Ok, "{f}");
    assert!(f.found.contains("ipip module loadable"), "{f}");

    // Neither ipip nor TUN: nothing can run.
    let files = without(without(good(), "/sys/module/ipip"), "/dev/net/tun");
    let (h, root) = host(&files);
    let f = finding(&checks(&h, &node()), "tunnel-backend").clone();
    std::fs::remove_dir_all(root).unwrap();
    assert_eq!(f.level, Level::Error, "{f}");
}

#[test]
fn a_tunnel_mtu_that_does_not_fit_the_underlay_is_an_error() {
    let (h, root) = host(&good());
    let mut n = node();
    n.tunnel_mtu = 1500;
    let f = finding(&checks(&h, &n), "mtu").clone();
    assert_eq!(f.level, Level::Error, "{f}");
    assert_eq!(
        f.fix.as_deref(),
        Some("tunnel.mtu: 1480 (or 0 for the underlay's minus 20)")
    );
    n.tunnel_mtu = 0;
    n.underlay = Some(("eth0".into(), 1280));
    let f = finding(&checks(&h, &n), "mtu").clone();
    std::fs::remove_dir_all(root).unwrap();
    assert_eq!(f.level, Level::Warning, "{f}");
}

#[test]
fn cubic_gets_the_bbr_advice_and_a_small_conntrack_table_a_size() {
    let files = with(
        good(),
        "/proc/sys/net/ipv4/tcp_congestion_control",
        "cubic\n",
    );
    let files = with(files, "/proc/sys/net/netfilter/nf_conntrack_max", "65536\n");
    let (h, root) = host(&files);
    let mut n = node();
    n.pod_addresses = 256;
    let all = checks(&h, &n);
    std::fs::remove_dir_all(root).unwrap();
    let cc = finding(&all, "tcp-congestion-control");
    assert_eq!(cc.level, Level::Warning);
    assert!(
        cc.fix
            .as_ref()
            .unwrap()
            .contains("tcp_congestion_control=bbr"),
        "{cc}"
    );
    let ct = finding(&all, "conntrack");
    assert_eq!(ct.level, Level::Warning);
    assert_eq!(
        ct.fix.as_deref(),
        Some("sysctl -w net.netfilter.nf_conntrack_max=262144")
    );
}

#[test]
fn every_line_says_what_why_and_fix() {
    let (h, root) = host(&with(
        good(),
        "/proc/sys/net/ipv4/tcp_congestion_control",
        "cubic\n",
    ));
    let text = render(&checks(&h, &node()));
    std::fs::remove_dir_all(root).unwrap();
    let line = text
        .lines()
        .find(|l| l.contains("tcp-congestion-control"))
        .unwrap();
    assert!(
        line.starts_with(
            "[WARNING] tcp-congestion-control: net.ipv4.tcp_congestion_control = cubic"
        ),
        "{line}"
    );
    assert!(
        line.contains(" — for bulk traffic") && line.contains(" Fix: modprobe tcp_bbr"),
        "{line}"
    );
    assert_eq!(text.lines().count(), 6);
}

#[test]
fn pod_addresses_count_the_ipv4_blocks() {
    let config = crate::config::Config::parse(
        std::path::Path::new("node.yaml"),
        "node: {address: 10.0.0.5/24}\npools: [{cidr: 10.244.0.0/16}]\nblocks: [10.244.1.0/26, 10.244.9.0/28]\n",
    )
    .unwrap();
    let n = Node::from_config(&config, None);
    assert_eq!(n.pod_addresses, 64 + 16);
    assert!(n.uses_ipip);
}
