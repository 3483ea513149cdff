#!/usr/bin/env python3
"""Draws the latency distributions of `cargo bench --bench compare` as one PNG.

    python plot_latency.py SAMPLES.json OUT.png

SAMPLES.json: {"panels": [{"title": str, "xlabel": str, "series": {client: [ms, ...]}}, ...],
               "caption": str}. Each panel is an empirical CDF per client on a log x axis.
"""
import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main():
    src, dst = sys.argv[1], sys.argv[2]
    with open(src) as f:
        spec = json.load(f)
    panels = [p for p in spec["panels"] if any(p["series"].values())]
    fig, axes = plt.subplots(1, len(panels), figsize=(6.2 * len(panels), 4.6), squeeze=False)
    for ax, panel in zip(axes[0], panels):
        for name, samples in panel["series"].items():
            if not samples:
                continue
            s = sorted(samples)
            n = len(s)
            y = [(i + 1) / n for i in range(n)]
            p50 = s[max(0, (n + 1) // 2 - 1)]
            lw = 2.4 if name.startswith("e2b-blocking") else 1.4
            ax.step(s, y, where="post", lw=lw, label=f"{name} (p50 {p50:.1f})")
        ax.set_xscale("log")
        ax.set_title(panel["title"], fontsize=10)
        ax.set_xlabel(panel.get("xlabel", "ms (log)"))
        ax.set_ylabel("fraction of samples <= x")
        ax.grid(True, which="both", alpha=0.3)
        ax.axhline(0.5, color="grey", lw=0.6, ls=":")
        ax.axhline(0.99, color="grey", lw=0.6, ls=":")
        ax.legend(fontsize=7, loc="lower right")
    fig.suptitle(spec.get("caption", ""), fontsize=9)
    fig.tight_layout()
    fig.savefig(dst, dpi=110)


if __name__ == "__main__":
    main()
