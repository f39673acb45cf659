"""TensorFlow's start-up notices, kept off the terminal of a machine without a GPU.

TensorFlow 2.21 writes its CUDA stub notices ("Could not find cuda drivers"),
the CPU-feature notice and "failed call to cuInit" straight to the process's
stderr before its own logging is initialised, so ``TF_CPP_MIN_LOG_LEVEL``
alone does not hide them (tensorflow/tensorflow#100442). `install` (called by
``featnet_tf/__init__.py`` and ``serving/__init__.py``; it steps aside when the
user set ``TF_CPP_MIN_LOG_LEVEL`` themselves) sets the level to 2 and makes the first ``import tensorflow`` of
the process, and the device discovery right after it, write file descriptor 2
to /dev/null. Whatever they raise is raised as usual; nothing after them is
hidden.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.machinery
import os
import sys
from typing import Iterator

LOG_LEVEL_VARIABLE = "TF_CPP_MIN_LOG_LEVEL"
# Set beside the level when this module chose it, so that a child process
# (a server, a worker) tells our default from a level the user set.
CHOSEN_BY_US_VARIABLE = "FEATNET_TF_QUIET_STARTUP"


@contextlib.contextmanager
def stderr_to_devnull() -> Iterator[None]:
    """File descriptor 2 (what C++ writes to) points at /dev/null inside the block."""
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


class _QuietLoader(importlib.abc.Loader):
    """Runs TensorFlow's own loader, then lists the devices, with stderr silenced."""

    def __init__(self, loader: importlib.abc.Loader) -> None:
        self.loader = loader

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module) -> None:
        with stderr_to_devnull():
            self.loader.exec_module(module)
            module.config.list_physical_devices()  # cuInit, on a machine with CUDA libraries and no GPU
        module.__loader__ = module.__spec__.loader = self.loader


class _QuietTensorFlowFinder(importlib.abc.MetaPathFinder):
    """Catches the first import of ``tensorflow`` and hands it `_QuietLoader`; then steps aside."""

    def find_spec(self, fullname, path, target=None):
        if fullname != "tensorflow":
            return None
        sys.meta_path.remove(self)
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is not None and spec.loader is not None:
            spec.loader = _QuietLoader(spec.loader)
        return spec


def install() -> None:
    """Quiet TensorFlow's start-up unless the user chose a log level or TensorFlow is already loaded."""
    if LOG_LEVEL_VARIABLE in os.environ and CHOSEN_BY_US_VARIABLE not in os.environ:
        return
    os.environ[LOG_LEVEL_VARIABLE] = "2"
    os.environ[CHOSEN_BY_US_VARIABLE] = "1"
    if "tensorflow" not in sys.modules and not any(isinstance(f, _QuietTensorFlowFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _QuietTensorFlowFinder())
