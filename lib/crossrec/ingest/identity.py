"""Identity resolution: accounts linked across platforms -> one person per connected component.

Connected components use the alternating large-star / small-star algorithm of Kiveris et al.,
"Connected Components in MapReduce and Beyond" (SoCC 2014), on the DataFrame API. Each round is a
constant number of shuffles and the number of rounds grows like O(log n) in practice, even on long
chains, where naive min-label propagation needs O(diameter) rounds.

Edges are kept as directed pairs ``(src, dst)`` with ``src > dst``. The fixed point of a round
(large-star, then small-star) is a star forest: every node points at the smallest node of its
component, which becomes the component's label, so results are deterministic. A round costs two
shuffles and one Spark action (the checkpoint, which also carries the stop test).

A link graph of at most ``LOCAL_EDGES`` edges is solved on the driver instead: its edges are
collected through Arrow and labelled by a linear-time components pass (scipy), with the same
labels (the smallest node by UTF-8 bytes, which is how Spark, Arrow and Python all order strings).
Every round of the distributed algorithm is a Spark job with shuffles: the bench's 312k links took
3.0 s of rounds against 1.4 s to collect and solve them (warm, local[2]).
"""
from __future__ import annotations

import logging

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pyspark.sql import Column, DataFrame, Observation, Window
from pyspark.sql import functions as F

from crossrec.errors import CrossrecError
from crossrec.schemas import columns as C

# Output columns of this module. Not in schemas/columns.py because they never leave ingest
# (``PERSON`` holds raw ids and is pseudonymised into ``C.USER_KEY`` before anything is written).
NODE = "node"
COMPONENT = "component"
PERSON = "person"

_SRC = "src"
_DST = "dst"
_MIN = "min_neighbour"
_NOT_STAR = "not_star"
_PAIR = "pair"
_SEP = ":"
# Up to this many edges the components are found on the driver (see the module docstring): 2M
# edges of 12-character node names took 6 s there and grew its memory by 0.4 GB at the peak.
LOCAL_EDGES = 2_000_000

log = logging.getLogger(__name__)


class NotConvergedError(CrossrecError):
    """Connected components did not reach a fixed point within ``max_iterations`` rounds."""


def connected_components(edges: DataFrame, src: str, dst: str, max_iterations: int = 100,
                         local_edges: int = LOCAL_EDGES) -> DataFrame:
    """Label every node with the smallest node of its connected component.

    ``edges``: ``[E]`` rows with node columns ``src`` and ``dst`` (cast to string). Edges are
    undirected; self-loops, duplicates and reversed duplicates are fine; a row with a null endpoint
    is ignored (its non-null endpoint is not a node unless it appears elsewhere).
    Returns ``[N]`` rows ``(node: string, component: string)``, one per distinct node.

    Example: edges ``(b, a), (c, b), (x, y)`` -> ``(a, a), (b, a), (c, a), (x, x), (y, x)``.
    Raises ``NotConvergedError`` if a round still changes the graph after ``max_iterations``.
    Graphs of at most ``local_edges`` edges are solved on the driver (0: never).
    """
    pairs = edges.select(F.col(src).cast("string").alias(_SRC),
                         F.col(dst).cast("string").alias(_DST)).dropna()
    labels = _labels(pairs, max_iterations, local_edges)
    loops = pairs.where(F.col(_SRC) == F.col(_DST)).select(F.col(_SRC).alias(NODE)).distinct()
    alone = loops.join(labels, NODE, "left_anti").withColumn(COMPONENT, F.col(NODE))
    return labels.unionByName(alone)


def resolve_accounts(accounts: DataFrame, links: DataFrame,
                     local_edges: int = LOCAL_EDGES) -> DataFrame:
    """One person per set of linked accounts.

    ``accounts``: rows with ``C.PLATFORM, C.ACCOUNT`` (may repeat; other columns ignored).
    ``links``: rows ``C.PLATFORM_A, C.ACCOUNT_A, C.PLATFORM_B, C.ACCOUNT_B``: the two accounts are
    the same person. Links may name accounts absent from ``accounts``; they still connect others.
    Returns one row per distinct ``(C.PLATFORM, C.ACCOUNT)`` of ``accounts`` with ``PERSON``
    (string): the component's smallest ``platform:account`` node. An unlinked account is its own
    person; a row with a null platform or account gets a null person.

    Example: accounts ``(web, 1), (tv, 9)``, links ``(web, 1)-(app, 5)``, ``(app, 5)-(tv, 9)``
    -> ``(web, 1, "app:5"), (tv, 9, "app:5")``.
    ``PERSON`` contains raw ids: pseudonymise it before it is written anywhere. Up to
    ``local_edges`` links are resolved on the driver (0: never).
    """
    nodes = accounts.select(C.PLATFORM, C.ACCOUNT).distinct() \
        .withColumn(NODE, _node(C.PLATFORM, C.ACCOUNT))
    pairs = links.select(_node(C.PLATFORM_A, C.ACCOUNT_A).alias(_SRC),
                         _node(C.PLATFORM_B, C.ACCOUNT_B).alias(_DST)).dropna()
    return (nodes.join(_labels(pairs, max_iterations=100, local_edges=local_edges), NODE, "left")
            .select(C.PLATFORM, C.ACCOUNT,
                    F.coalesce(F.col(COMPONENT), F.col(NODE)).alias(PERSON)))


def _node(platform: str, account: str) -> Column:
    # Unambiguous because platform names are identifiers without ':'; an account id may contain ':'.
    return F.concat(F.col(platform).cast("string"), F.lit(_SEP), F.col(account).cast("string"))


def _labels(pairs: DataFrame, max_iterations: int, local_edges: int) -> DataFrame:
    """``[E] (src, dst)`` non-null -> ``(node, component)`` for every node with a non-loop edge."""
    if local_edges > 0:
        # one job: the edges if there are few enough, else a sign to go distributed
        got = pairs.limit(local_edges + 1).toArrow()
        if got.num_rows <= local_edges:
            schema = f"{NODE} string, {COMPONENT} string"
            labels = pairs.sparkSession.createDataFrame(local_labels(got[_SRC], got[_DST]), schema)
            # checkpointed, so no plan built on it carries the rows as a local relation
            return _truncate(labels)
    oriented = pairs.select(F.greatest(_SRC, _DST).alias(_SRC), F.least(_SRC, _DST).alias(_DST)) \
        .where(F.col(_SRC) != F.col(_DST))
    stars = _converge(oriented, max_iterations)
    # In a star forest centred at minima, a leaf's one neighbour is its centre and a centre's
    # neighbours are all larger, so least(node, min_neighbour) is the label. The row whose dst is
    # the minimum is unique per node (edges are distinct): no shuffle needed to pick one.
    return (stars.where(F.col(_DST) == F.col(_MIN))
            .select(F.col(_SRC).alias(NODE), F.least(_SRC, _MIN).alias(COMPONENT)))


def local_labels(src: pa.ChunkedArray, dst: pa.ChunkedArray) -> pa.Table:
    """``[E]`` string edges (non-null) -> ``(node, component)`` for every node with a non-loop
    edge, the component labelled by its smallest node, as :func:`_labels` labels it.

    Nodes are numbered in sorted order, so a component's smallest node is its smallest number.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components as components

    edge = pc.not_equal(src, dst)   # self-loops make no node here, as in _labels
    src, dst = src.filter(edge), dst.filter(edge)
    nodes = pc.unique(pa.chunked_array(src.chunks + dst.chunks, src.type))
    nodes = nodes.take(pc.sort_indices(nodes))   # Arrow orders strings by their UTF-8 bytes
    a = pc.index_in(src, value_set=nodes).to_numpy()
    b = pc.index_in(dst, value_set=nodes).to_numpy()
    n = len(nodes)
    graph = coo_matrix((np.ones(len(a), np.int8), (a, b)), shape=(n, n))
    _, label = components(graph, directed=False)
    _, first = np.unique(label, return_index=True)   # per component, its smallest node number
    return pa.table({NODE: nodes, COMPONENT: nodes.take(first[label])})


def _converge(edges: DataFrame, max_iterations: int) -> DataFrame:
    """Alternate large-star and small-star until the graph is a fixed point of a round.

    ``edges``: ``(larger, smaller)`` pairs. Returns the ``_adjacency`` of the fixed point, a forest
    of stars each centred at its component's smallest node.
    """
    current = edges
    for iteration in range(max_iterations + 1):
        # The stop test rides along with the checkpoint job as an observed metric: no extra job.
        # (localCheckpoint runs as a SQL action, so the metric is filled when it returns.)
        not_star = Observation(f"connected_components_{iteration}")
        adjacency = _truncate(_adjacency(current).observe(
            not_star, F.count(F.when(F.col(_NOT_STAR), True)).alias(_NOT_STAR)))
        if not_star.get[_NOT_STAR] == 0:
            log.info("connected components converged after %d iterations", iteration)
            return adjacency
        current = _small_star(_large_star(adjacency))
    raise NotConvergedError(
        f"connected components did not converge within {max_iterations} iterations; rounds "
        "grow like log(number of nodes), so raise max_iterations only for a truly huge graph")


def _truncate(df: DataFrame) -> DataFrame:
    # localCheckpoint materialises the round and cuts its lineage, so plans and stage DAGs stay
    # one round deep (without it, planning time grows with every round). Chosen over checkpoint()
    # because it needs no reliable checkpoint directory (none is configured for local runs or
    # tests); the price is that a lost executor fails the job instead of recomputing the blocks,
    # acceptable for a batch job that is rerun as a whole. Old rounds' blocks are released by
    # Spark's ContextCleaner once the DataFrames are garbage collected.
    return df.localCheckpoint(eager=True)


def _adjacency(edges: DataFrame) -> DataFrame:
    """Both directions of every edge, with per-``src`` facts for large-star and the stop test.

    ``edges``: ``(larger, smaller)`` pairs, duplicates allowed. Returns ``(src, dst,
    min_neighbour, not_star)``, distinct. The graph is a fixed point of a round exactly when it is
    a forest of stars centred at their smallest node, i.e. every node has either one smaller
    neighbour and no larger one (a leaf) or no smaller neighbour (a centre); ``not_star`` marks
    the nodes that break this. Testing it here, in the shuffle large-star needs anyway, saves
    comparing successive edge sets (a full outer join per round).
    """
    both = _pairs(edges, (_SRC, _DST), (_DST, _SRC))
    # Partitioned by src, so the dedup and the window below reuse this one shuffle.
    both = both.repartition(_SRC).distinct()
    by_node = Window.partitionBy(_SRC)
    n_smaller = F.count(F.when(F.col(_DST) < F.col(_SRC), True)).over(by_node)
    n_larger = F.count(F.when(F.col(_DST) > F.col(_SRC), True)).over(by_node)
    return both.select(_SRC, _DST, F.min(_DST).over(by_node).alias(_MIN),
                       ((n_smaller > 1) | ((n_smaller == 1) & (n_larger > 0))).alias(_NOT_STAR))


def _large_star(adjacency: DataFrame) -> DataFrame:
    """For every node u, link each neighbour v > u to m(u) = min(neighbours(u) + u).

    Output pairs are ``(larger, smaller)`` since v > u >= m(u); duplicates are left to small-star.
    """
    return (adjacency.where(F.col(_DST) > F.col(_SRC))
            .select(F.col(_DST).alias(_SRC), F.least(_SRC, _MIN).alias(_DST)))


def _small_star(edges: DataFrame) -> DataFrame:
    """For every node u, link u and each neighbour v < u to m = min(neighbours(u) + u).

    ``edges``: ``(larger, smaller)`` pairs, duplicates allowed; so is the output (``_adjacency``
    dedups it within its own shuffle).
    """
    with_min = edges.withColumn(_MIN, F.min(_DST).over(Window.partitionBy(_SRC)))
    return _pairs(with_min, (_DST, _MIN), (_SRC, _MIN)).where(F.col(_SRC) != F.col(_DST))


def _pairs(df: DataFrame, *pairs: tuple[str, str]) -> DataFrame:
    """``(src, dst)`` rows: one per input row and pair of its columns, in a single pass.

    (One ``explode`` instead of a ``union`` per pair: a union would plan ``df`` once per branch.)
    """
    structs = [F.struct(F.col(a).alias(_SRC), F.col(b).alias(_DST)) for a, b in pairs]
    return df.select(F.explode(F.array(*structs)).alias(_PAIR)).select(f"{_PAIR}.*")
