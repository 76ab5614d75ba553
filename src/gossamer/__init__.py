"""Gossamer: a lightweight service mesh in the class of Linkerd 2."""

__version__ = "0.1.0"
