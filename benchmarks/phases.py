"""What the benchmarks share: each measured phase runs in a fresh process so its peak memory is its own.

A benchmark module defines ``phase_NAME(args) -> dict`` functions; ``phases_of`` collects them, ``run_phase``
starts ``python -m MODULE --phase NAME ...`` and returns the JSON dict the child printed last, and
``report_phase`` is what the child does: run the phase, add its peak resident memory and print the dict.
Every benchmark that measures a child process's peak memory reads it with :func:`peak_rss_mib`.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable, Mapping

Phase = Callable[[Any], dict]


def peak_rss_mib() -> float:
    """This process's own peak resident memory in MiB: VmHWM of /proc/self/status.

    Not ``ru_maxrss``: a child that ``subprocess`` starts with vfork (Python 3.10+ on Linux) shares its parent's
    memory until exec, and exec records that memory's high-water mark in the child's ``ru_maxrss``, so the child
    would report at least its parent's peak. VmHWM belongs to the child's own address space.
    """
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise OSError("/proc/self/status has no VmHWM line")


def phases_of(namespace: Mapping[str, Any]) -> dict[str, Phase]:
    """The ``phase_*`` functions of a module's globals, by name without the prefix."""
    return {name[len("phase_"):]: function for name, function in namespace.items() if name.startswith("phase_")}


def run_phase(module: str, phase: str, arguments: list[str], env: Mapping[str, str] | None = None) -> dict:
    """Run one phase of ``module`` in a child process and return the dict it printed on its last line."""
    command = [sys.executable, "-m", module, "--phase", phase, *arguments]
    output = subprocess.run(command, check=True, stdout=subprocess.PIPE, text=True, env=env).stdout
    return json.loads(output.strip().splitlines()[-1])


def report_phase(phases: Mapping[str, Phase], phase: str, args: Any) -> None:
    """In the child: run ``phase``, add ``peak_rss_mib`` and print the result as one JSON line."""
    result = phases[phase](args)
    result["peak_rss_mib"] = peak_rss_mib()
    print(json.dumps(result))
