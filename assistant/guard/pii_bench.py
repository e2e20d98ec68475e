"""Redaction throughput: `python -m assistant.guard.pii_bench [--n 20000] [--json]`.

Builds a mix of customer messages (English and Chinese; about 60% carry PII of some kind, a few are
long), redacts them all, and writes bench/redaction.json. The target is >= 5,000 messages/s on one
core. Also times the whole input guard (PII + injection + signals), which is what a turn pays."""

from __future__ import annotations

import json
import os
import platform
import random
import statistics
import time
from pathlib import Path

import typer

from assistant.guard import pii
from assistant.config import PROJECT_ROOT

TEMPLATES = [
    "How do I repay my Meadow Flex loan early? Is there a fee?",
    "What is the late fee on a {amount} installment of Meadow Cash?",
    "I missed my payment yesterday because I was travelling, what happens now and will it hurt my credit?",
    "My card {card} was charged twice this month, please refund the second payment.",
    "Please call me back on {phone}, I am free after 6pm.",
    "My ID number is {id}, can you check the status of my application?",
    "Send the contract to {email} please.",
    "I got an SMS, the verification code is {code}, is it from you?",
    "my password is {password} but the app says it is wrong",
    "你好，我想问一下提前还款有没有手续费？我的手机号是{phone}。",
    "验证码是{code}，帮我登录一下。",
    "我的身份证号{id}，申请进度怎么样了？",
    "I want to complain about a collector who called my mother at 11pm on {phone}. This is harassment and I want "
    "it to stop. I have been a customer for three years and always paid on time until I lost my job in March.",
    "Can you explain the difference between Meadow Flex and Meadow Cash, and which one has the lower APR for "
    "{amount} over 12 months?",
    "Hi",
    "Thanks, that's all.",
]


def _id_number(rng: random.Random) -> str:
    first = f"{rng.randint(110000, 659999)}{rng.randint(1950, 2005)}{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}" \
            f"{rng.randint(0, 999):03d}"
    return first + pii.id_check_digit(first)


def _card(rng: random.Random) -> str:
    prefix = "62" + "".join(str(rng.randint(0, 9)) for _ in range(15))
    return next(prefix + d for d in "0123456789" if pii.luhn_valid(prefix + d))


def make_messages(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        t = rng.choice(TEMPLATES)
        out.append(t.format(
            amount=rng.choice([1000, 2000, 5000, 30000]), card=_card(rng), phone=f"1{rng.randint(3, 9)}{rng.randint(0, 999999999):09d}",
            id=_id_number(rng), email=f"user{rng.randint(1, 9999)}@example.com", code=f"{rng.randint(0, 999999):06d}",
            password=f"Pw{rng.randint(1000, 9999)}!x"))
    return out


def measure(fn, messages: list[str], repeats: int = 3) -> dict[str, float]:
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        for m in messages:
            fn(m)
        rates.append(len(messages) / (time.perf_counter() - start))
    return {"msgs_per_s": round(max(rates)), "msgs_per_s_median": round(statistics.median(rates)),
            "us_per_msg": round(1e6 / max(rates), 1)}


def main(
    n: int = typer.Option(20000, help="messages to redact"),
    guard_n: int = typer.Option(2000, help="messages through the whole input guard"),
    out: Path = typer.Option(PROJECT_ROOT / "bench" / "redaction.json", help="where the result goes"),
    json_out: bool = typer.Option(False, "--json", help="print the result as one JSON object"),
) -> None:
    messages = make_messages(n)
    with_pii = sum(bool(pii.find_pii(m)) for m in messages)
    result = {"messages": n, "with_pii": with_pii, "mean_chars": round(sum(map(len, messages)) / n, 1),
              "redact": measure(pii.redact, messages), "target_msgs_per_s": 5000}
    if guard_n:
        from prometheus_client import CollectorRegistry

        from assistant.config import Settings
        from assistant.guard.core import Guard
        from assistant.metrics import GuardMetrics
        from assistant.types import Conversation

        settings = Settings(messages_per_minute=10**9, max_turns=10**9)
        guard = Guard(settings, metrics=GuardMetrics(CollectorRegistry()))
        guard.injection.check("warm up")  # trains the classifier once, outside the timing
        result["check_input"] = measure(lambda m: guard.check_input(Conversation(), m), messages[:guard_n], 1)
    result["passed"] = result["redact"]["msgs_per_s"] >= result["target_msgs_per_s"]
    result["machine"] = {"python": platform.python_version(), "cpu": platform.processor() or platform.machine(),
                         "cores": os.cpu_count()}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    if json_out:
        print(json.dumps(result))
    else:
        print(f"redact: {result['redact']['msgs_per_s']:,} msgs/s ({result['redact']['us_per_msg']} us/msg, "
              f"{with_pii}/{n} messages with PII); target {result['target_msgs_per_s']:,} msgs/s: "
              f"{'PASS' if result['passed'] else 'FAIL'}")
        if "check_input" in result:
            print(f"whole input guard: {result['check_input']['msgs_per_s']:,} msgs/s")
        print(f"wrote {out}")
    raise typer.Exit(0 if result["passed"] else 1)


if __name__ == "__main__":
    typer.run(main)
