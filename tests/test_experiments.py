"""`flowdistill bench`: each experiment end to end in a tiny configuration on the real NYC data.

Two months of data, one seed, one epoch; the models are the historical average, the last value and
the FlowDistill student distilled from a historical-average teacher (`--teacher-model ha`). All tests
share one output folder, so later experiments reuse the runs of earlier ones (as a real suite does).
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest

from flowdistill.data.errors import DataError
from flowdistill.experiments import paper, suite
from flowdistill.experiments.common import (
    OUTGROWN,
    BenchConfig,
    RunCache,
    RunKey,
    mean_std,
    run_all,
    spec_differences,
)
from flowdistill.experiments.report import build_report
from flowdistill.losses.distill import DistillConfig, active_settings

START, END = "2019-01-01", "2019-02-28"
TINY = {"flowdistill": {"embed_dim": 16, "bottleneck": 32}}  # mechanics only: a small student


def _cfg(out: Path, data: Path, **kw) -> BenchConfig:
    base = dict(models=["ha", "last-value", "flowdistill"], seeds=[0], ratios=[0.1, 0.2], epochs=1,
                patience=1, data_dir=str(data), start=START, end=END, teacher_model="ha",
                progress=False, model_options=TINY)
    base.update(kw)
    return BenchConfig.make(out, **base)


@pytest.fixture(scope="module")
def bench(tmp_path_factory, shared_data) -> BenchConfig:
    cfg = _cfg(tmp_path_factory.mktemp("bench"), shared_data)
    suite.ratios(cfg)
    return cfg


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _outputs_exist(out: Path, name: str) -> None:
    for ext in ("csv", "md", "png", "json"):
        assert (out / f"{name}.{ext}").stat().st_size > 0, f"{name}.{ext} missing"
    assert (out / f"{name}.png").read_bytes()[:4] == b"\x89PNG"


def test_ratios_table_and_efficiency(bench):
    out = bench.out
    _outputs_exist(out, "ratios")
    rows = _rows(out / "ratios.csv")
    assert {(r["model"], float(r["ratio"])) for r in rows} == {
        (m, r) for m in ("ha", "last-value", "flowdistill") for r in (0.1, 0.2)
    }
    fd = next(r for r in rows if r["model"] == "flowdistill" and float(r["ratio"]) == 0.1)
    assert float(fd["paper_mae"]) == paper.TABLE3_NYC["flowdistill"][0.1][0]
    # the numbers are those of the run's metrics.json, not recomputed elsewhere
    metrics = json.loads((out / "runs/flowdistill/r0.1/s0/metrics.json").read_text())
    assert float(fd["mae"]) == pytest.approx(metrics["test"]["mae"])
    assert metrics["teacher"]["model"] == "ha"
    # the teacher's own validation score on the student's split: the HA run's, to the last digit
    ha = json.loads((out / "runs/ha/r0.1/s0/metrics.json").read_text())
    assert metrics["teacher"]["val"]["mae"] == pytest.approx(ha["val"]["mae"])
    assert metrics["teacher"]["test"]["mae"] == pytest.approx(ha["test"]["mae"])
    # the ha baseline run doubled as the student's teacher: no second ha training
    assert (out / "teachers/ha/r0.1/s0/teacher.npz").exists()
    assert not (out / "teachers/ha/r0.1/s0/metrics.json").exists()
    eff = _rows(out / "ratios-efficiency.csv")
    assert {e["model"] for e in eff} == {"ha", "last-value"}
    md = (out / "ratios.md").read_text()
    assert "teacher of the FlowDistill student: ha" in md and "git " in md and "seeds [0]" in md
    assert "paper 7.22 / 17.02" in md
    side = json.loads((out / "ratios.json").read_text())
    assert side["config"]["seeds"] == [0] and side["provenance"]["git"]


def test_finished_runs_are_reused_and_mismatches_refused(bench):
    metrics = bench.out / "runs/ha/r0.1/s0/metrics.json"
    before = metrics.stat().st_mtime_ns
    suite.horizons(bench, ratio=0.1)  # every run it needs is already there
    assert metrics.stat().st_mtime_ns == before
    other = BenchConfig.make(**{**_kw(bench), "epochs": 3})
    with pytest.raises(DataError, match="other settings"):
        RunCache(other).get(RunKey("ha", 0.1, 0))
    other_teacher = BenchConfig.make(**{**_kw(bench), "teacher_model": "last-value"})
    with pytest.raises(DataError, match="teacher"):
        RunCache(other_teacher).get(RunKey("flowdistill", 0.1, 0))


def _kw(cfg: BenchConfig) -> dict:
    return dict(out=cfg.out, models=list(cfg.models), seeds=list(cfg.seeds),
                ratios=list(cfg.ratios), epochs=cfg.epochs, patience=cfg.patience,
                data_dir=cfg.data_dir, start=cfg.start, end=cfg.end,
                teacher_model=cfg.teacher_model, progress=False, model_options=TINY)


def test_horizons_rows(bench):
    suite.horizons(bench, ratio=0.1)
    _outputs_exist(bench.out, "horizons")
    rows = _rows(bench.out / "horizons.csv")
    assert len(rows) == 3 * 12
    assert sorted({int(r["step"]) for r in rows}) == list(range(1, 13))


def test_volume_buckets(bench):
    suite.volume(bench, ratio=0.2, buckets=4)
    _outputs_exist(bench.out, "volume")
    rows = _rows(bench.out / "volume.csv")
    assert {r["model"] for r in rows} == {"ha", "last-value", "flowdistill"}
    fd = [r for r in rows if r["model"] == "flowdistill"]
    assert [int(r["bucket"]) for r in fd] == [1, 2, 3, 4]
    assert sum(int(r["regions"]) for r in fd) == 69
    lows = [float(r["low"]) for r in fd]
    assert lows == sorted(lows)
    # read from the run's per-region sums: the same as forecasting again from its weights
    from flowdistill.metrics import by_volume

    edges = json.loads((bench.out / "volume.json").read_text())["edges"]
    pred, truth, windows = suite.test_predictions(RunCache(bench), RunKey("flowdistill", 0.2, 0))
    vol = windows.raw[: windows.bounds.train_end].mean(axis=(0, 2), dtype=float)
    direct = by_volume(pred, truth, vol, edges)
    assert [float(r["mae"]) for r in fd] == pytest.approx([b["mae"] for b in direct], rel=1e-5)


def test_kept_runs_are_reused_without_their_run_folders(bench, tmp_path):
    store = tmp_path / "kept"
    kept = BenchConfig.make(**{**_kw(bench), "store": store})
    cache = RunCache(kept)
    first = cache.get(RunKey("flowdistill", 0.1, 0))  # finished in OUT: copied into the store
    assert (store / "flowdistill/r0.1/s0.json").exists()
    # a later session: another OUT (its runs/ is empty), the same store
    later = BenchConfig.make(**{**_kw(bench), "out": tmp_path / "fresh", "store": store})
    again = RunCache(later)
    assert again.done(RunKey("flowdistill", 0.1, 0)) and not again.done(RunKey("ha", 0.2, 0))
    assert again.get(RunKey("flowdistill", 0.1, 0))["test"] == first["test"]
    assert not (tmp_path / "fresh/runs/flowdistill").exists()  # nothing retrained
    longer = BenchConfig.make(**{**_kw(bench), "out": tmp_path / "fresh", "store": store,
                                 "epochs": 3})
    with pytest.raises(DataError, match="other settings") as err:
        RunCache(longer).get(RunKey("flowdistill", 0.1, 0))
    assert "s0.json" in str(err.value)


def test_teacher_file_is_compared_by_its_forecasts(bench, tmp_path):
    from flowdistill.teacher.file import TeacherPredictions

    source = TeacherPredictions.load(bench.out / "teachers/ha/r0.1/s0/teacher.npz")
    file_a = source.save(tmp_path / "a.npz")
    kw = {**_kw(bench), "models": ["flowdistill"], "ratios": [0.1], "teacher_model": None,
          "store": tmp_path / "kept"}
    RunCache(BenchConfig.make(**{**kw, "out": tmp_path / "one", "teacher": str(file_a)})).get(
        RunKey("flowdistill", 0.1, 0))
    # the same forecasts made again under another name (and other metadata): reused
    same = TeacherPredictions(source.window_ids, source.preds.copy(), {**source.meta, "x": 1})
    file_b = same.save(tmp_path / "b.npz")
    assert same.fingerprint() == source.fingerprint()
    cache_b = RunCache(BenchConfig.make(**{**kw, "out": tmp_path / "two", "teacher": str(file_b)}))
    assert cache_b.get(RunKey("flowdistill", 0.1, 0))["teacher"]["fingerprint"] == \
        source.fingerprint()
    assert not (tmp_path / "two/runs").exists()
    # made again on another CPU: last-bit differences change the fingerprint, not the probe
    noisy = TeacherPredictions(source.window_ids, source.preds * (1 + 1e-6), source.meta)
    assert noisy.fingerprint() != source.fingerprint()
    file_c = noisy.save(tmp_path / "c.npz")
    cache_c = RunCache(BenchConfig.make(**{**kw, "out": tmp_path / "three",
                                           "teacher": str(file_c)}))
    assert cache_c.done(RunKey("flowdistill", 0.1, 0))
    cache_c.get(RunKey("flowdistill", 0.1, 0))
    assert not (tmp_path / "three/runs").exists()
    # other forecasts, even at the first file's path: refused
    TeacherPredictions(source.window_ids, source.preds + 1.0, source.meta).save(file_a)
    with pytest.raises(DataError, match="teacher"):
        RunCache(BenchConfig.make(**{**kw, "out": tmp_path / "one", "teacher": str(file_a)})).get(
            RunKey("flowdistill", 0.1, 0))


def test_runs_go_ratio_by_ratio_with_each_teacher_before_its_students():
    """A KD baseline's GNN teacher runs just before the runs that read its file, cell by cell, so a
    sweep cut between sessions never has to train a teacher whose own cell is already kept."""
    order: list[tuple[str, float, int]] = []

    class Cache:
        cfg = type("Cfg", (), {"progress": False})()

        def _shared_teachers(self) -> set[str]:
            return {"astgcn"}

        def done(self, key: RunKey) -> bool:
            return False

        def get(self, key: RunKey) -> dict:
            order.append((key.model, key.ratio, key.seed))
            return {}

    keys = [RunKey(m, r, s) for m in ("stmlp", "easyst", "astgcn") for r in (0.2, 0.1) for s in (1, 0)]
    run_all(Cache(), keys, "test")  # type: ignore[arg-type]
    assert order[:6] == [("astgcn", 0.1, 0), ("stmlp", 0.1, 0), ("easyst", 0.1, 0),
                         ("astgcn", 0.1, 1), ("stmlp", 0.1, 1), ("easyst", 0.1, 1)]
    assert [r for _, r, _ in order] == [0.1] * 6 + [0.2] * 6


def test_hparams_one_at_a_time(bench):
    suite.hparams(bench, ratio=0.1, grid={"lambda_tbl": (0.05, 0.10)})
    _outputs_exist(bench.out, "hparams")
    rows = _rows(bench.out / "hparams.csv")
    assert [float(r["value"]) for r in rows] == [0.05, 0.10]
    assert [r["default"] for r in rows] == ["False", "True"]
    for col in ("val_mae", "val_rmse", "test_mae", "test_rmse"):
        assert all(float(r[col]) > 0 for r in rows)
    # the default value is the plain student run; the other one has its own folder and config
    varied = json.loads((bench.out / "runs/flowdistill@lambda_tbl=0.05/r0.1/s0/metrics.json")
                        .read_text())
    assert varied["config"]["run"]["distill"]["lambda_tbl"] == 0.05
    with pytest.raises(DataError, match="unknown loss option"):
        suite.hparams(bench, grid={"lambda_nope": (1.0,)})


def test_ablation_variants(bench):
    suite.ablation(bench, ratio=0.1, variants=("full", "no-tbl"))
    _outputs_exist(bench.out, "ablation")
    rows = _rows(bench.out / "ablation.csv")
    assert [r["variant"] for r in rows] == ["full", "no-tbl"]
    assert float(rows[0]["mae_change_pct"]) == 0.0
    assert float(rows[1]["paper_mae"]) == paper.TABLE4["no-tbl"][0]
    run = json.loads((bench.out / "runs/flowdistill@no-tbl/r0.1/s0/metrics.json").read_text())
    assert run["config"]["run"]["distill"]["use_tbl"] is False
    assert "30%" in (bench.out / "ablation.md").read_text()


def test_ablation_no_teacher_control_trains_without_the_teacher_file(bench):
    """The control row: same student and objective, no teacher read, none named in its run."""
    suite.ablation(bench, ratio=0.1, variants=("full", "no-teacher"))
    rows = _rows(bench.out / "ablation.csv")
    assert [r["variant"] for r in rows] == ["full", "no-teacher"]
    assert rows[1]["paper_mae"] == ""  # the paper's Table 4 has no such row
    folder = bench.out / "runs/flowdistill@no-teacher/r0.1/s0"
    run = json.loads((folder / "metrics.json").read_text())
    assert run["config"]["run"]["teacher"] is None and not run.get("teacher")
    assert run["config"]["run"]["distill"]["use_tbl"] is False
    assert run["config"]["run"]["distill"]["spa_reference"] == "truth"
    full = json.loads((bench.out / "runs/flowdistill/r0.1/s0/metrics.json").read_text())
    assert full["teacher"]["fingerprint"]  # the full model did read the teacher
    # a kept control that did read a teacher is refused, not reused
    run["teacher"] = full["teacher"]
    (folder / "metrics.json").write_text(json.dumps(run))
    with pytest.raises(DataError, match="teacher"):
        suite.ablation(bench, ratio=0.1, variants=("full", "no-teacher"))


def test_until_outgrown_variant_switches_the_teacher_off_by_validation(tmp_path, shared_data):
    """The on-request variant trains with the teacher until an epoch validates below the
    teacher's score on the same validation batches, and without it from the next epoch on."""
    cfg = _cfg(tmp_path, shared_data, models=["flowdistill"], ratios=[0.1], epochs=6, patience=6,
               val_batches=1, teacher_model="last-value")  # a weak teacher: soon outgrown
    suite.ablation(cfg, ratio=0.1, variants=("full", "until-outgrown"))
    assert [r["variant"] for r in _rows(tmp_path / "ablation.csv")] == ["full", "until-outgrown"]
    run = json.loads((tmp_path / "runs/flowdistill@until-outgrown/r0.1/s0/metrics.json")
                     .read_text())
    assert run["config"]["run"]["distill"]["teacher_until"] == "outgrown"
    bar = run["teacher"]["val_compared"]  # on the first validation batch, as the student's
    assert bar > 0 and bar != run["teacher"]["val"]["mae"]
    assert run["teacher"]["switch_below"] == bar  # no margin
    history = run["fit"]["history"]
    switched = []
    for i, row in enumerate(history):
        outgrown = any(h["val_mae"] < bar for h in history[:i])
        switched.append(outgrown)
        assert row["teacher_on"] == (0.0 if outgrown else 1.0)
        assert ("tbl" in row) == (not outgrown)
    assert not switched[0] and switched[-1]  # it did switch, and for good


@pytest.mark.parametrize("teacher, switched", [("ha", False), ("last-value", True)])
def test_ratios_outgrown_row_reuses_the_paper_run_where_the_switch_cannot_fire(
        tmp_path, shared_data, teacher, switched):
    """The outgrown row trains its own run only where the paper-reading run validated below the
    bar; elsewhere both runs are one computation and the paper run is reused, marked so."""
    cfg = _cfg(tmp_path, shared_data, models=["flowdistill"], ratios=[0.1], epochs=8, patience=8,
               teacher_model=teacher, store=str(tmp_path / "cells"))
    suite.ratios(cfg, outgrown=True)
    rows = {r["model"]: r for r in _rows(tmp_path / "ratios.csv")}
    assert set(rows) == {"flowdistill", OUTGROWN}
    paper_run = json.loads((tmp_path / "runs/flowdistill/r0.1/s0/metrics.json").read_text())
    bar = 0.97 * paper_run["teacher"]["val"]["mae"]
    fired = any(h["val_mae"] < bar for h in paper_run["fit"]["history"][:-1])
    assert fired == switched  # the two teachers give both cases
    kept = json.loads((tmp_path / f"cells/{OUTGROWN}/r0.1/s0.json").read_text())
    assert kept["config"]["run"]["distill"]["teacher_margin"] == 0.03
    assert kept["teacher"]["switch_below"] == pytest.approx(bar)
    own = tmp_path / f"runs/{OUTGROWN}/r0.1/s0/metrics.json"
    if switched:
        assert own.exists() and "never_switched" not in kept
        assert any(h["teacher_on"] == 0.0 for h in kept["fit"]["history"])
    else:
        assert not own.exists() and "never fell below" in kept["never_switched"]
        assert kept["test"] == paper_run["test"]
        assert float(rows[OUTGROWN]["mae"]) == float(rows["flowdistill"]["mae"])
        # a paper run kept before runs recorded the teacher's validation score: scored again
        for path in (tmp_path / "runs/flowdistill/r0.1/s0/metrics.json",
                     tmp_path / "cells/flowdistill/r0.1/s0.json"):
            old = json.loads(path.read_text())
            del old["teacher"]["val"]
            path.write_text(json.dumps(old))
        (tmp_path / f"cells/{OUTGROWN}/r0.1/s0.json").unlink()
        suite.ratios(cfg, outgrown=True)
        again = json.loads((tmp_path / f"cells/{OUTGROWN}/r0.1/s0.json").read_text())
        assert again["teacher"]["switch_below"] == pytest.approx(bar) and not own.exists()
    suite.ratios(cfg, outgrown=True)  # the kept cell is reused as it is


def test_ratios_with_the_control_keep_the_teacher_only_where_it_validates(bench, tmp_path):
    cfg = BenchConfig.make(**{**_kw(bench), "out": tmp_path, "models": ["flowdistill"],
                              "ratios": [0.1, 0.2]})
    suite.ratios(cfg, control=True)
    rows = {(r["model"], float(r["ratio"])): r for r in _rows(tmp_path / "ratios.csv")}
    assert {m for m, _ in rows} == {"flowdistill", "flowdistill@no-teacher",
                                    "flowdistill, teacher kept by validation"}
    for r in (0.1, 0.2):
        runs = [json.loads((tmp_path / f"runs/{n}/r{r:g}/s0/metrics.json").read_text())
                for n in ("flowdistill", "flowdistill@no-teacher")]
        assert runs[0]["teacher"] and not runs[1]["teacher"]
        kept = min(runs, key=lambda x: x["val"]["mae"])
        assert float(rows[("flowdistill, teacher kept by validation", r)]["mae"]) == \
            pytest.approx(kept["test"]["mae"])
    assert "flowdistill@no-teacher" in (tmp_path / "ratios.md").read_text()


def test_scalability_rows(bench, tmp_path):
    cfg = BenchConfig.make(**{**_kw(bench), "out": tmp_path, "models": ["flowdistill", "stid"]})
    suite.scalability(cfg, batch_sizes=(4, 8), multiples=(1, 2), latency_batch=128)
    _outputs_exist(tmp_path, "scalability")
    rows = _rows(tmp_path / "scalability.csv")
    assert len(rows) == 2 * (2 + 2)
    mem = {(r["model"], int(r["x"])): float(r["value"]) for r in rows if r["kind"] == "memory"}
    assert all(v > 0 for v in mem.values())
    assert mem[("flowdistill", 8)] > mem[("flowdistill", 4)]  # activations grow with the batch
    lat = [r for r in rows if r["kind"] == "latency"]
    assert {float(r["windows"]) for r in lat if int(r["x"]) == 2} == {
        2 * float(r["windows"]) for r in lat if int(r["x"]) == 1
    }
    side = json.loads((tmp_path / "scalability.json").read_text())
    assert side["flops"]["flops_per_window"] > 0 and side["flops"]["ratio"] > 0
    md = (tmp_path / "scalability.md").read_text()
    assert "cores busy on average" in md or "load average counts" in md  # shared or not: said


def test_report_from_folders(bench, tmp_path):
    out = tmp_path / "docs" / "results.md"
    build_report([bench.out], out)
    text = out.read_text()
    assert "## Claims at a glance" in text
    assert "FlowDistill lowest MAE at 10%" in text
    assert "../" in text and "ratios.png" in text  # image linked relative to the report
    with pytest.raises(DataError, match="no experiment outputs"):
        build_report([tmp_path], tmp_path / "x.md")


def test_report_lists_the_kept_full_protocol_cells(bench, tmp_path):
    base = json.loads((bench.out / "runs/ha/r0.1/s0/metrics.json").read_text())

    def keep(name: str, seed: int, mae: float, epochs: int = 100, teacher: str = "",
             ratio: float = 0.1, teacher_mae: float = 11.0) -> None:
        cell = json.loads(json.dumps(base))
        if teacher:  # a distilled cell, with the teacher it recorded
            cell["model"] = "flowdistill"
            cell["teacher"] = {"model": "llm-teacher-seeds(0,1,2)", "trained_on": "taxi",
                               "fingerprint": teacher, "test": {"mae": teacher_mae}}
        cell["config"]["run"].update(seed=seed, train_ratio=ratio)
        cell["config"]["run"]["train"].update(max_epochs=epochs, patience=15)
        cell["test"]["mae"] = mae
        path = tmp_path / "results/city/cells" / name / f"r{ratio:g}" / f"s{seed}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(cell))

    keep("ha", 0, 1.0)
    keep("ha", 1, 3.0)
    keep("ha", 0, 5.0, ratio=0.4)  # more slots, higher error: the season note appears
    keep("stid", 0, 9.0, epochs=6)  # a shortened run: not a full-protocol cell
    keep("flowdistill", 0, 4.0, teacher="new")
    keep("flowdistill-constlr-teacher", 0, 5.0, teacher="old", teacher_mae=12.0)  # another teacher
    keep("flowdistill@no-ib", 1, 4.5, teacher="new")  # an ablation point: same teacher, one ratio
    shutil.copytree(bench.out, tmp_path / "results/bench", ignore=shutil.ignore_patterns("runs"))
    out = tmp_path / "results.md"
    build_report([tmp_path / "results"], out)
    text = out.read_text()
    progress = text[text.index("## Full sweeps in progress"):]
    assert "4 of the 150 cells" in progress  # the earlier teacher's row is not a planned cell
    # one line per teacher, naming the rows it taught
    assert ("- teacher of flowdistill, flowdistill@no-ib: llm-teacher-seeds(0,1,2) (trained on "
            "taxi; fingerprint new, its test MAE 11.000)") in progress
    # variants kept at one ratio leave the ratio table for a short table of their own
    sweep_table, variants = progress.split("FlowDistill variants kept at one ratio")
    assert "| flowdistill@no-ib |" not in sweep_table and "| flowdistill |" in sweep_table
    assert "| flowdistill@no-ib | 10 % | 4.500 (s1) |" in variants
    assert "| flowdistill-constlr-teacher | 10 % | 5.000 (s0) |" in variants
    assert "forecast again from its kept weights" not in progress  # two teachers, not one twice
    # the curves so far are drawn beside the cells and linked relative to the report
    assert (tmp_path / "results/city/ratios-so-far.png").stat().st_size > 0
    assert "](results/city/ratios-so-far.png)" in progress
    keep("flowdistill@no-tbl", 0, 4.2, teacher="again")  # the first teacher, forecast again
    build_report([tmp_path / "results"], out)
    assert "- teacher of flowdistill@no-tbl: llm-teacher-seeds(0,1,2) (trained on taxi; " \
        "fingerprint again, its test MAE 11.000)\n- a teacher listed under two fingerprints was " \
        "forecast again from its kept weights" in out.read_text()
    assert "- teacher of flowdistill-constlr-teacher: llm-teacher-seeds(0,1,2) (trained on taxi; " \
        "fingerprint old, its test MAE 12.000)" in progress
    assert "| ha | 2.000 ± 1.414 (s0,1) | – | – | 5.000 (s0) | – |" in progress
    assert "historical average's test MAE rises from 2.000 at 10 % to 5.000 at 40 %" in progress
    assert "| stid |" not in progress.split("### Ratio sweep so far — city")[1].split("##")[0]
    assert "not counted, no kept cell to time: astgcn, bigst, easyst" in progress  # stid's is short
    claims = text[text.index("## Claims at a glance"):text.index("## Full sweeps in progress")]
    assert "2.000" not in claims


def test_cli_commands(bench, tmp_path):
    from typer.testing import CliRunner

    from flowdistill.cli.experiments import app

    common = ["--out", str(bench.out), "--data-dir", bench.data_dir, "--start", START, "--end",
              END, "--models", "ha,last-value,flowdistill", "--seeds", "0", "--ratios", "0.1,0.2",
              "--epochs", "1", "--patience", "1", "--teacher-model", "ha", "--quiet",
              "--model-option", "flowdistill.embed_dim=16",
              "--model-option", "flowdistill.bottleneck=32"]
    res = CliRunner().invoke(app, ["horizons", *common, "--train-ratio", "0.2", "--results",
                                   str(tmp_path / "results")])
    assert res.exit_code == 0, res.output
    assert json.loads((bench.out / "horizons.json").read_text())["ratio"] == 0.2
    assert (tmp_path / "results/nyc-taxi-manhattan/horizons.json").exists()  # never docs/
    res = CliRunner().invoke(app, ["report", "--runs", str(bench.out), "--out",
                                   str(tmp_path / "r.md")])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "r.md").exists()


def test_bad_input_is_a_data_error(shared_data, tmp_path):
    with pytest.raises(DataError, match="teacher"):
        suite.ratios(_cfg(tmp_path, shared_data, teacher_model=None))
    with pytest.raises(DataError, match="unknown model"):
        _cfg(tmp_path, shared_data, models=["nope"])
    with pytest.raises(DataError):  # two days cannot hold train/val/test windows
        suite.ratios(_cfg(tmp_path, shared_data, models=["ha"], start=START, end="2019-01-02"))


def test_quick_preset_and_helpers(tmp_path):
    cfg = BenchConfig.make(tmp_path, quick=True, models=["ha"])
    assert cfg.quick and cfg.seeds == (0,) and cfg.epochs <= 15 and len(cfg.ratios) == 3
    full = BenchConfig.make(tmp_path, models=["ha"])
    assert full.seeds == (0, 1, 2) and len(full.ratios) == 7 and full.epochs == 100
    assert mean_std([1.0, 3.0]) == (2.0, pytest.approx(2**0.5))
    assert mean_std([5.0]) == (5.0, 0.0)
    assert spec_differences({"model": "a", "train": {"max_epochs": 1}},
                            {"model": "b", "train": {"max_epochs": 2}}) == ["model", "max_epochs"]


def test_a_switched_off_term_ignores_its_readings():
    """The no-tbl ablation made under one teacher-bounded reading is the same run under another
    (measured: bike 10 % seed 0 gave the same test MAE to the last digit), so the cache reuses it;
    a reading of an active term, or the bottleneck switch (it changes the model), still differs."""
    old = DistillConfig(use_tbl=False, tbl_target="truth", tbl_granularity="batch").to_dict()
    new = DistillConfig(use_tbl=False).to_dict()
    assert spec_differences({"distill": old}, {"distill": new}) == []
    zero = DistillConfig(lambda_tbl=0.0, tbl_target="truth").to_dict()
    assert spec_differences({"distill": zero}, {"distill": new}) == []
    on = DistillConfig(tbl_target="truth").to_dict()
    assert spec_differences({"distill": on}, {"distill": DistillConfig().to_dict()}) == ["distill"]
    no_ib = DistillConfig(use_ib=False).to_dict()
    assert spec_differences({"distill": no_ib},
                            {"distill": DistillConfig(lambda_kl=0.0).to_dict()}) == ["distill"]
    assert active_settings(no_ib)["use_ib"] is False and "lambda_kl" not in active_settings(no_ib)
    assert spec_differences({"distill": DistillConfig(use_ib=False, lambda_kl=0.5).to_dict()},
                            {"distill": no_ib}) == []


def test_a_setting_added_later_matches_kept_runs_at_its_default():
    """Cells kept before `teacher_until` existed have no such key: at its default ("end") they are
    the same run; "outgrown" differs, except for a student with no teacher to switch off."""
    kept = DistillConfig().to_dict()
    kept.pop("teacher_until")
    kept.pop("teacher_margin")
    assert spec_differences({"distill": kept}, {"distill": DistillConfig().to_dict()}) == []
    gated = DistillConfig(teacher_until="outgrown")
    assert spec_differences({"distill": kept}, {"distill": gated.to_dict()}) == ["distill"]
    # the margin acts only on a student that switches, and 0 is the margin of runs kept before it
    assert spec_differences({"distill": DistillConfig(teacher_margin=0.03).to_dict()},
                            {"distill": kept}) == []
    kept_gated = gated.to_dict()
    kept_gated.pop("teacher_margin")
    assert spec_differences({"distill": kept_gated}, {"distill": gated.to_dict()}) == []
    assert spec_differences({"distill": kept_gated}, {"distill": DistillConfig(
        teacher_until="outgrown", teacher_margin=0.03).to_dict()}) == ["distill"]
    alone = DistillConfig().without_teacher().to_dict()
    alone.pop("teacher_until")
    alone.pop("teacher_margin")
    assert spec_differences({"distill": alone},
                            {"distill": gated.without_teacher().to_dict()}) == []
