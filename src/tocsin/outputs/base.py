"""The one protocol every output implements, and the registry the service fans out through.

Theory of operation. After each commit the service hands the batch of envelopes it made
(`tocsin.envelopes`) to `Outputs.apply`, which gives it to every registered output in
registration order, on the event loop. On start, before the node is ready, `Outputs.rebuild`
gives every output the log's transitions as envelopes, in log order, in the writer thread — so
a read model rebuilt from the log holds exactly what one fed live would (the contract test
`tests/outputs/test_contract.py` checks that for every registered output). Then `start`, and on
the way out `stop`.

An output that must run on one node only (webhook delivery, the siren gateway) is wrapped in
`LeaderOnly`: a fresh one runs while this node writes the log. A read model kept in memory is
wrapped in `ReadModel`; one that names its state in `SNAPSHOT_FIELDS` is saved in snapshots
(`tocsin.snapshots`) and skips, on rebuild, what it already holds (`last_seq`).

The outputs of a node are listed in one place, `tocsin.bootstrap.compose`. A new output is one
module with a class that has these four methods, and one line there (docs/architecture.md).
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from typing import Any, Generic, Protocol, TypeVar, runtime_checkable

from tocsin.envelopes import Envelope

__all__ = ["LeaderOnly", "Output", "Outputs", "ReadModel"]

log = logging.getLogger("tocsin.outputs")


@runtime_checkable
class Output(Protocol):
    """Something that tells the world, or keeps a view, of what the log decides."""

    name: str

    async def start(self) -> None:
        """Start (after the node recovered; `rebuild` has been called by then)."""

    async def stop(self) -> None:
        """Stop (before the node closes its log)."""

    def apply(self, batch: Sequence[Envelope]) -> None:
        """Take a committed batch, on the event loop: never block (I/O goes to a task)."""

    def rebuild(self, entries: Iterable[Envelope]) -> None:
        """Take the log's transitions, in order, on start (in the writer thread)."""


class Fold(Protocol):
    """A read model: folds envelopes in, any number at a time."""

    def apply_many(self, envelopes: Iterable[Any]) -> None: ...


M = TypeVar("M", bound=Fold)


class ReadModel(Generic[M]):
    """An in-memory view built from transitions: fed live and rebuilt from the log alike."""

    def __init__(self, name: str, model: M) -> None:
        self.name = name
        self.model = model

    @property
    def snapshotted(self) -> bool:
        """Whether snapshots keep it (it names its state in `SNAPSHOT_FIELDS`)."""
        return hasattr(self.model, "SNAPSHOT_FIELDS")

    async def start(self) -> None:
        """Nothing to start: it is rebuilt already."""

    async def stop(self) -> None:
        """Nothing to stop."""

    def apply(self, batch: Sequence[Envelope]) -> None:
        """Fold a batch in."""
        self.model.apply_many(batch)

    def rebuild(self, entries: Iterable[Envelope]) -> None:
        """Fold the log in, exactly as if it had been published."""
        self.model.apply_many(entries)


class Running(Protocol):
    """What `LeaderOnly` runs: started and stopped, optionally fed batches."""

    def start(self) -> Awaitable[None] | None: ...

    async def stop(self) -> None: ...


R = TypeVar("R", bound=Running)


class LeaderOnly(Generic[R]):
    """An output that runs while this node leads: a fresh one each time it does.

    `current` is the running one (None while this node does not lead). A fresh one reads what
    it needs from the log or the engine when it starts, so `rebuild` has nothing to do; batches
    go to the running one's `apply`, when it has one.
    """

    FROM_LOG = False  # nothing to rebuild: a fresh one reads what it needs when it starts

    def __init__(self, name: str, make: Callable[[], R]) -> None:
        self.name = name
        self._make = make
        self._wanted = False
        self.leading = False  # whether this node leads (set by `Outputs`)
        self.current: R | None = None

    async def start(self) -> None:
        """Wanted from now on; started at once if this node leads."""
        self._wanted = True
        if self.leading:
            await self.activate()

    async def stop(self) -> None:
        """Not wanted any more."""
        self._wanted = False
        await self.deactivate()

    def apply(self, batch: Sequence[Envelope]) -> None:
        """Hand the batch to the running one."""
        apply = getattr(self.current, "apply", None)
        if apply is not None:
            apply(batch)

    def rebuild(self, entries: Iterable[Envelope]) -> None:
        """Nothing: a fresh one is made from the log when this node leads."""

    async def leadership(self, leading: bool) -> None:
        """This node gained or lost the lead."""
        self.leading = leading
        await (self.activate() if leading else self.deactivate())

    async def activate(self) -> None:
        """Run a fresh one (if wanted and not running)."""
        if not self._wanted or self.current is not None:
            return
        output = self._make()
        started = output.start()
        if inspect.isawaitable(started):
            await started
        self.current = output

    async def deactivate(self) -> None:
        """Stop the running one."""
        output, self.current = self.current, None
        if output is not None:
            try:
                await output.stop()
            except Exception:
                log.exception("stopping the %s output failed", self.name)


class Outputs:
    """The outputs of one node, in registration order: the one fan-out."""

    def __init__(self) -> None:
        self._outputs: dict[str, Output] = {}

    def add(self, output: Output) -> Output:
        """Register an output (its `name` must be new)."""
        if output.name in self._outputs:
            raise ValueError(f"an output named {output.name!r} is registered already")
        self._outputs[output.name] = output
        return output

    def __getitem__(self, name: str) -> Any:
        return self._outputs[name]

    def get(self, name: str) -> Any:
        """The output registered as `name`, or None."""
        return self._outputs.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self._outputs

    def __iter__(self) -> Iterator[Output]:
        return iter(list(self._outputs.values()))

    def __len__(self) -> int:
        return len(self._outputs)

    @property
    def read_models(self) -> dict[str, Any]:
        """The models snapshots keep, by name: those of `ReadModel`s, and outputs that name
        their own state in `SNAPSHOT_FIELDS`."""
        out: dict[str, Any] = {}
        for o in self._outputs.values():
            model = o.model if isinstance(o, ReadModel) else o
            if hasattr(model, "SNAPSHOT_FIELDS"):
                out[o.name] = model
        return out

    @property
    def need_whole_log(self) -> bool:
        """Whether some output keeps state that no snapshot holds (so it is rebuilt from 1);
        one whose `rebuild` does nothing (`FROM_LOG = False`) keeps none."""
        kept = self.read_models
        return any(o.name not in kept and getattr(o, "FROM_LOG", True)
                   for o in self._outputs.values())

    def apply(self, batch: Sequence[Envelope]) -> None:
        """Give a committed batch to every output; one failing never starves the others."""
        if not batch:
            return
        for output in self._outputs.values():
            try:
                output.apply(batch)
            except Exception:
                log.exception("the %s output failed on a batch (seq %d-%d)", output.name,
                              batch[0].seq, batch[-1].seq)

    def rebuild(self, entries: Sequence[Envelope]) -> None:
        """Give a page of the log's transitions to every output (a failure stops the start:
        an output that cannot rebuild would serve a wrong view)."""
        if entries:
            for output in self._outputs.values():
                output.rebuild(entries)

    async def start(self, *, leading: bool) -> None:
        """Start every output, in order (the leader-only ones if this node `leading`)."""
        for output in self._outputs.values():
            if isinstance(output, LeaderOnly):
                output.leading = output.leading or leading
            await output.start()

    async def stop(self) -> None:
        """Stop every output, in reverse order; each is stopped even if another fails."""
        for output in reversed(list(self._outputs.values())):
            try:
                await output.stop()
            except Exception:
                log.exception("stopping the %s output failed", output.name)

    async def leadership(self, leading: bool) -> None:
        """This node gained or lost the lead: start or stop the leader-only outputs."""
        for output in self._outputs.values():
            if isinstance(output, LeaderOnly):
                await output.leadership(leading)
