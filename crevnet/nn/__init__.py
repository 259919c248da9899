"""Pure-PyTorch building blocks of CrevNet. Never imports lightning, wandb or OpenCV."""

from crevnet.nn.block import IRevNetBlock, ResidualFunction, make_norm
from crevnet.nn.cells import ConvLSTMCell, LSTMState, SpatioTemporalLSTMCell
from crevnet.nn.conv import Conv3d, native_backward
from crevnet.nn.conventional import ConventionalDecoder, ConventionalEncoder
from crevnet.nn.coupling import BlockSpec, PairBijection, merge_halves, split_halves
from crevnet.nn.encoder import MAX_CLAMP, Encoder, EncoderConfig
from crevnet.nn.forms import (
    COUPLINGS,
    MIXINGS,
    AdditiveBlock,
    AffineBlock,
    CouplingBlock,
    IRNBlock,
    RevNetBlock,
    soft_clamp,
)
from crevnet.nn.invconv import InvertibleConv1x1
from crevnet.nn.memory import MemorySaving, ReversibleStep, SavedTensorCounter, recomputed, reversible_chain
from crevnet.nn.model import (
    DEFAULT_CONTEXT,
    DEFAULT_HORIZON,
    CrevNet,
    CrevNetConfig,
    check_horizon,
    check_memory_saving,
    load_config,
    sliding_windows,
    without_run_options,
)
from crevnet.nn.predictor import (
    AdditiveUpdate,
    ConvexUpdate,
    ConvSigmoidGate,
    PredictorConfig,
    PredictorState,
    ReversiblePredictor,
    TwoConvGate,
)
from crevnet.nn.reshape import depth_to_space, space_to_depth
from crevnet.nn.stream import FrameStream, StreamGraphs

__all__ = [
    "COUPLINGS",
    "DEFAULT_CONTEXT",
    "DEFAULT_HORIZON",
    "MAX_CLAMP",
    "MIXINGS",
    "AdditiveBlock",
    "AdditiveUpdate",
    "AffineBlock",
    "BlockSpec",
    "Conv3d",
    "ConvLSTMCell",
    "ConvSigmoidGate",
    "ConventionalDecoder",
    "ConventionalEncoder",
    "ConvexUpdate",
    "CouplingBlock",
    "CrevNet",
    "CrevNetConfig",
    "Encoder",
    "EncoderConfig",
    "FrameStream",
    "IRNBlock",
    "IRevNetBlock",
    "InvertibleConv1x1",
    "LSTMState",
    "MemorySaving",
    "PairBijection",
    "PredictorConfig",
    "PredictorState",
    "ResidualFunction",
    "RevNetBlock",
    "ReversiblePredictor",
    "ReversibleStep",
    "SavedTensorCounter",
    "SpatioTemporalLSTMCell",
    "StreamGraphs",
    "TwoConvGate",
    "check_horizon",
    "check_memory_saving",
    "depth_to_space",
    "load_config",
    "make_norm",
    "merge_halves",
    "native_backward",
    "recomputed",
    "reversible_chain",
    "sliding_windows",
    "soft_clamp",
    "space_to_depth",
    "split_halves",
    "without_run_options",
]
