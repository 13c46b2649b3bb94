// name: strongest-paths
// description: The strongest paths (largest |product of weights|) from one input neuron to one output neuron of a version.
// parameters: model (string), version (tag), input (input neuron index), output (output neuron index), limit (integer)
MATCH (:Model {name: $model})-[:HAS_VERSION]->(v:Version {tag: $version})-[:HAS_LAYER]->(l:Layer)
WITH v, max(l.index) AS last
MATCH path = (a:Neuron {version: v.uid, layer: 0, index: $input})-[:LINK*]->(b:Neuron {version: v.uid, index: $output})
WHERE b.layer = last
WITH path, reduce(product = 1.0, r IN relationships(path) | product * r.weight) AS product
RETURN [n IN nodes(path) | toString(n.layer) + ':' + toString(n.index)] AS neurons, product
ORDER BY abs(product) DESC
LIMIT $limit
