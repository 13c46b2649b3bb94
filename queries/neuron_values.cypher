// name: neuron-values
// description: One property of every neuron of a version, per layer in neuron order (strength, pagerank, community_louvain, ...).
// parameters: version (string: a version uid), property (string)
MATCH (n:Neuron {version: $version})
WITH n ORDER BY n.layer, n.index
RETURN n.layer AS layer, collect(n[$property]) AS values
ORDER BY layer
