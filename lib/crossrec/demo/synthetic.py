"""Synthetic people, their platform accounts and account links, and planted-taste interactions.

``deliver`` turns canonical events (person, platform, item, value, time) into a raw drop: each person
gets one account per platform they used, in that platform's id shape; a share of the people with
several accounts is linked (chains, some closed into cycles); each platform's log is written in its
own format. ``prepare_synthetic`` generates the events first: power-law item popularity and user
activity, and tastes shared across domains through planted latent factors.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from crossrec.errors import ConfigError
from crossrec.schemas import columns as C

from . import writers as W

CYCLE_SHARE = 0.1  # linked people with >= 3 accounts whose chain also gets its closing edge
START_S = 1_609_459_200  # 2021-01-01T00:00:00Z
_CHUNK = 1 << 16  # interactions sampled per vectorised step: [chunk, candidates, factors] floats
_TAGS = ("action", "calm", "comedy", "tragedy", "romance", "war", "space", "history", "family",
         "horror", "music", "crime", "fantasy", "documentary", "adventure", "mystery")
_ADJ = ("Crimson", "Silent", "Golden", "Broken", "Hidden", "Electric", "Last", "Wild", "Northern",
        "Paper", "Velvet", "Iron", "Midnight", "Lonely", "Bright", "Hollow")
_NOUN = ("Harbor", "Garden", "Empire", "Signal", "River", "Machine", "Letter", "Orchard", "Kingdom",
         "Echo", "Voyage", "Mirror", "Station", "Frontier", "Lantern", "Archive")


@dataclass(frozen=True)
class Events:
    """Canonical events, all ``[R]``: person and platform indices, catalog row, rating, epoch s."""

    person: np.ndarray
    platform: np.ndarray
    item: np.ndarray
    value: np.ndarray
    ts_s: np.ndarray


@dataclass(frozen=True)
class Accounts:
    """One account per (person, platform) with events: ``person``/``platform``/``account`` are
    ``[A]``; ``of_event`` ``[R]`` is each event's account row."""

    person: np.ndarray
    platform: np.ndarray
    account: pa.Array
    of_event: np.ndarray


def assign_accounts(person: np.ndarray, platform: np.ndarray, layouts: list[W.Layout],
                    key: int) -> Accounts:
    """Give each (person, platform) pair an id in that platform's shape; ids never repeat.

    >>> assign_accounts(np.array([0, 0]), np.array([0, 1]), [W.layout("a", 0), W.layout("b", 1)],
    ...                 key=1).account.to_pylist()  # doctest: +SKIP
    ['u_5a1c0e93d2', '2817340118842']
    """
    n_plat = len(layouts)
    pairs, of_event = np.unique(person.astype(np.int64) * n_plat + platform, return_inverse=True)
    acc_platform = pairs % n_plat
    codes = W.scramble(np.arange(len(pairs), dtype=np.uint64), key)  # distinct over all platforms
    by_platform = np.argsort(acc_platform, kind="stable")
    pieces = [W.account_ids(codes[by_platform[acc_platform[by_platform] == p]], lay.id_shape)
              for p, lay in enumerate(layouts)]
    rank = np.empty(len(pairs), dtype=np.int64)
    rank[by_platform] = np.arange(len(pairs))
    account = pa.concat_arrays([pa.array([], pa.string()), *pieces]).take(pa.array(rank))
    return Accounts(pairs // n_plat, acc_platform, account, of_event.ravel())


def plan_links(acc: Accounts, names: list[str], share: float,
               rng: np.random.Generator) -> tuple[pa.Table, int]:
    """Link ``share`` of the people with >= 2 accounts: a chain through their accounts in random
    order, random direction per edge, and for ``CYCLE_SHARE`` of those with >= 3 the closing edge.

    Returns the ``links_raw`` table (rows shuffled) and the number of linked people.

    >>> plan_links(acc, ["reelhub", "laughbox"], 0.8, np.random.default_rng(0))  # doctest: +SKIP
    """
    n = len(acc.person)
    order = np.lexsort((rng.random(n), acc.person))
    person = acc.person[order]
    starts = np.flatnonzero(np.r_[True, person[1:] != person[:-1]]) if n else np.array([], int)
    counts = np.diff(np.r_[starts, n])
    multi = np.flatnonzero(counts >= 2)
    chosen = np.zeros(len(starts), dtype=bool)
    chosen[rng.permutation(multi)[:int(round(share * len(multi)))]] = True
    group = np.repeat(np.arange(len(starts)), counts)
    step = np.flatnonzero((person[1:] == person[:-1]) & chosen[group[:-1]])
    closing = np.flatnonzero(chosen & (counts >= 3))
    closing = closing[rng.random(len(closing)) < CYCLE_SHARE]
    a = order[np.r_[step, starts[closing] + counts[closing] - 1]]
    b = order[np.r_[step + 1, starts[closing]]]
    swap = rng.random(len(a)) < 0.5
    a, b = np.where(swap, b, a), np.where(swap, a, b)
    shuffle = rng.permutation(len(a))
    a, b = a[shuffle], b[shuffle]
    plat = np.asarray(names, dtype=object)
    table = pa.table({C.PLATFORM_A: pa.array(plat[acc.platform[a]], pa.string()),
                      C.ACCOUNT_A: acc.account.take(pa.array(a, pa.int64())),
                      C.PLATFORM_B: pa.array(plat[acc.platform[b]], pa.string()),
                      C.ACCOUNT_B: acc.account.take(pa.array(b, pa.int64()))})
    return table, int(chosen.sum())


def deliver(out: Path, catalog: pd.DataFrame, events: Events, layouts: list[W.Layout],
            link_share: float, seed: int, parts: int, title: str, info: dict) -> dict:
    """Write the raw drop of ``events`` into ``out`` (emptied first); return ``info`` + summary.

    >>> deliver(Path("data/demo/raw"), catalog, events, layouts, 0.8, 0, 3, "demo",
    ...         {"mode": "movielens"})  # doctest: +SKIP
    {'mode': 'movielens', 'platforms': {'reelhub': 3, ...}, 'rows': 9, 'people': 3, ...}
    """
    if not 0.0 <= link_share <= 1.0:
        raise ConfigError(f"link_share must be in [0, 1], got {link_share}")
    W.reset_output(out)
    W.write_marker(out, {"status": "writing"})  # a half-written drop may still be replaced
    rng = np.random.default_rng([seed, 1])
    acc = assign_accounts(events.person, events.platform, layouts, key=int(rng.integers(1 << 40)))
    links, linked = plan_links(acc, [lay.name for lay in layouts], link_share, rng)
    item_ids = pa.array(catalog[C.ITEM_ID].to_numpy(dtype=object), pa.string())
    rows = {}
    for p, lay in enumerate(layouts):
        idx = np.flatnonzero(events.platform == p)
        idx = idx[np.lexsort((acc.of_event[idx], events.ts_s[idx]))]  # a log is in time order
        table = W.platform_table(acc.account.take(pa.array(acc.of_event[idx])),
                                 item_ids.take(pa.array(events.item[idx])),
                                 events.value[idx], events.ts_s[idx], lay)
        W.write_parts(table, out / lay.name, lay.format, parts)
        rows[lay.name] = table.num_rows
    W.write_catalog(catalog, out / W.CATALOG_FILE)
    W.write_links(links, out / W.LINKS_FILE)
    (out / W.SOURCES_FILE).write_text(W.render_sources(layouts, title), encoding="utf-8")
    per_person = np.unique(acc.person, return_counts=True)[1]
    summary = {**info, "platforms": rows, "rows": int(sum(rows.values())), "items": len(catalog),
               "people": len(per_person), "accounts": len(acc.person),
               "multi_platform_people": int((per_person >= 2).sum()),
               "linked_people": linked, "links": links.num_rows}
    W.write_marker(out, summary)
    return summary


# --- synthetic generation ----------------------------------------------------------------------

@dataclass(frozen=True)
class SyntheticSpec:
    """Sizes and shape of a synthetic world.

    ``item_skew``/``user_skew`` are the power-law exponents of item popularity and user activity;
    ``factors`` is the dimension of the planted tastes, ``candidates`` the popularity-drawn set
    each interaction's item is chosen from.

    >>> SyntheticSpec(users=1000, items=200, interactions=10_000, domains=4, platforms=3).domains
    4
    """

    users: int = 10_000
    items: int = 2_000
    interactions: int = 100_000
    domains: int = 3
    platforms: int = 3
    factors: int = 8
    candidates: int = 16
    item_skew: float = 1.0
    user_skew: float = 0.8
    days: int = 730

    def __post_init__(self) -> None:
        for name in ("users", "items", "interactions", "domains", "platforms", "factors",
                     "candidates", "days"):
            if getattr(self, name) < 1:
                raise ConfigError(f"synthetic: {name} must be >= 1, got {getattr(self, name)}")
        if self.platforms > self.domains:
            raise ConfigError(f"synthetic: platforms ({self.platforms}) must be <= domains "
                              f"({self.domains}): domain d is served by platform d % platforms")
        if self.items < self.domains:
            raise ConfigError(f"synthetic: need at least one item per domain ({self.domains})")


def _power_law_ranks(shape: tuple[int, ...], n: int, skew: float,
                     rng: np.random.Generator) -> np.ndarray:
    """Ranks in ``[0, n)`` with P(rank r) ~ (r + 1) ** -skew: inverse CDF of a bounded Pareto.

    float32 keeps every rank reachable up to n = 2**24 and halves the cost of the pow/exp.
    """
    u = rng.random(shape, dtype=np.float32)
    if abs(skew - 1.0) < 1e-9:
        x = np.exp(u * np.float32(np.log(n + 1.0)))
    else:
        e = 1.0 - skew
        x = (1 + u * np.float32((n + 1.0) ** e - 1.0)) ** np.float32(1.0 / e)
    return np.minimum(x.astype(np.int64) - 1, n - 1)


def _activity(spec: SyntheticSpec, rng: np.random.Generator) -> np.ndarray:
    """Interactions per user ``[N]``, summing to R; everyone gets one when R >= N."""
    w = 1.0 / np.arange(1, spec.users + 1) ** spec.user_skew
    w = rng.permutation(w / w.sum())
    if spec.interactions >= spec.users:
        return 1 + rng.multinomial(spec.interactions - spec.users, w)
    return rng.multinomial(spec.interactions, w)


def _pick_items(user: np.ndarray, U: np.ndarray, V: np.ndarray, item_of_rank: np.ndarray,
                spec: SyntheticSpec, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Items ``[R]`` with P(item | user) ~ popularity * exp(affinity), and their affinities.

    Gumbel-max over a popularity-drawn candidate set: with candidates drawn by popularity, the
    argmax of affinity + Gumbel noise is a self-normalised sample of popularity * exp(affinity).
    """
    item = np.empty(len(user), dtype=np.int64)
    aff = np.empty(len(user), dtype=np.float32)
    for s in range(0, len(user), _CHUNK):
        u = user[s:s + _CHUNK]
        cand = item_of_rank[_power_law_ranks((len(u), spec.candidates), spec.items,
                                             spec.item_skew, rng)]
        # np.take, not V[cand]: fancy indexing of rows is ~20x slower (numpy's slow 2-D path)
        a = np.matmul(np.take(V, cand, axis=0), np.take(U, u, axis=0)[:, :, None])[..., 0]
        expo = rng.standard_exponential(a.shape, dtype=np.float32) + np.float32(1e-30)
        gumbel = -np.log(expo)  # [n, candidates]
        pick = np.argmax(a + gumbel, axis=1)
        rows = np.arange(len(u))
        item[s:s + len(u)], aff[s:s + len(u)] = cand[rows, pick], a[rows, pick]
    return item, aff


def synthetic_catalog(V: np.ndarray, domain: np.ndarray, rng: np.random.Generator) -> pd.DataFrame:
    """Items with human-ish titles; genres name each item's two strongest planted factors, so the
    text carries taste signal. ``V`` is ``[M, k]``, ``domain`` ``[M]``.

    >>> synthetic_catalog(np.eye(2, 8, dtype=np.float32), np.array([0, 1]),
    ...                   np.random.default_rng(0))["genres"].tolist()  # doctest: +SKIP
    ['action|comedy', 'comedy|action']
    """
    m, k = V.shape
    words = np.array([*_TAGS, *[f"theme{i}" for i in range(len(_TAGS), 2 * k)]], dtype=object)
    top = np.argsort(-np.abs(V), axis=1, kind="stable")[:, :2]
    tag = words[2 * top + (np.take_along_axis(V, top, axis=1) < 0)]
    n = np.arange(1, m + 1)
    width = max(5, len(str(m)))
    ids = pd.Series([f"i{j:0{width}d}" for j in n])
    adj = pd.Series(np.asarray(_ADJ, dtype=object)[n % len(_ADJ)])
    noun = pd.Series(np.asarray(_NOUN, dtype=object)[(n // len(_ADJ)) % len(_NOUN)])
    title = adj + " " + noun + " " + pd.Series(n.astype(str), dtype=object)
    year = rng.integers(1960, 2024, m)
    first, second = pd.Series(tag[:, 0]), pd.Series(tag[:, 1])
    dom = "d" + pd.Series(domain.astype(str), dtype=object)
    text = (title + " (" + pd.Series(year.astype(str), dtype=object) + "). Domain " + dom
            + ". Genres: " + first + ", " + second + ".")
    genres = first + "|" + second
    return pd.DataFrame({C.ITEM_ID: ids, C.TITLE: title, C.YEAR: year, C.GENRES: genres,
                         C.DOMAIN: dom, C.TEXT: text})


def generate(spec: SyntheticSpec, seed: int) -> tuple[pd.DataFrame, Events]:
    """A synthetic catalog ``[M]`` and events ``[R]``; domain d is served by platform d % P.

    >>> cat, ev = generate(SyntheticSpec(users=50, items=20, interactions=500), seed=0)
    >>> len(ev.item), cat["domain"].nunique()
    (500, 3)
    """
    rng = np.random.default_rng([seed, 0])
    scale = np.float32(spec.factors ** -0.25)  # affinities U·V then have unit variance
    U = rng.standard_normal((spec.users, spec.factors), dtype=np.float32) * scale
    V = rng.standard_normal((spec.items, spec.factors), dtype=np.float32) * scale
    domain = rng.permutation(np.arange(spec.items) % spec.domains)
    item_of_rank = rng.permutation(spec.items)
    user = np.repeat(np.arange(spec.users), _activity(spec, rng))
    item, aff = _pick_items(user, U, V, item_of_rank, spec, rng)
    noise = rng.standard_normal(len(user), dtype=np.float32)
    value = np.clip(np.rint(3.0 + 1.1 * aff + 0.6 * noise), 1, 5).astype(np.int32)
    ts_s = START_S + rng.integers(0, spec.days * 86_400, len(user))
    events = Events(user, domain[item] % spec.platforms, item, value, ts_s)
    return synthetic_catalog(V, domain, rng), events


def prepare_synthetic(out: Path, spec: SyntheticSpec, link_share: float = 0.8, seed: int = 0,
                      parts: int = 3) -> dict:
    """Generate a synthetic world and write it as a raw drop of ``spec.platforms`` platforms.

    >>> prepare_synthetic(Path("data/demo/synth"), SyntheticSpec(interactions=5_000_000))  # doctest: +SKIP
    """
    catalog, events = generate(spec, seed)
    layouts = [W.layout(f"p{i}", i) for i in range(spec.platforms)]
    title = (f"Synthetic drop: {spec.users} users, {spec.items} items, {spec.interactions} "
             f"interactions, {spec.domains} domains on {spec.platforms} platforms, seed {seed}")
    return deliver(out, catalog, events, layouts, link_share, seed, parts, title,
                   {"mode": "synthetic", "domains": spec.domains})
