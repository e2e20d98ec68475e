"""The web app: FastAPI (REST + OpenAI-compatible API) with the Gradio pages and widget.js.

`assistant/` never imports this package; `assistant serve` starts it through uvicorn's import
string "serve.app:create_app"."""
