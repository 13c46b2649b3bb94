"""nngraph: trained neural networks as complex networks in a graph database."""

__version__ = "0.1.0"


def __getattr__(name):
    """`nngraph.connect` loads on first use: importing nngraph (and `nngraph --help`) stays cheap."""
    if name == "connect":
        from nngraph.session import connect

        return connect
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
