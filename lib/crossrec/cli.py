"""What every job's ``main`` shares: the common options, ``--config`` defaults, exit statuses.

    p = job_parser("build_examples", __doc__, "unified run date to read and publish")
    p.add_argument("--max-history", type=int, default=50)
    a = parse(p, argv, "build_examples")     # --config's [build_examples] table, then argv
    return exit_status(log, lambda: run(spark, cfg))

Precedence, lowest first: the option's default in the job, the ``--config`` file (its common
fields and the job's table), the command line. Every store-true flag also gets a hidden
``--no-FLAG``, so a flag switched on in the file can be switched off for one run. A repeatable
option (``--param``) takes a list in the file, which the command line's uses extend.
"""
from __future__ import annotations

import argparse
import json
import logging
from typing import Any, Callable, Mapping

from crossrec.errors import ConfigError, InputError, PublishError, QualityGateError
from crossrec.lake import run_date_arg
from crossrec.settings import Settings, check_lake, load_settings

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# Exit status of each error a job raises on purpose; anything else is a crash (Python's 1).
EXIT_CODES: dict[type[BaseException], int] = {ConfigError: 2, InputError: 2, QualityGateError: 3,
                                              PublishError: 4}
_NOT_SETTINGS = ("help", "config")


def lake_arg(text: str) -> str:
    """:func:`crossrec.settings.check_lake` as an argparse ``type``."""
    try:
        return check_lake(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def min_value_arg(text: str) -> float | None:
    """``--min-value``: the value of a positive, or ``none`` (every event with weight > 0)."""
    if text.strip().lower() == "none":
        return None
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or 'none', got {text!r}") from None


def model_param_arg(text: str) -> tuple[str, str, Any]:
    """``model.key=value`` as an argparse ``type``; the value is read as JSON when it parses
    (3, 0.1, true), else kept as a string."""
    head, sep, raw = text.partition("=")
    model, dot, key = head.partition(".")
    if not (sep and dot and model and key):
        raise argparse.ArgumentTypeError(f"expected MODEL.KEY=VALUE, got {text!r}")
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    return model, key, value


def job_parser(prog: str, doc: str | None, run_date_help: str) -> argparse.ArgumentParser:
    """A parser with ``--config``, ``--lake`` and ``--run-date`` (alias ``--date``)."""
    p = argparse.ArgumentParser(prog=prog, description=(doc or "").split("\n\n")[0])
    p.add_argument("--config", metavar="FILE",
                   help="crossrec settings (TOML): defaults for every option; the command line wins")
    p.add_argument("--lake", type=lake_arg,
                   help="lake root: a path, file://, hdfs:// or s3a:// URL (or `lake` in --config)")
    p.add_argument("--run-date", "--date", dest="run_date", type=run_date_arg,
                   help=f"{run_date_help}, YYYY-MM-DD (or `run_date` in --config)")
    return p


def parse(p: argparse.ArgumentParser, argv: list[str] | None, stage: str) -> argparse.Namespace:
    """``argv`` over the ``--config`` file's defaults; a bad file or value is a usage error
    (exit 2) naming the file and key."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--config")
    config = pre.parse_known_args(argv)[0].config
    _add_negations(p)
    try:
        settings = load_settings(config) if config else Settings()
        p.set_defaults(**defaults_from(p, settings, stage))
    except ConfigError as e:
        p.error(str(e))
    for action in p._actions:
        if action.required and p.get_default(action.dest) is not None:
            action.required = False  # the file supplied it
    a = p.parse_args(argv)
    for dest, key in (("lake", "lake"), ("run_date", "run_date")):
        if getattr(a, dest, None) is None:
            p.error(f"--{key.replace('_', '-')} is required (or `{key}` in the --config file)")
    return a


def defaults_from(p: argparse.ArgumentParser, settings: Settings, stage: str) -> dict[str, Any]:
    """The file's values for ``p``'s options, each checked by the option's own type/choices."""
    actions = {a.dest: a for a in p._actions if a.dest not in _NOT_SETTINGS and a.option_strings
               and not isinstance(a, _Negation)}
    out: dict[str, Any] = {}
    common = {"lake": settings.lake, "run_date": settings.run_date}
    for key, value in common.items():
        if value is not None and key in actions:
            out[key] = _convert(actions[key], value, settings.where(None, key))
    for key, value in settings.section(stage).items():
        where = settings.where(stage, key)
        if key not in actions or key in common:
            known = ", ".join(sorted(k for k in actions if k not in common))
            raise ConfigError(f"{where}: not an option of {p.prog}; its options: {known}")
        out[key] = _convert(actions[key], value, where)
    return out


def _convert(action: argparse.Action, value: Any, where: str) -> Any:
    flag = action.option_strings[-1] if action.dest != "run_date" else "--run-date"
    if action.nargs == 0:  # store_true / store_false
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false (flag {flag}), got {value!r}")
        return value if isinstance(action, argparse._StoreTrueAction) else not value
    if isinstance(action, argparse._AppendAction):  # repeatable: a list (or one value) in the file
        items = value if isinstance(value, list) else [value]
        return [_convert_one(action, v, f"{where}[{i}]" if isinstance(value, list) else where, flag)
                for i, v in enumerate(items)]
    return _convert_one(action, value, where, flag)


def _convert_one(action: argparse.Action, value: Any, where: str, flag: str) -> Any:
    if isinstance(value, (dict, list)) or (isinstance(value, bool) and action.type is not bool):
        raise ConfigError(f"{where}: expected a single value for {flag}, got {value!r}")
    try:
        converted = action.type(str(value)) if callable(action.type) else str(value)
    except (ValueError, TypeError, argparse.ArgumentTypeError) as e:
        raise ConfigError(f"{where}: invalid value {value!r} for {flag}: {e}") from None
    if action.choices is not None and converted not in action.choices:
        choices = ", ".join(map(str, action.choices))
        raise ConfigError(f"{where}: {value!r} is not one of {choices} ({flag})")
    return converted


class _Negation(argparse.Action):
    """``--no-FLAG``: sets a store-true flag's destination back to False."""

    def __call__(self, parser: Any, namespace: Any, values: Any, option_string: Any = None) -> None:
        setattr(namespace, self.dest, False)


def _add_negations(p: argparse.ArgumentParser) -> None:
    taken = {s for a in p._actions for s in a.option_strings}
    for action in list(p._actions):
        if isinstance(action, argparse._StoreTrueAction):
            name = "--no-" + action.option_strings[-1].removeprefix("--")
            if name not in taken:
                p.add_argument(name, dest=action.dest, nargs=0, action=_Negation,
                               help=argparse.SUPPRESS)


def setup_logging() -> None:
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)


def exit_status(log: logging.Logger, body: Callable[[], int | None],
                codes: Mapping[type[BaseException], int] = EXIT_CODES) -> int:
    """Run ``body``; an error listed in ``codes`` is logged (its message, no traceback) and
    becomes that exit status. ``body`` returning None means 0."""
    try:
        return body() or 0
    except tuple(codes) as e:
        log.error("%s", e)
        return next(code for kind, code in codes.items() if isinstance(e, kind))
