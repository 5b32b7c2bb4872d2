"""What the benchmarks share: each measured phase runs in a fresh process so its peak memory is its own.

A benchmark module defines ``phase_NAME(args) -> dict`` functions; ``phases_of`` collects them, ``run_phase``
starts ``python -m MODULE --phase NAME ...`` and returns the JSON dict the child printed last, and
``report_phase`` is what the child does: run the phase, add its peak resident memory and print the dict.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
from typing import Any, Callable, Mapping

Phase = Callable[[Any], dict]


def peak_rss_mib() -> float:
    """This process's peak resident memory in MiB (``ru_maxrss``, KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


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
