"""Run the ingest job in a process of its own, optionally with a task that fails its first attempt.

Test helper, started as a subprocess from the repository root::

    python tests/fault_runner.py [--master 'local[2,2]'] [--conf k=v ...] \\
        [--fail-first-attempt MARKER_DIR] -- --sources S --lake L --run-date D --dev-key

``--fail-first-attempt`` wraps what ``unify.order_events`` and ``unify.build_interactions`` return
(looked up through the module by ``crossrec.ingest.pipeline``) in an Arrow identity step whose
every task raises on its first attempt, after passing on its first batch. Each call of the step
touches ``<MARKER_DIR>/<transform>-s<stage>-p<partition>-a<attempt>.<failed|ok>``
from inside the task, so the test can see that the fault fired and that the retry succeeded.
Exits with the job's status.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any, Callable, Iterator

ROOT = Path(__file__).resolve().parents[1]
PATCHED = ("order_events", "build_interactions")


def failing_first_attempt(df: Any, marker_dir: str, label: str) -> Any:
    """``df`` through an identity ``mapInArrow`` whose tasks fail on attempt 0."""

    def identity(batches: Iterator[Any]) -> Iterator[Any]:
        from pyspark import TaskContext

        ctx = TaskContext.get()
        first = ctx.attemptNumber() == 0
        tag = f"{label}-s{ctx.stageId()}-p{ctx.partitionId()}-a{ctx.attemptNumber()}"
        for batch in batches:
            yield batch
            if first:
                break  # fail mid-stream: part of this task's output is already downstream
        if first:
            Path(marker_dir, f"{tag}.failed").touch()
            raise RuntimeError(f"injected fault in {tag}")
        Path(marker_dir, f"{tag}.ok").touch()

    return df.mapInArrow(identity, df.schema)


def patch_unify(marker_dir: str) -> None:
    from crossrec.ingest import unify

    def wrap(name: str, transform: Callable[..., Any]) -> Callable[..., Any]:
        return lambda *a, **k: failing_first_attempt(transform(*a, **k), marker_dir, name)

    for name in PATCHED:
        setattr(unify, name, wrap(name, getattr(unify, name)))


def command(ingest_args: list[str], master: str | None = "local[2]",
            conf: dict[str, str] | None = None, fail_first_attempt: str | None = None) -> list[str]:
    """The command line that runs this script (from the repository root)."""
    cmd = [sys.executable, str(Path(__file__).resolve())]
    cmd += ["--master", master] if master else []
    for k, v in (conf or {}).items():
        cmd += ["--conf", f"{k}={v}"]
    cmd += ["--fail-first-attempt", fail_first_attempt] if fail_first_attempt else []
    return [*cmd, "--", *ingest_args]


def environment(log_level: str = "ERROR") -> dict[str, str]:
    """The test process's environment for a runner: no pseudonymisation key (runs pass
    ``--dev-key``), no inherited Spark gateway, Spark logs at ``log_level``."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("CROSSREC_ID_KEY", "CROSSREC_MASTER")
           and not k.startswith("PYSPARK_GATEWAY")}
    env.update(CROSSREC_SPARK_LOG_LEVEL=log_level, PYSPARK_PYTHON=sys.executable,
               PYTHONUNBUFFERED="1")
    return env


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="fault_runner")
    p.add_argument("--master", help="Spark master, e.g. 'local[2,2]' (2 cores, 2 attempts a task)")
    p.add_argument("--conf", action="append", default=[], metavar="K=V")
    p.add_argument("--fail-first-attempt", metavar="MARKER_DIR")
    p.add_argument("ingest_args", nargs=argparse.REMAINDER)
    a = p.parse_args(argv)
    ingest_args = a.ingest_args[1:] if a.ingest_args[:1] == ["--"] else a.ingest_args
    # The Python workers must have pyarrow (mapInArrow) and find tests/ and jobs/.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])
    sys.path.insert(0, str(ROOT))

    from crossrec.session import get_session
    from jobs import ingest

    conf = dict(kv.split("=", 1) for kv in a.conf)
    spark = get_session("crossrec-ingest", master=a.master, conf=conf)  # main() reuses it
    level = os.environ.get("CROSSREC_SPARK_LOG_LEVEL", "").upper()
    if level in ("INFO", "DEBUG", "TRACE", "ALL"):
        # Spark 4's setLogLevel acts only when the level differs from the root logger's, and
        # the root is already INFO (the WARN is a console filter of the shell): step away and
        # back so the requested level really reaches the console.
        spark.sparkContext.setLogLevel("ERROR")
        spark.sparkContext.setLogLevel(level)
    if a.fail_first_attempt:
        Path(a.fail_first_attempt).mkdir(parents=True, exist_ok=True)
        patch_unify(a.fail_first_attempt)
    return ingest.main(ingest_args)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
