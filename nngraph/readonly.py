"""The client side of read-only: a Cypher text that could change the database or reach
outside it is refused before it is sent, unless the user passed --write.

The server side is the stronger half: reads run in READ access mode, which Neo4j enforces
(schema commands included), and the managed servers refuse file URLs in LOAD CSV. ArcadeDB
ignores the access mode and applies schema commands even in a transaction that is rolled
back, so this lexical check is what stops them there. It looks at keywords outside string
literals, comments and quoted names, and at the procedures a CALL names.
"""

from __future__ import annotations

import re

from nngraph.errors import NNGraphError

TOKENS = re.compile(r"""
    (?P<space>\s+)
  | (?P<comment>//[^\n]*|/\*.*?(?:\*/|\Z))
  | (?P<string>'(?:[^'\\]|\\.)*(?:'|\Z)|"(?:[^"\\]|\\.)*(?:"|\Z))
  | (?P<quoted>`(?:[^`]|``)*(?:`|\Z))
  | (?P<word>[^\W\d][\w$]*)
  | (?P<other>.)
""", re.S | re.X)

# clauses that write data or schema, read files or URLs, switch database or administer the server
WRITING = set("""DELETE DETACH SET REMOVE DROP LOAD FOREACH ALTER RENAME GRANT DENY REVOKE START STOP TERMINATE
    ENABLE DEALLOCATE REALLOCATE USE IMPORT INSERT UPDATE UPSERT TRUNCATE CREATE MERGE""".split())
# procedures a read may call: schema introspection, and GDS's in-memory algorithms (never .write or .export)
READ_PROCEDURES = re.compile(r"(db\.(labels|relationshipTypes|propertyKeys|schema\.\w+)|dbms\.components"
                             r"|gds\.(?!.*\.(write\w*|export\w*)(\.|$))[\w.]+)", re.I)


def check_read_only(query: str) -> None:
    """Raise NNGraphError naming the first clause or procedure that is not a pure read."""
    words = _words(query)
    for position, (word, before, after) in enumerate(words):
        if before in (".", ":", "$") or after == ":" or before.upper() == "AS":
            continue  # a property, label, parameter, map key or alias that happens to spell a keyword
        upper = word.upper()
        if upper in WRITING:
            raise _refusal(upper)
        if upper == "TRANSACTIONS" and before.upper() == "IN":  # CALL { ... } IN TRANSACTIONS commits batches
            raise _refusal("IN TRANSACTIONS")
        if word.lower() == "call" and after != "{":
            name = _dotted_name(words, position + 1)
            if not READ_PROCEDURES.fullmatch(name):
                raise _refusal(f"CALL {name or '...'}")


def _refusal(what: str) -> NNGraphError:
    return NNGraphError(f"this query uses {what}, which may change the database or read outside it, and it "
                        "runs read-only: nothing was run. Pass --write if that is what you want")


def _words(query: str) -> list[tuple[str, str, str]]:
    """(word, the significant token before it, the one after it) for every bare word."""
    tokens = [(m.lastgroup, m.group()) for m in TOKENS.finditer(query)
              if m.lastgroup not in ("space", "comment")]
    words = []
    for index, (kind, text) in enumerate(tokens):
        if kind == "word":
            before = tokens[index - 1][1] if index else ""
            after = tokens[index + 1][1] if index + 1 < len(tokens) else ""
            words.append((text, before, after))
    return words


def _dotted_name(words: list[tuple[str, str, str]], start: int) -> str:
    parts = []
    for word, _, after in words[start:]:
        parts.append(word)
        if after != ".":
            break
    return ".".join(parts)
