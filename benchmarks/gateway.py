"""Gateway overhead: `tools/call echo` through the gateway versus straight to the upstream.

Method (the same load generator, the same upstream, the same run, interleaved):

- the upstream is the MCP SDK's echo server (`../shared/bench/echo_server.py`), over
  Streamable HTTP on 127.0.0.1;
- the gateway is `bastion gateway` on a fresh BASTION_HOME (embedded PostgreSQL,
  embedded Rego policy, API-key authentication, audit events committed before each
  answer), with the echo server as its only upstream;
- `../shared/bench/load.py` drives closed-loop clients of one protocol era at a time,
  against the echo server and against the gateway, interleaved for `--rounds` rounds,
  each round starting one place later in that order; the gateway's process tree CPU and,
  apart, its embedded PostgreSQL's (started detached, outside that tree) are accounted
  with `--pid`;
- everything is repeated for both protocol eras (2026-07-28 stateless, 2025-11-25
  handshake), for 1 and 16 clients, and for both audit durability modes (`--era`,
  `--clients` and `--durability` measure fewer rows, for a variant that concerns one).

The benchmark principal gets a subject grant that lifts the policy's per-role rate so
the limiter does not shape the load; every other part of the path is the default.

`--baseline DIR` also runs a second gateway from another checkout of this repository
(`git worktree add /tmp/base REV`), against the same echo server and interleaved with
the others, so a change is measured against the code before it in one run.
`--max-concurrency N` sets the echo upstream's `max_concurrency` on the gateway under
test (0: no limit; unset: the default for a server on this machine); the baseline keeps
its own configuration.
`--stdio-upstream` also runs one more gateway of this checkout that starts the echo server
as its own stdio child (as it starts the built-in servers) instead of reaching it over
HTTP; that gateway's CPU then holds its upstream's, and the load generator still calls
the HTTP echo server for "direct".
`--floor` also runs `benchmarks/floor_proxy.py` (the gateway's own per-call I/O, the
upstream POST and the audit commit, with none of its logic) in the same rounds: what
any gateway built from these parts adds on this machine at that moment.

`--report FILE` prints the tables of a run saved with `--json`, measuring nothing.

Besides each row's latency, throughput and the gateway's and its database's CPU per
call, a last table gives how busy the whole machine was and what one call cost it all
told (load generator, upstream, gateway or floor proxy, database; load.py's own
accounting), with the load generator's and the upstream's own CPU per call apart (a
forwarder changes what they spend too: each wakes for fewer or more calls at once). In a
closed loop of processes sharing the cores, rate = busy cores / CPU per call, so a ratio
to direct is (busy share) x (direct CPU per call / CPU per call).

Usage: python benchmarks/gateway.py [--duration 8] [--rounds 2] [--json FILE] [--baseline DIR]
       [--max-concurrency N] [--floor] [--stdio-upstream] [--era modern|handshake] [--clients 1|16]
       python benchmarks/gateway.py --report FILE
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT.parent / "shared" / "bench"
ECHO = BENCH / "echo_server.py"
LOAD = BENCH / "load.py"
# load.py's names of the protocol eras (2026-07-28 stateless, 2025-11-25 handshake), and
# the closed-loop client counts the targets name
ERAS = ("modern", "handshake")
CLIENTS = (1, 16)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_up(url: str, timeout: float = 120.0, ready: bool = False) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            response = httpx.get(url, timeout=1.0)
            if not ready:
                return
            upstreams = response.json().get("upstreams") or {}
            if upstreams and all(u["state"] == "ready" for u in upstreams.values()):
                return
        except (httpx.HTTPError, ValueError):
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up within {timeout:.0f} s")


def listening(port: int, process: subprocess.Popen[bytes], what: str, timeout: float = 60.0) -> None:
    """Wait until `process` accepts connections on `port`; fail at once if it exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            if process.poll() is not None:
                raise RuntimeError(f"{what} exited with {process.returncode}") from None
            time.sleep(0.1)
    raise RuntimeError(f"{what} did not listen on port {port} within {timeout:.0f} s")


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def bench_policy_dir(work: Path) -> Path:
    """The shipped policy, plus a grant that lifts the per-role rate for the `bench` key."""
    folder = work / "policies"
    shutil.copytree(ROOT / "policies", folder, ignore=shutil.ignore_patterns("*_test.rego", "README.md"))
    data = json.loads((folder / "data.json").read_text())
    data["bastion"]["grants"]["subjects"]["bench"] = {"rate": {"per_minute": 60_000_000, "burst": 1_000_000}}
    (folder / "data.json").write_text(json.dumps(data))
    return folder


class Gateway:
    def __init__(
        self,
        work: Path,
        echo_url: str,
        durability: str,
        policies: Path,
        source: Path | None = None,
        max_concurrency: int | None = None,
        stdio_upstream: bool = False,
    ) -> None:
        """A gateway on its own home; `source`: run the code of that checkout instead of this one;
        `stdio_upstream`: start the echo server as its stdio child instead of calling `echo_url`."""
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.cwd = source  # `python -m` imports from the working directory first
        name = f"{durability}-{'baseline' if source else 'stdio' if stdio_upstream else 'gateway'}"
        work = work / name
        work.mkdir()
        config = work / f"bastion-{durability}.toml"
        upstream = (
            f'transport = "stdio"\ncommand = {json.dumps(sys.executable)}\n'
            f'args = [{json.dumps(str(ECHO))}, "--transport", "stdio"]\n'
            if stdio_upstream
            else f'transport = "http"\nurl = "{echo_url}"\n'
        )
        config.write_text(
            "builtin_servers = []\n"
            f'policy_dir = "{policies}"\n'
            "rate_limit_per_second = 0\nrate_limit_tool_per_second = 0\n"
            f'audit_durability = "{durability}"\n'
            f"[upstreams.echo]\n{upstream}"
            + (f"max_concurrency = {max_concurrency}\n" if max_concurrency is not None else "")
        )
        self.env = {
            k: v for k, v in os.environ.items() if not k.startswith(("BASTION_", "DATABASE_URL", "REDIS_URL"))
        }
        self.env.update(
            {
                "BASTION_HOME": str(work / "home"),
                "BASTION_CONFIG": str(config),
                "BASTION_LOG_LEVEL": "WARNING",
                "BASTION_LOG_FORMAT": "json",
            }
        )
        if source is not None:
            self.env["PYTHONPATH"] = str(source)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bastion.cli", "gateway", "--port", str(self.port)],
            env=self.env,
            cwd=self.cwd,
            stdout=subprocess.DEVNULL,
            stderr=(work / "gateway.log").open("wb"),
        )
        wait_up(self.url + "/readyz", ready=True)
        # `pg_ctl` starts the embedded PostgreSQL detached, outside the gateway's process
        # tree: its CPU is accounted on its own.
        self.database_pid = _database_pid(Path(self.env["BASTION_HOME"]))

    def key(self) -> str:
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "bastion.cli",
                "keys",
                "create",
                "--name",
                "bench",
                "--role",
                "admin",
                "--json",
            ],
            env=self.env,
            cwd=self.cwd,
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
        return str(json.loads(done.stdout)["key"])


class Floor:
    """`floor_proxy.py` on the embedded PostgreSQL of `gateway` (which must keep running)."""

    def __init__(self, gateway: Gateway, echo_url: str, durability: str) -> None:
        from bastion.db.embedded import EmbeddedPostgres
        from bastion.home import Home

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        dsn = EmbeddedPostgres(Home(Path(gateway.env["BASTION_HOME"]))).dsn()
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",  # from the repository root: this folder's gateway.py would shadow the package
                "benchmarks.floor_proxy",
                "--port",
                str(self.port),
                "--upstream",
                echo_url,
                "--dsn",
                dsn,
                "--durability",
                durability,
            ],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
        )
        listening(self.port, self.process, "floor_proxy.py")


def _database_pid(home: Path) -> int:
    from bastion.db.embedded import EmbeddedPostgres
    from bastion.home import Home

    pid = EmbeddedPostgres(Home(home)).status().pid
    if pid is None:
        raise RuntimeError(f"the embedded PostgreSQL of {home} is not running")
    return pid


def _load(
    url: str,
    protocol: str,
    workers: int,
    duration: float,
    key: str | None,
    pid: int,
    database_pid: int | None = None,
    upstream_pid: int | None = None,
) -> dict[str, Any]:
    argv = [
        sys.executable,
        str(LOAD),
        url,
        "--protocol",
        protocol,
        "--workers",
        str(workers),
        "--duration",
        str(duration),
        "--warmup",
        "2",
        "--tool-regex",
        "echo$",
        "--pid",
        f"server={pid}",
    ]
    if database_pid is not None:
        argv += ["--pid", f"database={database_pid}"]
    if upstream_pid is not None:
        argv += ["--pid", f"upstream={upstream_pid}"]
    if key:
        argv += ["--token", key]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 120, check=False)
    result = json.loads(done.stdout)
    if result.get("fatal"):
        raise RuntimeError(f"load.py against {url}: {result['fatal']}")
    return result


def _cpu_ms(result: dict[str, Any], label: str = "server") -> float | None:
    value = (result.get("cpu") or {}).get(f"{label}_cpu_ms_per_req")
    return None if value is None else float(value)


def measure(
    duration: float,
    rounds: int,
    durabilities: list[str],
    baseline: Path | None = None,
    max_concurrency: int | None = None,
    floor: bool = False,
    eras: tuple[str, ...] = ERAS,
    clients: tuple[int, ...] = CLIENTS,
    stdio_upstream: bool = False,
) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="bgb-", dir="/tmp"))
    echo_port = free_port()
    echo_url = f"http://127.0.0.1:{echo_port}/mcp"
    echo = subprocess.Popen(
        [sys.executable, str(ECHO), "--port", str(echo_port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    results: dict[str, Any] = {}
    try:
        listening(echo_port, echo, "the echo server")
        policies = bench_policy_dir(work)
        for durability in durabilities:
            gateways: dict[str, Gateway] = {}
            floor_proxy: Floor | None = None
            try:
                gateways["gateway"] = Gateway(
                    work, echo_url, durability, policies, max_concurrency=max_concurrency
                )
                if baseline is not None:
                    gateways["baseline"] = Gateway(work, echo_url, durability, policies, source=baseline)
                if stdio_upstream:
                    gateways["stdio"] = Gateway(work, echo_url, durability, policies, stdio_upstream=True)
                keys = {name: gateway.key() for name, gateway in gateways.items()}
                if floor:
                    floor_proxy = Floor(gateways["gateway"], echo_url, durability)
                for protocol in eras:
                    for workers in clients:
                        label = f"{durability}/{protocol}/{workers}"
                        # (url, token, pid, its database's pid) of everything measured, in
                        # the order of the first round
                        targets: dict[str, tuple[str, str | None, int, int | None]] = {
                            "direct": (echo_url, None, echo.pid, None),
                            **{
                                name: (
                                    gateway.url + "/mcp",
                                    keys[name],
                                    gateway.process.pid,
                                    gateway.database_pid,
                                )
                                for name, gateway in gateways.items()
                            },
                        }
                        if floor_proxy is not None:
                            targets["floor"] = (
                                floor_proxy.url + "/mcp",
                                None,
                                floor_proxy.process.pid,
                                gateways["gateway"].database_pid,  # the floor writes there
                            )
                        runs: dict[str, list[dict[str, Any]]] = {name: [] for name in targets}
                        order = list(targets)
                        for turn in range(rounds):
                            # Each round starts one place later, so no target always runs
                            # right after the same one (the host's state carries over).
                            shift = turn % len(order)
                            for name in order[shift:] + order[:shift]:
                                url, token, pid, database = targets[name]
                                runs[name].append(
                                    _load(url, protocol, workers, duration, token, pid, database, echo.pid)
                                )
                        results[label] = runs
                        print(summarise_one(label, runs), file=sys.stderr, flush=True)
            finally:
                if floor_proxy is not None:
                    stop(floor_proxy.process)
                for gateway in gateways.values():
                    stop(gateway.process)
    finally:
        stop(echo)
        shutil.rmtree(work, ignore_errors=True)
    return results


def _median(runs: list[dict[str, Any]], key: str) -> float:
    return statistics.median(float(r[key]) for r in runs)


def _machine(result: dict[str, Any]) -> tuple[float, float] | None:
    """(how busy the whole machine was, %; its CPU per answered call, ms) during one run."""
    cpu = result.get("cpu") or {}
    busy, cpus, rps = cpu.get("system_busy_pct"), cpu.get("cpus"), result.get("rps")
    if busy is None or not cpus or not rps:
        return None
    return float(busy), float(busy) / 100 * float(cpus) * 1000 / float(rps)


def _median_or_nan(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def _row(runs: dict[str, list[dict[str, Any]]], gateway: str = "gateway") -> dict[str, float]:
    """Medians of one configuration: throughput, latency, added latency, CPU per call of the
    gateway's process and of its database, and of the load generator and the whole machine
    (what bounds a closed loop of processes sharing the cores: rate = busy cores / CPU per call)."""
    d, g = runs["direct"], runs[gateway]
    gw_cpu = [c for c in (_cpu_ms(r) for r in g) if c is not None]
    db_cpu = [c for c in (_cpu_ms(r, "database") for r in g) if c is not None]
    machine = {
        name: [m for m in map(_machine, rs) if m is not None] for name, rs in (("direct", d), ("gateway", g))
    }
    loadgen = {
        name: [c for c in (_cpu_ms(r, "loadgen") for r in rs) if c is not None]
        for name, rs in (("direct", d), ("gateway", g))
    }
    # The upstream's own CPU per call: run directly, it is the measured server.
    upstream = {
        name: [c for c in (_cpu_ms(r, label) for r in rs) if c is not None]
        for name, rs, label in (("direct", d, "server"), ("gateway", g, "upstream"))
    }
    if gateway == "stdio":
        upstream["gateway"] = []  # its echo server is in its own process tree; the HTTP one idles
    row = {
        "direct_rps": _median(d, "rps"),
        "gateway_rps": _median(g, "rps"),
        "direct_p50": _median(d, "p50_ms"),
        "direct_p99": _median(d, "p99_ms"),
        "gateway_p50": _median(g, "p50_ms"),
        "gateway_p99": _median(g, "p99_ms"),
        "cpu": statistics.median(gw_cpu) if gw_cpu else float("nan"),
        "db_cpu": statistics.median(db_cpu) if db_cpu else float("nan"),
        **{
            f"{name}_{key}": _median_or_nan([m[i] for m in machine[name]])
            for name in ("direct", "gateway")
            for i, key in enumerate(("busy", "machine_cpu"))
        },
        **{f"{name}_loadgen_cpu": _median_or_nan(loadgen[name]) for name in ("direct", "gateway")},
        **{f"{name}_upstream_cpu": _median_or_nan(upstream[name]) for name in ("direct", "gateway")},
    }
    row["ratio"] = row["gateway_rps"] / row["direct_rps"]
    row["added_p50"] = row["gateway_p50"] - row["direct_p50"]
    row["added_p99"] = row["gateway_p99"] - row["direct_p99"]
    return row


def summarise_one(label: str, runs: dict[str, list[dict[str, Any]]]) -> str:
    lines = []
    for gateway in (name for name in runs if name != "direct"):
        r = _row(runs, gateway)
        lines.append(
            f"{label}: direct {r['direct_rps']:.0f} rps, p50 {r['direct_p50']:.2f} ms | "
            f"{gateway} {r['gateway_rps']:.0f} rps, p50 {r['gateway_p50']:.2f} ms | ratio {r['ratio']:.2f} | "
            f"added p50 {r['added_p50']:.2f} ms | CPU/call {r['cpu']:.3f} ms, database {r['db_cpu']:.3f} ms"
        )
    return "\n".join(lines)


def _against(results: dict[str, Any], other: str) -> list[str]:
    """The gateway under test beside `other` (the floor proxy, a baseline gateway, or the
    gateway with a stdio upstream)."""
    lines = [
        f"| durability / era / clients | {other} rps / ratio | gateway rps / ratio "
        f"| {other} added p50 ms | gateway added p50 ms | gateway - {other} p50 ms "
        f"| {other} CPU ms/call | gateway CPU ms/call | {other} / gateway database CPU ms/call |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for label, runs in results.items():
        o, r = _row(runs, other), _row(runs)
        lines.append(
            f"| {label} | {o['gateway_rps']:.0f} / {o['ratio']:.2f} "
            f"| {r['gateway_rps']:.0f} / {r['ratio']:.2f} "
            f"| {o['added_p50']:.2f} | {r['added_p50']:.2f} | {r['gateway_p50'] - o['gateway_p50']:.2f} "
            f"| {o['cpu']:.3f} | {r['cpu']:.3f} | {o['db_cpu']:.3f} / {r['db_cpu']:.3f} |"
        )
    return lines


def report(results: dict[str, Any]) -> str:
    lines = [
        "| durability / era / clients | direct rps | gateway rps | ratio | direct p50 / p99 ms "
        "| gateway p50 / p99 ms | added p50 / p99 ms | gateway CPU ms/call | database CPU ms/call |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for label, runs in results.items():
        r = _row(runs)
        lines.append(
            f"| {label} | {r['direct_rps']:.0f} | {r['gateway_rps']:.0f} | {r['ratio']:.2f} "
            f"| {r['direct_p50']:.2f} / {r['direct_p99']:.2f} "
            f"| {r['gateway_p50']:.2f} / {r['gateway_p99']:.2f} "
            f"| {r['added_p50']:.2f} / {r['added_p99']:.2f} | {r['cpu']:.3f} | {r['db_cpu']:.3f} |"
        )
    for other in ("floor", "baseline", "stdio"):
        if any(other in runs for runs in results.values()):
            lines += ["", *_against(results, other)]
    return "\n".join([*lines, "", *_machine_table(results)])


def _machine_table(results: dict[str, Any]) -> list[str]:
    """How busy the machine was and what one call cost it all told (every process: load
    generator, upstream, gateway or floor proxy, database), per target, with the load
    generator's and the upstream's own share (a forwarder changes what they spend too)."""
    known = ("direct", "gateway", "floor", "baseline", "stdio")
    names = [n for n in known if any(n in r for r in results.values())]
    legend = " / ".join(names)
    lines = [
        f"| durability / era / clients | machine busy % ({legend}) | machine CPU ms/call ({legend}) "
        f"| load generator CPU ms/call ({legend}) | upstream CPU ms/call ({legend}) |",
        "|---|---:|---:|---:|---:|",
    ]
    for label, runs in results.items():
        rows = {n: _row(runs, n) for n in names if n != "direct" and n in runs}
        first = next(iter(rows.values()))
        busy = [first["direct_busy"], *(r["gateway_busy"] for r in rows.values())]
        cpu = [first["direct_machine_cpu"], *(r["gateway_machine_cpu"] for r in rows.values())]
        gen = [first["direct_loadgen_cpu"], *(r["gateway_loadgen_cpu"] for r in rows.values())]
        up = [first["direct_upstream_cpu"], *(r["gateway_upstream_cpu"] for r in rows.values())]
        lines.append(
            f"| {label} | {' / '.join(f'{v:.0f}' for v in busy)} | {' / '.join(f'{v:.3f}' for v in cpu)} "
            f"| {' / '.join(f'{v:.3f}' for v in gen)} | {' / '.join(_ms_or_dash(v) for v in up)} |"
        )
    return lines


def _ms_or_dash(value: float) -> str:
    return "—" if math.isnan(value) else f"{value:.3f}"


def _interrupted(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"stopped by signal {signum}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=8.0, help="measured seconds per run (default 8)")
    parser.add_argument("--rounds", type=int, default=2, help="alternating direct/gateway rounds (default 2)")
    parser.add_argument(
        "--durability",
        action="append",
        choices=["flush", "commit"],
        help="audit durability modes to measure (default both)",
    )
    parser.add_argument("--json", type=Path, help="also write every load.py result here")
    parser.add_argument(
        "--baseline",
        type=Path,
        help="a checkout of another revision to run as a second gateway, interleaved (git worktree add)",
    )
    parser.add_argument(
        "--max-concurrency",
        type=int,
        help="the gateway under test sends the echo server at most N calls at once (not the baseline)",
    )
    parser.add_argument(
        "--floor",
        action="store_true",
        help="also run benchmarks/floor_proxy.py (the gateway's own I/O, none of its logic), interleaved",
    )
    parser.add_argument(
        "--stdio-upstream",
        action="store_true",
        help="also run a gateway that starts the echo server as its stdio child, interleaved",
    )
    parser.add_argument(
        "--era",
        action="append",
        choices=ERAS,
        help="protocol eras to measure: modern (2026-07-28), handshake (2025-11-25) (default both)",
    )
    parser.add_argument(
        "--clients",
        action="append",
        type=int,
        choices=CLIENTS,
        help="closed-loop client counts to measure (default both)",
    )
    parser.add_argument(
        "--report",
        type=Path,
        metavar="JSON",
        help="measure nothing: print the tables of an earlier run saved with --json",
    )
    args = parser.parse_args()
    if args.report is not None:
        try:
            saved = json.loads(args.report.read_text())
            if not isinstance(saved, dict) or not saved:
                raise ValueError("no results in it")
            print(report(saved))
        except (OSError, ValueError, KeyError, TypeError, StopIteration) as exc:
            parser.error(f"--report {args.report}: not a results file written by --json ({exc})")
        return
    if args.baseline is not None and not (args.baseline / "bastion" / "cli").is_dir():
        parser.error(f"--baseline {args.baseline} is not a checkout of this repository (no bastion/cli)")
    baseline = args.baseline.resolve() if args.baseline else None
    # Stopped by a signal, it still stops every process it started (the `finally` blocks run).
    signal.signal(signal.SIGTERM, _interrupted)
    results = measure(
        args.duration,
        args.rounds,
        args.durability or ["flush", "commit"],
        baseline,
        args.max_concurrency,
        args.floor,
        tuple(dict.fromkeys(args.era or ERAS)),
        tuple(dict.fromkeys(args.clients or CLIENTS)),
        args.stdio_upstream,
    )
    print(report(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
