"""Tests of the distributed half of mtaio.cache (DistributedCache, CacheNode, RESP)."""
