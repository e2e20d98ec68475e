"""The scoring tool as its own service: `POST /score`, `GET /info`, `GET /healthz`, docs at /docs."""

from __future__ import annotations

import json

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from assistant.scoring.applicant import ApplicantError, ScorecardInfo
from assistant.scoring.decision import EligibilityDecision, Scorer

INVALID = {"description": "invalid applicant: one entry per bad field",
           "content": {"application/json": {"example": {"error": "invalid applicant", "fields": [
               {"field": "age", "message": "Input should be less than or equal to 120"}]}}}}


def create_app(scorer: Scorer) -> FastAPI:
    app = FastAPI(title="Meadow scoring service", version=scorer.model.version,
                  description="Eligibility scorecard: score, decision, reason codes, indicative offer.")
    body_schema = scorer.Applicant.model_json_schema()

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok", "model_version": scorer.model.version}

    @app.get("/info", response_model=ScorecardInfo)
    def info() -> ScorecardInfo:
        return scorer.info

    @app.post("/score", response_model=EligibilityDecision, responses={422: INVALID},
              openapi_extra={"requestBody": {"required": True,
                                             "content": {"application/json": {"schema": body_schema}}}})
    async def score(request: Request):
        # The body is validated by the same code as in-process, so both give the same errors.
        try:
            raw = json.loads(await request.body() or b"null")
        except ValueError:
            return JSONResponse({"error": "invalid JSON", "fields": []}, status_code=400)
        if not isinstance(raw, dict):
            return JSONResponse({"error": "invalid applicant",
                                 "fields": [{"field": "applicant", "message": "send a JSON object"}]},
                                status_code=422)
        try:
            return scorer.score(raw, trace_id=request.headers.get("x-trace-id"))
        except ApplicantError as exc:
            return JSONResponse(exc.to_dict(), status_code=422)

    return app
