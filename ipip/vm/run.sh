#!/usr/bin/env bash
# Builds (ipip/vm/build-initramfs.sh) and boots the IPIP interop VM under
# TCG qemu; the checks print VMCHECK lines on the serial console (stdout).
# Usage: ipip/vm/run.sh OUT_DIR PATH/TO/ipip-tunnel
set -euo pipefail
"$(dirname "$0")/build-initramfs.sh" "$1" "$2" >&2
exec timeout 150 qemu-system-x86_64 -accel tcg -cpu max -m 512 -nographic -no-reboot \
    -kernel "$1/vmlinuz" -initrd "$1/initramfs.cpio.gz" \
    -append "console=ttyS0 quiet panic=-1"
