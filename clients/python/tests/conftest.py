"""Fixtures of the client's tests: a rosettad per session (and per test where a test needs its
own flags), clients, and a fresh collection per test.

The server binary is $ROSETTAD (run_tests.sh sets it; default: build/tools/rosettad of the
repository); the CLI, for the parity tests, $ROSETTA_CLI (default build/tools/rosetta).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import pathlib
from typing import TYPE_CHECKING, Any, Callable, Iterator

import numpy as np
import pytest

import rosetta

if TYPE_CHECKING:
    from rosetta.testing import RosettadServer

# The package's fixtures (rosettad_server, ...), as users enable them. rosetta.testing is
# imported only through this, so that pytest can rewrite its asserts.
pytest_plugins = ["rosetta.testing"]

REPO = pathlib.Path(__file__).resolve().parents[3]
SHARED_DATA = REPO.parent / "shared" / "data"


def _binary(env: str, default: str) -> str:
    return os.environ.get(env) or str(REPO / default)


ROSETTAD = _binary("ROSETTAD", "build/tools/rosettad")
ROSETTA_CLI = _binary("ROSETTA_CLI", "build/tools/rosetta")
os.environ["ROSETTAD"] = ROSETTAD  # for rosetta.testing's own fixtures.


def _require(path: str, what: str) -> None:
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        pytest.skip(f"{what} not found at {path} (build it, or set the environment variable)")


@pytest.fixture(scope="session")
def server() -> Iterator[RosettadServer]:
    from rosetta.testing import start_rosettad
    _require(ROSETTAD, "rosettad ($ROSETTAD)")
    with start_rosettad(ROSETTAD) as s:
        yield s


@pytest.fixture
def make_server() -> Iterator[Callable[..., RosettadServer]]:
    """Starts servers with the given start_rosettad arguments, stopped after the test."""
    from rosetta.testing import start_rosettad
    _require(ROSETTAD, "rosettad ($ROSETTAD)")
    with contextlib.ExitStack() as stack:
        yield lambda **kw: stack.enter_context(start_rosettad(ROSETTAD, **kw))


@pytest.fixture
def cli() -> str:
    _require(ROSETTA_CLI, "the rosetta CLI ($ROSETTA_CLI)")
    return ROSETTA_CLI


@pytest.fixture
def db(server: RosettadServer) -> Iterator[rosetta.Client]:
    with server.client() as c:
        yield c


_names = itertools.count()


def photos_schema(name: str, dim: int = 8, index: Any = None) -> dict:
    """Two fields (image, caption) in one cosine space, plus a few attributes."""
    image: dict = {"space": "clip", "modality": "image"}
    if index is not None:
        image["index"] = index
    return {"name": name,
            "spaces": {"clip": {"dim": dim, "metric": "cosine", "encoder": "test@1"}},
            "fields": {"image": image,
                       "caption": {"space": "clip", "modality": "text", "weight": 0.5}},
            "attributes": {"lang": "string", "year": "int", "score": "float", "ok": "bool",
                           "tags": "string[]"}}


@pytest.fixture
def collection(db: rosetta.Client, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh collection (photos_schema, dim 8) dropped after the test."""
    name = f"t{next(_names)}_{request.node.name[:40]}".replace("[", "_").replace("]", "_")
    name = "".join(ch if ch.isalnum() or ch == "_" else "_" for ch in name)
    db.create_collection(photos_schema(name))
    yield name
    with contextlib.suppress(rosetta.RosettaError):
        db.drop_collection(name)


def unit_rows(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    x = rng.standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.fixture
def rng(request: pytest.FixtureRequest) -> np.random.Generator:
    """A seeded generator; the seed is printed on failure (ROSETTA_TEST_SEED overrides it)."""
    seed = int(os.environ.get("ROSETTA_TEST_SEED", "20261125"))
    request.node.user_properties.append(("seed", seed))
    print(f"seed: {seed} (set ROSETTA_TEST_SEED to change it)")
    return np.random.default_rng(seed)
