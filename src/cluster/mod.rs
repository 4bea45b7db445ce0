//! Cluster model: nodes, pods, zones, the load balancer (modes, hashes, backend pool) and loaders.
