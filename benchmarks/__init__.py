"""Side-by-side timing of gradfit against the tools a user would otherwise reach for.

Run ``python -m benchmarks.run [--quick] [--out DIR]``. Each case is one module in
`benchmarks.cases` that describes a problem and the tools that solve it; the
harness (`benchmarks.harness`) times every tool in the same process, interleaved
round by round so that a noisy machine slows them alike, and `benchmarks.report`
writes the results as JSON and Markdown.
"""
