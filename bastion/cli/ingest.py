"""`bastion ingest PATH... --collection NAME`: ingest files into a retrieval collection.

The command queues an ingestion job exactly as the `ingest` tool does (the paths must
lie under the retrieval server's allowed roots, `$BASTION_HOME/uploads` by default),
runs an ingestion worker in this process, and shows a progress bar fed by the job's
progress messages on the store, until the job ends. A retrieval server running for
the same instance may work on the job at the same time; nothing is stored twice.
Exit code 0 when every file was ingested, 1 when some failed (their reasons are listed).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import anyio
import typer

from bastion.logs import configure_logging
from bastion.settings import Settings, load_settings

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

    from servers.retrieval import RetrievalService

__all__ = ["ingest_command"]

logger = logging.getLogger(__name__)

STATUS_POLL = 2.0


def ingest_command(
    paths: Annotated[list[Path], typer.Argument(help="files or folders (under the allowed roots)")],
    collection: Annotated[str, typer.Option("--collection", "-c", help="collection to add to")],
    tag: Annotated[list[str] | None, typer.Option("--tag", help="tag every document (repeatable)")] = None,
    include: Annotated[list[str] | None, typer.Option("--include", help="glob files must match")] = None,
    exclude: Annotated[list[str] | None, typer.Option("--exclude", help="glob of files to skip")] = None,
    prune: Annotated[
        bool, typer.Option("--prune", help="also remove documents whose files are gone from the folders")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print the final status as JSON")] = False,
) -> None:
    """Ingest files and folders into a retrieval collection, with a progress bar."""
    settings = load_settings()
    configure_logging(settings.log_level, settings.log_format, component="ingest")
    status = anyio.run(
        _ingest,
        settings,
        [str(p.expanduser().absolute()) for p in paths],
        collection,
        tag or [],
        include or [],
        exclude or [],
        prune,
        not as_json,
    )
    if as_json:
        typer.echo(json.dumps(status, indent=2))
    else:
        counts = status["counts"]
        typer.echo(
            f"{status['state']}: {counts['created']} created, {counts['replaced']} replaced, "
            f"{counts['unchanged']} unchanged, {counts['duplicate']} duplicate, {counts['removed']} removed, "
            f"{counts['failed']} failed, {counts['chunks']} chunks"
        )
        for error in status["errors"]:
            typer.echo(f"  failed: {error['item']}: {error['error']}", err=True)
    raise typer.Exit(0 if status["state"] == "completed" and not status["counts"]["failed"] else 1)


async def _ingest(
    settings: Settings,
    paths: list[str],
    collection: str,
    tags: list[str],
    include: list[str],
    exclude: list[str],
    prune: bool,
    show: bool,
) -> dict[str, Any]:
    from bastion.caller import CallerContext
    from servers.retrieval import open_service, start_ingest
    from servers.retrieval.worker import IngestWorker

    async with open_service(settings) as service:
        job_id = await start_ingest(
            service,
            CallerContext.local_owner(),
            collection,
            paths=paths,
            tags=tags,
            include=include,
            exclude=exclude,
            prune=prune,
        )
        worker = IngestWorker(service)
        status: dict[str, Any] = {}
        async with anyio.create_task_group() as tg:
            tg.start_soon(worker.run)
            status = await _follow(service, job_id, show)
            worker.stop()
            tg.cancel_scope.cancel()
    return status


async def _follow(service: RetrievalService, job_id: str, show: bool) -> dict[str, Any]:
    """Wait for the job to end, drawing its progress from store messages (and a slow poll)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from servers.retrieval import job_channel, job_status

    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        transient=False,
        disable=not show,
    )
    with progress:
        task = progress.add_task("scanning", total=None)
        async with service.store.subscribe(job_channel(job_id)) as messages:
            while True:
                async with service.database.pool.connection() as conn:
                    status = await job_status(conn, job_id)
                _draw(progress, task, status)
                if status["state"] in ("completed", "failed"):
                    return status
                with anyio.move_on_after(STATUS_POLL):
                    async for raw in messages:
                        message = json.loads(raw)
                        _draw(progress, task, message)
                        if message["state"] in ("completed", "failed"):
                            break


def _draw(progress: Progress, task: TaskID, status: dict[str, Any]) -> None:
    counts = status["counts"]
    finished = counts["done"] + counts["failed"] + counts.get("skipped", 0)
    total = counts["total"] or None
    progress.update(
        task, description=f"{status['state']} ({counts['failed']} failed)", completed=finished, total=total
    )
