"""Contrastive alignment of image features and text (open_clip's ClipLoss).

The trunk is frozen, so each step only runs the image projection (on cached features) and
the text side: for MiniLM (locked) the pooled sentence vectors are cached too and only the
linear text projection learns; the open_clip text transformer is trained end to end.
Both variants are scored by image -> caption recall@10 on validation MedPix images.
"""

from __future__ import annotations

import numpy as np
import torch
from open_clip.loss import ClipLoss
from tqdm import tqdm

from imaging.datasets import ImageRecord


@torch.no_grad()
def minilm_pooled(clip, tokenizer, texts: list[str], batch: int = 128) -> torch.Tensor:
    """MiniLM mean-pooled vectors (before the trained projection) for each text."""
    enc = clip.text
    out = []
    for start in tqdm(range(0, len(texts), batch), desc="MiniLM text", unit="batch", leave=False):
        ids = tokenizer(texts[start:start + batch])
        mask = (ids != enc.config.pad_token_id).long()
        hidden = enc.transformer(input_ids=ids, attention_mask=mask)
        out.append(enc.pooler(hidden, mask))
    return torch.cat(out)


def caption_recall(img_emb: np.ndarray, records: list[ImageRecord], encode_text, k: int = 10):
    """Image -> own caption among the distinct captions of these MedPix records."""
    idx = [i for i, r in enumerate(records) if r.dataset == "medpix" and r.caption]
    if not idx:
        return float("nan"), float("nan")
    captions = sorted({records[i].caption for i in idx})
    col = {c: j for j, c in enumerate(captions)}
    txt = encode_text(captions)
    sim = img_emb[idx] @ txt.T
    target = np.array([col[records[i].caption] for i in idx])
    true = sim[np.arange(len(idx)), target]
    rank = (sim > true[:, None]).sum(1)
    return float((rank < k).mean()), min(1.0, k / len(captions))


def train_alignment(clip, tokenizer, text_tower: str, feats_views: list[np.ndarray],
                    records: list[ImageRecord], val_feats: np.ndarray,
                    val_records: list[ImageRecord], epochs: int, seed: int,
                    log=print) -> dict:
    """Train visual.proj and the text side in place; returns the best validation recall."""
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    pairs = [(i, t) for i, r in enumerate(records) for t in r.texts]
    if not pairs:
        return {"recall@10": float("nan"), "chance": float("nan")}
    texts = sorted({t for _, t in pairs})
    text_index = {t: j for j, t in enumerate(texts)}
    pair_img = torch.tensor([p[0] for p in pairs])
    pair_txt = torch.tensor([text_index[p[1]] for p in pairs])
    views = [torch.from_numpy(f) for f in feats_views]
    visual = clip.visual
    params = list(visual.proj.parameters()) + [clip.logit_scale]
    if text_tower == "minilm":
        pooled = minilm_pooled(clip, tokenizer, texts)
        params += list(clip.text.proj.parameters())
    else:
        tokens = tokenizer(texts)
        params += [p for n, p in clip.named_parameters()
                   if not n.startswith("visual.") and n != "logit_scale"]
    opt = torch.optim.AdamW(params, lr=1e-3 if text_tower == "minilm" else 5e-4,
                            weight_decay=0.05)
    loss_fn = ClipLoss()
    batch = 256

    def encode_text_eval(strings: list[str]) -> np.ndarray:
        with torch.no_grad():
            if text_tower == "minilm":
                v = clip.text.proj(minilm_pooled(clip, tokenizer, strings))
            else:
                v = clip.encode_text(tokenizer(strings))
            return torch.nn.functional.normalize(v, dim=-1).numpy()

    best = {"recall@10": -1.0, "epoch": -1}
    best_state = None
    for epoch in range(epochs):
        clip.train()
        visual.eval()  # the frozen trunk's batch norms stay in inference mode
        visual.proj.train()
        order = torch.randperm(len(pairs), generator=g)
        # one pair per image per step is not enforced; duplicates in a batch are rare
        total = 0.0
        for start in range(0, len(order), batch):
            sel = order[start:start + batch]
            v = torch.randint(len(views), (1,), generator=g).item()
            img = visual.proj(views[v][pair_img[sel]])
            if text_tower == "minilm":
                txt = clip.text.proj(pooled[pair_txt[sel]])
            else:
                txt = clip.encode_text(tokens[pair_txt[sel]])
            img = torch.nn.functional.normalize(img, dim=-1)
            txt = torch.nn.functional.normalize(txt, dim=-1)
            loss = loss_fn(img, txt, clip.logit_scale.exp())
            opt.zero_grad()
            loss.backward()
            opt.step()
            with torch.no_grad():
                clip.logit_scale.clamp_(0, 4.6052)
            total += float(loss.detach()) * len(sel)
        clip.eval()
        with torch.no_grad():
            val_img = torch.nn.functional.normalize(
                visual.proj(torch.from_numpy(val_feats)), dim=-1).numpy()
        recall, chance = caption_recall(val_img, val_records, encode_text_eval)
        log(f"  [{text_tower}] epoch {epoch + 1}/{epochs}: loss {total / len(pairs):.3f}, "
            f"val caption recall@10 {recall:.3f} (chance {chance:.3f})")
        if not np.isfinite(recall) or recall > best["recall@10"]:
            best = {"recall@10": recall, "chance": chance, "epoch": epoch + 1}
            best_state = {k: v.detach().clone() for k, v in clip.state_dict().items()
                          if not k.startswith("visual.encoder.") and
                          not k.startswith("text.transformer.")}
    if best_state is not None:
        clip.load_state_dict(best_state, strict=False)
    clip.eval()
    return best
