"""The blind interpretability study (docs/design.md §6.4): transcoder vs SAE features, rated blind.

1. `sample`: live features of a transcoder and of an SAE on the same MLP input at matched L0,
   drawn with a fixed seed, equal counts per arm, each with enough activating tokens.
2. `packet`: blind dashboards as anonymised cards in shuffled order; the key (card -> arm,
   feature) kept outside the packet, its SHA-256 recorded inside.
3. `server` (+ `page`, `ratings`): `python -m transcoder_lab.study serve <packet>`, a rating web
   app on 127.0.0.1 that saves every rating at once and atomically to `ratings/<profile>/<rater>.json`.
4. `rater`: the organism's automatic ground-truth rater (corpus labels, F1 thresholds).
5. `full_power` (organism profiles): the ground-truth rater on every live feature of both arms,
   stored apart from the cards, with one primary test named in the config before the run and a
   verdict ("ok" when its bootstrap interval lies above 0, else "BELOW").
6. `analysis` and `stats`: unblinding (key hash checked), counts per arm, Fisher exact tests,
   bootstrap intervals, context-free over all and among yes-or-maybe features, Cohen's kappa and
   Krippendorff's alpha, a figure.
"""
