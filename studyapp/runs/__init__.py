"""Generation runs: validation, queueing, batches under leases, the worker-side job, the reconciler, progress.

The database is the source of truth: a run is split into batches (one task each: the seeds of one
concept and prompt), each batch row holds its state and its worker's lease. The broker only carries
batch ids, so a lost or duplicated message costs time, never an image.
"""
