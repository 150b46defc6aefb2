"""loss.align_lowpass: Gaussian low-pass of both denoised images before the alignment L1.

Known answer: with a denoiser that leaves the noise in (identity), the paper's pointwise L1
between a fake and a real image with independent noise of the same level is larger than the L1
between a noise-free fake and the real image, by more than a 0.05 content offset costs: it rewards
weaker fake noise over correct content. After a sigma-4 low-pass that gain is under 5% of the
cost of the same content offset.
"""

import pytest
import torch

from pngan.losses.alignment import alignment_l1, gaussian_lowpass
from pngan.train.config import load_train_config


def test_gaussian_lowpass_basics():
    x = torch.rand(2, 3, 20, 24)
    assert gaussian_lowpass(x, 0.0) is x
    const = torch.full((1, 3, 16, 16), 0.3)
    assert torch.allclose(gaussian_lowpass(const, 2.0), const, atol=1e-6)
    y = gaussian_lowpass(torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(0)), 2.0)
    assert y.shape == (1, 3, 64, 64)
    assert 0.1 < float(y.std()) < 0.2  # white noise std 1 -> 1 / (2 sqrt(pi) sigma) = 0.141
    assert gaussian_lowpass(torch.rand(1, 1, 4, 4), 4.0).shape == (1, 1, 4, 4)  # smaller than the kernel


def test_lowpass_removes_the_weak_denoiser_bias():
    g = torch.Generator().manual_seed(1)
    clean = gaussian_lowpass(torch.rand(4, 3, 64, 64, generator=g), 3.0)
    real = clean + 0.05 * torch.randn(clean.shape, generator=g)
    fake = clean + 0.05 * torch.randn(clean.shape, generator=g)  # right level, independent noise
    ident = torch.nn.Identity()  # a "denoiser" that leaves all the noise in

    def terms(lowpass):
        loss = [float(alignment_l1(ident, f, real, lowpass=lowpass)) for f in (fake, clean, fake + 0.05)]
        # bias: what the loss gains by dropping the (right) noise; content: what a 0.05 offset costs
        return loss[0] - loss[1], loss[2] - loss[0]

    bias, content = terms(0.0)
    assert bias > content  # the paper's L1 with a weak Dn: dropping the noise pays more than any content
    bias, content = terms(4.0)
    assert bias < 0.05 * content  # low-passed: the level bias is small, content errors still cost
    assert content > 0.04


def test_align_lowpass_option():
    assert load_train_config("paper").loss.align_lowpass == 0.0
    assert load_train_config("cpu-small", ["loss.align_lowpass=2.5"]).loss.align_lowpass == 2.5
    with pytest.raises(Exception):
        load_train_config("cpu-small", ["loss.align_lowpass=-1"])


def test_lowpass_l1_sees_the_noise_mean():
    # loss.lambda_lowpass: L1 of the low-passed noisy images. Independent noise of the real noise's
    # kind costs about what the real noise's own low-pass residual costs; a colour cast of 3/255 in
    # one channel costs a large part of its size (1/255 averaged over the channels). Like any pointwise L1 of independent noises it
    # still prefers less low-frequency power: box-correlated noise of the same std costs more.
    from pngan.losses.alignment import lowpass_l1

    g = torch.Generator().manual_seed(2)
    clean = gaussian_lowpass(torch.rand(4, 3, 64, 64, generator=g), 3.0)
    real = clean + 0.1 * torch.randn(clean.shape, generator=g)
    w = torch.randn(clean.shape, generator=g)
    box = torch.nn.functional.avg_pool2d(w, 3, stride=1, padding=1, count_include_pad=False) * 3.0
    same, corr = clean + 0.1 * w, clean + 0.1 * box
    cast = same.clone()
    cast[:, 2] += 3 / 255
    base = float(lowpass_l1(clean, real, 4.0))  # the real noise's residual after the low-pass
    assert base < 0.1 * 0.1  # sigma 4 leaves under a tenth of white noise's std
    assert float(lowpass_l1(same, real, 4.0)) < 1.6 * base
    # one channel of three: the channel-averaged cast is 1/255; a residual-free L1 would charge all of it
    assert float(lowpass_l1(cast, real, 4.0)) - float(lowpass_l1(same, real, 4.0)) > 0.3 / 255
    assert float(lowpass_l1(corr, real, 4.0)) > float(lowpass_l1(same, real, 4.0))
    with pytest.raises(ValueError):
        lowpass_l1(clean, real, 0.0)


def test_lambda_lowpass_option_needs_a_lowpass():
    assert load_train_config("paper").loss.lambda_lowpass == 0.0
    assert load_train_config("cpu-small", ["loss.lambda_lowpass=1"]).loss.lambda_lowpass == 1.0
    with pytest.raises(Exception, match="align_lowpass"):
        load_train_config("paper", ["loss.lambda_lowpass=1"])
