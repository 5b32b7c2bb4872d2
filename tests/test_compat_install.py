"""The official README's FlameProvider example runs with what ``pip install nersemble_zarr`` (no extras) brings.

Installing the package into a fresh virtual environment would download torch and open3d (gigabytes), so the
test builds that environment's view in a fresh interpreter instead: every installed distribution that the
package's declared requirements (``[project] dependencies`` of pyproject.toml, the list ``pip install .``
installs, no extras) do not pull in, directly or through their own requirements, is made unimportable there.
The README's lines must then run, and every module they import must belong to a declared distribution. (An
optional import, such as pandas trying pyarrow, then meets the ImportError it meets after a plain install.)
"""

from __future__ import annotations

import importlib.metadata as metadata
import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

PROJECT = Path(__file__).resolve().parent.parent

README_EXAMPLE = """
import importlib.abc, json, sys

class Undeclared(importlib.abc.MetaPathFinder):
    # top-level modules of distributions a no-extras install would not bring
    blocked = set(json.loads(sys.argv[2]))

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in self.blocked:
            raise ModuleNotFoundError(f"No module named {name!r} (not installed by the declared dependencies)")
        return None

sys.meta_path.insert(0, Undeclared())
from nersemble_zarr.compat import FlameProvider, MonoFlameAvatarDataManager

benchmark_folder, participant_id, sequence_name, timestep = sys.argv[1], 393, "EXP-1-head", 2
flame_tracking = MonoFlameAvatarDataManager(benchmark_folder, participant_id).load_flame_tracking(sequence_name)
flame_provider = FlameProvider(flame_tracking)
mesh = flame_provider.get_mesh(timestep)  # the official README's own line, imports changed

kind = type(mesh)
print(json.dumps({"type": f"{kind.__module__}.{kind.__name__}", "shape": list(mesh.vertices.shape),
                  "modules": sorted({name.split(".")[0] for name in sys.modules})}))
"""


def declared_closure() -> set[str]:
    """Every distribution a no-extras install of this project brings: its dependencies and theirs, recursively
    (with the extras each requirement names, markers evaluated for this interpreter)."""
    project = tomllib.loads((PROJECT / "pyproject.toml").read_text())["project"]
    pending = [(Requirement(text), "") for text in project["dependencies"]]
    closure: set[str] = set()
    while pending:
        requirement, extra = pending.pop()
        if requirement.marker is not None and not requirement.marker.evaluate({"extra": extra}):
            continue
        name = canonicalize_name(requirement.name)
        key = f"{name}[{','.join(sorted(requirement.extras))}]"
        if key in closure:
            continue
        closure.update({key, name})
        for text in metadata.requires(name) or []:
            for wanted in ("", *requirement.extras):
                pending.append((Requirement(text), wanted))
    return {name for name in closure if "[" not in name}


def imported_distributions(modules: list[str]) -> dict[str, set[str]]:
    """Top-level module -> the distributions that install it, for modules outside the standard library (modules
    no distribution lists, such as Cython's runtime modules and extension internals registered under their own
    top-level names, are left out)."""
    owners = metadata.packages_distributions()
    found = {}
    for module in modules:
        if module in sys.stdlib_module_names or module in sys.builtin_module_names or module == "nersemble_zarr":
            continue
        if module.startswith("_") and module.lstrip("_") in sys.stdlib_module_names:
            continue  # a standard module's C half (_decimal, _ssl, ...)
        if module in owners:
            found[module] = {canonicalize_name(name) for name in owners[module]}
    return found


def undeclared_modules(closure: set[str]) -> list[str]:
    """Top-level modules installed here only by distributions outside ``closure`` (nersemble_zarr's own aside)."""
    return sorted(module for module, owners in metadata.packages_distributions().items()
                  if module != "nersemble_zarr" and not {canonicalize_name(name) for name in owners} & closure)


def test_the_readme_flameprovider_example_needs_nothing_beyond_the_declared_dependencies(synthetic_root,
                                                                                        standin_dir):
    env = {**os.environ, "NERSEMBLE_FLAME_DIR": str(standin_dir)}
    closure = declared_closure()
    blocked = json.dumps(undeclared_modules(closure))
    result = subprocess.run([sys.executable, "-c", README_EXAMPLE, str(synthetic_root), blocked],
                            capture_output=True, text=True, env=env, cwd=PROJECT, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["type"] == "trimesh.base.Trimesh" and report["shape"] == [5023, 3]
    imported = imported_distributions(report["modules"])
    assert "trimesh" in imported and "torch" in imported  # the mesh type and the model really were imported
    missing = {module: sorted(owners) for module, owners in imported.items() if not owners & closure}
    assert not missing, f"imported, but no declared dependency installs them: {missing}"
