"""Baseline forecasters: shapes, that a few Adam steps on real windows lower the loss, exact
parameter counts on nyc-taxi-manhattan (catches accidental architecture changes), the graph
helpers, and the two distillation objectives on hand-computed values."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from flowdistill.data import WindowConfig, Windows, load_dataset
from flowdistill.data.windows import StandardScaler
from flowdistill.engine.trainer import SupervisedObjective
from flowdistill.models import ForecastOutput, ModelContext, build_model, count_parameters
from flowdistill.models.base import as_output
from flowdistill.models.bigst import positive_random_features
from flowdistill.models.easyst import EasySTObjective
from flowdistill.models.layers import chebyshev_polynomials, scaled_laplacian, sym_normalized
from flowdistill.models.stmlp import STMLPObjective
from flowdistill.models.stsgcn import localized_adjacency

DATA_DIR = Path(__file__).parents[1] / ".." / "shared" / "data"

# Trainable parameters with the default configs on nyc-taxi-manhattan (N=69, 48 slots/day, C=2).
EXPECTED_PARAMS = {
    "stid": 106_936,
    "stwa": 227_256,
    "bigst": 198_136,
    "stsgcn": 446_964,
    "astgcn": 85_700,
    "stmlp": 61_862,
    "easyst": 105_400,
}
BASELINES = sorted(EXPECTED_PARAMS)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Single intra-op thread for this module: these small models gain nothing from more, and on a
    shared 2-core machine extra threads oversubscribe the cores (measured 10× slower steps)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def windows() -> Windows:
    if not (DATA_DIR / "nyc-taxi-manhattan").exists():
        pytest.skip(f"real data not found under {DATA_DIR}")
    ds = load_dataset("nyc-taxi-manhattan", data_dir=DATA_DIR)
    return Windows(ds, WindowConfig(train_ratio=0.1))


@pytest.fixture(scope="module")
def ctx(windows: Windows) -> ModelContext:
    return ModelContext.from_windows(windows)


@pytest.fixture(scope="module")
def batch(windows: Windows) -> dict[str, torch.Tensor]:
    # Four busy daytime windows (fixed), so the masked loss sees many scored targets.
    ids = windows.ids("train")[[300, 700, 1100, 1500]]
    return windows.torch_dataset("train").get_batch(ids)


@pytest.mark.parametrize("name", BASELINES)
def test_output_shape(name: str, ctx: ModelContext, batch: dict[str, torch.Tensor]) -> None:
    torch.manual_seed(0)
    model = build_model(name, ctx).eval()
    with torch.no_grad():
        out = model(batch["x"], batch["tod"], batch["dow"])
    assert isinstance(out, torch.Tensor)  # eval: plain forecast, even for EasyST
    assert out.shape == (4, ctx.output_len, ctx.num_regions, ctx.num_channels)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", BASELINES)
def test_parameter_count_is_stable(name: str, ctx: ModelContext) -> None:
    assert count_parameters(build_model(name, ctx)) == EXPECTED_PARAMS[name]


@pytest.mark.parametrize("name", BASELINES)
def test_training_steps_lower_the_loss(
    name: str, ctx: ModelContext, windows: Windows, batch: dict[str, torch.Tensor]
) -> None:
    torch.manual_seed(0)
    model = build_model(name, ctx)
    objective = SupervisedObjective()
    opt = torch.optim.Adam(model.parameters(), lr=5e-3)

    def eval_loss() -> float:
        model.eval()
        with torch.no_grad():
            out = as_output(model(batch["x"], batch["tod"], batch["dow"]))
            return float(objective(out, batch, windows.scaler)[0])

    before = eval_loss()
    model.train()
    for _ in range(15):
        out = as_output(model(batch["x"], batch["tod"], batch["dow"]))
        loss, _ = objective(out, batch, windows.scaler)
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = eval_loss()
    assert after < 0.8 * before, (before, after)


@pytest.mark.parametrize("name", BASELINES)
def test_wrong_input_shape_is_refused(name: str, ctx: ModelContext) -> None:
    model = build_model(name, ctx)
    x = torch.zeros(2, ctx.input_len, ctx.num_regions + 1, ctx.num_channels)
    tod = torch.zeros(2, ctx.input_len, dtype=torch.long)
    with pytest.raises(ValueError, match="expected x of shape"):
        model(x, tod, tod)


def test_stwa_proxy_query_is_the_proxy_through_the_generated_projection() -> None:
    from flowdistill.models.stwa import _WindowAttentionLayer

    torch.manual_seed(0)
    layer = _WindowAttentionLayer(d=8, z=4, heads=2, window=3, dropout=0.0)
    z = torch.randn(2, 5, 4)
    w_q = layer.gen_q(z).view(2, 5, 8, 8)  # the d×d projection of each (window, region)
    expected = torch.einsum("d,bnde->bne", layer.proxy, w_q)
    torch.testing.assert_close(layer.proxy_query(z), expected, atol=1e-5, rtol=1e-5)


def test_easyst_exposes_kl_in_training_only(ctx: ModelContext, batch: dict) -> None:
    torch.manual_seed(0)
    model = build_model("easyst", ctx).train()
    out = model(batch["x"], batch["tod"], batch["dow"])
    assert isinstance(out, ForecastOutput)
    kl = out.aux["kl"].detach()
    assert kl.ndim == 0 and float(kl) >= 0.0
    model.eval()
    a = model(batch["x"], batch["tod"], batch["dow"])
    b = model(batch["x"], batch["tod"], batch["dow"])
    assert torch.equal(a, b)  # mean path: deterministic


def test_unknown_option_is_refused(ctx: ModelContext) -> None:
    with pytest.raises(ValueError, match="no option"):
        build_model("stid", ctx, {"hidden_size": 3})


# ------------------------------------------------------------------------- graph helpers
PATH3 = np.array([[0, 1, 0], [1, 0, 1], [0, 1, 0]], dtype=np.float32)


def test_sym_normalized_by_hand() -> None:
    # Path graph 0-1-2 with self loops: degrees 2, 3, 2.
    a = sym_normalized(PATH3).numpy()
    assert a[0, 0] == pytest.approx(0.5)
    assert a[0, 1] == pytest.approx(1 / np.sqrt(6))
    assert a[1, 1] == pytest.approx(1 / 3)
    assert a[0, 2] == 0.0


def test_chebyshev_polynomials_by_hand() -> None:
    t = chebyshev_polynomials(PATH3, 3).numpy()
    lt = scaled_laplacian(PATH3)
    # Normalised Laplacian of a path of 3 has eigenvalues 0, 1, 2, so L~ = L - I.
    assert np.allclose(np.linalg.eigvalsh(lt), [-1, 0, 1], atol=1e-6)
    assert np.allclose(t[0], np.eye(3))
    assert np.allclose(t[1], lt, atol=1e-6)
    assert np.allclose(t[2], 2 * lt @ lt - np.eye(3), atol=1e-6)
    with pytest.raises(ValueError):
        chebyshev_polynomials(PATH3, 0)


def test_localized_adjacency_structure() -> None:
    a = localized_adjacency(PATH3, 3)
    assert a.shape == (9, 9)
    assert np.array_equal(a[3:6, 3:6], PATH3)  # region graph at the middle step
    assert np.array_equal(a[0:3, 3:6], np.eye(3))  # each region to itself one step later
    assert np.array_equal(a[3:6, 0:3], np.eye(3))
    assert not a[0:3, 6:9].any()  # no link two steps apart


def test_stsgcn_layer_matches_the_papers_window_by_window_computation() -> None:
    # The layer computes every window at once, (T, d, B, N); the paper's description, one window
    # at a time on its (3N)² localized graph in (B, T, N, d), must give the same numbers.
    from flowdistill.models.stsgcn import _STSGCL, STSGCNConfig

    gen = torch.Generator().manual_seed(0)
    n, t, d, b = 3, 5, 4, 2
    local = torch.tensor(localized_adjacency(PATH3, 3))
    layer = _STSGCL(local, n, t, d, STSGCNConfig(hidden_dim=d))
    with torch.no_grad():  # a mask and biases away from their initial ones and zeros
        for p in layer.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=gen))
    h = torch.randn(b, t, n, d, generator=gen)
    mask = torch.zeros(3 * n, 3 * n)  # the mask lives on the graph's non-zero entries only
    for i in range(3):
        mask[i * n:(i + 1) * n, i * n:(i + 1) * n] = layer.mask_diag[i]
    for i in range(2):
        mask[i * n:(i + 1) * n, (i + 1) * n:(i + 2) * n] += torch.diag(layer.mask_up[i])
        mask[(i + 1) * n:(i + 2) * n, i * n:(i + 1) * n] += torch.diag(layer.mask_down[i])
    a = local * mask
    x = h + layer.t_emb + layer.s_emb
    want = []
    for w in range(t - 2):
        z = x[:, w:w + 3].reshape(b, 3 * n, d)  # the window's 3N nodes
        crops = []
        for wt, bias in zip(layer.weight, layer.bias, strict=True):
            z = torch.nn.functional.glu(a @ z @ wt[w] + bias[w, 0], dim=-1)
            crops.append(z[:, n:2 * n])
        want.append(torch.stack(crops).amax(0))
    want = torch.stack(want, 1)  # (B, T-2, N, d)
    got = layer(h.permute(1, 3, 0, 2)).permute(2, 0, 3, 1)  # (T, d, B, N) inside
    assert got.shape == (b, t - 2, n, d)
    assert torch.allclose(got, want, atol=1e-5)


def test_astgcn_matches_the_papers_convolutions_step_by_step() -> None:
    # The block works channels last and writes its convolutions as products; the paper's form
    # (Chebyshev graph convolution per step and order, then torch's 1×3 time and 1×1 residual
    # convolutions, the final convolution over steps × filters) must give the same numbers.
    from flowdistill.models.astgcn import ASTGCN

    torch.manual_seed(0)
    n, b = 3, 2
    model = ASTGCN(ModelContext(num_regions=n, adjacency=PATH3))
    with torch.no_grad():  # biases away from their initial zeros
        for p in model.parameters():
            p.add_(0.1 * torch.randn(p.shape))
    x = torch.randn(b, 12, n, 2)
    h = x.permute(0, 2, 3, 1)  # the paper's (B, N, F, T)
    for blk in model.blocks:
        f, t = h.shape[2], h.shape[3]
        e = blk.tatt(h.transpose(2, 3))
        x_hat = (h.reshape(b, n * f, t) @ e).reshape(b, n, f, t)
        s = blk.satt(x_hat.transpose(2, 3))
        g = torch.zeros(b, n, t, blk.theta.shape[-1])
        for k in range(blk.cheb.shape[0]):
            a = blk.cheb[k] * s  # (B, N, N): T_k ⊙ S
            for step in range(t):
                g[:, :, step] += (a.transpose(1, 2) @ h[..., step]) @ blk.theta[k]
        conv = blk.time_conv(torch.relu(g).permute(0, 3, 1, 2))  # (B, F_time, N, T)
        res = blk.res_conv(h.permute(0, 2, 1, 3))
        h = blk.norm(torch.relu(conv + res).permute(0, 2, 3, 1)).transpose(2, 3)  # (B, N, F, T)
    out = model.final(h.permute(0, 3, 1, 2))[..., 0]  # (B, H*C, N)
    want = out.reshape(b, 12, 2, n).transpose(2, 3)
    got = model(x, torch.zeros(b, 12, dtype=torch.long), torch.zeros(b, 12, dtype=torch.long))
    assert got.shape == (b, 12, n, 2)
    assert torch.allclose(got, want, atol=1e-5)


def test_random_features_approximate_softmax_attention() -> None:
    # BigST's linearised aggregation must approach exact softmax attention with many features.
    gen = torch.Generator().manual_seed(0)
    q = torch.randn(1, 5, 4, generator=gen) * 0.5
    k = torch.randn(1, 6, 4, generator=gen) * 0.5
    v = torch.randn(1, 6, 3, generator=gen)
    omega = torch.randn(4, 20000, generator=gen)
    fq = positive_random_features(q, omega, True)
    fk = positive_random_features(k, omega, False)
    approx = (fq @ (fk.transpose(1, 2) @ v)) / (fq @ fk.sum(1).unsqueeze(-1))
    exact = torch.softmax(q @ k.transpose(1, 2), dim=-1) @ v
    assert torch.allclose(approx, exact, atol=0.05)


# ------------------------------------------------------------------------- objectives
IDENTITY = StandardScaler(np.zeros(2), np.ones(2))


def _kd_batch(pred_value: float, teacher_value: float) -> tuple[ForecastOutput, dict]:
    y = torch.full((1, 2, 3, 2), 2.0)
    y[0, 0, 0, 0] = 0.0  # a closed-hour zero: never scored
    pred = torch.full_like(y, pred_value)
    return ForecastOutput(pred, aux={"kl": torch.tensor(4.0)}), {
        "y": y,
        "teacher": torch.full_like(y, teacher_value),
    }


def test_easyst_objective_upweights_while_teacher_not_beaten() -> None:
    # Student MAE 1, teacher MAE 0.5: L_tea − L_stu = −0.5 < δ → (1 + λ)·1 + β·KL.
    out, batch = _kd_batch(3.0, 2.5)
    loss, logs = EasySTObjective(kd_weight=0.3, kd_margin=0.1, beta=0.01)(out, batch, IDENTITY)
    assert float(loss) == pytest.approx(1.3 + 0.01 * 4.0)
    assert logs["gate"] == 1.0 and logs["teacher_mae"] == pytest.approx(0.5)


def test_easyst_objective_plain_loss_once_teacher_beaten() -> None:
    # Teacher MAE 2.5 vs student 1: L_tea − L_stu = 1.5 ≥ δ → plain loss.
    out, batch = _kd_batch(3.0, 4.5)
    loss, logs = EasySTObjective(kd_weight=0.3, kd_margin=0.1, beta=0.01)(out, batch, IDENTITY)
    assert float(loss) == pytest.approx(1.0 + 0.04)
    assert logs["gate"] == 0.0


def test_stmlp_objective_adds_teacher_mae() -> None:
    out, batch = _kd_batch(3.0, 2.5)
    loss, logs = STMLPObjective(alpha=0.5)(out, batch, IDENTITY)
    assert float(loss) == pytest.approx(1.0 + 0.5 * 0.5)
    assert logs["kd"] == pytest.approx(0.5)


def test_objectives_need_teacher() -> None:
    out, batch = _kd_batch(3.0, 2.5)
    del batch["teacher"]
    for objective in (EasySTObjective(), STMLPObjective()):
        with pytest.raises(ValueError, match="teacher"):
            objective(out, batch, IDENTITY)


def test_teacher_models_are_registered_graph_models() -> None:
    from flowdistill.models import available_models, easyst, stmlp

    for mod in (easyst, stmlp):
        assert mod.TEACHER_MODEL in available_models()
        assert mod.TEACHER_MODEL in ("astgcn", "stsgcn", "stwa", "bigst")


def test_make_objective_passes_the_mask_threshold() -> None:
    from flowdistill.models import easyst, stmlp

    out, batch = _kd_batch(3.0, 2.5)
    # Threshold None scores the zero target too: student error there is 3, not masked out.
    for mod in (easyst, stmlp):
        masked = mod.make_objective(0.0)(out, batch, IDENTITY)[1]["mae"]
        unmasked = mod.make_objective(None)(out, batch, IDENTITY)[1]["mae"]
        assert masked == pytest.approx(1.0)
        assert unmasked == pytest.approx((11 * 1.0 + 3.0) / 12)
