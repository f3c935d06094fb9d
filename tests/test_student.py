import torch

from flowdistill.models import ModelContext, build_model, count_parameters
from flowdistill.models.base import ForecastOutput, target_calendar
from flowdistill.models.student import StudentConfig, VIBStudent


def _inputs(b=3, n=5):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(b, 12, n, 2, generator=g)
    tod = (torch.arange(12) + 40).remainder(48).expand(b, -1)
    dow = torch.full((b, 12), 6)
    return x, tod, dow


def test_student_shapes_and_kl():
    ctx = ModelContext(num_regions=5)
    m = build_model("flowdistill", ctx)
    out = m(*_inputs())
    assert isinstance(out, ForecastOutput)
    assert out.pred.shape == (3, 12, 5, 2)
    assert out.aux["mu"].shape == (3, 5, 128)
    assert out.aux["kl"].ndim == 0 and float(out.aux["kl"]) >= 0


def test_eval_uses_mean_path_deterministically():
    m = VIBStudent(ModelContext(num_regions=5))
    x, tod, dow = _inputs()
    m.eval()
    a, b = m(x, tod, dow).pred, m(x, tod, dow).pred
    assert torch.equal(a, b)
    m.train()
    torch.manual_seed(1)
    c = m(x, tod, dow).pred
    assert not torch.allclose(a, c)  # sampling noise (and dropout) in training


def test_without_ib_there_is_no_kl():
    m = VIBStudent(ModelContext(num_regions=5), StudentConfig(use_ib=False))
    out = m(*_inputs())
    assert out.aux == {} and out.pred.shape == (3, 12, 5, 2)


def test_embeddings_use_last_step_calendar():
    m = VIBStudent(ModelContext(num_regions=5))
    x, tod, dow = _inputs()
    e = m.embed(x, tod, dow)
    d = m.cfg.embed_dim
    assert e.shape == (3, 5, 4 * d)
    assert torch.equal(e[0, 0, 2 * d : 3 * d], m.tod[int(tod[0, -1])])
    assert torch.equal(e[0, 0, 3 * d :], m.dow[6])


def test_parameter_count_is_stable():
    # N=69 (nyc-taxi-manhattan): an architecture change must update this number knowingly.
    assert count_parameters(VIBStudent(ModelContext(num_regions=69))) == 473176


def test_target_calendar_wraps_days():
    tod = torch.tensor([[46, 47]])
    dow = torch.tensor([[6, 6]])
    t_tod, t_dow = target_calendar(tod, dow, 3, 48)
    assert t_tod.tolist() == [[0, 1, 2]]
    assert t_dow.tolist() == [[0, 0, 0]]
