"""The performance report: its arithmetic, its Markdown and its plots, on made-up records;
and the one measurement it makes itself here, torch's time per step."""

import pytest

from gatework.host.tools import performance
from gatework.host.tools.cli import main


def _records():
    utilization = {"TRELLIS_COMB": {"used": 20000, "available": 83640},
                   "MULT18X18D": {"used": 70, "available": 156},
                   "DP16KD": {"used": 140, "available": 208}}
    builds = [{"board": "ulx3s-85f", "lanes": lanes, "clock_mhz": 100, "fmax_mhz": fmax,
               "timing_met": fmax >= 100,
               "utilization": utilization, "folder": "build/x", "build_seconds": 300,
               "critical_path": {"ns": 1000 / fmax, "routing_ns": 6.0,
                                 "logic_ns": 1000 / fmax - 6.0, "from": f"top.a_{lanes}",
                                 "to": "top.h0.0.0"},
               } for lanes, fmax in ((16, 120.0), (64, 90.0))]
    runs = [{"board": "ulx3s-85f", "lanes": lanes, "input_size": 64, "hidden_size": 64,
             "batch": 1, "cycles_per_step": cycles, "utilization": 0.9, "bit_exact": True,
             "latency_s": latency, "gmacs": 24576 / latency / 1e9, "link_s": 2.56e-4,
             "link_gmacs": 24576 / (latency + 2.56e-4) / 1e9, "baud": 3_000_000}
            for lanes, cycles, latency in ((16, 1600, 16e-6), (64, 460, 460 / 90e6))]
    torch = [{"input_size": 64, "hidden_size": 64, "batch": batch, "latency_s": 40e-6,
              "gmacs": 24576 * batch / 40e-6 / 1e9, "torch": "2.x", "threads": 2}
             for batch in (1, 64)]
    builds.append({"board": "ulx3s-85f", "lanes": 128, "clock_mhz": 100, "fmax_mhz": None,
                   "timing_met": False,
                   "utilization": {"MULT18X18D": {"used": 140, "available": 156},
                                   "TRELLIS_COMB": {"used": 90000, "available": 83640}},
                   "folder": "build/y", "build_seconds": None,
                   "error": "ERROR: Unable to place cell"})
    return {"builds": builds, "runs": runs, "torch": torch, "machine": "x86_64",
            "date": "2026-01-01"}


def test_report_states_timing_and_compares_with_torch():
    text = performance.performance_report(_records())
    assert "| ulx3s-85f | 64 | 100 MHz | 90.0 MHz | NOT met |" in text
    assert "| ulx3s-85f | 16 | 100 MHz | 120.0 MHz | met |" in text
    # 460 cycles at the achieved 90 MHz: 5.11 us; torch 40 us: 7.8x.
    assert "| 460 | 0.900 | 5.11 us |" in text
    assert "| 40.0 us | 7.8x |" in text
    assert "utilisation.png" in text and "throughput.png" in text
    assert ("| ulx3s-85f | 128 | 100 MHz | - | does not fit: ERROR: Unable to place cell | "
            "90000 (108%) |") in text
    # What limits each build that routed: 1000 / 90 MHz = 11.1 ns, 6 of them wire.
    assert "| ulx3s-85f | 64 | 11.1 ns | 6.0 ns | 5.1 ns | `top.a_64` | `top.h0.0.0` |" in text
    assert text.count("`top.h0.0.0`") == 2


def test_utilization_of_a_build_that_did_not_fit(tmp_path):
    (tmp_path / "top.tim").write_text(
        "Info: Device utilisation:\nInfo: \t         ICESTORM_LC:    5452/   5280   103%\n"
        "Info: \t        ICESTORM_RAM:      19/     30    63%\n"
        "Info: \t         ICESTORM_LC:    9/   5280   0%\n")
    # The first count of each cell type is the device's; nothing when there is no log.
    assert performance.failed_utilization(tmp_path) == {
        "ICESTORM_LC": {"used": 5452, "available": 5280},
        "ICESTORM_RAM": {"used": 19, "available": 30}}
    assert performance.failed_utilization(tmp_path / "missing") == {}


def test_plots_are_written(tmp_path):
    paths = performance.plot_performance(_records(), tmp_path)
    assert [path.name for path in paths] == ["utilisation.png", "throughput.png"]
    for path in paths:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert path.stat().st_size > 10_000


def test_lanes_of_two_multipliers_sit_at_their_multipliers_on_the_plots():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    figure, axis = plt.subplots()
    performance._lane_axis(axis, [{"lanes": 16}, {"lanes": 64, "lane_width": 1},
                                  {"lanes": 64, "lane_width": 2}])
    assert list(axis.get_xticks()) == [16, 64, 128]
    assert [label.get_text() for label in axis.get_xticklabels()] == ["16", "64", "64 x 2"]
    plt.close(figure)


def test_macs_per_step():
    assert performance._macs(64, 64, 1) == 3 * 64 * 128
    assert performance._macs(16, 32, 4) == 3 * 32 * 48 * 4


def test_torch_time_per_step_is_measured():
    pytest.importorskip("torch")
    seconds = performance.time_torch(8, 8, 1, steps=10, repeats=2)
    assert 0 < seconds < 0.1


def test_bench_rejects_unknown_boards(capsys):
    assert main(["bench", "--boards", "nosuchboard"]) == 2
    assert "unknown board 'nosuchboard'" in capsys.readouterr().err
    assert main(["bench", "--lanes", "icebreaker"]) == 2
    assert "BOARD=N,N" in capsys.readouterr().err
    assert main(["bench", "--lanes", "ulx3s-85f=64y2"]) == 2
    assert "counts like 16,64 or 64x2" in capsys.readouterr().err
