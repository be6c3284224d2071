"""taxgate: a disclosure gateway for confidential taxpayer information."""

__version__ = "0.1.0"
