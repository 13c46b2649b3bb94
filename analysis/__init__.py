"""Graph algorithm engines and reports over stored network versions."""
