"""The sweep scripts' plans (`list`): what a long, multi-session sweep relies on."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _plan(*args: str) -> list[str]:
    out = subprocess.run(["bash", "scripts/full_sweep.sh", *args, "list"], cwd=ROOT, check=True,
                         capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if line and not line.startswith("#")]


def test_every_sweep_command_keeps_its_runs_in_the_committed_store():
    lines = _plan("nyc-bike-manhattan", "t.npz")
    runs = [x for x in lines if "bench report" not in x]
    assert len(runs) == 12  # parts 1-6 + the six part-7 experiments
    # the student's part and the published ratio table carry its no-teacher control
    assert [x for x in runs if "--control" in x] == [runs[1], runs[6]]
    assert "--models flowdistill --control --outgrown" in runs[1] and "--no-publish" not in runs[6]
    assert [x for x in runs if "--outgrown" in x] == [runs[1], runs[6]]  # and the switched row
    assert all("--store docs/results/nyc-bike-manhattan/cells" in x for x in runs)
    assert all("--teacher t.npz" in x and "--threads 1" in x for x in runs)


def test_baseline_parts_run_before_any_teacher_file_exists():
    lines = _plan("nyc-taxi-manhattan", "-")
    assert lines and not any("--teacher" in x for x in lines)


def test_unknown_part_and_dataset_are_refused():
    bad = subprocess.run(["bash", "scripts/full_sweep.sh", "nyc-taxi-manhattan", "-", "9"],
                         cwd=ROOT, capture_output=True, text=True)
    assert bad.returncode != 0 and "unknown part" in bad.stderr
    bad = subprocess.run(["bash", "scripts/full_teachers.sh", "chicago"], cwd=ROOT,
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "no teacher recipe" in bad.stderr
    bad = subprocess.run(["bash", "scripts/full_teachers.sh", "nyc-taxi-manhattan"], cwd=ROOT,
                         capture_output=True, text=True,
                         env={**os.environ, "FLOWDISTILL_TEACHER_RECIPE": "huge"})
    assert bad.returncode == 2 and "unknown teacher recipe huge" in bad.stderr


def _fine_tune_command(tmp_path: Path, recipe: str, dataset: str) -> str:
    """The `teacher train` line full_teachers.sh runs for seed 0 of ``recipe`` (RUN=echo prints
    the command instead of running it; nothing is kept outside ``tmp_path``)."""
    env = {**os.environ, "FLOWDISTILL_TEACHER_RECIPE": recipe, "RUN": "echo",
           "FLOWDISTILL_TEACHER_KEEP": str(tmp_path / "keep"),
           "FLOWDISTILL_SWEEP_DIR": str(tmp_path / "runs")}
    out = subprocess.run(["bash", "scripts/full_teachers.sh", dataset, "0"], cwd=ROOT,
                         capture_output=True, text=True, env=env)
    return next(x for x in out.stdout.splitlines() if "teacher train" in x)


def test_strict_teacher_recipe_tunes_on_the_students_slots_only(tmp_path):
    """The strict recipe's fine-tune: the student's own target slots (drawn 8 times), decayed rate,
    its own file names (RUN=echo prints the command instead of running it)."""
    line = _fine_tune_command(tmp_path, "strict-decay", "nyc-taxi-manhattan")
    assert "--pool train" in line and "--target-repeat 8" in line and "--lr-decay 0.5" in line
    assert "--extra nyc-bike-manhattan" in line
    assert "nyc-taxi-manhattan-strict-decay-s0" in line


@pytest.mark.parametrize("recipe, layers", [("wide-decay", "1"), ("wide-decay-2l", "2")])
def test_two_block_recipe_is_the_decayed_wide_recipe_with_two_llm_blocks(tmp_path, recipe, layers):
    line = _fine_tune_command(tmp_path, recipe, "nyc-bike-manhattan")
    assert f"--layers {layers} " in line and "--pool val" in line and "--lr-decay 0.5" in line
    assert "--extra nyc-taxi-manhattan" in line and "--target-repeat" not in line
    tag = "-decay-2l" if layers == "2" else "-decay"
    assert f"nyc-bike-manhattan{tag}-s0 " in line


def test_strict_two_block_recipe_is_the_strict_recipe_with_two_llm_blocks(tmp_path):
    line = _fine_tune_command(tmp_path, "strict-decay-2l", "nyc-taxi-manhattan")
    assert "--layers 2 " in line and "--pool train" in line and "--target-repeat 8" in line
    assert "nyc-taxi-manhattan-strict-decay-2l-s0 " in line


def test_full_strict_refuses_a_recipe_that_is_not_strict():
    bad = subprocess.run(["bash", "scripts/full_strict.sh", "nyc-taxi-manhattan"], cwd=ROOT,
                         capture_output=True, text=True,
                         env={**os.environ, "FLOWDISTILL_TEACHER_RECIPE": "wide-decay"})
    assert bad.returncode == 2 and "strict-decay or strict-decay-2l" in bad.stderr


def test_sweep_ratios_can_be_narrowed_to_one_column():
    env = {**os.environ, "FLOWDISTILL_SWEEP_RATIOS": "0.1"}
    out = subprocess.run(["bash", "scripts/full_sweep.sh", "nyc-taxi-manhattan", "-", "list"],
                         cwd=ROOT, check=True, capture_output=True, text=True, env=env).stdout
    runs = [x for x in out.splitlines() if "bench ratios" in x]
    assert runs and all("--ratios 0.1 " in x for x in runs)
    env["FLOWDISTILL_SWEEP_RATIOS"] = "ten"
    bad = subprocess.run(["bash", "scripts/full_sweep.sh", "nyc-taxi-manhattan", "-", "list"],
                         cwd=ROOT, capture_output=True, text=True, env=env)
    assert bad.returncode == 2 and "FLOWDISTILL_SWEEP_RATIOS" in bad.stderr


def test_cross_fit_recipe_tunes_each_fold_without_its_block(tmp_path):
    """Each fold teacher: the strict recipe less its block, the target's share kept (8·K/(K-1))."""
    env = {**os.environ, "RUN": "echo", "FLOWDISTILL_TEACHER_KEEP": str(tmp_path / "keep"),
           "FLOWDISTILL_SWEEP_DIR": str(tmp_path / "runs")}
    out = subprocess.run(["bash", "scripts/full_crossfit.sh", "nyc-bike-manhattan", "3", "0", "2"],
                         cwd=ROOT, capture_output=True, text=True, env=env)
    # (RUN=echo trains nothing, so the script stops where it copies the weights)
    lines = [x for x in out.stdout.splitlines() if "teacher train" in x]
    assert len(lines) == 1  # FOLD given: only that fold
    line = lines[0]
    assert "--pool train --holdout 2/3 --target-repeat 12" in line
    assert "--extra nyc-taxi-manhattan" in line and "--lr-decay 0.5" in line
    assert "nyc-bike-manhattan-crossfit3-f2-s0" in line
    assert "--splits train,val,test" in (ROOT / "scripts/full_crossfit.sh").read_text()
    bad = subprocess.run(["bash", "scripts/full_crossfit.sh", "nyc-taxi-manhattan", "1"], cwd=ROOT,
                         capture_output=True, text=True, env=env)
    assert bad.returncode == 2 and "FOLDS" in bad.stderr


def _student_from_teacher(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "RUN": "echo", "FLOWDISTILL_SWEEP_DIR": str(tmp_path / "runs"),
           "FLOWDISTILL_RESULTS_DIR": str(tmp_path / "results")}
    return subprocess.run(["bash", "scripts/student_from_teacher.sh", *args], cwd=ROOT,
                          capture_output=True, text=True, env=env)


def test_student_from_a_teacher_file_trains_at_ten_percent_in_its_own_folder(tmp_path):
    teacher = tmp_path / "t.npz"
    teacher.write_bytes(b"")
    kept = tmp_path / "results/nyc-taxi-manhattan/cells/flowdistill-2l-teacher/r0.1"
    kept.mkdir(parents=True)
    (kept / "s1.json").write_text("{}")  # a cell an earlier session kept is handed to the run
    out = _student_from_teacher(tmp_path, "nyc-taxi-manhattan", str(teacher),
                                "flowdistill-2l-teacher", "0 1")
    assert out.returncode == 0, out.stderr
    line = next(x for x in out.stdout.splitlines() if "bench ratios" in x)
    runs = tmp_path / "runs/nyc-taxi-manhattan-2l-teacher"
    assert f"--out {runs} " in line and f"--teacher {teacher} " in line
    assert "--ratios 0.1 --seeds 0,1 --models flowdistill --no-publish" in line
    assert (runs / "cells/flowdistill/r0.1/s1.json").exists()


def test_student_from_a_teacher_file_refuses_a_missing_file_and_a_bad_row(tmp_path):
    out = _student_from_teacher(tmp_path, "nyc-taxi-manhattan", str(tmp_path / "no.npz"), "x")
    assert out.returncode == 2 and "no teacher file" in out.stderr
    (tmp_path / "t.npz").write_bytes(b"")
    out = _student_from_teacher(tmp_path, "nyc-taxi-manhattan", str(tmp_path / "t.npz"), "../up")
    assert out.returncode == 2 and "row name" in out.stderr
    assert not (tmp_path / "runs").exists()
