import numpy as np
import pytest

from flowdistill.data import DataError, WindowConfig, Windows, nearest_regions, split_bounds


def test_split_bounds_arithmetic():
    b = split_bounds(1000, WindowConfig(train_ratio=0.3))
    assert (b.train_end, b.val_start, b.test_start) == (300, 800, 900)
    b = split_bounds(1000, WindowConfig(train_ratio=0.8))
    assert b.train_end == b.val_start == 800


def test_training_ratio_overlapping_validation_is_refused():
    with pytest.raises(DataError, match="overlaps validation"):
        split_bounds(1000, WindowConfig(train_ratio=0.85))


@pytest.mark.parametrize("ratio", [0.1, 0.4, 0.7])
def test_windows_do_not_leak_across_splits(synthetic, ratio):
    w = Windows(synthetic, WindowConfig(train_ratio=ratio))
    L, H = 12, 12
    b = w.bounds
    tr, va, te = w.ids("train"), w.ids("val"), w.ids("test")
    assert tr.min() == L and tr.max() + H == b.train_end
    assert va.min() == b.val_start and va.max() + H == b.test_start
    assert te.min() == b.test_start and te.max() + H == b.num_slots
    # targets of a split never reach into the next split
    assert tr.max() + H <= va.min()
    assert va.max() + H <= te.min()


def test_nyc_2019_window_counts(nyc):
    w = Windows(nyc, WindowConfig(train_ratio=0.1))
    # 17,520 slots: test = last 1,752 slots -> 1,741 windows ("1.7K test samples" in the paper)
    assert len(w.ids("test")) == 1741
    assert len(w.ids("val")) == 1741
    assert len(w.ids("train")) == 1752 - 24 + 1


def test_window_contents_and_calendar(synthetic):
    w = Windows(synthetic, WindowConfig(train_ratio=0.5))
    ids = np.array([12, 100])
    x = w.inputs(ids, scaled=False)
    y = w.targets(ids)
    np.testing.assert_array_equal(x[1], synthetic.flows[88:100])
    np.testing.assert_array_equal(y[1], synthetic.flows[100:112])
    tod, dow = w.calendar(ids)
    assert tod[0, 0] == 0 and tod[0, -1] == 11  # 2021-03-01 00:00 .. 05:30
    assert dow[0, 0] == 0  # a Monday
    # the scaler is fitted on training slots only
    tr = synthetic.flows[: w.bounds.train_end]
    np.testing.assert_allclose(w.scaler.mean, tr.reshape(-1, 2).mean(0), rtol=1e-5)
    np.testing.assert_allclose(w.scaler.inverse(w.scaled), synthetic.flows, atol=1e-3)


def test_nearest_regions_hop_then_distance():
    # path graph 0-1-2-3-4 ; region 2's nearest: hop 1 (1, 3), then hop 2 (0, 4)
    adj = np.zeros((5, 5))
    for i in range(4):
        adj[i, i + 1] = adj[i + 1, i] = 1
    cent = np.array([[0, 0], [1, 0], [2, 0], [3.5, 0], [4, 0]], float)
    nb = nearest_regions(adj, 3, cent)
    assert nb[2].tolist() == [1, 3, 0]  # 1 is closer than 3; then 0 (2 hops, nearer than 4)
    assert nb[0].tolist() == [1, 2, 3]
    with pytest.raises(ValueError):
        nearest_regions(adj, 5)


def test_nearest_regions_unreachable_come_last():
    adj = np.zeros((4, 4))
    adj[0, 1] = adj[1, 0] = 1
    nb = nearest_regions(adj, 3, volume=np.array([1, 1, 5, 9]))
    assert nb[0].tolist() == [1, 3, 2]  # 1 is reachable; then by larger volume
