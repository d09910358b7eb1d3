"""Filesystem access behind one small interface, chosen by URL scheme (Horovod's ``Store.create``).

``LocalStore`` serves plain paths and ``file://``; ``HadoopStore`` serves everything else
(``hdfs://``, ``s3a://``, ...) through the running Spark JVM's Hadoop ``FileSystem``, so the cluster's
own configuration and credentials apply and no extra Python dependency is needed.
"""
from __future__ import annotations

import os
import shutil
import uuid
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse


@dataclass(frozen=True)
class FileInfo:
    path: str    # full URL
    size: int
    mtime_ms: int


def normalize_url(path: str) -> str:
    """A plain path becomes an absolute ``file://`` URL; URLs are kept (trailing '/' dropped)."""
    if "://" in path:
        return path.rstrip("/") if not path.endswith(":///") else path
    return Path(path).expanduser().resolve().as_uri()


def arrow_filesystem(url: str) -> tuple[Any, str]:
    """pyarrow's filesystem and path for a plain path or URL, for reading in Python tasks
    (``s3a://`` is read as ``s3://``); raises ``OSError``/``ArrowInvalid`` when pyarrow cannot
    open that scheme here (e.g. ``hdfs://`` without libhdfs)."""
    import pyarrow.fs as pafs

    if "://" not in url:
        return pafs.LocalFileSystem(), url
    if url.startswith("s3a://"):  # Hadoop's name for S3; pyarrow knows it as s3
        url = "s3://" + url[len("s3a://"):]
    return pafs.FileSystem.from_uri(url)


def join(base: str, *parts: str) -> str:
    return "/".join([base.rstrip("/"), *[p.strip("/") for p in parts]])


class Store(ABC):
    """The few filesystem operations the lake needs. Paths are URLs."""

    @staticmethod
    def create(url: str, spark: Any = None) -> "Store":
        scheme = urlparse(normalize_url(url)).scheme
        if scheme == "file":
            return LocalStore()
        if spark is None:
            raise ValueError(f"{url}: the {scheme}:// scheme needs a SparkSession (Hadoop FileSystem)")
        return HadoopStore(spark)

    @abstractmethod
    def exists(self, url: str) -> bool: ...

    @abstractmethod
    def read_text(self, url: str) -> str: ...

    @abstractmethod
    def write_text_atomic(self, url: str, text: str) -> None:
        """Readers see the old content or the new, never a partial file."""

    @abstractmethod
    def list_names(self, url: str) -> list[str]:
        """Names of the direct children of a directory (empty if it does not exist)."""

    @abstractmethod
    def list_files(self, url: str) -> list[FileInfo]:
        """All files below ``url`` (or ``url`` itself if it is a file), sorted by path."""

    @abstractmethod
    def delete(self, url: str) -> None:
        """Remove a file or a directory tree; absent is fine."""

    @abstractmethod
    def head(self, url: str) -> str:
        """The first line of a text file, without its line end."""

    @abstractmethod
    def put_file(self, local: str | Path, url: str) -> None:
        """Copy a local file to ``url`` (model artifacts: binary)."""

    @abstractmethod
    def get_file(self, url: str, local: str | Path) -> None:
        """Copy ``url`` to a local file."""


def _local(url: str) -> Path:
    return Path(urlparse(url).path) if url.startswith("file:") else Path(url)


class LocalStore(Store):
    def exists(self, url: str) -> bool:
        return _local(url).exists()

    def read_text(self, url: str) -> str:
        return _local(url).read_bytes().decode("utf-8")  # no newline translation

    def head(self, url: str) -> str:
        with open(_local(url), "rb") as f:
            first = f.readline(1 << 20)
        return first.decode("utf-8", errors="replace").rstrip("\r\n")

    def write_text_atomic(self, url: str, text: str) -> None:
        path = _local(url)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)  # atomic on POSIX
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)  # make the rename itself durable
        finally:
            os.close(dir_fd)

    def list_names(self, url: str) -> list[str]:
        path = _local(url)
        return sorted(p.name for p in path.iterdir()) if path.is_dir() else []

    def list_files(self, url: str) -> list[FileInfo]:
        root = _local(url)
        paths = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
        out = []
        for p in paths:
            st = p.stat()
            out.append(FileInfo(p.resolve().as_uri(), st.st_size, int(st.st_mtime * 1000)))
        return out

    def delete(self, url: str) -> None:
        path = _local(url)
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        elif path.exists():
            path.unlink()

    def put_file(self, local: str | Path, url: str) -> None:
        dest = _local(url)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(local, dest)

    def get_file(self, url: str, local: str | Path) -> None:
        shutil.copyfile(_local(url), local)


class HadoopStore(Store):
    """Through the driver JVM's ``org.apache.hadoop.fs`` API."""

    def __init__(self, spark: Any) -> None:
        self._jvm = spark._jvm
        self._gateway = spark.sparkContext._gateway
        self._conf = spark._jsc.hadoopConfiguration()

    def _fs(self, url: str) -> tuple[Any, Any]:
        path = self._jvm.org.apache.hadoop.fs.Path(url)
        return path.getFileSystem(self._conf), path

    def exists(self, url: str) -> bool:
        fs, path = self._fs(url)
        return bool(fs.exists(path))

    def read_text(self, url: str) -> str:
        fs, path = self._fs(url)
        stream = fs.open(path)
        try:
            return str(self._jvm.org.apache.commons.io.IOUtils.toString(stream, "UTF-8"))
        finally:
            stream.close()

    def head(self, url: str) -> str:
        fs, path = self._fs(url)
        stream = fs.open(path)
        try:
            io = self._jvm.java.io
            line = io.BufferedReader(io.InputStreamReader(stream, "UTF-8")).readLine()
            return "" if line is None else str(line).rstrip("\r")
        finally:
            stream.close()

    def write_text_atomic(self, url: str, text: str) -> None:
        fs, path = self._fs(url)
        data = bytearray(text.encode("utf-8"))
        if urlparse(url).scheme in ("s3a", "s3", "gs", "abfs", "abfss"):
            # object stores: one PUT is atomic, a rename is a copy
            out = fs.create(path, True)
            out.write(data)
            out.close()
            return
        tmp = self._jvm.org.apache.hadoop.fs.Path(f"{url}.{uuid.uuid4().hex}.tmp")
        out = fs.create(tmp, True)
        out.write(data)
        out.hsync()
        out.close()
        fc = self._jvm.org.apache.hadoop.fs.FileContext.getFileContext(path.toUri(), self._conf)
        opts = self._gateway.new_array(self._jvm.org.apache.hadoop.fs.Options.Rename, 1)
        opts[0] = self._jvm.org.apache.hadoop.fs.Options.Rename.OVERWRITE
        fc.rename(tmp, path, opts)  # atomic replace on HDFS and local

    def list_names(self, url: str) -> list[str]:
        fs, path = self._fs(url)
        if not fs.exists(path):
            return []
        return sorted(str(s.getPath().getName()) for s in fs.listStatus(path))

    def list_files(self, url: str) -> list[FileInfo]:
        fs, path = self._fs(url)
        it = fs.listFiles(path, True)
        out = []
        while it.hasNext():
            s = it.next()
            out.append(FileInfo(str(s.getPath().toString()), int(s.getLen()),
                                int(s.getModificationTime())))
        return sorted(out, key=lambda f: f.path)

    def delete(self, url: str) -> None:
        fs, path = self._fs(url)
        fs.delete(path, True)

    def put_file(self, local: str | Path, url: str) -> None:
        fs, path = self._fs(url)
        src = self._jvm.org.apache.hadoop.fs.Path(Path(local).resolve().as_uri())
        fs.copyFromLocalFile(False, True, src, path)

    def get_file(self, url: str, local: str | Path) -> None:
        fs, path = self._fs(url)
        fs.copyToLocalFile(False, path, self._jvm.org.apache.hadoop.fs.Path(Path(local).resolve().as_uri()), True)
