"""Pipeline: every stage for one run date, in order, in one Spark session.

    ./spark-submit.sh pipeline --date 2026-11-23 --config crossrec.toml \\
        [--lake data/demo/lake] [--from STAGE] [--to STAGE] [--only STAGE] \\
        [--set train.pretrain_epochs=1 --set embed_items.encoder=hash:64 ...] \\
        [--master yarn --conf k=v ...]

Stages: ingest -> embed_items -> build_examples -> train -> score -> evaluate. Each stage is its
job's ``main`` called in-process with ``--lake``, ``--run-date`` and the options of its
``[stage]`` table in ``--config`` (``--set`` over them), so ``./spark-submit.sh JOB`` alone and
the pipeline run the same code with the same settings. Every stage is idempotent for the date: a
stage whose inputs' versions and parameters are unchanged publishes nothing (``skipped``), so
rerunning a date after a failure or a kill redoes only what is missing.

Every option of every selected stage is checked before the first stage starts. One JSON log
line per stage (``stage``, ``status`` ran|skipped|failed, ``rows_in``, ``rows_out``,
``quarantined``, ``seconds``, ``version``: counts only, never ids); a summary of all stages is
printed as JSON at the end. A failed stage stops the pipeline with its exit status (2 bad
configuration or input, 3 quality gate or training failure, 1 crash) and a message naming it;
what earlier stages published stays published.
"""
from __future__ import annotations

import importlib
import json
import logging
import sys
import time
import tomllib
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from crossrec.cli import job_parser, parse, setup_logging
from crossrec.lake import Lake, Manifest
from crossrec.logs import event
from crossrec.session import get_session
from crossrec.errors import ConfigError
from crossrec.settings import Settings, load_settings

log = logging.getLogger("crossrec.pipeline")


@dataclass(frozen=True)
class Stage:
    """One step: the job ``jobs/<name>.py`` (also its ``[name]`` table in --config), the
    dataset it publishes, and the (dataset, table) pairs whose rows it reads."""

    name: str
    output: str
    inputs: tuple[tuple[str, str], ...] = ()
    on_or_before: bool = False  # publishes only when its inputs change (a date may have none)


# The order is the pipeline; a new stage is one line here (and a task in dags/crossrec_daily.py).
STAGES: tuple[Stage, ...] = (
    Stage("ingest", "unified"),
    Stage("embed_items", "item_text", (("unified", "items"),), on_or_before=True),
    Stage("build_examples", "examples", (("unified", "events"),)),
    Stage("train", "model", (("examples", "examples"),)),
    Stage("score", "recommendations", (("unified", "events"),)),
    Stage("evaluate", "evaluation", (("unified", "events"),)),
)
NAMES = tuple(s.name for s in STAGES)


class StageFailed(Exception):
    def __init__(self, stage: str, code: int) -> None:
        super().__init__(stage, code)
        self.stage, self.code = stage, code


@dataclass(frozen=True)
class PipelineConfig:
    lake: str
    run_date: str
    stages: tuple[str, ...]
    settings: Settings                           # the --config file (empty without one)
    overrides: dict[str, dict[str, Any]]         # --set: stage -> option -> value


def select(first: str | None, last: str | None, only: list[str] | None) -> tuple[str, ...]:
    if only:
        return tuple(n for n in NAMES if n in only)
    lo = NAMES.index(first) if first else 0
    hi = NAMES.index(last) if last else len(NAMES) - 1
    return NAMES[lo:hi + 1]


def parse_overrides(items: list[str]) -> dict[str, dict[str, Any]]:
    """``["train.dim=16", "embed_items.force=true"]`` -> {"train": {"dim": 16}, "embed_items":
    {"force": True}}: values are TOML literals, a bare word a string. Raises ValueError."""
    out: dict[str, dict[str, Any]] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        stage, dot, option = key.partition(".")
        if not (sep and dot and option):
            raise ValueError(f"--set {item!r}: expected STAGE.KEY=VALUE")
        if stage not in NAMES:
            raise ValueError(f"--set {item!r}: unknown stage {stage!r}; stages: {', '.join(NAMES)}")
        try:
            value: Any = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            value = raw
        out.setdefault(stage, {})[option] = value
    return out


def to_argv(values: dict[str, Any]) -> list[str]:
    """Option values as a job's command line: ``true`` -> ``--flag``, ``false`` -> nothing (the
    flags default off), a list -> the option repeated, anything else -> ``--key value``."""
    argv: list[str] = []
    for key, value in values.items():
        flag = "--" + key.replace("_", "-")
        if isinstance(value, bool):
            argv += [flag] if value else []
        elif isinstance(value, list):
            for v in value:
                argv += [flag, str(v)]
        else:
            argv += [flag, str(value)]
    return argv


def parse_args(argv: list[str] | None) -> PipelineConfig:
    p = job_parser("pipeline", __doc__, "run date of every stage")
    p.add_argument("--from", dest="first", choices=NAMES, help="start at this stage")
    p.add_argument("--to", dest="last", choices=NAMES, help="stop after this stage")
    p.add_argument("--only", action="append", choices=NAMES,
                   help="run only this stage (repeatable)")
    p.add_argument("--set", action="append", default=[], metavar="STAGE.KEY=VALUE",
                   help="a stage option for this run, over --config (repeatable)")
    a = parse(p, argv, "pipeline")
    if a.only and (a.first or a.last):
        p.error("--only cannot be combined with --from/--to")
    stages = select(a.first, a.last, a.only)
    if not stages:
        p.error(f"--from {a.first} comes after --to {a.last}: no stage selected")
    try:  # a typo'd [table] or --set is a usage error too
        settings = load_settings(a.config, known_stages=(*NAMES, "pipeline")) if a.config \
            else Settings()
        overrides = parse_overrides(a.set)
    except (ConfigError, ValueError) as e:
        p.error(str(e))
    return PipelineConfig(a.lake, a.run_date, stages, settings, overrides)


def stage_module(name: str) -> ModuleType:
    """``jobs.<name>`` under pytest; the bare module under spark-submit (jobs/ is the script's
    folder locally, and spark-submit.sh ships the job files with --py-files on a cluster)."""
    return importlib.import_module(f"{__package__}.{name}" if __package__ else name)


def stage_argv(cfg: PipelineConfig, name: str) -> list[str]:
    """The stage's command line: lake and date, then its [table] of the file with ``--set``
    over it, spelled out (so a job needs no --config support of its own)."""
    values = {**cfg.settings.section(name), **cfg.overrides.get(name, {})}
    return ["--lake", cfg.lake, "--run-date", cfg.run_date, *to_argv(values)]


def check_all(cfg: PipelineConfig) -> None:
    """Every selected stage's options, parsed as the stage will parse them: a bad value in
    ``train`` stops the run before ``ingest`` starts (exit 2, naming the stage)."""
    for name in cfg.stages:
        module = stage_module(name)
        if hasattr(module, "parse_args"):
            try:
                module.parse_args(stage_argv(cfg, name))
            except SystemExit as e:
                if e.code:
                    where = f"[{name}] of {cfg.settings.source}, " if cfg.settings.source else ""
                    log.error("stage %s: invalid options (%s--set), see above; nothing was run",
                              name, where)
                raise


def published(lake: Lake, stage: Stage, run_date: str) -> Manifest | None:
    if stage.on_or_before:
        return lake.manifest_on_or_before(stage.output, run_date)
    return lake.manifest(stage.output, run_date)


def rows_in(lake: Lake, stage: Stage, run_date: str) -> dict[str, int]:
    out = {}
    for dataset, table in stage.inputs:
        m = lake.manifest_on_or_before(dataset, run_date)
        if m is not None and "rows" in m.tables.get(table, {}):
            out[f"{dataset}/{table}"] = int(m.tables[table]["rows"])
    return out


def facts(lake: Lake, stage: Stage, run_date: str, before: Manifest | None) -> dict[str, Any]:
    """The stage's log line fields from what is published after it ran."""
    after = published(lake, stage, run_date)
    if after is None:
        return {"status": "ran", "rows_in": rows_in(lake, stage, run_date)}
    extra = after.extra
    read = extra.get("read")
    quarantined = extra.get("quarantined")
    return {
        "status": "skipped" if before is not None and before.version == after.version else "ran",
        "version": after.version,
        "rows_in": ({"raw": sum(read.values())} if isinstance(read, dict)
                    else rows_in(lake, stage, run_date)),
        "rows_out": {t: int(f["rows"]) for t, f in sorted(after.tables.items()) if "rows" in f},
        **({"quarantined": sum(quarantined.values()) if isinstance(quarantined, dict)
            else int(quarantined)} if quarantined is not None else {}),
    }


def run_stage(spark: Any, cfg: PipelineConfig, stage: Stage) -> dict[str, Any]:
    """Run one stage; returns its log fields; raises StageFailed on a non-zero exit."""
    lake = Lake.open(cfg.lake, spark)
    before = published(lake, stage, cfg.run_date)
    start = time.perf_counter()
    try:
        code = stage_module(stage.name).main(stage_argv(cfg, stage.name))
    except SystemExit as e:  # argparse
        code = e.code if isinstance(e.code, int) else 2
    except Exception:
        log.exception("stage %s crashed", stage.name)
        code = 1
    seconds = round(time.perf_counter() - start, 3)
    if code:
        event(log, stage.name, status="failed", run_date=cfg.run_date, exit_status=code,
              seconds=seconds)
        raise StageFailed(stage.name, code)
    line = {**facts(lake, stage, cfg.run_date, before), "seconds": seconds}
    event(log, stage.name, run_date=cfg.run_date, **line)
    return line


def run(spark: Any, cfg: PipelineConfig) -> dict[str, dict[str, Any]]:
    """Every selected stage in order; raises StageFailed at the first failure."""
    by_name = {s.name: s for s in STAGES}
    return {name: run_stage(spark, cfg, by_name[name]) for name in cfg.stages}


def main(argv: list[str] | None = None) -> int:
    cfg = parse_args(argv)
    setup_logging()
    check_all(cfg)
    spark = get_session("crossrec-pipeline")
    try:
        summary = run(spark, cfg)
    except StageFailed as e:
        done = cfg.stages[:cfg.stages.index(e.stage)]
        log.error("pipeline stopped: stage %s failed (exit %d) for %s; %s. Fix the cause and "
                  "rerun the same command: completed stages are skipped.", e.stage, e.code,
                  cfg.run_date, f"what {', '.join(done)} published is intact" if done
                  else "nothing was published by this run")
        return e.code
    print(json.dumps({"run_date": cfg.run_date, "stages": summary}, indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
