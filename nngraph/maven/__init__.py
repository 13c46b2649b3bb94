"""Package data: the pom that assembles the managed Neo4j (see nngraph.neo4j_server)."""
