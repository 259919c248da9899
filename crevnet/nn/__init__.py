"""Pure-PyTorch building blocks of CrevNet. Never imports lightning, wandb or OpenCV."""

from crevnet.nn.block import IRevNetBlock, ResidualFunction, make_norm
from crevnet.nn.coupling import AdditiveCoupling, RevNetCoupling, merge_halves, split_halves
from crevnet.nn.encoder import Encoder, EncoderConfig
from crevnet.nn.memory import ReversibleStep, SavedTensorCounter, reversible_chain
from crevnet.nn.reshape import SpaceToDepth, depth_to_space, space_to_depth

__all__ = [
    "AdditiveCoupling",
    "Encoder",
    "EncoderConfig",
    "IRevNetBlock",
    "ResidualFunction",
    "RevNetCoupling",
    "ReversibleStep",
    "SavedTensorCounter",
    "SpaceToDepth",
    "depth_to_space",
    "make_norm",
    "merge_halves",
    "reversible_chain",
    "space_to_depth",
    "split_halves",
]
