"""A test scoring script: reads its model file at init, answers the chat contract."""

import json
import os
import time

state = {}


def init():
    model_dir = os.environ["AZUREML_MODEL_DIR"]
    with open(os.path.join(model_dir, "model", "weights.txt"), encoding="utf-8") as f:
        state["weights"] = f.read().strip()
    state["model_dir"] = model_dir


def run(raw_data):
    data = json.loads(raw_data)
    time.sleep(float(data.get("sleep", 0)))
    if data.get("question") == "explode":
        raise ValueError("user asked for an explosion")
    turns = len(data.get("chat_history") or [])
    return {
        "answer": f"Scored: {data['question']}",
        "turns": turns,
        "weights": state["weights"],
        "model_dir": state["model_dir"],
        "pid": os.getpid(),
    }
