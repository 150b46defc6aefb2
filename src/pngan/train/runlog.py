"""``stats.jsonl`` (one JSON object per logged step) and sample strips for run folders."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch


class StatsLog:
    def __init__(self, path: str | Path, enabled: bool = True, truncate_after: int | None = None):
        self.path = Path(path)
        self.enabled = enabled
        if enabled and truncate_after is not None and self.path.is_file():
            # a resumed run rewrites the steps after its checkpoint: drop them
            keep = []
            for line in self.path.read_text().splitlines():
                try:
                    if json.loads(line).get("step", 0) <= truncate_after:
                        keep.append(line)
                except json.JSONDecodeError:
                    continue  # a line cut by a kill
            self.path.write_text("".join(x + "\n" for x in keep))

    def write(self, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        with open(self.path, "a") as f:
            f.write(json.dumps(record, sort_keys=True) + "\n")


def read_stats(path: str | Path) -> list[dict[str, Any]]:
    out = []
    p = Path(path)
    if p.is_file():
        for line in p.read_text().splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                pass
    return out


def save_strip(path: str | Path, images: list[torch.Tensor]) -> None:
    """Write images (each (3,H,W)) side by side with a 2-pixel white gap."""
    from pngan.io.images import write_image

    h = max(i.shape[1] for i in images)
    gap = torch.ones(3, h, 2)
    parts = []
    for k, im in enumerate(images):
        im = im.detach().float().cpu().clamp(0, 1)
        if im.shape[1] < h:
            im = torch.nn.functional.pad(im, (0, 0, 0, h - im.shape[1]), value=1.0)
        parts.append(im)
        if k < len(images) - 1:
            parts.append(gap)
    write_image(path, torch.cat(parts, dim=2))
