"""Benchmarks and their scoring; import a benchmark's subpackage directly (e.g. `mor.evals.bfcl`)."""

__all__: list[str] = []
