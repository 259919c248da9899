"""The shipped configs by name (crevnet.configs) and ``crevnet config list | show | copy``."""

from __future__ import annotations

from pathlib import Path

import pytest

from crevnet.configs import CONFIG_DIR, config_names, config_path, resolve_config
from crevnet.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]


def test_the_repository_configs_folder_is_the_package_one() -> None:
    # one home for the files: configs/ (README commands) is a link to crevnet/configs, not a copy
    assert (REPO / "configs").resolve() == CONFIG_DIR
    assert (REPO / "configs").is_symlink()
    assert config_names() == sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))
    assert {"quickstart", "smoke", "mmnist_crevnet3d"} <= set(config_names())


def test_resolve_config_forms(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    shipped = str(CONFIG_DIR / "quickstart.yaml")
    assert resolve_config("quickstart") == resolve_config("quickstart.yaml") == shipped
    assert resolve_config("configs/quickstart.yaml") == shipped  # the README form, without a clone
    (tmp_path / "quickstart.yaml").write_text("model: {}\n")
    assert resolve_config("quickstart.yaml") == "quickstart.yaml"  # a file that exists wins
    assert resolve_config("sub/other.yaml") == "sub/other.yaml"  # a path stays a path (its error later)
    assert resolve_config("{model: {lr: 0.1}}") == "{model: {lr: 0.1}}"  # jsonargparse's inline form
    with pytest.raises(ConfigError, match=r"--config quickstrat: no such file .* are mfmnist_quickstart, "):
        resolve_config("quickstrat")
    with pytest.raises(ConfigError, match="no shipped config"):
        config_path("../pyproject")


def test_config_list_show_and_copy(tmp_path: Path, monkeypatch, run_cli, one_error_line) -> None:
    monkeypatch.chdir(tmp_path)
    code, out, _ = run_cli("config", "list")
    assert code == 0
    rows = dict(line.split(None, 1) for line in out.strip().splitlines())
    assert sorted(rows) == config_names() and rows["smoke"].startswith("Smoke test:")

    code, out, _ = run_cli("config", "show", "smoke")
    assert code == 0 and out == (CONFIG_DIR / "smoke.yaml").read_text()

    code, out, _ = run_cli("config", "copy", "smoke")
    assert code == 0 and "crevnet fit --config smoke.yaml" in out
    assert (tmp_path / "smoke.yaml").read_bytes() == (CONFIG_DIR / "smoke.yaml").read_bytes()
    code, _, err = run_cli("config", "copy", "smoke")  # never overwrites by surprise
    assert code == 2 and "smoke.yaml exists; pass --force" in one_error_line(err)
    (tmp_path / "smoke.yaml").write_text("edited\n")
    assert run_cli("config", "copy", "smoke", "--force")[0] == 0
    assert (tmp_path / "smoke.yaml").read_bytes() == (CONFIG_DIR / "smoke.yaml").read_bytes()
    (tmp_path / "mine").mkdir()
    assert run_cli("config", "copy", "quickstart", "mine")[0] == 0
    assert (tmp_path / "mine" / "quickstart.yaml").is_file()

    code, _, err = run_cli("config", "copy", "nope", "x.yaml")
    assert code == 2 and "the shipped configs are" in one_error_line(err)
    assert not (tmp_path / "x.yaml").exists()
