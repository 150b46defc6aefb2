"""Tiled inference whose output equals the untiled output, with memory bounded by the tile.

Two things make naive tiling of SMNet differ from running it on the whole image:

1. the receptive field: each output pixel depends on a neighbourhood, so every tile is extended by
   a halo (``overlap``) of context on each side, and only its core is kept (overlapping cores are
   blended with a weight map that ramps across ``blend`` pixels);
2. Fast Channel Attention pools GLOBALLY: each FCA scales its channels by a function of the mean of
   its input over the whole image. With ``exact=True`` (default) these means are computed first,
   in order: stats pass k runs every tile up to FCA k (whose predecessors already use the known
   whole-image means), accumulates the sum of FCA k's input over the tile cores, and stops; the
   final pass runs every tile with all means fixed. The parallel paths of one block are collected
   in the same pass (their inputs do not depend on each other). Tile origins are multiples of the network's
   ``multiple`` (4 for SMNet) so the 1/2 and 1/4 resolution grids line up, and the image is padded
   to that multiple exactly as the network pads it (bottom/right, edge replication), so the means
   cover the same pixels as in the untiled run. Cost: about (number of blocks)/2 + 1 forward passes
   (7 for the paper SMNet: one per block, plus the final pass); ``exact=False`` pools per tile instead (one pass, approximate).

Images no larger than one tile run in one untiled forward pass.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


class _Stop(Exception):
    pass


def _fca_pools(net: nn.Module) -> list[list[nn.Module]]:
    """The ``pool`` submodules of channel-attention layers, in execution order, grouped: pools that
    sit side by side in one ``fcas`` list (the parallel paths of one SMNet block) only depend on
    the block's input, so one stats pass collects the whole group."""
    named = [(n, m.pool) for n, m in net.named_modules()
             if isinstance(getattr(m, "pool", None), nn.AdaptiveAvgPool2d)]
    if not named:
        return []
    order: list[int] = []
    ids = {id(p): i for i, (_, p) in enumerate(named)}
    hooks = [p.register_forward_hook(lambda m, i, o: order.append(ids[id(m)])) for _, p in named]
    try:
        with torch.inference_mode():
            mult = getattr(net, "multiple", 4)
            prm = next(net.parameters())
            net(torch.zeros(1, 3, 4 * mult, 4 * mult, device=prm.device, dtype=prm.dtype))
    finally:
        for h in hooks:
            h.remove()
    groups: list[list[nn.Module]] = []
    keys: list[str] = []
    seen = set()
    for i in order:
        if i in seen:
            continue
        seen.add(i)
        name, pool = named[i]
        key = name.split(".fcas.")[0] if ".fcas." in name else name
        if keys and keys[-1] == key:
            groups[-1].append(pool)
        else:
            groups.append([pool])
            keys.append(key)
    return groups


def _starts(size: int, tile: int, mult: int) -> list[int]:
    if size <= tile:
        return [0]
    n = -(-size // tile)
    raw = [round(k * (size - tile) / (n - 1)) for k in range(n)] if n > 1 else [0]
    return sorted({(s // mult) * mult for s in raw} | {0})


def _ramp(n: int, lo_edge: bool, hi_edge: bool, blend: int, device) -> torch.Tensor:
    w = torch.ones(n, device=device)
    b = min(blend, n // 2)
    if b > 0:
        r = (torch.arange(b, device=device, dtype=torch.float32) + 0.5) / b
        if not lo_edge:
            w[:b] = r
        if not hi_edge:
            w[n - b:] = r.flip(0)
    return w


@torch.no_grad()
def tiled_forward(
    net: nn.Module,
    x: torch.Tensor,
    tile: int = 512,
    overlap: int = 96,
    exact: bool = True,
    blend: int = 16,
) -> torch.Tensor:
    """``net(x)`` for x of shape (1, C, H, W), computed in tiles of ``tile`` x ``tile`` cores."""
    if x.ndim != 4:
        raise ValueError("tiled_forward takes a (B, C, H, W) tensor")
    if x.shape[0] != 1:
        return torch.cat([tiled_forward(net, xi[None], tile, overlap, exact, blend) for xi in x])
    mult = int(getattr(net, "multiple", 1))
    tile = max(mult, (tile // mult) * mult)
    overlap = (-(-overlap // mult)) * mult
    H, W = x.shape[-2:]
    if H <= tile and W <= tile:
        return net(x)
    ph, pw = (-H) % mult, (-W) % mult
    xp = F.pad(x, (0, pw, 0, ph), mode="replicate") if (ph or pw) else x
    Hp, Wp = xp.shape[-2:]
    ys, xs = _starts(Hp, tile, mult), _starts(Wp, tile, mult)
    tiles = []  # (core y0, y1, x0, x1, ext y0, y1, x0, x1)
    for iy, y0 in enumerate(ys):
        y1 = ys[iy + 1] if iy + 1 < len(ys) else Hp
        y1 = min(Hp, max(y1, y0 + tile)) if iy + 1 == len(ys) else y1
        for ix, x0 in enumerate(xs):
            x1 = xs[ix + 1] if ix + 1 < len(xs) else Wp
            tiles.append((y0, y1, x0, x1, max(0, y0 - overlap), min(Hp, y1 + overlap),
                          max(0, x0 - overlap), min(Wp, x1 + overlap)))

    groups = _fca_pools(net) if exact else []
    known: dict[int, torch.Tensor] = {}  # pool id -> whole-image mean
    state = {"collect": (), "core": None, "sums": {}, "counts": {}, "left": 0}

    def make_hook(pid: int):
        def hook(module, inputs, output):
            if pid in known:
                return known[pid].to(output.dtype).expand_as(output)
            if pid in state["collect"]:
                inp = inputs[0]
                cy0, cy1, cx0, cx1, ey0, ex0, eh = state["core"]
                s = eh // inp.shape[-2]  # this FCA's scale (1, 2 or 4)
                part = inp[..., (cy0 - ey0) // s:(cy1 - ey0) // s, (cx0 - ex0) // s:(cx1 - ex0) // s]
                tot = part.double().sum(dim=(-2, -1), keepdim=True)
                state["sums"][pid] = tot if pid not in state["sums"] else state["sums"][pid] + tot
                state["counts"][pid] = state["counts"].get(pid, 0) + part.shape[-2] * part.shape[-1]
                state["left"] -= 1
                if state["left"] == 0:
                    raise _Stop
            return output

        return hook

    handles = [p.register_forward_hook(make_hook(id(p))) for grp in groups for p in grp]
    try:
        for grp in groups:
            state.update(collect={id(p) for p in grp}, sums={}, counts={})
            for (y0, y1, x0, x1, ey0, ey1, ex0, ex1) in tiles:
                state["core"] = (y0, y1, x0, x1, ey0, ex0, ey1 - ey0)
                state["left"] = len(grp)
                try:
                    net(xp[..., ey0:ey1, ex0:ex1])
                except _Stop:
                    pass
            for pid in state["collect"]:
                known[pid] = (state["sums"][pid] / state["counts"][pid]).to(x.dtype)
        state["collect"] = ()
        out = None
        wsum = torch.zeros(1, 1, Hp, Wp, device=x.device, dtype=torch.float32)
        for (y0, y1, x0, x1, ey0, ey1, ex0, ex1) in tiles:
            o = net(xp[..., ey0:ey1, ex0:ex1])
            if out is None:
                out = torch.zeros(1, o.shape[1], Hp, Wp, device=x.device, dtype=torch.float32)
            # keep the core plus half the halo on interior sides (overlapping, blended)
            ky0, ky1 = max(ey0, y0 - blend // 2), min(ey1, y1 + blend // 2)
            kx0, kx1 = max(ex0, x0 - blend // 2), min(ex1, x1 + blend // 2)
            wy = _ramp(ky1 - ky0, ky0 == 0, ky1 == Hp, blend, x.device)
            wx = _ramp(kx1 - kx0, kx0 == 0, kx1 == Wp, blend, x.device)
            w = (wy[:, None] * wx[None, :])[None, None]
            out[..., ky0:ky1, kx0:kx1] += o[..., ky0 - ey0:ky1 - ey0, kx0 - ex0:kx1 - ex0].float() * w
            wsum[..., ky0:ky1, kx0:kx1] += w
    finally:
        for h in handles:
            h.remove()
    out.div_(wsum)  # in place: one full-image buffer fewer at peak
    return out[..., :H, :W].to(x.dtype)
