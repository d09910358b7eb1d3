"""A tiny three-domain catalog and random rating events for the evaluation tests.

    items, events = tiny_world(n_users=30, seed=0)   # lakefix rows: drama is T, comedy is S

Ratings are 1..5 on random items at whole days (so many same-time events), each user touching
some drama, some comedy and some other items; genres make the diversity metric non-trivial.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from tests.lakefix import event, item

DOMAINS = {"drama": 8, "comedy": 5, "other": 3}
GENRES = ("Drama", "Romance", "War", "Crime")


def tiny_items() -> list[dict[str, Any]]:
    rows, idx = [], 0
    for domain, n in DOMAINS.items():
        for j in range(n):
            genres = tuple(g for b, g in enumerate(GENRES) if (idx >> b) & 1)
            rows.append(item(f"{domain[0]}{j}", domain, idx, genres=genres))
            idx += 1
    return rows


def tiny_world(n_users: int = 30, seed: int = 0) -> tuple[list[dict], list[dict]]:
    rng = np.random.default_rng(seed)
    items = tiny_items()
    by_domain = {d: [r for r in items if r["domain"] == d] for d in DOMAINS}
    events = []
    for u in range(n_users):
        picks = []
        for domain, rows in by_domain.items():
            n = int(rng.integers(0, len(rows) + 1))
            picks += [rows[i] for i in rng.choice(len(rows), size=n, replace=False)]
        days = rng.integers(0, 6, size=len(picks))  # few distinct days: ties at the cut-off
        order = np.lexsort((np.arange(len(picks)), days))
        for seq, j in enumerate(order):
            r = picks[j]
            events.append(event(u, seq, r["item_idx"], r["item_id"], r["domain"], float(days[j]),
                                value=float(rng.integers(1, 6))))
    return items, events
