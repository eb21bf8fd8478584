"""llama.cpp backend (llama-cpp-python) for GGUF text variants.

Loading takes ``n_threads``, ``n_gpu_layers`` and ``n_ctx`` from LoadOptions (the loader
fills them from the device profile and free memory). Chat requests are rendered with the
chat template stored in the GGUF (``tokenizer.chat_template``) through llama-cpp-python's
Jinja2 formatter, so the template a model was trained with is the one used.

Generation drives ``Llama.generate`` token by token rather than ``create_completion``:
each token becomes a chunk the moment it is sampled, usage counts are exact (the stream
of ``create_completion`` carries none), stop strings are held back only while they could
still match, and detokenising stays linear in the output length. Sampling parameters are
the same as ``create_completion``'s defaults, so results match llama-cpp-python's own.

Structured output: a request's ``grammar`` (GBNF from runtime.structured) is checked by
llama.cpp's own parser before generation (a grammar it refuses is InvalidInput, never a
crash) and then constrains every sampled token; beside it, runtime.backends.utf8_filter
lets only valid UTF-8 be sampled (llama.cpp's grammar reads bytes leniently). Tools go to
the chat template when it uses them; otherwise a system message carries the instructions
and tool turns are rendered as plain text.

Embedding mode (package task "embedding", ``LoadOptions.task``): the GGUF is opened with
``embedding=True`` and a batch as large as the context; ``infer`` embeds a batch of texts
with the pooling the GGUF declares, or, when it declares none (llama.cpp would return one
vector per token), with llama.cpp's own mean pooling; then L2-normalises
(runtime.backends.embedding).

llama_cpp is imported in ``load`` only: without it the backend raises BackendUnavailable.
"""

from __future__ import annotations

import codecs
import json
import logging
import os
import secrets
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from runtime.backends import embedding as emb
from runtime.backends.base import (
    BackendInfo,
    GenerationChunk,
    GenerationRequest,
    IOSchema,
    LoadOptions,
)
from runtime.backends.utf8_filter import Utf8Table, llama_token_pieces
from runtime.catalog import TensorSpec, Variant
from runtime.config import EmbeddingSettings
from runtime.errors import BackendLoadError, BackendUnavailable, InvalidInput

if TYPE_CHECKING:
    from runtime.catalog import VariantMeta
    from runtime.hardware.report import HardwareReport
    from runtime.profiles import Target

log = logging.getLogger(__name__)


def device_problem(target: Target, variant: VariantMeta, report: HardwareReport) -> str | None:
    """Why llama.cpp cannot run ``target`` here, or None: a GPU target needs a build with
    GPU offload (the probe lists "gpu" then). Pure."""
    info = report.runtime("llama_cpp")
    if target.device.split(".")[0] == "gpu" and "gpu" not in (info.devices if info else ()):
        return "llama.cpp was built without GPU offload"
    return None


# Used only when a GGUF carries no chat template of its own (rare in real files).
FALLBACK_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
# create_completion's defaults for the knobs the OpenAI API does not expose.
_SAMPLING = {"top_k": 40, "min_p": 0.05, "typical_p": 1.0, "repeat_penalty": 1.0}

TEXT_SCHEMA = IOSchema(
    inputs=(TensorSpec(name="text", datatype="BYTES", shape=(-1,)),),
    outputs=(TensorSpec(name="text", datatype="BYTES", shape=(-1,)),),
)


class LlamaBackend:
    """A GGUF model loaded in llama.cpp. One request at a time (``thread_safe`` False)."""

    name = "llama"
    thread_safe = False

    def __init__(self) -> None:
        self._llm: Any = None
        self._formatter: Any = None
        self._is_eog: Any = None
        self._embedding = False
        self._limits = EmbeddingSettings()
        self._template_tools = False
        self._grammars: dict[str, Any] = {}
        self._utf8: Utf8Table | None = None  # built at the first grammar request
        self._llama_cpp: Any = None
        self._grammar_cls: Any = None
        self._info = BackendInfo(backend=self.name, device="cpu")

    # -- lifecycle -----------------------------------------------------------------

    def load(self, variant: Variant, options: LoadOptions) -> None:
        try:
            import llama_cpp
            from llama_cpp import llama_chat_format
            from llama_cpp.llama_grammar import LlamaGrammar
        except ImportError as e:
            raise BackendUnavailable(
                f"llama-cpp-python is not installed (pip install 'headframe[llm]'): {e}"
            ) from e
        path = variant.entrypoint
        if not path.is_file():
            raise BackendLoadError(f"{path}: GGUF file not found")
        gpu_layers = _gpu_layers(options, llama_cpp.llama_supports_gpu_offload())
        threads = options.intra_op_threads or _default_threads()
        batch_threads = options.inter_op_threads or threads
        _check_magic(path)
        embedding = options.task == "embedding"
        n_ctx = _round_ctx(options.context_tokens)
        # An embedding reads the whole text in one batch: let a batch hold the context.
        extra: dict[str, Any] = {"n_batch": n_ctx, "n_ubatch": n_ctx} if embedding and n_ctx else {}

        def open_llama(**more: Any) -> Any:
            try:
                return llama_cpp.Llama(
                    model_path=str(path),
                    n_ctx=n_ctx,
                    n_threads=threads,
                    n_threads_batch=batch_threads,
                    n_gpu_layers=gpu_layers,
                    embedding=embedding,
                    verbose=False,
                    **extra,
                    **more,
                )
            except (ValueError, RuntimeError, OSError) as e:
                raise BackendLoadError(f"{path}: llama.cpp could not load it: {e}") from e

        llm = open_llama()
        pooling = "gguf"
        if embedding and llm.pooling_type() == llama_cpp.LLAMA_POOLING_TYPE_NONE:
            # The GGUF declares no pooling: ask llama.cpp to mean-pool each sequence itself.
            # llama-cpp-python's own per-token path (embed() with pooling NONE) reads every
            # sequence after the first in a batch from the wrong offset.
            llm.close()
            llm = open_llama(pooling_type=llama_cpp.LLAMA_POOLING_TYPE_MEAN)
            pooling = "mean"
        template = llm.metadata.get("tokenizer.chat_template")
        if not template:
            log.warning("%s has no chat template; using ChatML", path)
        self._formatter = llama_chat_format.Jinja2ChatFormatter(
            template=template or FALLBACK_CHAT_TEMPLATE,
            eos_token=_token_text(llm, llm.token_eos()),
            bos_token=_token_text(llm, llm.token_bos()),
        )
        vocab = llm._model.vocab
        self._is_eog = lambda token: bool(llama_cpp.llama_vocab_is_eog(vocab, token))
        self._template_tools = bool(template) and "tools" in str(template)
        self._embedding = embedding
        self._limits = options.embedding
        self._llama_cpp = llama_cpp
        self._grammar_cls = LlamaGrammar
        self._utf8 = None
        self._llm = llm
        self._info = BackendInfo(
            backend=self.name,
            device="gpu" if gpu_layers != 0 else "cpu",
            detail={
                "n_threads": str(threads),
                "n_gpu_layers": str(gpu_layers),
                "n_ctx": str(llm.n_ctx()),
                "chat_template": "gguf" if template else "fallback-chatml",
                "mode": "embedding" if embedding else "generate",
                **({"pooling": pooling} if embedding else {}),
                "llama_cpp_python": getattr(llama_cpp, "__version__", "unknown"),
            },
        )
        log.info(
            "llama loaded %s (n_ctx=%d, threads=%d, gpu_layers=%d)",
            path,
            llm.n_ctx(),
            threads,
            gpu_layers,
        )

    def unload(self) -> None:
        llm, self._llm = self._llm, None
        if llm is not None:
            llm.close()

    def describe(self) -> IOSchema:
        """Text in, text out: one BYTES prompt per row for the tensor protocols (text in,
        vectors out in embedding mode)."""
        return emb.EMBEDDING_SCHEMA if self._embedding else TEXT_SCHEMA

    def info(self) -> BackendInfo:
        return self._info

    # -- inference -----------------------------------------------------------------

    def infer(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """KServe-style text: each row of ``text`` is a prompt completed with defaults (in
        embedding mode: each row is embedded)."""
        if self._embedding:
            return self.embed(emb.texts_of(inputs, self._limits))
        prompts = np.asarray(inputs["text"]).reshape(-1)
        out = []
        for p in prompts:
            prompt = p.decode("utf-8", "replace") if isinstance(p, bytes) else str(p)
            pieces = self.generate(GenerationRequest(prompt=prompt))
            out.append("".join(c.text for c in pieces).encode("utf-8"))
        return {"text": np.array(out, dtype=object)}

    def generate(self, request: GenerationRequest) -> Iterator[GenerationChunk]:
        """Yield a chunk per sampled token (less any text held back for a stop string);
        the last chunk carries ``finish_reason`` and the final usage counts."""
        llm = self._require()
        if self._embedding:
            raise InvalidInput("this is an embedding model: it does not generate text")
        grammar = self._grammar(request.grammar) if request.grammar else None
        tokens, template_stops = self._prompt_tokens(request)
        n_prompt = len(tokens)
        # llama-cpp-python sizes its token buffer from the n_ctx it was given, llama.cpp
        # may round the context up: the smaller of the two is what really fits.
        n_ctx = min(int(llm.n_ctx()), len(llm.input_ids))
        if n_prompt >= n_ctx:
            raise InvalidInput(
                f"the prompt is {n_prompt} tokens but the model's context holds {n_ctx}"
            )
        max_tokens = min(request.max_tokens, n_ctx - n_prompt)
        stops = tuple(s for s in (*request.stop, *template_stops) if s)
        llm.set_seed(request.seed if request.seed is not None else secrets.randbits(32))
        is_eog = self._is_eog
        decoder = codecs.getincrementaldecoder("utf-8")("replace")
        pending = ""  # decoded text not yet sent: it may be the start of a stop string
        produced = 0
        finish = "length"
        # Under a grammar only valid UTF-8 may be sampled (runtime.backends.utf8_filter).
        utf8 = self._utf8_table().new_filter() if grammar is not None else None
        for token in llm.generate(
            tokens, temp=request.temperature, top_p=request.top_p, grammar=grammar,
            logits_processor=[utf8] if utf8 is not None else None, **_SAMPLING,
        ):  # fmt: skip
            if utf8 is not None:
                utf8.accept(token)
            if is_eog(token):
                finish = "stop"
                break
            produced += 1
            pending += decoder.decode(llm.detokenize([token]))
            send, pending, hit = _split_at_stop(pending, stops)
            if hit:  # the stop string and anything after it are dropped
                yield GenerationChunk(send, "stop", n_prompt, produced)
                return
            if produced >= max_tokens:
                pending = send + pending
                break
            if send:
                yield GenerationChunk(send, None, n_prompt, produced)
        # Text held back for a stop string that never completed is real output.
        pending += decoder.decode(b"", final=True)
        yield GenerationChunk(pending, finish, n_prompt, produced)  # type: ignore[arg-type]

    def embed(self, texts: list[str]) -> dict[str, np.ndarray]:
        """One normalised vector and the token count per text. Within the request's token
        budget ([embeddings]); llama.cpp itself runs the texts in batches of at most its
        n_batch tokens (the context), so memory stays that of one such batch."""
        llm = self._require()
        n_ctx = min(int(llm.n_ctx()), int(llm.n_batch))
        budget = emb.TokenBudget(self._limits, n_ctx)
        counts = []
        for i, text in enumerate(texts):
            n = len(llm.tokenize(text.encode("utf-8")))
            budget.take(i, n)
            counts.append(n)
        if not texts:
            return emb.result(np.zeros((0, llm.n_embd()), np.float32), [])
        # Pooled by llama.cpp (the GGUF's pooling, or mean: see load), one vector per text.
        vectors = np.asarray(llm.embed(texts, normalize=False, truncate=False), np.float32)
        return emb.result(vectors, counts)

    # -- helpers ---------------------------------------------------------------------

    def _grammar(self, text: str) -> Any:
        """A LlamaGrammar for ``text``, checked once by llama.cpp's parser: LlamaGrammar
        itself does not parse, and the sampler would be built from a NULL grammar."""
        grammar = self._grammars.get(text)
        if grammar is None:
            lc = self._llama_cpp
            vocab = self._llm._model.vocab
            sampler = lc.llama_sampler_init_grammar(vocab, text.encode("utf-8"), b"root")
            if not sampler:
                raise InvalidInput("response_format: llama.cpp could not parse the grammar")
            lc.llama_sampler_free(sampler)
            grammar = self._grammar_cls.from_string(text, verbose=False)
            if len(self._grammars) >= 64:  # bounded: the oldest grammar goes
                self._grammars.pop(next(iter(self._grammars)))
            self._grammars[text] = grammar
        return grammar

    def _utf8_table(self) -> Utf8Table:
        if self._utf8 is None:
            llm = self._require()
            vocab = llm._model.vocab
            pieces, refused = llama_token_pieces(self._llama_cpp, vocab, int(llm.n_vocab()))
            self._utf8 = Utf8Table(pieces, refused)
        return self._utf8

    def _messages(self, request: GenerationRequest) -> tuple[list[dict[str, Any]], Any]:
        """Messages (and tools) as this model's template takes them."""
        messages = [dict(m) for m in request.messages or ()]
        if self._template_tools:
            return messages, list(request.tools) if request.tools else None
        out = []
        for m in messages:
            if m.get("tool_calls"):  # the call as the model was told to write it
                calls = [c["function"] for c in m.pop("tool_calls")]
                m["content"] = (m.get("content") or "") + "".join(
                    json.dumps(c, ensure_ascii=False) for c in calls
                )
            if m["role"] == "tool":
                m = {"role": "user", "content": f"Function result: {m.get('content') or ''}"}
            m.pop("tool_call_id", None)
            out.append(m)
        if request.tool_instructions:
            if out and out[0]["role"] == "system":
                out[0]["content"] = f"{out[0]['content']}\n\n{request.tool_instructions}"
            else:
                out.insert(0, {"role": "system", "content": request.tool_instructions})
        return out, None

    def next_token_ids(self, tokens: Sequence[int]) -> np.ndarray:
        """The greedy next token after each prefix of ``tokens`` but the last, fed one
        token at a time (teacher forcing): what a text package's ``token_agreement``
        compares with the golden set's ``ref_next`` (runtime/catalog/quality.py). One
        token per decode, as ``models build`` measures, so the figures match."""
        import llama_cpp

        llm = self._require()
        tokens = list(tokens)[: llm.n_ctx()]
        n_vocab = llm.n_vocab()
        ids = np.empty(max(len(tokens) - 1, 0), dtype=np.int32)
        llm.reset()
        try:
            for i, token in enumerate(tokens[:-1]):
                llm.eval([int(token)])
                logits = llama_cpp.llama_get_logits_ith(llm.ctx, -1)
                ids[i] = int(np.argmax(np.ctypeslib.as_array(logits, shape=(n_vocab,))))
        finally:
            llm.reset()
        return ids

    def _require(self) -> Any:
        if self._llm is None:
            raise BackendLoadError("the llama backend has no model loaded")
        return self._llm

    def _prompt_tokens(self, request: GenerationRequest) -> tuple[list[int], Sequence[str]]:
        llm = self._llm
        if request.messages is not None:
            messages, tools = self._messages(request)
            try:
                result = self._formatter(messages=messages, tools=tools)
            except Exception as e:  # a template may raise_exception() on bad roles
                raise InvalidInput(f"the model's chat template rejected the messages: {e}") from e
            tokens = llm.tokenize(
                result.prompt.encode("utf-8"), add_bos=not result.added_special, special=True
            )
            stop = result.stop or []
            return list(tokens), [stop] if isinstance(stop, str) else list(stop)
        prompt = request.prompt or ""
        tokens = llm.tokenize(prompt.encode("utf-8"), add_bos=True, special=True)
        if not tokens:  # a model without BOS and an empty prompt: start from BOS anyway
            tokens = [llm.token_bos()]
        return list(tokens), []


def _split_at_stop(text: str, stops: Sequence[str]) -> tuple[str, str, bool]:
    """Split ``text`` into (safe to send, held back, stop string found).

    When a stop string occurs, everything before its earliest occurrence is sent and the
    rest dropped. Otherwise the longest tail that could still grow into a stop string is
    held back, so no part of a stop string ever reaches the client.
    """
    if not stops:
        return text, "", False
    first = min((i for s in stops if (i := text.find(s)) >= 0), default=-1)
    if first >= 0:
        return text[:first], "", True
    hold = 0
    for s in stops:
        for n in range(min(len(s) - 1, len(text)), hold, -1):
            if text.endswith(s[:n]):
                hold = n
                break
    return text[: len(text) - hold], text[len(text) - hold :], False


def _token_text(llm: Any, token: int) -> str:
    if token < 0:
        return ""
    return str(llm._model.token_get_text(token))


def _gpu_layers(options: LoadOptions, gpu_offload: bool) -> int:
    """Layers to offload: none on CPU; on a GPU what the loader decided from free memory
    (-1 all, 0 none when the model does not fit, so llama.cpp computes on the CPU)."""
    device = options.device.lower()
    if device == "cpu":
        return 0
    if device.startswith("gpu") or device == "cuda":
        if options.gpu_layers != 0 and not gpu_offload:
            raise BackendUnavailable("this llama-cpp-python build has no GPU offload")
        return options.gpu_layers
    if device == "auto":
        return options.gpu_layers if gpu_offload else 0
    raise BackendUnavailable(f"llama.cpp cannot run on device {options.device!r}")


def _round_ctx(tokens: int) -> int:
    """llama.cpp pads the context to a multiple of 256; ask for that (0: the model's own)."""
    return 0 if tokens <= 0 else -(-tokens // 256) * 256


def _default_threads() -> int:
    # llama.cpp's own default; physical cores are what matters for matmul throughput.
    return max(1, (os.cpu_count() or 2) // 2)


def _check_magic(path: Path) -> None:
    """Fail with a clear message before llama.cpp prints its own to stderr."""
    try:
        with path.open("rb") as f:
            magic = f.read(4)
    except OSError as e:
        raise BackendLoadError(f"{path}: cannot read: {e}") from e
    if magic != b"GGUF":
        raise BackendLoadError(f"{path}: not a GGUF file (starts with {magic!r}, not b'GGUF')")
