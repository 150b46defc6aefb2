"""MPRNet for denoising (Zamir et al., "Multi-Stage Progressive Image Restoration", CVPR 2021) in the
exact layout of the published code (swz30/MPRNet ``Denoising/MPRNet.py``; PNGAN's released
fine-tuned MPRNet uses the same keys). Self-contained: imports only torch and the registry.

Three stages (defaults n_feat=80, scale_unetfeats=48, scale_orsnetfeats=32, 8 CABs per ORB,
channel-attention reduction 4, no biases, 15,741,025 parameters):

1. the image cut into 4 quarters; each goes through a shallow conv+CAB and a 3-level U-Net encoder,
   top/bottom pairs are stitched side by side and decoded; a supervised attention module (SAM) gives
   the stage-1 image (halves stacked vertically) and gated features;
2. the image cut into top/bottom halves; shallow features concatenated with SAM features, an encoder
   with cross-stage feature fusion (CSFF) from stage 1's encoder/decoder, a decoder, SAM -> stage-2 image;
3. the full image; shallow features + SAM features -> original-resolution subnetwork (3 ORBs fed with
   upsampled stage-2 encoder/decoder features) -> ``tail`` conv, plus the input.

As published, a single PReLU (``act``) is shared by every channel-attention block of the network.
``forward`` returns ``[stage3, stage2, stage1]`` (final image first, as published); ``denoise``
returns the final image. H and W must be multiples of 8 for ``forward``: quartering halves them and
the U-Net halves twice more; ``denoise`` pads (reflect) and crops back, like the published test script.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from pngan.nets.registry import register


def _conv(cin: int, cout: int, k: int, bias: bool = False) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, k, padding=k // 2, bias=bias)


class _CALayer(nn.Module):
    def __init__(self, c: int, reduction: int, bias: bool):
        super().__init__()
        self.conv_du = nn.Sequential(nn.Conv2d(c, c // reduction, 1, bias=bias), nn.ReLU(inplace=True),
                                     nn.Conv2d(c // reduction, c, 1, bias=bias), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.conv_du(x.mean(dim=(2, 3), keepdim=True))


class _CAB(nn.Module):
    """Channel attention block: x + CA(conv(act(conv(x))))."""

    def __init__(self, c: int, k: int, reduction: int, bias: bool, act: nn.Module):
        super().__init__()
        self.CA = _CALayer(c, reduction, bias)  # registered before body: the published key order
        self.body = nn.Sequential(_conv(c, c, k, bias), act, _conv(c, c, k, bias))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.CA(self.body(x))


class _SAM(nn.Module):
    """Supervised attention: restored image = conv2(f) + x_img; features gated by sigmoid(conv3(img))."""

    def __init__(self, c: int, k: int, bias: bool):
        super().__init__()
        self.conv1 = _conv(c, c, k, bias)
        self.conv2 = _conv(c, 3, k, bias)
        self.conv3 = _conv(3, c, k, bias)

    def forward(self, f: torch.Tensor, x_img: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        img = self.conv2(f) + x_img
        return f + self.conv1(f) * torch.sigmoid(self.conv3(img)), img


class _Down(nn.Module):
    """Bilinear x0.5 then 1x1 conv C -> C+s."""

    def __init__(self, c: int, s: int):
        super().__init__()
        self.down = nn.Sequential(nn.Upsample(scale_factor=0.5, mode="bilinear", align_corners=False),
                                  nn.Conv2d(c, c + s, 1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(x)


class _Up(nn.Module):
    """Bilinear x2 then 1x1 conv C+s -> C (optionally adding a skip)."""

    def __init__(self, c: int, s: int):
        super().__init__()
        self.up = nn.Sequential(nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
                                nn.Conv2d(c + s, c, 1, bias=False))

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        x = self.up(x)
        return x if skip is None else x + skip


def _cabs(c: int, n: int, k: int, red: int, bias: bool, act: nn.Module) -> nn.Sequential:
    return nn.Sequential(*[_CAB(c, k, red, bias, act) for _ in range(n)])


class _Encoder(nn.Module):
    def __init__(self, n: int, k: int, red: int, act: nn.Module, bias: bool, s: int, csff: bool):
        super().__init__()
        chans = [n, n + s, n + 2 * s]
        self.encoder_level1 = _cabs(chans[0], 2, k, red, bias, act)
        self.encoder_level2 = _cabs(chans[1], 2, k, red, bias, act)
        self.encoder_level3 = _cabs(chans[2], 2, k, red, bias, act)
        self.down12 = _Down(chans[0], s)
        self.down23 = _Down(chans[1], s)
        self.csff = csff
        if csff:
            for i, c in enumerate(chans, 1):
                setattr(self, f"csff_enc{i}", nn.Conv2d(c, c, 1, bias=bias))
            for i, c in enumerate(chans, 1):
                setattr(self, f"csff_dec{i}", nn.Conv2d(c, c, 1, bias=bias))

    def forward(self, x, enc_prev=None, dec_prev=None) -> list[torch.Tensor]:
        levels = [self.encoder_level1, self.encoder_level2, self.encoder_level3]
        downs = [self.down12, self.down23]
        outs = []
        for i, level in enumerate(levels):
            if i:
                x = downs[i - 1](x)
            x = level(x)
            if enc_prev is not None and dec_prev is not None:  # cross-stage feature fusion
                x = x + getattr(self, f"csff_enc{i + 1}")(enc_prev[i]) + getattr(self, f"csff_dec{i + 1}")(dec_prev[i])
            outs.append(x)
        return outs


class _Decoder(nn.Module):
    def __init__(self, n: int, k: int, red: int, act: nn.Module, bias: bool, s: int):
        super().__init__()
        self.decoder_level1 = _cabs(n, 2, k, red, bias, act)
        self.decoder_level2 = _cabs(n + s, 2, k, red, bias, act)
        self.decoder_level3 = _cabs(n + 2 * s, 2, k, red, bias, act)
        self.skip_attn1 = _CAB(n, k, red, bias, act)
        self.skip_attn2 = _CAB(n + s, k, red, bias, act)
        self.up21 = _Up(n, s)
        self.up32 = _Up(n + s, s)

    def forward(self, enc: list[torch.Tensor]) -> list[torch.Tensor]:
        d3 = self.decoder_level3(enc[2])
        d2 = self.decoder_level2(self.up32(d3, self.skip_attn2(enc[1])))
        d1 = self.decoder_level1(self.up21(d2, self.skip_attn1(enc[0])))
        return [d1, d2, d3]


class _ORB(nn.Module):
    def __init__(self, c: int, k: int, red: int, act: nn.Module, bias: bool, num_cab: int):
        super().__init__()
        mods: list[nn.Module] = [_CAB(c, k, red, bias, act) for _ in range(num_cab)]
        mods.append(_conv(c, c, k))
        self.body = nn.Sequential(*mods)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class _ORSNet(nn.Module):
    def __init__(self, n: int, so: int, k: int, red: int, act: nn.Module, bias: bool, s: int, num_cab: int):
        super().__init__()
        for i in (1, 2, 3):
            setattr(self, f"orb{i}", _ORB(n + so, k, red, act, bias, num_cab))
        self.up_enc1 = _Up(n, s)
        self.up_dec1 = _Up(n, s)
        self.up_enc2 = nn.Sequential(_Up(n + s, s), _Up(n, s))
        self.up_dec2 = nn.Sequential(_Up(n + s, s), _Up(n, s))
        for kind in ("enc", "dec"):
            for i in (1, 2, 3):
                setattr(self, f"conv_{kind}{i}", nn.Conv2d(n, n + so, 1, bias=bias))

    def forward(self, x: torch.Tensor, enc: list[torch.Tensor], dec: list[torch.Tensor]) -> torch.Tensor:
        ups_e = [nn.Identity(), self.up_enc1, self.up_enc2]
        ups_d = [nn.Identity(), self.up_dec1, self.up_dec2]
        for i in range(3):
            x = getattr(self, f"orb{i + 1}")(x)
            x = x + getattr(self, f"conv_enc{i + 1}")(ups_e[i](enc[i])) + getattr(self, f"conv_dec{i + 1}")(ups_d[i](dec[i]))
        return x


@register("mprnet", role="denoiser")
class MPRNet(nn.Module):
    multiple = 8

    def __init__(self, *, in_c: int = 3, out_c: int = 3, n_feat: int = 80, scale_unetfeats: int = 48,
                 scale_orsnetfeats: int = 32, num_cab: int = 8, kernel_size: int = 3, reduction: int = 4,
                 bias: bool = False):
        super().__init__()
        n, k, red, s, so = n_feat, kernel_size, reduction, scale_unetfeats, scale_orsnetfeats
        act = nn.PReLU()  # shared by every CAB, as published
        for i in (1, 2, 3):
            setattr(self, f"shallow_feat{i}", nn.Sequential(_conv(in_c, n, k, bias), _CAB(n, k, red, bias, act)))
        self.stage1_encoder = _Encoder(n, k, red, act, bias, s, csff=False)
        self.stage1_decoder = _Decoder(n, k, red, act, bias, s)
        self.stage2_encoder = _Encoder(n, k, red, act, bias, s, csff=True)
        self.stage2_decoder = _Decoder(n, k, red, act, bias, s)
        self.stage3_orsnet = _ORSNet(n, so, k, red, act, bias, s, num_cab)
        self.sam12 = _SAM(n, 1, bias)
        self.sam23 = _SAM(n, 1, bias)
        self.concat12 = _conv(2 * n, n, k, bias)
        self.concat23 = _conv(2 * n, n + so, k, bias)
        self.tail = _conv(n + so, out_c, k, bias)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """``[stage3_img, stage2_img, stage1_img]``; H and W multiples of 8."""
        H, W = x.shape[-2:]
        top, bot = x[..., : H // 2, :], x[..., H // 2 :, :]
        quarters = [top[..., : W // 2], top[..., W // 2 :], bot[..., : W // 2], bot[..., W // 2 :]]

        # stage 1: four quarters, encoder features stitched left|right per half, decoded per half
        f1 = [self.stage1_encoder(self.shallow_feat1(q)) for q in quarters]
        feat1_top = [torch.cat(p, dim=3) for p in zip(f1[0], f1[1])]
        feat1_bot = [torch.cat(p, dim=3) for p in zip(f1[2], f1[3])]
        res1_top = self.stage1_decoder(feat1_top)
        res1_bot = self.stage1_decoder(feat1_bot)
        sam_top, img1_top = self.sam12(res1_top[0], top)
        sam_bot, img1_bot = self.sam12(res1_bot[0], bot)
        stage1_img = torch.cat([img1_top, img1_bot], dim=2)

        # stage 2: two halves with CSFF from stage 1, stitched top/bottom and decoded
        h_top = self.concat12(torch.cat([self.shallow_feat2(top), sam_top], dim=1))
        h_bot = self.concat12(torch.cat([self.shallow_feat2(bot), sam_bot], dim=1))
        f2_top = self.stage2_encoder(h_top, feat1_top, res1_top)
        f2_bot = self.stage2_encoder(h_bot, feat1_bot, res1_bot)
        feat2 = [torch.cat(p, dim=2) for p in zip(f2_top, f2_bot)]
        res2 = self.stage2_decoder(feat2)
        sam3, stage2_img = self.sam23(res2[0], x)

        # stage 3: full resolution
        h3 = self.concat23(torch.cat([self.shallow_feat3(x), sam3], dim=1))
        h3 = self.stage3_orsnet(h3, feat2, res2)
        return [self.tail(h3) + x, stage2_img, stage1_img]

    def denoise(self, x: torch.Tensor) -> torch.Tensor:
        """Final image, same size as ``x`` (pads right/bottom to a multiple of 8 with reflect, or
        replicate when the image is too small to reflect, then crops back)."""
        h, w = x.shape[-2:]
        ph, pw = (-h) % self.multiple, (-w) % self.multiple
        if ph or pw:
            mode = "reflect" if ph < h and pw < w else "replicate"
            x = F.pad(x, (0, pw, 0, ph), mode=mode)
        return self.forward(x)[0][..., :h, :w]
