#!/bin/sh
# Regenerates the device-tree fixtures in tests/data/dtb (see README.md).
#
# Needs qemu-system-aarch64 (10.0.2 from bookworm-backports made the checked-in
# blobs), dtc and fdtoverlay (package device-tree-compiler) and python3.
# QEMU puts fresh random rng-seed/kaslr-seed values in /chosen, so the blobs
# differ byte-wise from run to run; the tests do not depend on those values.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
dts="$here/dts"
out="$here/dtb"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$out"

numa="-m 144M
 -object memory-backend-ram,id=m0,size=128M
 -object memory-backend-memfd,id=m1,size=16M,share=on
 -numa node,nodeid=0,memdev=m0 -numa node,nodeid=1,memdev=m1"

# QEMU's dump is its whole 1 MiB working buffer (or the -dtb blob plus
# slack); keep only the blocks and set totalsize to match. Everything else,
# FDT_NOP tokens included, stays byte for byte as QEMU wrote it.
trim() {
	python3 - "$1" "$2" <<'EOF'
import struct, sys
blob = bytearray(open(sys.argv[1], "rb").read())
(magic, total, off_struct, off_strings, off_rsv, version, last, cpu,
 size_strings, size_struct) = struct.unpack(">10I", blob[:40])
assert magic == 0xD00DFEED
end = max(off_struct + size_struct, off_strings + size_strings)
struct.pack_into(">I", blob, 4, end)
open(sys.argv[2], "wb").write(blob[:end])
EOF
}

# dump NAME QEMU-ARGS...: dumps virt's tree for those arguments.
dump() {
	name=$1
	shift
	# shellcheck disable=SC2086 # word splitting of the option lists is wanted
	qemu-system-aarch64 -nographic -cpu cortex-a57 "$@" -machine "dumpdtb=$tmp/$name.raw"
	trim "$tmp/$name.raw" "$out/$name.dtb"
}

# decompile NAME: NAME.dts in $tmp, for the sources that /include/ it.
decompile() {
	dtc -q -I dtb -O dts -o "$tmp/$1.dts" "$out/$1.dtb"
}

# overlay BASE OVERLAY NAME: applies dts/OVERLAY.dts to BASE with fdtoverlay.
overlay() {
	dtc -q -@ -I dts -O dtb -o "$tmp/$2.dtbo" "$dts/$2.dts"
	fdtoverlay -i "$out/$1.dtb" -o "$out/$3.dtb" "$tmp/$2.dtbo"
	decompile "$3"
}

# edited NAME [DTC-FLAGS]: compiles dts/NAME.dts, which includes a base.
edited() {
	name=$1
	shift
	dtc -q "$@" -i "$tmp" -I dts -O dtb -o "$out/$name.dtb" "$dts/$name.dts"
}

# shellcheck disable=SC2086
{
	dump qemu-virt-gicv2 -machine virt -m 256M
	dump qemu-virt-gicv2-el2 -machine virt,virtualization=on -m 256M
	dump qemu-virt-gicv3 -machine virt,gic-version=3 -m 256M
	dump qemu-virt-gicv3-el2 -machine virt,gic-version=3,virtualization=on -m 256M
	dump qemu-virt-numa -machine virt $numa
}
decompile qemu-virt-gicv2
decompile qemu-virt-gicv3
overlay qemu-virt-numa pool-fixed qemu-virt-numa-pool
overlay qemu-virt-gicv3 pool-dynamic qemu-virt-pool-dynamic

# The tree as QEMU passes it when booted with -dtb: it rewrites /memory and
# /psci in place and leaves FDT_NOP tokens where the old properties were.
# shellcheck disable=SC2086
dump qemu-virt-numa-pool-nop -machine virt $numa -dtb "$out/qemu-virt-numa-pool.dtb"
python3 - "$out/qemu-virt-numa-pool-nop.dtb" <<'EOF'
import struct, sys
blob = open(sys.argv[1], "rb").read()
off, size = struct.unpack(">I", blob[8:12])[0], struct.unpack(">I", blob[36:40])[0]
block = blob[off:off + size]
nops, at = 0, 0
while True:  # walk the tokens: a NOP word inside a value does not count
    token = struct.unpack(">I", block[at:at + 4])[0]
    if token == 1:
        at = (block.index(b"\0", at + 4) + 4) & ~3
    elif token == 3:
        at = (at + 12 + struct.unpack(">I", block[at + 4:at + 8])[0] + 3) & ~3
    elif token in (2, 4):
        nops += token == 4
        at += 4
    elif token == 9:
        break
    else:
        sys.exit(f"bad token {token} at {at}")
if nops == 0:
    sys.exit("QEMU left no FDT_NOP tokens; the -dtb fixture would test nothing")
print(f"qemu-virt-numa-pool-nop.dtb: {nops} FDT_NOP tokens")
EOF

edited uart-alias
edited alias-loop
edited reserved-no-map
edited memory-above-4g
edited pci-pools
for source in "$dts"/bad-*.dts; do
	name=$(basename "$source" .dts)
	case $name in
	# dtc refuses to write a tree with a duplicate phandle unless forced.
	bad-duplicate-phandle) edited "$name" -f ;;
	*) edited "$name" ;;
	esac
done
ls -l "$out"
