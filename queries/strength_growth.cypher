// name: strength-growth
// description: The neurons whose strength grew most between two versions of a model (same architecture).
// parameters: model (string), before (tag), after (tag), limit (integer)
MATCH (:Model {name: $model})-[:HAS_VERSION]->(a:Version {tag: $before})
MATCH (:Model {name: $model})-[:HAS_VERSION]->(b:Version {tag: $after})
MATCH (x:Neuron {version: a.uid})
// the partner by its unique uid: matching layer and index scanned a version per neuron on ArcadeDB
// (MiniLM: past 300 s; by uid 0.5 s)
MATCH (y:Neuron {uid: b.uid + ':' + toString(x.layer) + ':' + toString(x.index)})
RETURN x.layer AS layer, x.index AS neuron, x.strength AS before, y.strength AS after, y.strength - x.strength AS growth
ORDER BY growth DESC
LIMIT $limit
