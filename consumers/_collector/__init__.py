"""Internals of the local collector (:mod:`consumers.collector`): validation, storage, servers."""
