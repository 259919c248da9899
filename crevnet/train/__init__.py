"""Training glue: the LightningModule, the ``crevnet fit|validate|test`` CLI, callbacks, reports.

Importing ``crevnet.train`` loads lightning; ``crevnet`` and ``crevnet.nn`` never import it.
"""

from crevnet.train.module import CrevNetModule
from crevnet.train.schedule import LRSchedule, SamplingCurriculum

__all__ = ["CrevNetModule", "LRSchedule", "SamplingCurriculum"]
