"""``benchmarks/record.py``: the one record format every benchmark writes."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]


def _record():
    spec = importlib.util.spec_from_file_location("bench_record", REPO / "benchmarks" / "record.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # a dataclass's module must be importable by name
    spec.loader.exec_module(module)
    return module


def _git(repo: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t", *args],
        check=True,
        capture_output=True,
    )


def test_a_stamped_row_keeps_its_fields_and_gets_every_record_field_once(tmp_path: Path) -> None:
    record = _record()
    sitting = record.start(REPO / "benchmarks" / "train_step.py", ["--threads", "1", "--name", "a b"])
    row = sitting.stamp({"step_s": 1.5, "threads": 1})
    assert row["step_s"] == 1.5 and row["threads"] == 1
    assert set(record.FIELDS) <= set(row)
    assert row["torch"] == torch.__version__
    assert row["command"] == "python benchmarks/train_step.py --threads 1 --name 'a b'"
    assert row["date"].endswith("Z") and row["date"][:2] == "20"
    assert isinstance(row["cores"], int) and row["cores"] >= 1
    assert set(row["isa"]) <= {"avx2", "avx512", "amx"}
    assert str(row["cores"]) in row["machine"] and row["cpu"] in row["machine"]
    # the load average is spelled one way: the 1-minute figure before and after
    loads = [key for key in json.loads(json.dumps(row)) if "load" in key]
    assert sorted(loads) == ["load_after", "load_before"]
    assert all(row[key] is None or isinstance(row[key], float) for key in loads)
    assert sitting.stamp({}, load_after=0.25)["load_after"] == 0.25
    later = sitting.again()
    assert (later.command, later.commit, later.host) == (sitting.command, sitting.commit, sitting.host)


def test_the_machine_comes_from_cpuinfo(tmp_path: Path) -> None:
    record = _record()
    info = tmp_path / "cpuinfo"
    info.write_text(
        "processor\t: 0\nmodel name\t: Example CPU\nflags\t\t: fpu sse avx avx2 avx512f avx512bw amx_tile\n"
        "processor\t: 1\nmodel name\t: Example CPU\nflags\t\t: fpu sse avx avx2 avx512f avx512bw amx_tile\n"
    )
    host = record.machine(info)
    assert host["cpu"] == "Example CPU" and host["isa"] == ["avx2", "avx512", "amx"]
    assert host["machine"].endswith("Example CPU (avx2 avx512 amx)")
    info.write_text("model name\t: Old CPU\nflags\t\t: fpu sse avx\n")
    assert record.machine(info)["isa"] == [] and record.machine(info)["machine"].endswith("-core Old CPU")
    assert record.machine(tmp_path / "missing")["cpu"] == "unknown"


def test_the_commit_is_marked_dirty_when_a_tracked_file_changed(tmp_path: Path) -> None:
    record = _record()
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q")
    (repo / "a.txt").write_text("one\n")
    _git(repo, "add", "a.txt")
    _git(repo, "commit", "-q", "-m", "one")
    clean = record.git_commit(repo)
    assert len(clean) >= 7 and "+" not in clean
    (repo / "untracked.txt").write_text("not part of the tree\n")
    assert record.git_commit(repo) == clean  # untracked files do not make a tree dirty
    (repo / "a.txt").write_text("two\n")
    assert record.git_commit(repo) == clean + "+dirty"
    assert record.start(repo / "x.py", [], repo=repo).stamp({})["commit"] == clean + "+dirty"
    assert record.git_commit(tmp_path / "not-a-repo") == "unknown"
