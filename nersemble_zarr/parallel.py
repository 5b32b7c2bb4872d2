"""Run independent tasks in parallel: on a pool of local threads, or on a dask.distributed Client."""

from __future__ import annotations

from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Sequence

from .errors import ConfigError
from .progress import Progress, advance

CONNECT_TIMEOUT_S = 5.0  # how long to wait for a scheduler to answer before giving up


def run_tasks(
    function: Callable[[Any], Any],
    items: Sequence[Any],
    *,
    workers: int = 4,
    client: Any = None,
    progress: Progress | None = None,
) -> list[Any]:
    """Apply ``function`` to every item in parallel and return the results in order.

    Uses ``client`` (a ``dask.distributed.Client``) when given, else ``workers`` local threads (a plain thread
    pool: a fresh process does not import dask for it). ``progress(1)`` is called in the calling process as
    each task finishes. The first task to fail raises its error; tasks not yet started are not run.
    """
    if not items:
        return []
    if client is None:
        return _run_on_threads(function, items, workers, progress)
    import dask
    from distributed import as_completed

    tasks = [dask.delayed(function, pure=False)(item) for item in items]
    futures = client.compute(tasks)
    index_of = {future.key: index for index, future in enumerate(futures)}
    results: list[Any] = [None] * len(futures)
    for future in as_completed(futures):
        results[index_of[future.key]] = future.result()
        advance(progress, 1)
    return results


def _run_on_threads(function: Callable[[Any], Any], items: Sequence[Any], workers: int,
                    progress: Progress | None) -> list[Any]:
    results: list[Any] = [None] * len(items)
    pool = ThreadPoolExecutor(max(1, min(workers, len(items))), thread_name_prefix="nersemble-task")
    try:
        pending = {pool.submit(function, item): index for index, item in enumerate(items)}
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                results[pending.pop(future)] = future.result()  # a failed task raises here
                advance(progress, 1)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return results


@contextmanager
def connect(scheduler: str | None, timeout_s: float = CONNECT_TIMEOUT_S) -> Iterator[Any]:
    """A ``dask.distributed.Client`` connected to ``scheduler`` (an address), closed on exit; None without one.

    An address that is malformed or where no scheduler answers within ``timeout_s`` seconds raises a
    ConfigError naming it.
    """
    if not scheduler:
        yield None
        return
    from distributed import Client
    from distributed.comm import get_address_host_port, parse_address

    try:  # checked before any Client exists: a Client built on a bad address can fail inside distributed
        if parse_address(scheduler)[0] != "inproc":
            get_address_host_port(scheduler)
    except ValueError as error:
        raise _not_an_address(scheduler, error) from error
    try:
        # Not made the process-wide default: a client that fails to connect would stay the default of every
        # later dask computation here. It is the current client only inside the ``with`` block below.
        client = Client(scheduler, timeout=f"{timeout_s:g}s", set_as_default=False)
    except (ValueError, TypeError) as error:
        raise _not_an_address(scheduler, error) from error
    except (OSError, TimeoutError) as error:
        raise ConfigError(f"No dask scheduler answered at {scheduler} within {timeout_s:g} s "
                          f"({_first_line(error)}); start it or fix the address.") from error
    with client, client.as_current():
        yield client


def _not_an_address(scheduler: str, error: Exception) -> ConfigError:
    return ConfigError(f"{scheduler!r} is not a dask scheduler address ({_first_line(error)}); "
                       "give one like tcp://host:8786, or leave out --scheduler.")


def _first_line(error: Exception) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]
