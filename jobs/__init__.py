"""The work: the queue, the worker, and one module per job kind (see `jobs.worker.kinds`)."""
