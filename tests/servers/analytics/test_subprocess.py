"""The analytics server and the `bastion dataset load` command as real processes."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import anyio
from mcp import Client, StdioServerParameters

from bastion.caller import CallerContext
from servers.analytics.service import AnalyticsService
from tests.servers.analytics.conftest import unique

REPO = Path(__file__).resolve().parents[3]
START_TIMEOUT = 90


def _env(home: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("BASTION_") and k not in {"DATABASE_URL", "REDIS_URL", "OPA_URL"}
    }
    env["BASTION_HOME"] = str(home)
    return env


async def test_bastion_serve_analytics_over_stdio_loads_and_queries(shared_home: Path) -> None:
    name = unique("stdio")
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "bastion.cli", "serve", "analytics", "--transport", "stdio"],
        env=_env(shared_home),
        cwd=str(REPO),
    )
    with anyio.fail_after(START_TIMEOUT):
        async with Client(params) as client:
            tools = {t.name for t in (await client.list_tools()).tools}
            loaded = await client.call_tool("load_dataset", {"name": name, "content": "x,y\n1,2\n3,4\n"})
            result = await client.call_tool("query", {"sql": f"SELECT sum(x) AS s FROM {name}"})
            refused = await client.call_tool("query", {"sql": f"DROP TABLE {name}"})
            dropped = await client.call_tool("drop_dataset", {"name": name})
    assert tools == {
        "list_datasets",
        "describe",
        "profile",
        "query",
        "explain",
        "chart",
        "load_dataset",
        "drop_dataset",
        "register_source",
    }
    assert not loaded.is_error
    assert result.structured_content is not None
    assert result.structured_content["rows"] == [[4]]
    assert refused.is_error
    assert "query refused" in str(refused.content)
    assert not dropped.is_error


async def test_bastion_dataset_load_shows_progress_and_loads_the_file(
    shared_home: Path, tmp_path: Path, service: AnalyticsService
) -> None:
    name = unique("cli")
    data = tmp_path / "data.csv"
    days = "".join(f"2024-01-{d:02d},{d}\n" for d in range(1, 28))
    data.write_text("day,value\n" + days + "2024-01-28,NA\n")
    cli = [sys.executable, "-m", "bastion.cli", "dataset", "load"]
    with anyio.fail_after(240):
        done = await anyio.run_process(
            [*cli, str(data), "--name", name], env=_env(shared_home), cwd=REPO, check=False
        )
        as_written = await anyio.run_process(
            [*cli, str(data), "--name", f"{name}_text", "-q", "--null", ""],
            env=_env(shared_home),
            cwd=REPO,
            check=False,
        )
        legacy = tmp_path / "legacy.csv"
        legacy.write_bytes("city;n;seen;pop\nZürich;1,5;15.03.2024;1.234.567\n".encode("cp1252"))
        encoded = await anyio.run_process(
            [
                *cli,
                "legacy.csv",  # relative to the command's directory, not the server's uploads
                "--name",
                f"{name}_enc",
                "-q",
                "--encoding",
                "windows-1252",
                "--decimal",
                ",",
                "--date-order",
                "DMY",
                "--thousands",
                ".",
            ],
            env=_env(shared_home),
            cwd=tmp_path,
            check=False,
        )
        bad = await anyio.run_process(
            [*cli, str(tmp_path / "nope.csv"), "--name", name, "-q"],
            env=_env(shared_home),
            cwd=REPO,
            check=False,
        )
    assert done.returncode == 0, done.stderr.decode()
    out = done.stdout.decode()
    assert f"loaded 28 rows into dataset '{name}' (day date, value bigint)" in out
    assert "loading data.csv" in out
    assert as_written.returncode == 0, as_written.stderr.decode()
    assert f"into dataset '{name}_text' (day date, value text)" in as_written.stdout.decode()
    assert "bastion: warning: column 'value' was loaded as text: it holds numbers but for 'NA'" in (
        as_written.stderr.decode()
    )
    assert encoded.returncode == 0, encoded.stderr.decode()
    city = await service.query(
        CallerContext.local_owner(), f"SELECT city, n, seen, pop FROM {name}_enc", None, 10, None
    )
    assert city["rows"] == [["Zürich", 1.5, "2024-03-15", 1234567]]
    assert bad.returncode == 2
    assert bad.stderr.decode().strip().splitlines()[-1].startswith("bastion: error: ")
    assert "no such file" in bad.stderr.decode()
    result = await service.query(CallerContext.local_owner(), f"SELECT count(*), count(value) FROM {name}")
    assert result["rows"] == [[28, 27]]
    await service.drop(CallerContext.local_owner(), name)
    await service.drop(CallerContext.local_owner(), f"{name}_text")
    await service.drop(CallerContext.local_owner(), f"{name}_enc")
