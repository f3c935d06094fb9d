"""Each loss term of Eq. 12 on hand-computed cases, and its gradients."""

import numpy as np
import pytest
import torch

from flowdistill.losses import (
    DistillConfig,
    DistillObjective,
    spatial_correlation_loss,
    teacher_bounded_loss,
    temporal_correlation_loss,
)
from flowdistill.models.base import ForecastOutput
from flowdistill.models.student import gaussian_kl


def t(values):
    """(1, H, N, 1) tensor from a nested list [H][N]."""
    return torch.tensor(values, dtype=torch.float64).unsqueeze(0).unsqueeze(-1)


def test_teacher_bounded_text_gate_per_element():
    truth = t([[10.0, 10.0, 10.0]])
    student = t([[30.0, 12.0, 22.0]])  # errors 20, 2, 12
    teacher = t([[11.0, 10.0, 25.0]])  # errors 1, 0, 15
    # "text": on where student error − teacher error > δ=10 -> only element 0 (20-1=19)
    loss = teacher_bounded_loss(student, teacher, truth, delta=10, gate="text", target="truth")
    assert float(loss) == pytest.approx(20 / 3)
    loss = teacher_bounded_loss(student, teacher, truth, delta=10, gate="text", target="teacher")
    assert float(loss) == pytest.approx(19 / 3)  # |30-11|


def test_teacher_bounded_eq2_gate_per_element():
    truth = t([[10.0, 10.0, 10.0]])
    student = t([[30.0, 12.0, 22.0]])
    teacher = t([[11.0, 10.0, 40.0]])  # teacher errors 1, 0, 30
    # Eq. 2 as printed: on where teacher error − student error < δ: 1-20, 0-2 yes; 30-12=18 no
    loss = teacher_bounded_loss(student, teacher, truth, delta=10, gate="eq2", target="truth")
    assert float(loss) == pytest.approx((20 + 2) / 3)


def test_teacher_bounded_batch_granularity_and_mask():
    truth = t([[10.0, 0.0]])  # the zero target is not scored
    student = t([[25.0, 99.0]])
    teacher = t([[10.0, 0.0]])
    on = teacher_bounded_loss(student, teacher, truth, delta=10, granularity="batch")
    assert float(on) == pytest.approx(15.0)
    stats = {}
    off = teacher_bounded_loss(student, teacher, truth, delta=20, granularity="batch", stats=stats)
    assert float(off) == 0.0
    assert stats == {"on": 0.0}
    teacher_bounded_loss(student, teacher, truth, delta=10, granularity="batch", stats=stats)
    assert stats == {"on": 1.0}  # one gate for the batch, counted over the scored element only


def test_teacher_bounded_gradient_flows_to_student_only():
    truth = t([[10.0, 10.0]])
    student = t([[30.0, 10.5]]).requires_grad_()
    teacher = t([[10.0, 10.0]]).requires_grad_()
    teacher_bounded_loss(student, teacher, truth, delta=10, target="teacher").backward()
    assert student.grad.flatten().tolist() == [0.5, 0.0]
    assert teacher.grad is None


def test_spatial_absolute_hand_computed():
    truth = t([[1.0, 4.0, 10.0]])
    pred = t([[2.0, 4.0, 7.0]])
    nb = torch.tensor([[1], [2], [1]])
    # |2-4| + |4-10| + |7-4| = 11 over 3 pairs
    loss = spatial_correlation_loss(pred, truth, nb, reference="truth", form="absolute")
    assert float(loss) == pytest.approx(11 / 3)


def test_spatial_difference_is_zero_when_structure_matches():
    truth = t([[1.0, 4.0, 10.0]])
    pred = truth + 5.0  # same spatial differences, shifted
    nb = torch.tensor([[1], [2], [0]])
    assert float(spatial_correlation_loss(pred, truth, nb, form="difference")) == 0.0
    pred2 = t([[1.0, 5.0, 10.0]])
    # diffs pred: (1-5)=-4, (5-10)=-5, (10-1)=9 ; truth: -3, -6, 9 -> |−1| + |1| + 0 = 2 / 3
    assert float(spatial_correlation_loss(pred2, truth, nb, form="difference")) == pytest.approx(2 / 3)
    with pytest.raises(ValueError):
        spatial_correlation_loss(pred, truth, nb, reference="self", form="difference")


def test_spatial_difference_against_the_teacher_scores_regions_with_truth():
    """Teacher reference, K = 2: a region whose truth is 0 (masked) adds none of its pairs, and the
    gradient reaches the student through both ends of each pair."""
    truth = t([[1.0, 0.0, 3.0]])
    teacher = t([[2.0, 2.0, 2.0]])
    pred = t([[3.0, 1.0, 2.0]]).requires_grad_()
    nb = torch.tensor([[1, 2], [0, 2], [0, 1]])
    # d = pred − teacher = (1, −1, 0); region 0: |1−(−1)| + |1−0| = 3; region 2: |0−1| + |0+1| = 2
    loss = spatial_correlation_loss(pred, truth, nb, teacher, reference="teacher", form="difference")
    assert float(loss) == pytest.approx(5 / 4)
    loss.backward()
    # pairs (0,1) +, (0,2) +, (2,0) −, (2,1) + (sign of d(s) − d(s_k)), each /4: region 0 gets
    # +1 +1 +1, region 1 −1 −1 (only as a neighbour), region 2 −1 −1 +1
    assert pred.grad.flatten().tolist() == pytest.approx([3 / 4, -2 / 4, -1 / 4])


def test_temporal_absolute_hand_computed():
    history = t([[4.0]])  # L = 1
    truth = t([[5.0], [6.0]])  # H = 2
    pred = t([[5.0], [8.0]])
    # window 2 -> lags -1, +1. pairs: t0-1 = history 4: |5-4|=1 ; t0+1: |5-6| = 1 ;
    # t1-1: |8-5| = 3 ; t1+1 beyond horizon: skipped  -> 5 / 3
    loss = temporal_correlation_loss(pred, truth, history, window=2, reference="truth")
    assert float(loss) == pytest.approx(5 / 3)


def test_temporal_difference_hand_computed_and_gradient():
    history = t([[4.0]])
    truth = t([[5.0], [6.0]])
    pred = t([[5.0], [8.0]]).requires_grad_()
    loss = temporal_correlation_loss(
        pred, truth, history, window=2, reference="truth", form="difference"
    )
    # pairs (t, t+l): (0,-1): (5-4)-(5-4)=0 ; (0,+1): (5-8)-(5-6)=-2 ; (1,0): (8-5)-(6-5)=2 -> 4/3
    assert float(loss) == pytest.approx(4 / 3)
    loss.backward()
    assert pred.grad is not None and torch.isfinite(pred.grad).all()


def test_gaussian_kl_matches_closed_form():
    mu = torch.tensor([[0.0, 1.0]])
    sigma = torch.tensor([[1.0, 2.0]])
    # 0.5 * (-log s2 - 1 + s2 + mu2): dim0 = 0 ; dim1 = 0.5*(-log4 - 1 + 4 + 1)
    expected = 0.5 * (-np.log(4.0) + 4.0)
    assert float(gaussian_kl(mu, sigma)[0]) == pytest.approx(expected, rel=1e-6)


class _Scaler:
    def inverse(self, x):
        return x


def test_objective_switches_drop_terms():
    truth = t([[10.0, 12.0], [11.0, 13.0]]).float()
    batch = {
        "y": truth,
        "x": truth[:, :1].clone(),
        "teacher": truth + 1.0,
    }
    out = ForecastOutput(truth + 3.0, {"kl": torch.tensor(2.0)})
    nb = np.array([[1], [0]])
    full, logs = DistillObjective(DistillConfig(k_r=1), nb)(out, batch, _Scaler())
    assert set(logs) == {"reg", "tbl", "tbl_on", "kl", "spa", "tem"}
    bare_cfg = DistillConfig(k_r=1, use_tbl=False, use_ib=False, use_spatial=False, use_temporal=False)
    bare, logs = DistillObjective(bare_cfg, nb)(out, batch, _Scaler())
    assert set(logs) == {"reg"}
    assert float(bare) == pytest.approx(3.0)
    assert float(full) > float(bare)


def test_default_teacher_bounded_term_carries_the_teacher():
    """Under the default reading L_tbl must depend on the teacher's forecast, not only rescale
    L_reg (the earlier truth/batch default did: its gate never shut on the teacher's own training
    windows, so L_tbl equalled L_reg). Where the teacher is more than δ worse, the element is off."""
    cfg = DistillConfig(k_r=1, use_ib=False, use_spatial=False, use_temporal=False)
    nb = np.array([[1], [0]])
    truth = t([[10.0, 20.0]]).float()
    pred = t([[12.0, 20.0]]).float().requires_grad_()
    logs = {}
    grads = []
    for teacher in (t([[11.0, 21.0]]), t([[14.0, 19.0]]), t([[11.0, 50.0]])):
        pred.grad = None
        batch = {"y": truth, "x": truth[:, :1].clone(), "teacher": teacher.float()}
        loss, logs = DistillObjective(cfg, nb)(ForecastOutput(pred, {}), batch, _Scaler())
        loss.backward()
        grads.append(pred.grad.flatten().tolist())
    # |12−11| + |20−21| = 2 over 2 elements; the third teacher is 30 worse than the student at
    # element 1 (> δ = 10): only element 0 is on, |12−11| / 2
    assert logs["tbl"] == pytest.approx(0.5)
    assert logs["tbl_on"] == pytest.approx(0.5)
    # reg gradient: sign(pred − truth)/2 = (0.5, 0 at the tie); tbl adds λ·sign(pred − teacher)/2
    assert grads[0] == pytest.approx([0.5 + 0.05, -0.05])
    assert grads[1] == pytest.approx([0.5 - 0.05, 0.05])
    assert grads[2] == pytest.approx([0.5 + 0.05, 0.0])


def test_outgrown_teacher_is_switched_off_once_the_student_validates_below_it():
    """teacher_until="outgrown": the teacher's terms act until an epoch's validation MAE falls
    below the teacher's, then the objective is the no-teacher one (and stays so)."""
    nb = np.array([[1], [0]])
    truth = t([[10.0, 12.0], [11.0, 13.0]]).float()
    batch = {"y": truth, "x": truth[:, :1].clone(), "teacher": truth + 4.0}
    out = ForecastOutput(truth + 3.0, {"kl": torch.tensor(2.0)})
    cfg = DistillConfig(k_r=1, teacher_until="outgrown")
    gated = DistillObjective(cfg, nb, teacher_val_mae=5.0)
    with_teacher, _ = DistillObjective(DistillConfig(k_r=1), nb)(out, batch, _Scaler())
    alone, _ = DistillObjective(cfg.without_teacher(), nb)(out, batch, _Scaler())
    assert float(with_teacher) != pytest.approx(float(alone))
    gated.start_epoch([])
    loss, logs = gated(out, batch, _Scaler())
    assert float(loss) == pytest.approx(float(with_teacher)) and logs["teacher_on"] == 1.0
    gated.start_epoch([{"val_mae": 6.0}, {"val_mae": 5.0}])  # not below: still on
    assert gated(out, batch, _Scaler())[1]["teacher_on"] == 1.0
    gated.start_epoch([{"val_mae": 6.0}, {"val_mae": 4.9}, {"val_mae": 5.5}])  # once below: off
    loss, logs = gated(out, batch, _Scaler())
    assert float(loss) == pytest.approx(float(alone)) and logs["teacher_on"] == 0.0
    assert "tbl" not in logs
    # the paper's reading never switches and logs nothing about it
    paper = DistillObjective(DistillConfig(k_r=1), nb, teacher_val_mae=5.0)
    paper.start_epoch([{"val_mae": 1.0}])
    loss, logs = paper(out, batch, _Scaler())
    assert float(loss) == pytest.approx(float(with_teacher)) and "teacher_on" not in logs


def test_outgrown_margin_keeps_a_teacher_the_student_is_level_with():
    nb = np.array([[1], [0]])
    gated = DistillObjective(DistillConfig(k_r=1, teacher_until="outgrown", teacher_margin=0.1),
                             nb, teacher_val_mae=5.0)
    assert gated.switch_below == pytest.approx(4.5)
    gated.start_epoch([{"val_mae": 4.9}, {"val_mae": 4.6}])  # below the teacher, within 10 %
    assert gated.teacher_on
    gated.start_epoch([{"val_mae": 4.9}, {"val_mae": 4.4}])
    assert not gated.teacher_on
    assert DistillObjective(DistillConfig(k_r=1), nb, 5.0).switch_below is None
    with pytest.raises(ValueError, match="teacher_margin"):
        DistillObjective(DistillConfig(k_r=1, teacher_until="outgrown", teacher_margin=1.5), nb, 5.0)


def test_outgrown_teacher_needs_its_validation_score_and_a_known_reading():
    nb = np.array([[1], [0]])
    with pytest.raises(ValueError, match="validation MAE"):
        DistillObjective(DistillConfig(k_r=1, teacher_until="outgrown"), nb)
    with pytest.raises(ValueError, match="teacher_until"):
        DistillObjective(DistillConfig(k_r=1, teacher_until="never"), nb, 5.0)
    # without a teacher there is nothing to switch off, so no score is needed
    DistillObjective(DistillConfig(k_r=1, teacher_until="outgrown").without_teacher(), nb)
