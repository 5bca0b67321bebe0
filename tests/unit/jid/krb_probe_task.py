"""A stand-in for ``lute-run-task`` that reports the job's Kerberos cache.

Prints ``KRB5CCNAME=<value>`` and, when ``klist`` is installed, whether that
cache holds a valid ticket (``klist -s``); exits 0.
"""

import os
import shutil
import subprocess
import sys


def main() -> int:
    ccname = os.environ.get("KRB5CCNAME")
    print(f"KRB5CCNAME={ccname}", flush=True)
    if ccname and shutil.which("klist"):
        valid = subprocess.run(["klist", "-s"], timeout=30).returncode == 0
        print(f"klist -s: {'valid' if valid else 'no valid ticket'}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
