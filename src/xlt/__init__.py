"""xlt: cross-lingual transfer study (fine-tune on one language, evaluate on related and unrelated ones)."""

__version__ = "0.1.0"
