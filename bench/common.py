"""Pieces every bench script needs: a fresh PostgreSQL database, and what machine this is."""

from __future__ import annotations

import os
import platform
import re
import sys
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent


def fresh_postgres(url: str, *, name: str | None = None) -> tuple[str, str]:
    """Drop and create the bench database on `url`'s server (named `name`, or `url`'s own).

    Returns its URL and the server version. Refuses any name that does not end
    in "_bench", so a bench can never drop a real database.
    """
    import psycopg2

    parts = urlsplit(url)
    name = name or parts.path.lstrip("/")
    if not name.endswith("_bench"):
        sys.exit(f"refusing to drop {name!r}: the bench database's name must end in '_bench'")
    connection = psycopg2.connect(parts._replace(path="/postgres").geturl())
    connection.autocommit = True
    try:
        with connection.cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}"')
            cursor.execute(f'CREATE DATABASE "{name}"')
            cursor.execute("SHOW server_version")
            version = f"PostgreSQL {cursor.fetchone()[0]}"
    finally:
        connection.close()
    return parts._replace(path=f"/{name}").geturl(), version


def machine() -> str:
    """Cores, CPU model, memory and Python, for the record in docs/BENCHMARKS.md."""
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    memory = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1)) / 1024**2
    return f"{os.cpu_count()} cores ({cpu}), {memory:.0f} GiB, Python {platform.python_version()}"


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])
