"""The headline table's arithmetic, its section of results.md, and the no-teacher control run."""

from __future__ import annotations

from dataclasses import replace

import pytest

from flowdistill.experiments.headline import render, summarise, verdict, write_section
from flowdistill.losses.distill import DistillConfig


def rows():
    out = []
    for seed, (stid, fd, nt) in enumerate([(12.0, 11.0, 12.5), (12.2, 11.2, 12.3), (12.4, 11.4, 12.4)]):
        out += [{"model": "stid", "seed": seed, "mae": stid, "rmse": 2 * stid},
                {"model": "flowdistill", "seed": seed, "mae": fd, "rmse": 2 * fd},
                {"model": "flowdistill-no-teacher", "seed": seed, "mae": nt, "rmse": 2 * nt},
                {"model": "teacher-llm", "seed": seed, "mae": 10.0, "rmse": 20.0}]
    return out


def test_summary_is_mean_and_sample_std_over_seeds():
    s = {x["model"]: x for x in summarise(rows())}
    assert s["stid"]["mae"] == pytest.approx(12.2)
    assert s["stid"]["mae_std"] == pytest.approx(0.2)  # sample std of 12.0, 12.2, 12.4
    assert s["flowdistill"]["n"] == 3
    assert [x["model"] for x in summarise(rows())] == [
        "teacher-llm", "stid", "flowdistill-no-teacher", "flowdistill"]


def test_verdict_applies_the_two_percent_bar():
    v = verdict(summarise(rows()))
    assert v["vs_stid_pct"] == pytest.approx(100 * (12.2 - 11.2) / 12.2)
    assert v["vs_no_teacher_pct"] == pytest.approx(100 * (12.4 - 11.2) / 12.4)
    assert v["student_wins"] and v["teacher_at_or_below_stid"]
    close = [dict(r, mae=r["mae"] * (1.1 if r["model"] == "flowdistill" else 1.0)) for r in rows()]
    assert not verdict(summarise(close))["student_wins"]  # 12.32 vs STID 12.2


def test_section_is_replaced_between_markers(tmp_path):
    doc = {"git": "abc", "created": "now", "machine": "x86_64", "dataset": "d", "train_ratio": 0.1,
           "seeds": [0, 1, 2], "epochs": 100, "patience": 15, "summary": summarise(rows()),
           "student_trained_on": "d: first 10 %", "verdict": verdict(summarise(rows())),
           "teacher": {"name": "teacher-llm", "trained_on": "t", "train_windows": 5,
                       "backbone": "b", "layers": 1, "train_steps": 2, "batch_size": 16,
                       "device": "cpu", "threads": 1, "cpu_hours": 0.5}}
    path = tmp_path / "results.md"
    path.write_text("# Results\n\nolder text\n")
    write_section(path, render(doc))
    first = path.read_text()
    assert first.startswith("# Results") and "older text" in first
    assert "| STID | 3 | 12.200 ± 0.200 |" in first
    write_section(path, render(dict(doc, git="def")))
    second = path.read_text()
    assert second.count("## Headline") == 1 and "git def" in second and "older text" in second


def test_without_teacher_needs_no_teacher_and_keeps_the_rest():
    cfg = DistillConfig()
    assert cfg.needs_teacher
    nt = cfg.without_teacher()
    assert not nt.needs_teacher
    assert (nt.lambda_kl, nt.lambda_spa, nt.lambda_tem) == (cfg.lambda_kl, cfg.lambda_spa,
                                                            cfg.lambda_tem)
    assert nt.spa_reference == "truth" and not nt.use_tbl
    assert not replace(cfg, use_tbl=False, use_spatial=False).needs_teacher


def test_teacher_seeds_add_one_plan_each_and_a_render_line():
    from flowdistill.experiments.headline import HeadlineConfig, _other_seed

    cfg = HeadlineConfig(teacher_seeds=(0, 1, 2))
    names = [(p.name, p.seed) for p in cfg.plans()]
    assert names == [("teacher-llm", 0), ("teacher-llm-s1", 1), ("teacher-llm-s2", 2),
                     ("teacher-llm-strict", 0)]
    assert _other_seed("teacher-llm-s1") and not _other_seed("teacher-llm-strict")
    assert [p.name for p in HeadlineConfig().plans()] == ["teacher-llm", "teacher-llm-strict"]
    teacher = {"name": "teacher-llm", "trained_on": "t", "train_windows": 5, "backbone": "b",
               "layers": 1, "train_steps": 2, "batch_size": 16, "device": "cpu", "threads": 1,
               "cpu_hours": 0.5}
    doc = {"git": "abc", "created": "now", "machine": "x86_64", "dataset": "d", "train_ratio": 0.1,
           "seeds": [0, 1, 2], "epochs": 100, "patience": 15, "summary": summarise(rows()),
           "student_trained_on": "d", "verdict": verdict(summarise(rows())), "teacher": teacher,
           "other_teacher_seeds": [dict(teacher, seed=1, cpu_hours=1.25),
                                   dict(teacher, seed=2, cpu_hours=1.5)]}
    text = render(doc)
    assert "teacher-llm seeds 1, 2" in text and "(1.25, 1.50 CPU-hours)" in text
    assert "| LLM teacher (wide: taxi slots before validation + Citi Bike) | 3 | 10.000" in text


def test_the_seed_mean_student_gets_its_own_verdict_and_row():
    extra = [{"model": "flowdistill-llm-mean", "seed": s, "mae": m, "rmse": 2 * m}
             for s, m in enumerate([11.8, 11.9, 12.0])]
    summary = summarise(rows() + extra)
    assert [x["model"] for x in summary][-1] == "flowdistill-llm-mean"
    v = verdict(summary)["flowdistill-llm-mean"]
    assert v["vs_stid_pct"] == pytest.approx(100 * (12.2 - 11.9) / 12.2)
    assert v["vs_no_teacher_pct"] == pytest.approx(100 * (12.4 - 11.9) / 12.4)
    assert v["student_wins"]  # 2.5 % below STID, 4.0 % below the student alone
    worse = [dict(r, mae=r["mae"] + 0.1) for r in extra]  # 12.0: 1.6 % below STID
    assert not verdict(summarise(rows() + worse))["flowdistill-llm-mean"]["student_wins"]


def test_provenance_names_the_revision_of_code_run_outside_a_clone(monkeypatch):
    from flowdistill.experiments.runs import provenance

    monkeypatch.setenv("FLOWDISTILL_GIT_REVISION", "1836d9d")
    p = provenance()
    assert p["git"] == "1836d9d" and "cores" in p["machine"] and "torch thread" in p["machine"]


def test_provenance_names_the_gpu_a_run_trained_on(monkeypatch):
    import torch

    from flowdistill.experiments.runs import provenance

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda d=None: "NVIDIA H200")
    assert provenance("cuda")["machine"].endswith(", NVIDIA H200")
    assert "H200" not in provenance("cpu")["machine"] and "H200" not in provenance()["machine"]
