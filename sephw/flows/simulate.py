"""``sephw simulate BUILD_DIR --images N``: the whole network on the RTL top in Verilator,
every logit compared bit-exactly with the integer reference (sephw.reference).

The top (rtl_gen/top.py) is generated for the build directory's engine configuration and
memory sizes, the Program and memory images are written into it through its host write port,
and N test images of the dataset named in the manifest (default Fashion-MNIST) go in through
LOAD; STORE returns the logits and the cycle counter the measured cycles per inference.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import torch
import yaml

__all__ = ["load_build_graph", "simulate", "register_cli", "test_images_and_reference", "write_top_verilog"]


def load_build_graph(build_dir):
    """The IntGraph a build directory was compiled from (intgraph.pt)."""
    from ..checkpoint import CheckpointError, read_torch_file
    from ..quantize import graph_from_data
    p = Path(build_dir) / "intgraph.pt"
    if not p.is_file():
        raise CheckpointError(f"{p} is missing: recompile with this sephw (`sephw compile ... --no-synth`)")
    return graph_from_data(read_torch_file(p, "build's IntGraph"), p)


def read_build_file(build_dir, name: str):
    """The parsed JSON (``*.json``) or YAML file ``name`` of a build directory. A missing,
    unreadable or unparsable file raises :class:`~sephw.arch.ManifestError` naming it."""
    from ..arch import ManifestError
    p = Path(build_dir) / name
    try:
        text = p.read_text()
    except (OSError, UnicodeDecodeError) as e:
        why = getattr(e, "strerror", None) or " ".join(str(e).split())
        raise ManifestError(f"{p}: cannot read it ({why}): {Path(build_dir)} is not a whole build "
                            f"directory of `sephw compile`") from None
    try:
        return json.loads(text) if name.endswith(".json") else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as e:
        first = " ".join(str(e).split())[:200]
        raise ManifestError(f"{p}: not valid {'JSON' if name.endswith('.json') else 'YAML'} ({first})") from None


def _build_reports(d: Path) -> tuple[dict, list]:
    """report.json and schedule.yaml's instructions, checked for what :func:`simulate` reads."""
    from ..arch import ManifestError
    rep = read_build_file(d, "report.json")
    sched = read_build_file(d, "schedule.yaml")
    if not isinstance(rep, dict) or not isinstance(rep.get("cycles_per_inference"), (int, float)):
        raise ManifestError(f"{d / 'report.json'}: no cycles_per_inference (not a report of `sephw compile`)")
    ins = sched.get("instructions") if isinstance(sched, dict) else None
    if not isinstance(ins, list) or not all(isinstance(s, dict) and isinstance(s.get("cycles"), int)
                                            and isinstance(s.get("op"), str) for s in ins):
        raise ManifestError(f"{d / 'schedule.yaml'}: no list of instructions with op and cycles "
                            f"(not a schedule of `sephw compile`)")
    return rep, ins


def write_top_verilog(build_dir, bake: bool = False) -> Path:
    """top.v: the accelerator top for the build directory's engine configuration; with
    ``bake`` the Program and memory images are baked in (a boot ROM copies them into the
    memories after reset), else they load at run time through ``host_w``."""
    from amaranth.back import verilog
    from rtl_gen.top import Accelerator
    from sim.top_driver import memory_writes

    from ..arch import Manifest
    d = Path(build_dir)
    top = Accelerator(Manifest.read(d).arch, boot=memory_writes(d) if bake else None)
    text = verilog.convert(top, name="sephw_top", emit_src=False)
    (d / "top.v").write_text(text)
    return d / "top.v"


def test_images_and_reference(build_dir, n_images: int, data_root: str | None = None, log=print,
                              steps: int = 4):
    """The first ``n_images`` test images of the build's dataset (manifest, else the IntGraph's
    metadata, else an image folder where ``data_root`` is given, else Fashion-MNIST) and their
    logits from sephw.reference:
    ``(dataset, images (N, C, H, W) uint8, labels, expected logits int64)``."""
    from .. import data, reference
    from ..arch import Manifest
    d = Path(build_dir)
    man = Manifest.read(d)
    g = load_build_graph(d)
    # a model that names no dataset (random weights, an ImageNet-size network): an image
    # folder given with --data, at the network's input size
    ds = man.dataset or g.meta.get("dataset") or ("imagefolder" if data_root else "fashion-mnist")
    log(f"[1/{steps}] loading {n_images} {ds} test images")
    if ds == "imagefolder":
        x, y = data.load(ds, "test", data_root, size=g.input.out.height)
    else:
        x, y = data.load(ds, "test", data_root)
    x, y = x[:n_images], y[:n_images]
    if x.dim() == 3:
        x = x[:, None]
    log(f"[2/{steps}] integer reference on {len(x)} images")
    return ds, x, y, reference.run(g, x)


def simulate(build_dir, n_images: int, data_root: str | None = None, log=print) -> dict:
    """Run ``n_images`` test images on the RTL; returns the summary dict."""
    from sim.top_driver import run_top

    from ..arch import Manifest
    d = Path(build_dir)
    man = Manifest.read(d)
    # everything the run reads, read and checked before minutes of simulation, not after
    rep, sched = _build_reports(d)
    man.writes()                        # the Program and memory images against the manifest
    ds, x, y, exp = test_images_and_reference(d, n_images, data_root, log, steps=4)
    log(f"[3/4] building the top for arch {man.arch_hash} and simulating "
        f"(Verilator build: minutes the first time, cached in build/sim)")
    t0 = time.perf_counter()
    res = run_top(d, x.numpy(), exp.numpy())
    secs = time.perf_counter() - t0
    log("[4/4] comparing")
    got = torch.tensor(res["logits"], dtype=torch.int64)
    matches = int((got == exp).all(1).sum())
    cyc = sum(res["cycles"]) / len(res["cycles"])
    pred = rep["cycles_per_inference"]
    clock = man.clock_hz
    from .boardbuild import clock_of_build
    reached, basis = clock_of_build(d, clock)
    # per opcode: measured cycles (the top's pc, first image) against the cycle model's
    per_op = {}
    meas = (res.get("instruction_cycles") or [None])[0]
    if meas is not None and len(meas) == len(sched):
        for s_, mc in zip(sched, meas):
            o = per_op.setdefault(s_["op"], {"count": 0, "measured": 0, "predicted": 0})
            o["count"] += 1
            o["measured"] += mc
            o["predicted"] += s_["cycles"]
    # measured against predicted cycles per layer; per image where the run gave totals only
    from ..compiler.plots import measured_vs_predicted
    plot = d / "plots" / "measured_vs_predicted.png"
    measured_vs_predicted(sched, plot, measured=meas if meas is not None and len(meas) == len(sched) else None,
                          image_cycles=res["cycles"])
    return {"build_dir": str(d), "dataset": ds, "images": len(x), "bit_exact_images": matches,
            "accuracy": float((got.argmax(1) == y).double().mean()),
            "reference_accuracy": float((exp.argmax(1) == y).double().mean()),
            "cycles_per_inference": cyc, "cycles": res["cycles"], "predicted_cycles": pred,
            "measured_over_predicted": cyc / pred, "cycle_model": rep.get("cycle_model"),
            "per_opcode": per_op, "instruction_cycles": meas, "clock_hz": clock, "fps": clock / cyc,
            "clock_reached_hz": reached, "clock_basis": basis, "fps_at_reached_clock": reached / cyc,
            "simulation_seconds": round(secs, 1), "plot": str(plot)}


def cmd_simulate(a) -> int:
    log = (lambda *s: print(*s, file=sys.stderr)) if a.json else print
    r = simulate(a.build_dir, a.images, a.data, log=log)
    if a.json:
        print(json.dumps(r, indent=1))
    else:
        print(f"bit-exact: {r['bit_exact_images']}/{r['images']} images (every logit equal to the reference)")
        print(f"accuracy {r['accuracy']:.2%} (reference {r['reference_accuracy']:.2%}) on {r['images']} {r['dataset']} test images")
        print(f"measured {r['cycles_per_inference']:.0f} cycles/inference = {r['fps_at_reached_clock']:.1f} FPS at "
              f"{r['clock_reached_hz'] / 1e6:g} MHz ({r['clock_basis']}; {r['fps']:.1f} FPS at the nominal "
              f"{r['clock_hz'] / 1e6:g} MHz); predicted {r['predicted_cycles']} "
              f"(measured/predicted {r['measured_over_predicted']:.2f})")
        for op, o in r["per_opcode"].items():
            print(f"  {op:13s} x{o['count']:<4d} measured {o['measured']:>9d}  predicted {o['predicted']:>9d}")
        print(f"measured vs predicted cycles plot: {r['plot']}")
    return 0 if r["bit_exact_images"] == r["images"] else 1


def register_cli(subparsers) -> None:
    """Add ``simulate BUILD_DIR --images N [--json]``."""
    p = subparsers.add_parser("simulate", help="run test images on the RTL top in Verilator, bit-exact "
                                               "against the integer reference")
    p.add_argument("build_dir", help="build directory written by `sephw compile`")
    p.add_argument("--images", type=int, default=10, help="test images (default 10)")
    p.add_argument("--data", default=None, help="dataset root (default: the dataset's standard location)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=cmd_simulate)
