"""Every table crossrec reads or writes, declared once.

Installed as ``crossrec.schemas`` (``setup.py`` maps this folder). Each table is a
:class:`~crossrec.schemas.table.Table` of :class:`~crossrec.schemas.table.Field`s that renders a
Spark ``StructType`` (pyspark imported lazily, so torch-side code never needs Spark) and an Arrow
schema — petastorm's Unischema idea. Column names are the constants in :mod:`.columns`.
"""
from .table import Field, Table  # noqa: F401
