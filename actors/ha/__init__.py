"""Master/slave replication (reference §6.5): the HA server (master) and HA client (slave)."""
