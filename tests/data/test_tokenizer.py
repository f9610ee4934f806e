from __future__ import annotations

from dmo.data import generate_splits, load_tokenizer, train_tokenizer
from dmo.data.encoding import IGNORE, TokenIds, encode_split, prompt_batch, training_batch
from dmo.data.tokenizer import IMAGE


def _tokenizer():
    texts = []
    for kind in ("general", "ocr", "counting", "chart"):
        for s in generate_splits(kind, domain=kind, sizes={"train": 200, "dev": 1, "test": 1}, seed=0)["train"]:
            texts += [s.question, s.answer]
    return train_tokenizer(texts, vocab_size=256)


def test_special_tokens_and_exact_decoding(tmp_path):
    tokenizer = _tokenizer()
    assert tokenizer.pad_token_id == 0
    assert tokenizer.convert_tokens_to_ids(IMAGE) != tokenizer.unk_token_id
    ids = tokenizer("what number is written? 407", add_special_tokens=False)["input_ids"]
    assert tokenizer.decode(ids) == "what number is written? 407"
    assert [tokenizer.decode([i]) for i in tokenizer("407", add_special_tokens=False)["input_ids"]] == ["4", "0", "7"]
    tokenizer.save_pretrained(tmp_path)
    assert (tmp_path / "tokenizer.json").is_file()
    assert load_tokenizer(tmp_path)("what color", add_special_tokens=False)["input_ids"] == tokenizer("what color", add_special_tokens=False)["input_ids"]


def test_encoding_layout():
    tokenizer = _tokenizer()
    ids = TokenIds.of(tokenizer)
    samples = generate_splits("chart", domain="chart", sizes={"train": 4, "dev": 1, "test": 1}, seed=0)["train"]
    split = encode_split(samples, tokenizer, num_image_tokens=64)
    batch = training_batch(split, [0, 1, 2, 3], ids.pad)
    row = batch["input_ids"][0]
    assert row[0] == ids.bos and (row == ids.image).sum() == 64 and row[1:65].eq(ids.image).all()
    supervised = batch["labels"][0][batch["labels"][0] != IGNORE].tolist()
    assert supervised == split.answers[0] and supervised[-1] == ids.eos
    assert (batch["attention_mask"].sum(1) == torch_lengths(split)).all()
    prompts = prompt_batch(split, [0, 1], ids.pad)
    assert prompts["input_ids"][:, -1].eq(ids.sep).all()  # left padded: every prompt ends flush right


def torch_lengths(split):
    import torch

    return torch.tensor([len(p) + len(a) for p, a in zip(split.prompts, split.answers)])
