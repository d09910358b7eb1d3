"""spark-submit.sh: argument split, defaults, the shipped zip, and one real launch.

Dry runs (CROSSREC_DRY_RUN=1) print the final spark-submit command one argument per line.
"""
from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "spark-submit.sh"
ZIP = ROOT / "dist" / "crossrec.zip"
DEFAULT_CONFS = {
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.sql.sources.partitionOverwriteMode": "dynamic",
    "spark.hadoop.mapreduce.fileoutputcommitter.algorithm.version": "1",
    "spark.sql.session.timeZone": "UTC",
    "spark.ui.showConsoleProgress": "false",
}


def _run(*args: str, dry: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CROSSREC_DRY_RUN": "1" if dry else "0"}
    return subprocess.run([str(SCRIPT), *args], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=timeout)


@pytest.fixture(scope="module")
def job() -> str:
    """A job that exists in jobs/ (the wrapper only runs jobs/JOB.py)."""
    names = sorted(p.stem for p in (ROOT / "jobs").glob("*.py") if not p.stem.startswith("_"))
    if not names:
        pytest.skip("no job in jobs/ yet")
    return "ingest" if "ingest" in names else names[0]


def _dry(job: str, *args: str) -> tuple[list[str], list[str]]:
    """(spark-submit options, job arguments) around the job script in a dry run's command."""
    proc = _run(job, *args)
    assert proc.returncode == 0, proc.stderr
    cmd = proc.stdout.splitlines()
    assert Path(cmd[0]).name == "spark-submit"
    at = cmd.index(str(ROOT / "jobs" / f"{job}.py"))
    return cmd[1:at], cmd[at + 1:]


def _values(spark_args: list[str], opt: str) -> list[str]:
    return [spark_args[i + 1] for i, a in enumerate(spark_args) if a == opt]


def _confs(spark_args: list[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for kv in _values(spark_args, "--conf"):
        key, value = kv.split("=", 1)
        out.setdefault(key, []).append(value)
    return out


def test_spark_options_go_before_the_script_and_job_options_after(job: str) -> None:
    spark, args = _dry(job, "--sources", "my dir/s.toml", "--driver-memory", "3g", "--verbose",
                       "--run-date=2026-01-02", "--executor-cores=2", "--flag")
    assert args == ["--sources", "my dir/s.toml", "--run-date=2026-01-02", "--flag"]
    assert _values(spark, "--driver-memory") == ["3g"]
    assert _values(spark, "--executor-cores") == ["2"]  # --opt=value normalised to two arguments
    assert "--verbose" in spark


def test_defaults_local_master_and_confs(job: str) -> None:
    spark, args = _dry(job)
    assert args == []
    assert _values(spark, "--master") == ["local[*]"]
    assert _confs(spark) == {k: [v] for k, v in DEFAULT_CONFS.items()}


def test_local_mode_gets_driver_memory_unless_the_user_sets_it(job: str) -> None:
    assert _values(_dry(job)[0], "--driver-memory") == ["4g"]
    assert _values(_dry(job, "--driver-memory", "2g")[0], "--driver-memory") == ["2g"]
    assert _values(_dry(job, "--driver-memory=3g")[0], "--driver-memory") == ["3g"]
    assert _values(_dry(job, "--conf", "spark.driver.memory=6g")[0], "--driver-memory") == []
    assert _values(_dry(job, "--master", "yarn")[0], "--driver-memory") == []


def test_user_master_replaces_the_local_default(job: str) -> None:
    spark, _ = _dry(job, "--master", "yarn", "--deploy-mode=client")
    assert _values(spark, "--master") == ["yarn"]
    assert _values(spark, "--deploy-mode") == ["client"]


def test_user_conf_wins_over_the_default_in_every_form(job: str) -> None:
    spark, _ = _dry(job, "--conf", "spark.sql.session.timeZone=Europe/Paris",
                    "-c", "spark.ui.showConsoleProgress=true",
                    "--conf=spark.sql.sources.partitionOverwriteMode=static", "--conf", "spark.x=a=b")
    confs = _confs(spark)
    assert confs["spark.sql.session.timeZone"] == ["Europe/Paris"]
    assert confs["spark.ui.showConsoleProgress"] == ["true"]
    assert confs["spark.sql.sources.partitionOverwriteMode"] == ["static"]
    assert confs["spark.x"] == ["a=b"]
    assert confs["spark.sql.execution.arrow.pyspark.enabled"] == ["true"]


def test_properties_file_keys_win_over_the_defaults(job: str, tmp_path: Path) -> None:
    props = tmp_path / "my spark.conf"
    props.write_text("# comment\nspark.sql.session.timeZone  Asia/Tokyo\n")
    spark, _ = _dry(job, "--properties-file", str(props))
    assert _values(spark, "--properties-file") == [str(props)]
    assert "spark.sql.session.timeZone" not in _confs(spark)


def test_user_py_files_are_merged_with_the_package_zip(job: str) -> None:
    spark, _ = _dry(job, "--py-files", "a.py,b.zip", "--py-files=c.egg")
    assert _values(spark, "--py-files") == [f"{ZIP},a.py,b.zip,c.egg"]
    spark, _ = _dry(job)
    assert _values(spark, "--py-files") == [str(ZIP)]


def test_double_dash_sends_clashing_names_to_the_job(job: str) -> None:
    spark, args = _dry(job, "--name", "app", "--", "--name", "x", "--master", "y")
    assert _values(spark, "--name") == ["app"]
    assert args == ["--name", "x", "--master", "y"]


def test_zip_holds_the_package_and_schemas_without_caches(job: str) -> None:
    _dry(job)
    names = zipfile.ZipFile(ZIP).namelist()
    assert "crossrec/__init__.py" in names
    assert "crossrec/schemas/lake.py" in names
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    assert all(n.startswith("crossrec/") for n in names)


def test_zip_alone_provides_every_crossrec_module(job: str, tmp_path: Path) -> None:
    """What an executor without the editable install sees: site-packages + the zip, nothing else."""
    _dry(job)
    modules = sorted(n[:-3].replace("/", ".").removesuffix(".__init__")
                     for n in zipfile.ZipFile(ZIP).namelist() if n.endswith(".py"))
    code = (
        "import importlib, sys\n"
        f"sys.path[:0] = [{str(ZIP)!r}, {sysconfig.get_paths()['purelib']!r}]\n"
        f"for name in {modules!r}:\n"
        "    mod = importlib.import_module(name)\n"
        f"    assert mod.__file__.startswith({str(ZIP)!r}), (name, mod.__file__)\n"
    )
    # -S: no site processing, hence no editable-install finder; cwd outside the repo.
    proc = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True,
                          cwd=tmp_path, timeout=120)
    assert proc.returncode == 0, proc.stderr


def test_unknown_job_fails_clearly() -> None:
    proc = _run("no_such_job", "--x")
    assert proc.returncode != 0
    assert "unknown job 'no_such_job'" in proc.stderr
    assert "jobs/no_such_job.py" in proc.stderr
    assert proc.stdout == ""


def test_missing_option_value_fails_clearly(job: str) -> None:
    proc = _run(job, "--master")
    assert proc.returncode != 0
    assert "--master needs a value" in proc.stderr


def test_usage_lists_the_jobs(job: str) -> None:
    proc = _run("--help")
    assert proc.returncode == 0
    assert "Usage:" in proc.stdout
    assert f"  {job} " in proc.stdout
    bare = _run()
    assert bare.returncode != 0
    assert "Usage:" in bare.stderr


@pytest.mark.slow
def test_real_launch_shows_the_job_help(job: str) -> None:
    """A real spark-submit (JVM, driver python, --py-files) up to the job's argparse help."""
    name = "prepare_demo" if (ROOT / "jobs" / "prepare_demo.py").exists() else job
    proc = _run(name, "--help", dry=False, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "usage:" in proc.stdout
    assert "--help" in proc.stdout


def test_config_file_is_shipped_and_renamed_in_cluster_mode(tmp_path: Path) -> None:
    cfg = tmp_path / "crossrec.toml"
    cfg.write_text('lake = "s3a://b/lake"\n')
    spark, args = _dry("ingest", "--files", "extra.txt", "--config", str(cfg))
    assert _values(spark, "--files") == [f"{cfg},extra.txt"]
    assert args == ["--config", str(cfg)]  # client/local mode: the driver reads the local file
    spark, args = _dry("ingest", "--master", "yarn", "--deploy-mode", "cluster",
                       f"--config={cfg}", "--conf", "spark.executor.instances=3")
    assert _values(spark, "--files") == [str(cfg)]
    assert args == ["--config=crossrec.toml"]  # the remote driver's working directory
    assert _confs(spark)["spark.executor.instances"] == ["3"]
    spark, _ = _dry("ingest", "--config", "s3a://b/crossrec.toml")  # remote: not shipped
    assert _values(spark, "--files") == []


def test_pipeline_ships_the_jobs_it_imports() -> None:
    spark, _ = _dry("pipeline", "--date", "2026-01-01")
    shipped = _values(spark, "--py-files")[0].split(",")
    jobs = sorted(str(p) for p in (ROOT / "jobs").glob("*.py")
                  if not p.name.startswith("_") and p.stem != "pipeline")
    assert shipped[0] == str(ZIP) and sorted(shipped[1:]) == jobs


def test_package_builds_the_zip_and_prints_its_path() -> None:
    proc = _run("--package")
    assert proc.returncode == 0 and proc.stdout.strip() == str(ZIP) and ZIP.exists()
