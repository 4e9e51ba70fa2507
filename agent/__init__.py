"""posdiag: on-device diagnostic agent for Linux POS terminals."""

__version__ = "0.1.0"
