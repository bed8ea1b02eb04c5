"""Shared helpers of the Spark jobs: lake layout, arguments, session, small file I/O."""
