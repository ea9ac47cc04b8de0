#!/usr/bin/env python3
"""Kernel time by kernel name in a cubecl profiling log (what profile.sh and
autotune_steady.sh bring back). The log prints one `| duration | kernel |` line per launch
and a summary table at each sync; with `RUST_LOG=vqvae::train=debug` each training phase ends
in a sync, so the blocks are: forward, loss read, backward, optimizer and codebook per step.

    python3 tools/gpu/profile_summary.py LOG            # every block's total and launches
    python3 tools/gpu/profile_summary.py LOG 14,16 [N]  # the N largest kernels of blocks 14, 16

Matrix products are shortened to their argument kind and their stage and loading families.
Standard library only (Python 3.8+). Session 20's tables in BENCHMARKS.md came from it.
"""
import collections
import re
import sys

UNITS = {"ns": 1e-6, "µs": 1e-3, "ms": 1.0, "s": 1e3}
DURATION = re.compile(r"([\d.]+)(ns|µs|ms|s)$")


def milliseconds(text):
    value, unit = DURATION.match(text).groups()
    return float(value) * UNITS[unit]


def blocks(path):
    """[(ms, kernel name)] of each block between two summary tables."""
    found, current, in_summary = [], [], False
    with open(path, encoding="utf-8") as log:
        for line in log:
            if line.startswith("| Name"):
                in_summary = True
            elif in_summary:
                if line.startswith("| Total"):
                    found.append(current)
                    current, in_summary = [], False
            else:
                cells = [cell.strip() for cell in line.split("|")]
                if len(cells) >= 3 and DURATION.match(cells[1]):
                    name = " | ".join(c for c in cells[2:] if c and not c.endswith("Runtime"))
                    current.append((milliseconds(cells[1]), short(name)))
    return found


def short(name):
    if not name.startswith("MatmulEntry"):
        return name
    parts = name.split(" | ")
    kept = [p for p in parts if "Family" in p or "Loading" in p]
    return f"Matmul[{parts[1]}] " + " ".join(dict.fromkeys(kept))


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    found = blocks(sys.argv[1])
    if len(sys.argv) == 2:
        for number, block in enumerate(found, 1):
            print(f"{number:3d}: {sum(ms for ms, _ in block):10.1f} ms {len(block):6d} launches")
        return
    top = int(sys.argv[3]) if len(sys.argv) > 3 else 25
    for number in map(int, sys.argv[2].split(",")):
        if not 1 <= number <= len(found):
            sys.exit(f"{sys.argv[1]}: no block {number} (the log has {len(found)})")
        block = found[number - 1]
        total = sum(ms for ms, _ in block)
        by_name = collections.defaultdict(lambda: [0, 0.0, 0.0])
        for ms, name in block:
            entry = by_name[name]
            entry[0] += 1
            entry[1] += ms
            entry[2] = max(entry[2], ms)
        print(f"== block {number}: {total:.1f} ms, {len(block)} launches")
        ranked = sorted(by_name.items(), key=lambda item: -item[1][1])[:top]
        for name, (count, ms, largest) in ranked:
            print(f"{ms:9.1f} ms {100 * ms / total:5.1f} % {count:5d}× max {largest:7.2f}  {name}")


if __name__ == "__main__":
    main()
