"""Write a benchmark's measured numbers to bench/results/<name>.json and <name>.md."""
from __future__ import annotations

import json
import platform
import subprocess
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> str:
    """One line describing where the numbers were measured."""
    try:
        cpu = next(l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name"))
    except (OSError, StopIteration):
        cpu = platform.processor() or "unknown CPU"
    import os
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}"


def git_rev(root: Path | None = None) -> str:
    """The checkout's commit (short hash), with ``+changes`` where tracked files outside
    bench/results differ from it: a measurement of a tree no commit holds says so."""
    root = root or RESULTS.parent.parent
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                             cwd=root).stdout.strip()
        changed = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".",
                                  ":(exclude)bench/results"], capture_output=True, text=True, cwd=root).stdout.strip()
    except OSError:
        return "unknown"
    return (rev + ("+changes" if changed else "")) if rev else "unknown"


def write(name: str, payload: dict, table_header: list[str], rows: list[list], notes: str = "",
          command: str = "") -> Path:
    """Write ``payload`` (plus provenance) as JSON and a Markdown table of ``rows``."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    meta = {"machine": machine(), "git": git_rev(), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "command": command}
    (RESULTS / f"{name}.json").write_text(json.dumps({**meta, **payload}, indent=2, default=str) + "\n")
    lines = [f"# {name}", "", f"Measured {meta['date']} on {meta['machine']} (git {meta['git']}).", ""]
    if command:
        lines += [f"Command: `{command}`", ""]
    lines += ["| " + " | ".join(table_header) + " |", "|" + "---|" * len(table_header)]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    if notes:
        lines += ["", notes]
    md = RESULTS / f"{name}.md"
    md.write_text("\n".join(lines) + "\n")
    return md
