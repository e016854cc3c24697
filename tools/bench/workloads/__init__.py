"""One module per workload; each registers itself with ``tools.bench.workload``."""
