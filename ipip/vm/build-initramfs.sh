#!/usr/bin/env bash
# Builds the IPIP interop VM: a stock Debian cloud kernel (which has the
# ipip module) and an initramfs holding busybox, the tunnel, nf_tables and
# tc modules (modules.load: their load order),
# iproute2's ip, ethtool, the ipip-tunnel binary (each with the libraries
# ldd lists: it links libbpf statically but libelf and libz dynamically)
# and ./init. Usage:
#
#   ipip/vm/build-initramfs.sh OUT_DIR PATH/TO/ipip-tunnel [PATH/TO/kernel-test]
#
# The optional third argument is the build of ipip/tests/kernel.rs: /init
# runs it on the stock kernel (as /bin/kernel-tests).
#
# Leaves OUT_DIR/vmlinuz and OUT_DIR/initramfs.cpio.gz. The kernel package
# is downloaded once (apt-get download of exactly one version) and kept in
# OUT_DIR. Needs root, apt, cpio, busybox-static, iproute2, ethtool. Boot with
# ipip/vm/run.sh or:
#
#   qemu-system-x86_64 -accel tcg -cpu max -m 512 -nographic -no-reboot \
#     -kernel OUT_DIR/vmlinuz -initrd OUT_DIR/initramfs.cpio.gz \
#     -append "console=ttyS0 quiet panic=-1"
set -euo pipefail
out=$1
tunnel=$2
kernel_tests=${3:-}
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$out"
out=$(cd "$out" && pwd)

for tool in cpio busybox gzip dpkg-deb apt-get ethtool; do
    command -v "$tool" >/dev/null || { echo "build-initramfs: $tool missing (scripts/install-deps.sh installs it)" >&2; exit 1; }
done
[ -x /bin/busybox ] && file_busybox=/bin/busybox || file_busybox=$(command -v busybox)

# The kernel: one package, the version linux-image-cloud-amd64 depends on.
if [ ! -f "$out/vmlinuz" ] || [ ! -d "$out/kernel/lib/modules" ]; then
    pkg=$(apt-cache depends linux-image-cloud-amd64 2>/dev/null | awk '/Depends: linux-image/{print $2; exit}')
    if [ -z "$pkg" ]; then
        apt-get update -qq
        pkg=$(apt-cache depends linux-image-cloud-amd64 | awk '/Depends: linux-image/{print $2; exit}')
    fi
    [ -n "$pkg" ] || { echo "build-initramfs: cannot resolve linux-image-cloud-amd64" >&2; exit 1; }
    rm -rf "$out/deb" "$out/kernel"
    mkdir -p "$out/deb"
    (cd "$out/deb" && apt-get download "$pkg" >/dev/null 2>&1 || apt-get download "$pkg")
    dpkg-deb -x "$out"/deb/*.deb "$out/kernel"
    cp "$out"/kernel/boot/vmlinuz-* "$out/vmlinuz"
    rm -rf "$out/deb"
fi
kver=$(ls "$out/kernel/lib/modules")
# What the bpf backend needs built in (the modules come below); said here
# rather than as a failed check inside the VM.
for opt in CONFIG_BPF_SYSCALL CONFIG_LWTUNNEL_BPF CONFIG_NET_CLS_ACT; do
    grep -q "^$opt=y" "$out"/kernel/boot/config-* \
        || { echo "build-initramfs: the kernel package lacks $opt=y" >&2; exit 1; }
done

# Reuse the initramfs while it is newer than everything that goes in it.
img=$out/initramfs.cpio.gz
if [ -f "$img" ] && [ "$img" -nt "$tunnel" ] && [ "$img" -nt "$here/init" ] \
    && [ "$img" -nt "$0" ] && [ "$img" -nt "$out/vmlinuz" ] \
    && { [ -z "$kernel_tests" ] || [ "$img" -nt "$kernel_tests" ]; } \
    && [ "$(cat "$out/initramfs.inputs" 2>/dev/null)" = "$tunnel $kernel_tests" ]; then
    echo "build-initramfs: reusing $img"
    exit 0
fi

root=$out/root
rm -rf "$root"
mkdir -p "$root"/{bin,usr/sbin,lib64,proc,sys,dev,run,tmp}
cp "$file_busybox" "$root/bin/busybox"
# The modules /init loads, each after what it needs, in load order: the
# tunnel, veth and TUN, nf_tables with nft_objref for the IPIP filter
# (its other expressions and set types are built into nf_tables.ko), and
# for the bpf backend's tc ingress program the clsact qdisc (sch_ingress)
# and the bpf classifier (cls_bpf): modules in Debian's kernel, while
# lwt bpf routes, bpffs, BTF and the JIT are built in. The
# package has no modules.dep (depmod makes it at install), so each
# module's dependencies come from its own modinfo section ("depends=").
moddir=$out/kernel/lib/modules/$kver
order=()
add_module() {
    local name=$1 seen dep path
    for seen in "${order[@]}"; do [ "$seen" = "$name" ] && return; done
    path=$(find "$moddir/kernel" \( -name "$name.ko" -o -name "${name//_/-}.ko" \) -print -quit)
    if [ -z "$path" ]; then
        grep -q "/$name.ko\$" "$moddir/modules.builtin" && return
        echo "build-initramfs: module $name is neither in the package nor built in" >&2
        exit 1
    fi
    for dep in $(tr '\0' '\n' <"$path" | sed -n 's/^depends=//p' | tr ',' ' '); do
        add_module "$dep"
    done
    order+=("$name")
    paths+=("${path#"$moddir"/}")
}
paths=()
for m in ip_tunnel tunnel4 ipip veth tun nf_tables nft_objref sch_ingress cls_bpf; do
    add_module "$m"
done
: >"$root/modules.load"
for m in "${paths[@]}"; do
    mkdir -p "$root/lib/modules/$kver/$(dirname "$m")"
    cp "$moddir/$m" "$root/lib/modules/$kver/$m"
    echo "$m" >>"$root/modules.load"
done
cp /usr/sbin/ip /usr/sbin/ethtool "$root/usr/sbin/"
# The test binaries, without debug info (the initramfs stays small).
copy_binary() {
    if command -v objcopy >/dev/null; then
        objcopy --strip-debug "$1" "$2"
    else
        cp "$1" "$2"
    fi
}
copy_binary "$tunnel" "$root/bin/ipip-tunnel"
[ -z "$kernel_tests" ] || copy_binary "$kernel_tests" "$root/bin/kernel-tests"
for bin in /usr/sbin/ip /usr/sbin/ethtool "$tunnel" ${kernel_tests:+"$kernel_tests"}; do
    for lib in $(ldd "$bin" | grep -o '/[^ ]*'); do
        mkdir -p "$root$(dirname "$lib")"
        cp -L "$lib" "$root$lib"
    done
done
cp "$here/init" "$root/init"
chmod +x "$root/init"
(cd "$root" && find . | cpio -o -H newc --quiet | gzip -1 >"$out/initramfs.cpio.gz.tmp")
mv "$out/initramfs.cpio.gz.tmp" "$out/initramfs.cpio.gz"
echo "$tunnel $kernel_tests" >"$out/initramfs.inputs"
rm -rf "$root"
echo "build-initramfs: $out/vmlinuz $out/initramfs.cpio.gz (kernel $kver)"
