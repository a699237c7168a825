"""The subprocesses: one per backend, a few at a time, each stopped at
its timeout. What a subprocess runs is `_worker.py`."""

import importlib.util
import json
import os
import subprocess
import sys
import time

import numpy as np

from keras_reg import config
from keras_reg.testing._arguments import BACKENDS

# The package each backend needs.
_PACKAGES = {"tensorflow": "tensorflow", "torch": "torch", "jax": "jax"}


def installed_backends():
    """The backends whose package is installed, in the order of `BACKENDS`."""
    return [b for b in BACKENDS if importlib.util.find_spec(_PACKAGES[b]) is not None]


def progress(message):
    """A progress line on stderr."""
    print(f"keras_reg.testing: {message}", file=sys.stderr, flush=True)


# JAX closes a traceback it filtered with a note below a dashed line.
_JAX_NOTE = "For simplicity, JAX has removed its internal frames"


def _last_line(text, limit=400):
    """The last line of a subprocess's log (its exception), shortened."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    while lines and (lines[-1].startswith(_JAX_NOTE) or set(lines[-1]) == {"-"}):
        lines.pop()
    line = lines[-1] if lines else ""
    return line if len(line) <= limit else line[: limit - 3] + "..."


class Run:
    """One backend's subprocess: `error` (a sentence) or `result`
    (`(meta, arrays)` as the worker wrote them), and `seconds`."""

    def __init__(self, backend, spec, directory):
        self.backend = backend
        self.out = os.path.join(directory, backend)
        os.makedirs(self.out)
        spec = dict(spec, out=self.out)
        self.spec_path = os.path.join(self.out, "spec.json")
        with open(self.spec_path, "w") as f:
            json.dump(spec, f)
        self.process = None
        self.error = None
        self.result = None
        self.seconds = 0.0

    def start(self):
        env = dict(os.environ)
        env["KERAS_BACKEND"] = self.backend
        env["KERAS_REG_RNG"] = config.rng()
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        paths = [p or os.getcwd() for p in sys.path]
        env["PYTHONPATH"] = os.pathsep.join(paths)
        self.stderr = open(os.path.join(self.out, "stderr.txt"), "w+")
        self.started = time.perf_counter()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "keras_reg.testing._worker", self.spec_path],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self.stderr,
            stderr=self.stderr,
        )
        progress(f"{self.backend}: started")

    def poll(self, timeout):
        """True once the process has ended (or was stopped)."""
        code = self.process.poll()
        elapsed = time.perf_counter() - self.started
        if code is None and elapsed <= timeout:
            return False
        if code is None:
            self.process.kill()
            self.process.wait()
            self.error = f"timed out after {timeout:g} s (stopped)"
        self.seconds = elapsed
        self.stderr.seek(0)
        log = self.stderr.read()
        self.stderr.close()
        if self.error is None and code != 0:
            self.error = f"{_last_line(log) or 'no message'} (exit status {code})"
        if self.error is None:
            try:
                with open(os.path.join(self.out, "results.json")) as f:
                    meta = json.load(f)
                with np.load(os.path.join(self.out, "results.npz")) as data:
                    arrays = {k: data[k] for k in data.files}
                self.result = (meta, arrays)
            except (OSError, ValueError) as error:
                self.error = f"its results could not be read: {error}"
        if self.error:
            progress(f"{self.backend}: ERROR after {elapsed:.1f} s: {self.error}")
        else:
            count = len(self.result[0]["entries"])
            progress(f"{self.backend}: done in {elapsed:.1f} s ({count} values)")
        return True


def run_all(backends, spec, directory, timeout, jobs):
    """Runs the worker on every backend, `jobs` at a time; returns the
    `Run`s in the order of `backends`."""
    runs = [Run(b, spec, directory) for b in backends]
    waiting, active = [], []
    for run in runs:
        if importlib.util.find_spec(_PACKAGES[run.backend]) is None:
            run.error = f"the {run.backend} package is not installed"
            progress(f"{run.backend}: ERROR: {run.error}")
        else:
            waiting.append(run)
    try:
        while waiting or active:
            while waiting and len(active) < jobs:
                run = waiting.pop(0)
                run.start()
                active.append(run)
            active = [run for run in active if not run.poll(timeout)]
            if active:
                time.sleep(0.05)
    finally:
        # An interrupt (Ctrl-C) leaves no subprocess behind.
        for run in active:
            if run.process is not None and run.process.poll() is None:
                run.process.kill()
                run.process.wait()
    return runs
