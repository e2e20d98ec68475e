"""LLM: chat-model factory, prompt templates, the vLLM server launcher."""
