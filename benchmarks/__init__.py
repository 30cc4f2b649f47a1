"""Speed and quality benchmarks (scripts writing JSON + a table; not timed tests)."""
