"""Simulated customers: multi-turn conversations from evals/scenarios/*.yaml, with assertions
on every turn (path, tool and arguments, ticket, figures present, no figure invented, ...).

A scenario file:

    id: cash-apr-follow-up
    skill: answer                 # the skill it exercises (report groups by it)
    ci: true                      # part of the fast slice
    turns:
      - user: what is the apr of meadow cash?
        expect:
          path: [faq, generated, extractive]
          figures: ["9.9%", "23.9%"]
          no_invented_figures: true
      - user: and early repayment?
        expect: {path: [faq, generated, extractive], contains_any: ["0%", "free"]}
    expect_somewhere:             # must hold on at least one turn
      tool: check_eligibility

Assertions: path, not_path, intent, tool (name or {name, arguments}), no_tool, ticket (true,
false or {field: value}), figures, no_invented_figures, contains, contains_any, not_contains,
cites_any, flags_any (flags or route urgency), state.

`state` checks the conversation after the turn: each key is a dotted path into
`conversation.state` (one key per level: "eligibility.active", "dialogue.topic.product",
"complaint.tickets"), and `tickets_opened` is the number of distinct tickets the assistant's
replies created in this conversation so far (a status answer about an earlier ticket creates none):

      - user: actually forget it, i dont want to borrow anymore
        expect:
          state: {"eligibility.active": false, "dialogue.topic.product": "flex", "tickets_opened": 0}

A value is compared as the other assertions do (numbers numerically, strings ignoring case);
`false` also holds when the path is missing (no form is an inactive form), `null` holds only when
it is missing or null, a list holds when the value is one of its items, and `{len: N}` checks a
list's length. Only the embedded target exposes its conversation: against an --endpoint a state
assertion fails with "state unknown".
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import yaml

from evals import metrics as m
from evals.results import SuiteResult
from evals.suites.base import SuiteOptions, SuiteUnavailable, progress
from evals.system import System, TargetReply

NAME = "scenarios"
DEFAULT_DIR = Path(__file__).resolve().parent.parent / "scenarios"

DEFINITIONS = {
    "scenario_pass_rate": "Scenarios in which every assertion of every turn held.",
    "turn_pass_rate": "Turns in which every assertion held.",
    "assertion_pass_rate": "Single assertions that held, over all turns (and expect_somewhere assertions).",
    "invented_figure_turns": "Turns asserting no_invented_figures whose reply had a figure found in no cited "
                             "passage, tool result or fixed reply.",
}


def load_scenarios(source: Path) -> list[dict[str, Any]]:
    files = sorted(source.glob("*.yaml")) if source.is_dir() else [source]
    if not files:
        raise SuiteUnavailable(f"no scenario files in {source}")
    scenarios = []
    for path in files:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        for scenario in data if isinstance(data, list) else [data]:
            problems = validate(scenario)
            if problems:
                raise SuiteUnavailable(f"{path.name}: " + "; ".join(problems))
            scenario.setdefault("file", path.name)
            scenarios.append(scenario)
    return scenarios


def validate(scenario: Any) -> list[str]:
    if not isinstance(scenario, dict):
        return ["a scenario is a mapping"]
    problems = [f"missing {key}" for key in ("id", "skill", "turns") if key not in scenario]
    for i, turn in enumerate(scenario.get("turns") or [], 1):
        if "user" not in turn:
            problems.append(f"turn {i}: missing user")
        unknown = set(turn.get("expect") or {}) - set(ASSERTIONS)
        if unknown:
            problems.append(f"turn {i}: unknown assertions {sorted(unknown)}")
    unknown = set(scenario.get("expect_somewhere") or {}) - set(ASSERTIONS)
    if unknown:
        problems.append(f"expect_somewhere: unknown assertions {sorted(unknown)}")
    return problems


def run(system: System, options: SuiteOptions) -> SuiteResult:
    source = Path(options.data) if options.data else DEFAULT_DIR
    if not source.exists():
        raise SuiteUnavailable(f"{source} not found")
    scenarios = load_scenarios(source)
    if options.ci:
        scenarios = [s for s in scenarios if s.get("ci")]
    if options.limit:
        scenarios = scenarios[: options.limit]
    rows = [play(system, s) for s in progress(scenarios, "scenarios", len(scenarios), options.progress)]
    result = SuiteResult(suite=NAME, rows=rows, definitions=dict(DEFINITIONS))
    turns = [t for r in rows for t in r["turns"]]
    checks = [ok for t in turns for ok in t["checks"].values()] + [ok for r in rows for ok in r["somewhere"].values()]
    figure_turns = [t for t in turns if "no_invented_figures" in t["checks"]]
    result.metrics = {
        "scenario_pass_rate": m.rate(r["passed"] for r in rows),
        "turn_pass_rate": m.rate(t["passed"] for t in turns),
        "assertion_pass_rate": m.rate(checks),
        "invented_figure_turns": m.rate(not t["checks"]["no_invented_figures"] for t in figure_turns),
        "n": float(len(rows)),
    }
    skills: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        skills.setdefault(r["category"], []).append(r)
    result.by_category = {s: {"n": float(len(rs)), "pass_rate": m.rate(r["passed"] for r in rs)}
                          for s, rs in sorted(skills.items())}
    result.plots = {"pass_by_skill": {s: v["pass_rate"] for s, v in result.by_category.items()},
                    "latency_by_path": _latency_by_path(turns)}
    return result


TERMS_MARK = "# terms.yaml\n"


def play(system: System, scenario: dict[str, Any]) -> dict[str, Any]:
    fixed = [*system.fixed_texts, TERMS_MARK + system.terms_text]
    session = system.session()
    turns: list[dict[str, Any]] = []
    replies: list[TargetReply] = []
    somewhere: dict[str, bool] = {}
    opened: list[str] = []
    for turn in scenario["turns"]:
        reply = session.send(str(turn["user"]))
        _observe_state(session, reply, opened)
        replies.append(reply)
        checks, why = check_turn(turn.get("expect") or {}, reply, fixed)
        turns.append({"user": str(turn["user"]), "answer": reply.text, "path": reply.path,
                      "citations": reply.cited_doc_ids, "tools": [t.get("name") for t in reply.tool_calls],
                      "ticket": bool(reply.ticket), "latency_ms": reply.latency_ms,
                      "checks": checks, "passed": all(checks.values()), "why": "; ".join(why)})
    failed = [f"turn {i}: {t['why']}" for i, t in enumerate(turns, 1) if not t["passed"]]
    # Assertions that must hold on some turn (a form's tool call comes when its last field is in,
    # whichever order it asks in).
    for name, wanted in (scenario.get("expect_somewhere") or {}).items():
        held = [ASSERTIONS[name](wanted, reply, fixed) for reply in replies]
        ok = any(h for h, _ in held)
        somewhere[name] = ok
        if not ok:
            failed.append(f"on no turn: {held[-1][1] if held else name}")
    last_bad = next((t for t in turns if not t["passed"]), turns[-1] if turns else {})
    return {
        "id": scenario["id"], "category": scenario["skill"], "title": scenario.get("title", ""),
        "file": scenario.get("file"), "turns": turns, "somewhere": somewhere, "passed": not failed,
        "why": " | ".join(failed),
        # for the failures table: the turn that failed first
        "question": last_bad.get("user", ""), "answer": last_bad.get("answer", ""),
        "citations": last_bad.get("citations", []), "path": last_bad.get("path"),
    }


def check_turn(expect: dict[str, Any], reply: TargetReply, fixed_texts: list[str]) -> tuple[dict[str, bool], list[str]]:
    checks: dict[str, bool] = {}
    why: list[str] = []
    for name, wanted in expect.items():
        ok, reason = ASSERTIONS[name](wanted, reply, fixed_texts)
        checks[name] = ok
        if not ok:
            why.append(reason)
    if reply.error:
        why.append(f"error: {reply.error}")
        checks["no_error"] = False
    return checks, why


# --- assertions: (wanted, reply, fixed texts) -> (held, why not) ---------------------------------

Assertion = Callable[[Any, TargetReply, list[str]], "tuple[bool, str]"]


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, (list, tuple, set)) else [value]


def _path(wanted: Any, reply: TargetReply, _fixed: list[str]) -> tuple[bool, str]:
    options = _as_list(wanted)
    return reply.path in options, f"path {reply.path}, expected {'/'.join(map(str, options))}"


def _not_path(wanted: Any, reply: TargetReply, _fixed: list[str]) -> tuple[bool, str]:
    return reply.path not in _as_list(wanted), f"path {reply.path} is not allowed here"


def _intent(wanted: Any, reply: TargetReply, _fixed: list[str]) -> tuple[bool, str]:
    options = _as_list(wanted)
    return reply.intent in options, f"intent {reply.intent}, expected {'/'.join(map(str, options))}"


def _same(expected: Any, actual: Any) -> bool:
    if isinstance(expected, (int, float)) and not isinstance(expected, bool):
        try:
            return abs(float(actual) - float(expected)) < 1e-6
        except (TypeError, ValueError):
            return False
    if isinstance(expected, str) and isinstance(actual, str):
        return expected.lower() == actual.lower()
    return expected == actual


def _tool(wanted: Any, reply: TargetReply, _fixed: list[str]) -> tuple[bool, str]:
    """`tool: check_eligibility` or `tool: {name: loan_calculator, arguments: {amount: 10000}}`:
    a call of that tool whose arguments include the given ones."""
    spec = {"name": wanted} if isinstance(wanted, str) else dict(wanted)
    called = [t.get("name") for t in reply.tool_calls]
    for call in reply.tool_calls:
        if call.get("name") != spec["name"]:
            continue
        args = call.get("arguments") or {}
        if all(_same(v, args.get(k)) for k, v in (spec.get("arguments") or {}).items()):
            return True, ""
        return False, f"{spec['name']} called with {json.dumps(args, default=str)}, expected {spec.get('arguments')}"
    return False, f"tool {spec['name']} not called (called: {called or 'none'})"


def _no_tool(wanted: Any, reply: TargetReply, _fixed: list[str]) -> tuple[bool, str]:
    called = [t.get("name") for t in reply.tool_calls]
    return (not called) == bool(wanted), f"tools called: {called}"


def _ticket(wanted: Any, reply: TargetReply, _fixed: list[str]) -> tuple[bool, str]:
    if wanted is False:
        return not reply.ticket, "a ticket was created"
    if not reply.ticket:
        return False, "no ticket created"
    if isinstance(wanted, dict):
        wrong = {k: reply.ticket.get(k) for k, v in wanted.items() if not _same(v, reply.ticket.get(k))}
        return not wrong, f"ticket fields differ: {wrong}"
    return True, ""


def _figures(wanted: Any, reply: TargetReply, _fixed: list[str]) -> tuple[bool, str]:
    present = m.extract_figures(reply.text)
    missing = [f for f in _as_list(wanted) if not m.extract_figures(str(f)) <= present]
    return not missing, f"figures missing: {missing}"


CONTENT_PATHS = {"faq", "generated", "extractive"}  # answers from the documents: only citations back them


def _no_invented(wanted: Any, reply: TargetReply, fixed: list[str]) -> tuple[bool, str]:
    if not wanted:
        return True, ""
    sources = list(reply.cited_texts or []) + list(reply.retrieved_texts if reply.cited_texts is None else [])
    structured = [json.dumps(t.get("result"), default=str) for t in reply.tool_calls if t.get("result")]
    terms = [f for f in fixed if f.startswith(TERMS_MARK)]
    fixed = [f for f in fixed if not f.startswith(TERMS_MARK)]
    if reply.path not in CONTENT_PATHS:  # forms, tickets and hand-offs quote terms.yaml
        structured += terms
    structured += [json.dumps(t.get("arguments"), default=str) for t in reply.tool_calls]
    if reply.ticket:
        structured.append(json.dumps(reply.ticket, default=str))
    invented = m.invented_figures(reply.text, sources, fixed, structured)
    return not invented, f"invented figures: {invented}"


def _contains(wanted: Any, reply: TargetReply, _fixed: list[str]) -> tuple[bool, str]:
    missing = [w for w in _as_list(wanted) if not m.fact_present(str(w), reply.text)]
    return not missing, f"missing text: {missing}"


def _contains_any(wanted: Any, reply: TargetReply, _fixed: list[str]) -> tuple[bool, str]:
    options = _as_list(wanted)
    return any(m.fact_present(str(w), reply.text) for w in options), f"none of {options} in the reply"


def _not_contains(wanted: Any, reply: TargetReply, _fixed: list[str]) -> tuple[bool, str]:
    found = m.forbidden_found(reply.text, [str(w) for w in _as_list(wanted)])
    return not found, f"said {found}"


def _cites_any(wanted: Any, reply: TargetReply, _fixed: list[str]) -> tuple[bool, str]:
    options = set(_as_list(wanted))
    return bool(options & set(reply.cited_doc_ids)), f"cited {reply.cited_doc_ids}, expected one of {sorted(options)}"


def _flags_any(wanted: Any, reply: TargetReply, _fixed: list[str]) -> tuple[bool, str]:
    options = set(_as_list(wanted))
    have = set(reply.flags) | set(reply.urgency)
    return bool(options & have), f"flags {sorted(have)}, expected one of {sorted(options)}"


# --- state: the conversation after the turn --------------------------------------------------------

TICKETS_OPENED = "tickets_opened"
_MISSING = object()


def _observe_state(session: Any, reply: TargetReply, opened: list[str]) -> None:
    """Attach to the reply what a `state` assertion reads: a copy of conversation.state after this
    turn (None when the target does not expose it) and the count of tickets created so far."""
    ticket_id = (reply.ticket or {}).get("id") or (reply.ticket or {}).get("reference")
    if reply.ticket and ticket_id not in opened:
        opened.append(str(ticket_id or len(opened)))
    conversation = getattr(session, "conversation", None)
    state = getattr(conversation, "state", None)
    reply.observed_state = json.loads(json.dumps(state, default=str)) if isinstance(state, dict) else None  # type: ignore[attr-defined]
    reply.tickets_opened = len(opened)  # type: ignore[attr-defined]


def state_at(state: dict[str, Any], dotted: str) -> Any:
    """The value at "a.b.c" in nested dicts, or _MISSING."""
    value: Any = state
    for key in dotted.split("."):
        if not isinstance(value, dict) or key not in value:
            return _MISSING
        value = value[key]
    return value


def state_matches(expected: Any, actual: Any) -> bool:
    if isinstance(expected, dict) and set(expected) == {"len"}:
        return isinstance(actual, (list, dict, str)) and len(actual) == int(expected["len"])
    if expected is False:
        return actual is _MISSING or actual is None or actual is False
    if expected is None:
        return actual is _MISSING or actual is None
    if actual is _MISSING:
        return False
    if isinstance(expected, list) and not isinstance(actual, list):
        return any(_same(e, actual) for e in expected)
    return _same(expected, actual)


def _state(wanted: Any, reply: TargetReply, _fixed: list[str]) -> tuple[bool, str]:
    if not isinstance(wanted, dict):
        return False, "state: expected a mapping of dotted paths to values"
    state = getattr(reply, "observed_state", None)
    wrong = []
    for path, expected in wanted.items():
        if path == TICKETS_OPENED:
            actual: Any = getattr(reply, "tickets_opened", _MISSING)
        elif state is None:
            return False, "state unknown (the target does not expose its conversation)"
        else:
            actual = state_at(state, path)
        if not state_matches(expected, actual):
            shown = "missing" if actual is _MISSING else json.dumps(actual, default=str)[:120]
            wrong.append(f"{path}={shown}, expected {json.dumps(expected, default=str)}")
    return not wrong, "state: " + "; ".join(wrong)


ASSERTIONS: dict[str, Assertion] = {
    "path": _path, "not_path": _not_path, "intent": _intent, "tool": _tool, "no_tool": _no_tool,
    "ticket": _ticket, "figures": _figures, "no_invented_figures": _no_invented, "contains": _contains,
    "contains_any": _contains_any, "not_contains": _not_contains, "cites_any": _cites_any,
    "flags_any": _flags_any, "state": _state,
}


def _latency_by_path(turns: list[dict[str, Any]]) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {}
    for t in turns:
        out.setdefault(t["path"] or "unknown", []).append(t["latency_ms"])
    return out
