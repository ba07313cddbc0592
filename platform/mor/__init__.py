"""mor: declarative agent tuning with Mixture-of-Roles LoRA adapters."""

__version__ = "0.1.0"
__all__ = ["__version__"]
