#!/usr/bin/env python3
"""Prints the crypto bench table (GB/s of payload, from criterion's median estimates) after
`cargo bench -p bench --bench crypto`: one row per transform, size and burst, one column per engine."""
import json
import pathlib
import sys

root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "target/criterion")
rows = {}
for est in root.glob("**/new/estimates.json"):
    bench = json.loads((est.parent / "benchmark.json").read_text())
    group, fn_id = bench["group_id"], bench.get("function_id") or ""
    value = bench.get("value_str") or ""
    parts = group.split("/")
    if len(parts) != 3 or parts[0] not in ("crypto", "esp-seal"):
        continue
    kind, xf, engine = parts
    burst = int(fn_id.replace("burst", "")) if fn_id.startswith("burst") else 1
    size = int(value)
    median_ns = json.loads(est.read_text())["median"]["point_estimate"]
    gbps = size * burst / median_ns  # bytes per ns == GB/s
    rows.setdefault((kind, xf, size, burst), {})[engine] = gbps

engines = ["rust", "ipsec-mb"]
print("| stage | transform | bytes | burst | " + " | ".join(f"{e} GB/s" for e in engines) + " | ipsec-mb / rust |")
print("|---|---|---|---|" + "---|" * (len(engines) + 1))
for (kind, xf, size, burst) in sorted(rows, key=lambda k: (k[0], k[1], k[2], k[3])):
    r = rows[(kind, xf, size, burst)]
    vals = [f"{r[e]:.3f}" if e in r else "-" for e in engines]
    ratio = f"{r['ipsec-mb'] / r['rust']:.1f}x" if "rust" in r and "ipsec-mb" in r else "-"
    print(f"| {kind} | {xf} | {size} | {burst} | " + " | ".join(vals) + f" | {ratio} |")
