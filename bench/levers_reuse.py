"""Classifier-side levers on the generators of a finished `train compare` run (same folds, seeds, shards).

Equivalent to `train compare --store S --methods none,infogan ... <classifier flags>` when the generator
settings are those of RUN: the generators are seeded by (seed, method, fold) only, so refitting them
would give the same shards. Usage: python bench/levers_reuse.py RUN OUT key=value ...  (classifier options, e.g. synthetic_loss=distill)
"""
import json, sys, os
import numpy as np
from mirage.train.classifier import ClassifierConfig
from mirage.train.dataset import assemble, load_real, prepare_fold
from mirage.train.experiment import evaluate_in_memory
from mirage.train.folds import assign_shards, make_folds
from mirage.train.seeds import derive_seed
from mirage.train.stats import paired_vs_none
from mirage.train.synthetic import load_synthetic, read_manifests

run, out = sys.argv[1], sys.argv[2]
opts = {}
for kv in sys.argv[3:]:
    k, v = kv.split("=", 1)
    try:
        v = float(v)
    except ValueError:
        pass
    opts[k] = v
cfgj = json.load(open(os.path.join(run, "config.json")))
seed = int(cfgj["seed"])
cfg = ClassifierConfig.from_kwargs(**opts)
real = load_real(cfgj["store"], mode="ser")
folds = make_folds(real.items, real.metadata, cfgj["eval"])
res = {"none": {}, "infogan": {}}
nsyn = {}
for fold in folds:
    real_f = prepare_fold(real, fold.train, fold.test, "global")
    base = assemble(real_f, fold.train, None, mode="ser", rng=np.random.default_rng(0), normalise="global")
    cls_seed = derive_seed(seed, "classifier", fold.name)
    res["none"][fold.name] = evaluate_in_memory(real_f, fold, base, cfg=cfg, seed=cls_seed).uar
    slug = "".join(c if c.isalnum() or c in "-_." else "-" for c in fold.name)
    # as train compare does: an --mi-band set may hold fewer rows than asked (complete: false)
    _, kept = read_manifests([os.path.join(run, "generators", "infogan", slug, "shards")], allow_incomplete=True)
    kept = assign_shards([fold], kept)[fold.name]
    synth = load_synthetic(kept, real.labels, mode="ser", audio_dim=real.audio_dim)
    ts = assemble(real_f, fold.train, synth, mode="ser", rng=np.random.default_rng(derive_seed(seed, "pairs", fold.name)),
                  normalise="global")
    r = evaluate_in_memory(real_f, fold, ts, cfg=cfg, seed=cls_seed)
    res["infogan"][fold.name] = r.uar
    nsyn[fold.name] = r.n_train_synthetic
st = paired_vs_none(res["infogan"], res["none"], seed=derive_seed(seed, "bootstrap", "infogan"), is_none=False)
summary = {"classifier": cfg.to_json(), "uar_none": float(np.mean(list(res["none"].values()))),
           "uar_infogan": float(np.mean(list(res["infogan"].values()))), "fold_uar": res, "n_train_synthetic": nsyn, **st}
summary["delta_vs_none"] = summary["uar_infogan"] - summary["uar_none"]
os.makedirs(out, exist_ok=True)
json.dump(summary, open(os.path.join(out, "reuse.json"), "w"), indent=1, sort_keys=True, default=float)
print(json.dumps({k: v for k, v in summary.items() if k not in ("fold_uar",)}, default=float))
