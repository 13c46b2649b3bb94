"""Every Cypher text nngraph can send passes Neo4j's own parser and semantic analysis.

The checker is Neo4j's language-support package (tests/cypher_lint, `npm ci --prefix
tests/cypher_lint`), given the project's labels, relationship types and property keys
(tests/cypher_lint/schema.json) and GDS/APOC/built-in procedure signatures. The texts are
the statements of queries/*.cypher and the CYPHER list of every module that builds queries;
a module with a Cypher-looking string constant outside its CYPHER list fails the test.
"""

import ast
import importlib
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from nngraph.queries import statements

ROOT = Path(__file__).resolve().parent.parent
LINTER = ROOT / "tests" / "cypher_lint"
SOURCE_DIRS = {"nngraph": "nngraph", "nngraph/web": "nngraph.web", "ingest": "nngraph.ingest", "analysis": "nngraph.analysis"}
CYPHER_START = re.compile(r"^\s*(MATCH|OPTIONAL MATCH|RETURN|CALL|CREATE|MERGE|UNWIND|WITH)\b", re.MULTILINE)


def lint(queries: dict[str, str]) -> dict[str, list[str]]:
    if shutil.which("node") is None or not (LINTER / "node_modules").exists():
        pytest.fail("the Cypher checker is not installed: run `npm ci --prefix tests/cypher_lint` (Node.js 18+)")
    request = {"schema": json.loads((LINTER / "schema.json").read_text()),
               "queries": [{"name": name, "text": text} for name, text in queries.items()]}
    done = subprocess.run(["node", str(LINTER / "lint.mjs")], input=json.dumps(request), capture_output=True,
                          text=True, timeout=120, check=True)
    return {result["name"]: result["problems"] for result in json.loads(done.stdout)}


def module_queries() -> dict[str, str]:
    """Each module's CYPHER texts, after checking that no Cypher-looking constant is missing from them."""
    found = {}
    for directory, package in SOURCE_DIRS.items():
        for path in sorted((ROOT / directory).glob("*.py")):
            tree = ast.parse(path.read_text())
            pieces = {id(part) for node in ast.walk(tree) if isinstance(node, ast.JoinedStr) for part in node.values}
            literals = {node.value for node in ast.walk(tree)  # f-string pieces are built texts, checked where run
                        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in pieces
                        and CYPHER_START.search(node.value)}
            if not literals:
                continue
            name = package if path.stem == "__init__" else f"{package}.{path.stem}"
            listed = set(_texts(getattr(importlib.import_module(name), "CYPHER", [])))
            assert literals <= listed, f"{name}: Cypher constants missing from its CYPHER list: {literals - listed}"
            found.update({f"{name}[{i}]": text for i, text in enumerate(sorted(listed))})
    return found


def _texts(cypher) -> list[str]:
    return list(cypher.values()) if isinstance(cypher, dict) else list(cypher)


def file_queries() -> dict[str, str]:
    return {f"queries/{path.stem}.cypher[{i}]": text for path in sorted((ROOT / "queries").glob("*.cypher"))
            for i, text in enumerate(statements(path.stem))}


def test_every_cypher_text_passes_neo4j_parser():
    queries = {**file_queries(), **module_queries()}
    assert len(queries) > 20 and any(name.startswith("nngraph.ingest.writer") for name in queries)
    problems = {name: found for name, found in lint(queries).items() if found}
    assert problems == {}


def test_the_check_can_fail():
    problems = lint({
        "syntax": "MATCH (n:Neuron RETURN n",
        "unknown label": "MATCH (n:Neurone) RETURN n.strength",
        "unknown property": "MATCH (n:Neuron) RETURN n.strenght",
        "unknown procedure column": "CALL gds.pageRank.stream('g') YIELD nodeId, rank RETURN nodeId",
        "fine": "MATCH (n:Neuron {version: $v}) RETURN n.strength ORDER BY n.index",
    })
    assert problems["fine"] == []
    assert all(problems[name] for name in ("syntax", "unknown label", "unknown property", "unknown procedure column"))
    assert "Invalid input" in problems["syntax"][0]
