"""Benchmarks: pipeline scale, hourly refresh, training and inference costs."""
