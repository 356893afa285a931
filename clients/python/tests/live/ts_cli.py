"""The TypeScript command line (bin/relais.js), run by the live tests that cross languages."""
from __future__ import annotations

import asyncio
import os
import shutil

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..", ".."))
RELAIS = os.path.join(ROOT, "bin", "relais.js")
NODE = shutil.which("node")
# The CLI runs dist/: built by `npm run build` (npm test does it first).
HAVE_CLI = bool(NODE) and os.path.exists(os.path.join(ROOT, "dist", "cli", "main.js"))


async def run_ts_cli(*args: str, timeout: float = 60) -> tuple[int, bytes, str]:
    """`relais <args>` to its end: its exit code, stdout as bytes, stderr as text."""
    process = await asyncio.create_subprocess_exec(NODE, RELAIS, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), timeout)
    return process.returncode, out, err.decode()
