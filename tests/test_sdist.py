"""The source distribution holds what the test suite needs: every top-level
file and folder the tests import or read is in the sdist's include list.
(`python -m build --sdist` and `tar tzf` show the result.)"""

import pathlib

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: pip ships a copy of tomli
    from pip._vendor import tomli as tomllib

ROOT = pathlib.Path(__file__).resolve().parents[1]

# What tests/ imports (keras_reg, examples, tests) or reads (docs, the
# changelog, the README, mkdocs.yml, CONTRIBUTING.md).
NEEDED_BY_TESTS = [
    "keras_reg",
    "tests",
    "examples",
    "docs",
    "mkdocs.yml",
    "README.md",
    "CHANGELOG.md",
    "CONTRIBUTING.md",
]


def test_sdist_includes_what_the_tests_need():
    with open(ROOT / "pyproject.toml", "rb") as f:
        build = tomllib.load(f)["tool"]["hatch"]["build"]["targets"]["sdist"]
    missing = [path for path in NEEDED_BY_TESTS if path not in build["include"]]
    assert not missing, f"add to [tool.hatch.build.targets.sdist] include: {missing}"
