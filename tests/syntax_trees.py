"""Syntax trees for tests that read our source, parsed in a fresh interpreter.

CPython 3.11 keeps the recursion depth of its AST conversion in module-wide state, so an `ast.parse`
that runs while another thread of the same process also converts a tree can fail with
`SystemError: AST constructor recursion depth mismatch` (CPython gh-106905). A pytest worker is such
a process: an earlier test file may leave a server or worker thread behind that imports or compiles
while we parse, and CI failed on exactly that. A child interpreter with one thread has no neighbour to
race; the trees come back pickled (ast nodes pickle), and unpickling builds them through plain Python
constructors, which do not touch that state.
"""

from __future__ import annotations

import ast
import pickle
import subprocess
import sys

_CHILD = (
    "import ast, pickle, sys\n"
    "sources = pickle.load(sys.stdin.buffer)\n"
    "pickle.dump([ast.parse(s, filename=f) for f, s in sources], sys.stdout.buffer)\n"
)


def parse_many(sources: list[tuple[str, str]]) -> list[ast.Module]:
    """Parse each (filename, source) pair, in order, in one child interpreter."""
    if not sources:
        return []
    done = subprocess.run(
        [sys.executable, "-I", "-c", _CHILD],
        input=pickle.dumps(sources),
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        raise SyntaxError(done.stderr.decode(errors="replace").strip())
    trees: list[ast.Module] = pickle.loads(done.stdout)  # our own child wrote it
    return trees


def parse(source: str, filename: str = "<unknown>") -> ast.Module:
    return parse_many([(filename, source)])[0]
