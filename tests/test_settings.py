"""The shared settings file and command-line layer (crossrec.settings, crossrec.cli), and the
pipeline's argument handling: precedence, validation messages naming file and key, lake schemes,
no secrets in files; stage selection, --set, a failing stage stopping the run."""
from __future__ import annotations

import logging
from pathlib import Path

import pytest

from crossrec.errors import ConfigError
from crossrec.settings import check_lake, load_settings
from jobs import build_examples, embed_items, evaluate, ingest, pipeline, train

DATE = "2026-11-23"


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "crossrec.toml"
    path.write_text(text)
    return str(path)


def test_file_supplies_defaults_and_the_command_line_wins(tmp_path):
    cfg = write(tmp_path, 'lake = "hdfs://nn/lake"\nrun_date = "2026-01-02"\n'
                          '[train]\ndim = 16\ngpu = true\nlr = 0.5\n[ingest]\nsources = "s.toml"\n')
    t = train.parse_args(["--config", cfg, "--dim", "8", "--no-gpu"])
    assert (t.lake, t.run_date, t.train.dim, t.use_gpu, t.train.lr) == \
        ("hdfs://nn/lake", "2026-01-02", 8, False, 0.5)
    i = ingest.parse_args(["--config", cfg, "--date", DATE])  # --sources came from the file
    assert (i.sources, i.run_date, i.dev_key) == ("s.toml", DATE, False)
    # another job's table is not this job's business
    assert embed_items.parse_args(["--config", cfg]).batch_size == 256


def test_repeatable_options_take_a_list_the_command_line_extends(tmp_path):
    cfg = write(tmp_path, 'lake = "x"\nrun_date = "2026-01-02"\n'
                          '[evaluate]\nparam = ["ease.l2=500", "als.rank=8"]\n')
    assert evaluate.parse_args(["--config", cfg]).params == {"ease": {"l2": 500},
                                                             "als": {"rank": 8}}
    e = evaluate.parse_args(["--config", cfg, "--param", "als.rank=16", "--param", "pop.x=a"])
    assert e.params == {"ease": {"l2": 500}, "als": {"rank": 16}, "pop": {"x": "a"}}
    one = write(tmp_path, 'lake = "x"\nrun_date = "2026-01-02"\n[evaluate]\nparam = "ease.l2=1"\n')
    assert evaluate.parse_args(["--config", one]).params == {"ease": {"l2": 1}}


def test_a_bad_list_item_is_named_by_its_position(tmp_path, capsys):
    cfg = write(tmp_path, '[evaluate]\nparam = ["ease.l2=500", "rank"]\n')
    with pytest.raises(SystemExit):
        evaluate.parse_args(["--config", cfg, "--lake", "x", "--run-date", DATE])
    assert "[evaluate] param[1]: invalid value 'rank' for --param" in capsys.readouterr().err


@pytest.mark.parametrize("text, message", [
    ('[train]\ndimm = 3\n', "[train] dimm: not an option of train"),
    ('[train]\ndim = [3]\n', "[train] dim: expected a single value for --dim"),
    ('[train]\ndim = "x"\n', "[train] dim: invalid value 'x' for --dim"),
    ('[train]\ngpu = "yes"\n', "[train] gpu: expected true or false"),
    ('[train]\nlauncher = "mpi"\n', "[train] launcher: 'mpi' is not one of local, torch, horovod"),
    ('lake = "s3://b/lake"\n', "lake: lake root 's3://b/lake': scheme s3:// is not supported"),
    ('lake = 3\n', "lake: expected a string"),
    ('colour = "red"\n', "colour: unknown top-level key"),
    ('[ingest]\nid_key = "0123456789abcdef"\n', "[ingest] id_key: secrets are not read"),
    ('[train\n', "not valid TOML"),
])
def test_bad_settings_are_usage_errors_naming_file_and_key(tmp_path, capsys, text, message):
    cfg = write(tmp_path, text)
    with pytest.raises(SystemExit) as e:
        train.parse_args(["--config", cfg, "--lake", "x", "--run-date", DATE])
    err = capsys.readouterr().err
    assert e.value.code == 2 and f"{cfg}: " in err and message in err, err


def test_missing_file_lake_and_date_are_named(tmp_path, capsys):
    for argv, message in ((["--config", str(tmp_path / "no.toml")], "configuration file not found"),
                          (["--run-date", DATE], "--lake is required"),
                          (["--lake", "x"], "--run-date is required")):
        with pytest.raises(SystemExit):
            build_examples.parse_args(argv)
        assert message in capsys.readouterr().err


@pytest.mark.parametrize("url, ok", [("data/lake", True), ("file:///tmp/l", True),
                                     ("hdfs://nn:8020/l", True), ("s3a://b/l", True),
                                     ("s3://b/l", False), ("gs://b/l", False), ("", False)])
def test_lake_schemes(url, ok):
    if ok:
        assert check_lake(url) == url
    else:
        with pytest.raises(ValueError):
            check_lake(url)


def test_switches_named_like_keys_are_not_secrets(tmp_path):
    s = load_settings(write(tmp_path, '[ingest]\ndev_key = true\n'))
    assert s.section("ingest") == {"dev_key": True}
    with pytest.raises(ConfigError, match="api_token"):
        load_settings(write(tmp_path, '[score]\napi_token = "t"\n'))


def test_pipeline_selects_stages_and_spells_settings_out(tmp_path):
    cfg = write(tmp_path, 'lake = "/l"\n[train]\ndim = 16\ngpu = true\n'
                          '[evaluate]\nseeds = "0,1"\n')
    p = pipeline.parse_args(["--config", cfg, "--date", DATE, "--from", "build_examples",
                             "--to", "score", "--set", "train.dim=4", "--set", "train.gpu=false",
                             "--set", "train.loss=in_batch"])
    assert p.stages == ("build_examples", "train", "score")
    assert pipeline.stage_argv(p, "train") == ["--lake", "/l", "--run-date", DATE, "--dim", "4",
                                               "--loss", "in_batch"]
    assert pipeline.stage_argv(p, "evaluate")[-2:] == ["--seeds", "0,1"]
    only = pipeline.parse_args(["--config", cfg, "--date", DATE, "--only", "train", "--only",
                                "ingest"])
    assert only.stages == ("ingest", "train")  # always in pipeline order


@pytest.mark.parametrize("argv, message", [
    (["--set", "trian.dim=3"], "unknown stage 'trian'"),
    (["--set", "train.dim"], "expected STAGE.KEY=VALUE"),
    (["--only", "train", "--from", "ingest"], "--only cannot be combined"),
    (["--from", "train", "--to", "ingest"], "no stage selected"),
])
def test_pipeline_usage_errors(tmp_path, capsys, argv, message):
    with pytest.raises(SystemExit) as e:
        pipeline.parse_args(["--lake", "/l", "--date", DATE, *argv])
    assert e.value.code == 2 and message in capsys.readouterr().err


def test_unknown_stage_table_is_refused(tmp_path, capsys):
    cfg = write(tmp_path, '[trian]\ndim = 3\n')
    with pytest.raises(SystemExit):
        pipeline.parse_args(["--config", cfg, "--lake", "/l", "--date", DATE])
    assert "[trian]: unknown stage" in capsys.readouterr().err


def test_a_bad_stage_option_stops_the_pipeline_before_any_stage(tmp_path, capsys, caplog):
    with pytest.raises(SystemExit) as e, caplog.at_level(logging.ERROR):
        pipeline.main(["--lake", str(tmp_path / "lake"), "--date", DATE,
                       "--set", "ingest.sources=s.toml", "--set", "train.dim=wide"])
    assert e.value.code == 2 and "--dim" in capsys.readouterr().err
    assert any("stage train: invalid options" in r.getMessage() for r in caplog.records)
    assert not (tmp_path / "lake").exists()


def test_a_failing_stage_stops_the_pipeline_with_its_status(spark, tmp_path, caplog):
    with caplog.at_level(logging.INFO):
        code = pipeline.main(["--lake", str(tmp_path / "lake"), "--date", DATE,
                              "--from", "build_examples"])
    assert code == 2  # no unified dataset for the date: an input error
    lines = [r.getMessage() for r in caplog.records]
    assert any('"status": "failed"' in m and '"stage": "build_examples"' in m for m in lines)
    assert not any('"stage": "train"' in m for m in lines)  # it stopped there
    assert any("pipeline stopped: stage build_examples failed (exit 2)" in m for m in lines)
