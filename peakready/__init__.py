"""peakready: prove an e-commerce stack ready for its sales peak."""

__version__ = "0.1.0"


def discover(discover_system: bool = True) -> dict:  # type: ignore[type-arg]
    """Chaos Toolkit's entry point: ``chaos discover --no-install peakready``."""
    # Imported here: chaoslib loads only when Chaos Toolkit discovers the extension.
    from peakready.chaos import discover as discover_chaos

    return discover_chaos(discover_system)
