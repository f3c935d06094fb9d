import numpy as np
import pytest
import torch

from flowdistill.metrics import by_volume, evaluate, masked_mae, masked_mape, masked_rmse


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
