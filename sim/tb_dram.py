"""cocotb testbench: LiteDRAM's native port through its own simulation core (rtl_gen.dram,
``litedram_gen --sim``: the configuration's controller with SDRAMPHYModel in place of the PHY).

The controller is initialized over ``wb_ctrl`` as the host does it (host/dram.py): the
core's init sequence from its generated ``sdram_phy.h`` (the recipe of
:func:`rtl_gen.dram.init_recipe`: DFII in software control, reset and CKE released, the mode
registers, ZQ calibration, with their waits), then DFII in hardware control and ``init_done``
set (the model needs no read leveling); then:

1. a sequential burst of full-word writes, then the same words read back (commands issued
   back to back, several in flight): data, and the port's bytes per cycle each way;
2. writes to random words across the whole memory (every bank and many rows), some with
   partial byte enables over a full write, read back in a random order.

Every read is compared with a model of the memory. result.json: the cycles and bytes per
cycle of the sequential burst each way, and the words checked.
"""
import json
import random

import cocotb
from amaranth.lib import data
from cocotb.triggers import ReadOnly, RisingEdge

from sim.tb import StreamDriver, StreamMonitor, load_case, start_clock_reset, wait_for


async def wb_write(dut, byte_addr: int, value: int):
    """One Wishbone write on wb_ctrl (CSR byte address -> word address)."""
    dut.ctrl_adr.value = byte_addr >> 2
    dut.ctrl_dat_w.value = value
    dut.ctrl_we.value = 1
    dut.ctrl_stb.value = 1
    for _ in range(100):
        await RisingEdge(dut.clk)
        await ReadOnly()
        if dut.ctrl_ack.value == 1:
            break
    else:
        raise AssertionError(f"wb_ctrl write to {byte_addr:#x}: no ack in 100 cycles")
    await RisingEdge(dut.clk)
    dut.ctrl_stb.value = 0
    dut.ctrl_we.value = 0


async def init_controller(dut, csr: dict, init: list):
    """Initialize the sim core over wb_ctrl as the host does: the recipe's ``init`` (CSR
    writes and waits, in order), then DFII in hardware control and ``init_done`` set (the
    model needs no read leveling)."""
    dut.ctrl_stb.value = 0
    dut.ctrl_we.value = 0
    await start_clock_reset(dut)
    assert dut.init_done.value == 0
    for op in init:
        if "delay_cycles" in op:
            for _ in range(op["delay_cycles"]):
                await RisingEdge(dut.clk)
        else:
            await wb_write(dut, csr[op["csr"]], op["value"])
    await wb_write(dut, csr["sdram_dfii_control"], 1)    # DFII_CONTROL_SEL: hardware control
    await wb_write(dut, csr["ddrctrl_init_done"], 1)
    await RisingEdge(dut.clk)
    await ReadOnly()
    assert dut.init_done.value == 1 and dut.init_error.value == 0
    await RisingEdge(dut.clk)


@cocotb.test()
async def native_port_through_the_dram_model(dut):
    case = load_case()
    DW, AW, csr = case["data_width"], case["addr_width"], case["csr"]
    nbytes = DW // 8
    rng = random.Random(case["seed"])
    await init_controller(dut, csr, case["init"])

    cmd_l = data.StructLayout({"addr": AW, "we": 1})
    wd_l = data.StructLayout({"data": DW, "we": nbytes})
    cmd = StreamDriver(dut, "port__cmd", cmd_l)
    wd = StreamDriver(dut, "port__wdata", wd_l)
    rd = StreamMonitor(dut, "port__rdata", DW)
    mem = {}
    full = (1 << nbytes) - 1

    async def write(words, what):
        """words: [(addr, value, byte enables)]; waits until every command and word is taken."""
        c0, w0 = cmd.sent, wd.sent
        start = rd._cycle
        for a, v, we in words:
            cmd.send({"addr": a, "we": 1})
            wd.send({"data": v, "we": we})
            old = mem.get(a, 0)
            mem[a] = sum(((v if we >> b & 1 else old) >> (8 * b) & 0xFF) << (8 * b) for b in range(nbytes))
        await wait_for(dut, lambda: cmd.sent == c0 + len(words) and wd.sent == w0 + len(words),
                       timeout=40 * len(words) + 400, what=what)
        return rd._cycle - start

    async def read(addrs, what):
        n0 = len(rd.received)
        start = rd._cycle
        for a in addrs:
            cmd.send({"addr": a, "we": 0})
        await wait_for(dut, lambda: len(rd.received) >= n0 + len(addrs), timeout=40 * len(addrs) + 400, what=what)
        cycles = rd.cycles[-1] - start
        for k, (a, got) in enumerate(zip(addrs, rd.received[n0:])):
            assert got == mem[a], f"{what}: read {k} of word {a:#x}: got {got:#x}, expected {mem[a]:#x}"
        return cycles

    n = case["burst"]
    base = rng.randrange(0, (1 << AW) - n)
    seq = [(base + i, rng.getrandbits(DW), full) for i in range(n)]
    wcyc = await write(seq, "sequential writes")
    rcyc = await read([a for a, _, _ in seq], "sequential reads")

    rand = rng.sample(range(1 << AW), case["random"])
    await write([(a, rng.getrandbits(DW), full) for a in rand], "random writes")
    part = rng.sample(rand, len(rand) // 2)
    await write([(a, rng.getrandbits(DW), rng.randrange(1, full)) for a in part], "partial writes")
    rng.shuffle(rand)
    await read(rand, "random reads")
    for _ in range(20):
        await RisingEdge(dut.clk)
    assert len(rd.received) == n + len(rand), "a read returned more words than were asked"
    with open("result.json", "w") as f:
        json.dump({"burst_words": n, "write_cycles": wcyc, "read_cycles": rcyc,
                   "write_bytes_per_cycle": n * nbytes / wcyc, "read_bytes_per_cycle": n * nbytes / rcyc,
                   "words_checked": n + len(rand)}, f)
