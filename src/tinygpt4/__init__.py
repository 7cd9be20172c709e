"""tinygpt4: the GPT-4 system from the technical report, built from scratch at any scale."""

__version__ = "0.1.0"
