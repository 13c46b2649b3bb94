// name: versions
// description: The complete versions of one model (or of all models when $model is null), in step order.
// parameters: model (string or null)
MATCH (m:Model)-[:HAS_VERSION]->(v:Version)
WHERE $model IS NULL OR m.name = $model
OPTIONAL MATCH (v)-[:HAS_LAYER]->(l:Layer)
WITH m, v, count(l) AS layers, sum(l.nodes) AS neurons
RETURN m.name AS model, v.tag AS version, v.step AS step, v.epoch AS epoch, layers, neurons, v.source AS source
ORDER BY model, step, version
