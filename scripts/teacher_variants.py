"""Measure the LLM teacher's design options one at a time (validation MAE and CPU seconds).

Each variant is one `flowdistill teacher train` run with the same budget (steps, batch, lr, seed)
into OUT/<variant>/; a finished variant (teacher.json present) is skipped, an interrupted one resumes
from its engine checkpoint. The table (Markdown and JSON) goes to OUT/variants.{md,json}.

    python scripts/teacher_variants.py --out runs/teacher-variants --steps 150 --val-every 75 --threads 1
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

BASE = ["--layers", "1", "--pool", "val", "--extra", "nyc-bike-manhattan"]
VARIANTS: dict[str, list[str]] = {
    # the default of this version: per-region query + encoder vector at <ST_PRE>, detached <ST_HIS>
    "default": [],
    "pre-shared (UrbanGPT)": ["--pre-query", "shared"],
    "pre-region": ["--pre-query", "region"],
    "head-his attached": ["--head-his", "attached"],
    "taxi only (no bike)": ["--no-extra"],
    "2 layers": ["--layers", "2"],
}


def args_for(name: str) -> list[str]:
    extra = VARIANTS[name]
    base = list(BASE)
    if "--no-extra" in extra:
        base = base[:4]
        extra = [a for a in extra if a != "--no-extra"]
    if "--layers" in extra:
        base = base[2:]
    return base + extra


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=Path("runs/teacher-variants"))
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--val-every", type=int, default=75)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--only", nargs="*", help="Variant names to run (default: all).")
    a = ap.parse_args()
    rows = []
    for name in a.only or list(VARIANTS):
        folder = a.out / name.replace(" ", "_").replace("(", "").replace(")", "")
        if not (folder / "teacher.json").exists():
            cmd = ["flowdistill", "teacher", "train", "--out", str(folder), "--steps", str(a.steps),
                   "--val-every", str(a.val_every), "--val-batches", "4", "--batch-size",
                   str(a.batch_size), "--lr", str(a.lr), "--threads", str(a.threads), *args_for(name)]
            print("$", " ".join(cmd), flush=True)
            if subprocess.call(cmd) != 0:
                print(f"variant {name!r} failed", file=sys.stderr)
                continue
        meta = json.loads((folder / "teacher.json").read_text())
        fit = meta["fit"]
        rows.append({
            "variant": name,
            "args": " ".join(args_for(name)),
            "best_val_mae": fit["best_val_mae"],
            "val_mae_by_step": [round(h["val_mae"], 3) for h in fit["history"]],
            "train_seconds": fit["seconds"],
            "trainable_parameters": meta["trainable_parameters"],
            "data": meta.get("data_description", ""),
        })
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "variants.json").write_text(json.dumps(
        {"steps": a.steps, "batch_size": a.batch_size, "lr": a.lr, "threads": a.threads,
         "val_windows": 4 * 32, "rows": rows}, indent=2) + "\n")
    lines = ["| variant | best val MAE | val MAE every "
             f"{a.val_every} steps | train s | trained params |", "|---|---:|---|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['variant']} | {r['best_val_mae']:.3f} | "
                     f"{', '.join(f'{v:.2f}' for v in r['val_mae_by_step'])} | "
                     f"{r['train_seconds']:.0f} | {r['trainable_parameters']:,} |")
    (a.out / "variants.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
