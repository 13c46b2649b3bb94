// name: last-layer-communities
// description: The Louvain communities of a version's output layer (after `nngraph analyze communities`): which outputs group together.
// parameters: model (string), version (tag)
MATCH (:Model {name: $model})-[:HAS_VERSION]->(v:Version {tag: $version})-[:HAS_LAYER]->(l:Layer)
WITH v, max(l.index) AS last
MATCH (n:Neuron {version: v.uid, layer: last})
WITH n.community_louvain AS community, n.index AS output ORDER BY output
RETURN community, collect(output) AS outputs, count(*) AS size
ORDER BY size DESC, community
