"""crevnet: video prediction with reversible networks (CrevNet, Yu et al., ICLR 2020).

``import crevnet`` loads only torch and numpy: the training stack (lightning, wandb) and OpenCV are
imported by the modules that need them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["CrevNet", "CrevNetConfig", "Encoder", "EncoderConfig", "__version__"]

if TYPE_CHECKING:
    from crevnet.nn import CrevNet, CrevNetConfig, Encoder, EncoderConfig


def __getattr__(name: str) -> Any:
    # Lazy so that `import crevnet` stays fast and `crevnet.nn` is loaded on first use.
    if name in __all__ and name != "__version__":
        import crevnet.nn

        return getattr(crevnet.nn, name)
    raise AttributeError(f"module 'crevnet' has no attribute {name!r}")
