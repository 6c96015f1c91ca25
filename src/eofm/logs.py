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
        except BaseException as err:
            stream.write(traceback.format_exc())
            for line in cause_lines(err):
                to_console(f"eofm: {line}")
            to_console(f"eofm: job failed, traceback in {log_path}")
            raise
        finally:
            for console, old in zip(redirected, previous, strict=True):
                console.setStream(old)
            root.removeHandler(handler)
            logging.captureWarnings(False)


def to_console(message: str) -> None:
    """Print ``message`` on the real console even inside `job_log`.

    Inside a job ``sys.stderr`` is the log file, which nobody opens when the job
    succeeds; warnings and failure causes must show where the run is watched.
    """
    print(message, file=sys.__stderr__ or sys.stderr, flush=True)


def cause_lines(err: BaseException) -> list[str]:
    """``Class: first line of the message`` for ``err``, and its root cause if that adds to it.

    Snakemake shows only "see log"; the first line of an eofm error already names the
    file, the variable and what was expected, so it is what the console needs.
    """
    lines = [_one_line(err)]
    root, seen = err, {id(err)}
    while (nxt := root.__cause__ or root.__context__) is not None and id(nxt) not in seen:
        seen.add(id(nxt))
        root = nxt
    if root is not err:
        first = _one_line(root)
        if first.split(": ", 1)[-1] not in lines[0]:
            lines.append(f"caused by {first}")
    return lines


def _one_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0]}" if text else type(err).__name__


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
