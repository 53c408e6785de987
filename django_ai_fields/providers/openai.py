"""OpenAI chat completions; also Azure OpenAI and any OpenAI-compatible BASE_URL."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx2
import openai

from .base import (
    CompletionRequest,
    CompletionResponse,
    Provider,
    ProviderError,
    clients,
    error_from_sdk,
    require_key,
)
from .streams import StreamItem, read_openai, stream_error


class OpenAIProvider(Provider):
    name = "openai"
    idempotency_header = "Idempotency-Key"

    def client(self) -> openai.OpenAI:
        key = ("openai", self.config.get("API_KEY"), self.config.get("BASE_URL"), self.timeout())
        return clients.get(
            key,
            lambda: openai.OpenAI(
                api_key=self.config.get("API_KEY") or "missing",
                base_url=self.config.get("BASE_URL") or None,
                timeout=self.timeout(),
                max_retries=0,  # jobs retry with backoff instead; see docs/reliability.md
            ),
        )

    def probe(self) -> bool | None:
        require_key(self)
        try:
            self.client().models.list()
        except (openai.OpenAIError, ValueError) as exc:
            raise error_from_sdk(openai, exc) from exc
        return True

    def max_tokens_param(self) -> str:
        # OpenAI's own API wants max_completion_tokens; compatible servers
        # (Ollama, vLLM, OpenRouter) reliably understand max_tokens.
        default = "max_tokens" if self.config.get("BASE_URL") else "max_completion_tokens"
        return str(self.config.get("MAX_TOKENS_PARAM") or default)

    def build_kwargs(self, request: CompletionRequest) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "model": request.model,
            "messages": [
                {"role": "system", "content": request.system},
                {"role": "user", "content": request.prompt},
            ],
            self.max_tokens_param(): request.max_tokens,
        }
        if request.temperature is not None:
            kwargs["temperature"] = request.temperature
        if request.json_schema:
            kwargs["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "output", "schema": request.json_schema},
            }
        elif request.json_output:
            kwargs["response_format"] = {"type": "json_object"}
        kwargs.update(request.options)
        return kwargs

    def complete(self, request: CompletionRequest) -> CompletionResponse:
        require_key(self)
        try:
            completion = self.client().chat.completions.create(**self.build_kwargs(request))
        except (openai.OpenAIError, ValueError) as exc:  # ValueError: a 200 with bad JSON
            raise error_from_sdk(openai, exc) from exc
        return response_from_completion(completion)

    def stream(self, request: CompletionRequest) -> Iterator[StreamItem]:
        require_key(self)
        kwargs = self.build_kwargs(request)
        kwargs.update(stream=True, stream_options={"include_usage": True})
        try:
            yield from read_openai(self.client().chat.completions.create(**kwargs))
        except (openai.OpenAIError, ValueError, httpx2.HTTPError) as exc:
            raise stream_error(openai, exc) from exc


def response_from_completion(completion: Any) -> CompletionResponse:
    if not getattr(completion, "choices", None):
        raise ProviderError("provider_unavailable", "The provider answered with no choices.")
    choice = completion.choices[0]
    usage = completion.usage
    details = getattr(usage, "prompt_tokens_details", None) if usage else None
    return CompletionResponse(
        text=choice.message.content or "",
        # prompt_tokens already includes the cached tokens.
        input_tokens=usage.prompt_tokens if usage else 0,
        output_tokens=usage.completion_tokens if usage else 0,
        cached_tokens=(getattr(details, "cached_tokens", 0) or 0) if details else 0,
        finish_reason=choice.finish_reason or "",
        model=completion.model or "",
    )


class AzureOpenAIProvider(OpenAIProvider):
    """Azure OpenAI: BASE_URL is the resource endpoint, the model is the deployment."""

    name = "azure"

    def client(self) -> openai.OpenAI:
        api_version = self.config.get("API_VERSION") or "2024-10-21"
        key = ("azure", self.config.get("API_KEY"), self.config.get("BASE_URL"), api_version)
        return clients.get(
            key,
            lambda: openai.AzureOpenAI(
                api_key=self.config.get("API_KEY") or "missing",
                azure_endpoint=self.config.get("BASE_URL") or "",
                api_version=api_version,
                timeout=self.timeout(),
                max_retries=0,
            ),
        )

    def max_tokens_param(self) -> str:
        return str(self.config.get("MAX_TOKENS_PARAM") or "max_completion_tokens")

    def probe(self) -> None:
        return None  # Azure lists models per resource, not per deployment: no cheap check
