"""Issue 11: every mistake gets a one- or two-line answer (exit 2), Ctrl-C is 130 with how to resume,
and no command overwrites or silently resumes a run. Through the real entry path: ``run_guarded``
in-process (what ``flowdistill`` calls) or ``python -m flowdistill`` in a subprocess."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import make_synthetic

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--train-ratio", "0.6", "--epochs", "2", "--patience", "5", "--batch-size", "64",
        "--quiet", "--threads", "1"]


@pytest.fixture()
def syn(tmp_path) -> Path:
    return make_synthetic(days=12, regions=4).save(tmp_path / "syn.npz")


@pytest.fixture(autouse=True)
def _keep_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def cli(capsys, *args: str) -> tuple[int, str, list[str]]:
    """The console entry in-process: exit code, stdout, non-empty stderr lines."""
    from flowdistill.cli import app
    from flowdistill.cli.common import run_guarded

    code = run_guarded(app, [str(a) for a in args])
    cap = capsys.readouterr()
    return code, cap.out, [ln for ln in cap.err.splitlines() if ln.strip()]


def subprocess_cli(*args: str, env: dict | None = None, timeout: int = 180):
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    full_env.pop("TQDM_DISABLE", None)
    return subprocess.run([sys.executable, "-m", "flowdistill", *map(str, args)],
                          capture_output=True, text=True, cwd=ROOT, env=full_env, timeout=timeout)


def assert_usage_error(code: int, err: list[str], *words: str) -> None:
    assert code == 2, err
    assert 1 <= len(err) <= 2, err
    assert err[0].startswith("error:"), err
    text = " ".join(err)
    assert "Traceback" not in text
    for w in words:
        assert w in text, (w, err)


# ------------------------------------------------------------------------------ usage mistakes
def test_unknown_option_and_command_through_the_console(tmp_path):
    proc = subprocess_cli("train", "--model", "stid", "--out", tmp_path / "o", "--bogus")
    err = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert_usage_error(proc.returncode, err, "--bogus", "flowdistill train --help")
    proc = subprocess_cli("trian")
    err = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert_usage_error(proc.returncode, err, "trian", "Did you mean 'train'")


def test_debug_shows_the_traceback():
    proc = subprocess_cli("--debug", "train", "--bogus")
    assert proc.returncode != 0 and "Traceback" in proc.stderr


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["train", "--model", "stid", "--out", "o", "--epochs", "0"], ["--epochs", "1"]),
        (["train", "--model", "stid", "--out", "o", "--epochs", "many"], ["--epochs"]),
        (["train", "--out", "o"], ["--model"]),
        (["train", "--model", "stid", "--out", "o", "--train-ratio", "1.5"], ["--train-ratio"]),
        (["distill", "--teacher", "t.npz", "--out", "o", "--patience", "0"], ["--patience"]),
        (["train", "--model", "stid", "--out", "o", "--device", "gpu"], ["--device", "cpu"]),
        (["train", "--model", "stid", "--out", "o", "--device", "cuda:99"], ["--device"]),
        (["train", "--model", "stid", "--out", "o", "--threads", "0"], ["--threads"]),
        (["bench", "ratios", "--out", "o", "--threads", "0"], ["--threads"]),
        (["teacher", "predict", "--model", "m", "--out", "t.npz", "--device", "tpu"], ["--device"]),
        (["bench", "ratios", "--out", "o", "--device", "cuda:99"], ["--device"]),
    ],
)
def test_bad_values_are_usage_errors(capsys, tmp_path, monkeypatch, args, words):
    monkeypatch.chdir(tmp_path)
    code, _, err = cli(capsys, *args)
    assert_usage_error(code, err, *words)
    assert not (tmp_path / "o").exists()


def test_cuda_without_gpu(capsys, tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU (cuda:99 covers the impossible device)")
    code, _, err = cli(capsys, "train", "--model", "stid", "--out", tmp_path / "o",
                       "--device", "cuda")
    assert_usage_error(code, err, "no GPU", "--device cpu")


def test_out_naming_a_file(capsys, tmp_path, syn):
    code, _, err = cli(capsys, "train", "--model", "stid", "--dataset", syn, "--out", syn, *TINY)
    assert_usage_error(code, err, "existing file", "folder")


def test_unreadable_save_teacher_folder_is_refused_before_training(capsys, tmp_path, syn):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code, _, err = cli(capsys, "train", "--model", "stid", "--dataset", syn, "--out",
                       tmp_path / "run", "--save-teacher", blocker / "t.npz", *TINY)
    assert_usage_error(code, err, "is a file")
    assert ".tmp" not in " ".join(err)
    assert not (tmp_path / "run" / "checkpoints" / "last.pt").exists()


def test_existing_save_teacher_file_is_refused(capsys, tmp_path, syn):
    (tmp_path / "t.npz").write_text("mine")
    code, _, err = cli(capsys, "train", "--model", "stid", "--dataset", syn, "--out",
                       tmp_path / "run", "--save-teacher", tmp_path / "t.npz", *TINY)
    assert_usage_error(code, err, "t.npz", "--force")
    assert (tmp_path / "t.npz").read_text() == "mine"


# ------------------------------------------------------------------------------ overwrite / resume
def test_finished_run_is_refused_then_forced(capsys, tmp_path, syn):
    out = tmp_path / "run"
    code, _, err = cli(capsys, "train", "--model", "stid", "--dataset", syn, "--out", out, *TINY)
    assert code == 0, err
    first = (out / "metrics.json").read_text()
    code, _, err = cli(capsys, "train", "--model", "stid", "--dataset", syn, "--out", out, *TINY)
    assert_usage_error(code, err, "finished run", "--force")
    assert (out / "metrics.json").read_text() == first
    code, _, err = cli(capsys, "train", "--model", "stid", "--dataset", syn, "--out", out, *TINY,
                       "--force", "--seed", "1")
    assert code == 0, err
    assert json.loads((out / "metrics.json").read_text())["config"]["run"]["seed"] == 1


def _interrupted_after_first_epoch(out: Path, syn: Path, capsys, monkeypatch) -> None:
    """Ctrl-C right after the first epoch's checkpoint (in-process, through the real entry)."""
    from flowdistill.engine.trainer import Trainer

    save = Trainer._save_checkpoint

    def save_then_interrupt(self, ckpt_dir, model, opt, sched, epoch, *rest):
        save(self, ckpt_dir, model, opt, sched, epoch, *rest)
        if epoch == 0:
            raise KeyboardInterrupt

    monkeypatch.setattr(Trainer, "_save_checkpoint", save_then_interrupt)
    code, _, err = cli(capsys, "train", "--model", "stid", "--dataset", syn, "--out", out, *TINY)
    monkeypatch.setattr(Trainer, "_save_checkpoint", save)
    assert code == 130, err
    assert "1 epochs done" in err[0] and "--resume" in err[1], err
    assert not (out / "metrics.json").exists()


def test_unfinished_run_needs_resume(capsys, tmp_path, syn, monkeypatch):
    out = tmp_path / "run"
    _interrupted_after_first_epoch(out, syn, capsys, monkeypatch)
    code, _, err = cli(capsys, "train", "--model", "stid", "--dataset", syn, "--out", out, *TINY)
    assert_usage_error(code, err, "unfinished run", "epoch 1", "--resume", "--force")
    code, _, err = cli(capsys, "train", "--model", "stid", "--dataset", syn, "--out", out, *TINY,
                       "--lr", "0.01", "--seed", "3", "--resume")
    assert_usage_error(code, err, "other settings", "train.lr", "seed")
    code, _, err = cli(capsys, "train", "--model", "stid", "--dataset", syn, "--out", out, *TINY,
                       "--resume")
    assert code == 0, err
    assert any("resuming" in ln and "from epoch 2 of 2" in ln for ln in err), err
    assert json.loads((out / "metrics.json").read_text())["fit"]["epochs_run"] == 2
    # finished: --resume with the same budget has nothing to do; with a larger one it trains on
    code, _, err = cli(capsys, "train", "--model", "stid", "--dataset", syn, "--out", out, *TINY,
                       "--resume")
    assert_usage_error(code, err, "finished run", "already trained 2 epochs")
    more = [a if a != "2" else "3" for a in TINY]
    code, _, err = cli(capsys, "train", "--model", "stid", "--dataset", syn, "--out", out, *more,
                       "--resume")
    assert code == 0, err
    assert any("from epoch 3 of 3" in ln and "raised from 2" in ln for ln in err), err
    assert json.loads((out / "metrics.json").read_text())["fit"]["epochs_run"] == 3


def test_data_build_does_not_overwrite(capsys, tmp_path):
    src = tmp_path / "flows.npy"
    np.save(src, np.ones((48 * 3, 2, 2), dtype=np.float32))
    args = ["data", "build", "tensor", src, "--layout", "TNC", "--start", "2022-01-01",
            "--interval", "30", "--out", tmp_path / "d.npz"]
    assert cli(capsys, *args)[0] == 0
    code, _, err = cli(capsys, *args)
    assert_usage_error(code, err, "d.npz", "already exists", "--force")
    assert cli(capsys, *args, "--force")[0] == 0


# ------------------------------------------------------------------------------ teacher files
def _teacher(syn: Path, ratio: float, split: str, path: Path) -> Path:
    from flowdistill.data.dataset import FlowDataset
    from flowdistill.data.windows import WindowConfig, Windows
    from flowdistill.teacher.file import TeacherPredictions

    w = Windows(FlowDataset.load(syn), WindowConfig(train_ratio=ratio))
    ids = w.ids(split)
    return TeacherPredictions.create(w, ids, w.targets(ids), model="truth").save(path)


STUDENT = ["--epochs", "1", "--batch-size", "64", "--quiet", "--threads", "1",
           "--set", "embed_dim=8", "--set", "bottleneck=16", "--set", "k_r=2"]


def test_teacher_file_for_another_ratio(capsys, tmp_path, syn):
    # Predicted for the training windows at 0.6: covers the student's at 0.5, not those at 0.7.
    tea = _teacher(syn, 0.6, "train", tmp_path / "t.npz")
    code, _, err = cli(capsys, "distill", "--teacher", tea, "--dataset", syn, "--train-ratio",
                       "0.5", "--out", tmp_path / "ok", *STUDENT)
    assert code == 0, err
    code, _, err = cli(capsys, "distill", "--teacher", tea, "--dataset", syn, "--train-ratio",
                       "0.7", "--out", tmp_path / "no", *STUDENT)
    assert_usage_error(code, err, "teacher file", "training ratio 0.6", "train windows",
                       "no prediction")
    assert not (tmp_path / "no" / "metrics.json").exists()


def test_teacher_file_for_another_span(capsys, tmp_path, syn):
    other = make_synthetic(days=14, regions=4).save(tmp_path / "other.npz")
    tea = _teacher(other, 0.6, "all", tmp_path / "t.npz")
    code, _, err = cli(capsys, "distill", "--teacher", tea, "--dataset", syn, "--train-ratio",
                       "0.6", "--out", tmp_path / "no", *STUDENT)
    assert_usage_error(code, err, "made for other data", "end")


# ------------------------------------------------------------------------------ data messages
def test_truncated_csv_says_truncated(capsys, tmp_path, shared_data):
    rows = ["VendorID,tpep_pickup_datetime,tpep_dropoff_datetime,PULocationID,DOLocationID"]
    rows += [f"1,2019-01-01 00:{i:02d}:00,2019-01-01 01:{i:02d}:00,4,12" for i in range(50)]
    text = "\n".join(rows) + "\n"
    for n in (30, len(text) - 20):
        cut = tmp_path / f"yellow_{n}.csv"
        cut.write_text(text[:n])
        code, _, err = cli(capsys, "data", "build", "nyc-tlc", cut, "--data-dir", shared_data,
                           "--out", tmp_path / "o.npz")
        assert_usage_error(code, err, cut.name, "truncated")
        assert "column" not in " ".join(err)
    assert not (tmp_path / "o.npz").exists()


# ------------------------------------------------------------------------------ printing
def test_plain_progress_and_best_epoch_match_metrics(tmp_path, syn):
    out = tmp_path / "run"
    proc = subprocess_cli("train", "--model", "stid", "--dataset", syn, "--out", out,
                          *[a for a in TINY if a != "--quiet"], "--batch-size", "16",
                          env={"FLOWDISTILL_PROGRESS_SECONDS": "0", "COLUMNS": "300"})
    assert proc.returncode == 0, proc.stderr
    assert "\r" not in proc.stderr and "\x1b[" not in proc.stderr
    assert "epoch 1/2: " in proc.stderr and "windows" in proc.stderr  # periodic plain lines
    fit = json.loads((out / "metrics.json").read_text())["fit"]
    assert f"(best epoch {fit['best_epoch']})" in proc.stderr
    best = min(fit["history"], key=lambda r: r["val_mae"])
    assert best["epoch"] == fit["best_epoch"]


def test_historical_average_prints_no_epochs(capsys, tmp_path, syn):
    code, _, err = cli(capsys, "train", "--model", "ha", "--dataset", syn, "--train-ratio", "0.6",
                       "--out", tmp_path / "ha")
    assert code == 0, err
    text = " ".join(err)
    assert "no training needed" in text and "best epoch" not in text and "0 epochs" not in text
    assert json.loads((tmp_path / "ha" / "metrics.json").read_text())["fit"]["best_epoch"] is None


# ------------------------------------------------------------------------------ Ctrl-C
def test_ctrl_c_exits_130_and_keeps_the_checkpoint(tmp_path, syn):
    out = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "flowdistill", "train", "--model", "stid", "--dataset", str(syn),
         "--train-ratio", "0.6", "--epochs", "100000", "--patience", "100000", "--out", str(out),
         "--quiet", "--threads", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env,
    )
    last = out / "checkpoints" / "last.pt"
    deadline = time.time() + 120
    while not last.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    assert last.exists(), proc.stderr.read() if proc.poll() is not None else "no checkpoint"
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert "interrupted" in stderr and "--resume" in stderr and str(last) in stderr
    state = torch.load(last, map_location="cpu", weights_only=False)  # intact
    assert state["epoch"] >= 0
    assert not list(out.rglob("*.tmp"))
    assert not (out / "metrics.json").exists()


# ------------------------------------------------------------------------------ threads
def test_threads_option_sets_torch_threads(capsys, tmp_path, syn):
    from flowdistill.cli.common import free_cores

    assert 1 <= free_cores() <= (os.cpu_count() or 1)
    code, _, err = cli(capsys, "train", "--model", "ha", "--dataset", syn, "--train-ratio", "0.6",
                       "--out", tmp_path / "ha", "--threads", "1")
    assert code == 0, err
    assert torch.get_num_threads() == 1
    assert json.loads((tmp_path / "ha" / "metrics.json").read_text())["machine"].endswith(
        "1 torch thread(s)")


def test_teacher_train_and_predict_refuse_before_loading(capsys, tmp_path):
    model = tmp_path / "llm"
    model.mkdir()
    (model / "teacher.json").write_text("{}")  # a finished teacher folder
    code, _, err = cli(capsys, "teacher", "train", "--out", model, "--threads", "1")
    assert_usage_error(code, err, "finished run", "--force")
    out = tmp_path / "t.npz"
    (tmp_path / "t.npz.parts").mkdir()  # pieces of an interrupted prediction
    code, _, err = cli(capsys, "teacher", "predict", "--model", model, "--out", out,
                       "--threads", "1")
    assert_usage_error(code, err, "interrupted run", "--resume", "--force")
    out.write_text("old")
    code, _, err = cli(capsys, "teacher", "predict", "--model", model, "--out", out,
                       "--threads", "1", "--resume")
    assert_usage_error(code, err, "already exists", "--force")
    assert out.read_text() == "old"


def test_bench_log_gets_plain_lines(tmp_path, shared_data):
    proc = subprocess_cli("bench", "horizons", "--out", tmp_path / "b", "--data-dir", shared_data,
                          "--start", "2019-01-01", "--end", "2019-01-14", "--models", "ha",
                          "--seeds", "0", "--train-ratio", "0.5", "--epochs", "1", "--threads", "1",
                          "--no-publish")
    assert proc.returncode == 0, proc.stderr
    assert "run 1/1 ha r0.5 s0 (training)" in proc.stderr
    assert "\r" not in proc.stderr and "\x1b[" not in proc.stderr


def test_wrong_kind_of_path(capsys, tmp_path, syn):
    folder = tmp_path / "a-folder"
    folder.mkdir()
    code, _, err = cli(capsys, "distill", "--teacher", folder, "--dataset", syn, "--train-ratio",
                       "0.6", "--out", tmp_path / "o", *STUDENT)
    assert_usage_error(code, err, "a-folder")
    src = tmp_path / "flows.npy"
    np.save(src, np.ones((48 * 3, 2, 2), dtype=np.float32))
    code, _, err = cli(capsys, "data", "build", "tensor", src, "--layout", "TNC", "--start",
                       "2022-01-01", "--interval", "30", "--out", folder)
    assert_usage_error(code, err, "a-folder", "file name")


def test_ablation_variants_are_checked_before_any_run(capsys, syn, tmp_path):
    out = tmp_path / "abl"
    code, _, err = cli(capsys, "bench", "horizons", "--out", out, "--variants", "full")
    assert_usage_error(code, err, "--variants", "ablation")
    code, _, err = cli(capsys, "bench", "ablation", "--out", out, "--control")
    assert_usage_error(code, err, "--control", "ratios")
    code, _, err = cli(capsys, "bench", "ablation", "--out", out, "--dataset", syn,
                       "--teacher-model", "stid", "--variants", "full,no-such")
    assert_usage_error(code, err, "variants", "no-teacher")
    assert not (out / "runs").exists()


def test_a_student_below_its_teacher_on_validation_is_told_so():
    from flowdistill.cli.training import outgrown_teacher

    run = {"model": "flowdistill", "val": {"mae": 9.06}, "teacher": {"val": {"mae": 10.279}}}
    assert "below its teacher's (10.279)" in outgrown_teacher(run)
    assert "--no-teacher" in outgrown_teacher(run)
    assert outgrown_teacher({**run, "val": {"mae": 10.5}}) == ""  # the teacher still knows more
    assert outgrown_teacher({**run, "teacher": {"test": {"mae": 1.0}}}) == ""  # no val score
    assert outgrown_teacher({**run, "teacher": None}) == ""  # the control: no teacher
    assert outgrown_teacher({**run, "model": "easyst"}) == ""


def test_check_teacher_trains_both_and_keeps_the_lower_validation(capsys, tmp_path, syn):
    t = tmp_path / "t.npz"
    code, _, err = cli(capsys, "train", "--model", "ha", "--dataset", syn, "--out",
                       tmp_path / "ha", "--save-teacher", t, *TINY)
    assert code == 0, err
    out = tmp_path / "check"
    code, _, err = cli(capsys, "distill", "--check-teacher", "--out", out, "--dataset", syn,
                       *TINY)
    assert_usage_error(code, err, "--check-teacher", "--teacher")
    assert not out.exists()
    code, text, err = cli(capsys, "distill", "--check-teacher", "--teacher", t, "--out", out,
                          "--dataset", syn, "--set", "k_r=2", *TINY)
    assert code == 0, err
    choice = json.loads((out / "choice.json").read_text())
    runs = {n: json.loads((out / n / "metrics.json").read_text())
            for n in ("with-teacher", "no-teacher")}
    assert runs["with-teacher"]["teacher"]["fingerprint"] and not runs["no-teacher"]["teacher"]
    kept = min(runs, key=lambda n: runs[n]["val"]["mae"])
    assert choice["kept"] == kept and choice["chosen_by"] == "validation MAE"
    assert choice[kept]["test"]["mae"] == runs[kept]["test"]["mae"]
    assert f"kept {kept}" in " ".join((text + " ".join(err)).split())
    # a finished check is not overwritten silently
    code, _, err = cli(capsys, "distill", "--check-teacher", "--teacher", t, "--out", out,
                       "--dataset", syn, "--set", "k_r=2", *TINY)
    assert_usage_error(code, err, "choice.json", "--force")
    # an interrupted check goes on: the finished half is reused, not refused nor retrained
    (out / "choice.json").unlink()
    shutil.rmtree(out / "no-teacher")
    before = (out / "with-teacher" / "metrics.json").read_text()
    code, text, err = cli(capsys, "distill", "--check-teacher", "--teacher", t, "--out", out,
                          "--dataset", syn, "--set", "k_r=2", *TINY)
    assert code == 0, err
    assert "with-teacher: finished run reused" in " ".join((text + " ".join(err)).split())
    assert (out / "with-teacher" / "metrics.json").read_text() == before
    assert json.loads((out / "choice.json").read_text())["kept"] in ("with-teacher", "no-teacher")


def test_distill_defaults_to_the_3pct_switch_and_end_is_the_paper_reading(capsys, tmp_path, syn):
    """`distill` switches the teacher off once the student validates 3 % below it (the default
    chosen by the sweeps); --teacher-until end is the paper's reading; the control has no switch;
    a teacher file without validation windows falls back to the paper's reading, said so."""
    full = _teacher(syn, 0.6, "all", tmp_path / "all.npz")
    common = ["--dataset", syn, "--set", "k_r=2", *TINY]

    def distilled(name: str, *args: object) -> tuple[dict, str]:
        code, text, err = cli(capsys, "distill", "--out", tmp_path / name, *args, *common)
        assert code == 0, err
        return json.loads((tmp_path / name / "metrics.json").read_text()), text + " ".join(err)

    run, _ = distilled("default", "--teacher", full)
    assert run["config"]["run"]["distill"]["teacher_until"] == "outgrown"
    assert run["config"]["run"]["distill"]["teacher_margin"] == 0.03
    t_val = run["teacher"]["val"]["mae"]
    assert run["teacher"]["switch_below"] == pytest.approx(t_val * 0.97)
    assert all("teacher_on" in row for row in run["fit"]["history"])
    run, _ = distilled("paper", "--teacher", full, "--teacher-until", "end")
    assert run["config"]["run"]["distill"]["teacher_until"] == "end"
    assert "switch_below" not in run["teacher"]
    run, _ = distilled("margin", "--teacher", full, "--teacher-margin", "0.1")
    assert run["teacher"]["switch_below"] == pytest.approx(t_val * 0.9)
    run, _ = distilled("alone", "--no-teacher")
    assert run["config"]["run"]["distill"]["teacher_until"] == "end"
    train_only = _teacher(syn, 0.6, "train", tmp_path / "train.npz")
    run, said = distilled("train-only", "--teacher", train_only)
    assert run["config"]["run"]["distill"]["teacher_until"] == "end"
    assert "covers no validation window" in " ".join(said.split())
    code, _, err = cli(capsys, "distill", "--teacher", full, "--teacher-until", "never", "--out",
                       tmp_path / "bad", *common)
    assert_usage_error(code, err, "--teacher-until", "outgrown", "end")
    assert not (tmp_path / "bad").exists()


def test_a_gated_student_is_told_when_its_teacher_was_switched_off():
    from flowdistill.cli.training import outgrown_teacher

    rows = [{"epoch": 1, "val_mae": 10.5, "teacher_on": 1.0},
            {"epoch": 2, "val_mae": 9.9, "teacher_on": 1.0},
            {"epoch": 3, "val_mae": 9.6, "teacher_on": 0.0}]
    run = {"model": "flowdistill", "val": {"mae": 9.6}, "fit": {"history": rows},
           "teacher": {"val": {"mae": 10.279}, "switch_below": 9.971}}
    assert "switched off from epoch 3 on: epoch 2 validated below 9.971" in outgrown_teacher(run)
    rows[2]["teacher_on"] = 1.0
    assert "stayed on" in outgrown_teacher(run)
