"""The training engine: determinism, resume after a kill, early stopping, teacher alignment."""

import numpy as np
import pytest
import torch

from flowdistill.data import WindowConfig, Windows
from flowdistill.data.windows import WindowAligned
from flowdistill.engine import TrainConfig, Trainer
from flowdistill.models import ModelContext, build_model

CFG = dict(max_epochs=3, patience=10, batch_size=32, progress=False, lr=0.003)


def _fit(windows, out=None, **kw):
    torch.manual_seed(0)
    model = build_model("flowdistill", ModelContext.from_windows(windows), {"embed_dim": 8})
    result = Trainer(TrainConfig(**{**CFG, **kw})).fit(model, windows, out_dir=out)
    return model, result


def test_same_seed_same_weights(synthetic):
    w = Windows(synthetic, WindowConfig(train_ratio=0.6))
    m1, r1 = _fit(w)
    m2, r2 = _fit(w)
    for a, b in zip(m1.state_dict().values(), m2.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert r1.history[-1]["val_mae"] == r2.history[-1]["val_mae"]


def test_resume_after_kill_gives_the_same_result(synthetic, tmp_path):
    w = Windows(synthetic, WindowConfig(train_ratio=0.6))
    full, _ = _fit(w, tmp_path / "full")

    class Killed(RuntimeError):
        pass

    calls = {"n": 0}
    orig = Trainer._batch
    ckpt = tmp_path / "resumed" / "checkpoints" / "last.pt"

    def dying_batch(self, data, ids):
        if ckpt.exists():  # the first epoch is saved: die a few batches into the second
            calls["n"] += 1
            if calls["n"] == 5:
                raise Killed
        return orig(self, data, ids)

    Trainer._batch = dying_batch
    try:
        with pytest.raises(Killed):
            _fit(w, tmp_path / "resumed")
    finally:
        Trainer._batch = orig
    assert (tmp_path / "resumed" / "checkpoints" / "last.pt").exists()
    resumed, result = _fit(w, tmp_path / "resumed")
    assert len(result.history) == 3
    for a, b in zip(full.state_dict().values(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_early_stopping_keeps_best(synthetic):
    w = Windows(synthetic, WindowConfig(train_ratio=0.6))
    _, r = _fit(w, max_epochs=30, patience=2, lr=0.05)
    assert r.stopped_early
    assert r.epochs_run == r.best_epoch + 3
    assert r.best_val_mae == min(h["val_mae"] for h in r.history)


def test_historical_average_through_the_engine(nyc):
    w = Windows(nyc, WindowConfig(train_ratio=0.1))
    model = build_model("ha", ModelContext.from_windows(w))
    trainer = Trainer(TrainConfig(progress=False))
    trainer.fit(model, w)
    m = trainer.evaluate(model, w, "test")
    # measured independently with day-of-week × time-of-day means of the first 10%
    assert m["mae"] == pytest.approx(18.92, abs=0.005)
    assert m["rmse"] == pytest.approx(35.58, abs=0.005)
    last = build_model("last-value", ModelContext.from_windows(w))
    m = trainer.evaluate(last, w, "test")
    assert m["mae"] == pytest.approx(31.48, abs=0.005)
    assert m["rmse"] == pytest.approx(54.83, abs=0.005)


def test_teacher_travels_with_its_window_through_shuffling(synthetic):
    """The reference code shuffled student windows but not teacher windows; this catches that."""
    w = Windows(synthetic, WindowConfig(train_ratio=0.6))
    ids = w.all_ids
    # a "teacher" whose prediction encodes the window id it belongs to
    tagged = np.broadcast_to(ids[:, None, None, None].astype(np.float32), (len(ids), 12, 6, 2))
    lookup = WindowAligned(ids[::-1].copy(), tagged[::-1].copy(), "teacher")  # stored out of order
    data = w.torch_dataset("train", {"teacher": lookup})
    rng = np.random.default_rng(0)
    batch_ids = rng.permutation(data.ids)[:16]
    batch = data.get_batch(batch_ids)
    assert torch.equal(batch["teacher"][:, 0, 0, 0].long(), batch["index"])
    np.testing.assert_array_equal(batch["y"].numpy(), w.targets(batch["index"].numpy()))
    item = data[3]
    assert int(item["teacher"][0, 0, 0]) == int(item["index"]) == int(data.ids[3])


def test_two_process_ddp_training_through_torchrun(tmp_path):
    """Multi-device path: torch DDP (Gloo on CPU) under torchrun, only rank 0 writes results."""
    import json
    import os
    import shutil
    import subprocess
    import sys

    from conftest import make_synthetic

    if shutil.which("torchrun") is None and not os.path.exists(
        os.path.join(os.path.dirname(sys.executable), "torchrun")
    ):
        pytest.fail("torchrun not installed with torch")
    data = make_synthetic(days=12, regions=4).save(tmp_path / "syn.npz")
    torchrun = os.path.join(os.path.dirname(sys.executable), "torchrun")
    cmd = [
        torchrun, "--nproc-per-node", "2", "--master-addr", "127.0.0.1", "--master-port", "29533",
        "-m", "flowdistill", "train", "--model", "stid", "--dataset", str(data),
        "--train-ratio", "0.6", "--epochs", "2", "--out", str(tmp_path / "run"), "--quiet",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["world_size"] == 2
    assert metrics["fit"]["epochs_run"] == 2
    assert proc.stdout.count("test windows") == 1  # one report, from rank 0


def test_resume_accepts_the_same_teacher_file_named_another_way(tmp_path, monkeypatch):
    """A run started with a relative --teacher path resumes with its absolute path (same file),
    but another file is still refused."""
    from flowdistill.data.errors import DataError
    from flowdistill.engine.outputs import CHECKPOINT_DIR, LAST, prepare_run_dir

    monkeypatch.chdir(tmp_path)
    (tmp_path / "t.npz").write_bytes(b"x")
    (tmp_path / "u.npz").write_bytes(b"y")
    out = tmp_path / "run"
    cfg = {"teacher": "t.npz", "train": {"max_epochs": 3, "lr": 0.01}}
    prepare_run_dir(out, cfg)
    torch.save({"epoch": 0, "config": cfg["train"]}, out / CHECKPOINT_DIR / LAST)
    info = prepare_run_dir(out, {**cfg, "teacher": str(tmp_path / "t.npz")}, resume=True)
    assert info.resume_epoch == 1
    with pytest.raises(DataError, match="teacher: saved 't.npz'"):
        prepare_run_dir(out, {**cfg, "teacher": str(tmp_path / "u.npz")}, resume=True)


def test_resume_of_a_run_that_predates_an_option_accepts_only_its_default(tmp_path):
    """A run saved before an option existed resumes when the option is at its default (the old
    behaviour) and is refused when the option asks for something else."""
    from flowdistill.data.errors import DataError
    from flowdistill.engine.outputs import CHECKPOINT_DIR, LAST, prepare_run_dir

    out = tmp_path / "run"
    old = {"distill": {"delta": 0.1}, "train": {"max_epochs": 3, "lr": 0.01}}
    prepare_run_dir(out, old)
    torch.save({"epoch": 1, "config": old["train"]}, out / CHECKPOINT_DIR / LAST)
    defaults = {"distill": {"delta": 0.1, "teacher_margin": 0.0}, "train": {"max_epochs": 100}}
    now = {**old, "distill": {"delta": 0.1, "teacher_margin": 0.0}}
    assert prepare_run_dir(out, now, resume=True, defaults=defaults).resume_epoch == 2
    with pytest.raises(DataError, match="teacher_margin: saved '<absent>', now 0.03"):
        prepare_run_dir(out, {**old, "distill": {"delta": 0.1, "teacher_margin": 0.03}},
                        resume=True, defaults=defaults)
    with pytest.raises(DataError, match="teacher_margin: saved '<absent>', now 0.0"):
        prepare_run_dir(out, now, resume=True)  # without defaults nothing is known to be safe


def test_objective_sees_the_history_before_each_epoch_also_after_resume(synthetic, tmp_path):
    """An objective that changes with the run (the student's outgrown-teacher switch) is told the
    epochs so far before each epoch, including those restored from a checkpoint."""
    from flowdistill.engine.trainer import SupervisedObjective

    class Recording(SupervisedObjective):
        def __init__(self):
            super().__init__()
            self.seen = []

        def start_epoch(self, history):
            self.seen.append([round(row["val_mae"], 9) for row in history])

    w = Windows(synthetic, WindowConfig(train_ratio=0.6))

    def fit(epochs):
        torch.manual_seed(0)
        model = build_model("stid", ModelContext.from_windows(w), {"embed_dim": 8})
        rec = Recording()
        result = Trainer(TrainConfig(**{**CFG, "max_epochs": epochs})).fit(
            model, w, rec, out_dir=tmp_path / "run")
        return rec.seen, [round(row["val_mae"], 9) for row in result.history]

    seen, history = fit(2)
    assert seen == [[], history[:1]]
    seen, history = fit(3)  # resumes after epoch 2
    assert len(history) == 3 and seen == [history[:2]]


def test_the_engine_keeps_freed_memory_so_a_reallocation_faults_in_no_new_pages():
    # glibc would serve each 64 MiB block with fresh mmap'd pages: ~16,000 page faults apiece.
    import resource

    from flowdistill.engine.allocator import retain_freed_memory

    Trainer(TrainConfig())
    if not retain_freed_memory():
        pytest.skip("the allocator tuning needs Linux with glibc")

    def churn() -> None:
        for _ in range(5):
            block = torch.ones(16 * 2**20)
            del block

    churn()  # the first round may grow the heap
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    churn()
    assert resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before < 4096
