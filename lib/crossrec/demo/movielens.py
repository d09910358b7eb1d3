"""MovieLens (RecBole atomic files) as three platforms' raw drops.

Movies split into three domains by genre (``comedy``: Comedy without Drama, ``drama``: Drama without
Comedy, ``other``: the rest), each served by its own platform; each person's ratings go to the
platform of the movie's domain, so one person appears under up to three unrelated account ids.
Reads the ``ml-1m`` layout, and ``ml-100k``'s (genre column ``class``, repeated titles) too.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pv

from crossrec.errors import InputError
from crossrec.schemas import columns as C

from . import writers as W
from .synthetic import Events, deliver

DOMAINS = ("drama", "comedy", "other")
LAYOUTS = (W.layout("reelhub", 0), W.layout("laughbox", 1), W.layout("cinevault", 2))  # by DOMAINS
_ARTICLE = re.compile(r"^(?P<name>.+), (?P<article>The|A|An)(?P<rest> \(.*\))?$")
_YEAR_SUFFIX = re.compile(r"\s*\((?P<year>\d{4})\)\s*$")


def read_atomic(path: Path, types: dict[str, pa.DataType] | None = None) -> pd.DataFrame:
    """A RecBole atomic file (tab-separated, ``name:type`` header, CRLF, no quoting) as a frame
    whose columns are the header names without their types; strings unless ``types`` says.

    >>> read_atomic(Path("ml-1m/ml-1m.inter"), {"rating": pa.float64()}).columns.tolist()  # doctest: +SKIP
    ['user_id', 'item_id', 'rating', 'timestamp']
    """
    with open(path, encoding="utf-8", newline="") as f:
        header = f.readline().rstrip("\r\n").split("\t")
    names = [h.split(":", 1)[0] for h in header]
    types = {n: (types or {}).get(n, pa.string()) for n in names}
    try:
        table = pv.read_csv(path, read_options=pv.ReadOptions(skip_rows=1, column_names=names),
                            parse_options=pv.ParseOptions(delimiter="\t", quote_char=False),
                            convert_options=pv.ConvertOptions(column_types=types,
                                                              strings_can_be_null=False))
    except pa.ArrowInvalid as e:
        raise InputError(f"{path}: not a RecBole atomic file: {e}") from None
    return table.to_pandas()


def domain_of(genres: list[str]) -> str:
    """``comedy`` = Comedy and not Drama, ``drama`` = Drama and not Comedy, else ``other``.

    >>> domain_of(["Comedy", "Romance"]), domain_of(["Comedy", "Drama"])
    ('comedy', 'other')
    """
    comedy, drama = "Comedy" in genres, "Drama" in genres
    return "comedy" if comedy and not drama else "drama" if drama and not comedy else "other"


def human_title(title: str) -> str:
    """MovieLens' library-style titles read as people write them.

    >>> human_title("Usual Suspects, The"), human_title("Confessional, The (Le Confessionnal)")
    ('The Usual Suspects', 'The Confessional (Le Confessionnal)')
    """
    m = _ARTICLE.match(title.strip())
    return f"{m['article']} {m['name']}{m['rest'] or ''}" if m else title.strip()


def _text(title: str, year: int | None, genres: list[str]) -> str:
    head = f"{title} ({year})" if year is not None else title
    return f"{head}. Genres: {', '.join(genres)}." if genres else f"{head}."


def load_catalog(item_path: Path) -> tuple[pd.DataFrame, pd.Index]:
    """The ``catalog_raw`` frame and the index of MovieLens item tokens (titles) -> catalog row.

    Item ids are ``m`` + the 1-based row number in the file (``m0001`` is the first movie); a title
    listed twice (ml-100k has a few) keeps its first row.
    """
    raw = read_atomic(item_path)
    raw["row"] = np.arange(1, len(raw) + 1)
    raw = raw[~raw["item_id"].duplicated()].reset_index(drop=True)
    genre_col = "genre" if "genre" in raw else "class"
    genres = raw[genre_col].str.split().map(lambda g: g or [])
    years = pd.to_numeric(raw.get("release_year"), errors="coerce") if "release_year" in raw \
        else raw["item_id"].str.extract(_YEAR_SUFFIX)["year"].astype(float)
    names = raw["movie_title"] if "movie_title" in raw \
        else raw["item_id"].str.replace(_YEAR_SUFFIX, "", regex=True)
    titles = names.map(human_title)
    year = [None if np.isnan(y) else int(y) for y in years.astype(float)]
    catalog = pd.DataFrame({
        C.ITEM_ID: [f"m{r:04d}" for r in raw["row"]], C.TITLE: titles,
        C.YEAR: pd.array(year, dtype="Int64"),
        C.GENRES: genres.map("|".join), C.DOMAIN: genres.map(domain_of),
        C.TEXT: [_text(t, y, g) for t, y, g in zip(titles, year, genres)]})
    return catalog, pd.Index(raw["item_id"])


def load_ratings(inter_path: Path, tokens: pd.Index,
                 max_users: int | None) -> tuple[pd.DataFrame, int]:
    """Ratings as ``person`` (order of first appearance), ``item`` (catalog row), ``value``,
    ``ts_s``; and how many were skipped for naming no catalog item. Keeps the first
    ``max_users`` people when given."""
    raw = read_atomic(inter_path, {"rating": pa.float64(), "timestamp": pa.float64()})
    person, _ = pd.factorize(raw["user_id"])
    keep = person < max_users if max_users is not None else np.ones(len(raw), dtype=bool)
    item = tokens.get_indexer(raw["item_id"])
    known = keep & (item >= 0)
    ratings = pd.DataFrame({"person": person[known], "item": item[known],
                            "value": np.rint(raw["rating"].to_numpy()[known]).astype(np.int32),
                            "ts_s": raw["timestamp"].to_numpy()[known].astype(np.int64)})
    return ratings, int((keep & (item < 0)).sum())


def atomic_files(ml_dir: Path) -> tuple[Path, Path]:
    """The ``.inter`` and ``.item`` files of a RecBole dataset folder."""
    found = [sorted(ml_dir.glob(f"*.{ext}")) for ext in ("inter", "item")]
    if any(len(f) != 1 for f in found):
        raise InputError(f"{ml_dir}: expected one .inter and one .item file, found "
                         f"{[p.name for f in found for p in f]}")
    return found[0][0], found[1][0]


def prepare_movielens(ml_dir: Path, out: Path, max_users: int | None = None,
                      link_share: float = 0.8, seed: int = 0, parts: int = 3) -> dict:
    """Write MovieLens as the raw drops of reelhub (drama, JSON lines), laughbox (comedy, CSV) and
    cinevault (other, Parquet), with catalog, links and sources.toml; return a summary.

    >>> prepare_movielens(Path("data/cache/ml-1m"), Path("data/demo/raw"))  # doctest: +SKIP
    {'mode': 'movielens', 'dataset': 'ml-1m', 'platforms': {'reelhub': 355438, ...}, ...}
    """
    inter_path, item_path = atomic_files(ml_dir)
    catalog, tokens = load_catalog(item_path)
    ratings, skipped = load_ratings(inter_path, tokens, max_users)
    platform_of_item = catalog[C.DOMAIN].map({d: i for i, d in enumerate(DOMAINS)}).to_numpy()
    item = ratings["item"].to_numpy()
    events = Events(ratings["person"].to_numpy(), platform_of_item[item], item,
                    ratings["value"].to_numpy(), ratings["ts_s"].to_numpy())
    title = f"MovieLens {ml_dir.name} as three platforms' drops (max_users={max_users}, seed={seed})"
    return deliver(out, catalog, events, list(LAYOUTS), link_share, seed, parts, title,
                   {"mode": "movielens", "dataset": ml_dir.name, "skipped_unknown_items": skipped})
