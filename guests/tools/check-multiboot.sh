#!/bin/sh
# Fails the build unless FILE has a valid Multiboot v1 header (magic 0x1BADB002,
# magic + flags + checksum = 0 mod 2^32) 4-byte aligned within its first 8192 bytes.
file=$1
od -A n -t x4 -v -N 8192 "$file" | awk -v f="$file" '
	function hex(s,   v, i, c) {
		v = 0
		for (i = 1; i <= length(s); i++) {
			c = index("0123456789abcdef", substr(s, i, 1)) - 1
			v = v * 16 + c
		}
		return v
	}
	{ for (i = 1; i <= NF; i++) w[n++] = $i }
	END {
		for (i = 0; i + 2 < n; i++)
			if (w[i] == "1badb002" && (hex(w[i]) + hex(w[i+1]) + hex(w[i+2])) % 4294967296 == 0)
				exit 0
		print f ": no valid Multiboot header in the first 8 KiB" > "/dev/stderr"
		exit 1
	}'
