"""Command-line interface (Typer). Options -> spec -> workflow -> render; nothing else."""
