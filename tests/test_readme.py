"""Every Python snippet in the README runs, and the printed shapes are the ones it claims."""

import contextlib
import io
import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)


def claimed_outputs(block):
    """The ``# (4, 26, 26, 2)``-style comments after print calls, in order."""
    return [
        comment.strip() for comment in re.findall(r"^print\(.*\)[ \t]*#[ \t]*(.+)$", block, re.M)
    ]


@pytest.mark.parametrize("block", BLOCKS, ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_readme_snippet_runs_and_prints_what_it_claims(block):
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(block, str(README), "exec"), {"__name__": "readme"})
    lines = printed.getvalue().splitlines()
    for claim in claimed_outputs(block):
        assert claim in lines, f"README claims {claim!r}; the snippet printed {lines}"


def test_readme_opens_with_the_two_commands():
    text = README.read_text(encoding="utf-8")
    assert 'python -m pip install -e ".[examples]" && python examples/train_digits.py' in text
    assert 'python -m pip install -e ".[test]" && python -m pytest' in text
