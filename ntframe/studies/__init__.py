"""Studies built on runs: ``compare`` (several cost models on one mapping, or several mappers on one cost
model); later sweeps and reports. Studies use the runner; no pipeline wing imports them."""
