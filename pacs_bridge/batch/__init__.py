"""Batch analysis of an archive on Dask distributed (`radassist batch`).

`sources` finds the studies, `work` is one study's unit of work on a worker, `manifest` is
the resumable record, `engine` builds the Dask client and runs the batch.
"""
