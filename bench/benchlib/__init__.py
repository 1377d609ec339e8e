"""Modules of bench/bench.py: common (constants, helpers), processes (the
processes and their setup), scenarios (S1..S7), report (Markdown, figures)."""
