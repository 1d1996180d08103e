"""VLLMBackend's request/response mapping against an object shaped like ``vllm.LLM``.

vLLM needs a GPU; here a stand-in module provides ``LLM`` and ``SamplingParams`` with the
same call signatures and output objects (``RequestOutput.outputs[0].text`` etc.).
"""

from __future__ import annotations

import multiprocessing
import pickle
import sys
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from music_aug.backends import ChatRequest, VLLMBackend, create_backend
from music_aug.errors import ConfigError, MissingDependencyError


@dataclass
class SamplingParams:
    temperature: float = 1.0
    top_p: float = 1.0
    max_tokens: int = 16
    seed: int | None = None
    stop: list[str] | None = None


@dataclass
class CompletionOutput:
    text: str
    token_ids: list[int]
    finish_reason: str | None


@dataclass
class RequestOutput:
    prompt_token_ids: list[int]
    outputs: list[CompletionOutput]


@dataclass
class FakeLLM:
    """Records every call; answers deterministically; rejects prompts containing TOO_LONG."""

    model: str
    options: dict[str, Any]
    calls: list[tuple[str, Any, Any, dict[str, Any]]] = field(default_factory=list)

    def _answer(self, text: str, params: SamplingParams) -> RequestOutput:
        words = f"{text[:12]}|seed={params.seed}|t={params.temperature}".split()
        finish = "length" if params.max_tokens < 4 else "stop"
        return RequestOutput(list(range(len(text.split()))), [
            CompletionOutput(" ".join(words), list(range(len(words))), finish)])  # fmt: skip

    def _check(self, texts: list[str]) -> None:
        if any("TOO_LONG" in t for t in texts):
            raise ValueError("prompt is longer than max_model_len")

    def chat(self, messages: list[list[dict[str, str]]], sampling_params: Any, **kw: Any) -> Any:
        self.calls.append(("chat", messages, sampling_params, kw))
        texts = [conv[-1]["content"] for conv in messages]
        self._check(texts)
        return [self._answer(t, p) for t, p in zip(texts, sampling_params, strict=True)]

    def generate(self, prompts: list[str], sampling_params: Any, **kw: Any) -> Any:
        self.calls.append(("generate", prompts, sampling_params, kw))
        self._check(prompts)
        return [self._answer(t, p) for t, p in zip(prompts, sampling_params, strict=True)]


@pytest.fixture
def fake_vllm(monkeypatch: pytest.MonkeyPatch) -> list[FakeLLM]:
    engines: list[FakeLLM] = []

    def make_llm(model: str, **options: Any) -> FakeLLM:
        engines.append(FakeLLM(model, options))
        return engines[-1]

    module = types.ModuleType("vllm")
    module.LLM = make_llm  # type: ignore[attr-defined]
    module.SamplingParams = SamplingParams  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "vllm", module)
    return engines


def _chat(text: str, seed: int) -> ChatRequest:
    return ChatRequest.chat([{"role": "user", "content": text}], seed=seed, temperature=0.5)


def test_one_chat_call_and_one_generate_call_per_batch(fake_vllm: list[FakeLLM]) -> None:
    backend = VLLMBackend("org/model", tensor_parallel_size=2, max_model_len=4096)
    assert fake_vllm == []  # lazy: no engine before the first request
    requests = [_chat("first", 1), ChatRequest.completion("raw prompt", seed=7), _chat("second", 2)]
    results = backend.generate(requests)
    [engine] = fake_vllm
    assert engine.model == "org/model"
    assert engine.options == {"tensor_parallel_size": 2, "gpu_memory_utilization": 0.9,
                              "seed": 0, "max_model_len": 4096}  # fmt: skip
    assert [c[0] for c in engine.calls] == ["chat", "generate"]
    _, conversations, params, options = engine.calls[0]
    assert conversations == [[{"role": "user", "content": "first"}],
                             [{"role": "user", "content": "second"}]]  # fmt: skip
    assert [p.seed for p in params] == [1, 2] and options == {"use_tqdm": False}
    assert engine.calls[1][1] == ["raw prompt"] and engine.calls[1][2][0].seed == 7
    assert [r.text.split("|")[0] for r in results] == ["first", "raw prompt", "second"]
    assert results[1].usage.prompt_tokens == 2 and results[1].usage.completion_tokens == 2
    backend.generate([_chat("again", 3)])
    assert len(fake_vllm) == 1  # the engine is reused


def test_sampling_and_chat_template_are_passed_on(fake_vllm: list[FakeLLM], tmp_path: Path) -> None:
    template = tmp_path / "t.jinja"
    template.write_text("{% for m in messages %}{{ m.content }}{% endfor %}")
    backend = VLLMBackend("m", chat_template=str(template))
    request = ChatRequest.chat([{"role": "user", "content": "x"}], max_tokens=2, stop=("\n",),
                               top_p=0.9, temperature=0.0)  # fmt: skip
    [result] = backend.generate([request])
    _, _, [params], options = fake_vllm[0].calls[0]
    assert (params.max_tokens, params.stop, params.top_p, params.temperature) == (
        2,
        ["\n"],
        0.9,
        0.0,
    )
    assert options["chat_template"] == template.read_text()
    assert result.finish_reason == "length"
    with pytest.raises(ConfigError, match="neither a Jinja template nor an existing file"):
        VLLMBackend("m", chat_template="missing.jinja")


def test_a_rejected_prompt_fails_alone(fake_vllm: list[FakeLLM]) -> None:
    results = VLLMBackend("m").generate([_chat("ok", 1), _chat("TOO_LONG", 2), _chat("fine", 3)])
    assert [r.ok for r in results] == [True, False, True]
    assert results[1].error == "vllm_error: ValueError: prompt is longer than max_model_len"


def _use_in_child(backend: VLLMBackend, queue: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    try:
        backend.generate([_chat("x", 1)])
        queue.put("no error")
    except ConfigError as error:
        queue.put(str(error))


def test_forked_workers_get_a_clear_error(fake_vllm: list[FakeLLM]) -> None:
    backend = VLLMBackend("m")
    shipped = pickle.loads(pickle.dumps(backend))  # what datasets sends to num_proc workers
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_use_in_child, args=(shipped, queue))
    child.start()
    child.join(30)
    message = queue.get(timeout=5)
    assert "num_proc=1" in message and "vllm serve" in message
    assert shipped.generate([_chat("x", 1)])[0].ok  # the owning process is fine


def test_missing_vllm_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "vllm", None)
    with pytest.raises(MissingDependencyError, match=r"music-aug\[vllm\]"):
        VLLMBackend("m").generate([_chat("x", 1)])


def test_registry_builds_vllm_backends(fake_vllm: list[FakeLLM]) -> None:
    backend = create_backend("vllm", model="m", tensor_parallel_size=4)
    assert isinstance(backend, VLLMBackend) and backend.tensor_parallel_size == 4
    with pytest.raises(ConfigError, match="needs a model"):
        create_backend("vllm")


# --- the async engine (AsyncLLMEngine / V1 AsyncLLM) ---------------------------------------
@dataclass
class AsyncEngineArgs:
    model: str
    tensor_parallel_size: int = 1
    gpu_memory_utilization: float = 0.9
    seed: int = 0
    max_model_len: int | None = None
    max_num_seqs: int | None = None


class FakeTokenizer:
    def apply_chat_template(self, messages: list[dict[str, str]], **options: Any) -> str:
        assert options["tokenize"] is False and options["add_generation_prompt"] is True
        return "".join(f"<{m['role']}>{m['content']}" for m in messages) + "<assistant>"


@dataclass
class RequestOutputV1(RequestOutput):
    finished: bool = True


class FakeAsyncEngine:
    """Streams each request's output in two steps; finishes shorter prompts first."""

    def __init__(self, args: AsyncEngineArgs) -> None:
        self.args = args
        self.prompts: list[str] = []
        self.request_ids: list[str] = []
        self.active = 0
        self.peak = 0

    @classmethod
    def from_engine_args(cls, args: AsyncEngineArgs) -> FakeAsyncEngine:
        engine = cls(args)
        ASYNC_ENGINES.append(engine)
        return engine

    async def get_tokenizer(self) -> FakeTokenizer:
        return FakeTokenizer()

    async def generate(self, prompt: str, params: SamplingParams, request_id: str) -> Any:
        import asyncio

        if "TOO_LONG" in prompt:
            raise ValueError("prompt is longer than max_model_len")
        self.prompts.append(prompt)
        self.request_ids.append(request_id)
        self.active += 1
        self.peak = max(self.peak, self.active)
        try:
            text = f"{prompt[-20:]}|seed={params.seed}"
            yield RequestOutputV1([1, 2, 3], [CompletionOutput(text[:4], [1], None)], False)
            await asyncio.sleep(0.001 * (len(prompt) % 7))
            yield RequestOutputV1([1, 2, 3], [CompletionOutput(text, [1, 2], "stop")], True)
        finally:
            self.active -= 1


ASYNC_ENGINES: list[FakeAsyncEngine] = []


@pytest.fixture
def fake_async_vllm(fake_vllm: list[FakeLLM]) -> list[FakeAsyncEngine]:
    module = sys.modules["vllm"]
    module.AsyncEngineArgs = AsyncEngineArgs  # type: ignore[attr-defined]
    module.AsyncLLMEngine = FakeAsyncEngine  # type: ignore[attr-defined]
    ASYNC_ENGINES.clear()
    return ASYNC_ENGINES


def test_stream_uses_the_async_engine_with_chat_template(
    fake_async_vllm: list[FakeAsyncEngine],
) -> None:
    backend = VLLMBackend("org/model", max_num_seqs=32, max_model_len=2048)
    stream = backend.stream()
    assert stream.capacity == 32
    requests = [_chat(f"question {i}", i) for i in range(40)] + [
        ChatRequest.completion("raw prompt", seed=7),
        _chat("TOO_LONG", 1),
    ]
    stream.submit(list(enumerate(requests)))
    done: dict[int, Any] = {}
    while len(done) < len(requests):
        done.update(stream.wait())
    [engine] = fake_async_vllm
    assert engine.args == AsyncEngineArgs("org/model", 1, 0.9, 0, 2048, 32)
    assert done[0].text.endswith("<assistant>|seed=0") and done[0].finish_reason == "stop"
    assert done[0].usage.prompt_tokens == 3 and done[0].usage.completion_tokens == 2
    assert done[40].text == "raw prompt|seed=7"
    assert done[41].error == "vllm_error: ValueError: prompt is longer than max_model_len"
    assert engine.peak > 1 and len(set(engine.request_ids)) == len(engine.request_ids)
    backend.stream()  # the engine is built once
    assert len(fake_async_vllm) == 1
    backend.close()


def test_music_over_the_async_engine_matches_the_offline_engine(
    fake_async_vllm: list[FakeAsyncEngine], mt_bench_records: list[dict[str, Any]]
) -> None:
    from music_aug.augmenter import MusicAugmenter
    from music_aug.config import MusicConfig

    config = MusicConfig(max_turns=2, assistant_template=None)
    records = mt_bench_records[:4]
    streamed = MusicAugmenter(config, VLLMBackend("m")).augment_records(records)
    assert fake_async_vllm and fake_async_vllm[0].prompts  # the async engine did the work
    offline = MusicAugmenter(config, VLLMBackend("m", engine="offline")).augment_records(records)
    assert [r["music_metadata"]["status"] for r in streamed] == ["ok"] * 4
    # same requests either way; the stand-in engines answer chat differently, so compare
    # the shape: both produced one pair per row with the same contrast turns
    assert [r["music_metadata"]["contrast_turns"] for r in streamed] == [
        r["music_metadata"]["contrast_turns"] for r in offline
    ]
    with pytest.raises(ConfigError, match="engine must be one of"):
        VLLMBackend("m", engine="fast")


def test_async_engine_asked_for_but_missing_is_a_clear_error(fake_vllm: list[FakeLLM]) -> None:
    with pytest.raises(ConfigError, match="engine='offline'"):
        VLLMBackend("m", engine="async").stream()
    assert VLLMBackend("m").stream().capacity is None  # auto: LLM.chat batches
