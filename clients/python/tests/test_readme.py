"""The README's cross-modal example runs as written (against a throwaway server)."""

from __future__ import annotations

import pathlib
import re

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def test_readme_example_runs(server, capsys) -> None:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    example = next(b for b in blocks if "A cross-modal" in b or "import_vectors" in b)
    assert 'rosetta.Client("127.0.0.1", 7700)' in example
    code = example.replace('rosetta.Client("127.0.0.1", 7700)',
                           f'rosetta.Client("127.0.0.1", {server.port})')
    exec(compile(code, str(README), "exec"), {})
    out = capsys.readouterr().out
    assert out.splitlines()[0].split()[0] == "p42"
    assert "of 100 found their image first" in out
