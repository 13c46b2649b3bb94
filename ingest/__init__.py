"""Model sources -> layers -> tensor metrics (-> graph rows -> bulk writers).

The public names load lazily, so that importing nngraph (and `nngraph --help`) stays cheap.
"""

_EXPORTS = {
    "load_network": "sources",
    "network_from_module": "sources",
    "compute_metrics": "metrics",
    "resolve_device": "metrics",
    "ingest_module": "pipeline",
    "ingest_path": "pipeline",
    "EpochRecorder": "pipeline",
    "DataOptions": "pipeline",
    "data_metrics": "activations",
    "load_inputs": "data_source",
}

__all__ = list(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        from importlib import import_module

        return getattr(import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
