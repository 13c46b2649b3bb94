"""The procedure and function signatures the Cypher check uses (tests/cypher_lint/signatures.json)
are what the managed Neo4j with OpenGDS serves: the dump cannot go stale unnoticed."""

import json
import sys
from pathlib import Path

import pytest

from nngraph.config import resolve_connection
from nngraph.store import Store
from servers import apply, environment

LINT = Path(__file__).resolve().parent.parent / "cypher_lint"


def test_the_committed_signatures_are_the_servers(server_homes):
    sys.path.insert(0, str(LINT))
    try:
        from dump_signatures import signatures
    finally:
        sys.path.remove(str(LINT))
    committed = json.loads((LINT / "signatures.json").read_text())
    with pytest.MonkeyPatch.context() as patch:
        apply(environment("neo4j", server_homes("neo4j")), patch)
        with Store.open(resolve_connection()) as store:
            served = json.loads(json.dumps(signatures(store), sort_keys=True))
    assert served["server"] == committed["server"]
    assert served["procedures"].keys() == committed["procedures"].keys()
    assert served["functions"].keys() == committed["functions"].keys()
    assert served["procedures"]["gds.pageRank.stream"] == committed["procedures"]["gds.pageRank.stream"]
