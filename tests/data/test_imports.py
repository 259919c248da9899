"""``import crevnet.data`` must not load the training stack or OpenCV."""

from __future__ import annotations

import subprocess
import sys


def test_import_crevnet_data_is_light() -> None:
    code = (
        "import sys, crevnet.data\n"
        "heavy = [m for m in ('lightning', 'pytorch_lightning', 'wandb', 'cv2') if m in sys.modules]\n"
        "print(heavy)\n"
        "crevnet.data.read_clip\n"
        "print('cv2' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert result.stdout.split() == ["[]", "True"]  # lazy names still resolve
