"""Loading SavedModel versions the way TensorFlow Serving does.

`ModelManager` watches a model base path (``<base>/<version>/``, integer
versions) and serves what is on disk, as TF Serving's ``latest`` version
policy does: the newest version that loads. It picks up newly exported
versions without a restart, keeps serving the previous version when a new one
fails to load, falls back to the next newest when the served version is
deleted, reloads a version whose directory was replaced, and remembers every
version's state for `GetModelStatus`. A version that failed to load is tried
again once its files change (one that appeared by a non-atomic ``cp -r`` fails
while half copied and loads when complete). Requests hold a reference to the
`Servable` they started with, so a swap never fails a request in flight.

Depends on TensorFlow only, never on featnet_tf: it serves any SavedModel.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
import time

import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import meta_graph_pb2

from tfbase import sessions
from tfbase.versions import list_versions

LOG = logging.getLogger("serving")


@dataclasses.dataclass
class Servable:
    """One loaded version: a session holding its graph, and a callable per signature.

    Loaded and run as TensorFlow Serving loads and runs a SavedModel
    (`tfbase.sessions.load_saved_model`): a call goes straight into the graph
    with no Python function dispatch and no captured variable handles to pass
    (BENCHMARKS.md, "Serving: a session per version"), and the session's graph
    is finalized, so serving adds no ops.
    """

    name: str
    version: int
    path: str
    loaded: sessions.LoadedSavedModel

    @property
    def signature_defs(self) -> dict[str, meta_graph_pb2.SignatureDef]:
        return self.loaded.signature_defs

    def run(self, signature: str, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The signature's outputs, by key, for `inputs` (every input of the signature)."""
        return self.loaded.signatures[signature](inputs)


@dataclasses.dataclass
class VersionStatus:
    """A version's state as `GetModelStatus` reports it."""

    state: str  # LOADING, AVAILABLE, END
    error: str = ""


def load_servable(name: str, version: int, path: str, config=None) -> Servable:
    """Loads one version as TF Serving does, into a session of its own with `config` (`sessions.session_config`)."""
    return Servable(name, version, path, sessions.load_saved_model(path, config))


def fingerprint(path: str) -> tuple:
    """What a version directory holds: every file's path, size and times.
    A version is reloaded, or a failed one retried, when it changes. Local
    files add their inode and change time, which no copy preserves (`cp -a`
    and `shutil.copytree` keep the modification time)."""
    entries = []
    for directory, _, files in tf.io.gfile.walk(path):
        for name in files:
            full = os.path.join(directory, name)
            if "://" in full:
                stat = tf.io.gfile.stat(full)
                entries.append((os.path.relpath(full, path), stat.length, stat.mtime_nsec))
            else:
                stat = os.stat(full)
                entries.append(
                    (os.path.relpath(full, path), stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino)
                )
    return tuple(sorted(entries))


class ModelManager:
    """Serves the newest loadable version of one model and reloads on change.

    Args:
        name: the model name clients put in `model_spec.name`.
        base_path: the directory of integer version subdirectories.
        poll_seconds: how often the base path is scanned for new versions.
        warmup: optional callable run on a freshly loaded servable before it
            starts answering (e.g. replaying TF Serving warm-up requests).
        config: the sessions' `ConfigProto` (`tfbase.sessions.session_config`); None:
            TensorFlow's defaults.
    """

    def __init__(self, name: str, base_path: str, poll_seconds: float = 1.0, warmup=None, config=None) -> None:
        self.name = name
        self.base_path = base_path
        self.poll_seconds = poll_seconds
        self.warmup = warmup
        self.config = config
        self.statuses: dict[int, VersionStatus] = {}
        self._current: Servable | None = None
        self._loaded: dict[int, Servable] = {}
        self._served_files: tuple = ()  # the fingerprint of the version served, as it was loaded
        self._failed: dict[int, tuple] = {}  # versions that failed to load, and their files then
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def current(self) -> Servable | None:
        return self._current

    def servable(self, version: int | None = None) -> Servable | None:
        """The newest servable, or a given version if it is loaded."""
        with self._lock:
            if version is None:
                return self._current
            return self._loaded.get(version)

    def poll(self) -> None:
        """Serves the newest version on disk that loads (TF Serving's
        ``latest`` policy). Newest first: a version is loaded unless it is the
        one served, unchanged, or it failed to load and its files have not
        changed since; a failure is recorded as END with its error and the
        next older version is tried. When no version on disk loads and the
        served one was deleted, nothing is served."""
        on_disk = list_versions(self.base_path)
        current = self._current
        for version in set(self._failed) - set(on_disk):
            del self._failed[version]  # a version exported again under this number is new
        for version in sorted(on_disk, reverse=True):
            path = os.path.join(self.base_path, str(version))
            try:
                files = fingerprint(path)
            except (tf.errors.NotFoundError, FileNotFoundError):  # deleted while we looked
                continue
            if current is not None and version == current.version and files == self._served_files:
                return  # the newest loadable version is the one served
            if self._failed.get(version) == files:
                continue  # failed with exactly these files: wait for them to change
            if self._load(version, path, files):
                return
        if current is not None and current.version not in on_disk:
            with self._lock:
                self._current, self._loaded = None, {}
            self.statuses[current.version] = VersionStatus("END")
            LOG.error("model %s: version %d was removed and no other version loads", self.name, current.version)

    def _load(self, version: int, path: str, files: tuple) -> bool:
        """Loads, warms up and swaps in one version; False (and END with the
        error) when it fails, leaving the served version as it was."""
        self.statuses[version] = VersionStatus("LOADING")
        try:
            servable = load_servable(self.name, version, path, self.config)
            if self.warmup is not None:
                self.warmup(servable)
        except Exception as error:  # any failure to load keeps the previous version serving
            LOG.error("model %s version %d failed to load: %s", self.name, version, error)
            self.statuses[version] = VersionStatus("END", f"{type(error).__name__}: {error}")
            self._failed[version] = files
            return False
        with self._lock:
            previous = self._current
            self._current = servable
            self._loaded = {version: servable}
        self._failed.pop(version, None)
        self._served_files = files
        if previous is not None and previous.version != version:
            self.statuses[previous.version] = VersionStatus("END")
        self.statuses[version] = VersionStatus("AVAILABLE")
        LOG.info("model %s: serving version %d from %s", self.name, version, path)
        return True

    def start(self) -> None:
        self.poll()
        self._thread = threading.Thread(target=self._watch, name="model-manager", daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._stop.wait(self.poll_seconds):
            try:
                self.poll()
            except Exception:  # a scan error must not kill the watcher
                LOG.exception("scanning %s failed", self.base_path)

    def stop(self, timeout: float = 60.0) -> None:
        """Stops watching; waits for a load in progress to finish (a thread
        inside TensorFlow at interpreter exit aborts the process)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def wait_until_available(self, timeout: float | None = 60.0) -> Servable:
        """The first loaded version; `RuntimeError` after `timeout` seconds
        without one (None: wait as long as it takes)."""
        deadline = None if timeout is None else time.time() + timeout
        while self._current is None and (deadline is None or time.time() < deadline):
            time.sleep(0.05)
        if self._current is None:
            raise RuntimeError(
                f"No version of {self.name} under {self.base_path} loaded within {timeout} s "
                "(--version_wait_seconds; 0 waits as long as it takes)"
            )
        return self._current
