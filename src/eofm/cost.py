"""Measure what one job costs, for rules that cannot have a ``benchmark:``.

Snakemake refuses ``benchmark:`` on rules eligible for its between-workflow cache
(``cache:``), since a result taken from the cache has no run to measure. Those rules
declare the benchmark file as a named output (``cost=``) and their script wraps its work
in :func:`record_cost`, which writes the same TSV Snakemake would. The report
(:mod:`eofm.evaluate.benchmarks`) and SLURM sizing (:mod:`eofm.sizing`) then read it
unchanged, and a cached result carries the cost of the run that produced it.
"""

from __future__ import annotations

import os
import resource
import socket
import sys
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eofm.evaluate.benchmarks import HEADER
from eofm.io import atomic_path

__all__ = ["Cost", "job_cost", "measure", "record_cost", "write_cost"]

# Extra trailing column after Snakemake's fixed header; readers ignore trailing columns.
COLUMNS = (*HEADER, "host")


@dataclass(frozen=True)
class Cost:
    """Wall time (s), peak resident memory (MB) and CPU time (s) of one job."""

    seconds: float
    max_rss_mb: float
    cpu_seconds: float
    host: str


def _rss_mb(usage: resource.struct_rusage) -> float:
    # ru_maxrss is in KiB on Linux, bytes on macOS
    scale = 1.0 if sys.platform == "darwin" else 1024.0
    return usage.ru_maxrss * scale / 1e6


def _cpu_s(usage: resource.struct_rusage) -> float:
    return usage.ru_utime + usage.ru_stime


@contextmanager
def measure() -> Iterator[list[Cost]]:
    """Measure the enclosed block; the yielded list holds its :class:`Cost` afterwards.

    Peak RSS is the process's (and its waited-for children's) high-water mark, as
    Snakemake's own benchmark reports the job's peak; CPU time counts only the block.
    """
    result: list[Cost] = []
    start = time.perf_counter()
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_before = _cpu_s(own) + _cpu_s(children)
    yield result
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    result.append(
        Cost(
            seconds=time.perf_counter() - start,
            max_rss_mb=max(_rss_mb(own), _rss_mb(children)),
            cpu_seconds=_cpu_s(own) + _cpu_s(children) - cpu_before,
            host=socket.gethostname(),
        )
    )


def write_cost(cost: Cost, path: str | os.PathLike[str]) -> Path:
    """Write ``cost`` as a Snakemake benchmark TSV (with a trailing ``host`` column)."""
    hours, rest = divmod(int(cost.seconds), 3600)
    minutes, seconds = divmod(rest, 60)
    values = {
        "s": f"{cost.seconds:.4f}",
        "h:m:s": f"{hours}:{minutes:02d}:{seconds:02d}",
        "max_rss": f"{cost.max_rss_mb:.2f}",
        "cpu_time": f"{cost.cpu_seconds:.2f}",
        "host": cost.host,
    }
    row = [values.get(column, "NA") for column in COLUMNS]
    with atomic_path(path) as tmp:
        tmp.write_text("\t".join(COLUMNS) + "\n" + "\t".join(row) + "\n")
    return Path(path)


@contextmanager
def record_cost(path: str | os.PathLike[str]) -> Iterator[None]:
    """Run the block and write its cost to ``path``; nothing is written if it fails."""
    with measure() as cost:
        yield
    write_cost(cost[0], path)


def job_cost(output: Any) -> AbstractContextManager[None]:
    """:func:`record_cost` into the job's ``cost`` output if it has one, else nothing.

    One script serves a cached rule (``cost`` output) and its uncached sibling (the
    `local` route, whose ``benchmark:`` Snakemake writes itself).
    """
    names = output.keys() if hasattr(output, "keys") else ()
    return record_cost(output.cost) if "cost" in names else nullcontext()
