"""The destination service: endpoints (with identity and protocol hints) for an address.

Reads Services and Pods through the store interface only, so local mode (SQLite) and
Kubernetes mode share it.
"""

from gossamer.control.destination.endpoints import Endpoint, EndpointIndex, Resolution
from gossamer.control.destination.server import DestinationServer, translate

__all__ = ["DestinationServer", "Endpoint", "EndpointIndex", "Resolution", "translate"]
