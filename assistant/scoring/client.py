"""One client interface for the scoring tool: in-process (default) or over HTTP when
`ASSISTANT_SCORING_URL` is set. Both return the same EligibilityDecision for the same input."""

from __future__ import annotations

from typing import Any, Mapping, Protocol

import httpx
from pydantic import BaseModel

from assistant.config import Settings
from assistant.scoring.applicant import ApplicantError, FieldError, ScorecardInfo
from assistant.scoring.decision import EligibilityDecision, Scorer
from assistant.scoring.model import ScorecardModel
from assistant.knowledge.terms import load_terms


class ScoringUnavailable(RuntimeError):
    """The scoring service could not be reached or failed (not the applicant's fault)."""


class ScoringClient(Protocol):
    def info(self) -> ScorecardInfo:
        """The scorecard's version and applicant fields (for forms and tool schemas)."""
        ...

    def score(self, applicant: Mapping[str, Any] | BaseModel, trace_id: str | None = None) -> EligibilityDecision:
        """Validate and score; raises ApplicantError listing each bad field."""
        ...


def build_scorer(settings: Settings) -> Scorer:
    return Scorer(ScorecardModel.load(settings.scorecard_dir), load_terms(settings.terms_file),
                  default_product=settings.eligibility_product)


class InProcessScoringClient:
    def __init__(self, scorer: Scorer):
        self.scorer = scorer

    @classmethod
    def from_settings(cls, settings: Settings) -> "InProcessScoringClient":
        return cls(build_scorer(settings))

    def info(self) -> ScorecardInfo:
        return self.scorer.info

    def score(self, applicant: Mapping[str, Any] | BaseModel, trace_id: str | None = None) -> EligibilityDecision:
        return self.scorer.score(applicant, trace_id=trace_id)


class HttpScoringClient:
    """Talks to `assistant scoring serve`. `http` may be any httpx.Client (tests pass the app's)."""

    def __init__(self, base_url: str, timeout_s: float = 5.0, http: httpx.Client | None = None):
        self.http = http or httpx.Client(base_url=base_url.rstrip("/"), timeout=timeout_s)
        self._info: ScorecardInfo | None = None  # read-only schema, fetched once

    def info(self) -> ScorecardInfo:
        if self._info is None:
            self._info = ScorecardInfo.model_validate(self._request("GET", "/info"))
        return self._info

    def score(self, applicant: Mapping[str, Any] | BaseModel, trace_id: str | None = None) -> EligibilityDecision:
        body = applicant.model_dump() if isinstance(applicant, BaseModel) else dict(applicant)
        headers = {"x-trace-id": trace_id} if trace_id else {}
        return EligibilityDecision.model_validate(self._request("POST", "/score", json=body, headers=headers))

    def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise ScoringUnavailable(f"scoring service unreachable: {exc}") from exc
        if response.status_code == 422:
            fields = response.json().get("fields", [])
            raise ApplicantError([FieldError.model_validate(f) for f in fields])
        if response.status_code >= 400:
            raise ScoringUnavailable(f"scoring service answered {response.status_code}: {response.text[:200]}")
        return response.json()


def make_scoring_client(settings: Settings) -> ScoringClient:
    if settings.scoring_url:
        return HttpScoringClient(settings.scoring_url, timeout_s=settings.scoring_timeout_s)
    return InProcessScoringClient.from_settings(settings)

