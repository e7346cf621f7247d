"""OpenAI's chat-completions wire format, with rag's provenance in an extension field.

The answer text keeps rag's ``[n]`` markers; the sources, per-sentence citations, support and
attribution travel in ``rag`` beside ``choices`` (of the response, or of the last stream chunk),
so the official ``openai`` client works unchanged and one that knows the field shows them."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from rag.api.access import ApiError
from rag.generation.answering import Answer

MODEL_PREFIX = "rag:"


class Message(BaseModel):
    model_config = ConfigDict(extra="allow")  # name, tool_calls and the like are ignored

    role: str
    content: str | list[dict[str, Any]] | None = None

    def text(self) -> str:
        """The text of a message; of content parts, the text ones joined."""
        if isinstance(self.content, list):
            return "\n".join(str(p.get("text", "")) for p in self.content
                             if isinstance(p, dict) and p.get("type") == "text")
        return self.content or ""


class RagOptions(BaseModel):
    """rag's own request options, in the body's ``rag`` field (``extra_body`` in the client)."""

    model_config = ConfigDict(extra="forbid")

    k: int | None = Field(None, ge=1)
    mode: Literal["dense", "bm25", "hybrid"] | None = None
    rerank: bool | None = None


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="allow")  # OpenAI options rag does not use are accepted

    model: str
    messages: list[Message] = Field(min_length=1)
    stream: bool = False
    temperature: float | None = Field(None, ge=0, le=2)
    stream_options: dict[str, Any] | None = None
    rag: RagOptions = RagOptions()


def kb_of(model: str) -> str:
    """The knowledge base a model id names: ``rag:papers`` (or plainly ``papers``)."""
    return model[len(MODEL_PREFIX):] if model.startswith(MODEL_PREFIX) else model


def conversation(messages: Sequence[Message], max_messages: int, max_chars: int
                 ) -> tuple[str, list[tuple[str, str]]]:
    """(the question: the last user message, the earlier (question, answer) turns). System
    messages are ignored: rag's own instructions decide how answers are written and cited."""
    if len(messages) > max_messages:
        raise ApiError(413, "too_many_messages", f"{len(messages)} messages are over the limit "
                       f"of {max_messages} (api.max_messages); a follow-up needs only the "
                       "last few turns")
    if messages[-1].role != "user":
        raise ApiError(400, "invalid_messages", "the last message must be the user's question")
    question = messages[-1].text().strip()
    if not question:
        raise ApiError(400, "invalid_messages", "the question (the last user message) is empty")
    if len(question) > max_chars:
        raise ApiError(413, "question_too_long", f"the question has {len(question)} characters, "
                       f"over the limit of {max_chars} (api.max_question_chars)")
    history: list[tuple[str, str]] = []
    asked: str | None = None
    for message in messages[:-1]:
        if message.role == "user":
            asked = message.text()
        elif message.role == "assistant" and asked is not None:
            history.append((asked, message.text()))
            asked = None
    return question, history


def plain(value: object) -> Any:  # noqa: ANN401 - JSON data
    """``value`` as plain JSON data (numpy scalars become numbers)."""
    return json.loads(json.dumps(value, default=lambda v: v.item() if hasattr(v, "item")
                                 else str(v)))


def provenance(answer: Answer, kb: str) -> dict[str, Any]:
    """The ``rag`` extension field: the checked answer and everything that backs it."""
    data = plain(answer.to_dict())
    return {"knowledge_base": kb, **{k: data[k] for k in (
        "text", "refused", "sources", "sentences", "warnings", "timings", "models",
        "standalone_query", "withheld", "restated", "invalid_citations")}}


def usage(answer: Answer) -> dict[str, int]:
    prompt = int(answer.timings.get("prompt_tokens", 0))
    completion = int(answer.timings.get("completion_tokens", 0))
    return {"prompt_tokens": prompt, "completion_tokens": completion,
            "total_tokens": prompt + completion}


def finish_reason(answer: Answer) -> str:
    return "length" if answer.finish_reason == "length" else "stop"


class Completion:
    """One chat completion's id and stamp, shared by the whole response or stream."""

    def __init__(self, model: str) -> None:
        self.id = f"chatcmpl-{uuid.uuid4().hex}"
        self.created = int(time.time())
        self.model = model

    def response(self, answer: Answer, kb: str) -> dict[str, Any]:
        return {"id": self.id, "object": "chat.completion", "created": self.created,
                "model": self.model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": answer.text},
                             "finish_reason": finish_reason(answer), "logprobs": None}],
                "usage": usage(answer), "rag": provenance(answer, kb)}

    def chunk(self, delta: dict[str, str], finish: str | None = None,
              **extra: Any) -> str:  # noqa: ANN401
        body = {"id": self.id, "object": "chat.completion.chunk", "created": self.created,
                "model": self.model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish,
                             "logprobs": None}], **extra}
        return f"data: {json.dumps(body, ensure_ascii=False)}\n\n"

    def last_chunk(self, answer: Answer, kb: str, with_usage: bool) -> str:
        """Ends the stream: the finish reason and the ``rag`` field. The streamed text is what
        the model wrote; ``rag.text`` is the checked answer, which differs when rag removed an
        unsupported citation, withheld the answer or asked again: a client shows that one."""
        extra: dict[str, Any] = {"rag": provenance(answer, kb)}
        if with_usage:
            extra["usage"] = usage(answer)
        return self.chunk({}, finish_reason(answer), **extra)


def error_event(error: ApiError) -> str:
    return f"data: {json.dumps(error.body())}\n\n"
