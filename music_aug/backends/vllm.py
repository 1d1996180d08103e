"""``VLLMBackend``: generation with a vLLM engine on local GPUs, in this process.

Two engines, one backend:

* ``stream()`` (what the augmenter uses) runs vLLM's async engine (``AsyncLLMEngine``, the
  V1 ``AsyncLLM``): each request is added the moment it is submitted and comes back when
  it finishes, so continuous batching stays full while MUSIC's branches advance at their
  own pace. Chat requests go through the tokenizer's chat template (or ``chat_template``).
  It is used when ``engine="async"``, or with ``engine="auto"`` when the installed vLLM
  has the async engine.
* ``generate`` (and ``stream()`` with ``engine="offline"`` or without the async engine)
  makes one ``LLM.chat`` call for all its chat requests and one ``LLM.generate`` call for
  all its raw completion requests, with a per-request ``SamplingParams(seed=...)``. If vLLM
  rejects a batch (say, one prompt longer than ``max_model_len``), the requests are
  retried one by one so only the offending request ends as an error result.

Each engine is created lazily, in the process that built the backend, on first use.

A CUDA engine cannot be shared with forked worker processes: calling ``generate`` from a
``datasets.map(num_proc>1)`` worker raises ``ConfigError`` with the fix (``num_proc=1``;
vLLM batches internally). This module does not start servers (use ``vllm serve`` with
``OpenAIBackend``) and does not manage GPUs beyond the engine options it passes on.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from music_aug.backends.aloop import LoopThread
from music_aug.backends.base import ChatRequest, ChatResult, Usage
from music_aug.backends.inprocess import InProcessModel
from music_aug.backends.stream import AsyncStream, BatchStream, RequestStream
from music_aug.errors import ConfigError, MissingDependencyError

__all__ = ["VLLMBackend"]

_ENGINES = ("auto", "async", "offline")


class VLLMBackend(InProcessModel):
    """Run a Hugging Face model with vLLM in this process.

    Args:
        model: HF model id or local folder.
        tensor_parallel_size: GPUs to shard the model over (one engine per machine).
        gpu_memory_utilization: fraction of GPU memory vLLM may take.
        max_model_len: context length override (``None``: the model's).
        chat_template: a Jinja chat template (text or a file path) replacing the model's.
        seed: engine seed; requests with their own ``sampling.seed`` use that.
        engine: ``"auto"`` (the async engine for ``stream()`` when vLLM has one),
            ``"async"`` or ``"offline"`` (``LLM.chat`` batches only).
        max_num_seqs: sequences the engine runs at once (vLLM's own default when
            ``None``); the augmenter keeps about this many requests submitted
            (``_DEFAULT_SEQS`` = 256 when unset).
    """

    name = "vllm"

    def __init__(
        self,
        model: str,
        *,
        tensor_parallel_size: int = 1,
        gpu_memory_utilization: float = 0.9,
        max_model_len: int | None = None,
        chat_template: str | None = None,
        seed: int = 0,
        engine: str = "auto",
        max_num_seqs: int | None = None,
    ) -> None:
        if not model:
            raise ConfigError("VLLMBackend needs model= (a Hugging Face id or a local folder)")
        if tensor_parallel_size < 1:
            raise ConfigError(f"tensor_parallel_size must be >= 1, got {tensor_parallel_size}")
        if not 0 < gpu_memory_utilization <= 1:
            raise ConfigError(
                f"gpu_memory_utilization must be in (0, 1], got {gpu_memory_utilization}"
            )
        if engine not in _ENGINES:
            raise ConfigError(f"engine must be one of {', '.join(_ENGINES)}, got {engine!r}")
        if max_num_seqs is not None and max_num_seqs < 1:
            raise ConfigError(f"max_num_seqs must be >= 1, got {max_num_seqs}")
        self.model = model
        self.engine = engine
        self.max_num_seqs = max_num_seqs
        self.tensor_parallel_size = tensor_parallel_size
        self.gpu_memory_utilization = gpu_memory_utilization
        self.max_model_len = max_model_len
        self.chat_template = _read_template(chat_template)
        self.seed = seed
        self._owner_pid = os.getpid()  # kept when pickled: workers must not build engines
        self._init_model_slot()
        self._async: tuple[LoopThread, Any, Any] | None = None  # (loop, engine, tokenizer)

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        state["_async"] = None
        return state

    def __repr__(self) -> str:
        return f"VLLMBackend(model={self.model!r}, tp={self.tensor_parallel_size})"

    def _check_process(self) -> None:
        if os.getpid() != self._owner_pid:
            raise ConfigError(
                "VLLMBackend was used from a worker process (e.g. datasets.map(num_proc>1)). "
                "A vLLM engine lives in the process that created the backend and cannot be "
                "forked: use num_proc=1 (vLLM already batches every request of a call), or "
                "start `vllm serve MODEL` and use the openai backend with --base-url."
            )

    def _engine_options(self) -> dict[str, Any]:
        options: dict[str, Any] = {
            "model": self.model,
            "tensor_parallel_size": self.tensor_parallel_size,
            "gpu_memory_utilization": self.gpu_memory_utilization,
            "seed": self.seed,
        }
        if self.max_model_len is not None:
            options["max_model_len"] = self.max_model_len
        if self.max_num_seqs is not None:
            options["max_num_seqs"] = self.max_num_seqs
        return options

    @property
    def llm(self) -> Any:
        """The ``vllm.LLM`` engine, created on first access in the owning process."""
        self._check_process()
        if self._llm is None:
            self._llm = _import_vllm().LLM(**self._engine_options())
        return self._llm

    # -- the async engine --------------------------------------------------------------------
    def _uses_async(self) -> bool:
        if self.engine == "offline":
            return False
        has_async = hasattr(_import_vllm(), "AsyncLLMEngine")
        if self.engine == "async" and not has_async:
            raise ConfigError(
                "engine='async' needs vllm.AsyncLLMEngine, which this vLLM does not have; "
                "upgrade vLLM or pass engine='offline'"
            )
        return has_async

    def _async_engine(self) -> tuple[LoopThread, Any, Any]:
        self._check_process()
        if self._async is None or not self._async[0].current:
            vllm = _import_vllm()
            loop = LoopThread(name="music-aug-vllm")

            async def build() -> tuple[Any, Any]:
                # built on the loop that will drive it: the engine binds its output task there
                args = vllm.AsyncEngineArgs(**self._engine_options())
                engine = vllm.AsyncLLMEngine.from_engine_args(args)
                tokenizer = engine.get_tokenizer()
                if hasattr(tokenizer, "__await__"):
                    tokenizer = await tokenizer
                return engine, tokenizer

            engine, tokenizer = loop.run(build())
            self._async = (loop, engine, tokenizer)
        return self._async

    async def _generate_one(self, engine: Any, tokenizer: Any, request: ChatRequest) -> ChatResult:
        if request.messages is not None:
            options: dict[str, Any] = {"tokenize": False, "add_generation_prompt": True}
            if self.chat_template is not None:
                options["chat_template"] = self.chat_template
            prompt = tokenizer.apply_chat_template([dict(m) for m in request.messages], **options)
        else:
            prompt = request.prompt
        final = None
        try:
            async for output in engine.generate(prompt, self._params(request), _request_id()):
                final = output
        except Exception as error:  # one rejected prompt fails alone
            return ChatResult.failure(f"vllm_error: {type(error).__name__}: {error}")
        if final is None:
            return ChatResult.failure("vllm_error: the engine returned no output")
        return _to_result(final)

    def stream(self) -> RequestStream:
        """A ``RequestStream`` over the async engine (or over ``generate`` batches)."""
        if not self._uses_async():
            return BatchStream(self)
        loop, engine, tokenizer = self._async_engine()

        def run_one(request: ChatRequest) -> Any:
            return self._generate_one(engine, tokenizer, request)

        return AsyncStream(loop, run_one, self.max_num_seqs or _DEFAULT_SEQS)

    def _params(self, request: ChatRequest) -> Any:
        sampling = request.sampling
        return _import_vllm().SamplingParams(
            temperature=sampling.temperature,
            top_p=sampling.top_p,
            max_tokens=sampling.max_tokens,
            seed=sampling.seed,
            stop=list(sampling.stop) or None,
        )

    def _call(self, llm: Any, requests: list[ChatRequest]) -> list[Any]:
        params = [self._params(r) for r in requests]
        if requests[0].messages is not None:
            conversations = [[dict(m) for m in r.messages or ()] for r in requests]
            options: dict[str, Any] = {"use_tqdm": False}
            if self.chat_template is not None:
                options["chat_template"] = self.chat_template
            return list(llm.chat(conversations, sampling_params=params, **options))
        prompts = [r.prompt for r in requests]
        return list(llm.generate(prompts, sampling_params=params, use_tqdm=False))

    def _run_group(self, llm: Any, requests: list[ChatRequest]) -> list[ChatResult]:
        try:
            outputs = self._call(llm, requests)
            if len(outputs) != len(requests):
                raise RuntimeError(f"vLLM returned {len(outputs)} outputs for {len(requests)}")
            return [_to_result(output) for output in outputs]
        except Exception as error:
            if len(requests) == 1:
                return [ChatResult.failure(f"vllm_error: {type(error).__name__}: {error}")]
        return [self._run_group(llm, [request])[0] for request in requests]

    def generate(self, requests: Sequence[ChatRequest]) -> list[ChatResult]:
        """One ``LLM.chat`` call for the chat requests, one ``LLM.generate`` for the rest."""
        if not requests:
            return []
        with self._lock:
            llm = self.llm
            results: list[ChatResult | None] = [None] * len(requests)
            for kind in ("chat", "completion"):
                indices = [i for i, r in enumerate(requests) if r.kind == kind]
                if indices:
                    group = self._run_group(llm, [requests[i] for i in indices])
                    for index, result in zip(indices, group, strict=True):
                        results[index] = result
        return [r if r is not None else ChatResult.failure("vllm_error: lost") for r in results]

    def close(self) -> None:
        """Drop the engines (vLLM frees GPU memory when they are garbage collected)."""
        with self._lock:
            self._llm = None
        running, self._async = self._async, None
        if running is not None:
            loop, engine, _ = running
            shutdown = getattr(engine, "shutdown", None)
            if callable(shutdown) and loop.current:
                loop.loop.call_soon_threadsafe(shutdown)
            loop.stop()


_DEFAULT_SEQS = 256
_ids = itertools.count()


def _request_id() -> str:
    return f"music-aug-{os.getpid()}-{next(_ids)}"


def _import_vllm() -> Any:
    try:
        import vllm
    except ImportError as error:
        raise MissingDependencyError("vllm", "vllm", "The vLLM backend") from error
    return vllm


def _read_template(template: str | None) -> str | None:
    if template is None:
        return None
    if "{" not in template and Path(template).is_file():
        return Path(template).read_text(encoding="utf-8")
    if "{" not in template:
        raise ConfigError(
            f"chat_template {template!r} is neither a Jinja template nor an existing file"
        )
    return template


def _to_result(output: Any) -> ChatResult:
    completion = output.outputs[0]
    prompt_ids = getattr(output, "prompt_token_ids", None) or []
    token_ids = getattr(completion, "token_ids", None) or []
    return ChatResult(
        text=completion.text,
        finish_reason=completion.finish_reason or "stop",
        usage=Usage(len(prompt_ids), len(token_ids)),
    )
