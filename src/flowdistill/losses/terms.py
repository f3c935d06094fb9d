"""Each term of the FlowDistill objective (Eq. 2, 8, 10, 11) as a pure function of tensors.

All tensors are on the original scale, shaped (B, H, N, C). ``mask_threshold`` follows the metrics
module: only truth values above it are scored (None scores everything).
"""

from __future__ import annotations

import torch

from flowdistill.metrics import make_mask

GATES = ("text", "eq2")
TBL_TARGETS = ("truth", "teacher")
GRANULARITIES = ("element", "sample", "batch")
REFERENCES = ("truth", "teacher", "self")
FORMS = ("absolute", "difference")


def _masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    n = mask.sum()
    if n == 0:
        return (values * 0).sum()
    return (values * mask).sum() / n


def _reduce_per(err: torch.Tensor, mask: torch.Tensor, granularity: str) -> torch.Tensor:
    """Masked mean error at the gate's granularity, broadcastable to ``err``."""
    if granularity == "element":
        return err
    dims = tuple(range(1, err.ndim)) if granularity == "sample" else tuple(range(err.ndim))
    m = mask.to(err.dtype)
    mean = (err * m).sum(dim=dims, keepdim=True) / m.sum(dim=dims, keepdim=True).clamp_min(1)
    return mean


def teacher_bounded_loss(
    student: torch.Tensor,
    teacher: torch.Tensor,
    truth: torch.Tensor,
    delta: float = 10.0,
    gate: str = "text",
    target: str = "truth",
    granularity: str = "element",
    mask_threshold: float | None = 0.0,
    stats: dict[str, float] | None = None,
) -> torch.Tensor:
    """Teacher-bounded regression loss (Eq. 2) under the paper's open readings.

    ``gate``: ``"text"`` — applied where the teacher beats the student by more than δ
    (L_reg(Ŷ,Y) − L_reg(Ỹ,Y) > δ: "only when the teacher's predictions provide a meaningful
    improvement"); ``"eq2"`` — applied where L_reg(Ỹ,Y) − L_reg(Ŷ,Y) < δ, Eq. 2 as printed (Saputra et
    al.'s bound: on unless the student already beats the teacher by δ).
    ``target``: the gated loss is L_reg(Ŷ, Y) (``"truth"``, the teacher only bounds) or
    L_reg(Ŷ, Ỹ) (``"teacher"``, the teacher is the target where it is trusted).
    ``granularity``: losses compared per element, per window (``"sample"``) or per batch.
    ``stats``, when given, receives ``"on"``: the share of scored elements where the gate is open
    (logged by the objective, so a run shows whether the teacher was trusted at all).
    """
    if gate not in GATES or target not in TBL_TARGETS or granularity not in GRANULARITIES:
        raise ValueError(f"bad teacher-bounded reading: gate={gate} target={target} g={granularity}")
    teacher = teacher.detach()
    mask = make_mask(truth, mask_threshold)
    err_s = (student - truth).abs()
    err_t = (teacher - truth).abs()
    ls = _reduce_per(err_s.detach(), mask, granularity)
    lt = _reduce_per(err_t, mask, granularity)
    on = (ls - lt > delta) if gate == "text" else (lt - ls < delta)
    on = on.expand_as(err_s).to(err_s.dtype)
    if stats is not None:
        stats["on"] = float(_masked_mean(on, mask))
    term = err_s if target == "truth" else (student - teacher).abs()
    return _masked_mean(term * on, mask)


def kl_term(kl: torch.Tensor) -> torch.Tensor:
    """D_KL of Eq. (8), already summed over latent dimensions by the model; averaged here."""
    return kl.mean()


def _reference(kind: str, pred: torch.Tensor, truth: torch.Tensor, teacher: torch.Tensor | None):
    if kind == "truth":
        return truth
    if kind == "teacher":
        if teacher is None:
            raise ValueError("the teacher reference needs teacher predictions")
        return teacher.detach()
    if kind == "self":
        return pred
    raise ValueError(f"reference must be one of {REFERENCES}, got {kind!r}")


def spatial_correlation_loss(
    pred: torch.Tensor,
    truth: torch.Tensor,
    neighbours: torch.Tensor,
    teacher: torch.Tensor | None = None,
    reference: str = "truth",
    form: str = "absolute",
    mask_threshold: float | None = 0.0,
) -> torch.Tensor:
    """Eq. (10): Σ_k |ŷ(s,t) − r(s_k,t)| over each region's K_r neighbours, averaged.

    ``form="absolute"`` is Eq. 10 as printed; ``form="difference"`` compares spatial differences,
    |(ŷ(s) − ŷ(s_k)) − (r(s) − r(s_k))|, so a region is not pulled towards its neighbours' level.
    ``neighbours`` is (N, K_r) region indices.
    """
    if form not in FORMS:
        raise ValueError(f"form must be one of {FORMS}")
    if form == "difference" and reference == "self":
        raise ValueError("the difference form against the student itself is identically zero")
    ref = _reference(reference, pred, truth, teacher)
    b, h, n, c = pred.shape
    k = neighbours.shape[1]
    flat = neighbours.reshape(-1)

    def at_neighbours(x: torch.Tensor) -> torch.Tensor:  # (B, H, N, C) → (B, H, N, K, C)
        return x.index_select(2, flat).view(b, h, n, k, c)

    if form == "absolute":
        err = (pred.unsqueeze(3) - at_neighbours(ref)).abs()
    else:  # (ŷ(s) − ŷ(s_k)) − (r(s) − r(s_k)) = d(s) − d(s_k) with d = ŷ − r: one gather, not two
        d = pred - ref
        err = (d.unsqueeze(3) - at_neighbours(d)).abs()
    if reference == "truth":
        return _masked_mean(err, make_mask(at_neighbours(truth), mask_threshold))
    # scored where the region's own truth is: the same mask for all K pairs, summed over k first
    mask = make_mask(truth, mask_threshold)
    scored = mask.sum() * k
    if scored == 0:
        return (err * 0).sum()
    return (err.sum(3) * mask).sum() / scored


def temporal_correlation_loss(
    pred: torch.Tensor,
    truth: torch.Tensor,
    history: torch.Tensor,
    teacher: torch.Tensor | None = None,
    window: int = 12,
    reference: str = "truth",
    form: str = "absolute",
    mask_threshold: float | None = 0.0,
) -> torch.Tensor:
    """Eq. (11): Σ_{l=−H/2..H/2, l≠0} |ŷ(s,t) − r(s,t+l)|, averaged over valid pairs.

    The reference series runs over the observed history (B, L, N, C) followed by the reference's
    horizon, so t+l may reach back into the input window; steps past the horizon are skipped.
    ``form="difference"`` compares temporal differences (ŷ(t) − ŷ(t+l)) − (r(t) − r(t+l)), with the
    student's own series continuing from the same observed history.
    """
    if form not in FORMS:
        raise ValueError(f"form must be one of {FORMS}")
    if form == "difference" and reference == "self":
        raise ValueError("the difference form against the student itself is identically zero")
    ref = _reference(reference, pred, truth, teacher)
    L, H = history.shape[1], pred.shape[1]
    ref_full = torch.cat([history, ref], dim=1)  # index t+L is horizon step t
    own_full = torch.cat([history, pred], dim=1)
    half = window // 2
    total = pred.new_zeros(())
    count = pred.new_zeros(())
    hist_mask = make_mask(history, mask_threshold)
    ref_mask_full = torch.cat([hist_mask, make_mask(truth, mask_threshold)], dim=1)
    for lag in range(-half, half + 1):
        if lag == 0:
            continue
        lo = max(0, -lag - L)
        hi = min(H, H - lag)
        if hi <= lo:
            continue
        p = pred[:, lo:hi]
        r = ref_full[:, lo + L + lag : hi + L + lag]
        if form == "absolute":
            err = (p - r).abs()
        else:
            o = own_full[:, lo + L + lag : hi + L + lag]
            err = ((p - o) - (ref[:, lo:hi] - r)).abs()
        if reference == "truth":
            m = ref_mask_full[:, lo + L + lag : hi + L + lag]
        else:
            m = make_mask(truth[:, lo:hi], mask_threshold)
        total = total + (err * m).sum()
        count = count + m.sum()
    if count == 0:
        return total * 0
    return total / count
