# ruff: noqa: E501  (the YAML and code cells are kept as users would type them)
"""Write the teaching notebooks' cells (source of truth for their text and code).

    python notebooks/make_notebooks.py            # rewrite the .ipynb files, outputs cleared
    python notebooks/run.py 01-deploy-local.ipynb --save notebooks/01-deploy-local.ipynb

The committed notebooks are then executed and saved with their outputs (``--refresh`` does both
for every notebook), because nbval compares a fresh run against those stored outputs.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from pfmagic.spec import templates
from pfmagic.spec.templates import PRT_PLACEHOLDERS, endpoint_yaml

HERE = Path(__file__).resolve().parent
TAG_AZURE = "needs-azure"  # cells that need an Azure ML workspace (skipped without one)


def md(text: str) -> nbformat.NotebookNode:
    return new_markdown_cell(text.strip("\n"))


def code(text: str, *tags: str) -> nbformat.NotebookNode:
    cell = new_code_cell(text.strip("\n"))
    if tags:
        cell.metadata["tags"] = list(tags)
    return cell


MODEL_YAML = """
$schema: https://azuremlschemas.azureedge.net/latest/model.schema.json
name: seed-chat-model
path: flows/seed-chat
description: register the offline seed-chat flow folder as a custom model
properties:
  # In AzureML studio UI, endpoint detail UI Test tab needs this property to know it's from prompt flow
  azureml.promptflow.source_flow_id: seed-chat
  # Following are properties only for chat flow
  # endpoint detail UI Test tab needs this property to know it's a chat flow
  azureml.promptflow.mode: chat
  # endpoint detail UI Test tab needs this property to know which is the input column for chat flow
  azureml.promptflow.chat_input: question
  # endpoint detail UI Test tab needs this property to know which is the output column for chat flow
  azureml.promptflow.chat_output: answer
"""

ENDPOINT_YAML = endpoint_yaml()  # the article's endpoint (pfmagic/spec/templates.py)


def deployment_yaml(
    name: str,
    model: str = "azureml:seed-chat-model:1",
    extra_env: str = "",
    instance_type: str = "Standard_E16s_v3",
    count: int = 1,
    prt: bool = False,
) -> str:
    """The article's deployment on the notebook's ``{{endpoint_name}}``; ``prt`` adds the
    article's PRT_CONFIG_OVERRIDE (placeholders that ``--fill-prt-config`` fills on Azure)."""
    return templates.deployment_yaml(
        name,
        "{{endpoint_name}}",
        model,
        instance_type=instance_type,
        instance_count=count,
        prt=PRT_PLACEHOLDERS if prt else None,
        extra_env=extra_env,
    )


# --------------------------------------------------------------------------------------------
# (a) the article, step by step, on the local backend
# --------------------------------------------------------------------------------------------
def deploy_local() -> list:
    return [
        md("""
# Deploy a flow to an online endpoint — from notebook cells

This notebook follows the Azure ML article *"Deploy a flow to online endpoint for real-time
inference with CLI"* step by step, with the **same YAML** in cells instead of files and
`az ml` commands. It runs on pfmagic's **local backend**: real HTTP endpoints on 127.0.0.1 that
keep the managed online endpoint contract (key auth, `/score`, `/health`, deployments with
traffic, logs). No Azure account and no LLM are needed: the flow deployed here,
`flows/seed-chat`, answers questions **about the article itself** from a small knowledge base
built from its text. [03-azure.ipynb](03-azure.ipynb) points the same cells at a workspace.

| Article (CLI) | Here |
|---|---|
| `az ml model create --file model.yaml` | `%%pf_model --register` |
| `az ml online-endpoint create --file endpoint.yml` | `%%pf_endpoint --create` |
| `az ml online-deployment create --file blue-deployment.yml --all-traffic` | `%%pf_deployment --create --all-traffic` |
| `az ml online-endpoint show` / `online-deployment get-logs` | `%pf_status`, `%pf_logs` |
| `az ml online-endpoint invoke --request-file …` | `%pf_invoke` |
| `az ml online-endpoint delete` | `%pf_delete` |
"""),
        code("""
%load_ext pfmagic
%pf_backend
"""),
        md("""
## Virtual machine quota allocation for deployment

For managed online endpoints, Azure Machine Learning **reserves 20 %** of the compute for
upgrades: a deployment of *n* instances needs quota for
`ceil(1.2 × n) × cores of the VM SKU`. The article's example: 10 instances of
`Standard_DS3_v2` (4 cores) need **48 cores** (12 instances × 4 cores). `%pf_quota` does the
arithmetic (the deployment cell below shows the same calculator with a slider). Locally the
SKU is informational; on Azure the check also reads your workspace's usage.
"""),
        code("%pf_quota --sku Standard_DS3_v2 --instances 10"),
        md("""
## Get the flow ready for deploy

A flow is a folder: `flow.dag.yaml`, code, prompts. `flows/seed-chat` is a **chat flow**: its
input `question` is the chat input, `chat_history` the history and `answer` the chat output;
it also returns `context`, the article section an answer came from. It has python nodes only
(rewrite a follow-up question with the previous one → find the best passage with BM25 →
answer), so it runs offline. `flows/basic-chat` is the article's LLM sample, for when you have
an OpenAI connection (see *Deploy with different connections* below).

## Register the flow as a model (optional)

Registering the folder as a model lets deployments refer to it as
`model: azureml:<name>:<version>`. The `properties` tell the studio's Test tab (and
`%pf_invoke`) that this is a chat flow and which input/output carry the chat. `path` is
relative to this notebook's folder.
"""),
        code("%%pf_model model --register\n" + MODEL_YAML.strip("\n")),
        md("""
## Define the endpoint

An endpoint has a **name** (unique in the region on Azure) and an **authentication mode**:
`key` (keys don't expire) or `aml_token` (tokens do). Cells are interpolated: `{{endpoint_name}}`
is replaced with the Python variable of that name before the YAML is parsed (`${{...}}`, the
article's own syntax, is left alone).
"""),
        code('endpoint_name = "seed-chat-endpoint"'),
        code("%%pf_endpoint endpoint --create\n" + ENDPOINT_YAML.strip("\n")),
        md("""
## Define the deployment

A deployment hosts the model: the **model**, the **environment** (the prompt flow runtime
image; its `inference_config` routes `/health` and `/score` on port 8080), the **instance type
and count**, and **environment variables**. `PROMPTFLOW_RUN_MODE: serving` is required for a
flow. `PRT_CONFIG_OVERRIDE` tells a deployment in Azure which workspace to pull connections
from; the local backend stores connections itself, so it is left out here (see
[03-azure.ipynb](03-azure.ipynb)). Optionally `PROMPTFLOW_RESPONSE_INCLUDED_FIELDS: '["answer"]'`
keeps only some outputs in the response.

The cell shows the **quota calculator** for the deployment (move the slider: the cores needed
follow the 20 % rule) and, with `--create`, deploys right away with a **progress view**
(model → endpoint → deployment → traffic). Without `--create`, the *Deploy* button does it.

> **`--all-traffic`** sends 100 % of the endpoint's traffic to the new deployment at once: fine
> for development and testing. In production, open traffic to a new deployment explicitly,
> e.g. `%pf_traffic seed-chat-endpoint blue=100` (the article's
> `az ml online-endpoint update --traffic "blue=100"`), or gradually: see
> [02-safe-rollout.ipynb](02-safe-rollout.ipynb).

On Azure this takes more than 15 minutes; locally a few seconds. `--no-wait` returns at once
and keeps reporting in the background.
"""),
        code("%%pf_deployment blue --create --all-traffic\n" + deployment_yaml("blue").strip("\n")),
        md("""
## Check status of the endpoint and deployment

`%pf_status` is `az ml online-endpoint show` (with a deployment name:
`az ml online-deployment show`); `%pf_logs` is `az ml online-deployment get-logs`.
"""),
        code("%pf_status seed-chat-endpoint"),
        code("%pf_status seed-chat-endpoint blue"),
        code("%pf_logs seed-chat-endpoint blue --lines 100"),
        md("""
## Invoke the endpoint to score data

`%pf_invoke` sends one chat turn: the flow's chat input gets the question and `chat_history`
gets the earlier turns of this notebook's chat with the endpoint, so follow-up questions work.
The endpoint defaults to the last one used. `%%pf_invoke ENDPOINT` takes the question from the
cell (for long or multi-line questions). Three turns:
"""),
        code("%%pf_invoke seed-chat-endpoint\nHow do I create the blue deployment?"),
        code("%pf_invoke And how long does it take?"),
        code("%pf_invoke How much quota do I need for 10 instances?"),
        md("The whole conversation so far (`--reset` starts a new one):"),
        code("%pf_invoke --history"),
        md("""
The article's `sample-request.json` works as well (`--request-file` sends the file as it is,
like `az ml online-endpoint invoke --request-file`):
"""),
        code("""
%%writefile sample-request.json
{
  "question": "What is the authentication mode of an endpoint?",
  "chat_history": []
}
"""),
        code("%pf_invoke seed-chat-endpoint --request-file sample-request.json"),
        md("""
Any HTTP client can call the endpoint with its key, as the article does with curl. `%pf_keys`
returns the keys; they are **masked** whenever they are shown, so this notebook can be saved and
shared without leaking them.
"""),
        code("keys = %pf_keys seed-chat-endpoint\nkeys"),
        code("""
import httpx

status = %pf_status seed-chat-endpoint
response = httpx.post(
    status.scoring_uri,
    headers={"Authorization": f"Bearer {keys.primary_key}"},
    json={"question": "How do I check the status of the deployment?", "chat_history": []},
    timeout=60,
)
print(response.status_code, response.json()["context"])
"""),
        md("""
## Deploy with different connections from flow development

A flow's LLM nodes name a connection (`flows/basic-chat` uses `open_ai_connection`). A
deployment can use another one without editing the flow, through its environment variables:

- **Option 1**, override the connection name: `open_ai_connection: <other connection name>`
- **Option 2**, refer to the workspace asset:
  `open_ai_connection: ${{azureml://connections/<other connection name>}}` (Azure only: a
  deployment can only refer to connections of its own workspace)

To try it without an OpenAI account, `llm_standin.py` starts a small OpenAI-compatible server
on 127.0.0.1 that answers from the same knowledge base. With an account, put your own key in
the connection (`base_url` is then not needed) and skip the stand-in.
"""),
        code("""
import llm_standin

standin = llm_standin.start()
llm_key = standin.api_key
"""),
        code("""
%%pf_connection my_llm --create
$schema: https://azuremlschemas.azureedge.net/promptflow/latest/OpenAIConnection.schema.json
name: my_llm
type: open_ai
api_key: "{{llm_key}}"
base_url: "{{standin.base_url}}"
"""),
        code("""
%%pf_model --register
$schema: https://azuremlschemas.azureedge.net/latest/model.schema.json
name: basic-chat-model
path: flows/basic-chat
description: register basic chat flow folder as a custom model
properties:
  azureml.promptflow.source_flow_id: basic-chat
  azureml.promptflow.mode: chat
  azureml.promptflow.chat_input: question
  azureml.promptflow.chat_output: answer
"""),
        md("""
A second deployment, `llm`, serves `basic-chat` with **option 1**. It gets no traffic;
`--deployment` sends a request to it directly (the `azureml-model-deployment` header).
"""),
        code(
            "%%pf_deployment llm --create\n"
            + deployment_yaml(
                "llm",
                model="azureml:basic-chat-model:1",
                instance_type="Standard_DS3_v2",
                extra_env="  # option 1: the flow's open_ai_connection is my_llm in this deployment\n"
                "  open_ai_connection: my_llm\n",
            ).strip("\n")
        ),
        code(
            "%%pf_invoke seed-chat-endpoint --deployment llm --reset\nHow long does a deployment take?"
        ),
        md("""
## Delete the endpoint

Deleting an endpoint deletes its deployments (and, locally, stops their processes).
"""),
        code("""
%pf_delete seed-chat-endpoint
standin.stop()
"""),
        code("%pf_endpoints"),
    ]


# --------------------------------------------------------------------------------------------
# (b) safe rollout: blue and green, mirror, canary, full switch
# --------------------------------------------------------------------------------------------
def safe_rollout() -> list:
    return [
        md("""
# Safe rollout: blue, green, mirror, canary, switch

Once you improve a flow, roll the new version out without downtime (the article's *Next
steps* → *Safe rollout for online endpoints*): keep **blue** serving, add **green** beside it
with no traffic, test it directly, **mirror** a share of live requests to it (their replies
are dropped), send it a **canary** share (90/10), then **switch** all traffic and delete blue.

Local backend, offline flow: no Azure account or LLM needed. Every reply says which deployment
served it (`reply.deployment`) and how long it took (`reply.latency_ms`); the plot at the end
shows both for every request.
"""),
        code("""
%load_ext pfmagic
endpoint_name = "rollout-endpoint"
"""),
        code("%%pf_model --register\n" + MODEL_YAML.strip("\n")),
        code("%%pf_endpoint --create\n" + ENDPOINT_YAML.strip("\n")),
        md("**Blue** takes all traffic, as in the deploy notebook:"),
        code("%%pf_deployment blue --create --all-traffic\n" + deployment_yaml("blue").strip("\n")),
        md("""
**Green** is the new version (here: the same flow on a smaller SKU). Created
without `--all-traffic`, it gets **no** live traffic: users still see blue only.
"""),
        code(
            "%%pf_deployment green --create\n"
            + deployment_yaml("green", instance_type="Standard_DS3_v2", count=1).strip("\n")
        ),
        code("%pf_status rollout-endpoint"),
        md("Test green directly before any user reaches it:"),
        code("""
%%pf_invoke rollout-endpoint --deployment green --reset -o reply
How much quota do I need for 10 instances?
"""),
        code("print(reply.deployment, reply.status)"),
        md("""
A helper that sends the same one-turn question `n` times and records, for each request, the
phase, the deployment that answered and the latency:
"""),
        code("""
requests = []

def send(n, phase):
    for _ in range(n):
        reply = %pf_invoke rollout-endpoint --reset Tell me how to check the deployment status
        requests.append({"phase": phase, "deployment": reply.deployment,
                         "latency_ms": reply.latency_ms, "status": reply.status})
    served = [r["deployment"] for r in requests if r["phase"] == phase]
    return {name: served.count(name) for name in sorted(set(served))}
"""),
        md("""
### 1. Mirror 20 % of traffic to green

Mirrored requests are copies: blue still answers every user, green's replies are discarded
(on Azure, mirroring is limited to 50 % and to a deployment with 0 % live traffic). Green's
logs show that it received them.
"""),
        code("%pf_traffic rollout-endpoint blue=100 green=0 --mirror green=20"),
        code("send(30, 'mirror')"),
        code("""
green_log = %pf_logs rollout-endpoint green --lines 200
print("green received mirrored requests:", "POST /score" in green_log)
"""),
        md("""
### 2. Canary: 10 % of live traffic to green

A deployment can't take live and mirrored traffic at once: stop mirroring first (the
article's CLI: `az ml online-endpoint update --mirror-traffic "green=0"`), then open the canary.
"""),
        md("""
Before shifting live traffic, look at the numbers the decision rests on: requests, errors,
latency percentiles, CPU and memory per deployment (`%pf_metrics`; the router counts every
request it answered, mirrored copies separately). `before.frame` is a pandas DataFrame.
"""),
        code("before = %pf_metrics rollout-endpoint --window 15m\nbefore", "nbval-ignore-output"),
        code("""
print("blue served the 30 mirror-phase requests:", before.frame.loc["blue", "requests"] == 30)
print("green answered only the direct test:", before.frame.loc["green", "requests"] == 1)
print("green got mirrored copies:", before.frame.loc["green", "mirrored"] > 0)
print("no errors:", before.frame["errors"].sum() == 0)
"""),
        code("%pf_traffic rollout-endpoint --mirror green=0"),
        code("%pf_traffic rollout-endpoint blue=90 green=10"),
        code("""
canary = send(60, 'canary 90/10')
share = canary.get("green", 0) / 60
print("green's share is between 1 % and 30 %:", 0 < share <= 0.30)
"""),
        md(
            "After the canary: green now serves live requests; compare its latency and errors "
            "with blue's before the switch (`--live` redraws this while traffic flows)."
        ),
        code("after = %pf_metrics rollout-endpoint --window 15m\nafter", "nbval-ignore-output"),
        code("""
print("green's live requests counted:", after.frame.loc["green", "requests"] == 1 + canary.get("green", 0))
print("blue's too:", after.frame.loc["blue", "requests"] == 30 + canary.get("blue", 0))
"""),
        md("### 3. Full switch to green, then retire blue"),
        code("%pf_traffic rollout-endpoint green=100"),
        code("send(20, 'green=100')"),
        code("%pf_delete rollout-endpoint blue"),
        code("%pf_status rollout-endpoint"),
        md("""
## Who served each request, and how fast

One dot per request, coloured by the deployment that answered; the shaded bands are the
phases. Mirroring never shows green (users only see blue's replies), the canary shows a few
green dots, the switch only green.
"""),
        code("""
import matplotlib.pyplot as plt

colors = {"blue": "tab:blue", "green": "tab:green"}
fig, ax = plt.subplots(figsize=(9, 3.5))
phases = []
for i, r in enumerate(requests):
    ax.scatter(i, r["latency_ms"], color=colors.get(r["deployment"], "gray"), s=18)
    if not phases or phases[-1][0] != r["phase"]:
        phases.append([r["phase"], i, i])
    phases[-1][2] = i
for k, (phase, start, end) in enumerate(phases):
    ax.axvspan(start - 0.5, end + 0.5, color="0.92" if k % 2 == 0 else "white", zorder=0)
    ax.text((start + end) / 2, 1.02, phase, ha="center", transform=ax.get_xaxis_transform())
for name, color in colors.items():
    ax.scatter([], [], color=color, label=name)
ax.set_xlabel("request")
ax.set_ylabel("latency (ms)")
ax.set_xlim(-1, len(requests))
ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1))
plt.tight_layout()
plt.show()
"""),
        code("""
by_phase = {}
for r in requests:
    by_phase.setdefault(r["phase"], set()).add(r["deployment"])
print("mirror phase served by:", sorted(by_phase["mirror"]))
print("green=100 phase served by:", sorted(by_phase["green=100"]))
print("all requests succeeded:", all(r["status"] == 200 for r in requests))
"""),
        code("%pf_delete rollout-endpoint"),
    ]


# --------------------------------------------------------------------------------------------
# (c) the same cells on Azure ML
# --------------------------------------------------------------------------------------------
def azure() -> list:
    a = TAG_AZURE
    return [
        md("""
# The same cells on Azure Machine Learning

The cells of [01-deploy-local.ipynb](01-deploy-local.ipynb), pointed at an Azure ML workspace
with `%pf_backend azure`. You need the article's prerequisites: a workspace, a role that may
create online endpoints, and a login azure-identity can use (`az login`, a managed identity or
environment credentials), plus **quota** for the SKU (the calculator reads the workspace's
usage).

Say which workspace to use, either with a `config.json` downloaded from the workspace's
overview page (`PFMAGIC_AZURE_CONFIG=/path/to/config.json`) or with `AZURE_SUBSCRIPTION_ID`,
`AZURE_RESOURCE_GROUP` and `AZUREML_WORKSPACE_NAME`. **Without them, the cells tagged
`needs-azure` are skipped** by the test suite and `run.py`; in JupyterLab, `%pf_backend azure`
says what is missing and *Run All* stops at the first cell that needs the workspace. Deploying on Azure takes more than 15 minutes and
costs money: `%pf_delete` at the end removes the endpoint.
"""),
        code(
            """
import os

from pfmagic.backends.azure.client import workspace_args

# "--config $PFMAGIC_AZURE_CONFIG", or the three variables as arguments; "" if neither is set
# (%pf_backend azure then looks for config.json and says what is missing)
azure_args = workspace_args()
print("Azure workspace configured:", bool(azure_args))
""",
            "azure-guard",
        ),
        code("%load_ext pfmagic"),
        code("%pf_backend azure {azure_args} --fill-prt-config", a),
        md("""
Same model as locally: the flow folder is uploaded and registered as `seed-chat-model`. A new
version is created each time the cell runs with `--register`.
"""),
        code("%%pf_model model --register\n" + MODEL_YAML.strip("\n"), a),
        md("Endpoint names are unique per Azure region: add something of your own."),
        code('endpoint_name = "seed-chat-" + os.environ.get("USER", "me")[:8] + "-ep"', a),
        code("%%pf_endpoint endpoint --create\n" + ENDPOINT_YAML.strip("\n"), a),
        md("""
On Azure the deployment also needs `PRT_CONFIG_OVERRIDE` so that it can pull the workspace's
connections; `--fill-prt-config` (above) fills its `<placeholders>` with the deployment's own
subscription, group, workspace, endpoint and deployment names. `model: azureml:seed-chat-model:1`
refers to the first registered version — change it if you registered more. The calculator checks
your workspace's quota for the SKU.
"""),
        code(
            "%%pf_deployment blue --create --all-traffic\n"
            + deployment_yaml("blue", prt=True).strip("\n"),
            a,
        ),
        code("%pf_status {endpoint_name}", a),
        code("%pf_logs {endpoint_name} blue --lines 20", a),
        code("%%pf_invoke {endpoint_name}\nHow do I create the blue deployment?", a),
        code("%%pf_invoke\nAnd how long does it take?", a),
        code("%%pf_invoke\nHow much quota do I need for 10 instances?", a),
        code("%pf_keys {endpoint_name}", a),
        code("%pf_delete {endpoint_name}", a),
    ]


# --------------------------------------------------------------------------------------------
# (d) the article's "Deploy with a custom environment", on the local backend
# --------------------------------------------------------------------------------------------
CUSTOM_MODEL_YAML = """
$schema: https://azuremlschemas.azureedge.net/latest/model.schema.json
name: ascii-chat-model
path: flows/ascii-chat
description: a chat flow that needs a package of its own (text-unidecode)
properties:
  azureml.promptflow.source_flow_id: ascii-chat
  azureml.promptflow.mode: chat
  azureml.promptflow.chat_input: question
  azureml.promptflow.chat_output: answer
"""


def build_deployment_yaml(name: str, context: str) -> str:
    return "\n" + templates.deployment_yaml(
        name,
        "{{endpoint_name}}",
        "azureml:ascii-chat-model:1",
        instance_type="Standard_DS3_v2",
        build=context,
    )


def custom_environment() -> list:
    return [
        md("""
# Deploy with a custom environment

The article's section *"Deploy with a custom environment"* gives a deployment a **docker build
context**: a folder with a `Dockerfile` that starts from the prompt flow runtime image and
installs the flow's `requirements.txt`. On Azure, the image is built when the deployment is
created; a requirement that cannot be installed ends in `ImageBuildFailure` after 15–25 minutes.

On pfmagic's **local backend** the same YAML deploys in seconds: the Dockerfile is read
(`FROM` the runtime image = promptflow at the version pfmagic pins, `COPY`, `RUN pip install -r
…`) and its requirements are installed with **uv** into a venv of the deployment's own, cached
by what it contains. A broken requirement fails the deployment in seconds, naming the package
and the file and line it came from. Nothing is installed into this kernel's environment.

| Article / Azure | Here |
|---|---|
| image build when the deployment is created | *Building environment* stage of the progress view |
| image build log (studio, *Environments*) | `%pf_logs ENDPOINT DEPLOYMENT --build` |
| `ImageBuildFailure` after 15–25 minutes | `ImageBuildFailure` in seconds, with file:line |
| environments of the workspace | `%pf_envs` (size, last use), `%pf_envs --prune` |
"""),
        code("""
%load_ext pfmagic
endpoint_name = "custom-env-endpoint"
"""),
        md("""
## A flow with a dependency of its own

`flows/ascii-chat` is a chat flow whose tool imports `text_unidecode` (it answers with the
question spelled in plain ASCII). pfmagic does not ship that package, and this kernel does not
have it; the flow declares it in its `requirements.txt`:
"""),
        code("""
import importlib.util
from pathlib import Path

print(Path("flows/ascii-chat/requirements.txt").read_text())
print("text_unidecode importable in this kernel:", importlib.util.find_spec("text_unidecode") is not None)
"""),
        md("""
## 1. The build context

As in the article: a folder `image_build_with_reqirements` (the article's spelling) with the
flow's `requirements.txt` ("inherited from the flow folder") and a `Dockerfile`:
"""),
        code("""
import shutil

context = Path("image_build_with_reqirements")
context.mkdir(exist_ok=True)
shutil.copy("flows/ascii-chat/requirements.txt", context / "requirements.txt")
"""),
        code("""
%%writefile image_build_with_reqirements/Dockerfile
FROM mcr.microsoft.com/azureml/promptflow/promptflow-runtime:latest
COPY ./requirements.txt .
RUN pip install -r requirements.txt
"""),
        md("Register the flow as a model and create the endpoint, as in the deploy notebook:"),
        code("%%pf_model --register\n" + CUSTOM_MODEL_YAML.strip("\n")),
        code("%%pf_endpoint --create\n" + ENDPOINT_YAML.strip("\n")),
        md("""
## 2. The deployment, with `environment.build`

The environment section is the article's: `build.path` is the context folder (relative to this
notebook), `dockerfile_path` the Dockerfile in it, and `inference_config` the routes of the
serving container. The progress view gets a **Building environment** stage before the instances
start: uv resolves and installs `text-unidecode` (promptflow comes from pfmagic's own
environment, so a build adds seconds, not a full promptflow install).
"""),
        code(
            "%%pf_deployment blue --create --all-traffic\n"
            + build_deployment_yaml("blue", "image_build_with_reqirements").strip("\n")
        ),
        md(
            "The build log, the local twin of the image build log Azure keeps with the environment:"
        ),
        code("%pf_logs custom-env-endpoint blue --build"),
        md("The first score runs in that environment: the flow's import works."),
        code("%%pf_invoke custom-env-endpoint\nÇa va? Déjà vu in Zürich, São Paulo and Kraków."),
        code(
            'print("text_unidecode importable in this kernel:", '
            'importlib.util.find_spec("text_unidecode") is not None)'
        ),
        md("""
## 3. A broken requirement fails in seconds

A second build context whose `requirements.txt` names a package that does not exist (a typo, a
private package missing from the index, a version that was never released). On Azure this is
the classic `ImageBuildFailure` after a long wait; here the build fails at once, the deployment
is **Failed** with one line that names the package and the file and line it came from.
"""),
        code("""
broken = Path("image_build_broken")
broken.mkdir(exist_ok=True)
shutil.copy(context / "Dockerfile", broken / "Dockerfile")
(broken / "requirements.txt").write_text(
    "# what the flow imports beyond promptflow\\n"
    "text-unidecode==1.3\\n"
    "pfmagic-no-such-package-zz==0.1\\n"
)
"""),
        code(
            "%%pf_deployment green --create\n"
            + build_deployment_yaml("green", "image_build_broken").strip("\n"),
            "raises-exception",
        ),
        md("The resolver's own message is in the build log:"),
        code("%pf_logs custom-env-endpoint green --build"),
        md("Blue was not touched: it keeps all the traffic and keeps answering."),
        code("%pf_status custom-env-endpoint"),
        code("%pf_invoke Still there?"),
        md("""
## 4. Check before you deploy

`--check-env` resolves and builds the environment locally **without creating anything**, on the
local backend and before an Azure create alike: what Azure would say after 20 minutes, in
seconds. With the typo fixed, green asks for the same packages as blue, so the check (and the
deployment) reuse blue's environment from the cache:
"""),
        code("""
(broken / "requirements.txt").write_text(
    "# what the flow imports beyond promptflow\\ntext-unidecode==1.3\\n"
)
"""),
        code(
            "%%pf_deployment green --check-env --create\n"
            + build_deployment_yaml("green", "image_build_broken").strip("\n")
        ),
        code(
            "%%pf_invoke custom-env-endpoint --deployment green --reset\nCrème brûlée, s'il vous plaît."
        ),
        md("""
## 5. The environments

`%pf_envs` lists the environments built for local deployments: one venv per distinct set of
requirements, shared by blue and green, kept across kernel restarts (under `PFMAGIC_HOME`).
`%pf_envs --prune` removes the ones no deployment uses.
"""),
        code("%pf_envs"),
        code("%pf_delete custom-env-endpoint"),
        code("""
%pf_envs --prune
"""),
        code("""
for folder in (context, broken):
    shutil.rmtree(folder)
"""),
    ]


NOTEBOOKS = {
    "01-deploy-local.ipynb": deploy_local,
    "02-safe-rollout.ipynb": safe_rollout,
    "03-azure.ipynb": azure,
    "04-custom-environment.ipynb": custom_environment,
}


def build(name: str) -> nbformat.NotebookNode:
    nb = new_notebook(cells=NOTEBOOKS[name]())
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3 (ipykernel)",
        "language": "python",
    }
    nb.metadata["language_info"] = {"name": "python"}
    return nb


def main(argv: list[str]) -> int:
    names = [a for a in argv if not a.startswith("--")] or list(NOTEBOOKS)
    for name in names:
        nbformat.write(build(name), HERE / name)
        print(f"wrote {name}")
    if "--refresh" in argv:
        import subprocess

        for name in names:
            rc = subprocess.call(
                [sys.executable, str(HERE / "run.py"), name, "--save", str(HERE / name)]
            )
            if rc:
                return rc
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
