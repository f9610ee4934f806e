"""lmms-eval task functions over a LLaMA-Factory ShareGPT JSONL, the format dmo reads and writes.

Each document is one line: ``messages`` (the user turn holds ``<image>`` and the question, the
assistant turn the answer), ``images`` (one path, relative to this folder or absolute) and an
optional ``answers`` list of every reference answer. Used by ``sharegpt_exact_match.yaml``.
"""

from pathlib import Path

from PIL import Image

HERE = Path(__file__).resolve().parent


def doc_to_visual(doc):
    return [Image.open(HERE / doc["images"][0]).convert("RGB")]


def doc_to_text(doc):
    return doc["messages"][0]["content"].replace("<image>", "").strip()


def doc_to_target(doc):
    return doc["messages"][1]["content"]


def process_results(doc, results):
    """Exact match after lower-casing and trimming, against any reference answer."""
    references = doc.get("answers") or [doc["messages"][1]["content"]]
    answer = " ".join(results[0].lower().split())
    return {"exact_match": float(any(answer == " ".join(r.lower().split()) for r in references))}
