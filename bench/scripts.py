"""Code run in fresh interpreters by ``run.py`` (cold start matters, so each is its own process).

Each snippet prints one ``RESULT {json}`` line; times are ``time.perf_counter`` deltas taken
inside the child, so interpreter start-up (the same for both sides) is reported separately
as ``wall_s``.
"""

from __future__ import annotations

from pfmagic.spec.templates import endpoint_yaml

ENDPOINT_CELL = endpoint_yaml("bench-chat-endpoint")  # the article's endpoint

# Baseline: what an extension that imports azure-ai-ml eagerly would cost at %load_ext.
IMPORT_AZURE = """
import json, time
t0 = time.perf_counter()
import azure.ai.ml  # noqa
t1 = time.perf_counter()
import io
from azure.ai.ml import load_online_endpoint
load_online_endpoint(io.StringIO({cell!r}))
t2 = time.perf_counter()
print("RESULT " + json.dumps({{"import_s": t1 - t0, "import_and_parse_s": t2 - t0}}))
"""

# The same import after pfmagic.lazy_imports.defer() (what %load_ext does first): jsonschema's
# rfc3987_syntax is left unimported until an iri check runs.
IMPORT_AZURE_DEFERRED = IMPORT_AZURE.replace(
    "t0 = time.perf_counter()\n",
    "t0 = time.perf_counter()\nfrom pfmagic.lazy_imports import defer; defer()\n",
    1,
)

# pfmagic: %load_ext, then the first %%pf_endpoint cell either at once (racing the warm-up
# thread) or after the warm-up finished (a user who reads the output first).
LOAD_EXT = """
import json, threading, time
from IPython.core.interactiveshell import InteractiveShell
from traitlets.config import Config
c = Config()
c.HistoryManager.enabled = False
c.PfMagics.widgets = False
shell = InteractiveShell.instance(config=c)
t0 = time.perf_counter()
shell.run_line_magic("load_ext", "pfmagic")
t1 = time.perf_counter()
wait = {wait!r}
if wait:
    for t in threading.enumerate():
        if t.name == "pfmagic-warmup":
            t.join()
t2 = time.perf_counter()
res = shell.run_cell("%%pf_endpoint\\n" + {cell!r})
t3 = time.perf_counter()
ok = res.error_in_exec is None and res.error_before_exec is None
print("RESULT " + json.dumps({{"load_ext_s": t1 - t0, "cell_s": t3 - t2,
      "load_ext_and_cell_s": (t1 - t0) + (t3 - t2), "ok": ok,
      "error": repr(res.error_in_exec or res.error_before_exec) if not ok else None}}))
"""
