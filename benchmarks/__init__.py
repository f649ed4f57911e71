"""Benchmarks of pgwerk against raw-SQL ceilings on the same server.

Programs that print numbers; not tests. See ``benchmarks/README.md``. Nothing here imports
``pgwerk`` at import time: ``--src`` may point the run at another source tree first.
"""
