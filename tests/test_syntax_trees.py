"""The child-interpreter parser the source-reading tests use (tests/syntax_trees.py)."""

from __future__ import annotations

import ast

import pytest

from tests.syntax_trees import parse, parse_many


def test_trees_match_an_in_process_parse() -> None:
    sources = [("a.py", "import os\nfrom x import y\n"), ("b.py", "def f():\n    '''doc'''\n    return 1\n")]
    trees = parse_many(sources)
    assert [ast.dump(t, include_attributes=True) for t in trees] == [
        ast.dump(ast.parse(s, filename=f), include_attributes=True) for f, s in sources
    ]


def test_a_syntax_error_names_the_file() -> None:
    with pytest.raises(SyntaxError, match="broken.py"):
        parse("def (:\n", filename="broken.py")
