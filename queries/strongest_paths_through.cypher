// name: strongest-paths-through
// description: The strongest two-link paths (largest |w_in * w_out|) through one neuron of a version: which inputs reach which outputs through it. Bounded by construction: at most its fan-in times its fan-out paths are formed.
// parameters: model (string), version (tag), layer (integer: the neuron's layer), neuron (integer: its index), limit (integer)
MATCH (:Model {name: $model})-[:HAS_VERSION]->(v:Version {tag: $version})
MATCH (n:Neuron {version: v.uid, layer: $layer, index: $neuron})
MATCH (a:Neuron)-[r_in:LINK]->(n)
MATCH (n)-[r_out:LINK]->(b:Neuron)
WITH a, n, b, r_in.weight * r_out.weight AS product
RETURN [toString(a.layer) + ':' + toString(a.index), toString(n.layer) + ':' + toString(n.index),
        toString(b.layer) + ':' + toString(b.index)] AS neurons, product
ORDER BY abs(product) DESC
LIMIT $limit
