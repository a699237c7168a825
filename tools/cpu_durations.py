"""A pytest plugin: each test's CPU seconds, its own and its subprocesses'.

Wall-clock durations (`--durations`) grow with whatever else the machine
runs; CPU seconds mostly do not, so they say where the suite's time goes
even on a busy machine. At the end it prints the slowest tests and each
file's total, and with `--cpu-durations-json PATH` writes every test's
figures there.

    KERAS_BACKEND=jax python -m pytest -p tools.cpu_durations tests/...
"""

import collections
import json
import os
import resource
import time

import pytest

_records = {}


def _cpu_seconds():
    """(CPU seconds of this process and its ended subprocesses, of the
    subprocesses alone)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    child = children.ru_utime + children.ru_stime
    return own.ru_utime + own.ru_stime + child, child


def pytest_addoption(parser):
    group = parser.getgroup("cpu-durations")
    group.addoption(
        "--cpu-durations",
        type=int,
        default=25,
        help="how many of the slowest tests (CPU seconds) to print",
    )
    group.addoption(
        "--cpu-durations-json",
        default=None,
        help="write every test's figures here ({backend} and {pid} are filled in)",
    )


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    (cpu, child), wall = _cpu_seconds(), time.perf_counter()
    yield
    (cpu_after, child_after) = _cpu_seconds()
    _records[item.nodeid] = {
        "cpu": cpu_after - cpu,
        "subprocesses": child_after - child,
        "wall": time.perf_counter() - wall,
    }


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if not _records:
        return
    write = terminalreporter.write_line
    count = config.getoption("--cpu-durations")
    slowest = sorted(_records.items(), key=lambda item: -item[1]["cpu"])
    terminalreporter.section("CPU seconds (own + subprocesses), slowest tests")
    for nodeid, record in slowest[:count]:
        write(f"{record['cpu']:8.2f} cpu {record['wall']:8.2f} wall  {nodeid}")
    files = collections.defaultdict(lambda: [0.0, 0.0, 0])
    for nodeid, record in _records.items():
        entry = files[nodeid.split("::")[0]]
        entry[0] += record["cpu"]
        entry[1] += record["wall"]
        entry[2] += 1
    terminalreporter.section("CPU seconds per file")
    for name, (cpu, wall, tests) in sorted(files.items(), key=lambda f: -f[1][0]):
        write(f"{cpu:8.1f} cpu {wall:8.1f} wall {tests:5d} tests  {name}")
    total = sum(r["cpu"] for r in _records.values())
    write(f"{total:8.1f} cpu in all, {len(_records)} tests")
    path = config.getoption("--cpu-durations-json")
    if path:
        # "{backend}" and "{pid}" in the path keep parallel runs apart.
        path = path.format(
            backend=os.environ.get("KERAS_BACKEND", "default"), pid=os.getpid()
        )
        with open(path, "w") as f:
            json.dump(_records, f, indent=1, sort_keys=True)
