"""Figures, tables and numbers that pages show, one module per chapter.

Each public function takes no arguments and returns a matplotlib Figure, a Markdown string or
a dict of values. The build (tools/executed/) runs them at build time, seeded, and caches the result.
"""
