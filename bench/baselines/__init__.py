"""Baseline apps the benchmarks compare against (never deployed)."""
