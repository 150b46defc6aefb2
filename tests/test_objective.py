"""The generator's objective (pngan.losses.objective), built from a training config and called on
tensors, without a run."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from pngan.losses import alignment_l1, lowpass_l1, marginal_loss, spectrum_loss
from pngan.losses.gan import ra_g_loss
from pngan.losses.objective import GanBatch, Objective, Term, build_objective
from pngan.nets.registry import build
from pngan.train.config import LossConfig, load_train_config
from pngan.train.engine import frozen


@pytest.fixture(scope="module")
def nets():
    torch.manual_seed(0)
    return {"denoiser": frozen(build("dncnn", channels=4, depth=3)),
            "discriminator": build("pixel_discriminator", channels=4),
            "perceptual": frozen(torch.nn.Conv2d(3, 2, 3))}


def _batch(seed: int = 0) -> GanBatch:
    g = torch.Generator().manual_seed(seed)
    clean = torch.rand(2, 3, 16, 16, generator=g)
    real = clean + 0.1 * torch.randn(2, 3, 16, 16, generator=g)
    fake = (clean + 0.08 * torch.randn(2, 3, 16, 16, generator=g)).requires_grad_(True)
    return GanBatch(clean, real, fake)


def _loss(**changes) -> LossConfig:
    zero = {f.name: 0.0 for f in dataclasses.fields(LossConfig) if f.name.startswith("lambda_")}
    return dataclasses.replace(LossConfig(), **{**zero, **changes})


def test_cpu_sidd_objective_is_the_weighted_sum_of_its_terms(nets):
    loss = load_train_config("cpu-sidd").loss
    obj = build_objective(loss, denoiser=nets["denoiser"])
    # lambda_align=0: the alignment is logged only; D and VGG are absent
    assert obj.names == ["align", "lowpass", "marginal", "spectrum"]
    b = _batch()
    total, logged = obj(b)
    f = b.fake.float()
    expected = (torch.zeros(()) + loss.lambda_lowpass * lowpass_l1(f, b.real, loss.align_lowpass)
                + loss.lambda_marginal * marginal_loss(f, b.real, b.clean, loss.marginal_groups)
                + loss.lambda_spectrum * spectrum_loss(b.fake, b.real, b.clean))
    assert torch.equal(total, expected)
    assert logged["loss_align"] == float(alignment_l1(nets["denoiser"], f, b.real, lowpass=loss.align_lowpass).detach())
    assert set(logged) == {"loss_align", "loss_lowpass", "loss_marginal", "loss_spectrum"}


def test_each_term_enters_with_its_weight(nets):
    b = _batch(1)
    for weight in (1.0, 2.5):
        total, logged = build_objective(_loss(lambda_ra=weight), discriminator=nets["discriminator"])(b)
        D = nets["discriminator"]
        assert torch.allclose(total, weight * ra_g_loss(D(b.real).float(), D(b.fake).float()))
        assert logged["loss_adv"] == pytest.approx(float(total.detach()) / weight)


def test_a_zero_weight_term_is_not_computed(nets, monkeypatch):
    calls = []
    monkeypatch.setattr("pngan.losses.objective.marginal_loss", lambda *a: calls.append(a) or torch.zeros(()))
    obj = build_objective(_loss(lambda_marginal=0.0, lambda_lowpass=1.0, align_lowpass=2.0))
    assert obj.names == ["lowpass"]
    obj(_batch())
    assert calls == []


def test_the_alignment_at_weight_zero_is_logged_without_a_graph(nets):
    b = _batch(2)
    total, logged = build_objective(_loss(lambda_spectrum=1.0), denoiser=nets["denoiser"])(b)
    assert "loss_align" in logged and logged["loss_align"] > 0
    (g,) = torch.autograd.grad(total, b.fake)
    total_alone, _ = build_objective(_loss(lambda_spectrum=1.0))(b)
    (g_alone,) = torch.autograd.grad(total_alone, b.fake)
    assert torch.equal(g, g_alone)  # the logged-only term adds nothing to the gradient
    # without a frozen denoiser there is nothing to log; with the naive alignment there is
    assert "align" not in build_objective(_loss()).names
    assert build_objective(_loss(alignment="naive")).names == ["align"]


def test_every_weight_of_the_config_switches_exactly_one_term(nets):
    # a new lambda_* field without its term in build_objective fails here
    weights = [f.name for f in dataclasses.fields(LossConfig) if f.name.startswith("lambda_")]
    names = set()
    for w in weights:
        obj = build_objective(_loss(**{w: 1.0}, align_lowpass=2.0), perceptual=nets["perceptual"],
                              discriminator=nets["discriminator"],
                              denoiser=nets["denoiser"] if w == "lambda_align" else None)
        assert len(obj.names) == 1, (w, obj.names)
        names |= set(obj.names)
        total, logged = obj(_batch())
        assert total.requires_grad and list(logged) == [f"loss_{obj.names[0]}"]
    assert len(names) == len(weights)


def test_an_objective_is_a_list_of_weighted_terms():
    b = _batch()
    obj = Objective([Term("mean", 3.0, lambda x: x.fake.mean()), Term("off", 0.0, lambda x: 1 / 0)])
    total, logged = obj(b)
    assert obj.names == ["mean"] and torch.equal(total, torch.zeros(()) + 3.0 * b.fake.mean())
    assert logged == {"loss_mean": float(b.fake.mean().detach())}


def test_the_global_batch_mean_on_one_process_is_the_batch_mean(nets):
    from pngan.train.distributed import Dist

    loss = _loss(lambda_ra=1.0, lambda_spectrum=1.0, ra_mean="batch_hw")
    b = _batch(3)
    a, _ = build_objective(loss, discriminator=nets["discriminator"])(b)
    c, _ = build_objective(loss, discriminator=nets["discriminator"], batch_mean=Dist().batch_mean)(b)
    assert float(a.detach()) == pytest.approx(float(c.detach()), abs=1e-6)
