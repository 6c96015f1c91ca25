"""Send a Snakemake job's output, warnings and traceback to its ``log:`` file."""

from __future__ import annotations

import logging
import os
import socket
import sys
import traceback
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from pathlib import Path


@contextmanager
def job_log(path: str | os.PathLike[str], threads: int | None = None) -> Iterator[logging.Logger]:
    """Redirect stdout/stderr (progress bars included) and logging into ``path``.

    On failure the traceback is written to the log before the exception propagates, so
    Snakemake's "see log" pointer leads to the cause.
    """
    log_path = Path(path)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    if threads:
        import torch

        torch.set_num_threads(threads)
    with open(log_path, "w", buffering=1) as stream:
        stream.write(where_this_runs() + "\n")
        handler = logging.StreamHandler(stream)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root = logging.getLogger()
        root.addHandler(handler)
        root.setLevel(logging.INFO)
        logging.captureWarnings(True)
        # Libraries (Lightning) attach console handlers at import time; point them here too.
        redirected = _console_handlers()
        previous = [handler.setStream(stream) for handler in redirected]
        try:
            with redirect_stdout(stream), redirect_stderr(stream):
                yield logging.getLogger("eofm")
        except BaseException:
            stream.write(traceback.format_exc())
            print(f"eofm: job failed, traceback in {log_path}", file=sys.stderr)
            raise
        finally:
            for console, old in zip(redirected, previous, strict=True):
                console.setStream(old)
            root.removeHandler(handler)
            logging.captureWarnings(False)


def where_this_runs() -> str:
    """One line: host, and under SLURM the job, partition and GPUs it was given.

    The first line of every job log, so a misrouted job (a GPU rule on a CPU partition)
    shows in its log, not only in the scheduler's records.
    """
    env = os.environ
    parts = [f"host={socket.gethostname()}"]
    if "SLURM_JOB_ID" in env:
        parts += [
            f"slurm_job={env['SLURM_JOB_ID']}",
            f"partition={env.get('SLURM_JOB_PARTITION', '?')}",
            f"cpus={env.get('SLURM_CPUS_PER_TASK', env.get('SLURM_CPUS_ON_NODE', '?'))}",
        ]
    parts.append(f"cuda_visible_devices={env.get('CUDA_VISIBLE_DEVICES', 'none')}")
    return "eofm job: " + " ".join(parts)


def _console_handlers() -> list[logging.StreamHandler]:
    """Stream handlers of every logger that write to the process's stdout or stderr."""
    loggers = [logging.getLogger()] + [
        logger
        for logger in logging.Logger.manager.loggerDict.values()
        if isinstance(logger, logging.Logger)
    ]
    return [
        handler
        for logger in loggers
        for handler in logger.handlers
        if type(handler) is logging.StreamHandler
        and handler.stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__)
    ]
