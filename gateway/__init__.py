"""An authentication gateway for chatbots: identify → decide → rewrite → forward."""

__version__ = "0.1.0"
