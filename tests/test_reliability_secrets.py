"""Secrets and unpickling: the access URL never leaves the process, nothing is unpickled but the FLAME files.

- A whole run as real processes (fetch through faults with -vv, a fetch that fails, convert, info) with the
  URL in the environment: its secret appears in no stdout, stderr, file of the fetched folder or the store
  (metadata and chunks), store attribute, or file under HOME / XDG_CONFIG_HOME.
- The tool writes no configuration file at all (HOME and XDG_CONFIG_HOME stay empty), so there is no
  file whose mode could be too open.
- Only nersemble_zarr/flame/model.py unpickles anything (the FLAME files of the folder the user points
  to); tracking npz files are read with pickles disabled (the bad-input matrix feeds one a pickled
  object array whose unpickling would create a file).
"""

from __future__ import annotations

import ast
import json
import os
import pickle
import shutil
import subprocess
from pathlib import Path

import numpy.testing._private.utils as numpy_test_utils
import pytest

import nersemble_zarr
from campaign import assert_secret_absent, store_attributes
from crash_campaign import cli_command
from nersemble_zarr.errors import FlameError
from nersemble_zarr.flame.model import MODEL_FILE, load_flame_assets
from nersemble_zarr.synthetic.server import Faults, serve

PACKAGE = Path(nersemble_zarr.__file__).parent
CLI = PACKAGE.parent / "cli"
UNPICKLING_MODULES = {"pickle", "cPickle", "_pickle", "dill", "cloudpickle", "joblib", "marshal", "shelve", "torch"}


def run_logged(command: list, env: dict[str, str], outputs: dict[str, str], name: str) -> subprocess.CompletedProcess:
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    outputs[f"{name} stdout"], outputs[f"{name} stderr"] = done.stdout, done.stderr
    return done


def file_texts(*folders: Path) -> dict[str, str]:
    """Every file below the folders, decoded leniently (chunks too: a secret could hide in any bytes)."""
    return {str(p): p.read_bytes().decode("latin1") for folder in folders for p in folder.rglob("*") if p.is_file()}


def test_the_access_url_appears_nowhere(synthetic_root, tmp_path):
    home, config = tmp_path / "home", tmp_path / "config"
    home.mkdir(), config.mkdir()
    root, failing_root, store = tmp_path / "fetched", tmp_path / "fetched-again", tmp_path / "bench.zarr"
    served = Path(shutil.copytree(synthetic_root, tmp_path / "server"))
    missing = served / "nvs/388/sequences/GLASSES/pointclouds/frame_00003.pcd"
    outputs: dict[str, str] = {}
    # one dropped connection: the retry is logged (the CLI's backoff makes every retry cost a second)
    faults = Faults(drop_after_bytes=2000, drop_requests=1, paths=("nvs/388/calibration/camera_params.json",))
    with serve(served, faults) as server:
        env = {**os.environ, "NERSEMBLE_BENCHMARK_URL": server.url, "HOME": str(home),
               "XDG_CONFIG_HOME": str(config)}
        for benchmark in ("nvs", "mono_flame_avatar"):
            done = run_logged(cli_command("fetch", root, benchmark, "-vv"), env, outputs, f"fetch {benchmark}")
            assert done.returncode == 0, done.stderr
        assert "retrying" in outputs["fetch nvs stderr"] and "GET" in outputs["fetch nvs stderr"]
        missing.unlink()
        failed = run_logged(cli_command("fetch", failing_root, "nvs", "--pointcloud-frames", "0,3", "-vv"),
                            env, outputs, "failing fetch")
        assert failed.returncode == 1 and "frame_00003.pcd" in failed.stderr
        secret, url = server.token, server.url
    assert run_logged(cli_command("convert", root, store), env, outputs, "convert").returncode == 0
    assert run_logged(cli_command("info", store, "--json"), env, outputs, "info").returncode == 0
    for text in (secret, url):
        assert_secret_absent(text, **outputs, **file_texts(root, failing_root, store, home, config),
                             store_attributes=json.dumps(store_attributes(store)))
    assert list(home.rglob("*")) == [] and list(config.rglob("*")) == [], "no configuration file is written"


def unpickling_sites(path: Path, base: Path = PACKAGE.parent) -> list[str]:
    """``file:function`` (file relative to ``base``) of every place in a module that unpickles: pickle-family
    loads, Unpickler subclasses and their use, and ``np.load(..., allow_pickle=True)``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    sites = []
    for function in [node for node in ast.walk(tree) if isinstance(node, (ast.FunctionDef, ast.ClassDef))]:
        for node in ast.walk(function):
            unpickles = (
                isinstance(node, ast.ClassDef) and any("Unpickler" in ast.unparse(base) for base in node.bases)
                or isinstance(node, ast.Call) and (
                    ast.unparse(node.func).split(".")[0] in UNPICKLING_MODULES and "load" in ast.unparse(node.func)
                    or "Unpickler" in ast.unparse(node.func)
                    or any(k.arg == "allow_pickle" and ast.unparse(k.value) != "False" and
                           ast.unparse(node.func).endswith("load") for k in node.keywords))
            )
            if unpickles:
                sites.append(f"{path.relative_to(base).as_posix()}:{function.name}")
    return sorted(set(sites))


def test_only_the_flame_files_are_ever_unpickled():
    """The FLAME loader (model file and landmark embeddings of the FLAME folder) is the only unpickling code,
    and no other module reaches its loaders; besides it only LPIPS reads torchvision's AlexNet weights, through
    torch's weights-only unpickler (tensors and plain containers, no callables)."""
    modules = [path for folder in (PACKAGE, CLI) for path in sorted(folder.rglob("*.py"))]
    lpips = PACKAGE / "evaluation" / "lpips.py"
    torch_loads = [node for node in ast.walk(ast.parse(lpips.read_text(encoding="utf-8")))
                   if isinstance(node, ast.Call) and ast.unparse(node.func) == "torch.load"]
    assert torch_loads and all(any(k.arg == "weights_only" and ast.unparse(k.value) == "True" for k in call.keywords)
                               for call in torch_loads)
    assert [site for path in modules for site in unpickling_sites(path)] == [
        "nersemble_zarr/evaluation/lpips.py:_load",
        "nersemble_zarr/flame/model.py:ChumpyFreeUnpickler",
        "nersemble_zarr/flame/model.py:_load_npy_dict",
        "nersemble_zarr/flame/model.py:load_pickle",
    ]
    loaders = {"load_pickle", "_load_npy_dict", "ChumpyFreeUnpickler"}
    outside = [path.name for path in modules if path != PACKAGE / "flame" / "model.py"
               and loaders & {node.id if isinstance(node, ast.Name) else getattr(node, "attr", None)
                              for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))}]
    assert outside == []


def test_the_unpickling_scan_finds_what_it_looks_for(tmp_path):
    """The scan above would notice a new unpickling site (it is not vacuous)."""
    sample = tmp_path / "sample.py"
    sample.write_text("import numpy as np, pickle, torch\n"
                      "def a(p):\n    return np.load(p, allow_pickle=True)\n"
                      "def b(f):\n    return pickle.load(f)\n"
                      "def c(p):\n    return np.load(p, allow_pickle=False)\n"
                      "def d(p):\n    return torch.load(p)\n"
                      "class E(pickle.Unpickler):\n    pass\n")
    assert unpickling_sites(sample, tmp_path) == ["sample.py:E", "sample.py:a", "sample.py:b", "sample.py:d"]


class RunsCode:
    """A pickle payload calling numpy's test helper ``runstring`` (an ``exec``) to create ``canary``."""

    def __init__(self, canary: Path) -> None:
        self.canary = canary

    def __reduce__(self):
        return numpy_test_utils.runstring, (f"import pathlib; pathlib.Path({str(self.canary)!r}).touch()", {})


def test_a_hostile_flame_file_cannot_run_code(tmp_path):
    canary = tmp_path / "code-ran"
    (tmp_path / MODEL_FILE).write_bytes(pickle.dumps({"v_template": RunsCode(canary)}, protocol=2))
    with pytest.raises(FlameError):
        load_flame_assets(tmp_path)
    assert not canary.exists()
