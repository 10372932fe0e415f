"""Fetching a zip archive over HTTP(S) so that only a complete, readable archive is ever kept.

The body goes to a temporary name beside the destination, with a progress bar on stderr;
it is renamed into place only once its size matches the server's Content-Length and every
member of the zip passes its CRC check. Any failure removes the temporary file and raises
one `DataError` line that ends with the caller's advice (typically: how to fetch it by hand).
"""

from __future__ import annotations

import http.client
import os
import sys
import time
import urllib.error
import urllib.request
import zipfile
import zlib
from pathlib import Path

from regexp.errors import DataError

CHUNK_BYTES = 1 << 20
# per connection attempt and per read: NIST's server has been reported slow to start sending
TIMEOUT_SECONDS = 180.0
MEGABYTE = 1e6


class ProgressBar:
    """Bytes done / total and the rate, on stderr: redrawn in place on a terminal, in 10 % lines elsewhere."""

    WIDTH = 30
    REDRAW_SECONDS = 0.25

    def __init__(self, label: str, total: int | None):
        self.label, self.total = label, total
        self.stream = sys.stderr
        self.interactive = self.stream.isatty()
        self.started = self.last_drawn = time.monotonic()
        self.last_tenth = 0

    def line(self, done: int) -> str:
        """The progress line for `done` bytes."""
        elapsed = max(time.monotonic() - self.started, 1e-6)
        rate = f"{done / elapsed / MEGABYTE:.1f} MB/s"
        if not self.total:
            return f"{self.label}: {done / MEGABYTE:,.1f} MB  {rate}"
        fraction = min(done / self.total, 1.0)
        filled = int(fraction * self.WIDTH)
        bar = "#" * filled + "." * (self.WIDTH - filled)
        return f"{self.label}: [{bar}] {done / MEGABYTE:,.1f}/{self.total / MEGABYTE:,.1f} MB {fraction:4.0%}  {rate}"

    def update(self, done: int) -> None:
        """Show `done` bytes, at most a few times a second."""
        now = time.monotonic()
        if self.interactive and now - self.last_drawn >= self.REDRAW_SECONDS:
            self.stream.write("\r" + self.line(done))
            self.stream.flush()
            self.last_drawn = now
        elif not self.interactive and self.total:
            tenth = 10 * done // self.total
            if tenth > self.last_tenth and tenth < 10:
                self.stream.write(self.line(done) + "\n")
                self.last_tenth = tenth

    def finish(self, done: int) -> None:
        """Show the final count and end the line."""
        self.stream.write(("\r" if self.interactive else "") + self.line(done) + "\n")
        self.stream.flush()


def content_length(response) -> int | None:
    """The size the server announced, or None if it did not."""
    value = response.headers.get("Content-Length")
    return int(value) if value and value.isdigit() else None


def copy_body(response, destination: Path, label: str) -> tuple[int, int | None]:
    """Write the response body to `destination`; return (bytes received, bytes announced)."""
    announced = content_length(response)
    progress = ProgressBar(label, announced)
    received = 0
    with open(destination, "wb") as out:
        while chunk := response.read(CHUNK_BYTES):
            out.write(chunk)
            received += len(chunk)
            progress.update(received)
    progress.finish(received)
    return received, announced


def zip_problem(path: Path, required_members: list[str], check_crc: bool = True) -> str | None:
    """Why `path` is not a complete zip archive holding `required_members`, or None if it is.

    `check_crc` decompresses every member to check its CRC: seconds for NIST's 740 MB archive.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            missing = [member for member in required_members if member not in names]
            if missing:
                return f"the archive lacks {', '.join(missing)}"
            damaged = archive.testzip() if check_crc else None
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError) as exc:
        return f"not a readable zip archive ({exc})"
    return f"{damaged} in the archive is damaged" if damaged else None


def fetch(url: str, destination: Path, required_members: list[str], advice: str) -> None:
    """Download the zip at `url` to `destination`, verified, or raise DataError ending in `advice`."""
    partial = destination.with_name(f".{destination.name}.{os.getpid()}.part")
    try:
        sys.stderr.write(f"Downloading {url}\n")
        with urllib.request.urlopen(url, timeout=TIMEOUT_SECONDS) as response:
            destination.parent.mkdir(parents=True, exist_ok=True)
            received, announced = copy_body(response, partial, destination.name)
        if announced is not None and received != announced:
            raise DataError(f"download of {url} stopped after {received:,} of {announced:,} bytes; {advice}")
        problem = zip_problem(partial, required_members)
        if problem:
            raise DataError(f"the file downloaded from {url} is unusable: {problem}; {advice}")
        os.replace(partial, destination)
    except urllib.error.HTTPError as exc:
        raise DataError(f"cannot download {url} (HTTP {exc.code} {exc.reason}); {advice}") from None
    except urllib.error.URLError as exc:
        raise DataError(f"cannot download {url} ({exc.reason}); {advice}") from None
    except (OSError, http.client.HTTPException) as exc:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise DataError(f"cannot download {url} ({reason}); {advice}") from None
    finally:
        partial.unlink(missing_ok=True)
