"""The sources file: validated at load, errors name the file and key."""
from __future__ import annotations

from pathlib import Path

import pytest

from crossrec.config import load_sources
from crossrec.errors import ConfigError

BASE = """
[catalog]
path = "catalog.jsonl"
format = "jsonl"

[[platforms]]
name = "web"
path = "web/date={run_date}/"
format = "csv"
timestamp = "epoch_ms"
columns = { account = "uid", item_id = "item", ts = "when", event_type = "kind" }
event_types = { play = "view", buy = "purchase" }
weights = { purchase = 3.0 }
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "sources.toml"
    path.write_text(text)
    return path


def test_loads_and_resolves_paths(tmp_path):
    s = load_sources(_write(tmp_path, BASE), "2026-11-23")
    web = s.platforms[0]
    assert web.path == (tmp_path / "web" / "date=2026-11-23").resolve().as_uri()
    assert s.catalog.path == (tmp_path / "catalog.jsonl").resolve().as_uri()
    assert web.weights == {"purchase": 3.0, "view": 1.0, "interaction": 1.0}
    assert web.columns["account"] == "uid" and s.links is None


@pytest.mark.parametrize("change, message", [
    (('format = "csv"', 'format = "xml"'), r"platforms\[0\]\.format: 'xml' is not one of"),
    (('timestamp = "epoch_ms"', 'timestamp = "unix"'), r"platforms\[0\]\.timestamp"),
    (('ts = "when"', 'ts = "when", colour = "c"'), r"platforms\[0\]\.columns: unknown logical"),
    (('name = "web"', 'name = "my web"'), r"platforms\[0\]\.name: 'my web' must be"),
    (('purchase = 3.0', 'purchase = 0.0'), r"platforms\[0\]\.weights: weights must be > 0"),
    (('path = "catalog.jsonl"\n', ''), r"catalog: missing key 'path'"),
    (('[[platforms]]', '[quality]\nmin_rows = 3\n[[platforms]]'), r"quality: unknown keys"),
    (('name = "web"', 'name = "catalog"'), r"must be unique and not 'catalog'"),
])
def test_errors_name_the_key(tmp_path, change, message):
    with pytest.raises(ConfigError, match=message) as e:
        load_sources(_write(tmp_path, BASE.replace(*change)), "2026-11-23")
    assert str(tmp_path / "sources.toml") in str(e.value)


def test_not_toml_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_sources(_write(tmp_path, "[catalog\n"), "2026-11-23")
    with pytest.raises(ConfigError, match="no such sources file"):
        load_sources(tmp_path / "nope.toml", "2026-11-23")
