// name: version-layers
// description: Every layer of every complete version of a model, in step order: the layer's metrics, link-weight statistics and, when measured on data, Neurons Strength (ns_*) and Activation (na_*), with the version's properties (step, epoch, metric_*).
// parameters: model (string)
MATCH (:Model {name: $model})-[:HAS_VERSION]->(v:Version)-[:HAS_LAYER]->(l:Layer)
RETURN v.uid AS uid, v.tag AS version, v.step AS step, v.epoch AS epoch, properties(v) AS version_properties,
       l.index AS layer, l.name AS name, l.kind AS kind, l.group AS block, l.nodes AS nodes, l.fluctuation AS fluctuation,
       l.mean_strength AS mean_strength, l.min_strength AS min_strength, l.max_strength AS max_strength,
       l.w_mean AS w_mean, l.w_std AS w_std, l.w_min AS w_min, l.w_max AS w_max, l.w_q05 AS w_q05,
       l.w_q50 AS w_q50, l.w_q95 AS w_q95, l.w_hist_edges AS w_hist_edges, l.w_hist_counts AS w_hist_counts,
       l.neural_persistence AS neural_persistence, l.neural_persistence_normalized AS neural_persistence_normalized,
       l.activation AS activation, l.ns_mean AS ns_mean, l.ns_std AS ns_std, l.ns_min AS ns_min, l.ns_max AS ns_max,
       l.ns_q05 AS ns_q05, l.ns_q50 AS ns_q50, l.ns_q95 AS ns_q95, l.ns_hist_counts AS ns_hist_counts,
       l.na_mean AS na_mean, l.na_std AS na_std, l.na_min AS na_min, l.na_max AS na_max, l.na_q05 AS na_q05,
       l.na_q50 AS na_q50, l.na_q95 AS na_q95, l.na_hist_counts AS na_hist_counts,
       l.na_zero_fraction AS na_zero_fraction, l.na_saturated_fraction AS na_saturated_fraction
ORDER BY step, version, layer
