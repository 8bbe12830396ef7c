"""actbench: is an activation function better, and what does it cost? Measured honestly."""

__version__ = "0.1.0"
