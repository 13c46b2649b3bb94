"""Dump the procedure and function signatures of the managed Neo4j (with OpenGDS) into
signatures.json, which the Cypher check (lint.mjs) gives Neo4j's parser instead of mocked ones.

    NNGRAPH_SERVER=neo4j python tests/cypher_lint/dump_signatures.py

tests/integration/test_signatures.py checks that the committed dump is what the server serves.
"""

import json
from pathlib import Path

from nngraph.config import resolve_connection
from nngraph.store import Store

OUT = Path(__file__).with_name("signatures.json")
# the columns the language support reads (SHOW ... YIELD * has more: roles, options)
COLUMNS = ("name", "description", "mode", "worksOnSystem", "signature", "argumentDescription", "returnDescription",
           "category", "isBuiltIn", "aggregating", "isDeprecated", "deprecatedBy")


def signatures(store) -> dict:
    dump = {}
    for kind in ("PROCEDURES", "FUNCTIONS"):
        rows = store.read(f"SHOW {kind} YIELD *")
        dump[kind.lower()] = {row["name"]: {k: row[k] for k in COLUMNS if k in row} for row in rows}
    dump["server"] = store.read("CALL dbms.components() YIELD name, versions RETURN name, versions[0] AS version")
    dump["server"] += [{"name": "gds", "version": store.read("RETURN gds.version() AS v")[0]["v"]}]
    return dump


if __name__ == "__main__":
    with Store.open(resolve_connection()) as opened:
        OUT.write_text(json.dumps(signatures(opened), indent=1, sort_keys=True) + "\n")
    print(f"wrote {OUT}")
