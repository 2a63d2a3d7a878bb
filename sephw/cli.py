"""The ``sephw`` command line."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

def _fit_args(p: argparse.ArgumentParser, epochs: int, lr: float, wd: float) -> None:
    p.add_argument("--epochs", type=int, default=epochs)
    p.add_argument("--lr", type=float, default=lr, help="peak learning rate (cosine schedule)")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--weight-decay", type=float, default=wd)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-augment", action="store_true", help="no random crop / flip")
    p.add_argument("--limit", type=int, default=None, help="train on the first N images only")
    p.add_argument("--resume", action="store_true", help="continue from OUT.resume if present")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")


def _data_args(p: argparse.ArgumentParser, required: bool = False) -> None:
    from .data import DATASETS
    p.add_argument("--dataset", choices=DATASETS, default="fashion-mnist" if required else None)
    p.add_argument("--data", default=None, help="dataset folder (default for fashion-mnist: "
                                                 "/usr/share/datasets/fashion-mnist)")


def _cfg(a):
    from .train import FitConfig
    if a.threads:
        import torch
        torch.set_num_threads(a.threads)
    return FitConfig(epochs=a.epochs, lr=a.lr, batch_size=a.batch_size, weight_decay=a.weight_decay,
                     seed=a.seed, augment=not a.no_augment, limit=a.limit)


def cmd_train(a) -> int:
    from .train import run_train
    kw = json.loads(a.arch_kwargs) if a.arch_kwargs else {}
    if a.width is not None:
        kw["width"] = a.width
    if a.stem is not None:
        kw["stem"] = a.stem
    run_train(a.arch, kw, a.dataset, a.data, Path(a.output), _cfg(a), resume=a.resume)
    return 0


def cmd_binarize(a) -> int:
    from .train import run_binarize
    run_binarize(Path(a.model), Path(a.output), a.scope, a.dataset, a.data)
    return 0


def cmd_refine(a) -> int:
    from .train import run_refine
    cfg = _cfg(a)
    if a.teacher:
        cfg.kd_weight, cfg.kd_temp = a.kd_weight, a.kd_temp
    run_refine(Path(a.model), Path(a.output), a.dataset, a.data, cfg, resume=a.resume,
               teacher=Path(a.teacher) if a.teacher else None)
    return 0


def cmd_eval(a) -> int:
    from . import checkpoint, data
    from .train import evaluate
    model, ck = checkpoint.load(a.model)
    ds = a.dataset or ck["metadata"].get("dataset") or "fashion-mnist"
    x, y = data.load(ds, a.split, a.data)
    if a.limit:
        x, y = x[:a.limit], y[:a.limit]
    acc = evaluate(model, x, y, progress=True)
    if a.json:
        print(json.dumps({"model": str(a.model), "dataset": ds, "split": a.split, "images": len(x),
                          "accuracy": acc}))
    else:
        print(f"{a.model}: {ds} {a.split} accuracy {acc * 100:.2f}% on {len(x)} images")
    return 0


def info_dict(spec: str, scope: str | None = None) -> dict:
    """Size accounting for a checkpoint path or architecture name (``sephw info``)."""
    from . import checkpoint
    from .binarize import binarized_scope, size_report
    model, ck = checkpoint.load_model_or_arch(spec)
    # An architecture name is reported as SEP-Net-B would be: binarize the k×k kernels.
    if ck is None or not binarized_scope(model):
        scope = scope or "kxk"
    rep = size_report(model, scope)
    rep["model"] = spec
    rep["arch"] = ck["arch"] if ck else spec
    if ck:
        rep["arch_kwargs"] = ck["arch_kwargs"]
        rep["metadata"] = {k: v for k, v in ck["metadata"].items() if k not in ("epochs", "refine_epochs")}
    return rep


def print_size_table(rep: dict, file=sys.stdout) -> None:
    mib = 2 ** 20
    print(f"model {rep['model']} ({rep['arch']})", file=file)
    print(f"  {'weights (conv + FC)':<28}{rep['weights']:>12,}", file=file)
    print(f"  {'effective parameters':<28}{rep['effective_params']:>12,}", file=file)
    for key, label in (("bytes_R", "R  (fp32)"), ("bytes_B", "B  (1-bit patterns)"),
                       ("bytes_BQ", "BQ (1-bit + int8)")):
        print(f"  {label:<28}{rep[key]:>12,} B  {rep[key] / mib:7.3f} MiB", file=file)


def cmd_info(a) -> int:
    rep = info_dict(a.model, a.scope)
    if a.json:
        print(json.dumps(rep, indent=2, default=str))
    else:
        print_size_table(rep)
        acc = rep.get("metadata", {}).get("accuracy")
        if acc:
            print("  accuracy: " + ", ".join(f"{k} {v * 100:.2f}%" for k, v in acc.items()))
    return 0


def cmd_boards(a) -> int:
    import boards
    bs = boards.all_boards()
    if a.json:
        print(json.dumps({n: {"part": b.part, "clock_hz": b.clock_hz, "resources": b.resources,
                              "onchip_bytes": b.onchip_bytes, "toolchain": b.toolchain, "aliases": list(b.aliases),
                              "host_links": b.host_links, "platform": b.platform, "lut_fill": b.lut_fill,
                              "external_memory": None if b.external is None else {
                                  "kind": b.external.kind, "bytes": b.external.bytes,
                                  "data_bits": b.external.data_bits, "read_latency": b.external.read_latency}}
                          for n, b in bs.items()}, indent=2))
        return 0
    print(f"{'board':<14}{'part':<22}{'clock':>8}{'LUT':>8}{'DSP':>6}{'BRAM KiB':>10}{'DRAM MiB':>10}  toolchain  aliases")
    for b in bs.values():
        r = b.resources
        dram = f"{b.external.bytes / 2**20:.0f}" if b.external else "-"
        print(f"{b.name:<14}{b.part:<22}{b.clock_hz / 1e6:>6.0f}MHz{r['lut']:>8}{r['dsp']:>6}"
              f"{b.onchip_bytes / 1024:>10.0f}{dram:>10}  {b.toolchain:<9}  {', '.join(b.aliases)}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from .binarize import SCOPES
    from .models import ARCHITECTURES
    p = argparse.ArgumentParser(prog="sephw", description="SEP-Net hardware generation and co-design toolkit")
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train a model at full precision")
    t.add_argument("--arch", choices=sorted(ARCHITECTURES), required=True)
    t.add_argument("--width", type=float, default=None, help="SEP-Net channel multiplier")
    t.add_argument("--stem", choices=["imagenet", "small"], default=None, help="SEP-Net stem")
    t.add_argument("--arch-kwargs", default=None, help="extra constructor arguments as JSON")
    _data_args(t, required=True)
    t.add_argument("-o", "--output", required=True)
    _fit_args(t, epochs=30, lr=0.1, wd=5e-4)
    t.set_defaults(func=cmd_train)

    b = sub.add_parser("binarize", help="binarize k×k kernels into patterns (paper Eq. 1)")
    b.add_argument("model")
    b.add_argument("--scope", choices=list(SCOPES), default="kxk")
    _data_args(b)
    b.add_argument("-o", "--output", required=True)
    b.set_defaults(func=cmd_binarize)

    r = sub.add_parser("refine", help="fine-tune alpha, 1×1 weights and BN with patterns frozen")
    r.add_argument("model")
    _data_args(r)
    r.add_argument("-o", "--output", required=True)
    _fit_args(r, epochs=10, lr=0.01, wd=5e-5)
    r.add_argument("--teacher", default=None, help="distill from this checkpoint's logits (e.g. the full model)")
    r.add_argument("--kd-weight", type=float, default=0.7, help="weight of the distillation term (with --teacher)")
    r.add_argument("--kd-temp", type=float, default=4.0, help="distillation temperature (with --teacher)")
    r.set_defaults(func=cmd_refine)

    e = sub.add_parser("eval", help="evaluate a checkpoint")
    e.add_argument("model")
    _data_args(e)
    e.add_argument("--split", choices=["train", "test"], default="test")
    e.add_argument("--limit", type=int, default=None)
    e.add_argument("--json", action="store_true")
    e.set_defaults(func=cmd_eval)

    i = sub.add_parser("info", help="size accounting of a checkpoint or an architecture")
    i.add_argument("model", help="checkpoint path or architecture name")
    i.add_argument("--scope", choices=list(SCOPES), default=None,
                   help="count these kernels as binarized (default: the checkpoint's own, or kxk)")
    i.add_argument("--json", action="store_true")
    i.set_defaults(func=cmd_info)

    bo = sub.add_parser("boards", help="list the board profiles")
    bo.add_argument("--json", action="store_true")
    bo.set_defaults(func=cmd_boards)

    from . import quantize
    from .flows import compile as compile_flow
    from .flows import demo, run, simulate
    demo.register_cli(sub)
    quantize.register_cli(sub)
    compile_flow.register_cli(sub)
    simulate.register_cli(sub)
    run.register_cli(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    from .checkpoint import CheckpointError
    from .data import DatasetError
    from . import train
    argv = list(sys.argv[1:] if argv is None else argv)
    train.COMMAND = argv
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (CheckpointError, DatasetError, ValueError) as e:
        print(f"sephw: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
