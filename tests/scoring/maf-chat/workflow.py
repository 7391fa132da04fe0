"""The chat app as a Microsoft Agent Framework workflow: two function executors, no LLM.

normalize -> answer: the question is trimmed, then answered with the questions of earlier
turns (prompt flow's chat_history shape: ``[{"inputs": {...}, "outputs": {...}}]``), like the
chat-echo flow it replaces.
"""

from agent_framework import WorkflowBuilder, WorkflowContext, executor


@executor(id="normalize")
async def normalize(request: dict, ctx: WorkflowContext[dict]) -> None:
    await ctx.send_message({**request, "question": str(request["question"]).strip()})


@executor(id="answer")
async def answer(request: dict, ctx: WorkflowContext[dict, str]) -> None:
    earlier = [t.get("inputs", {}).get("question", "") for t in request.get("chat_history") or []]
    text = f"Echo: {request['question']}"
    if earlier:
        text += " (earlier: " + " | ".join(earlier) + ")"
    await ctx.yield_output(text)


def create_workflow():
    return WorkflowBuilder(start_executor=normalize).add_edge(normalize, answer).build()
