"""Everything crevnet reads from and writes to disk, one home per job.

- :mod:`crevnet.io.atomic`: the one atomic, checked writer (every output file and folder).
- :mod:`crevnet.io.checkpoint`: the one checkpoint reader (``weights_only``), writer and
  compatibility check.
- :mod:`crevnet.io.runs`: where a run's files go and which run is the newest.

``import crevnet.io`` loads torch only when a checkpoint function is used.
"""

from __future__ import annotations
