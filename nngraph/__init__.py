"""nngraph: trained neural networks as complex networks in a graph database."""

__version__ = "0.1.0"
