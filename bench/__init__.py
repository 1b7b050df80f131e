"""Benchmarks: run one with `python -m bench.<name>`; `python -m bench` lists them."""
