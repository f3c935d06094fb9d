"""Train the student under each reading of the paper's ambiguous loss terms and rank them by
validation MAE (test MAE is printed beside it, never used to choose).

    python scripts/readings.py --teacher FILE --out runs/readings [--epochs 20 --patience 5]
    python scripts/readings.py --study tbl --dataset nyc-bike-manhattan --teacher FILE \
        --out runs/readings-tbl/nyc-bike-manhattan --store docs/results/nyc-bike-manhattan/cells

``--study search`` (the first sweep) starts from one reading and changes one factor at a time.
``--study tbl`` (the second, with the LLM teacher) starts from the defaults the first chose
(``TBL_BASE``: the teacher-bounded term gated per batch with the truth as target) and varies only
the teacher-bounded loss and the temporal reference: the readings through which a good teacher can
reach the student beyond L_spa. With ``--store``, the base and the no-L_tbl runs are read from the
kept full-protocol cells made under that base (same teacher file, same settings; today
docs/results-superseded/tbl-eq2-truth-batch/DATASET/cells) instead of trained again.
Writes OUT/readings.csv and OUT/readings.md (the tables in docs/design-decisions.md come from it).
Finished runs (OUT/<name>/metrics.json) are reused, so an interrupted sweep resumes.
"""

from __future__ import annotations

import argparse
import csv
import json
from dataclasses import replace
from pathlib import Path

from flowdistill.engine import TrainConfig
from flowdistill.experiments.common import spec_differences
from flowdistill.experiments.runs import RunSpec, run
from flowdistill.losses import DistillConfig

# The reading the sweep starts from; each variant changes one factor of it.
BASE = replace(
    DistillConfig(),
    tbl_gate="text", tbl_target="teacher", tbl_granularity="element",
    spa_reference="teacher", spa_form="difference",
    tem_reference="teacher", tem_form="difference",
)
START = "start: tbl text/teacher/element, spa teacher/difference, tem teacher/difference"

# name -> overrides of the starting reading; one factor at a time
VARIANTS: dict[str, dict] = {
    START: {},
    # teacher-bounded loss (Eq. 2)
    "tbl: eq2 gate, truth target, per batch (reference code)": dict(
        tbl_gate="eq2", tbl_target="truth", tbl_granularity="batch"),
    "tbl: text gate, truth target, per element": dict(tbl_gate="text", tbl_target="truth"),
    "tbl: text gate, teacher target, per window": dict(tbl_granularity="sample"),
    # spatial (Eq. 10)
    "spa: truth, absolute (Eq. 10 as printed)": dict(spa_reference="truth", spa_form="absolute"),
    "spa: self, absolute (smoothness)": dict(spa_reference="self", spa_form="absolute"),
    "spa: truth, difference": dict(spa_reference="truth", spa_form="difference"),
    "spa: teacher, difference": dict(spa_reference="teacher", spa_form="difference"),
    # temporal (Eq. 11)
    "tem: truth, absolute (Eq. 11 as printed)": dict(tem_reference="truth", tem_form="absolute"),
    "tem: self, absolute (smoothness)": dict(tem_reference="self", tem_form="absolute"),
    "tem: truth, difference": dict(tem_reference="truth", tem_form="difference"),
    "tem: teacher, difference": dict(tem_reference="teacher", tem_form="difference"),
    # all auxiliary terms off: what the readings add over plain MAE + KL
    "none: L_reg + KL only": dict(use_tbl=False, use_spatial=False, use_temporal=False),
}


# the defaults the first study chose, the base of the second
TBL_BASE = replace(DistillConfig(), tbl_gate="eq2", tbl_target="truth", tbl_granularity="batch")
DEFAULT = "default: tbl eq2/truth/batch, spa teacher/difference, tem truth/difference"
NO_TBL = "off: no L_tbl"
# the teacher-bounded study: variants of today's defaults (stored cells: the two kept names)
TBL_VARIANTS: dict[str, dict] = {
    DEFAULT: {},
    NO_TBL: dict(use_tbl=False),
    "tbl: eq2 gate, teacher target, per element": dict(tbl_target="teacher",
                                                       tbl_granularity="element"),
    "tem: teacher, difference": dict(tem_reference="teacher"),
    "tbl: eq2 gate, teacher target, per element, lambda_tbl 0.5": dict(
        tbl_target="teacher", tbl_granularity="element", lambda_tbl=0.5),
    "tbl: eq2 gate, teacher target, per element, lambda_tbl 1": dict(
        tbl_target="teacher", tbl_granularity="element", lambda_tbl=1.0),
    "tbl: eq2 gate, teacher target, per window": dict(tbl_target="teacher",
                                                      tbl_granularity="sample"),
    "tbl: eq2 gate, teacher target, per batch": dict(tbl_target="teacher"),
    "tbl: eq2 gate, truth target, per element": dict(tbl_granularity="element"),
    "tbl: text gate, truth target, per element": dict(tbl_gate="text", tbl_granularity="element"),
    "tbl: text gate, truth target, per element, delta 2": dict(
        tbl_gate="text", tbl_granularity="element", delta=2.0),
}
STORED = {DEFAULT: "flowdistill", NO_TBL: "flowdistill@no-tbl"}


def slug(name: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in name.lower()).strip("-")[:60]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--teacher", required=True)
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--dataset", default="nyc-taxi-manhattan")
    ap.add_argument("--study", choices=("search", "tbl"), default="search")
    ap.add_argument("--store", type=Path, default=None,
                    help="kept cells (docs/results/DATASET/cells) to read the default runs from")
    ap.add_argument("--train-ratio", type=float, default=0.1)
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--patience", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--only", default=None, help="comma list of variant-name prefixes")
    args = ap.parse_args()
    rows = []
    base, variants = (BASE, VARIANTS) if args.study == "search" else (TBL_BASE, TBL_VARIANTS)
    names = list(variants)
    if args.only:
        names = [n for n in names if any(n.startswith(p) for p in args.only.split(","))]
    for name in names:
        cfg = replace(base, **variants[name])
        # a variant equal to the starting reading is that reading: do not train it twice
        if name not in (START, DEFAULT) and cfg == base:
            continue
        out = args.out / slug(name)
        spec = RunSpec(
            dataset=args.dataset, data_dir=args.data_dir, train_ratio=args.train_ratio,
            seed=args.seed, teacher=args.teacher, distill=cfg,
            train=TrainConfig(max_epochs=args.epochs, patience=args.patience, progress=False),
        )
        kept = (args.store / STORED[name] / f"r{args.train_ratio:g}" / f"s{args.seed}.json"
                if args.store is not None and args.study == "tbl" and name in STORED else None)
        if kept is not None and kept.exists():
            result = json.loads(kept.read_text())
            # the sweep cache's own comparison; the teacher by file name (the same forecasts)
            diff = spec_differences(result["config"]["run"], spec.to_dict())
            if Path(result["teacher"]["file"]).name != Path(args.teacher).name:
                diff.append("teacher")
            if diff:
                raise SystemExit(f"{kept} differs from {name!r} in {', '.join(diff)}")
        elif (out / "metrics.json").exists():
            result = json.loads((out / "metrics.json").read_text())
        else:
            result = run(spec, out)
        rows.append({
            "reading": name,
            "val_mae": result["val"]["mae"], "val_rmse": result["val"]["rmse"],
            "test_mae": result["test"]["mae"], "test_rmse": result["test"]["rmse"],
            "epochs": result["fit"]["epochs_run"], "teacher": result["teacher"]["model"],
        })
        print(f"{name:60s} val MAE {rows[-1]['val_mae']:.3f}  test MAE {rows[-1]['test_mae']:.3f}",
              flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    with open(args.out / "readings.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    lines = [
        f"{args.dataset}: student at train ratio {args.train_ratio}, seed {args.seed}, teacher "
        f"`{rows[0]['teacher']}` ({Path(args.teacher).name}), at most {args.epochs} epochs "
        f"(patience {args.patience}). Sorted by validation MAE.",
        "",
        "| reading | val MAE | val RMSE | test MAE | test RMSE | epochs |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in sorted(rows, key=lambda r: r["val_mae"]):
        lines.append(f"| {r['reading']} | {r['val_mae']:.3f} | {r['val_rmse']:.3f} | "
                     f"{r['test_mae']:.3f} | {r['test_rmse']:.3f} | {r['epochs']} |")
    (args.out / "readings.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
