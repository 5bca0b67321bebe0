"""Incremental log streams: print each line of a job's log exactly once.

The JID's ``job_log`` returns ``{"text", "offset", "next_offset", "complete"}``
for a requested offset. A stream remembers the next offset it needs; a chunk
that starts before it (a retried request, a re-read) is trimmed so no byte is
printed twice, a chunk that starts after it (bytes lost) is announced, and a
line is only emitted once its newline has arrived, or when the job has ended.
Offsets count bytes of the UTF-8 log.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class LogStream:
    """The reading position and the unfinished last line of one job's log."""

    label: str
    next_offset: int = 0
    complete: bool = False
    _partial: bytes = field(default=b"", repr=False)
    gaps: int = 0

    def feed(self, text: str, offset: int, next_offset: int, complete: bool = False) -> list[str]:
        """Take a chunk read at ``offset``; return the new complete lines."""
        data = text.encode("utf-8")
        lines: list[str] = []
        if offset > self.next_offset:
            # the log moved on without us (truncated or rotated): say so
            self.gaps += 1
            lines.append(f"[... {offset - self.next_offset} bytes of log missing ...]")
            self._partial = b""
            self.next_offset = offset
        skip = self.next_offset - offset
        if skip < len(data):
            self._partial += data[skip:]
        # the server's next offset is where the next read starts; never go back
        self.next_offset = max(self.next_offset, next_offset)
        *done, self._partial = self._partial.split(b"\n")
        lines.extend(line.decode("utf-8", "replace").rstrip("\r") for line in done)
        if complete:
            self.complete = True
            lines.extend(self.flush())
        return lines

    @property
    def line_start(self) -> int:
        """The offset of the first byte not yet returned in a line (the unfinished line's)."""
        return self.next_offset - len(self._partial)

    def flush(self) -> list[str]:
        """The unfinished last line, if any (when the job has ended)."""
        if not self._partial:
            return []
        rest, self._partial = self._partial, b""
        return [rest.decode("utf-8", "replace").rstrip("\r")]
