"""One writer per artefact of the run directory (see README: output directory contract)."""
