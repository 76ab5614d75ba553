"""Pure shared types used by the data plane and the control plane alike.

May import nothing from the rest of gossamer; performs no I/O.
"""
