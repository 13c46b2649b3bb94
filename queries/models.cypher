// name: models
// description: Every stored model with its number of complete versions.
MATCH (m:Model)
OPTIONAL MATCH (m)-[:HAS_VERSION]->(v:Version)
RETURN m.name AS model, count(v) AS versions
ORDER BY model
