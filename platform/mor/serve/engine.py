"""The decoding engine of a replica: continuous batching of generation jobs, with rows of different roles in one
forward pass.

A job is "continue these prompt tokens (with their per-token role ids) as role R, under this constraint". Jobs come
from many concurrent requests (a request's reasoner, executor and summarizer turns are separate jobs). One thread
owns the model: it prefills waiting jobs (left-padded, several at once), merges them into the running batch, and
runs one decoding step for all running rows per forward. Because MoR layers route each token by its own role id,
a reasoner row of one user and an executor row of another share a forward (`mode="cross-role"`). For comparison
the engine can batch only rows of the same role (`"same-role"`: one role's rows per forward, roles taking turns)
or not batch at all (`"off"`).

The engine never dies with a request: a failing forward fails the jobs of that batch and the loop goes on.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from transformers import DynamicCache

from mor.model.cache import cache_argument_name
from mor.serve.constrain import TokenConstraint
from mor.serve.kv import PaddedCache

__all__ = ["BatchEngine", "BatchingMode", "EngineStats", "GenerationJob", "GenerationResult", "Sampling"]

BatchingMode = Literal["cross-role", "same-role", "off"]
FinishReason = Literal["stop", "length", "cancelled", "error"]
_LOG = logging.getLogger("mor.serve.engine")


@dataclass(frozen=True)
class Sampling:
    """Greedy decoding when `temperature` is 0 (the default), else sampling with temperature and nucleus `top_p`."""

    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None


@dataclass
class GenerationJob:
    """One role turn to generate."""

    input_ids: list[int]
    role_ids: list[int]
    role: int
    max_new_tokens: int
    stop_ids: list[int]
    constraint: TokenConstraint | None = None
    sampling: Sampling = field(default_factory=Sampling)
    on_token: Callable[[int], None] | None = None
    """Called in the engine thread with every new token (keep it cheap and thread-safe)."""
    _cancelled: threading.Event = field(default_factory=threading.Event, repr=False)

    def cancel(self) -> None:
        """Stop generating for this job (its result then has finish reason `cancelled`)."""
        self._cancelled.set()

    @property
    def cancelled(self) -> bool:
        """Whether `cancel` was called."""
        return self._cancelled.is_set()


@dataclass
class GenerationResult:
    """The new tokens of a job and why it stopped."""

    token_ids: list[int]
    finish_reason: FinishReason
    prompt_tokens: int
    first_token_s: float
    total_s: float
    error: str | None = None


@dataclass
class EngineStats:
    """Counters since the engine started."""

    prefill_forwards: int = 0
    decode_forwards: int = 0
    decode_rows: int = 0
    mixed_role_forwards: int = 0
    generated_tokens: int = 0
    prompt_tokens: int = 0
    jobs_done: int = 0
    jobs_failed: int = 0
    forward_s: float = 0.0

    @property
    def mean_rows_per_decode(self) -> float:
        """Average number of rows in one decoding forward."""
        return self.decode_rows / self.decode_forwards if self.decode_forwards else 0.0


@dataclass
class _Row:
    job: GenerationJob
    future: concurrent.futures.Future[GenerationResult]
    submitted: float
    generator: torch.Generator | None
    generated: list[int] = field(default_factory=list)
    length: int = 0  # real tokens in the cache
    first_token_s: float = 0.0
    finish: FinishReason | None = None
    error: str | None = None

    @property
    def remaining(self) -> int:
        return self.job.max_new_tokens - len(self.generated)


class _Batch:
    """Rows decoding together, with their padded cache."""

    def __init__(self) -> None:
        self.rows: list[_Row] = []
        self.kv: PaddedCache | None = None

    def join(self, rows: list[_Row], kv: PaddedCache) -> None:
        if self.kv is None:
            self.kv = kv
        else:
            self.kv.join(kv)
        self.rows.extend(rows)

    def drop(self, finished: set[int]) -> list[_Row]:
        gone = [row for index, row in enumerate(self.rows) if index in finished]
        keep = [index for index in range(len(self.rows)) if index not in finished]
        self.rows = [self.rows[index] for index in keep]
        if not self.rows:
            self.kv = None
        elif self.kv is not None:
            self.kv.keep(keep)
        return gone


class BatchEngine:
    """Continuous batching over one model (a `MoRModel` with `role_aware=True`, or any causal LM without)."""

    def __init__(
        self,
        model: Any,
        *,
        role_aware: bool,
        pad_token_id: int,
        mode: BatchingMode = "cross-role",
        max_batch_size: int = 32,
        max_prefill_tokens: int = 8192,
        max_positions: int | None = None,
        torch_threads: int | None = None,
    ) -> None:
        if mode not in ("cross-role", "same-role", "off"):
            raise ValueError(f"mode: got {mode!r}, must be 'cross-role', 'same-role' or 'off'")
        if max_batch_size < 1:
            raise ValueError(f"max_batch_size: got {max_batch_size}, must be ≥ 1; e.g. 32")
        self.model = model
        self.role_aware = role_aware
        self.pad_token_id = int(pad_token_id)
        self.mode: BatchingMode = mode
        self.max_batch_size = 1 if mode == "off" else max_batch_size
        self.max_prefill_tokens = max_prefill_tokens
        self.max_positions = max_positions
        self.torch_threads = torch_threads
        self.stats = EngineStats()
        self._device = next((p.device for p in model.parameters()), torch.device("cpu"))
        self._cache_argument = cache_argument_name(model)
        self._cv = threading.Condition()
        self._incoming: deque[_Row] = deque()
        self._waiting: deque[_Row] = deque()
        self._batches: dict[int, _Batch] = {}
        self._turn = 0
        self._stop = False
        self._thread: threading.Thread | None = None

    # --- life cycle -------------------------------------------------------------------------------------------------

    def start(self) -> BatchEngine:
        """Start the engine thread (idempotent)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="mor-engine", daemon=True)
            self._thread.start()
        return self

    def close(self, timeout_s: float = 10.0) -> None:
        """Stop the thread; jobs not finished get finish reason `cancelled`."""
        with self._cv:
            self._stop = True
            self._cv.notify_all()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None

    @property
    def alive(self) -> bool:
        """Whether the engine thread is running."""
        return self._thread is not None and self._thread.is_alive()

    def __enter__(self) -> BatchEngine:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- submitting -------------------------------------------------------------------------------------------------

    def submit(self, job: GenerationJob) -> concurrent.futures.Future[GenerationResult]:
        """Queue a job; the future resolves with its result (never with an exception)."""
        if not job.input_ids or len(job.input_ids) != len(job.role_ids):
            raise ValueError(
                f"job: got {len(job.input_ids)} input_ids and {len(job.role_ids)} role_ids; give a "
                "non-empty prompt with one role id per token"
            )
        if job.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens: got {job.max_new_tokens}, must be ≥ 1")
        generator = None
        if job.sampling.temperature > 0:
            generator = torch.Generator(device="cpu")
            seed = job.sampling.seed if job.sampling.seed is not None else torch.seed()
            generator.manual_seed(seed % (2**63))
        row = _Row(job=job, future=concurrent.futures.Future(), submitted=time.perf_counter(), generator=generator)
        with self._cv:
            if self._stop:
                raise RuntimeError("the engine is closed")
            self._incoming.append(row)
            self._cv.notify_all()
        self.start()
        return row.future

    async def generate(self, job: GenerationJob) -> GenerationResult:
        """Submit `job` and await its result; cancelling the awaiting task cancels the job."""
        future = self.submit(job)
        try:
            return await asyncio.wrap_future(future)
        except asyncio.CancelledError:
            job.cancel()
            raise

    def pending(self) -> int:
        """Jobs queued or running."""
        with self._cv:
            running = sum(len(batch.rows) for batch in self._batches.values())
            return len(self._incoming) + len(self._waiting) + running

    # --- the loop ---------------------------------------------------------------------------------------------------

    def _loop(self) -> None:
        if self.torch_threads:
            torch.set_num_threads(self.torch_threads)
        with torch.inference_mode():
            while True:
                with self._cv:
                    while not self._stop and not self._incoming and not self._waiting and not self._running():
                        self._cv.wait()
                    if self._stop:
                        break
                    self._waiting.extend(self._incoming)
                    self._incoming.clear()
                try:
                    self._drop_cancelled()
                    self._prefill()
                    self._decode()
                except Exception as error:  # a bug must not kill the replica: fail what was running
                    _LOG.exception("engine step failed")
                    self._fail_all(f"{type(error).__name__}: {error}")
        self._fail_all("the engine stopped", reason="cancelled")

    def _running(self) -> int:
        return sum(len(batch.rows) for batch in self._batches.values())

    def _key(self, row: _Row) -> int:
        return row.job.role if self.mode == "same-role" else 0

    def _drop_cancelled(self) -> None:
        for row in [row for row in self._waiting if row.job.cancelled]:
            self._waiting.remove(row)
            self._resolve(row, "cancelled")
        for batch in self._batches.values():
            finished = {index for index, row in enumerate(batch.rows) if row.job.cancelled}
            if finished:
                for row in batch.drop(finished):
                    self._resolve(row, "cancelled")

    def _prefill(self) -> None:
        capacity = self.max_batch_size - self._running()
        if capacity <= 0 or not self._waiting:
            return
        key = self._key(self._waiting[0])
        chosen: list[_Row] = []
        longest = 0
        for row in list(self._waiting):
            if len(chosen) >= capacity or self._key(row) != key:
                continue
            length = len(row.job.input_ids)
            if chosen and max(longest, length) * (len(chosen) + 1) > self.max_prefill_tokens:
                break
            chosen.append(row)
            longest = max(longest, length)
        for row in chosen:
            self._waiting.remove(row)
        too_long = [row for row in chosen if self.max_positions and len(row.job.input_ids) >= self.max_positions]
        for row in too_long:
            chosen.remove(row)
            self._resolve(
                row,
                "error",
                f"prompt of {len(row.job.input_ids)} tokens does not fit the model's {self.max_positions} positions",
            )
        if not chosen:
            return
        kv, logits = self._prefill_forward(chosen)
        for row in chosen:
            row.length = len(row.job.input_ids)
        batch = _Batch()
        batch.join(chosen, kv)
        finished = self._choose(batch.rows, logits)
        for row in chosen:
            row.first_token_s = time.perf_counter() - row.submitted
        target = self._batches.setdefault(key, _Batch())
        for row in batch.drop(finished):
            self._resolve(row, row.finish or "stop")
        if batch.rows and batch.kv is not None:
            target.join(batch.rows, batch.kv)

    def _prefill_forward(self, rows: list[_Row]) -> tuple[PaddedCache, torch.Tensor]:
        width = max(len(row.job.input_ids) for row in rows)
        count = len(rows)
        input_ids = torch.full((count, width), self.pad_token_id, dtype=torch.long)
        role_ids = torch.zeros((count, width), dtype=torch.long)
        mask = torch.zeros((count, width), dtype=torch.long)
        for index, row in enumerate(rows):
            length = len(row.job.input_ids)
            input_ids[index, width - length :] = torch.tensor(row.job.input_ids, dtype=torch.long)
            role_ids[index, :] = row.job.role
            role_ids[index, width - length :] = torch.tensor(row.job.role_ids, dtype=torch.long)
            mask[index, width - length :] = 1
        positions = (mask.cumsum(dim=1) - 1).clamp(min=0)
        cache = DynamicCache()
        logits = self._forward(input_ids, mask, positions, role_ids, cache)
        self.stats.prefill_forwards += 1
        self.stats.prompt_tokens += int(mask.sum())
        return PaddedCache(cache=cache, mask=mask), logits

    def _forward(
        self,
        input_ids: torch.Tensor,
        mask: torch.Tensor,
        positions: torch.Tensor,
        role_ids: torch.Tensor,
        cache: DynamicCache,
    ) -> torch.Tensor:
        started = time.perf_counter()
        kwargs: dict[str, Any] = {
            "input_ids": input_ids.to(self._device),
            "attention_mask": mask.to(self._device),
            "position_ids": positions.to(self._device),
            self._cache_argument: cache,
            "use_cache": True,
            "logits_to_keep": 1,
        }
        if self.role_aware:
            kwargs["role_ids"] = role_ids.to(self._device)
        output = self.model(**kwargs)
        self.stats.forward_s += time.perf_counter() - started
        return output.logits[:, -1, :].float().cpu()

    def _decode(self) -> None:
        keys = sorted(key for key, batch in self._batches.items() if batch.rows)
        if not keys:
            return
        key = keys[self._turn % len(keys)]
        self._turn += 1
        batch = self._batches[key]
        assert batch.kv is not None
        rows = batch.rows
        input_ids = torch.tensor([[row.generated[-1]] for row in rows], dtype=torch.long)
        positions = torch.tensor([[row.length] for row in rows], dtype=torch.long)
        role_ids = torch.tensor([[row.job.role] for row in rows], dtype=torch.long)
        mask = batch.kv.extend_mask()
        try:
            logits = self._forward(input_ids, mask, positions, role_ids, batch.kv.cache)
        except Exception as error:
            _LOG.exception("decoding forward failed")
            for row in batch.drop(set(range(len(rows)))):
                self._resolve(row, "error", f"{type(error).__name__}: {error}")
            return
        self.stats.decode_forwards += 1
        self.stats.decode_rows += len(rows)
        if len({row.job.role for row in rows}) > 1:
            self.stats.mixed_role_forwards += 1
        for row in rows:
            row.length += 1
        finished = self._choose(rows, logits)
        for row in batch.drop(finished):
            self._resolve(row, row.finish or "stop")

    def _choose(self, rows: Sequence[_Row], logits: torch.Tensor) -> set[int]:
        """Pick every row's next token under its constraint; returns the indices of rows that finished."""
        masks = [row.job.constraint.allowed(row.remaining) if row.job.constraint is not None else None for row in rows]
        if any(mask is not None for mask in masks):
            full = torch.ones_like(logits, dtype=torch.bool)
            for index, mask in enumerate(masks):
                if mask is not None:
                    full[index, : mask.shape[0]] = mask[: logits.shape[1]]
                    full[index, mask.shape[0] :] = False
            logits = logits.masked_fill(~full, float("-inf"))
        greedy = logits.argmax(dim=-1).tolist()
        finished: set[int] = set()
        for index, row in enumerate(rows):
            scores = logits[index]
            if not torch.isfinite(scores).any():
                row.finish = "error"
                row.error = "the constraint allows no token"
                finished.add(index)
                continue
            token = greedy[index] if row.generator is None else self._sample(scores, row)
            row.generated.append(token)
            self.stats.generated_tokens += 1
            if row.job.constraint is not None:
                row.job.constraint.advance(token)
            if row.job.on_token is not None:
                try:
                    row.job.on_token(token)
                except Exception:  # a consumer's bug must not stop the batch
                    _LOG.exception("on_token callback failed")
            stop = row.job.stop_ids
            if (stop and row.generated[-len(stop) :] == stop) or (
                row.job.constraint is not None and row.job.constraint.done
            ):
                row.finish = "stop"
            elif row.remaining <= 0 or (self.max_positions and row.length + 1 >= self.max_positions):
                row.finish = "length"
            if row.finish is not None:
                finished.add(index)
        return finished

    @staticmethod
    def _sample(scores: torch.Tensor, row: _Row) -> int:
        sampling = row.job.sampling
        probs = torch.softmax(scores / sampling.temperature, dim=-1)
        if sampling.top_p < 1.0:
            sorted_probs, order = probs.sort(descending=True)
            cumulative = sorted_probs.cumsum(dim=-1)
            cut = cumulative - sorted_probs > sampling.top_p
            sorted_probs = sorted_probs.masked_fill(cut, 0.0)
            probs = torch.zeros_like(probs).scatter(0, order, sorted_probs)
        return int(torch.multinomial(probs, 1, generator=row.generator))

    def _resolve(self, row: _Row, reason: FinishReason, error: str | None = None) -> None:
        if row.future.done():
            return
        if reason == "error":
            self.stats.jobs_failed += 1
        else:
            self.stats.jobs_done += 1
        error = error or row.error
        row.future.set_result(
            GenerationResult(
                token_ids=list(row.generated),
                finish_reason=reason,
                prompt_tokens=len(row.job.input_ids),
                first_token_s=row.first_token_s,
                total_s=time.perf_counter() - row.submitted,
                error=error,
            )
        )

    def _fail_all(self, message: str, reason: FinishReason = "error") -> None:
        for batch in self._batches.values():
            for row in batch.rows:
                self._resolve(row, reason, message)
        self._batches.clear()
        with self._cv:
            rows = list(self._waiting) + list(self._incoming)
            self._waiting.clear()
            self._incoming.clear()
        for row in rows:
            self._resolve(row, reason, message)
