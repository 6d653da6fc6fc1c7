"""Progress bars of the long management commands (tqdm): one line, with rate and time left."""

from __future__ import annotations

from typing import IO

from tqdm import tqdm

# "[#####.....]  42% 4,200/10,000 values  1,234 values/s  elapsed 00:03, left 00:05"
BAR_FORMAT = ("{desc}{percentage:3.0f}%|{bar:30}| {n:,}/{total:,} {unit}  {rate_fmt}  "
              "elapsed {elapsed}, left {remaining}")


def progress_bar(*, total: int, unit: str, stream: IO[str], initial: int = 0,
                 desc: str = "") -> tqdm:
    """A bar redrawn in place on a terminal; into a file or pipe it writes a line every few
    seconds instead of one per update (a log stays readable)."""
    tty = stream.isatty() if hasattr(stream, "isatty") else False
    return tqdm(total=total, initial=initial, unit=f" {unit}", file=stream, desc=desc,
                bar_format=BAR_FORMAT.replace("{unit}", unit), ascii=not tty,
                dynamic_ncols=tty, mininterval=0.1 if tty else 5.0, leave=True)
