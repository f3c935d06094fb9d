"""Issue 9 groundwork: per-dataset result files, the honest report, resumable cells, the cost table.

Tiny configurations only: two months of the real NYC data (taxi and Citi Bike), one seed, one or two
short epochs, small models. They test mechanics (what is written, where, what is reused or
resumed), never accuracy.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from flowdistill.data.errors import DataError
from flowdistill.engine.trainer import Trainer
from flowdistill.experiments import suite
from flowdistill.experiments.common import (
    DEFAULT_MODELS,
    BenchConfig,
    RunCache,
    RunKey,
    cpu_sample,
    dataset_slug,
    other_cores,
    publish_folder,
)
from flowdistill.experiments.cost import CostConfig, measure_costs, render
from flowdistill.experiments.headline import END, START
from flowdistill.experiments.report import (
    _reading_ablation,
    _reading_horizons,
    _reading_ratios,
    _reading_volume,
    build_report,
    season_note,
    time_left,
)

PERIOD = dict(start="2019-01-01", end="2019-02-28")
TINY_STUDENT = {"flowdistill": {"embed_dim": 16, "bottleneck": 32}}
TINY_STID = {"stid": {"embed_dim": 8, "node_dim": 8, "tod_dim": 8, "dow_dim": 8, "num_layers": 1}}


def _cfg(tmp: Path, data: Path, **kw) -> BenchConfig:
    base = dict(models=["ha", "last-value", "flowdistill"], seeds=[0], ratios=[0.1], epochs=1,
                patience=1, data_dir=str(data), teacher_model="ha", progress=False,
                model_options=TINY_STUDENT, results=tmp / "results", **PERIOD)
    base.update(kw)
    return BenchConfig.make(tmp / "out", **base)


def test_protocol_names_the_settings(tmp_path):
    assert BenchConfig.make(tmp_path, models=["ha"]).protocol() == "full"
    assert BenchConfig.make(tmp_path, models=["ha"], quick=True).protocol() == "quick"
    assert BenchConfig.make(tmp_path, models=["ha"], epochs=5).protocol() == "custom"
    assert BenchConfig.make(tmp_path, models=["ha"], batches_per_epoch=8).protocol() == "custom"
    assert dataset_slug("nyc-bike-manhattan") == "nyc-bike-manhattan"
    assert dataset_slug("/tmp/my city.npz") == "my-city"


def test_ratios_publish_the_machine_readable_sidecar(tmp_path, shared_data):
    cfg = _cfg(tmp_path, shared_data)
    paths = suite.ratios(cfg)
    side = json.loads(paths["published"].read_text())
    assert paths["published"] == tmp_path / "results/nyc-taxi-manhattan/ratios.json"
    assert side["quick"] is True and side["preset"] == "custom"  # 1 epoch is not the protocol
    assert side["dataset"] == "nyc-taxi-manhattan" and side["seeds"] == [0]
    assert side["epochs"] == 1 and side["git"] and side["machine"]
    teacher = side["teacher"]
    assert teacher["kind"] == "baseline" and "not the LLM" in teacher["description"]
    assert teacher["test"]["mae"] > 0  # the teacher's own test score, from the student run
    for row in side["rows"]:
        assert {"model", "ratio", "mae", "mae_std", "rmse", "rmse_std"} <= set(row)
    assert ["flowdistill", 0.1, 0] in side["cells"]
    md = (tmp_path / "results/nyc-taxi-manhattan/ratios.md").read_text()
    assert "SHORTENED settings" in md and "its own test MAE / RMSE" in md
    assert (tmp_path / "results/nyc-taxi-manhattan/ratios.png").exists()


def test_bike_dataset_runs_by_name_without_paper_numbers(tmp_path, shared_data):
    cfg = _cfg(tmp_path, shared_data, dataset="nyc-bike-manhattan", models=["ha", "last-value"],
               teacher_model=None)
    suite.ratios(cfg)
    side = json.loads((tmp_path / "results/nyc-bike-manhattan/ratios.json").read_text())
    assert side["dataset"] == "nyc-bike-manhattan"
    assert all(r["paper_mae"] is None for r in side["rows"])  # the paper's tables are taxi
    run = json.loads((cfg.out / "runs/ha/r0.1/s0/metrics.json").read_text())
    assert run["dataset"]["name"] == "nyc-bike-manhattan"
    # a taxi configuration on the same --out refuses the bike runs instead of mixing them in
    taxi = _cfg(tmp_path, shared_data, models=["ha"], teacher_model=None)
    with pytest.raises(DataError, match="other settings"):
        RunCache(taxi).get(RunKey("ha", 0.1, 0))


def test_smoke_reading_never_replaces_a_full_one(tmp_path, shared_data):
    cfg = _cfg(tmp_path, shared_data, models=["ha"], teacher_model=None)
    dest = tmp_path / "results/nyc-taxi-manhattan"
    dest.mkdir(parents=True)
    full = {"quick": False, "cells": [["ha", 0.1, 0], ["ha", 0.1, 1]]}
    (dest / "ratios.json").write_text(json.dumps(full))
    assert publish_folder(cfg, "ratios", {"quick": True, "cells": full["cells"]}) == dest / "partial"
    # a full part covering fewer cells (a sweep run in parts) does not replace it either
    assert publish_folder(cfg, "ratios", {"quick": False, "cells": [["ha", 0.1, 0]]}) == \
        dest / "partial"
    more = {"quick": False, "cells": [*full["cells"], ["ha", 0.2, 0]]}
    assert publish_folder(cfg, "ratios", more) == dest
    suite.ratios(cfg)  # a 1-epoch reading lands in partial/, the full file stays
    assert json.loads((dest / "ratios.json").read_text()) == full
    assert json.loads((dest / "partial/ratios.json").read_text())["quick"] is True


def test_interrupted_cell_resumes_from_its_checkpoint(tmp_path, shared_data, monkeypatch):
    cfg = _cfg(tmp_path, shared_data, models=["stid"], teacher_model=None, epochs=2, patience=2,
               batches_per_epoch=2, val_batches=1, model_options=TINY_STID)
    folder = RunCache(cfg).folder(RunKey("stid", 0.1, 0))
    ckpt = folder / "checkpoints" / "last.pt"

    class Killed(RuntimeError):
        pass

    orig = Trainer._batch

    def dying(self, data, ids):
        if ckpt.exists():  # the first epoch is saved: the machine goes down in the second
            raise Killed
        return orig(self, data, ids)

    monkeypatch.setattr(Trainer, "_batch", dying)
    with pytest.raises(Killed):
        suite.ratios(cfg)
    monkeypatch.setattr(Trainer, "_batch", orig)
    import torch

    saved = torch.load(ckpt, map_location="cpu", weights_only=False)
    assert saved["epoch"] == 0 and not (folder / "metrics.json").exists()
    suite.ratios(cfg)  # the same command again
    metrics = json.loads((folder / "metrics.json").read_text())
    history = metrics["fit"]["history"]
    assert len(history) == 2
    assert history[0] == saved["history"][0]  # epoch 1 came from the checkpoint, not retrained
    # the finished cell is reused as it is by the next command
    before = (folder / "metrics.json").stat().st_mtime_ns
    suite.ratios(cfg)
    assert (folder / "metrics.json").stat().st_mtime_ns == before
    # a finished baseline run built with other defaults is refused, not silently reused
    metrics["config"]["model"]["embed_dim"] = 99
    (folder / "metrics.json").write_text(json.dumps(metrics))
    with pytest.raises(DataError, match="model defaults"):
        RunCache(cfg).get(RunKey("stid", 0.1, 0))


def _sidecar(folder: Path, name: str, quick: bool, mae: float) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rows = [{"model": m, "ratio": 0.1, "seeds": 3, "mae": v, "mae_std": 0.1, "rmse": 2 * v,
             "rmse_std": 0.2} for m, v in (("flowdistill", mae), ("stid", 10.0))]
    meta = {"experiment": name, "title": f"{name} title", "quick": quick,
            "preset": "quick" if quick else "full", "dataset": "nyc-taxi-manhattan",
            "seeds": [0, 1, 2], "epochs": 100, "patience": 15, "git": "abc1234",
            "machine": "test machine", "provenance": {"created": "2026-01-01", "git": "abc1234"},
            "teacher": {"kind": "llm", "description": "LLM teacher (smollm2)",
                        "test": {"mae": 9.5, "rmse": 19.0}},
            "rows": rows, "efficiency": []}
    (folder / f"{name}.json").write_text(json.dumps(meta))
    (folder / f"{name}.md").write_text(f"# {name}\n\n- header bullet\n\nbody of {name}\n")


def test_report_counts_only_full_protocol_and_keeps_the_headline(tmp_path):
    results = tmp_path / "results"
    _sidecar(results / "nyc-taxi-manhattan", "ratios", quick=False, mae=9.0)
    _sidecar(results / "nyc-bike-manhattan", "ratios", quick=True, mae=11.0)
    doc = tmp_path / "results.md"
    block = f"{START}\n## Headline: kept verbatim 1.234 ± 0.001\n{END}"
    doc.write_text(f"# Results\n\nold text\n\n{block}\n\nmore old text\n")
    build_report([results], doc)
    text = doc.read_text()
    assert text.index(block) < text.index("## Claims at a glance")  # first, byte for byte
    claims = text[text.index("## Claims at a glance"):text.index("## Full-protocol results")]
    assert "nyc-taxi-manhattan, ratios (seeds 0, 1, 2)" in claims
    assert "nyc-bike-manhattan" not in claims
    smoke = text[text.index("## Smoke readings"):]
    assert "nyc-bike-manhattan" in smoke and "NOT evidence" in text
    assert "LLM teacher (smollm2); its own test MAE / RMSE 9.500 / 19.000" in text
    assert "git abc1234" in text and "machine test machine" in text
    assert "header bullet" not in text  # the report writes each table's facts from the JSON


def test_report_renders_the_headline_from_its_json(tmp_path):
    results = tmp_path / "results"
    _sidecar(results / "nyc-taxi-manhattan", "ratios", quick=True, mae=9.0)
    (results / "headline.json").write_text(json.dumps({
        "git": "abc", "created": "2026-01-01", "machine": "m", "dataset": "nyc-taxi-manhattan",
        "train_ratio": 0.1, "seeds": [0], "epochs": 100, "patience": 15,
        "student_trained_on": "taxi", "verdict": {},
        "summary": [{"model": "stid", "n": 1, "mae": 12.0, "mae_std": 0.0, "rmse": 20.0,
                     "rmse_std": 0.0}]}))
    doc = tmp_path / "results.md"
    build_report([results], doc)
    text = doc.read_text()
    assert text.index(START) < text.index(END) < text.index("## Claims at a glance")
    assert "12.000 ± 0.000" in text
    assert "none yet" in text  # a smoke reading alone makes no claim
    assert "another teacher file" not in text  # no full-protocol table to differ from


def test_report_says_when_the_headline_used_other_teachers(tmp_path):
    results = tmp_path / "results"
    _sidecar(results / "nyc-taxi-manhattan", "ratios", quick=False, mae=9.0)
    meta = json.loads((results / "nyc-taxi-manhattan/ratios.json").read_text())
    head = {"git": "abc", "created": "2026-01-01", "machine": "m", "dataset": "nyc-taxi-manhattan",
            "train_ratio": 0.1, "seeds": [0], "epochs": 100, "patience": 15,
            "student_trained_on": "taxi", "verdict": {}, "summary": [],
            "llm_mean_teacher": {"file": "runs/h/mean.npz", "test": {"mae": 11.618},
                                 "seeds": [0, 1], "cpu_hours": 1.0}}
    (results / "headline.json").write_text(json.dumps(head))
    doc = tmp_path / "results.md"
    build_report([results], doc)
    text = doc.read_text()
    assert "another teacher file" not in text  # the sidecar's teacher names no file
    meta["teacher"]["file"] = "runs/full/decay.npz"
    (results / "nyc-taxi-manhattan/ratios.json").write_text(json.dumps(meta))
    doc.unlink()
    build_report([results], doc)
    text = doc.read_text()
    note = text[text.index(END):text.index("## Claims at a glance")]
    assert "git abc" in note and "test MAE 11.618" in note
    assert "`runs/full/decay.npz` (its own test MAE 9.500)" in note
    meta["teacher"]["file"] = "runs/h/mean.npz"  # the same file as the headline's: nothing to say
    (results / "nyc-taxi-manhattan/ratios.json").write_text(json.dumps(meta))
    doc.unlink()
    build_report([results], doc)
    assert "another teacher file" not in doc.read_text()


def test_cost_table_rows_and_report(tmp_path, shared_data):
    cfg = CostConfig(data_dir=str(shared_data), models=("flowdistill", "stid", "ha", "easyst"),
                     timed_steps=1, latency_repeats=1, results=tmp_path / "results",
                     model_options={**TINY_STUDENT, **TINY_STID}, log=lambda m: None, **PERIOD)
    doc = measure_costs(cfg)
    rows = {r["model"]: r for r in doc["rows"]}
    assert set(rows) == {"flowdistill", "stid", "ha", "easyst"}
    for name in ("flowdistill", "stid", "easyst"):
        r = rows[name]
        assert r["params"] > 0 and r["train_step_s"] > 0 and r["train_epoch_s"] > r["train_step_s"]
        assert r["latency_b1_ms"] > 0 and r["latency_b64_ms"] > 0
        assert r["peak_infer_mib_b64"] > 0 and r["peak_train_mib"] > 0
    assert rows["ha"]["params"] == 0 and rows["ha"]["train_epoch_s"] is None
    assert len(doc["load_before"]) == 3 and "not measured" in doc["teacher_note"]
    assert doc["other_cores"] is None or doc["other_cores"] >= 0
    saved = json.loads((tmp_path / "results/nyc-taxi-manhattan/cost.json").read_text())
    assert saved["rows"][0]["model"] == "flowdistill"
    md = (tmp_path / "results/nyc-taxi-manhattan/cost.md").read_text()
    assert "ms / window, batch 64" in md and "load average" in md
    out = tmp_path / "results.md"
    build_report([tmp_path / "results"], out)
    text = out.read_text()
    assert "## Cost of each model" in text and "FlowDistill batch-1 latency rank" in text
    with pytest.raises(DataError, match="teacher model folder"):
        measure_costs(CostConfig(teacher_model_dir=tmp_path / "nope", results=None,
                                 data_dir=str(shared_data), **PERIOD))


def test_other_cores_and_the_cost_text_say_whether_the_machine_was_shared():
    # 10 s of wall time; the machine was busy 13 CPU-s, this process 10: others kept 0.3 cores busy
    assert other_cores((0.0, 100.0, 5.0), (10.0, 113.0, 15.0)) == pytest.approx(0.3)
    # clock granularity can make the difference slightly negative: never below zero
    assert other_cores((0.0, 100.0, 5.0), (10.0, 109.9, 15.0)) == 0.0
    assert other_cores(None, (1.0, 1.0, 1.0)) is None
    assert other_cores((1.0, 1.0, 1.0), (1.0, 2.0, 1.0)) is None  # no time passed
    first = cpu_sample()
    if first is not None:  # Linux: the process's own CPU time grows with its work
        sum(i * i for i in range(300_000))
        second = cpu_sample()
        assert second is not None and second[2] > first[2] and second[0] > first[0]
    doc = {"rows": [], "load_before": [1.0, 1.0, 1.0], "load_after": [1.2, 1.0, 1.0],
           "machine": "cpu", "git": "abc", "created": "now", "method": "m", "dataset": "d",
           "ratio": 0.1, "teacher_note": "none"}
    assert "a quiet machine" in render({**doc, "other_cores": 0.05})
    shared = render({**doc, "other_cores": 0.9})
    assert "0.90 cores" in shared and "upper bounds" in shared
    assert "load average counts this process" in render(doc)  # older files: load average only


def test_cli_cost_and_results_options(tmp_path, shared_data):
    from typer.testing import CliRunner

    from flowdistill.cli.experiments import app

    res = CliRunner().invoke(app, [
        "cost", "--data-dir", str(shared_data), "--start", PERIOD["start"], "--end", PERIOD["end"],
        "--models", "ha,last-value", "--steps", "1", "--repeats", "1",
        "--results", str(tmp_path / "res"), "--threads", "1"])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "res/nyc-taxi-manhattan/cost.json").exists()
    res = CliRunner().invoke(app, [
        "ratios", "--out", str(tmp_path / "out"), "--data-dir", str(shared_data), "--start",
        PERIOD["start"], "--end", PERIOD["end"], "--models", "ha", "--seeds", "0", "--ratios",
        "0.1", "--epochs", "1", "--patience", "1", "--quiet", "--no-publish"])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "out/ratios.json").exists() and not (tmp_path / "res/nyc-taxi-manhattan"
                                                               / "ratios.json").exists()


def test_llm_teacher_file_is_named_in_words(tmp_path, synthetic):
    import numpy as np

    from flowdistill.data.windows import WindowConfig, Windows
    from flowdistill.experiments.common import describe_teacher, teacher_line
    from flowdistill.teacher.file import TeacherPredictions

    w = Windows(synthetic, WindowConfig(train_ratio=0.5))
    ids = w.all_ids
    path = TeacherPredictions.create(w, ids, w.targets(ids), model="llm-teacher",
                                     backbone="smollm2-135m", layers=1, prompt_layout="city",
                                     trained_on="train split").save(tmp_path / "t.npz")
    cfg = BenchConfig.make(tmp_path / "out", models=["flowdistill"], teacher=str(path))
    run = {"model": "flowdistill", "config": {"run": {"train_ratio": 0.1}},
           "teacher": {"test": {"mae": 3.0, "rmse": 4.0}}}
    t = describe_teacher(cfg, [run, {**run, "teacher": {"test": {"mae": 5.0, "rmse": 6.0}}}])
    assert t["kind"] == "llm" and t["description"].startswith("LLM teacher (smollm2-135m, 1 layer")
    assert t["test"] == {"mae": 4.0, "rmse": 5.0} and t["test_by_ratio"]["0.1"]["runs"] == 2
    assert "its own test MAE / RMSE 4.000 / 5.000" in teacher_line(t)
    assert np.isfinite(t["test"]["mae"])


def test_cost_of_a_model_that_reads_window_ids(synthetic):
    """The LLM teacher's forward takes the window ids (its prompts carry dates): the cost path
    passes them, and a time budget leaves parts out instead of running long."""
    import torch
    from torch import nn

    from flowdistill.data.windows import WindowConfig, Windows
    from flowdistill.engine.trainer import SupervisedObjective
    from flowdistill.experiments.cost import measure_model

    class NeedsIndex(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = nn.Parameter(torch.ones(1))
            self.seen: list[int] = []

        def forward(self, x, tod, dow, index):
            self.seen.append(len(index))
            return x * self.w

    w = Windows(synthetic, WindowConfig(train_ratio=0.6))
    model = NeedsIndex()
    row = measure_model("needs-index", model, w, SupervisedObjective(), {}, 8, 16, 1, 1)
    assert row["params"] == 1 and row["latency_b1_ms"] > 0 and 64 in model.seen
    slow = measure_model("needs-index", NeedsIndex(), w, SupervisedObjective(), {}, 8, 16, 1, 1,
                         budget_s=0.0)
    assert slow["latency_b64_ms"] is None and any("time budget" in n for n in slow["notes"])


def test_ablation_reading_says_whether_a_gap_beats_the_seeds_spread():
    rows = [
        {"variant": "full", "seeds": 3, "mae": 10.0, "mae_std": 0.1, "paper_mae_change_pct": 0.0},
        # 10.15 - 10.0 = 0.15 < 0.1 + 0.1: worse, but inside the spread
        {"variant": "no-tbl", "seeds": 3, "mae": 10.15, "mae_std": 0.1,
         "paper_mae_change_pct": 5.3},
        # 10.5 - 10.0 = 0.5 > 0.1 + 0.2: a real gap
        {"variant": "no-ib", "seeds": 3, "mae": 10.5, "mae_std": 0.2},
        {"variant": "no-spatial", "seeds": 3, "mae": 9.5, "mae_std": 0.1},
    ]
    lines = _reading_ablation({"rows": rows})
    assert lines[0] == ("no-tbl worse than the full model (MAE): **yes** (10.150 vs 10.000, "
                        "+1.5 %; within the seeds' spread); paper: **yes**")
    assert lines[1].endswith("(10.500 vs 10.000, +5.0 %; beyond the seeds' spread)")
    assert lines[2].startswith("no-spatial worse than the full model (MAE): **no** (9.500 vs 10.000, "
                               "-5.0 %;")
    # one seed: no spread to speak of
    one = [dict(r, seeds=1, mae_std=0.0) for r in rows[:2]]
    assert "spread" not in _reading_ablation({"rows": one})[0]


def test_ratio_reading_names_the_runner_up_and_the_spread():
    rows = [
        {"model": "flowdistill", "ratio": 0.1, "seeds": 3, "mae": 4.326, "mae_std": 0.043},
        {"model": "stid", "ratio": 0.1, "seeds": 3, "mae": 4.334, "mae_std": 0.035},
        {"model": "ha", "ratio": 0.1, "seeds": 3, "mae": 5.681, "mae_std": 0.0},
        {"model": "flowdistill", "ratio": 0.2, "seeds": 3, "mae": 12.0, "mae_std": 0.1},
        {"model": "stid", "ratio": 0.2, "seeds": 3, "mae": 11.5, "mae_std": 0.1},
    ]
    lines = _reading_ratios({"rows": rows})
    assert lines == [
        "FlowDistill lowest MAE at 10%: **yes** (4.326 vs stid 4.334; within the seeds' spread)",
        "FlowDistill lowest MAE at 20%: **no** (12.000 vs stid 11.500; beyond the seeds' spread)",
    ]


def test_season_note_only_when_the_historical_average_worsens_with_more_data():
    # bike 2019: HA trained on January-February matches the December test better than on summer
    note = season_note({0.1: 5.681, 0.2: 5.592, 0.7: 9.422})
    assert "rises from 5.681 at 10 % to 9.422 at 70 %" in note
    assert "compare the models within a column" in note
    assert season_note({0.1: 18.916, 0.7: 16.604}) == ""  # taxi: more data, lower error
    assert season_note({0.1: 5.0}) == ""  # one ratio: nothing to compare
    rows = [
        {"model": "flowdistill", "ratio": 0.1, "seeds": 3, "mae": 4.3, "mae_std": 0.0},
        {"model": "ha", "ratio": 0.1, "seeds": 3, "mae": 5.681, "mae_std": 0.0},
        {"model": "ha", "ratio": 0.4, "seeds": 3, "mae": 6.884, "mae_std": 0.0},
    ]
    assert _reading_ratios({"rows": rows})[-1].startswith(
        "The test period is fixed while the training slots grow")


def test_time_left_scales_the_kept_cells_by_the_ratio():
    def cell(seed: int, seconds: float) -> dict:
        return {"config": {"run": {"seed": seed}}, "fit": {"seconds": seconds}}

    cells = {("stid", 0.1): [cell(0, 100.0), cell(1, 200.0)]}
    missing, seconds, untimed = time_left(cells, seeds=(0, 1, 2))
    # stid: 0.1 seed 2 (150 s), then 3 seeds at 0.2, 0.3, 0.4, 0.7 (150 s scaled by r / 0.1)
    assert seconds == pytest.approx(150 + 3 * (300 + 450 + 600 + 1050))
    others = [m for m in DEFAULT_MODELS if m != "stid"]
    assert missing == 1 + 12 + 15 * len(others)
    assert untimed == sorted(others)  # no kept cell, no estimate: named, not guessed
    # a cell trained on a GPU counts as done, but its seconds do not time the CPU's cells
    gpu = {"config": {"run": {"seed": 2, "train": {"device": "cuda"}}}, "fit": {"seconds": 1.0}}
    cells[("stid", 0.1)].append(gpu)
    missing2, seconds2, _ = time_left(cells, seeds=(0, 1, 2))
    assert missing2 == missing - 1 and seconds2 == pytest.approx(seconds - 150)


def test_horizon_and_volume_readings_count_wins_beyond_the_spread():
    def row(model: str, key: str, k: int, mae: float, std: float, seeds: int = 3) -> dict:
        return {"model": model, key: k, "seeds": seeds, "mae": mae, "mae_std": std}

    rows = [
        row("flowdistill", "step", 1, 10.0, 0.1), row("stid", "step", 1, 10.5, 0.1),  # beyond
        row("flowdistill", "step", 2, 11.0, 0.2), row("stid", "step", 2, 11.1, 0.2),  # within
        row("flowdistill", "step", 3, 12.5, 0.1), row("stid", "step", 3, 12.0, 0.1),  # lost
    ]
    assert _reading_horizons({"rows": rows}) == [
        "FlowDistill lowest MAE at 2 of 3 horizon steps (beyond the seeds' spread at 1)"]
    one = [dict(r, seeds=1, mae_std=0.0) for r in rows]
    assert _reading_horizons({"rows": one}) == ["FlowDistill lowest MAE at 2 of 3 horizon steps"]
    vol = [dict(r, bucket=r.pop("step")) for r in rows]
    assert _reading_volume({"rows": vol}) == [
        "FlowDistill lowest MAE in 2 of 3 volume buckets (beyond the seeds' spread in 1)",
        # gaps: 0.5 in the quietest, -0.5 in the busiest
        "FlowDistill's MAE advantage over the best other model larger in the busiest bucket "
        "than in the quietest: **no**"]


def test_scalability_facts_say_untrained_not_a_protocol():
    """Cost of untrained architectures: no training line, no teacher, no distillation note."""
    from flowdistill.experiments.report import table_facts

    meta = {"experiment": "scalability", "quick": False, "preset": "full", "device": "cpu",
            "dataset": "nyc-taxi-manhattan", "seeds": [0], "epochs": 100, "patience": 15,
            "teacher": {"kind": "none", "description": "none",
                        "kd_baselines": "easyst distil from astgcn trained at each run's own "
                                        "ratio and seed"},
            "provenance": {"created": "2026-12-04", "git": "abc1234", "machine": "m"}}
    text = table_facts(meta)
    assert "untrained models on cpu" in text and "dataset nyc-taxi-manhattan" in text
    assert "FULL protocol" not in text and "distil from" not in text
    assert "teacher of the FlowDistill student" not in text
    assert "git abc1234" in text
    meta["experiment"] = "ratios"
    text = table_facts(meta)
    assert "FULL protocol" in text and "distil from astgcn" in text


def test_a_table_names_the_cells_trained_on_a_gpu():
    from flowdistill.experiments.common import RunKey, _gpu_cells
    from flowdistill.experiments.report import table_facts

    def run(device: str, machine: str) -> dict:
        return {"config": {"run": {"train": {"device": device}}}, "machine": machine}

    runs = {RunKey("stid", 0.2, 0): run("cpu", "cpu box"),
            RunKey("bigst", 0.2, 1): run("cuda", "gpu box, NVIDIA H200")}
    assert _gpu_cells({RunKey("stid", 0.2, 0): run("cpu", "cpu box")}) == {}
    meta = {"experiment": "ratios", "quick": False, "preset": "full", "dataset": "d",
            "seeds": [0, 1], "epochs": 100, "patience": 15, "teacher": None,
            "provenance": {"created": "x", "git": "abc", "machine": "cpu box"},
            **_gpu_cells(runs)}
    assert meta["gpu_cells"] == [["bigst", 0.2, 1]]
    assert "trained on a GPU (gpu box, NVIDIA H200), same code and protocol: bigst 20 % s1" \
        in table_facts(meta)


def test_efficiency_so_far_answers_only_from_complete_columns():
    from flowdistill.experiments.report import efficiency_so_far

    def col(maes: list[float]) -> list[dict]:
        return [{"config": {"run": {"seed": s}}, "test": {"mae": m}} for s, m in enumerate(maes)]

    cells = {("flowdistill", 0.1): col([12.0, 12.2, 12.1])}  # bar 12.1
    cells[("stid", 0.1)] = col([12.6, 12.5, 12.7])
    cells[("stid", 0.2)] = col([12.2, 12.2, 12.2])
    cells[("stid", 0.3)] = col([12.0, 12.1, 12.2])  # mean 12.1: at the bar counts
    cells[("bigst", 0.1)] = col([13.0, 13.0, 13.0])
    cells[("bigst", 0.2)] = col([11.0, 11.0])  # two seeds: not known yet, though below the bar
    for r in (0.1, 0.2, 0.3, 0.4, 0.7):
        cells[("ha", r)] = col([18.0, 18.0, 18.0])
    lines = efficiency_so_far(cells)
    assert lines[0] == "FlowDistill at 10 %: 12.100 (mean of seeds 0, 1, 2)"
    assert "stid: reaches it at 30 % (12.100)" in lines
    assert "bigst: not known yet (20 % incomplete)" in lines
    assert "stwa: not known yet (10 % incomplete)" in lines
    assert "ha: not reached at any planned ratio" in lines
    # FlowDistill's own 10 % column incomplete: nothing to compare with
    del cells[("flowdistill", 0.1)][2]
    assert efficiency_so_far(cells) == []


def test_the_teacher_is_kept_only_where_validation_says_it_helps():
    from flowdistill.experiments.report import picked_by_validation

    def run(seed: int, val: float, test: float, teacher: bool) -> dict:
        return {"config": {"run": {"seed": seed}}, "val": {"mae": val}, "test": {"mae": test},
                "teacher": {"fingerprint": "f"} if teacher else None}

    cells = {
        ("flowdistill", 0.1): [run(0, 10.1, 12.1, True), run(1, 10.2, 12.2, True)],
        ("flowdistill@no-teacher", 0.1): [run(0, 10.3, 12.0, False), run(1, 10.1, 12.5, False)],
        ("flowdistill", 0.4): [run(0, 9.5, 11.8, True), run(1, 9.4, 11.7, True)],
        ("flowdistill@no-teacher", 0.4): [run(0, 9.1, 11.9, False)],  # seed 1 missing
    }
    picked = picked_by_validation(cells)
    # by validation, never by test: 10 % seed 0 keeps the teacher though its control tests lower
    assert [x["test"]["mae"] for x in picked[0.1]] == [12.1, 12.5]
    assert [x["test"]["mae"] for x in picked[0.4]] == [11.9]  # seed 1 has no control: left out
    assert picked_by_validation({("flowdistill", 0.1): cells[("flowdistill", 0.1)]}) == {}


def _cell(folder, name: str, seed: int, mae: float, epochs: int = 100) -> None:
    path = folder / "cells" / name / "r0.1" / f"s{seed}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({
        "model": name, "test": {"mae": mae, "rmse": 2 * mae}, "val": {"mae": mae},
        "teacher": {"model": "llm-teacher-seeds(0,1,2)", "test": {"mae": 11.5}},
        "config": {"run": {"train_ratio": 0.1, "seed": seed,
                           "train": {"max_epochs": epochs, "patience": 15}}}}))


def test_report_sets_the_kept_cells_beside_the_frozen_headline(tmp_path):
    from flowdistill.experiments.report import headline_cells_note

    results = tmp_path / "results"
    folder = results / "nyc-taxi-manhattan"
    results.mkdir(parents=True)
    (results / "headline.json").write_text(json.dumps({
        "git": "abc", "created": "2026-01-01", "machine": "m", "dataset": "nyc-taxi-manhattan",
        "train_ratio": 0.1, "seeds": [0, 1], "epochs": 100, "patience": 15,
        "student_trained_on": "taxi", "verdict": {}, "summary": []}))
    for seed, (fd, ctl) in enumerate([(10.0, 11.0), (12.0, 13.0)]):
        _cell(folder, "flowdistill", seed, fd)
        _cell(folder, "flowdistill@no-teacher", seed, ctl)
    _cell(folder, "stid", 0, 12.0)
    assert headline_cells_note([results]) == ""  # STID's seed 1 not kept yet
    _cell(folder, "stid", 1, 14.0, epochs=6)  # a smoke run does not count
    assert headline_cells_note([results]) == ""
    _cell(folder, "stid", 1, 14.0)
    note = headline_cells_note([results])
    assert "nyc-taxi-manhattan, 10 %, seeds 0, 1" in note
    assert "FlowDistill 11.000 ± 1.414" in note and "STID 13.000 ± 1.414" in note
    assert "without a teacher 12.000 ± 1.414" in note and "strict" not in note
    assert "its own test MAE 11.500" in note
    for seed in (0, 1):
        _cell(folder, "flowdistill-strict-teacher", seed, 12.5)
    assert "strict teacher (tuned on no target slot beyond the student's) 12.500 ± 0.000" in \
        headline_cells_note([results])
    doc = tmp_path / "results.md"
    build_report([results], doc)
    text = doc.read_text()
    assert text.index(END) < text.index("The sweep's kept cells") < text.index("## Claims")


def test_cells_name_the_cpu_they_trained_on(monkeypatch):
    # a lent machine changes CPU between sessions: a cell's seconds need the CPU model beside them
    from flowdistill.experiments import runs

    monkeypatch.setattr(runs, "_cpuinfo", lambda: "processor\t: 0\nmodel name\t: Test CPU 9000\n")
    assert runs.cpu_model() == "Test CPU 9000"
    assert "Test CPU 9000, " in runs.provenance()["machine"]
    monkeypatch.setattr(runs, "_cpuinfo", lambda: "")  # no /proc/cpuinfo: what platform says
    assert runs.cpu_model()
