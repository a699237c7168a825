"""Prints the pin of the oldest Keras that keras_reg declares, e.g.
`keras==3.8.0`, read from the `keras>=` entry of pyproject's dependencies.

`make test-oldest` installs it, so the range that pyproject declares is the
range that CI tests: one source for both.

    python tools/oldest_keras.py
"""

import pathlib
import re

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: pip ships a copy of tomli
    from pip._vendor import tomli as tomllib

ROOT = pathlib.Path(__file__).resolve().parents[1]


def oldest_keras():
    with open(ROOT / "pyproject.toml", "rb") as f:
        dependencies = tomllib.load(f)["project"]["dependencies"]
    for requirement in dependencies:
        match = re.match(r"keras\s*>=\s*([0-9.]+)", requirement)
        if match:
            version = match.group(1)
            # `>=3.8` means 3.8.0, the oldest release it admits.
            while version.count(".") < 2:
                version += ".0"
            return f"keras=={version}"
    raise SystemExit(f"pyproject.toml declares no `keras>=` bound: {dependencies}")


if __name__ == "__main__":
    print(oldest_keras())
