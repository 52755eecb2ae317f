"""perflab: a notebook-driven workbench for analysing HTTP load tests.

The public surface is what this module exports; notebooks use only that.
"""

__version__ = "0.1.0"
