"""pngan: learn a camera's real noise (PNGAN, Cai et al. NeurIPS 2021) and generate realistic
noisy/clean training pairs.

The public Python API is small and lazily imported so that ``import pngan`` stays cheap:

    from pngan import NoiseGenerator
    gen = NoiseGenerator.load("runs/my-run")
    noisy = gen(clean, generator=torch.Generator().manual_seed(0))
"""

__version__ = "0.1.0"

__all__ = ["NoiseGenerator", "GeneratedPairs", "PnganError", "__version__"]


def __getattr__(name):  # PEP 562 lazy attributes
    if name in ("NoiseGenerator", "GeneratedPairs"):
        from pngan.infer import api

        return getattr(api, name)
    if name == "PnganError":
        from pngan.errors import PnganError

        return PnganError
    raise AttributeError(f"module 'pngan' has no attribute {name!r}")
