"""Rewrite the tests' imports of the probes to the one import name, the collection's.

    .venv/bin/python scripts/dev/unify_test_imports.py [--check] [PATH ...]   (default: tests/)

``from netcheck.tcp import X``     -> ``from ansible_collections.netcheck.netcheck.plugins.module_utils.netcheck.tcp import X``
``from netcheck import tcp``       -> ``from ansible_collections.netcheck.netcheck.plugins.module_utils.netcheck import tcp``
``import netcheck.tcp as tcp``     -> ``from ansible_collections.netcheck.netcheck.plugins.module_utils.netcheck import tcp``

Only real import statements are rewritten (found with ``ast``); code inside strings, which the
integration tests run with ``/usr/bin/python3`` in a lab host with module_utils/ on its path, is
left as it is. Lines that put ``module_utils`` on ``sys.path`` in-process are listed for a person
to remove. With ``--check`` nothing is written and the exit code says whether anything would be.
Safe to run again (the coordinator re-runs it after merging branches that add tests).
"""

from __future__ import annotations

import argparse
import ast
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGE = "ansible_collections.netcheck.netcheck.plugins.module_utils.netcheck"
PATH_HINT = re.compile(r"""sys\.path\.insert\(.*(MODULE_UTILS|module_utils)""")


def rewrite(text):
    """``text`` with its netcheck.* imports rewritten, and how many were."""
    lines = text.splitlines(keepends=True)
    count = 0
    for node in ast.walk(ast.parse(text)):
        if not isinstance(node, (ast.Import, ast.ImportFrom)):
            continue
        line = lines[node.lineno - 1]
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module and \
                (node.module == "netcheck" or node.module.startswith("netcheck.")):
            new = re.sub(r"\bfrom netcheck\b", "from " + PACKAGE, line, count=1)
        elif isinstance(node, ast.Import) and any(alias.name.startswith("netcheck.") for alias in node.names):
            if len(node.names) != 1:
                raise SystemExit("line %d: split this import first: %s" % (node.lineno, line.strip()))
            alias = node.names[0]
            leaf = alias.name.split(".", 1)[1]
            if "." in leaf:
                raise SystemExit("line %d: nested import, rewrite by hand: %s" % (node.lineno, line.strip()))
            indent = line[:len(line) - len(line.lstrip())]
            new = "%sfrom %s import %s%s\n" % (indent, PACKAGE, leaf,
                                               " as %s" % alias.asname if alias.asname and alias.asname != leaf else "")
            if alias.asname is None:
                raise SystemExit("line %d: 'import netcheck.%s' binds 'netcheck': rewrite by hand" % (node.lineno, leaf))
        else:
            continue
        if new != line:
            lines[node.lineno - 1] = new
            count += 1
    return "".join(lines), count


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 when a file would change")
    parser.add_argument("paths", nargs="*", default=[str(REPO / "tests")])
    args = parser.parse_args(argv)
    changed = 0
    for root in map(Path, args.paths):
        for path in sorted(root.rglob("*.py")) if root.is_dir() else [root]:
            text = path.read_text(encoding="utf-8")
            new, count = rewrite(text)
            if count:
                changed += 1
                print("%s: %d import(s) %s" % (path, count, "to rewrite" if args.check else "rewritten"))
                if not args.check:
                    path.write_text(new, encoding="utf-8")
            for number, line in enumerate(new.splitlines(), 1):
                if PATH_HINT.search(line) and not line.lstrip().startswith("#") and "%r" not in line:
                    print("%s:%d: puts module_utils on sys.path (remove it if the code runs in-process)"
                          % (path, number))
    return 1 if args.check and changed else 0


if __name__ == "__main__":
    sys.exit(main())
