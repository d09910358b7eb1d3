"""One configuration file shared by every job: common fields plus a table per stage.

``--config crossrec.toml`` (any job, and the pipeline) supplies defaults for the job's own
command-line options; options given on the command line win. Example::

    lake = "s3a://bucket/lake"      # a path, file://, hdfs:// or s3a:// URL
    # run_date = "2026-11-23"       # usually given per run (--run-date / Airflow's {{ ds }})

    [ingest]
    sources = "s3a://bucket/raw/sources.toml"

    [embed_items]
    encoder = "all-MiniLM-L6-v2"

    [build_examples]
    max_history = 50
    min_value = 4.0                 # or "none"

    [train]
    launcher = "torch"
    num_proc = 2
    pretrain_epochs = 6

    [evaluate]
    param = ["ease.l2=500", "als.rank=64"]   # a repeatable option: a list

A stage's keys are its job's option names with ``_`` for ``-`` (``./spark-submit.sh JOB --help``
lists them); each value is checked by the option's own parser at start-up, and an unknown key, a
wrong type or a bad value is an error naming the file and the key. Relative paths in the file
are taken as they are (relative to the working directory), like the same option on the command
line. Secrets never live here: the pseudonymisation key comes only from ``$CROSSREC_ID_KEY``.
"""
from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping
from urllib.parse import urlparse

from crossrec.errors import ConfigError

LAKE_SCHEMES = ("file", "hdfs", "s3a")
COMMON_KEYS = ("lake", "run_date")
# Names that would put a secret into a file that is shipped to every executor and often to git.
SECRET_KEYS = ("id_key", "key", "secret", "password", "token")


@dataclass(frozen=True)
class Settings:
    """A parsed configuration file: common fields and each stage's table (raw TOML values,
    checked against the stage's options by :func:`crossrec.cli.parse`)."""

    source: str | None = None                 # the file's path, for error messages
    lake: str | None = None
    run_date: str | None = None
    stages: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def section(self, stage: str) -> Mapping[str, Any]:
        return self.stages.get(stage, {})

    def where(self, stage: str | None, key: str) -> str:
        """``crossrec.toml: [train] dim`` — how errors name a setting."""
        return f"{self.source or '<settings>'}: " + (f"[{stage}] {key}" if stage else key)


def check_lake(url: str) -> str:
    """``url`` if it is a plain path or a file://, hdfs:// or s3a:// URL; else ValueError."""
    if not url or not url.strip():
        raise ValueError("the lake root is empty")
    if "://" not in url:
        return url
    scheme = urlparse(url).scheme
    if scheme not in LAKE_SCHEMES:
        hint = " (use s3a://, Hadoop's S3 connector)" if scheme in ("s3", "s3n") else ""
        raise ValueError(f"lake root {url!r}: scheme {scheme}:// is not supported; expected a "
                         f"path or one of {', '.join(s + '://' for s in LAKE_SCHEMES)}{hint}")
    return url


def load_settings(path: str | Path, known_stages: tuple[str, ...] | None = None) -> Settings:
    """Read and check the file's structure (types of the common fields, tables, no secrets).

    ``known_stages``: the stage names a table may have (None: any).
    """
    source = str(path)
    try:
        data = tomllib.loads(Path(path).read_text())
    except FileNotFoundError:
        raise ConfigError(f"{source}: configuration file not found") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{source}: cannot read the configuration file: {e}") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{source}: not valid TOML: {e}") from None
    empty = Settings(source)
    common: dict[str, str] = {}
    stages: dict[str, dict[str, Any]] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            if known_stages is not None and key not in known_stages:
                raise ConfigError(f"{empty.where(None, f'[{key}]')}: unknown stage; expected one "
                                  f"of {', '.join(known_stages)}")
            for k, v in value.items():
                _refuse_secret(empty, key, k, v)
            stages[key] = dict(value)
        elif key in COMMON_KEYS:
            if not isinstance(value, str):
                raise ConfigError(f"{empty.where(None, key)}: expected a string, got "
                                  f"{type(value).__name__} {value!r}")
            common[key] = value
        else:
            _refuse_secret(empty, None, key, value)
            raise ConfigError(f"{empty.where(None, key)}: unknown top-level key; expected "
                              f"{' or '.join(COMMON_KEYS)}, or a [stage] table")
    settings = Settings(source, common.get("lake"), common.get("run_date"), stages)
    if settings.lake is not None:
        try:
            check_lake(settings.lake)
        except ValueError as e:
            raise ConfigError(f"{settings.where(None, 'lake')}: {e}") from None
    return settings


def _refuse_secret(settings: Settings, stage: str | None, key: str, value: Any) -> None:
    # a string under a secret-looking name (``dev_key = true`` is a switch, not a secret)
    name = key.lower()
    if isinstance(value, str) and (name in SECRET_KEYS
                                   or name.endswith(("_key", "_secret", "_password", "_token"))):
        raise ConfigError(f"{settings.where(stage, key)}: secrets are not read from configuration "
                          f"files; the pseudonymisation key comes only from $CROSSREC_ID_KEY")
