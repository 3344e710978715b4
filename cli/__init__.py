"""fogctl's command layer: thin Typer modules that parse, call the engine and emit records."""
