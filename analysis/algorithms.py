"""The algorithms `nngraph analyze` runs, their defaults (those of Neo4j GDS), and how a
request with its parameters becomes the property its results are stored under.

Weights (--weights): `abs` |w| on every link (the default); `positive` only links with
w > 0, weighted w; `negative` only links with w < 0, weighted -w; `signed` w as stored,
for weighted degree only (the others need non-negative weights). Betweenness, harmonic
closeness, degree, label propagation and components count links, so the weight policy
only chooses which links exist for them.
Orientation: `natural` (input to output), `reverse`, or `undirected`; community
algorithms use `undirected` (Leiden requires it, and modularity is defined on it).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

from nngraph.errors import NNGraphError

WEIGHT_POLICIES = ("abs", "positive", "negative", "signed")
ORIENTATIONS = ("natural", "reverse", "undirected")


@dataclass(frozen=True)
class Algorithm:
    name: str
    family: str  # "centrality" or "communities"
    prop: str  # the Neuron property for the default parameters
    weighted: bool
    defaults: dict = field(default_factory=dict)
    signed_ok: bool = False
    orientation: str = "natural"


ALGORITHMS = {a.name: a for a in [
    Algorithm("pagerank", "centrality", "pagerank", True,
              {"damping": 0.85, "max_iterations": 20, "tolerance": 1e-7}),
    Algorithm("articlerank", "centrality", "articlerank", True,
              {"damping": 0.85, "max_iterations": 20, "tolerance": 1e-7}),
    Algorithm("eigenvector", "centrality", "eigenvector", True, {"max_iterations": 20, "tolerance": 1e-7}),
    Algorithm("degree", "centrality", "degree", False),
    Algorithm("strength", "centrality", "weighted_degree", True, signed_ok=True),
    Algorithm("betweenness", "centrality", "betweenness", False, {"samples": 0, "seed": 42}),
    Algorithm("harmonic", "centrality", "harmonic", False),
    Algorithm("louvain", "communities", "community_louvain", True, {"seed": 42}, orientation="undirected"),
    Algorithm("leiden", "communities", "community_leiden", True, {"seed": 42}, orientation="undirected"),
    Algorithm("label_propagation", "communities", "community_label_propagation", True, {"seed": 42},
              orientation="undirected"),
    Algorithm("wcc", "communities", "component", False, orientation="undirected"),
]}
DEFAULT_ALGORITHM = {"centrality": "pagerank", "communities": "louvain"}


@dataclass(frozen=True)
class Request:
    """One algorithm with all its parameters resolved; `prop` is where its results go."""

    algorithm: Algorithm
    weights: str
    orientation: str
    layers: tuple[int, ...] | None  # None: every layer
    parameters: dict

    @classmethod
    def build(cls, name: str, *, weights: str = "abs", orientation: str | None = None,
              layers: tuple[int, ...] | None = None, **overrides) -> "Request":
        if name not in ALGORITHMS:
            raise NNGraphError(f"unknown algorithm {name!r}; choose from {', '.join(ALGORITHMS)}")
        algorithm = ALGORITHMS[name]
        if weights not in WEIGHT_POLICIES:
            raise NNGraphError(f"--weights {weights!r}: expected one of {', '.join(WEIGHT_POLICIES)}")
        if weights == "signed" and not algorithm.signed_ok:
            raise NNGraphError(f"{name} needs non-negative weights: use --weights abs, positive or negative "
                               "(signed weights suit only the strength algorithm)")
        orientation = orientation or algorithm.orientation
        if orientation not in ORIENTATIONS:
            raise NNGraphError(f"--orientation {orientation!r}: expected one of {', '.join(ORIENTATIONS)}")
        if algorithm.family == "communities" and orientation != "undirected":
            raise NNGraphError(f"{name} runs on the undirected graph (Leiden requires it and modularity is "
                               "defined on it): leave --orientation out or pass undirected")
        unknown = set(overrides) - set(algorithm.defaults)
        if unknown:
            raise NNGraphError(f"{name} takes no parameter {sorted(unknown)}; it takes {sorted(algorithm.defaults)}")
        parameters = {**algorithm.defaults, **{k: v for k, v in overrides.items() if v is not None}}
        return cls(algorithm, weights, orientation, tuple(layers) if layers is not None else None, parameters)

    @property
    def is_default(self) -> bool:
        return (self.weights == "abs" and self.orientation == self.algorithm.orientation and self.layers is None
                and self.parameters == self.algorithm.defaults)

    def describe(self) -> dict:
        return {"algorithm": self.algorithm.name, "weights": self.weights, "orientation": self.orientation,
                "layers": list(self.layers) if self.layers is not None else "all", **self.parameters}

    @property
    def prop(self) -> str:
        """`pagerank` for the defaults; `pagerank_<hash of the parameters>` otherwise, so an
        analysis with other parameters never overwrites this one."""
        if self.is_default:
            return self.algorithm.prop
        digest = hashlib.sha256(json.dumps(self.describe(), sort_keys=True).encode()).hexdigest()[:8]
        return f"{self.algorithm.prop}_{digest}"
