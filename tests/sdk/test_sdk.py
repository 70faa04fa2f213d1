"""The official Anthropic SDK, unmodified, against keyward's /v1 gateway.

Run by tests/api/sdk.rs, which starts keyward and the mock upstream and
passes the address and personal tokens in the environment:
KEYWARD_BASE_URL, KEYWARD_TOKEN (a user on their own key) and
KEYWARD_FREE_TOKEN (a user on a free plan allowing one request a day).
"""

import os

import anthropic
import pytest

BASE_URL = os.environ["KEYWARD_BASE_URL"]
TOKEN = os.environ["KEYWARD_TOKEN"]
FREE_TOKEN = os.environ["KEYWARD_FREE_TOKEN"]
MODEL = "claude-sonnet-4-6"


def client(api_key=TOKEN):
    # No retries: each test sees keyward's first answer.
    return anthropic.Anthropic(base_url=BASE_URL, api_key=api_key, max_retries=0)


def ask(text):
    return [{"role": "user", "content": text}]


def test_messages_create():
    message = client().messages.create(model=MODEL, max_tokens=200, messages=ask("Hello from the SDK"))
    assert message.type == "message"
    assert message.content[0].type == "text"
    assert message.content[0].text
    assert message.usage.input_tokens > 0
    assert message.usage.output_tokens > 0
    assert message._request_id, "upstream request-id passes through"


def test_messages_stream():
    with client().messages.stream(model=MODEL, max_tokens=200, messages=ask("Stream to me")) as stream:
        pieces = list(stream.text_stream)
        final = stream.get_final_message()
    assert len(pieces) > 1, "text arrives in several deltas"
    assert "".join(pieces) == final.content[0].text
    assert final.usage.output_tokens > 0
    assert final.stop_reason == "end_turn"


def test_tool_use_round_trip():
    tools = [
        {
            "name": "search_docs",
            "description": "Search the documentation",
            "input_schema": {"type": "object", "properties": {"query": {"type": "string"}}},
        }
    ]
    sdk = client()
    first = sdk.messages.create(model=MODEL, max_tokens=200, tools=tools, messages=ask("Find keyward docs"))
    assert first.stop_reason == "tool_use"
    call = next(block for block in first.content if block.type == "tool_use")
    assert call.name == "search_docs"
    second = sdk.messages.create(
        model=MODEL,
        max_tokens=200,
        tools=tools,
        messages=[
            *ask("Find keyward docs"),
            {"role": "assistant", "content": first.content},
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "three pages found"}],
            },
        ],
    )
    assert second.stop_reason == "end_turn"
    assert "three pages found" in second.content[0].text


def test_count_tokens_and_models():
    counted = client().messages.count_tokens(model=MODEL, messages=ask("How many tokens is this?"))
    assert counted.input_tokens > 0
    ids = [model.id for model in client().models.list()]
    assert MODEL in ids


def test_bad_token_is_an_authentication_error():
    with pytest.raises(anthropic.AuthenticationError) as raised:
        client("kw_" + "x" * 32).messages.create(model=MODEL, max_tokens=10, messages=ask("hi"))
    assert raised.value.status_code == 401


def test_over_the_limit_is_a_rate_limit_error_with_retry_after():
    free = client(FREE_TOKEN)
    free.messages.create(model="claude-haiku-4-5", max_tokens=10, messages=ask("my one free request"))
    with pytest.raises(anthropic.RateLimitError) as raised:
        free.messages.create(model="claude-haiku-4-5", max_tokens=10, messages=ask("one too many"))
    assert int(raised.value.response.headers["retry-after"]) > 0
    assert "00:00 UTC" in raised.value.message


def test_model_outside_the_plan_is_a_permission_error():
    with pytest.raises(anthropic.PermissionDeniedError):
        client(FREE_TOKEN).messages.create(model="claude-opus-4-7", max_tokens=10, messages=ask("hi"))


def test_overloaded_upstream_is_an_overloaded_error():
    with pytest.raises(anthropic.OverloadedError) as raised:
        client().messages.create(model=MODEL, max_tokens=10, messages=ask("please mock:529"))
    assert raised.value.status_code == 529
