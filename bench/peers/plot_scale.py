#!/usr/bin/env python3
"""Draws the scale curve of `cargo bench --bench compare` as one PNG.

    python plot_scale.py SCALE.json OUT.png

SCALE.json: {"series": {mode: [{"n", "cells_per_s", "p50_ms", "p99_ms", "mib_per_connection",
             "threads_per_connection"}, ...]}, "caption": str}; mode is "contexts" or "sandboxes".
"""
import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

PANELS = [
    ("cells/s", ["cells_per_s"]),
    ("latency (ms, log)", ["p50_ms", "p99_ms"]),
    ("client MiB per connection", ["mib_per_connection"]),
    ("threads per connection", ["threads_per_connection"]),
]


def main():
    src, dst = sys.argv[1], sys.argv[2]
    with open(src) as f:
        spec = json.load(f)
    fig, axes = plt.subplots(1, len(PANELS), figsize=(4.4 * len(PANELS), 4.0), squeeze=False)
    for ax, (title, keys) in zip(axes[0], PANELS):
        for mode, points in spec["series"].items():
            for key in keys:
                pts = [(p["n"], p[key]) for p in points if p.get(key) is not None]
                if not pts:
                    continue
                xs, ys = zip(*pts)
                label = mode if len(keys) == 1 else f"{mode} {key.split('_')[0]}"
                style = "-" if key != "p99_ms" else "--"
                ax.plot(xs, ys, style, marker="o", label=label)
        ax.set_xscale("log", base=2)
        ax.set_xticks([8, 32, 128], ["8", "32", "128"])
        if "log" in title:
            ax.set_yscale("log")
        else:
            ax.set_ylim(bottom=0)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("concurrent connections")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(spec.get("caption", ""), fontsize=9)
    fig.tight_layout()
    fig.savefig(dst, dpi=110)


if __name__ == "__main__":
    main()
