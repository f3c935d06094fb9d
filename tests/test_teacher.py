"""The LLM teacher's mechanics on a tiny random Llama with the real SmolLM2 tokenizer."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
from transformers import LlamaConfig, LlamaModel

from flowdistill.data.dataset import FlowDataset
from flowdistill.data.errors import DataError
from flowdistill.data.windows import WindowConfig, Windows
from flowdistill.engine.trainer import TrainConfig, Trainer
from flowdistill.teacher.backbone import ST_TOKENS, load_tokenizer
from flowdistill.teacher.encoder import DilatedInception, STEncoder
from flowdistill.teacher.file import TeacherPredictions
from flowdistill.teacher.importers import import_npz, import_urbangpt
from flowdistill.teacher.model import TeacherConfig
from flowdistill.teacher.prompts import PromptFacts, city_prompt, fmt_time, region_prompt, render
from flowdistill.teacher.train import (
    DataSpec,
    load_teacher,
    predict_to_file,
    save_teacher,
    teacher_for,
    train_config,
)

REGIONS = 3


def small_dataset(days: int = 10, seed: int = 0) -> FlowDataset:
    rng = np.random.default_rng(seed)
    t = np.arange(days * 48)
    base = 20 + 15 * np.sin(2 * np.pi * t / 48)[:, None, None]
    flows = np.clip(base + rng.poisson(5, size=(len(t), REGIONS, 2)), 0, None).round()
    return FlowDataset(
        name="tiny-city",
        city="Testville",
        flows=flows.astype(np.float32),
        start=pd.Timestamp("2019-01-01"),
        interval_minutes=30,
        region_ids=[str(i) for i in range(REGIONS)],
        region_names=["Harbor", "Old Town", "Uptown"],
        adjacency=np.eye(REGIONS, dtype=np.float32),
        pois=[["Residential", "Commercial"], ["Education Facility"], []],
    )


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny matrices: a second intra-op thread only adds wake-up latency (100x on a busy box)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tokenizer():
    try:
        return load_tokenizer()
    except DataError as exc:  # package missing: nothing to test against
        pytest.skip(str(exc))


@pytest.fixture()
def windows() -> Windows:
    return Windows(small_dataset(), WindowConfig(train_ratio=0.5, val_ratio=0.2, test_ratio=0.2))


def tiny_decoder(tokenizer, seed: int = 0) -> LlamaModel:
    torch.manual_seed(seed)
    cfg = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
    )
    return LlamaModel(cfg)


def tiny_teacher(windows, tokenizer, layout: str = "city", seed: int = 0, level: str = "none"):
    cfg = TeacherConfig(layout=layout, lora_r=4, lora_alpha=8, head_hidden=32, encoder_hidden=8,
                        level=level)
    return teacher_for(windows, cfg, seed, decoder=tiny_decoder(tokenizer, seed), tokenizer=tokenizer)


def batch(windows, split: str = "train", n: int = 4):
    data = windows.torch_dataset(split)
    return data.get_batch(data.ids[:n])


# ------------------------------------------------------------------ tokens and prompts
def test_st_tokens_are_single_ids(tokenizer):
    ids = [tokenizer(t, add_special_tokens=False).input_ids for t in ST_TOKENS]
    assert all(len(i) == 1 for i in ids)
    assert len({i[0] for i in ids}) == 4
    text = "x <ST_start><ST_HIS><ST_end> y <ST_PRE>"
    got = tokenizer(text, add_special_tokens=False).input_ids
    for i in ids:
        assert got.count(i[0]) == 1


def test_prompt_dates_follow_window_index():
    facts = PromptFacts.from_dataset(small_dataset())
    # window 24 = first target slot 24 = 2019-01-01 12:00; history starts 12 slots before.
    text = region_prompt(facts, 24, 1)
    assert "'January 1, 2019, 06:00, Tuesday to January 1, 2019, 11:30, Tuesday" in text
    assert "'January 1, 2019, 12:00, Tuesday to January 1, 2019, 17:30, Tuesday" in text
    assert "Old Town" in text and "Education Facility" in text
    assert "no POI description" in region_prompt(facts, 24, 2)
    city = city_prompt(facts, 24)
    assert city.count("<ST_HIS>") == REGIONS and city.count("<ST_PRE>") == REGIONS
    assert fmt_time(pd.Timestamp("2019-12-31 23:30")) == "December 31, 2019, 23:30, Tuesday"
    assert len(render(facts, [24, 25], "region")) == 2 * REGIONS
    with pytest.raises(ValueError):
        render(facts, [24], "nope")


def test_dilated_inception_is_causal_and_keeps_length():
    torch.manual_seed(0)
    layer = DilatedInception(3, 8, dilation=2)
    a = torch.randn(2, 12, 3)
    b = a.clone()
    b[:, 7:] += 1.0
    ya, yb = layer(a), layer(b)
    assert ya.shape == (2, 12, 8)
    assert torch.allclose(ya[:, :7], yb[:, :7])
    assert not torch.allclose(ya[:, 7:], yb[:, 7:])
    enc = STEncoder(2, 12, 16, hidden=8, num_regions=5, slots_per_day=48)
    out = enc(torch.randn(3, 12, 5, 2), torch.zeros(3, 12, dtype=torch.long),
              torch.zeros(3, 12, dtype=torch.long))
    assert out.shape == (3, 5, 16)


# ------------------------------------------------------------------ model mechanics
@pytest.mark.parametrize("layout", ["city", "region"])
def test_st_embeddings_land_at_his_positions(windows, tokenizer, layout):
    model = tiny_teacher(windows, tokenizer, layout)
    ids = [30, 31]
    tokens = model.tokenize(ids)
    prompts = len(ids) if layout == "city" else len(ids) * REGIONS
    assert tokens.ids.shape[0] == prompts
    st = torch.arange(len(ids) * REGIONS, dtype=torch.float32)[:, None].repeat(1, model.d_model)
    emb = model.embed(tokens, st + 1000.0)
    pos = (tokens.ids == model.his_id).nonzero().tolist()
    assert len(pos) == len(ids) * REGIONS
    # the k-th <ST_HIS> (prompt-major, position-minor) carries region vector k
    for k, (p, t) in enumerate(pos):
        assert torch.all(emb[p, t] == 1000.0 + k)
    pre = tokens.ids == model.pre_id
    # every other position keeps a token embedding (no encoder value leaked there)
    others = emb[(tokens.ids != model.his_id) & ~pre]
    assert (others < 999).all()
    # <ST_PRE> of region r in window w = shared PRE vector + region r's query + its encoder vector
    want = model.st_embed[2] + model.pre_region.repeat(len(ids), 1) + st + 1000.0
    assert torch.allclose(emb[pre], want)


@pytest.mark.parametrize("layout", ["city", "region"])
def test_forward_shape_and_index_required(windows, tokenizer, layout):
    model = tiny_teacher(windows, tokenizer, layout)
    b = batch(windows)
    y = model(b["x"], b["tod"], b["dow"], index=b["index"])
    assert y.shape == (4, 12, REGIONS, 2)
    assert torch.isfinite(y).all()
    with pytest.raises(DataError):
        model(b["x"], b["tod"], b["dow"])


def test_only_adapters_encoder_and_head_train(windows, tokenizer):
    model = tiny_teacher(windows, tokenizer)
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    assert any("lora_" in n for n in names)
    assert any(n.startswith("encoder.") for n in names) and "st_embed" in names
    assert not any(n.startswith("decoder.") and "lora_" not in n for n in names)


def test_training_step_lowers_loss_on_fixed_batch(windows, tokenizer):
    model = tiny_teacher(windows, tokenizer)
    b = batch(windows, n=4)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    scaler = windows.scaler

    def loss() -> torch.Tensor:
        pred = scaler.inverse(model(b["x"], b["tod"], b["dow"], index=b["index"]))
        return (pred - b["y"]).abs().mean()

    with torch.no_grad():
        first = float(loss())
    for _ in range(6):
        opt.zero_grad()
        value = loss()
        value.backward()
        opt.step()
    with torch.no_grad():
        assert float(loss()) < 0.8 * first


def test_engine_trains_teacher_and_predict_file_roundtrips(windows, tokenizer, tmp_path):
    model = tiny_teacher(windows, tokenizer)
    tcfg = train_config(steps=2, val_every=1, batch_size=4, val_batches=1, eval_batch_size=8,
                        progress=False)
    result = Trainer(tcfg).fit(model, windows)
    assert result.epochs_run == 2 and np.isfinite(result.best_val_mae)
    # save / reload the trainable weights into a fresh teacher on the same tiny backbone seed
    spec = DataSpec(dataset="tiny-city")
    save_teacher(model, spec, windows, tcfg, tmp_path)
    meta = json.loads((tmp_path / "teacher.json").read_text())
    assert meta["teacher"]["layout"] == "city" and meta["trainable_parameters"] > 0
    fresh = tiny_teacher(windows, tokenizer, seed=0)
    fresh.load_trainable_state(torch.load(tmp_path / "teacher.pt", weights_only=True))
    b = batch(windows, "val", 3)
    model.eval()
    fresh.eval()
    with torch.no_grad():
        assert torch.allclose(model(b["x"], b["tod"], b["dow"], index=b["index"]),
                              fresh(b["x"], b["tod"], b["dow"], index=b["index"]), atol=1e-5)
    with pytest.raises(DataError):
        fresh.load_trainable_state({"encoder.out.weight": torch.zeros(1)})

    out = tmp_path / "teacher.npz"
    ids = windows.ids("val")[:10]
    tp = predict_to_file(model, windows, out, ids=ids, batch_size=4, chunk_size=4, progress=False)
    assert out.exists() and not (tmp_path / "teacher.npz.parts").exists()
    back = TeacherPredictions.load(out)
    assert back.meta["prompt_layout"] == "city" and back.meta["model"] == "llm-teacher"
    np.testing.assert_array_equal(back.window_ids, ids)
    np.testing.assert_allclose(back.preds, tp.preds)
    direct = Trainer(TrainConfig(eval_batch_size=5)).predict(model, windows, ids)
    np.testing.assert_allclose(back.preds, direct, rtol=1e-4, atol=1e-3)
    back.check_matches(windows)


def test_train_config_learning_rate_decay():
    const = train_config(steps=2600, val_every=200)
    assert const.max_epochs == 13 and const.lr_decay == 1.0
    decayed = train_config(steps=2600, val_every=200, lr_decay=0.5, lr_decay_every=3)
    assert (decayed.lr_decay, decayed.lr_decay_every) == (0.5, 3)
    # the schedule the engine builds from it: halved after every 3 validation periods
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=2e-3)
    sched = torch.optim.lr_scheduler.StepLR(opt, decayed.lr_decay_every, decayed.lr_decay)
    rates = []
    for _ in range(decayed.max_epochs):
        rates.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert rates[:3] == [2e-3] * 3 and rates[3] == 1e-3 and abs(rates[12] - 2e-3 / 16) < 1e-12
    for bad in ({"lr_decay": 0.0}, {"lr_decay": 1.5}, {"lr_decay_every": -1}):
        with pytest.raises(ValueError, match="lr-decay"):
            train_config(steps=10, **bad)


def test_predict_resumes_from_part_files(windows, tokenizer, tmp_path):
    model = tiny_teacher(windows, tokenizer)
    ids = windows.ids("test")[:6]
    out = tmp_path / "t.npz"
    parts = tmp_path / "t.npz.parts"
    parts.mkdir()
    # a chunk "from before the kill": the run must keep it rather than recompute it
    from flowdistill.teacher.train import _signature

    (parts / "signature.txt").write_text(_signature(ids, 4, "") + "\n")
    marker = np.full((4, 12, REGIONS, 2), 7.0, dtype=np.float32)
    np.savez(parts / "part-00000.npz", window_ids=ids[:4], preds=marker)
    tp = predict_to_file(model, windows, out, ids=ids, batch_size=2, chunk_size=4, progress=False)
    assert np.all(tp.preds[:4] == 7.0) and not np.all(tp.preds[4:] == 7.0)
    # a parts folder from another run is refused
    parts.mkdir()
    (parts / "signature.txt").write_text("other\n")
    with pytest.raises(DataError):
        predict_to_file(model, windows, out, ids=ids, chunk_size=4, progress=False)


def test_misaligned_teacher_file_is_refused(windows, tmp_path):
    ids = windows.all_ids
    preds = np.ones((len(ids), 12, REGIONS, 2), dtype=np.float32)
    tp = TeacherPredictions.create(windows, ids, preds, model="llm-teacher")
    path = tp.save(tmp_path / "t.npz")
    other = Windows(small_dataset(days=11), windows.cfg)
    with pytest.raises(DataError, match="other data"):
        TeacherPredictions.load(path).check_matches(other)


def test_load_teacher_refuses_non_model_folder(tmp_path):
    with pytest.raises(DataError):
        load_teacher(tmp_path)


# ------------------------------------------------------------------ importers
def urbangpt_records(windows, first: int, samples: int, bias: float = 1.0) -> list[dict]:
    recs = []
    for i in range(samples):
        y = windows.targets(np.array([first + i]))[0]
        for s in range(REGIONS):
            recs.append({
                "id": f"test_tiny_region_{s}_{s + 1}_len_{i}",
                "st_pre_infolow": (y[:, s, 0] + bias).tolist(),
                "st_pre_outfolow": (y[:, s, 1] - bias).tolist(),
                "y_in": y[:, s, 0].astype(int).tolist(),
                "y_out": y[:, s, 1].astype(int).tolist(),
            })
    return recs


def test_import_urbangpt(windows, tmp_path):
    first = int(windows.ids("test")[0])
    recs = urbangpt_records(windows, first, 3)
    f1, f2 = tmp_path / "a.json", tmp_path / "b.json"
    f1.write_text(json.dumps(recs[:4]))
    f2.write_text(json.dumps(recs[4:]))
    tp = import_urbangpt([f1, f2], windows)
    np.testing.assert_array_equal(tp.window_ids, [first, first + 1, first + 2])
    y = windows.targets(tp.window_ids)
    np.testing.assert_allclose(tp.preds[..., 0], y[..., 0] + 1.0)
    np.testing.assert_allclose(tp.preds[..., 1], np.abs(y[..., 1] - 1.0))
    # shifted by one window: the truth in the records no longer matches -> refused
    with pytest.raises(DataError, match="truth does not match"):
        import_urbangpt([f1, f2], windows, first_window=first + 1)
    # a region missing for a sample
    f1.write_text(json.dumps(recs[:-1]))
    f2.write_text("[]")
    with pytest.raises(DataError, match="lack some"):
        import_urbangpt([f1, f2], windows)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"id": "weird", "st_pre_infolow": [1]}]))
    with pytest.raises(DataError, match="region"):
        import_urbangpt([bad], windows)


def test_import_npz_ntc(windows, tmp_path):
    series = windows.raw.transpose(1, 0, 2) + 0.5  # (N, T, C): the truth plus a half
    path = tmp_path / "tea.npz"
    np.savez(path, data=series)
    tp = import_npz(path, windows, "NTC")
    np.testing.assert_array_equal(tp.window_ids, windows.all_ids)
    np.testing.assert_allclose(tp.preds, windows.targets(windows.all_ids) + 0.5)
    with pytest.raises(DataError, match="TNC|layout|dataset has"):
        import_npz(path, windows, "TNC")
    np.savez(path, data=series[:, :-1])
    with pytest.raises(DataError, match="dataset has"):
        import_npz(path, windows, "NTC")


# ------------------------------------------------------------------ the real backbone
@pytest.mark.slow
def test_real_smollm2_generates_sensible_text():
    from flowdistill.teacher.backbone import load_causal_lm

    tok = load_tokenizer()
    lm = load_causal_lm()
    lm.eval()
    msgs = [{"role": "user", "content": "What is the capital of France? Answer in one word."}]
    text = tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
    enc = tok(text, return_tensors="pt", add_special_tokens=False)
    with torch.no_grad():
        out = lm.generate(**enc, max_new_tokens=12, do_sample=False)
    answer = tok.decode(out[0, enc["input_ids"].shape[1] :], skip_special_tokens=True)
    assert "paris" in answer.lower(), answer


# ------------------------------------------------------------------ CLI
def run_cli(monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    import sys

    from flowdistill.cli import app
    from flowdistill.cli.common import run_guarded

    monkeypatch.setattr(sys, "argv", ["flowdistill", *args])
    code = run_guarded(app)
    cap = capsys.readouterr()
    return code, cap.out, " ".join(cap.err.split())


def test_cli_import_npz_and_bad_input(monkeypatch, capsys, tmp_path):
    ds_path = small_dataset().save(tmp_path / "tiny.npz")
    windows = Windows(small_dataset(), WindowConfig(train_ratio=0.5, val_ratio=0.2, test_ratio=0.2))
    np.savez(tmp_path / "tea.npz", data=windows.raw.transpose(1, 0, 2))
    out = tmp_path / "teacher.npz"
    code, stdout, _ = run_cli(monkeypatch, capsys, "teacher", "import", "npz",
                              str(tmp_path / "tea.npz"), "--dataset", str(ds_path),
                              "--train-ratio", "0.5", "--out", str(out))
    assert code == 0, stdout
    tp = TeacherPredictions.load(out)
    assert tp.meta["layout"] == "NTC" and len(tp.window_ids) == len(windows.all_ids)
    code, _, err = run_cli(monkeypatch, capsys, "teacher", "import", "npz",
                           str(tmp_path / "tea.npz"), "--dataset", str(ds_path),
                           "--layout", "TNC", "--out", str(out))
    assert code == 2 and "already exists" in err and "--force" in err  # never overwritten
    code, _, err = run_cli(monkeypatch, capsys, "teacher", "import", "npz",
                           str(tmp_path / "tea.npz"), "--dataset", str(ds_path),
                           "--layout", "TNC", "--out", str(out), "--force")
    assert code == 2 and "error" in err
    code, _, err = run_cli(monkeypatch, capsys, "teacher", "predict", "--model",
                           str(tmp_path), "--out", str(tmp_path / "new.npz"))
    assert code == 2 and "not a teacher model folder" in err


def test_window_mean_level_moves_the_forecast_with_the_input(windows, tokenizer):
    """level=window-mean: a constant added to a region's history moves its forecast by exactly that."""
    model = tiny_teacher(windows, tokenizer, level="window-mean").eval()
    b = batch(windows, n=3)
    shift = torch.zeros(1, 1, REGIONS, 2)
    shift[0, 0, 1, 0], shift[0, 0, 2, 1] = 1.5, -0.75
    with torch.no_grad():
        y = model(b["x"], b["tod"], b["dow"], index=b["index"])
        moved = model(b["x"] + shift, b["tod"], b["dow"], index=b["index"])
    torch.testing.assert_close(moved, y + shift, atol=1e-5, rtol=1e-5)
    plain = tiny_teacher(windows, tokenizer).eval()
    with torch.no_grad():  # without the anchor the forecast does not follow the shift
        gap = plain(b["x"] + shift, b["tod"], b["dow"], index=b["index"])
        gap = gap - plain(b["x"], b["tod"], b["dow"], index=b["index"])
    assert not torch.allclose(gap, shift.expand_as(gap), atol=1e-3)


def test_linear_level_starts_as_the_plain_teacher_and_trains(windows, tokenizer):
    b = batch(windows, n=2)
    args = (b["x"], b["tod"], b["dow"])
    plain = tiny_teacher(windows, tokenizer).eval()
    linear = tiny_teacher(windows, tokenizer, level="linear").eval()
    with torch.no_grad():
        torch.testing.assert_close(linear(*args, index=b["index"]), plain(*args, index=b["index"]))
    linear.train()
    linear(*args, index=b["index"]).abs().mean().backward()
    assert linear.level_skip.weight.grad is not None
    assert float(linear.level_skip.weight.grad.abs().sum()) > 0
    assert "level_skip.weight" in linear.trainable_state()
    with pytest.raises(ValueError, match="level"):
        TeacherConfig(level="median")


def test_cached_prefix_gives_the_same_forecast(windows, tokenizer):
    """The prefix's keys/values computed once and repeated per window = the whole prompt at once."""
    model = tiny_teacher(windows, tokenizer)
    b = batch(windows, n=3)
    args = (b["x"], b["tod"], b["dow"])
    model.eval()
    with torch.no_grad():
        cached = model(*args, index=b["index"])
        again = model(*args, index=b["index"])  # reuses the stored prefix
        model.cfg.cache_prefix = False
        whole = model(*args, index=b["index"])
    assert model.tokenize([30]).ids.shape[1] > 0
    torch.testing.assert_close(cached, whole, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(again, cached)


class LegacyCacheAPI(torch.nn.Module):
    """A decoder as transformers before the rename exposed it: ``past_key_values`` in and out."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def get_input_embeddings(self):
        return self.inner.get_input_embeddings()

    def forward(self, inputs_embeds, attention_mask=None, past_key_values=None, use_cache=None):
        out = self.inner(inputs_embeds=inputs_embeds, attention_mask=attention_mask,
                         cache=past_key_values, use_cache=use_cache)
        return SimpleNamespace(last_hidden_state=out.last_hidden_state, past_key_values=out.cache)


def test_cached_prefix_works_with_the_older_cache_keyword(windows, tokenizer):
    """transformers 5.17 (the GPU image) names the cache past_key_values: same forecast."""
    from flowdistill.teacher.model import decoder_cache

    assert decoder_cache(SimpleNamespace(past_key_values=1)) == (1, "past_key_values")
    assert decoder_cache(SimpleNamespace(cache=2, past_key_values=None)) == (2, "cache")
    with pytest.raises(RuntimeError, match="no key/value cache"):
        decoder_cache(SimpleNamespace(last_hidden_state=0))
    model = tiny_teacher(windows, tokenizer).eval()
    b = batch(windows, n=3)
    args = (b["x"], b["tod"], b["dow"])
    with torch.no_grad():
        new_api = model(*args, index=b["index"])
        model.decoder = LegacyCacheAPI(model.decoder)
        model.train().eval()  # drop the stored prefix
        old_api = model(*args, index=b["index"])
    torch.testing.assert_close(old_api, new_api)


def test_teacher_windows_join_sources_without_crossing(tokenizer):
    """Target first (its own window ids), then another source's slots before validation only."""
    from flowdistill.teacher.sources import SourceScaledMAE, TeacherWindows

    target = small_dataset(days=20)
    other = small_dataset(days=20, seed=1)
    other.flows[:] = other.flows * 0.25
    cfg = WindowConfig(train_ratio=0.2, val_ratio=0.2, test_ratio=0.2)
    plain = Windows(target, cfg)
    strict = TeacherWindows(target, cfg, pool="train", extra=[other])
    wide = TeacherWindows(target, cfg, pool="val", extra=[other])
    for tw in (strict, wide):
        assert np.array_equal(tw.ids("val"), plain.ids("val"))
        assert np.array_equal(tw.ids("test"), plain.ids("test"))
        src = tw.source_of(tw.ids("train"))
        assert set(src.tolist()) == {0, 1}
        own = tw.ids("train")[src == 0]
        # no target training window reaches validation; the other source stops before it too
        assert own.max() + cfg.output_len <= tw.bounds.train_end <= plain.bounds.val_start
        seg = tw.segments[1]
        assert seg.offset == target.num_slots and seg.length == plain.bounds.val_start
        got = tw.ids("train")[src == 1]
        assert got.min() - cfg.input_len >= seg.offset
        assert got.max() + cfg.output_len <= seg.offset + seg.length
        # the other source's windows read the other source's flows
        w = int(got[0])
        assert np.allclose(tw.targets(np.array([w]))[0], other.flows[w - seg.offset:
                                                                      w - seg.offset + 12])
    assert np.array_equal(strict.ids("train")[strict.source_of(strict.ids("train")) == 0],
                          plain.ids("train"))
    assert len(wide.ids("train")) > len(strict.ids("train"))
    # the objective: a perfect forecast in each source's own scaled space costs nothing
    ids = wide.ids("train")[[0, -1]]
    data = wide.torch_dataset("train", wide.source_extra())
    bt = data.get_batch(ids)
    perfect = torch.from_numpy(wide.scaled[ids[:, None] + np.arange(12)])
    from flowdistill.models.base import as_output

    loss, _ = SourceScaledMAE(wide)(as_output(perfect), bt, wide.scaler)
    assert float(loss) < 1e-4
    loss, _ = SourceScaledMAE(wide)(as_output(perfect + 1.0), bt, wide.scaler)
    # one scaled unit off everywhere = the target's std in target units (masked on flow > 0)
    assert float(loss) == pytest.approx(float(wide.scaler.std.mean()), rel=0.05)


def test_target_repeat_raises_the_targets_share_of_the_draws():
    """--target-repeat K: each target training window K times in the pool, the other source's once;
    val/test, the per-window source rows and the window counts are unchanged."""
    from flowdistill.teacher.sources import TeacherWindows
    from flowdistill.teacher.train import DataSpec

    target, other = small_dataset(days=20), small_dataset(days=20, seed=1)
    cfg = WindowConfig(train_ratio=0.2, val_ratio=0.2, test_ratio=0.2)
    once = TeacherWindows(target, cfg, pool="train", extra=[other])
    thrice = TeacherWindows(target, cfg, pool="train", extra=[other], target_repeat=3)
    own = Windows(target, cfg).ids("train")
    ids = thrice.ids("train")
    src = thrice.source_of(ids)
    assert np.array_equal(np.sort(ids[src == 0]), np.sort(np.repeat(own, 3)))
    assert np.array_equal(ids[src == 1], once.ids("train")[once.source_of(once.ids("train")) == 1])
    assert np.array_equal(thrice.ids("test"), once.ids("test"))
    assert thrice.describe()["teacher_data"]["train_windows_per_source"] == \
        once.describe()["teacher_data"]["train_windows_per_source"]
    extra = thrice.source_extra()["source"]
    batch = thrice.torch_dataset("train", thrice.source_extra()).get_batch(ids[:5])
    assert batch["x"].shape[0] == 5 and extra.covers(ids)
    with pytest.raises(DataError, match="target_repeat"):
        TeacherWindows(target, cfg, extra=[other], target_repeat=0)
    with pytest.raises(DataError, match="needs --extra"):
        DataSpec(target_repeat=2)
    assert "target_repeat" not in DataSpec().settings()  # runs saved before the option resume
    assert "×4" in DataSpec(extra=("b",), target_repeat=4).describe()


def test_prompts_name_each_source_and_its_own_dates():
    from flowdistill.teacher.prompts import city_prompt, locate
    from flowdistill.teacher.sources import Segment

    ds = small_dataset()
    segs = [Segment("a", "taxi", 0, 480, "2019-01-01T00:00:00"),
            Segment("b", "bike", 480, 200, "2019-01-01T00:00:00")]
    facts = PromptFacts.from_dataset(ds, segments=segs)
    assert locate(facts, 24) == ("taxi", pd.Timestamp("2019-01-01 12:00"))
    assert locate(facts, 480 + 24) == ("bike", pd.Timestamp("2019-01-01 12:00"))
    assert "Bike flow from January 1, 2019, 06:00" in city_prompt(facts, 480 + 24)
    assert "Taxi flow" in city_prompt(facts, 24)


def test_bfloat16_backbone_keeps_float32_master_weights(windows, tokenizer):
    """The GPU path: frozen backbone in bfloat16, everything trained (LoRA, encoder, head) float32."""
    decoder = tiny_decoder(tokenizer).to(torch.bfloat16)
    cfg = TeacherConfig(lora_r=4, lora_alpha=8, head_hidden=32, encoder_hidden=8, dtype="bfloat16")
    model = teacher_for(windows, cfg, 0, decoder=decoder, tokenizer=tokenizer)
    trained = {n: p for n, p in model.named_parameters() if p.requires_grad}
    assert trained and all(p.dtype == torch.float32 for p in trained.values())
    frozen = [p for n, p in model.named_parameters() if not p.requires_grad]
    assert all(p.dtype == torch.bfloat16 for p in frozen)
    b = batch(windows, n=1)
    y = model(b["x"], b["tod"], b["dow"], index=b["index"])
    assert y.dtype == torch.float32 and torch.isfinite(y).all()
    y.abs().mean().backward()
    lora = [p for n, p in trained.items() if "lora_B" in n]
    assert lora and all(p.grad is not None and p.grad.dtype == torch.float32 for p in lora)
    assert any(float(p.grad.abs().sum()) > 0 for p in lora)


def test_slimmed_teacher_file_keeps_training_rows_and_scores(windows, tmp_path):
    """`teacher slim`: a float16 file with only the windows a student needs, same values."""
    ids = windows.all_ids
    preds = windows.targets(ids) + 0.3
    tp = TeacherPredictions.create(windows, ids, preds, model="x")
    train = windows.ids("train")
    small = tp.subset(train, scores={"test": {"mae": 0.3}})
    path = small.save(tmp_path / "small.npz", dtype="float16")
    back = TeacherPredictions.load(path)
    assert back.preds.dtype == np.float32 and np.array_equal(back.window_ids, train)
    np.testing.assert_allclose(back.preds, tp.aligned(windows).get(train), rtol=1e-3, atol=1e-2)
    assert back.meta["scores"]["test"]["mae"] == 0.3
    full = tp.save(tmp_path / "full.npz")
    assert path.stat().st_size < full.stat().st_size


def test_teacher_index_reads_ids_and_meta_and_tells_coverage(windows, tmp_path):
    """`load_index` (the distill CLI's check before a run) agrees with a full load; `covers`
    is true only when every asked window has a forecast."""
    train, val = windows.ids("train"), windows.ids("val")
    tp = TeacherPredictions.create(windows, train, windows.targets(train), model="x")
    path = tp.save(tmp_path / "t.npz")
    ids, meta = TeacherPredictions.load_index(path)
    assert np.array_equal(ids, train) and meta == TeacherPredictions.load(path).meta
    assert tp.covers(train[:3]) and not tp.covers(val) and not tp.covers(np.r_[train[0], val[0]])
    np.savez(tmp_path / "bad.npz", window_ids=train)
    with pytest.raises(DataError, match="missing"):
        TeacherPredictions.load_index(tmp_path / "bad.npz")


def test_ensemble_is_the_window_by_window_mean(windows):
    ids = windows.all_ids
    truth = windows.targets(ids)
    a = TeacherPredictions.create(windows, ids, truth + 2.0, model="a", trained_on="A")
    b = TeacherPredictions.create(windows, ids[::-1][:-5], truth[::-1][:-5] - 1.0, model="b")
    ens = TeacherPredictions.mean_of([a, b])
    assert len(ens.window_ids) == len(ids) - 5  # only the windows both cover
    got = ens.aligned(windows, splits=()).get(ens.window_ids)
    want = windows.targets(ens.window_ids) + 0.5
    np.testing.assert_allclose(got, want, atol=1e-4)
    assert ens.model == "ensemble(a+b)" and "a: A" in ens.meta["trained_on"]
    with pytest.raises(DataError):
        TeacherPredictions.mean_of([a])


def test_mean_of_llm_seeds_stays_an_llm_teacher(windows, tmp_path):
    from flowdistill.experiments.common import BenchConfig, describe_teacher

    ids = windows.all_ids
    truth = windows.targets(ids)
    info = {"backbone": "smollm2-135m", "layers": 1, "prompt_layout": "city",
            "trained_on": "taxi before validation + bike"}
    seeds = [TeacherPredictions.create(windows, ids, truth + s, model="llm-teacher", seed=s,
                                       **info) for s in (0, 1, 2)]
    mean = TeacherPredictions.mean_of(seeds)
    assert mean.model == "llm-teacher-seeds(0,1,2)"
    assert mean.meta["trained_on"] == info["trained_on"] and mean.meta["layers"] == 1
    path = mean.save(tmp_path / "mean.npz")
    desc = describe_teacher(BenchConfig(out=tmp_path, teacher=str(path)))
    assert desc["kind"] == "llm"
    assert "mean of 3 fine-tunes (seeds(0,1,2))" in desc["description"]
    assert "taxi before validation + bike" in desc["description"]
    # a member forecast by an older version (no "trained_on") does not break the name
    older = TeacherPredictions(seeds[0].window_ids, seeds[0].preds,
                               {k: v for k, v in seeds[0].meta.items() if k != "trained_on"})
    again = TeacherPredictions.mean_of([older, *seeds[1:]])
    assert again.model == "llm-teacher-seeds(0,1,2)"
    assert again.meta["trained_on"] == info["trained_on"]
    other_data = TeacherPredictions(seeds[1].window_ids, seeds[1].preds,
                                    {**seeds[1].meta, "trained_on": "bike only"})
    assert TeacherPredictions.mean_of([seeds[0], other_data]).model.startswith("ensemble(")
    # a baseline among the members: an ensemble, not an LLM teacher
    other = TeacherPredictions.create(windows, ids, truth, model="stid", **info)
    assert TeacherPredictions.mean_of([seeds[0], other]).model == "ensemble(llm-teacher+stid)"


def test_holdout_leaves_a_block_and_its_neighbours_out_of_the_strict_pool():
    """--holdout k/K: fold k is one contiguous block of the student's training windows; the pool
    keeps no window sharing a slot with it, the other source and val/test are untouched."""
    from flowdistill.teacher.sources import TeacherWindows, fold_windows
    from flowdistill.teacher.train import DataSpec

    target, other = small_dataset(days=20), small_dataset(days=20, seed=1)
    cfg = WindowConfig(train_ratio=0.3, val_ratio=0.2, test_ratio=0.2)
    own = Windows(target, cfg).ids("train")
    blocks = [fold_windows(own, k, 3) for k in (1, 2, 3)]
    assert np.array_equal(np.concatenate(blocks), own)  # contiguous, in order, covering all
    whole = TeacherWindows(target, cfg, pool="train", extra=[other])
    span = cfg.input_len + cfg.output_len
    for k, held in enumerate(blocks, start=1):
        tw = TeacherWindows(target, cfg, pool="train", extra=[other], holdout=(k, 3))
        ids = tw.ids("train")
        mine = ids[tw.source_of(ids) == 0]
        assert np.array_equal(tw.held_out, held)
        gap = np.abs(mine[:, None] - held[None, :]).min()
        assert gap >= span  # no shared slot: window t spans [t-L, t+H)
        far = own[np.abs(own[:, None] - held[None, :]).min(axis=1) >= span]
        assert np.array_equal(np.sort(mine), far)  # and everything else is kept
        assert np.array_equal(ids[tw.source_of(ids) == 1],
                              whole.ids("train")[whole.source_of(whole.ids("train")) == 1])
        assert np.array_equal(tw.ids("test"), whole.ids("test"))
        assert tw.describe()["teacher_data"]["holdout"] == [k, 3]
    # the held-out slots are not in the scaler either
    held = blocks[1]
    tw = TeacherWindows(target, cfg, pool="train", extra=[other], holdout=(2, 3))
    kept = np.concatenate([target.flows[: held.min() - 12], target.flows[held.max() + 12:
                                                                          tw.bounds.train_end]])
    np.testing.assert_allclose(tw.scaler.mean, kept.reshape(-1, 2).mean(axis=0), rtol=1e-5)
    for bad in ((0, 3), (4, 3), (1, 1)):
        with pytest.raises(DataError, match="holdout"):
            TeacherWindows(target, cfg, pool="train", extra=[other], holdout=bad)
    with pytest.raises(DataError, match="pool"):
        TeacherWindows(target, cfg, pool="val", extra=[other], holdout=(1, 2))
    with pytest.raises(DataError, match="--pool train"):
        DataSpec(pool="val", holdout=(1, 2))
    spec = DataSpec(extra=("b",), holdout=[1, 2])
    assert spec.holdout == (1, 2) and spec.settings()["holdout"] == [1, 2]
    assert "holdout" not in DataSpec().settings()  # runs saved before the option resume
    assert "less block 1 of 2" in spec.describe()


def test_cross_fit_takes_each_training_window_from_the_teacher_that_never_saw_it(windows, tmp_path):
    from flowdistill.experiments.common import BenchConfig, describe_teacher
    from flowdistill.teacher.sources import fold_windows

    ids = windows.all_ids
    truth = windows.targets(ids)
    on = "tiny-city: the student's training slots less block {} of 2 (each window ×16) + bike"
    folds = [TeacherPredictions.create(windows, ids, truth + 10.0 * k, model="llm-teacher",
                                       holdout=[k, 2], seed=0, trained_on=on.format(k),
                                       backbone="smollm2-135m", layers=1, prompt_layout="city")
             for k in (1, 2)]
    joined = TeacherPredictions.cross_fitted(folds[::-1], windows)  # any order
    look = joined.aligned(windows, splits=("train", "val", "test"))
    train = windows.ids("train")
    for k in (1, 2):
        held = fold_windows(train, k, 2)
        np.testing.assert_allclose(look.get(held), windows.targets(held) + 10.0 * k, atol=1e-4)
    val = windows.ids("val")
    np.testing.assert_allclose(look.get(val), windows.targets(val) + 15.0, atol=1e-4)
    assert joined.model == "llm-teacher-crossfit(2)" and joined.meta["folds"] == 2
    assert "less block" not in joined.meta["trained_on"]
    assert "cross-fitted over 2 blocks" in joined.meta["trained_on"]
    desc = describe_teacher(BenchConfig(out=tmp_path, teacher=str(joined.save(tmp_path / "j.npz"))))
    assert desc["kind"] == "llm" and "2 fold teachers joined by cross-fitting" in desc["description"]
    # refused: a file without a held-out block, a missing block, a block forecast only partly
    plain = TeacherPredictions.create(windows, ids, truth, model="llm-teacher")
    with pytest.raises(DataError, match="held-out block"):
        TeacherPredictions.cross_fitted([folds[0], plain], windows)
    with pytest.raises(DataError, match="blocks 1..K"):
        TeacherPredictions.cross_fitted([folds[0], folds[0]], windows)
    short = folds[1].subset(np.setdiff1d(ids, fold_windows(train, 2, 2)[:3]))
    with pytest.raises(DataError, match="held-out windows"):
        TeacherPredictions.cross_fitted([folds[0], short], windows)
    other_ratio = Windows(windows.dataset, WindowConfig(train_ratio=0.4, val_ratio=0.2,
                                                        test_ratio=0.2))
    with pytest.raises(DataError, match="training ratio"):
        TeacherPredictions.cross_fitted(folds, other_ratio)


def test_cli_cross_fit_joins_fold_files_and_refuses_bad_input(monkeypatch, capsys, tmp_path):
    ds_path = small_dataset().save(tmp_path / "tiny.npz")
    windows = Windows(small_dataset(), WindowConfig(train_ratio=0.5, val_ratio=0.2, test_ratio=0.2))
    ids, truth = windows.all_ids, windows.targets(windows.all_ids)
    files = []
    for k in (1, 2):
        tp = TeacherPredictions.create(windows, ids, truth + k, model="llm-teacher", holdout=[k, 2])
        files.append(str(tp.save(tmp_path / f"f{k}.npz")))
    out = tmp_path / "joined.npz"
    code, stdout, err = run_cli(monkeypatch, capsys, "teacher", "crossfit", *files, "--dataset",
                                str(ds_path), "--train-ratio", "0.5", "--out", str(out))
    assert code == 0, err
    assert "llm-teacher-crossfit(2)" in stdout
    assert TeacherPredictions.load(out).model == "llm-teacher-crossfit(2)"
    code, _, err = run_cli(monkeypatch, capsys, "teacher", "crossfit", files[0], "--dataset",
                           str(ds_path), "--train-ratio", "0.5", "--out", str(tmp_path / "x.npz"))
    assert code == 2 and "at least two" in err and not (tmp_path / "x.npz").exists()
    for bad in ("3/2", "1-2", "1/1"):
        code, _, err = run_cli(monkeypatch, capsys, "teacher", "train", "--dataset", str(ds_path),
                               "--holdout", bad, "--out", str(tmp_path / "t"))
        assert code == 2 and "--holdout" in err and not (tmp_path / "t").exists()
