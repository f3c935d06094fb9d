import numpy as np
import pytest
import torch

from flowdistill.metrics import (
    by_volume,
    by_volume_from_sums,
    evaluate,
    masked_mae,
    masked_mape,
    masked_rmse,
    region_sums,
    scores_from_sums,
)


def test_masked_metrics_hand_computed():
    y = np.array([0.0, 2.0, 4.0, 10.0])
    p = np.array([5.0, 1.0, 6.0, 10.0])
    # target 0 is not scored: errors 1, 2, 0
    assert float(masked_mae(p, y)) == pytest.approx(1.0)
    assert float(masked_rmse(p, y)) == pytest.approx(np.sqrt(5 / 3))
    assert float(masked_mape(p, y)) == pytest.approx((0.5 + 0.5 + 0) / 3)
    # unmasked: errors 5, 1, 2, 0
    assert float(masked_mae(p, y, None)) == pytest.approx(2.0)
    assert float(masked_rmse(p, y, None)) == pytest.approx(np.sqrt(30 / 4))


def test_all_masked_gives_zero_not_nan():
    assert float(masked_mae(np.ones(3), np.zeros(3))) == 0.0


def test_masked_mae_gradient():
    p = torch.tensor([1.0, 3.0, 0.0], requires_grad=True)
    y = torch.tensor([2.0, 2.0, 0.0])
    masked_mae(p, y).backward()
    assert p.grad.tolist() == [-0.5, 0.5, 0.0]


def test_evaluate_breakdowns():
    y = np.ones((2, 3, 4, 2))
    p = y.copy()
    p[:, 1] += 2.0  # only horizon step 2 is wrong
    p[..., 1] += 1.0  # outflow is off by one more
    m = evaluate(p, y)
    assert [round(h["mae"], 6) for h in m["horizon"]] == [0.5, 2.5, 0.5]
    assert m["channel"]["inflow"]["mae"] == pytest.approx(2 / 3)
    assert m["channel"]["outflow"]["mae"] == pytest.approx(5 / 3)
    assert m["mae"] == pytest.approx(7 / 6)
    with pytest.raises(ValueError):
        evaluate(p[:, :2], y)


def test_by_volume_buckets():
    y = np.ones((1, 1, 3, 1))
    p = np.array([2.0, 3.0, 5.0]).reshape(1, 1, 3, 1)
    rows = by_volume(p, y, volume=np.array([1.0, 10.0, 100.0]), edges=[0, 5, 50, 500])
    assert [r["mae"] for r in rows] == [1.0, 2.0, 4.0]
    assert [r["regions"] for r in rows] == [1, 1, 1]


def test_region_sums_hand_computed_and_regrouped():
    # (B=1, H=2, N=2, C=1); region 0: targets 0 (not scored) and 2, region 1: 4 and 10
    y = np.array([[[[0.0], [4.0]], [[2.0], [10.0]]]])
    p = np.array([[[[5.0], [6.0]], [[1.0], [7.0]]]])
    sums = region_sums(p, y)
    assert sums == {"abs_sum": [1.0, 5.0], "sq_sum": [1.0, 13.0], "count": [1, 2]}
    assert scores_from_sums(sums, np.array([1])) == {"mae": 2.5, "rmse": pytest.approx(6.5 ** 0.5)}
    both = scores_from_sums(sums, np.array([0, 1]))
    assert both["mae"] == pytest.approx(float(masked_mae(p, y)))
    assert both["rmse"] == pytest.approx(float(masked_rmse(p, y)))
    assert np.isnan(scores_from_sums({"abs_sum": [0.0], "sq_sum": [0.0], "count": [0]},
                                     np.array([0]))["mae"])
    assert evaluate(p, y)["region"] == sums


def test_by_volume_from_sums_matches_the_forecasts():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 20, size=(7, 3, 10, 2)).astype(float)
    p = y + rng.normal(0, 3, size=y.shape)
    vol = rng.uniform(0, 100, size=10)
    edges = [0.0, 25.0, 50.0, 75.0, 100.0]
    direct = by_volume(p, y, vol, edges)
    kept = by_volume_from_sums(region_sums(p, y), vol, edges)
    assert [r["regions"] for r in kept] == [r["regions"] for r in direct]
    for a, b in zip(kept, direct, strict=True):
        assert a["mae"] == pytest.approx(b["mae"]) and a["rmse"] == pytest.approx(b["rmse"])
        assert (a["low"], a["high"]) == (b["low"], b["high"])
