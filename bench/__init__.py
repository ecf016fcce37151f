"""Benchmarks: scripts that measure and print figures (see bench/README.md)."""
