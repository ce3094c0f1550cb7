"""Benchmarks are not tests: keep pytest from collecting anything under benchmarks/."""

collect_ignore_glob = ["*"]
