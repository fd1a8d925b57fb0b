#!/usr/bin/env python3
"""bench/scaling/scaling_model.py: the per-row cost fit recovers known coefficients, the busiest
rank's rows follow the 96-row units, and a 1-rank prediction has efficiency 1 and no
communication."""
import math
import os
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "bench",
                                "scaling"))
import scaling_model as sm  # noqa: E402


class ScalingModel(unittest.TestCase):
    def test_fit_recovers_exact_costs(self):
        a, b = 3e-9, 2e-6
        linears = [{"rows": r, "cols": c, "seconds": r * (a * c * c + b * c)}
                   for r, c in ((576, 576), (192, 576), (1536, 576), (576, 1536), (1024, 2816))]
        fa, fb, worst, n = sm.fit_row_cost([{"linears": linears}])
        self.assertAlmostEqual(fa / a, 1.0, places=9)
        self.assertAlmostEqual(fb / b, 1.0, places=9)
        self.assertLess(worst, 1e-9)
        self.assertEqual(n, 5)

    def test_one_rank_is_serial(self):
        costs = {"row_a": 1e-9, "row_b": 1e-6, "forward_per_param_token": 1e-10,
                 "hessian_per_entry_token": 1e-11}
        p = sm.predict(sm.SHAPES["llama-2-7b"], 1, costs, 1.0)
        self.assertAlmostEqual(p["efficiency"], 1.0, places=12)
        self.assertEqual(p["parts"]["quantize_collectives"], 0.0)
        self.assertEqual(p["parts"]["hessian_allreduce"], 0.0)

    def test_row_starts_match_the_pipeline_split(self):
        # The values tests/quant/test_row_group.cpp checks for quant::row_block.
        self.assertEqual(sm.row_starts(1024, 2), [0, 480, 1024])
        self.assertEqual(sm.row_starts(512, 2), [0, 288, 512])
        self.assertEqual(sm.row_starts(192, 4), [0, 0, 96, 96, 192])

    def test_busiest_rank_holds_whole_units(self):
        # q of 70B: 8192 rows, 128 per rank at 64 ranks: blocks of one or two units of 96, so
        # the busiest has 2 units; at 512 ranks (16 rows each) 1 unit: its time does not fall
        # below one unit's.
        costs = {"row_a": 1e-9, "row_b": 0.0, "forward_per_param_token": 0.0,
                 "hessian_per_entry_token": 0.0}
        shape = {"hidden": 8192, "intermediate": 8192, "kv": 8192, "layers": 1}
        per_row = 1e-9 * 8192 * 8192
        for ranks, units in ((64, 2), (512, 1)):
            p = sm.predict(shape, ranks, costs, 1.0)
            self.assertAlmostEqual(p["parts"]["quantize_busiest_rank"] / (7 * units * 96 * per_row),
                                   1.0, places=9)
            self.assertAlmostEqual(p["quantize_balance"],
                                   8192 / ranks / (units * 96), places=9)


if __name__ == "__main__":
    unittest.main()
