"""RQ jobs: the background adapter. Jobs call services; services never import rq."""
