"""Host-link benchmark (issue 6): images/s over the link, measured on the simulated board and
modelled for the shipped model on the Arty A7 at 3 and 12 Mbaud.

- Measured: the small SEP-Net of tests/test_rtl_top.py (8x8 input, 10 classes, small overlay)
  on the simulated board (``sim:BUILD_DIR``: HostLink + top in Verilator, UART bridged to a
  pseudo-terminal, the same driver as a real board): wall-clock images/s of the simulation,
  simulated cycles/s, and per image the link bytes and the device's compute cycles, every
  logit checked against sephw.reference.
- Modelled: ``models/sepnet_fmnist_q.pt`` compiled for arty-a7 (``compile_graph``, what
  ``sephw compile`` runs before its board build): bytes per image on the link (WRITE_INPUT,
  RUN, READ_LOGITS and their replies, each frame with its 10 bytes of framing) at 10 bits
  per byte, against compute time (report.json cycles_per_inference / clock). Stop-and-wait
  does not overlap the two, so time per image = link + compute (+ USB turnaround per reply on
  a real FTDI bridge: not measured here, shown for a 1 ms and a 16 ms latency timer).

Run: .venv/bin/python bench/bench_link.py [--images 8] [--shipped-images 4] [--no-sim]
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import results_io  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from host.device import frame_bytes, memory_images  # noqa: E402
from host.protocol import LOAD_HEADER_BYTES, MAX_PAYLOAD, RUN_REPLY, WRITE_INPUT_HEADER  # noqa: E402
from sephw.arch import Manifest  # noqa: E402
from sephw.flows.run import open_device  # noqa: E402

ENGINE = dict(lanes=4, pe_cin=4, mac_cols=4, packed=False, pp_units=1)
ROUND_TRIPS = 3           # per image (one WRITE_INPUT chunk): WRITE_INPUT, RUN, READ_LOGITS


def per_image_bytes(input_bytes: int, logit_bytes: int) -> dict:
    """Link bytes per image, both directions, frames with their overhead."""
    chunk = MAX_PAYLOAD - WRITE_INPUT_HEADER
    n_chunks = math.ceil(input_bytes / chunk)
    host = sum(frame_bytes(WRITE_INPUT_HEADER + min(chunk, input_bytes - i * chunk)) for i in range(n_chunks))
    dev = n_chunks * frame_bytes(2)
    host += frame_bytes(0) + frame_bytes(0)                    # RUN, READ_LOGITS
    dev += frame_bytes(RUN_REPLY.size) + frame_bytes(logit_bytes)
    return {"host_to_device": host, "device_to_host": dev, "total": host + dev,
            "payload": input_bytes + logit_bytes, "round_trips": n_chunks + 2}


def load_bytes(build_dir) -> int:
    """Link bytes of loading every memory image (LOAD frames and ACKs)."""
    total = 0
    for region, blob in memory_images(build_dir):
        wb = region.word_bytes
        per = (MAX_PAYLOAD - LOAD_HEADER_BYTES) // wb
        words = len(blob) // wb
        for a in range(0, words, per):
            total += frame_bytes(LOAD_HEADER_BYTES + min(per, words - a) * wb) + frame_bytes(2)
    return total


def modelled(build_dir) -> list[dict]:
    man = Manifest.read(build_dir)
    rep = json.loads((Path(build_dir) / "report.json").read_text())
    clock = man.clock_hz
    b = per_image_bytes(man.input_bytes, man.logit_bytes)
    compute_s = rep["cycles_per_inference"] / clock
    out = []
    for baud in (3_000_000, 12_000_000):
        link_s = b["total"] * 10 / baud
        row = {"baud": baud, "bytes_per_image": b, "link_s": link_s, "compute_s": compute_s,
               "compute_cycles": rep["cycles_per_inference"], "clock_hz": clock,
               "seconds_per_image": link_s + compute_s, "images_per_s": 1 / (link_s + compute_s),
               "bound": "link" if link_s > compute_s else "compute",
               "load_bytes": load_bytes(build_dir), "load_s": load_bytes(build_dir) * 10 / baud}
        for lat_ms in (1, 16):
            row[f"images_per_s_usb_{lat_ms}ms"] = 1 / (link_s + compute_s + b["round_trips"] * lat_ms / 1e3)
        out.append(row)
    return out


def small_build(d: Path):
    from sephw import binarize, models, quantize
    from sephw.compiler import compile_graph
    torch.manual_seed(0)
    m = models.build("sepnet-small", in_channels=1, num_classes=10, stem="small", width=0.25).eval()
    binarize.binarize_model(m)
    calib = torch.randint(0, 256, (4, 1, 8, 8), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    g = quantize.quantize(m, calib)
    compile_graph(g, "arty-a7-35", d, engine=ENGINE)
    return g


def measured(d: Path, g, x: torch.Tensor, label: str) -> dict:
    """``x`` (N, C, H, W uint8) through the simulated board of build ``d``, every logit
    against sephw.reference on IntGraph ``g``."""
    from sephw import reference
    n_images = len(x)
    exp = reference.run(g, x).numpy()
    t0 = time.perf_counter()
    with open_device(f"sim:{d}", progress=False) as dev:
        t_open = time.perf_counter() - t0
        cached = dev.transport.cached
        dev.ping(b"warm-up")
        t1 = time.perf_counter()
        ld = dev.load(d)
        t_load = time.perf_counter() - t1
        st0 = dev.transport.status()
        t2 = time.perf_counter()
        got, stats = [], []
        for i in range(n_images):
            got.append(dev.infer(x[i:i + 1].numpy())[0])
            stats += dev.last_stats
        t_inf = time.perf_counter() - t2
        st1 = dev.transport.status()
        info = dev.info()
        retries = dev.retries
    got = np.stack(got)
    cyc = [s["compute_cycles"] for s in stats]
    link_bytes = stats[0]["link_bytes"]
    bit_clocks = info.clock_hz // info.baud
    sim_cycles = (st1.get("cycles", 0) - st0.get("cycles", 0)) if st0 and st1 else None
    return {"build": label,
            "images": n_images, "bit_exact_images": int((got == exp).all(1).sum()),
            "open_seconds": round(t_open, 1), "simulator_was_cached": cached, "load_bytes": ld["bytes"], "load_seconds": round(t_load, 2),
            "wall_s_per_image": t_inf / n_images, "images_per_s": n_images / t_inf,
            "compute_cycles": cyc, "link_bytes_per_image": link_bytes,
            "link_cycles_per_image": link_bytes * 10 * bit_clocks, "clocks_per_bit": bit_clocks,
            "simulated_cycles_during_inference": sim_cycles,
            "simulated_cycles_per_s": (sim_cycles / t_inf) if sim_cycles else None,
            "simulated_board_images_per_s_at_clock": info.clock_hz / (np.mean(cyc) + link_bytes * 10 * bit_clocks),
            "retries": retries, "clock_hz": info.clock_hz, "baud": info.baud}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=4)
    ap.add_argument("--shipped-images", type=int, default=0,
                    help="also run this many Fashion-MNIST test images of the shipped model on its simulated "
                         "board (Verilator build of the full overlay: minutes the first time)")
    ap.add_argument("--no-sim", action="store_true", help="modelled numbers only")
    a = ap.parse_args()
    from sephw import quantize
    from sephw.compiler import compile_graph
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        shipped = tmp / "shipped"
        t0 = time.perf_counter()
        graph = quantize.load_graph(ROOT / "models" / "sepnet_fmnist_q.pt")
        _, rep = compile_graph(graph, "arty-a7", shipped)
        model = modelled(shipped)
        man = Manifest.read(shipped)
        compile_s = time.perf_counter() - t0
        sims = []
        if not a.no_sim:
            small = tmp / "small"
            g = small_build(small)
            x = torch.randint(0, 256, (a.images, 1, 8, 8), dtype=torch.uint8,
                              generator=torch.Generator().manual_seed(7))
            sims.append(measured(small, g, x, "small SEP-Net (8x8x1), simulated board"))
            if a.shipped_images:
                from sephw import data
                fx, _ = data.load("fashion-mnist", "test")
                sims.append(measured(shipped, graph, fx[:a.shipped_images], "shipped model (28x28x1), simulated board"))
    rows = []
    for r in model:
        b = r["bytes_per_image"]
        rows.append([f"shipped model, arty-a7 {man.clock_hz / 1e6:g} MHz", f"{r['baud'] / 1e6:g} Mbaud (modelled)",
                     f"{b['total']} ({b['host_to_device']} + {b['device_to_host']})", f"{r['link_s'] * 1e3:.3f}",
                     f"{r['compute_cycles']:,} = {r['compute_s'] * 1e3:.3f} ms", f"{r['images_per_s']:.0f}",
                     f"{r['images_per_s_usb_1ms']:.0f} / {r['images_per_s_usb_16ms']:.0f}", r["bound"]])
    for sim in sims:
        rows.append([sim["build"], f"{sim['baud'] / 1e6:g} Mbaud simulated (measured)",
                     f"{sim['link_bytes_per_image']}", f"{sim['link_cycles_per_image'] / sim['clock_hz'] * 1e3:.3f}",
                     f"{int(np.mean(sim['compute_cycles'])):,} = {np.mean(sim['compute_cycles']) / sim['clock_hz'] * 1e3:.3f} ms",
                     f"{sim['images_per_s']:.2f} wall (simulation)", "-", "simulation speed"])
    notes = (f"Modelled: frames of docs/protocol.md at 10 bits per byte, stop-and-wait (link and compute "
             f"do not overlap), one WRITE_INPUT chunk per {man.input_bytes}-byte image; load of the "
             f"memory images {model[0]['load_bytes']:,} bytes = {model[0]['load_s']:.3f} s at 3 Mbaud, "
             f"{model[1]['load_s']:.3f} s at 12 Mbaud (once per session). Compute: report.json "
             f"cycles_per_inference (the compiler's cycle model of the RTL top). "
             f"The last-but-one column adds a USB turnaround per reply ({model[0]['bytes_per_image']['round_trips']} "
             f"per image) of 1 ms (FTDI latency timer set to 1) / 16 ms (its default): an assumption, not measured; "
             f"with the default latency timer the USB turnaround, not the UART, bounds a stop-and-wait host.")
    shipped_sim = [x for x in sims if x["build"].startswith("shipped")]
    if shipped_sim:
        mc = float(np.mean(shipped_sim[0]["compute_cycles"]))
        notes += (f" The simulated device counts {mc:,.0f} cycles for the shipped model "
                  f"({(mc / model[0]['compute_cycles'] - 1) * 100:+.2f} % against the model); at that count the "
                  f"modelled rates are {1 / (model[0]['link_s'] + mc / model[0]['clock_hz']):.0f} (3 Mbaud) and "
                  f"{1 / (model[1]['link_s'] + mc / model[1]['clock_hz']):.0f} (12 Mbaud) images/s.")
    for sim in sims:
        notes += (f"\n\nMeasured, {sim['build']}: {sim['images']} images, {sim['bit_exact_images']} bit-exact "
                  f"against sephw.reference; {sim['wall_s_per_image']:.2f} s wall per image = "
                  f"{sim['images_per_s']:.2f} images/s; simulation speed {sim['simulated_cycles_per_s'] or 0:,.0f} "
                  f"simulated cycles/s while streaming; at its clock the simulated board would run "
                  f"{sim['simulated_board_images_per_s_at_clock']:.0f} images/s ({sim['clocks_per_bit']} clocks per "
                  f"bit). Load {sim['load_bytes']:,} bytes in {sim['load_seconds']} s wall; open "
                  f"{sim['open_seconds']} s ({'simulator cached' if sim['simulator_was_cached'] else 'incl. the Verilator build'}); "
                  f"link retries {sim['retries']}.")
    results_io.write("link", {"modelled": model, "shipped_compile_seconds": compile_s,
                              "arch_hash": man.arch_hash, "simulated": sims},
                     ["build", "link", "bytes/image on the link", "link ms", "compute", "images/s",
                      "images/s with 1 / 16 ms USB turnaround", "bound"], rows,
                     command=" ".join(["python bench/bench_link.py"] + sys.argv[1:]),
                     notes=notes)
    print((results_io.RESULTS / "link.md").read_text())


if __name__ == "__main__":
    main()
