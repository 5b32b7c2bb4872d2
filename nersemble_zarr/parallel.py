"""Run independent tasks on dask: the local threaded scheduler or a dask.distributed Client."""

from __future__ import annotations

from typing import Any, Callable, Sequence

ProgressCallback = Callable[[int], None]


def run_tasks(
    function: Callable[[Any], Any],
    items: Sequence[Any],
    *,
    workers: int = 4,
    client: Any = None,
    on_done: ProgressCallback | None = None,
) -> list[Any]:
    """Apply ``function`` to every item in parallel and return the results in order.

    Uses ``client`` (a ``dask.distributed.Client``) when given, else dask's threaded scheduler with
    ``workers`` threads. ``on_done(n)`` is called in the calling process as tasks finish.
    """
    import dask

    if not items:
        return []
    tasks = [dask.delayed(function, pure=False)(item) for item in items]
    if client is not None:
        from distributed import as_completed

        futures = client.compute(tasks)
        index_of = {future.key: index for index, future in enumerate(futures)}
        results: list[Any] = [None] * len(futures)
        for future in as_completed(futures):
            results[index_of[future.key]] = future.result()
            if on_done:
                on_done(1)
        return results

    from dask.callbacks import Callback

    keys = {task.key for task in tasks}

    class _Progress(Callback):
        def _posttask(self, key, result, dsk, state, worker_id):
            if on_done and key in keys:
                on_done(1)

    with _Progress():
        return list(dask.compute(*tasks, scheduler="threads", num_workers=workers))


def connect(scheduler: str | None):
    """A ``dask.distributed.Client`` for ``scheduler`` (an address), or None for the local scheduler."""
    if not scheduler:
        return None
    from distributed import Client

    return Client(scheduler)
