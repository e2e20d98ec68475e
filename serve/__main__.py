"""`python -m serve [--host H] [--port P] [--workers N]`: the same as `assistant serve`."""

from __future__ import annotations

import argparse

import uvicorn

from assistant.config import Settings, apply_offline_env


def main() -> None:
    apply_offline_env()
    settings = Settings()
    parser = argparse.ArgumentParser(prog="python -m serve", description="Run the Meadow web app.")
    parser.add_argument("--host", default=settings.host)
    parser.add_argument("--port", type=int, default=settings.port)
    parser.add_argument("--workers", type=int, default=settings.web_workers)
    args = parser.parse_args()
    uvicorn.run("serve.app:create_app", factory=True, host=args.host, port=args.port, workers=args.workers,
                log_config=None, access_log=False, timeout_graceful_shutdown=10)


if __name__ == "__main__":
    main()
