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


def _fca_pools(net: nn.Module) -> list[list[tuple[int, int]]]:
    """The calls of channel-attention ``pool`` submodules, in execution order, as keys
    ``(id(pool), k)`` for the k-th call of that pool in one forward (a shared module, such as
    SIMNet's CAU applied twice, pools different inputs on each call). Grouped: pools that sit side
    by side in one ``fcas`` list (the parallel paths of one SMNet block) only depend on the block's
    input, so one stats pass collects the whole group."""
    named = {id(m.pool): n for n, m in net.named_modules()
             if isinstance(getattr(m, "pool", None), nn.AdaptiveAvgPool2d)}
    if not named:
        return []
    order: list[tuple[int, int]] = []
    calls: dict[int, int] = {}

    def record(m, i, o):
        k = calls.get(id(m), 0)
        calls[id(m)] = k + 1
        order.append((id(m), k))

    hooks = [m.register_forward_hook(record) for m in net.modules() if id(m) in named]
    try:
        with torch.inference_mode():
            mult = getattr(net, "multiple", 4)
            prm = next(net.parameters())
            net(torch.zeros(1, 3, 4 * mult, 4 * mult, device=prm.device, dtype=prm.dtype))
    finally:
        for h in hooks:
            h.remove()
    groups: list[list[tuple[int, int]]] = []
    keys: list[str] = []
    for call in order:
        name = named[call[0]]
        key = name.split(".fcas.")[0] if ".fcas." in name else f"{name}#{call[1]}"
        if keys and keys[-1] == key:
            groups[-1].append(call)
        else:
            groups.append([call])
            keys.append(key)
    return groups


def _starts(size: int, tile: int, mult: int) -> list[int]:
    if size <= tile:
        return [0]
    n = -(-size // tile)
    raw = [round(k * (size - tile) / (n - 1)) for k in range(n)] if n > 1 else [0]
    return sorted({(s // mult) * mult for s in raw} | {0})


def _spans(starts: list[int], size: int, tile: int, overlap: int) -> list[tuple[int, int, int, int]]:
    """(core start, core end, extended start, extended end) along one axis. Every extended window
    has the SAME length (the largest core plus both halos, within the image), shifted inward at the
    borders: each tile then allocates identical buffers, so memory stays at one tile's worth
    instead of fragmenting the heap with odd-sized edge tiles (and a GPU sees one shape). The core
    keeps at least ``overlap`` of context wherever the image has it."""
    cores = []
    for i, a in enumerate(starts):
        b = starts[i + 1] if i + 1 < len(starts) else size
        cores.append((a, min(size, max(b, a + tile)) if i + 1 == len(starts) else b))
    ext = min(size, max(b - a for a, b in cores) + 2 * overlap)
    return [(a, b, e0, e0 + ext) for a, b in cores for e0 in [min(max(0, a - overlap), size - ext)]]


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
    """``net(x)`` for x of shape (1, C, H, W), computed in tiles of ``tile`` x ``tile`` cores. With
    ``exact``, an ``overlap`` below the network's receptive field (:func:`min_exact_overlap`) is raised
    to it, so that the result equals the untiled one."""
    if x.ndim != 4:
        raise ValueError("tiled_forward takes a (B, C, H, W) tensor")
    if x.shape[0] != 1:
        return torch.cat([tiled_forward(net, xi[None], tile, overlap, exact, blend) for xi in x])
    mult = int(getattr(net, "multiple", 1))
    tile = max(mult, (tile // mult) * mult)
    overlap = (-(-overlap // mult)) * mult
    H, W = x.shape[-2:]
    if exact and (H > tile or W > tile):
        need = min_exact_overlap(net, blend)  # a smaller halo would make the tiles' seams show
        if need is not None and overlap < need:
            overlap = need
    H, W = x.shape[-2:]
    cl = torch.channels_last

    def run(t: torch.Tensor) -> torch.Tensor:  # NHWC for oneDNN / tensor cores, one tile at a time
        return net(t.contiguous(memory_format=cl))

    if H <= tile and W <= tile:
        return run(x)
    ph, pw = (-H) % mult, (-W) % mult
    xp = F.pad(x, (0, pw, 0, ph), mode="replicate") if (ph or pw) else x
    Hp, Wp = xp.shape[-2:]
    ys, xs = _starts(Hp, tile, mult), _starts(Wp, tile, mult)
    rows, cols = _spans(ys, Hp, tile, overlap), _spans(xs, Wp, tile, overlap)
    tiles = [(y0, y1, x0, x1, ey0, ey1, ex0, ex1)  # (core y0, y1, x0, x1, extended y0, y1, x0, x1)
             for (y0, y1, ey0, ey1) in rows for (x0, x1, ex0, ex1) in cols]

    groups = _fca_pools(net) if exact else []
    known: dict[tuple[int, int], torch.Tensor] = {}  # (pool id, call) -> whole-image mean
    state = {"collect": (), "core": None, "sums": {}, "counts": {}, "left": 0, "calls": {}}

    def make_hook(pid: int):
        def hook(module, inputs, output):
            k = state["calls"].get(pid, 0)
            state["calls"][pid] = k + 1
            key = (pid, k)
            if key in known:
                return known[key].to(output.dtype).expand_as(output)
            if key in state["collect"]:
                inp = inputs[0]
                cy0, cy1, cx0, cx1, ey0, ex0, eh = state["core"]
                s = eh // inp.shape[-2]  # this FCA's scale (1, 2 or 4)
                part = inp[..., (cy0 - ey0) // s:(cy1 - ey0) // s, (cx0 - ex0) // s:(cx1 - ex0) // s]
                tot = part.double().sum(dim=(-2, -1), keepdim=True)
                state["sums"][key] = tot if key not in state["sums"] else state["sums"][key] + tot
                state["counts"][key] = state["counts"].get(key, 0) + part.shape[-2] * part.shape[-1]
                state["left"] -= 1
                if state["left"] == 0:
                    raise _Stop
            return output

        return hook

    # The output buffer is allocated before any tile runs (assuming out channels = in channels, as
    # for SMNet; corrected on the first tile otherwise): the tiles' activations then always reuse
    # the same freed memory above it instead of being split around it (a lower peak).
    out = torch.zeros(1, x.shape[1], Hp, Wp, device=x.device, dtype=torch.float32)
    pools = {id(m): m for m in net.modules() if isinstance(m, nn.AdaptiveAvgPool2d)}
    handles = [pools[pid].register_forward_hook(make_hook(pid)) for pid in {pid for grp in groups for pid, _ in grp}]
    try:
        for grp in groups:
            state.update(collect=set(grp), sums={}, counts={})
            for (y0, y1, x0, x1, ey0, ey1, ex0, ex1) in tiles:
                state["core"] = (y0, y1, x0, x1, ey0, ex0, ey1 - ey0)
                state["left"] = len(grp)
                state["calls"] = {}
                try:
                    run(xp[..., ey0:ey1, ex0:ex1])
                except _Stop:
                    pass
            for key in state["collect"]:
                known[key] = (state["sums"][key] / state["counts"][key]).to(x.dtype)
        state["collect"] = ()
        # Tiles form a grid and each weight map is wy (x) wx, so the sum of the weights is separable:
        # two 1-D sums instead of a full-image buffer.
        wsum_y = torch.zeros(Hp, device=x.device, dtype=torch.float32)
        wsum_x = torch.zeros(Wp, device=x.device, dtype=torch.float32)
        seen_y, seen_x = set(), set()
        for (y0, y1, x0, x1, ey0, ey1, ex0, ex1) in tiles:
            state["calls"] = {}
            o = run(xp[..., ey0:ey1, ex0:ex1])
            if o.shape[1] != out.shape[1]:
                out = torch.zeros(1, o.shape[1], Hp, Wp, device=x.device, dtype=torch.float32)
            # keep the core plus half the halo on interior sides (overlapping, blended)
            ky0, ky1 = max(ey0, y0 - blend // 2), min(ey1, y1 + blend // 2)
            kx0, kx1 = max(ex0, x0 - blend // 2), min(ex1, x1 + blend // 2)
            wy = _ramp(ky1 - ky0, ky0 == 0, ky1 == Hp, blend, x.device)
            wx = _ramp(kx1 - kx0, kx0 == 0, kx1 == Wp, blend, x.device)
            w = (wy[:, None] * wx[None, :])[None, None]
            out[..., ky0:ky1, kx0:kx1] += o[..., ky0 - ey0:ky1 - ey0, kx0 - ex0:kx1 - ex0].float() * w
            if y0 not in seen_y:  # once per grid row (keyed by its core start: kept ranges can coincide)
                seen_y.add(y0)
                wsum_y[ky0:ky1] += wy
            if x0 not in seen_x:
                seen_x.add(x0)
                wsum_x[kx0:kx1] += wx
    finally:
        for h in handles:
            h.remove()
    out.div_(wsum_y.view(1, 1, Hp, 1)).div_(wsum_x.view(1, 1, 1, Wp))  # in place: no full-image temporaries
    return out[..., :H, :W].to(x.dtype)


_RADIUS_CACHE: dict[tuple, int | None] = {}


def receptive_radius(net: nn.Module, fn=None, probe: int = 97, detach_pools: bool = True) -> int | None:
    """How far (in pixels, each side) one output pixel of ``fn`` (default ``net``) sees its input: the
    support of the input gradient of a small block of centre outputs, for two random inputs (so that a
    ReLU that happens to be off does not hide a path). Global channel-attention pools
    (``nn.AdaptiveAvgPool2d``) are detached when ``detach_pools`` (exact tiling computes their
    whole-image means separately); otherwise, or for any other global statistic, the field reaches the
    probe's border and the answer is None (no halo makes tiles exact). Cached per network weights."""
    key = (id(net), detach_pools, probe, tuple((p.data_ptr(), tuple(p.shape)) for p in net.parameters()))
    if key in _RADIUS_CACHE:
        return _RADIUS_CACHE[key]
    fn = fn or net
    mult = int(getattr(net, "multiple", 1) or 1)
    n = -(-probe // mult) * mult
    c = n // 2
    prm = next(net.parameters(), None)
    dev, dt = (prm.device, prm.dtype) if prm is not None else ("cpu", torch.float32)
    pools = [m for m in net.modules() if isinstance(m, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d))]
    hooks = [m.register_forward_hook(lambda m, i, o: o.detach()) for m in pools] if detach_pools else []
    was = net.training
    net.eval()
    try:
        with torch.inference_mode(False), torch.enable_grad():
            support = torch.zeros(n, n, dtype=torch.bool)
            g = torch.Generator().manual_seed(0)
            for _ in range(2):
                x = torch.rand(1, 3, n, n, generator=g).to(dev, dt).requires_grad_(True)
                y = fn(x)
                y[..., c - 2:c + 3, c - 2:c + 3].float().sum().backward()  # every phase of a 1/4 grid
                support |= (x.grad.abs().sum(dim=(0, 1)) > 0).cpu()
    finally:
        for h in hooks:
            h.remove()
        net.train(was)
    rows, cols = support.any(dim=1).nonzero().clone(), support.any(dim=0).nonzero().clone()
    if len(rows) == 0:
        r = 0
    elif rows.min() == 0 or cols.min() == 0 or rows.max() == n - 1 or cols.max() == n - 1 or (pools and not detach_pools):
        r = None  # reaches the border: global, or wider than the probe
    else:
        r = int(max(c - rows.min(), rows.max() - c, c - cols.min(), cols.max() - c)) - 2
    _RADIUS_CACHE[key] = r
    return r


def min_exact_overlap(net: nn.Module, blend: int = 16, probes: tuple[int, ...] = (97, 193)) -> int | None:
    """The smallest ``overlap`` with which :func:`tiled_forward` (exact) equals the untiled output: the
    kept part of a tile reaches ``blend // 2`` into its halo, and every kept pixel needs the network's
    receptive field around it; rounded up to the network's ``multiple``. None: no halo is enough."""
    r = None
    for probe in probes:  # a small probe first (fast); a wider one for a wider field
        r = receptive_radius(net, probe=probe)
        if r is not None:
            break
    if r is None:
        return None
    mult = int(getattr(net, "multiple", 1) or 1)
    return -(-(r + blend // 2) // mult) * mult
