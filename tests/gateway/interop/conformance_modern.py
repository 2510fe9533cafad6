"""The conformance fixture's 2026-07-28 half: multi-round-trip tools and stateless diagnostics.

SEP-2322 tools answer with an `InputRequiredResult` and finish when the client retries
with `inputResponses` (the SDK seals `requestState`, so a tampered echo is refused);
SEP-2575 diagnostics need a declared client capability or change the tool and prompt
lists on demand; an `x-mcp-header` tool lets the suite probe SEP-2243 header checks.
`conformance_server.py` adds all of these to its server with `add_modern_fixtures`.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any

import anyio
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.prompts.base import UserMessage
from mcp.shared.exceptions import MCPError
from mcp_types import MISSING_REQUIRED_CLIENT_CAPABILITY, InputRequiredResult, TextContent
from pydantic import Field

__all__ = ["add_modern_fixtures"]

logger = logging.getLogger(__name__)

ROOTS_REQUEST: dict[str, Any] = {"client_roots": {"method": "roots/list", "params": {}}}


def _elicit(key: str, message: str, field: str, kind: str = "string") -> dict[str, Any]:
    schema = {"type": "object", "properties": {field: {"type": kind}}, "required": [field]}
    return {key: {"method": "elicitation/create", "params": {"message": message, "requestedSchema": schema}}}


def _sample(key: str, text: str, max_tokens: int) -> dict[str, Any]:
    message = {"role": "user", "content": {"type": "text", "text": text}}
    return {
        key: {"method": "sampling/createMessage", "params": {"messages": [message], "maxTokens": max_tokens}}
    }


def _input_required(requests: dict[str, Any], state: str | None = None) -> InputRequiredResult:
    payload: dict[str, Any] = {"resultType": "input_required", "inputRequests": requests}
    if state is not None:
        payload["requestState"] = state  # sealed by the SDK's RequestStateBoundary on the way out
    return InputRequiredResult.model_validate(payload)


def _answers(ctx: Context) -> dict[str, Any]:
    return dict(ctx.input_responses or {})


def _elicited(answer: Any, field: str) -> str:
    content = getattr(answer, "content", None)
    return str(content.get(field, "")) if isinstance(content, dict) else ""


def _require_capability(ctx: Context, capability: str, tool: str) -> None:
    """Refuse (-32021) a client that did not declare `capability`."""
    caps = ctx.client_capabilities
    if caps is None or getattr(caps, capability, None) is None:
        raise MCPError(
            code=MISSING_REQUIRED_CLIENT_CAPABILITY,
            message=f"{tool} needs the {capability} capability; declare it and retry",
            data={"requiredCapabilities": {capability: {}}},
        )


def add_modern_fixtures(server: MCPServer) -> None:
    _add_single_input_tools(server)
    _add_stateful_input_tools(server)
    _add_stateless_diagnostics(server)
    _add_task_scenario_tools(server)


def _add_single_input_tools(server: MCPServer) -> None:
    @server.tool(description="Asks for the user's name through an InputRequiredResult")
    async def test_input_required_result_elicitation(ctx: Context) -> str | InputRequiredResult:
        answer = _answers(ctx).get("user_name")
        if getattr(answer, "action", None) is None:  # missing or not an elicitation answer: ask again
            return _input_required(_elicit("user_name", "What is your name?", "name"))
        return f"Hello, {_elicited(answer, 'name') or 'stranger'}!"

    @server.tool(description="Asks for a sampling result through an InputRequiredResult")
    async def test_input_required_result_sampling(ctx: Context) -> str | InputRequiredResult:
        answer = _answers(ctx).get("capital_question")
        if answer is None:
            return _input_required(_sample("capital_question", "What is the capital of France?", 100))
        content = getattr(answer, "content", None)
        return f"Sampling said: {content.text if isinstance(content, TextContent) else content}"

    @server.tool(description="Asks for the client's roots through an InputRequiredResult")
    async def test_input_required_result_list_roots(ctx: Context) -> str | InputRequiredResult:
        answer = _answers(ctx).get("client_roots")
        if answer is None:
            return _input_required(ROOTS_REQUEST)
        return "Roots: " + ", ".join(str(root.uri) for root in getattr(answer, "roots", []))

    @server.tool(description="Asks only for what the client declared it can answer")
    async def test_input_required_result_capabilities(ctx: Context) -> str | InputRequiredResult:
        if _answers(ctx):
            return "Answers received for the declared capabilities"
        caps = ctx.client_capabilities
        requests: dict[str, Any] = {}
        if caps is not None and caps.sampling is not None:
            requests.update(_sample("capital_question", "What is the capital of France?", 100))
        if caps is not None and caps.elicitation is not None:
            requests.update(_elicit("user_name", "What is your name?", "name"))
        if caps is not None and caps.roots is not None:
            requests.update(ROOTS_REQUEST)
        return _input_required(requests) if requests else "The client declared nothing to ask through"

    @server.prompt(description="A prompt that needs context from the user first")
    async def test_input_required_result_prompt(ctx: Context) -> list[UserMessage] | InputRequiredResult:
        answer = _answers(ctx).get("user_context")
        if answer is None:
            return _input_required(_elicit("user_context", "What context should the prompt use?", "context"))
        text = f"Use this context: {_elicited(answer, 'context')}"
        return [UserMessage(content=TextContent(type="text", text=text))]


def _add_stateful_input_tools(server: MCPServer) -> None:
    @server.tool(description="Round-trips a requestState and confirms it on the retry")
    async def test_input_required_result_request_state(ctx: Context) -> str | InputRequiredResult:
        if ctx.request_state != "confirm-pending" or "confirm" not in _answers(ctx):
            return _input_required(_elicit("confirm", "Please confirm", "ok", "boolean"), "confirm-pending")
        return "state-ok: the requestState came back intact"

    @server.tool(description="Asks for elicitation, sampling and roots at once")
    async def test_input_required_result_multiple_inputs(ctx: Context) -> str | InputRequiredResult:
        wanted = {"user_name", "greeting", "client_roots"}
        if ctx.request_state != "multi" or not wanted <= set(_answers(ctx)):
            requests = {
                **_elicit("user_name", "What is your name?", "name"),
                **_sample("greeting", "Generate a greeting", 50),
                **ROOTS_REQUEST,
            }
            return _input_required(requests, "multi")
        return "All inputs received: " + ", ".join(sorted(wanted))

    @server.tool(description="Asks two questions in two rounds with an evolving requestState")
    async def test_input_required_result_multi_round(ctx: Context) -> str | InputRequiredResult:
        answers = _answers(ctx)
        if ctx.request_state == "round-2" and "step2" in answers:
            return "Both rounds complete"
        if ctx.request_state == "round-1" and "step1" in answers:
            return _input_required(
                _elicit("step2", "Step 2: What is your favorite color?", "color"), "round-2"
            )
        return _input_required(_elicit("step1", "Step 1: What is your name?", "name"), "round-1")

    @server.tool(description="Seals its requestState so a tampered echo is rejected")
    async def test_input_required_result_tampered_state(ctx: Context) -> str | InputRequiredResult:
        if ctx.request_state == "sealed" and "confirm" in _answers(ctx):
            return "state verified"
        return _input_required(_elicit("confirm", "Please confirm", "ok", "boolean"), "sealed")


def _add_stateless_diagnostics(server: MCPServer) -> None:
    toggles = {"tool": False, "prompt": False}

    def dynamic_tool() -> str:
        return "I come and go with test_trigger_tool_change"

    def dynamic_prompt() -> str:
        return "I come and go with test_trigger_prompt_change"

    @server.tool(description="Needs the sampling capability; refuses clients that did not declare it")
    async def test_missing_capability(ctx: Context) -> str | InputRequiredResult:
        _require_capability(ctx, "sampling", "test_missing_capability")
        if _answers(ctx):
            return "sampled"
        return _input_required(_sample("needs_sampling", "Say something", 20))

    @server.tool(description="Adds or removes test_dynamic_tool and announces the change")
    async def test_trigger_tool_change(ctx: Context) -> str:
        toggles["tool"] = not toggles["tool"]
        if toggles["tool"]:
            server.add_tool(dynamic_tool, name="test_dynamic_tool", description="A tool that comes and goes")
        else:
            server.remove_tool("test_dynamic_tool")
        await ctx.notify_tools_changed()
        return f"test_dynamic_tool {'added' if toggles['tool'] else 'removed'}"

    @server.tool(description="Adds or removes test_dynamic_prompt and announces the change")
    async def test_trigger_prompt_change(ctx: Context) -> str:
        toggles["prompt"] = not toggles["prompt"]
        if toggles["prompt"]:
            server.prompt(name="test_dynamic_prompt", description="A prompt that comes and goes")(
                dynamic_prompt
            )
        else:
            server.remove_prompt("test_dynamic_prompt")
        await ctx.notify_prompts_changed()
        return f"test_dynamic_prompt {'added' if toggles['prompt'] else 'removed'}"

    @server.tool(description="Logs one message at info level (sent only when the request asks for logs)")
    async def test_logging_tool(ctx: Context) -> str:
        await ctx.info("test_logging_tool ran")  # pyright: ignore[reportDeprecated] - the suite tests logging
        return "logged"

    @server.tool(description="Echoes a region mirrored into the Mcp-Param-Region header (SEP-2243)")
    def test_headers(region: Annotated[str, Field(json_schema_extra={"x-mcp-header": "Region"})]) -> str:
        return f"region={region}"


# The tasks scenarios (SEP-2663) call these by name. The SDK has no tasks extension, so they
# always answer inline (`confirm_delete` with an InputRequiredResult first): the checks of a
# server that declines to create a task run against them.
SLOW_COMPUTE_CAP = 0.5  # seconds; a 60-second "cancel me" job would otherwise hold the suite


def _add_task_scenario_tools(server: MCPServer) -> None:
    @server.tool(description="Greets someone by name")
    def greet(name: str) -> str:
        return f"Hello, {name}!"

    @server.tool(description=f"Sleeps for `seconds` (at most {SLOW_COMPUTE_CAP:g}) and reports its label")
    async def slow_compute(seconds: float = 0, label: str = "") -> str:
        await anyio.sleep(min(max(seconds, 0.0), SLOW_COMPUTE_CAP))
        return f"computed {label or 'job'} after {min(max(seconds, 0.0), SLOW_COMPUTE_CAP):g} s"

    @server.tool(description="Asks for a confirmation before it (pretends to) delete a file")
    async def confirm_delete(filename: str, ctx: Context) -> str | InputRequiredResult:
        action = getattr(_answers(ctx).get("confirm"), "action", None)
        if action is None:
            return _input_required(_elicit("confirm", f"Delete {filename}?", "ok", "boolean"))
        return f"{filename}: {'deleted' if action == 'accept' else 'kept'}"

    @server.tool(description="Asks the user through an InputRequiredResult, never a request on the stream")
    async def test_streaming_elicitation(ctx: Context) -> str | InputRequiredResult:
        _require_capability(ctx, "elicitation", "test_streaming_elicitation")
        answer = _answers(ctx).get("confirm")
        if answer is None:
            return _input_required(_elicit("confirm", "Continue?", "ok", "boolean"))
        return "confirmed"
