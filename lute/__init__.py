"""LUTE-style analysis side: configs, managed tasks, the Executor and the results DB.

Kept import-free on purpose: ``import lute`` must stay cheap because every
batch job, the JID and the benchmarks start with it.
"""

__version__ = "0.1.0"
