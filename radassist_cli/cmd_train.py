"""`radassist train --data DIR --out weights/`: heads + text alignment -> MONAI bundle."""

from __future__ import annotations

import argparse
from pathlib import Path

from common.errors import RadAssistError


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "train", help="train the model on the train split, calibrate on val, write weights/")
    p.add_argument("--data", type=Path, default=None,
                   help="data folder laid out like ../shared/data/dev (default RADASSIST_DATA)")
    p.add_argument("--out", type=Path, default=Path("weights"), help="bundle folder to write")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int, default=30, help="contrastive alignment epochs")
    p.add_argument("--views", type=int, default=1,
                   help="feature views per training image (1 plain + augmented ones)")
    p.add_argument("--text-tower", choices=("both", "minilm", "transformer"), default="both",
                   help="train both text towers and keep the better by validation retrieval")
    p.add_argument("--limit", type=int, default=None,
                   help="use only N images per dataset and modality (smoke tests)")
    p.add_argument("--heads-only", action="store_true",
                   help="refit only the task heads of the existing bundle in --out (same trunk, "
                        "projection and text tower), then evaluate it")
    p.add_argument("--no-evaluate", action="store_true",
                   help="skip the validation evaluation written into the bundle and card")
    p.set_defaults(func=handle)


def handle(args: argparse.Namespace) -> int:
    from imaging.datasets import default_data_dir
    from imaging.training.train import refit_heads, train

    data = args.data or default_data_dir()
    if not (data / "medpix").is_dir() and not (data / "nih_cxr14").is_dir():
        raise RadAssistError(str(data), "no medpix/ or nih_cxr14/ folder here", reason="no_data")
    towers = ("minilm", "transformer") if args.text_tower == "both" else (args.text_tower,)
    try:
        if args.heads_only:
            if not (args.out / "models" / "model.pt").is_file():
                raise ValueError(f"--heads-only needs an existing bundle in {args.out}")
            info = refit_heads(data, args.out, seed=args.seed)
        else:
            info = train(data, args.out, seed=args.seed, epochs=args.epochs,
                         views=args.views, text_towers=towers, limit=args.limit)
    except ValueError as exc:
        raise RadAssistError(str(data), str(exc), reason="training") from exc
    if not args.no_evaluate:
        from imaging.training.card import evaluate_into_bundle

        evaluate_into_bundle(data, args.out, info, limit=args.limit)
    return 0
