"""The sources the toolkit fetches and converts, each described once (see ``base.Source``).

``get_source(name)`` returns a source's description; ``SOURCES`` lists them in CLI order. Adding a source means
writing one ``Source`` subclass and listing it here (docs/architecture.md walks through it).
"""

from __future__ import annotations

from types import MappingProxyType

from ..errors import CatalogueError, shown
from .base import BENCHMARK_ACCESS, DATASET_ACCESS, Access, Listing, Selection, Source
from .benchmarks import SvfrBenchmark, VideoBenchmark
from .dataset import Dataset

__all__ = ["Access", "BENCHMARK_ACCESS", "DATASET_ACCESS", "Listing", "SOURCES", "Selection", "Source",
           "get_source"]

SOURCES = MappingProxyType({
    source.name: source
    for source in (VideoBenchmark("nvs"), VideoBenchmark("mono_flame_avatar"), SvfrBenchmark(), Dataset())
})


def get_source(name: str) -> Source:
    """The description of the source ``name``; an unknown name is a CatalogueError naming the choices."""
    if name not in SOURCES:
        raise CatalogueError(f"Unknown benchmark or dataset {shown(name)}; expected one of {', '.join(SOURCES)}.")
    return SOURCES[name]
