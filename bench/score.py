"""Scoring benchmark: crossrec's recommend() beside Spark MLlib ALS ``recommendForAllUsers`` and a
plain torch GEMM + topk of the same shapes, on synthetic data, in one run.

    .venv/bin/python bench/score.py                       # 200k users, 2 x 20k items: one JSON
    .venv/bin/python bench/score.py --skip-als --scaling 100000,300000,1000000

Synthetic data: ``--users`` users with ``--events`` events each (items drawn by a hash, so every
user consumes a few items of both domains), ``--domains`` domains of ``--items`` items, and a
random CrossDomainModel artifact of dim ``--dim`` (text dim 32, L 50). Measured in one Python
process and one SparkSession on ``--master`` (default local[2]):

1. crossrec as the score job runs it: planning, then the tasks reading the events files (written
   as ingest writes them: whole users per file, sorted by user and seq) and scoring them, forced
   with a no-op write (top-K per user and domain, consumed items excluded, user vectors computed
   from history); beside it ``recommend(..., k)``, the same on the events read through Spark
   (``crossrec_through_spark``: a shuffle and sort by user, the path of other event tables);
2. ALS: ``ALSModel.recommendForAllUsers(k)`` forced the same way, with the same users, every item
   (all domains at once: the same number of dot products), the same rank; fitted with maxIter=1
   only to get factors (fit time not counted);

   each ``--repeat`` times (default 2) in the same session: ``first_seconds`` is a run in a JVM
   that has not yet run this code (a scheduled job's situation), ``seconds`` the fastest run (the
   steady state, which is what ALS's figure is anyway: it follows ALS's own fit, and what the
   GEMM peak below measures); ratios and shares use ``seconds``, with the first-run share beside;
3. peak: one torch process (as many threads as the master's cores) multiplying ``[B, D] x [D, M]``
   blocks plus ``topk``, and the GEMM alone, for B = 64 to 512, ``--block-users`` and the job's
   slice of users (the best rate is the peak: a GEMM writing 80 MB of scores is partly a memory test),
   each as ``u @ v.T`` and as ``mm`` by a contiguous ``[D, M]`` into a reused buffer (the better);
   crossrec's share of that rate is 2·users·items·D / wall over the GEMM's FLOP/s; beside it
   the rate of the bf16 product crossrec's screen runs (``gemm_bf16_gflops``), and crossrec
   with the fp32 screen (``crossrec_fp32_screen``: what the bf16 screen bought);
   ``--whole-blocks`` also times crossrec scoring whole blocks, as it did before slices;
4. ``--scaling``: crossrec's wall time and peak RSS (largest Python worker, and the JVM) per user
   count.

The load average before and after is recorded: the machine may be shared.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    from crossrec.screen import SCREENS

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--users", type=int, default=200_000)
    p.add_argument("--items", type=int, default=20_000, help="items per domain")
    p.add_argument("--domains", type=int, default=2)
    p.add_argument("--events", type=int, default=10, help="events per user")
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--block-users", type=int, default=1024)
    p.add_argument("--slice-users", type=int, default=None,
                   help="users per score slice (default: the job's, cache-sized on CPU)")
    p.add_argument("--whole-blocks", action="store_true",
                   help="also time crossrec scoring whole blocks at once (slice = block)")
    p.add_argument("--screen", default="auto", choices=SCREENS,
                   help="crossrec's candidate screen (crossrec.screen); the fp32 one is timed "
                   "beside it unless it is fp32")
    p.add_argument("--partitions", type=int, default=8)
    p.add_argument("--master", default="local[2]")
    p.add_argument("--repeat", type=int, default=2, help="runs of crossrec and of ALS's recommend")
    p.add_argument("--skip-als", action="store_true")
    p.add_argument("--skip-main", action="store_true", help="only the scaling series")
    p.add_argument("--scaling", default="", help="comma-separated user counts, e.g. 100000,1000000")
    p.add_argument("--work", default="", help="folder for synthetic data (default: a temp dir)")
    return p.parse_args(argv)


# --- synthetic data -------------------------------------------------------------------------------

def write_events(spark: Any, path: str, users: int, events: int, items: int, domains: int) -> None:
    """EVENTS rows: user u's j-th event is a hashed item, a day apart, a rating 1..5."""
    from pyspark.sql import functions as F

    from crossrec.ingest.pipeline import ROWS_PER_FILE
    from crossrec.schemas import columns as C
    from crossrec.schemas.lake import EVENTS

    n_items = items * domains
    df = spark.range(users * events).select(
        (F.col("id") / events).cast("int").alias(C.USER_IDX), (F.col("id") % events).cast("int").alias(C.SEQ))
    item = F.pmod(F.xxhash64(C.USER_IDX, C.SEQ), F.lit(n_items)).cast("int")
    df = df.select(
        C.USER_IDX, C.SEQ, F.format_string("u%08d", F.col(C.USER_IDX)).alias(C.USER_KEY),
        item.alias(C.ITEM_IDX), F.format_string("i%07d", item).alias(C.ITEM_ID),
        F.format_string("d%d", (item / items).cast("int")).alias(C.DOMAIN),
        F.lit("p").alias(C.PLATFORM), F.lit("rating").alias(C.EVENT_TYPE),
        (F.pmod(F.xxhash64(C.SEQ, C.USER_IDX), F.lit(5)) + 1).cast("double").alias(C.VALUE),
        F.lit(1.0).alias(C.WEIGHT),
        F.timestamp_seconds(F.lit(1_700_000_000) + F.col(C.SEQ) * 86_400 + F.col(C.USER_IDX) % 997).alias(C.TS))
    # as ingest writes them: whole users per file, sorted by (user_idx, seq), files of its size
    files = math.ceil(users * events / ROWS_PER_FILE)
    (EVENTS.select(df).repartition(files, C.USER_IDX).sortWithinPartitions(C.USER_IDX, C.SEQ)
     .write.mode("overwrite").parquet(path))


def items_frame(spark: Any, items: int, domains: int) -> Any:
    """The ITEMS columns scoring reads (item_idx, item_id, domain)."""
    from pyspark.sql import functions as F

    from crossrec.schemas import columns as C

    return spark.range(items * domains).select(
        F.col("id").cast("int").alias(C.ITEM_IDX), F.format_string("i%07d", F.col("id")).alias(C.ITEM_ID),
        F.format_string("d%d", (F.col("id") / items).cast("int")).alias(C.DOMAIN))


def write_artifact(path: Path, items: int, domains: int, dim: int) -> None:
    import torch

    from crossrec.model import CrossDomainModel, ModelConfig
    from crossrec.train.artifact import save_artifact

    n = items * domains
    torch.manual_seed(0)
    model = CrossDomainModel(ModelConfig(n, domains, 32, dim=dim),
                             torch.nn.functional.normalize(torch.randn(n, 32), dim=1),
                             torch.arange(n) // items)
    with torch.no_grad():
        model.items.bias.weight.normal_(0, 0.1)
    save_artifact(path, model, {"domains": [f"d{t}" for t in range(domains)],
                                "item_ids": [f"i{i:07d}" for i in range(n)], "max_history": 50})


# --- measurements ---------------------------------------------------------------------------------

class PeakRss:
    """Samples the RSS of this process's descendants every 0.2 s: the largest Python worker and
    the JVM (``with PeakRss() as peak: ...; peak.python_mb``)."""

    def __enter__(self) -> "PeakRss":
        self.python_mb = self.jvm_mb = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        import psutil

        me = psutil.Process()
        while not self._stop.wait(0.2):
            for p in me.children(recursive=True):
                try:
                    name, rss = p.name(), p.memory_info().rss / 2**20
                except psutil.Error:
                    continue
                if "java" in name:
                    self.jvm_mb = max(self.jvm_mb, rss)
                elif "python" in name:
                    self.python_mb = max(self.python_mb, rss)

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()


def repeated(times: int, run: Any) -> dict:
    """Wall times of ``run()`` done ``times`` times (at least once): the fastest as ``seconds``,
    the first (cold) as ``first_seconds``, all as ``runs``."""
    walls = []
    for _ in range(max(1, times)):
        t0 = time.perf_counter()
        run()
        walls.append(round(time.perf_counter() - t0, 2))
    return {"seconds": min(walls), "first_seconds": walls[0], "runs": walls}


def time_crossrec(spark: Any, events_path: str, items: Any, art: str, a: argparse.Namespace,
                  slice_users: int | None = None, files: bool = True,
                  screen: str | None = None) -> dict:
    """Planning and scoring as the score job does them (``files``: its tasks read the events
    files, :func:`crossrec.score.score_event_files`), or ``recommend()`` on the events read
    through Spark (a shuffle and sort by user: the path of other event tables)."""
    from crossrec import score as S
    from crossrec.event_files import event_pieces
    from crossrec.schemas.lake import EVENTS

    events = spark.read.schema(EVENTS.as_spark_schema()).parquet(events_path)

    def job() -> Any:
        pieces = event_pieces(events_path, a.partitions)
        plan = S.plan_scoring(events, items, art, a.k, block_users=a.block_users,
                              slice_users=slice_users, screen=screen or a.screen,
                              users_per_item=S.piece_popularity(spark, pieces))
        return S.score_event_files(spark, pieces, plan)

    def dataframe() -> Any:
        return S.recommend(events, items, art, a.k, block_users=a.block_users,
                           partitions=a.partitions, slice_users=slice_users,
                           screen=screen or a.screen)

    run = job if files else dataframe
    with PeakRss() as peak:
        runs = repeated(a.repeat, lambda: run().write.format("noop").mode("overwrite").save())
    return {**runs, "peak_python_worker_mb": round(peak.python_mb),
            "peak_jvm_mb": round(peak.jvm_mb)}


def time_als(spark: Any, events_path: str, a: argparse.Namespace) -> dict:
    from pyspark.ml.recommendation import ALS

    from crossrec.schemas import columns as C

    ratings = spark.read.parquet(events_path).select(C.USER_IDX, C.ITEM_IDX, C.VALUE)
    t0 = time.perf_counter()
    model = ALS(rank=a.dim, maxIter=1, userCol=C.USER_IDX, itemCol=C.ITEM_IDX, ratingCol=C.VALUE,
                seed=0).fit(ratings)
    fit = time.perf_counter() - t0
    n_items = model.itemFactors.count()  # items nobody rated have no factor: say how many ALS ranks
    runs = repeated(a.repeat, lambda: model.recommendForAllUsers(a.k).write.format("noop")
                    .mode("overwrite").save())
    return {**runs, "fit_seconds_not_counted": round(fit, 1), "items_with_factors": n_items}


def gemm_peak(a: argparse.Namespace, threads: int, seconds: float = 5.0) -> dict:
    """FLOP/s of [B, D] x [D, M] (fp32), alone and with topk(k), on ``threads`` threads, for B =
    64, 128, 256, 512, the block and the job's CPU slice of users: the best is the peak (so that
    it does not depend on the slice crossrec picked). Beside it the
    bf16 product crossrec's screen runs (its own padded matrix, into a reused buffer; FLOPs counted
    for D, as everywhere here), for B = the block and the bf16 slice."""
    import torch

    from crossrec.score import cpu_slice_users
    from crossrec.screen import make_screen

    torch.set_num_threads(threads)
    v = torch.randn(a.items, a.dim)
    vt = v.T.contiguous()  # [D, M], the layout crossrec multiplies by
    out: dict[str, Any] = {"by_rows": {}, "bf16_by_rows": {}}

    def rate(product: Any, flops: float, with_topk: bool = False) -> float:
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds / 2:
            s = product()
            if with_topk:
                s.topk(a.k, dim=1)
            n += 1
        return round(n * flops / (time.perf_counter() - t0) / 1e9, 1)

    for rows in sorted({64, 128, 256, 512, a.block_users, a.slice_users or cpu_slice_users(a.items)}):
        u, buf = torch.randn(rows, a.dim), torch.empty(rows, a.items)
        # the better of the plain product and the contiguous [D, M] one into a reused buffer
        forms = {"matmul": lambda: u @ v.T, "mm_out": lambda: torch.mm(u, vt, out=buf)}
        flops, got = 2.0 * rows * a.items * a.dim, {}
        for name, with_topk in (("gemm", False), ("gemm_topk", True)):
            for form, product in forms.items():
                got[f"{name}_{form}_gflops"] = rate(product, flops, with_topk)
            got[f"{name}_gflops"] = max(got[f"{name}_{f}_gflops"] for f in forms)
        out["by_rows"][rows] = got
    # the screen's own matrix (crossrec.screen.make_screen: the bias row, D and M padded as
    # it pads them), so the peer multiplies exactly what the screen multiplies
    wb = make_screen(torch.randn(a.items, a.dim + 1), torch.bfloat16).weights
    for rows in sorted({a.block_users, a.slice_users or cpu_slice_users(a.items, 2)}):
        ub = torch.randn(rows, wb.shape[0]).to(torch.bfloat16)
        buf = torch.empty(rows, wb.shape[1], dtype=torch.bfloat16)
        out["bf16_by_rows"][rows] = rate(lambda: torch.mm(ub, wb, out=buf),
                                         2.0 * rows * a.items * a.dim)
    for name in ("gemm_gflops", "gemm_topk_gflops"):
        out[name] = max(r[name] for r in out["by_rows"].values())
    out["gemm_bf16_gflops"] = max(out["bf16_by_rows"].values())
    total = 2.0 * a.users * a.items * a.domains * a.dim
    for name in ("gemm", "gemm_topk", "gemm_bf16"):
        out[f"{name}_seconds_for_all_users"] = round(total / (out[f"{name}_gflops"] * 1e9), 2)
    return out


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    from crossrec.session import get_session

    spark = get_session("crossrec-bench-score", master=a.master,
                        conf={"spark.driver.memory": "6g", "spark.sql.shuffle.partitions": str(a.partitions)})
    cores = spark.sparkContext.defaultParallelism
    work = Path(a.work or tempfile.mkdtemp(prefix="crossrec-bench-score-"))
    art = work / "artifact"
    write_artifact(art, a.items, a.domains, a.dim)
    items = items_frame(spark, a.items, a.domains).cache()
    items.count()
    result: dict[str, Any] = {
        "shape": {"users": a.users, "items_per_domain": a.items, "domains": a.domains,
                  "events_per_user": a.events, "dim": a.dim, "k": a.k, "block_users": a.block_users,
                  "slice_users": a.slice_users,
                  "partitions": a.partitions},
        "machine": {"master": a.master, "cores": os.cpu_count(), "python": platform.python_version(),
                    "loadavg_before": os.getloadavg()}}
    if not a.skip_main:
        path = str(work / f"events_{a.users}")
        write_events(spark, path, a.users, a.events, a.items, a.domains)
        result["crossrec"] = time_crossrec(spark, path, items, str(art), a, a.slice_users)
        result["crossrec_through_spark"] = time_crossrec(spark, path, items, str(art), a,
                                                         a.slice_users, files=False)
        if a.screen != "fp32":  # the same job with the fp32 screen: what bf16 bought
            result["crossrec_fp32_screen"] = time_crossrec(spark, path, items, str(art), a,
                                                           a.slice_users, screen="fp32")
        if a.whole_blocks:  # the same job scoring [block_users, M] at once, as before slices
            result["crossrec_whole_blocks"] = time_crossrec(spark, path, items, str(art), a,
                                                            a.block_users)
        flops = 2.0 * a.users * a.items * a.domains * a.dim
        result["crossrec"]["gflops"] = round(flops / result["crossrec"]["seconds"] / 1e9, 1)
        result["peak"] = gemm_peak(a, cores)
        result["crossrec"]["share_of_gemm_rate"] = round(
            result["crossrec"]["gflops"] / result["peak"]["gemm_gflops"], 3)
        result["crossrec"]["share_of_gemm_topk_rate"] = round(
            result["crossrec"]["gflops"] / result["peak"]["gemm_topk_gflops"], 3)
        result["crossrec"]["share_of_gemm_rate_first_run"] = round(
            flops / result["crossrec"]["first_seconds"] / 1e9 / result["peak"]["gemm_gflops"], 3)
        result["crossrec"]["share_of_bf16_gemm_rate"] = round(
            result["crossrec"]["gflops"] / result["peak"]["gemm_bf16_gflops"], 3)
        if not a.skip_als:
            result["als"] = time_als(spark, path, a)
            result["als_over_crossrec"] = round(result["als"]["seconds"] / result["crossrec"]["seconds"], 2)
            result["als_over_crossrec_first_runs"] = round(
                result["als"]["first_seconds"] / result["crossrec"]["first_seconds"], 2)
    series = []
    for users in [int(x) for x in a.scaling.split(",") if x.strip()]:
        path = str(work / f"events_{users}")
        write_events(spark, path, users, a.events, a.items, a.domains)
        run = time_crossrec(spark, path, items, str(art), a, a.slice_users)
        series.append({"users": users, **run, "us_per_user": round(1e6 * run["seconds"] / users, 1)})
        print(json.dumps(series[-1]), file=sys.stderr, flush=True)
    if series:
        result["scaling"] = series
    result["machine"]["loadavg_after"] = os.getloadavg()
    print(json.dumps(result, indent=2))
    spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
