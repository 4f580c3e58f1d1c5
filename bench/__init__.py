"""Benchmarks: cold start, webhook bursts, bulk pacing, CPU per message, memory (``./bench.sh``)."""
