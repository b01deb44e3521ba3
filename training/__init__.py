"""Training commands: ``python -m training.symbols`` and friends; each arranges a run around ``mathocr``."""
