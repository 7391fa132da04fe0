"""``%pf_invoke`` / ``%%pf_invoke``: chat with an endpoint on the active backend."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

from IPython.core.magic import line_cell_magic, magics_class, no_var_expand
from IPython.core.magic_arguments import argument, magic_arguments

from pfmagic.errors import BackendError, PfError, usage_errors
from pfmagic.magics.base import SessionMagics

# Options that take a value (the rest of a line magic after the options is the question, kept
# verbatim: IPython's argument splitter would choke on "what's up?").
_VALUED = {"-d", "--deployment", "-f", "--request-file", "-i", "--input", "-o", "--output"}
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9-]{1,31}$")
_SLUG = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)+$")  # how endpoint names are usually written
_LIST_TTL = 30.0  # seconds a backend's endpoint list is trusted when telling names from words


@magics_class
class InvokeMagics(SessionMagics):
    """Chat with endpoints; histories live in ``session.histories`` (one per endpoint)."""

    def __init__(self, shell: Any, session: Any):
        super().__init__(shell, session)
        self._names: dict[tuple[str, str], Any] = {}
        self._listed: tuple[float, str, set[str]] = (0.0, "", set())

    @no_var_expand
    @magic_arguments()
    @argument(
        "-d",
        "--deployment",
        metavar="NAME",
        help="Send to this deployment (azureml-model-deployment header), not by traffic.",
    )
    @argument("--reset", action="store_true", help="Start a new conversation first.")
    @argument("--history", action="store_true", help="Show the whole conversation.")
    @argument(
        "-f",
        "--request-file",
        metavar="FILE",
        help="POST this JSON file as is (like az ml online-endpoint invoke); not a turn.",
    )
    @argument("--raw", action="store_true", help="Show the reply's JSON.")
    @argument(
        "--stream",
        action="store_true",
        help="Render the answer as it arrives (text/event-stream reply).",
    )
    @argument(
        "-i",
        "--input",
        action="append",
        metavar="NAME=VALUE",
        dest="inputs",
        help="A flow input, NAME=VALUE (JSON values decoded: --input 'entities=[\"CEO\"]'); "
        "repeatable. Standard (non-chat) flows take their inputs this way.",
    )
    @argument("-o", "--output", metavar="VAR", help="Store the reply in VAR.")
    @line_cell_magic
    @usage_errors
    def pf_invoke(self, line: str, cell: str | None = None) -> Any:
        """Send one chat turn to an endpoint and show the reply.

        ``%pf_invoke [ENDPOINT] QUESTION…`` or, for a multi-line question,
        ``%%pf_invoke [ENDPOINT]`` with the question as the cell. The endpoint defaults to the
        last one created or used. The conversation is kept per endpoint and sent as the flow's
        chat history (the last ``PfMagics.max_history`` turns); a failed turn is not kept.
        A first word written like an endpoint name (``my-endpoint``) is taken as one; put
        ``--`` before a question that starts with such a word.

        Returns a reply object (``outputs``, ``answer``, ``deployment``, ``latency_ms``,
        ``status``, ``request_id``).

        Examples::

            %pf_invoke basic-chat-endpoint What is Azure Machine Learning?
            %pf_invoke And how much does it cost?
            %pf_invoke --deployment green --stream Tell me a story
            %pf_invoke --input temperature=0.2 -o r Summarise our chat
            r = %pf_invoke --raw hello
            %pf_invoke --history
            %pf_invoke --reset basic-chat-endpoint
            %pf_invoke basic-chat-endpoint --request-file sample-request.json

            %%pf_invoke basic-chat-endpoint
            Write a haiku
            about endpoints
        """
        options, endpoint, question = self._split(line, cell)
        args = self.pf_invoke.parser.parse_args(options)  # words already split as a shell does
        if cell is None:
            question = _COMMENT.sub("", question)  # "%pf_invoke hi  # why": the comment stays here
        if cell is not None:
            if question:
                raise PfError(
                    f"unexpected '{question}' on the %%pf_invoke line",
                    hint="the question is the cell; the line takes [ENDPOINT] options",
                )
            question = cell.strip()
        if args.output and not args.output.isidentifier():  # before sending, not after
            raise PfError(f"'{args.output}' is not a valid Python variable name")
        name = self.session.endpoint_name(endpoint)
        if args.reset:
            self.session.histories.pop(name, None)
            self._names = {k: v for k, v in self._names.items() if k[1] != name}
            if not question and not args.request_file:
                print(f"{name}: new conversation")
                return None
        if args.request_file:
            reply = self._send_file(name, args)
        elif question or args.inputs:
            reply = self._turn(name, question, args)
        elif args.history:
            reply = None
        elif self._standard_flow(name, args):  # inputs-only: the flow's defaults
            reply = self._turn(name, "", args)
        else:
            raise PfError(
                "no question given", hint="%pf_invoke [ENDPOINT] QUESTION, or --history / --reset"
            )
        if args.history:  # the transcript already ends with this turn's reply
            from pfmagic.render.chat import Transcript

            if reply is not None and args.output:
                self.push(args.output, reply)
            return Transcript(name, self.session.histories.get(name, []))
        return self._show(reply, args)

    # -- parsing --------------------------------------------------------------------------
    def _split(self, line: str, cell: str | None) -> tuple[list[str], str | None, str]:
        """Leading options, then an optional endpoint name, then the question verbatim."""
        options: list[str] = []
        endpoint: str | None = None
        rest = line.strip()
        while rest:
            token, after = _next_token(rest)
            if token == "--":
                rest = after
                break
            if token.startswith("-") and len(token) > 1:
                word, rest = _next_word(rest)  # options are shell words: --input 'a=[1, 2]'
                options.append(word)
                if word in _VALUED:
                    value, rest = _next_word(rest)
                    options.append(value)
                continue
            if endpoint is None and (cell is not None or self._is_endpoint(token, after)):
                endpoint, rest = token, after
                continue
            if endpoint is None and self._no_default(token, after):
                # only a guess: confirm it (NotFound reads better than "no endpoint given")
                self.session.backend.get_endpoint(token)
                endpoint, rest = token, after
                continue
            break
        return options, endpoint, rest.strip()

    def _is_endpoint(self, token: str, after: str) -> bool:
        if not _NAME.match(token):
            return False
        s = self.session
        known = set(s.endpoints) | set(s.histories) | {ep for ep, _ in s.deployments}
        if s.last_endpoint:
            known.add(s.last_endpoint)
        if token in known:
            return True
        return token in self._backend_endpoints()

    def _no_default(self, token: str, after: str) -> bool:
        # Without a default endpoint "%pf_invoke my-ep hi" can only mean an endpoint name: let
        # the backend say it does not exist rather than "no endpoint given".
        # Likewise a lower-case hyphenated first word ("no-such-endpoint hello") reads as a
        # mistyped endpoint, not as the start of a question: report it rather than ask it.
        s = self.session
        if not after or not _NAME.match(token):
            return False
        return (s.last_endpoint is None and len(s.endpoints) != 1) or bool(_SLUG.match(token))

    def _backend_endpoints(self) -> set[str]:
        stamp, backend, names = self._listed
        if time.monotonic() - stamp < _LIST_TTL and backend == self.session.backend_name:
            return names
        try:
            names = {e.name for e in self.session.backend.list_endpoints()}
        except Exception:  # listing is only a hint for parsing; invoke reports real errors
            names = set()
        self._listed = (time.monotonic(), self.session.backend_name, names)
        return names

    # -- sending --------------------------------------------------------------------------
    def chat_names(self, endpoint: str, deployment: str | None = None) -> Any:
        """Chat input/output/history names of ``endpoint`` (cached per backend + endpoint)."""
        from pfmagic.chat import resolve_names

        key = (self.session.backend_name, endpoint)
        if key not in self._names:
            self._names[key] = resolve_names(
                self.session, self.session.backend, endpoint, deployment
            )
        return self._names[key]

    def _standard_flow(self, endpoint: str, args: Any) -> bool:
        names = self.chat_names(endpoint, args.deployment)
        return names.declared is not None and not names.chat

    def _turn(self, endpoint: str, question: str, args: Any) -> Any:
        from pfmagic.chat import make_turn, parse_inputs, request_body

        names = self.chat_names(endpoint, args.deployment)
        turns = self.session.histories.setdefault(endpoint, [])
        body = request_body(
            names, question, turns, self.settings.max_history, parse_inputs(args.inputs)
        )
        if not names.chat:  # a standard flow: one request, no conversation to keep
            return self._invoke(endpoint, body, args, question or None, names.output)
        reply = self._invoke(endpoint, body, args, question, names.output)
        if reply.streamed and reply.answer is None:
            # promptflow truncates the stream after a 200 when the flow raises mid-answer
            raise BackendError(
                f"{endpoint}: the stream ended before any '{names.output}' "
                "chunk (the flow failed; see %pf_logs)",
                status=reply.status,
            )
        answer = reply.answer if reply.answer is not None else reply.outputs
        turns.append(make_turn(names, question, answer, **reply.meta))
        return reply

    def _send_file(self, endpoint: str, args: Any) -> Any:
        path = self._resolve_path(args.request_file)
        try:
            body = json.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise PfError(f"cannot read request file {path}: {exc.strerror}") from None
        except ValueError as exc:
            raise PfError(f"request file {path.name} is not JSON: {exc}") from None
        names = self.chat_names(endpoint, args.deployment)
        question = body.get(names.input) if isinstance(body, dict) else None
        return self._invoke(endpoint, body, args, question, names.output)

    def _resolve_path(self, name: str) -> Path:
        path = Path(name).expanduser()
        if path.is_absolute() or path.exists():
            return path
        notebook = self.shell.user_ns.get("__vsc_ipynb_file__")
        if notebook and (Path(notebook).parent / path).exists():
            return Path(notebook).parent / path
        return path

    def _invoke(
        self, endpoint: str, body: Any, args: Any, question: str | None, chat_output: str
    ) -> Any:
        from pfmagic.render.chat import ChatReply

        live = _LiveStream(self, question, chat_output) if args.stream else None
        try:
            score = self.session.backend.invoke(
                endpoint,
                body,
                deployment=args.deployment,
                stream=bool(args.stream),
                timeout=self.settings.invoke_timeout,
                on_chunk=live.on_chunk if live else None,
            )
        except BackendError as exc:
            raise BackendError(
                f"{endpoint}: {exc.message}", status=exc.status, code=exc.code, hint=exc.hint
            ) from None
        finally:
            if live:
                live.finish()
        self.session.last_endpoint = endpoint
        return ChatReply(
            endpoint=endpoint,
            question=question,
            outputs=score.outputs,
            status=score.status,
            deployment=score.deployment or args.deployment,
            latency_ms=score.latency_ms,
            request_id=score.request_id,
            streamed=score.streamed,
            first_chunk_ms=live.first_ms if live else None,
            chat_output=chat_output,
            raw=bool(args.raw),
            chunks=score.chunks,
        )

    def _show(self, reply: Any, args: Any) -> Any:
        if args.output:
            from IPython.display import display

            self.push(args.output, reply)
            display(reply)
            return None
        return reply


class _LiveStream:
    """Shows a streaming answer as it arrives: a display handle in a kernel, print elsewhere."""

    def __init__(self, magics: InvokeMagics, question: str | None, chat_output: str):
        from pfmagic.render.chat import StreamingView

        self.view = StreamingView(question, chat_output)
        self.start = time.perf_counter()
        self.first_ms: float | None = None
        self.rich = "IPKernelApp" in (getattr(magics.shell, "config", None) or {})
        self.handle: Any = None
        self._last = 0.0

    def on_chunk(self, event: dict[str, Any]) -> None:
        piece = self.view.add(event)
        if not piece:
            return
        now = time.perf_counter()
        if self.first_ms is None:
            self.first_ms = (now - self.start) * 1000
        if not self.rich:
            print(piece, end="", flush=True)
            return
        from IPython.display import display

        if self.handle is None:
            self.handle = display(self.view, display_id=True)
        elif now - self._last > 0.05:  # bounded update rate: fast streams would flood the UI
            self.handle.update(self.view)
        else:
            return
        self._last = now

    def finish(self) -> None:
        if not self.rich:
            if self.view.text:
                print(flush=True)
        elif self.handle is not None:
            # the reply itself is displayed next (Out[n]); leave no stale copy above it
            from IPython.display import Pretty

            self.handle.update(Pretty(""))


def _next_token(text: str) -> tuple[str, str]:
    """First token of ``text`` (quotes allowed: '…' or "…") and what follows it."""
    text = text.lstrip()
    if text[:1] in "'\"":
        end = text.find(text[0], 1)
        if end > 0:
            return text[1:end], text[end + 1 :].lstrip()
    match = re.match(r"(\S+)\s*", text)
    if not match:
        return "", ""
    return match.group(1), text[match.end() :]


def _next_word(text: str) -> tuple[str, str]:
    """First shell word of ``text`` (quotes removed as bash does) and what follows it."""
    import io
    import shlex

    stream = io.StringIO(text.lstrip())
    lexer = shlex.shlex(stream, posix=True)
    lexer.whitespace_split, lexer.commenters = True, ""
    try:
        word = lexer.get_token() or ""
    except ValueError as exc:  # an unclosed quote
        raise PfError(f"cannot read the line: {exc}") from None
    return word, stream.read().lstrip()


# A trailing "# comment" (after a space) is the notebook's, not the question's.
_COMMENT = re.compile(r"(?:^|\s+)#(?:\s.*)?$")


# A line ending in "?" is a help request to IPython ("%pf_invoke how long does it take?" would
# print "Object `take` not found"). Questions end in "?", so rewrite such %pf_invoke lines into
# a plain call before IPython's help transformer sees them. "%pf_invoke?" (no question) is help.
_QUESTION_LINE = re.compile(
    r"^(?P<indent>\s*)(?P<assign>[A-Za-z_]\w*\s*=\s*)?%pf_invoke\s+(?P<args>.*\S)\s*$"
)


def keep_question_marks(lines: list[str]) -> list[str]:
    """IPython input transformer (cleanup stage): ``%pf_invoke … ?`` stays a question."""
    if not lines or lines[0].lstrip().startswith("%%"):
        return lines
    out = []
    for line in lines:
        match = _QUESTION_LINE.match(line)
        args = match["args"] if match else ""
        if match and args.endswith("?") and args.strip("? "):
            line = (
                f"{match['indent']}{match['assign'] or ''}"
                f"get_ipython().run_line_magic('pf_invoke', {args!r})\n"
            )
        out.append(line)
    return out


TRANSFORMERS = (keep_question_marks,)
MAGICS = InvokeMagics
