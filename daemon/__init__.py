"""closeloop: closes the loop with every customer who writes to a support inbox."""

__version__ = "0.1.0"
