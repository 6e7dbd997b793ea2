"""tocsin: open civil-defence software for air-raid warning."""

__version__ = "0.1.0"

__all__ = ["__version__"]
