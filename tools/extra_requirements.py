"""Prints the requirements of one extra of pyproject.toml, one per line.

`make docs` installs the `docs` extra with `pip install -r` from this
output, so the docs tools can be installed without (re)installing keras_reg
itself: the API reference is read from the source, not imported.

    python tools/extra_requirements.py docs
"""

import pathlib
import sys

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: pip ships a copy of tomli
    from pip._vendor import tomli as tomllib

ROOT = pathlib.Path(__file__).resolve().parents[1]


def requirements(extra):
    with open(ROOT / "pyproject.toml", "rb") as f:
        project = tomllib.load(f)["project"]
    return project["optional-dependencies"][extra]


if __name__ == "__main__":
    print("\n".join(requirements(sys.argv[1])))
