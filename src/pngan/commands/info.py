"""``pngan info``: what this installation knows — networks, presets, data formats, shared folder."""

from __future__ import annotations

import argparse
import platform


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--params", action="store_true", help="also build each network and count its parameters")


def run(args: argparse.Namespace) -> int:
    import torch

    from pngan import __version__
    from pngan.nets import registry
    from pngan.shared import shared_dir

    print(f"pngan {__version__}  torch {torch.__version__}  python {platform.python_version()}")
    dev = "cuda: " + torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu only"
    print(f"device: {dev}; torch threads: {torch.get_num_threads()}")
    print("networks:")
    for name in registry.available():
        line = f"  {name:22s} {registry.role_of(name)}"
        if args.params:
            try:
                net = registry.build(name)
                line += f"  {sum(p.numel() for p in net.parameters()):,} parameters"
            except Exception as e:  # pragma: no cover - informational only
                line += f"  (could not build: {e})"
        print(line)
    from pngan.train.config import PRESETS
    from pngan.train.denoiser_config import PRESETS as DENOISER_PRESETS

    print("training presets (pngan train): " + ", ".join(sorted(PRESETS)))
    print("denoiser presets (train-denoiser, benchmark): " + ", ".join(sorted(DENOISER_PRESETS)))
    from pngan.data.specs import FORMATS

    print(f"data formats: {', '.join(FORMATS)} (FORMAT:PATH[@train|@test])")
    print("synthetic settings: awgn (setting 1), raw (setting 2), calibrated (fitted on real pairs; ours)")
    sd = shared_dir()
    print(f"shared folder: {sd if sd else 'absent (set $PNGAN_SHARED)'}")
    return 0
