"""What would fine-tuning the ImageNet backbone cost an MCH run on this CPU? (issue 16)

    python benchmarks/mch_finetune_cost.py                 # 1 thread, batch 64, 112 px, 20 timed steps
    python benchmarks/mch_finetune_cost.py --threads 2 --steps 10

MCH's base models fine-tune an ImageNet AlexNet (§5); ours sit on the *frozen* EfficientNet-Lite0 as
a head on cached pooled features (:mod:`hashrepro.methods.mch`, pretrained regime), and on the same
2,000 mosaics they are not stronger than the small CNN trained from scratch (page *Are the base
models stronger on the backbone?*). This prints the cost of one training step of a base model's
head (a batch of ``--batch`` mosaics, ``--size`` px, as the recipe's ``base_iters`` steps) in four
settings, timed in the same run, with the ratio to the first (the reference, what the recipe does):

* ``frozen``   -- linear head on cached pooled 1280-d features (the recipe);
* ``last-1``   -- the last MBConv block + head conv fine-tuned, on cached maps of the block before it;
* ``last-4``   -- the last four blocks + head conv fine-tuned, on cached maps;
* ``full``     -- every layer fine-tuned from the images (no cache possible).

and projects one MCH run's base-model training (``--iters`` steps) and the re-encoding of every
cached crop after training (``--crops`` crops, forward only through the fine-tuned part), for one
run and for the 45-run grid (5 base models x 3 lengths x 3 seeds). Random inputs: the cost does not
depend on the pixel values. Nothing is written.
"""
from __future__ import annotations

import argparse
import time

import torch


def _time(fn, steps: int) -> float:
    fn()  # warm-up
    t = time.perf_counter()
    for _ in range(steps):
        fn()
    return (time.perf_counter() - t) / steps


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--size", type=int, default=112, help="pixels per side (the pretrained regime's 112)")
    ap.add_argument("--bits", type=int, default=32)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--iters", type=int, default=2000, help="base-model steps of one run (the preset's base_iters)")
    ap.add_argument("--crops", type=int, default=21920, help="crops re-encoded per run (seed 0's crop plan)")
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    from hashrepro.models.backbones import get_backbone

    net = get_backbone("efficientnet_lite0", pretrained=None).eval()   # the weights do not change the cost
    n_blocks = len(net._blocks)
    x = torch.randn(a.batch, 3, a.size, a.size)
    head = torch.nn.Linear(net.feature_dim, a.bits)

    def step(params, forward):
        opt = torch.optim.SGD(params, lr=1e-3, momentum=0.9)

        def run():
            opt.zero_grad(set_to_none=True)
            loss = torch.tanh(head(forward())).pow(2).mean()
            loss.backward()
            opt.step()
        return run

    rows = []
    with torch.no_grad():
        feats = net.features(x)
    rows.append(("frozen", _time(step(list(head.parameters()), lambda: feats), a.steps), None))
    for k in (1, 4):
        start = n_blocks - k
        with torch.no_grad():
            maps = net.blocks_maps(x, upto=start)
        part = list(net._blocks[start:].parameters()) + list(net._conv_head.parameters()) + list(net._bn1.parameters())
        net.train()
        t_train = _time(step(part + list(head.parameters()), lambda: net.head_maps(maps, start).mean(dim=(2, 3))),
                        a.steps)
        net.eval()
        with torch.no_grad():
            t_enc = _time(lambda: net.head_maps(maps, start), max(3, a.steps // 4)) / a.batch
        rows.append((f"last-{k}", t_train, t_enc))
    net.train()
    t_full = _time(step(list(net.parameters()) + list(head.parameters()), lambda: net.features(x)),
                   max(3, a.steps // 4))
    net.eval()
    with torch.no_grad():
        t_enc = _time(lambda: net.features(x), 3) / a.batch
    rows.append(("full", t_full, t_enc))

    ref = rows[0][1]
    print(f"threads {a.threads}, batch {a.batch}, {a.size} px, {a.bits} bits; projection: {a.iters} steps + "
          f"{a.crops} crops re-encoded per run, 45 runs in the grid")
    print(f"{'setting':8s} {'ms/step':>9s} {'ratio':>8s} {'ms/crop enc':>12s} {'min/run':>8s} {'h/grid':>7s}")
    for name, t, enc in rows:
        run_s = a.iters * t + (enc or 0.0) * a.crops
        print(f"{name:8s} {t * 1e3:9.2f} {t / ref:8.1f} {'' if enc is None else f'{enc * 1e3:12.2f}':>12s} "
              f"{run_s / 60:8.1f} {45 * run_s / 3600:7.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
