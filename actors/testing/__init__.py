"""An embedded name server and broker for users' tests (and the pytest plugin around it)."""

from actors.testing.embedded import EmbeddedCluster, ThreadedCluster, open_embedded_cluster

__all__ = ["EmbeddedCluster", "ThreadedCluster", "open_embedded_cluster"]
