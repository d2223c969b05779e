#!/bin/sh
# Run one test guest under QEMU (TCG) with the standard machine and decode its
# exit status.
#
#   guests/run-qemu.sh NAME [extra qemu arguments...]
#
# NAME is a guest in guests/build (hello, boot, smp, hello-O0, ...). Defaults:
# -cpu max -m 256 -smp 1; passing -cpu, -m or -smp overrides them. Examples:
#   guests/run-qemu.sh smp -smp 4
#   guests/run-qemu.sh boot -append "argc=3 mem=256" -initrd guests/tests/boot-module.txt
# The script exits with the guest's code: 0 passed, 1 failures, 38 all skipped,
# 63 abort; 124 timeout; other values when QEMU itself failed.
set -u

here=$(cd "$(dirname "$0")" && pwd)
if [ $# -lt 1 ] || [ "$1" = "-h" ] || [ "$1" = "--help" ]; then
	sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'
	exit 2
fi
name=$1
shift
kernel=$here/build/$name.elf
if [ ! -f "$kernel" ]; then
	echo "run-qemu.sh: $kernel does not exist (run 'make -C guests' first)" >&2
	exit 2
fi

cpu="-cpu max"
mem="-m 256"
smp="-smp 1"
for arg in "$@"; do
	case $arg in
	-cpu) cpu= ;;
	-m) mem= ;;
	-smp) smp= ;;
	esac
done

timeout "${QEMU_TIMEOUT:-60}" qemu-system-x86_64 -accel tcg -machine pc $cpu $mem $smp \
	-display none -serial stdio -no-reboot \
	-device isa-debug-exit,iobase=0xf4,iosize=4 \
	-kernel "$kernel" "$@"
status=$?

# isa-debug-exit makes QEMU exit with (code << 1) | 1.
if [ $status -eq 124 ]; then
	echo "run-qemu.sh: $name timed out" >&2
	exit 124
elif [ $((status & 1)) -eq 1 ]; then
	code=$((status >> 1))
	case $code in
	0) meaning="all tests passed" ;;
	1) meaning="some tests failed" ;;
	38) meaning="all tests skipped" ;;
	63) meaning="aborted" ;;
	*) meaning="unknown code" ;;
	esac
	echo "run-qemu.sh: $name: QEMU status $status = guest exit code $code ($meaning)" >&2
	exit $code
else
	echo "run-qemu.sh: $name: QEMU status $status without a guest exit code (no write to port 0xf4)" >&2
	exit 125
fi
