"""Two half-runs give exactly the state of one run (toy size): training resumes where it stopped.

  cd tools/sphinx_tiny && /usr/bin/python3 -m unittest test_resume
"""

import math
import tempfile
import unittest

import torch

import train

TOY = {"vision_steps": 2, "steps": 4, "batch": 2, "vision_batch": 2, "questions": 2, "warmup": 2, "save_every": 3,
       "eval_every": 10 ** 9, "init_vision": None,
       "config": {"hidden_size": 32, "num_layers": 2, "num_heads": 4, "num_kv_heads": 2, "head_dim": 8,
                  "intermediate_size": 64, "vit_width": 32, "vit_layers": 1, "vit_heads": 2, "conv_width": 8,
                  "num_queries": 2}}


class ResumeTest(unittest.TestCase):
    def test_two_half_runs_equal_one_run(self):
        torch.set_num_threads(1)
        with tempfile.TemporaryDirectory() as whole_dir, tempfile.TemporaryDirectory() as halves_dir:
            quiet = lambda _m: None  # noqa: E731
            whole = train.Trainer(whole_dir, TOY, log=quiet)
            whole.run()
            first = train.Trainer(halves_dir, TOY, log=quiet)
            first.run(until_step=3)
            self.assertEqual(first.step, 3)
            second = train.Trainer(halves_dir, log=quiet)  # everything from the state folder
            self.assertEqual(second.step, 3)
            second.run()
            self.assertEqual(second.step, whole.step)
            self.assertEqual(whole.step, 6)
            for (name, a), (_, b) in zip(whole.model.state_dict().items(), second.model.state_dict().items()):
                self.assertTrue(torch.equal(a, b), name)
            for (name, a), (_, b) in zip(whole.aux.state_dict().items(), second.aux.state_dict().items()):
                self.assertTrue(torch.equal(a, b), name)
            sa, sb = whole.opt.state_dict()["state"], second.opt.state_dict()["state"]
            for i in sa:
                for k in ("exp_avg", "exp_avg_sq", "step"):
                    self.assertTrue(torch.equal(sa[i][k], sb[i][k]), "%s of parameter %d" % (k, i))
            moved = any(not torch.equal(a, b) for a, b in zip(whole.model.state_dict().values(),
                                                                train.Trainer(whole_dir + "-unused", TOY, log=quiet).model.state_dict().values()))
            self.assertTrue(moved, "training changed no weight: the comparison would prove nothing")

    def test_an_extension_is_a_new_warm_up_and_cosine_kept_in_the_state(self):
        with tempfile.TemporaryDirectory() as state:
            trainer = train.Trainer(state, TOY, log=lambda _m: None)
            before = [trainer.lr(s) for s in range(trainer.total_steps)]
            trainer.extend(4, 1e-3, 2)
            trainer.save()
            resumed = train.Trainer(state, log=lambda _m: None)
            self.assertEqual(resumed.total_steps, 10)
            self.assertEqual([resumed.lr(s) for s in range(6)], before)  # the first segment is unchanged
            self.assertAlmostEqual(resumed.lr(6), 1e-3 * 0.5)  # warm-up: step 1 of 2
            self.assertAlmostEqual(resumed.lr(7), 1e-3 * (0.1 + 0.45 * (1 + math.cos(math.pi * 0.25))))
            self.assertLess(resumed.lr(9), resumed.lr(7))


if __name__ == "__main__":
    unittest.main()
