"""Training: distributed backends, the loop, checkpoints, artifacts and the launchers.

The loop takes any iterable of batches and a :class:`~crossrec.train.dist.Dist`; launchers
(local, TorchDistributor, Horovod) are chosen at the edge and all run :func:`worker.train_worker`.
"""
