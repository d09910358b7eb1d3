"""Render docs/tables.md from the declarations: ``python -m crossrec.schemas.docs > docs/tables.md``."""
from __future__ import annotations

import sys

from .evaluation import PUBLISHED_EVALUATION
from .lake import CATALOG_RAW, LINKS_RAW, PUBLISHED
from .scoring import PUBLISHED_RECOMMENDATIONS
from .training import ITEM_VECTORS, PUBLISHED_EXAMPLES


def _section(tables) -> str:
    return "\n\n".join(t.markdown() + (f"\n\nPartitioned by: {', '.join(t.partition_by)}."
                                       if t.partition_by else "") for t in tables)


def render() -> str:
    head = ("# crossrec tables\n\nGenerated from `schemas/` by `python -m crossrec.schemas.docs`; "
            "do not edit by hand (a test checks it is current).\n")
    published = _section(PUBLISHED)
    raw = "\n\n".join(t.markdown() for t in (CATALOG_RAW, LINKS_RAW))
    return (f"{head}\n## Published by ingest (dataset `unified`)\n\n{published}\n\n"
            f"## Published by embed_items (dataset `item_text`)\n\n{_section((ITEM_VECTORS,))}\n\n"
            f"## Published by build_examples (dataset `examples`)\n\n{_section(PUBLISHED_EXAMPLES)}\n\n"
            f"## Published by score (dataset `recommendations`)\n\n"
            f"{_section(PUBLISHED_RECOMMENDATIONS)}\n\n"
            f"## Published by evaluate (dataset `evaluation`)\n\n{_section(PUBLISHED_EVALUATION)}\n\n"
            f"## Raw inputs (logical columns; physical names come from the sources file)\n\n{raw}\n")


if __name__ == "__main__":
    sys.stdout.write(render())
