"""`import crevnet` and `import crevnet.nn` must not load the training stack or OpenCV."""

import subprocess
import sys

import pytest

HEAVY = ("lightning", "pytorch_lightning", "wandb", "cv2", "onnx", "onnxruntime", "onnxscript")


@pytest.mark.parametrize(
    "module", ["crevnet", "crevnet.nn", "crevnet.testing", "crevnet.deploy.export", "crevnet.deploy.loader"]
)
def test_core_imports_stay_light(module):
    code = (
        f"import sys, {module}; import crevnet; crevnet.Encoder; "
        f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"{module} imported {out.stdout.strip()}"


def test_lazy_top_level_export():
    import crevnet
    from crevnet.nn import Encoder

    assert crevnet.Encoder is Encoder
    with pytest.raises(AttributeError):
        crevnet.DoesNotExist  # noqa: B018
