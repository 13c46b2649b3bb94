"""Delete stored versions (or a whole model), whole or not at all, as ingest writes them.

One transaction unlinks the chosen versions from their Model and marks them 'deleting'
under this writer's lease: from then on no query sees them. Their nodes and links then go in
bounded batches (writer.delete_version). An interrupted deletion leaves invisible versions
whose lease runs out; the next `nngraph delete` of the model (or ingest of the same version)
removes them. The Model node goes with its last version.
"""

from __future__ import annotations

from nngraph.errors import NNGraphError, closest
from nngraph.queries import unknown_model

from .writer import LEASE_SECONDS, Heartbeat, delete_version, writer_gone, writer_id

TAGS = """
MATCH (:Model {name: $model})-[:HAS_VERSION]->(v:Version)
RETURN v.tag AS tag ORDER BY tag"""
UNPUBLISH = """
MATCH (:Model {name: $model})-[r:HAS_VERSION]->(v:Version)
WHERE $tags IS NULL OR v.tag IN $tags
SET v.status = 'deleting', v.writer = $writer, v.lease_until = timestamp() + $lease_ms
DELETE r
RETURN v.uid AS uid, v.tag AS tag"""
LEFTOVERS = """
MATCH (v:Version {model: $model})
WHERE v.status IN ['loading', 'deleting'] AND NOT EXISTS { MATCH (:Model)-[:HAS_VERSION]->(v) }
RETURN v.uid AS uid, v.tag AS tag, v.writer AS writer, coalesce(v.lease_until < timestamp(), true) AS expired"""
DROP_MODEL = """
MATCH (m:Model {name: $model})
WHERE NOT EXISTS { MATCH (m)-[:HAS_VERSION]->() }
DETACH DELETE m
RETURN count(*) AS n"""
CYPHER = [TAGS, UNPUBLISH, LEFTOVERS, DROP_MODEL]


def chosen_versions(store, model: str, tags: list[str] | None) -> list[str]:
    """The stored tags a deletion would remove; an unknown model or tag is one clear error
    naming the closest stored names, and nothing is deleted."""
    stored = [row["tag"] for row in store.read(TAGS, {"model": model})]
    if not stored:
        raise unknown_model(store, model)
    missing = [tag for tag in tags or [] if tag not in stored]
    if missing:
        raise NNGraphError(f"model {model!r} has no version {missing[0]!r}{closest(missing[0], stored)}; nothing was "
                           f"deleted (`nngraph versions --model {model}` lists them)")
    return list(tags) if tags else stored


def delete_versions(store, model: str, tags: list[str] | None = None, progress=None) -> list[str]:
    """Delete these versions of `model` (all of them, and the model, without `tags`); returns the
    tags deleted. `progress(tag)` is called as each version's nodes are removed."""
    chosen_versions(store, model, tags)
    writer = writer_id()
    lease_ms = int(LEASE_SECONDS * 1000)
    _remove_leftovers(store, model, writer)
    unpublished = store.write(UNPUBLISH, {"model": model, "tags": tags, "writer": writer, "lease_ms": lease_ms},
                              retries=5)
    for row in unpublished:
        with Heartbeat(store, {"model": model, "tag": row["tag"], "writer": writer, "lease_ms": lease_ms}):
            delete_version(store, row["uid"])
        if progress:
            progress(row["tag"])
    store.write(DROP_MODEL, {"model": model})
    return [row["tag"] for row in unpublished]


def _remove_leftovers(store, model: str, writer: str) -> None:
    """Invisible versions of the model left by an interrupted ingest or deletion whose writer is gone."""
    for row in store.read(LEFTOVERS, {"model": model}):
        if row["writer"] != writer and (row["expired"] or writer_gone(row["writer"])):
            delete_version(store, row["uid"])
