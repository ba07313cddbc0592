"""The `mor` command line: thin Typer commands that parse, call the library and render with rich."""

__all__: list[str] = []
