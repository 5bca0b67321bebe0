"""Built-in Tasks for testing the machinery (Executor, IPC, DB, Slurm)."""

from __future__ import annotations

import hashlib
import sys
import time
from pathlib import Path

from lute.tasks.base import Task
from lute.tasks.third_party import ThirdPartyTask


class Test(Task):
    """Logs its (nested) parameters; raises when ``throw_error`` is set."""

    def run(self) -> None:
        """Log the parameters, then fail on purpose if asked."""
        p = self.params
        self.log.info("float_var=%s str_var=%s", p.float_var, p.str_var)
        self.log.info(
            "compound_var.int_var=%s compound_var.dict_var=%s",
            p.compound_var.int_var,
            p.compound_var.dict_var.to_dict(),
        )
        print(f"Test: experiment {self.context.experiment} run {self.context.run}", flush=True)
        if p.throw_error:
            raise RuntimeError("Test was asked to fail (throw_error is true)")
        self.result.summary = {
            "float_var": p.float_var,
            "str_var": p.str_var,
            "int_var": p.compound_var.int_var,
            "message": "Test passed",
        }


class TestSocket(Task):
    """Sends ``num_arrays`` float64 arrays of ``array_size`` back as one payload."""

    def run(self) -> None:
        """Build the arrays and attach them as the result payload."""
        import numpy as np

        p = self.params
        rng = np.random.default_rng(int(self.context.run) if self.context.run.isdigit() else 0)
        data = rng.standard_normal(p.array_size * p.num_arrays)
        digest = hashlib.sha256(memoryview(data).cast("B")).hexdigest()
        self.log.info(
            "sending %d arrays of %d floats (%d bytes)", p.num_arrays, p.array_size, data.nbytes
        )
        self.result.payload = data
        self.result.payload_name = "arrays.f64"
        self.result.summary = {
            "bytes": int(data.nbytes),
            "sha256": digest,
            "num_arrays": p.num_arrays,
            "array_size": p.array_size,
            "dtype": "float64",
        }


class TestWriteOutput(Task):
    """Writes a small text table and records its path as output ``out_file``."""

    def run(self) -> None:
        """Write the table."""
        path = Path(self.params.out_file)
        path.parent.mkdir(parents=True, exist_ok=True)
        lines = [f"{i}\t{i * i}" for i in range(self.params.num_lines)]
        path.write_text("\n".join(lines) + "\n")
        self.log.info("wrote %d lines to %s", len(lines), path)
        self.result.outputs = {"out_file": str(path)}
        self.result.summary = {
            "lines": len(lines),
            "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        }


class TestReadOutput(Task):
    """Reads the file TestWriteOutput recorded (or ``in_file``) and checks it."""

    def pre_run(self) -> None:
        """Fail early, with the path, if the input is missing."""
        if not Path(self.params.in_file).is_file():
            raise FileNotFoundError(f"input {self.params.in_file} does not exist")

    def run(self) -> None:
        """Read and summarise the input."""
        data = Path(self.params.in_file).read_bytes()
        lines = data.decode().splitlines()
        self.log.info("read %d lines from %s", len(lines), self.params.in_file)
        self.result.summary = {
            "in_file": self.params.in_file,
            "lines": len(lines),
            "sha256": hashlib.sha256(data).hexdigest(),
        }


class TestBinary(ThirdPartyTask):
    """Runs a real program (``/bin/ls`` by default) through ThirdPartyTask."""


class Sleep(Task):
    """Sleeps ``seconds``, printing a line every ``print_interval`` seconds."""

    def run(self) -> None:
        """Sleep, with progress lines flushed as they are printed."""
        total = float(self.params.seconds)
        interval = self.params.print_interval
        start = time.monotonic()
        end = start + total
        ticks = 0
        if interval:
            while (now := time.monotonic()) < end:
                time.sleep(min(interval, end - now))
                ticks += 1
                print(
                    f"Sleep: tick {ticks} at {time.monotonic() - start:.3f} s "
                    f"(wall {time.time():.3f})",
                    flush=True,
                )
        elif total > 0:
            time.sleep(total)
        sys.stdout.flush()
        self.result.summary = {"slept_s": round(time.monotonic() - start, 3), "ticks": ticks}
