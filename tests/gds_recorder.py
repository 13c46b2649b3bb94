"""A recording stand-in for a Neo4j server with GDS, behind the graphdatascience client.

The client builds its GDS calls and hands them to nngraph's StoreQueryRunner; this
recorder replaces the runner's `execute`, keeps every (query, parameters, write) and
answers with canned rows shaped like GDS 2.x results.
"""

from nngraph.analysis import gds as gds_engine


class Recorder:
    def __init__(self, uids, values, heap_percentage=5.0, fail_stream=False):
        self.uids, self.values = list(uids), list(values)  # canned result per node
        self.heap_percentage, self.fail_stream = heap_percentage, fail_stream
        self.calls = []

    def runner(self):
        runner = gds_engine.store_query_runner(_NoStore())
        runner.execute = self
        return runner

    def queries(self, fragment=""):
        return [(query, params) for query, params, _ in self.calls if fragment in query]

    def __call__(self, query, params, write):
        self.calls.append((query, params, write))
        n = len(self.uids)
        if "gds.version()" in query:
            return [{"result": "2.13.0"}]
        if "gds.graph.project(" in query:
            return [{"projection": {"graphName": params["graph"], "nodeCount": n, "relationshipCount": 3 * n,
                                    "projectMillis": 1, "configuration": {}, "query": query}}]
        if ".estimate(" in query:
            return [{"nodeCount": n, "relationshipCount": 3 * n, "requiredMemory": "[1 KiB ... 2 KiB]",
                     "treeView": "", "mapView": {}, "bytesMin": 1024, "bytesMax": 2048,
                     "heapPercentageMin": 0.1, "heapPercentageMax": self.heap_percentage}]
        if ".mutate(" in query:
            # every column of GDS 2.x community mutate results (the client checks the ones it expects)
            return [{"nodePropertiesWritten": n, "mutateMillis": 1, "computeMillis": 1, "preProcessingMillis": 0,
                     "postProcessingMillis": 0, "configuration": params.get("config", {}), "modularity": 0.25,
                     "modularities": [0.25], "ranLevels": 1, "communityCount": len(set(self.values)),
                     "communityDistribution": {}, "componentCount": len(set(self.values)),
                     "componentDistribution": {}, "didConverge": True, "ranIterations": 1, "nodeCount": n}]
        if "gds.graph.nodeProperty.stream" in query:
            return [{"nodeId": 1000 + i, "value": value} for i, value in enumerate(self.values)]
        if "gds.modularity.stats" in query:
            return [{"modularity": 0.25}]
        if ".stream(" in query:
            if self.fail_stream:
                raise RuntimeError("the server went away")
            column = "score" if "Id" not in _stream_column(query) else _stream_column(query)
            return [{"nodeId": 1000 + i, column: value} for i, value in enumerate(self.values)]
        if "gds.util.asNode" in query:
            return [{"id": node_id, "uid": self.uids[node_id - 1000]} for node_id in params["ids"]]
        if "gds.graph.drop" in query:
            return []
        raise AssertionError(f"unexpected query: {query}")


def _stream_column(query):
    if "wcc" in query:
        return "componentId"
    if any(name in query for name in ("louvain", "leiden", "labelPropagation")):
        return "communityId"
    return "score"


class _NoStore:
    database = None
