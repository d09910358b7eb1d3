"""The cross-domain embedding model: towers (nn.Modules), training tasks (losses) and serving.

Nothing here imports Spark, Horovod or touches files; batches are dicts of tensors keyed by the
column constants in :mod:`crossrec.schemas.columns` (see :mod:`crossrec.feed`).
"""
from .towers import CrossDomainModel, ItemTower, ModelConfig, UserTower  # noqa: F401
from .task import FullSoftmaxTask, InBatchSoftmaxTask, TrainTask  # noqa: F401
