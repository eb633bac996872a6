"""How long and how much memory each DVC stage of a profile needs: FLOPs and peak memory from the
config alone, turned into seconds with throughputs measured on this machine in the same run and an
assumed GPU. Nothing is stored: every number comes from the config, the formulas below and the
measurements of this run.

The command line is benchmarks/estimate_paper_runs.py (`cli.main`). The modules, by concern:

- `formulas`: the model's and a dictionary's shapes, the per-token FLOP formulas, the shuffle
  buffer's host copies;
- `estimator`: the stage instances of dvc.yaml and each one's FLOPs and peak memory (`Estimator`);
- `measure`: what is measured on this machine in the run (matmul throughput, the shuffle buffer's
  copy rate, other processes' CPU use), seconds from rates (`Rates`), and `--check`'s real steps;
- `cli`: the command line and the printed table.

The profile is composed as the pipeline composes it (`transcoder_lab.config.compose` +
`load_config`), and the stage instances are read from dvc.yaml (`foreach` expanded against the
composed config), so every stage `dvc exp run -S profile=<name>` would run is listed.

Notation: d = d_model, m = d_mlp, V = vocabulary, T = the context length actually run (the
harvest's 128-token contexts, not the model's maximum n_ctx), L = a cell's layer, B = training
batch (tokens), S = training steps, n_l1 = the number of L1 values (a cell trains one dictionary
per value, side by side). A dictionary reads d_in = d and writes d_out = d through
d_sae = expansion_factor x d features. One FLOP is one multiply or one add (a multiply-add is 2).

FLOPs (matrix products only; elementwise work is left out, and `--check` measures it):
- Model forward pass, per token, through n blocks (Kaplan et al. 2020's count):
      n x 2 x (4 d^2 + 2 d m)      2 x the non-embedding weights of the blocks run
                                   (W_Q, W_K, W_V, W_O and the MLP's two matrices)
    + 2 x n x T x d                attention over the context
    + 2 x d x V                    only where logits are computed (the unembedding)
  TransformerLens computes the whole T x T score matrix before masking, twice the attention
  term; at T = 128 that term is under 2% of a GPT-2 block either way.
- Harvesting (per `dictionaries` instance, stream mode): the model up to the cell's layer
  (n = L + 1 blocks, no unembedding) over S x B tokens.
- Dictionary training, per dictionary and token: forward x W_enc (2 d_in d_sae) and z W_dec
  (2 d_sae d_out); backward twice that (weight gradient and input gradient: the encoder's input
  is x - b_dec, and b_dec is trained): 6 x (d_in + d_out) x d_sae, times n_l1, over S x B tokens.
  Ghost grads add up to 6 x (dead features) x d_out per token while features are dead; left out.
- Held-out metrics (end of each `dictionaries` instance): the model to layer L over the held-out
  tokens (evaluation.n_contexts x T in stream mode), then 2 x (d_in + d_out) x d_sae per token
  per dictionary.
- evaluate: per held-out token, full passes with the unembedding: 1 clean + 1 per spliced set
  (every grid dictionary alone, the splice-all set, each splice subset) + 1 per distinct set of
  zero-ablated layers; plus each spliced dictionary's forward inside its pass.
- import_transcoders: I/O (a pickle of 2 x 768 x 24,576 float32 weights per layer); the bias
  folding is one 768 x 24,576 vector-matrix product.
- case_study@greater_than, from the structure of transcoder_lab.case_studies.greater_than on its
  100 prompts of T_p tokens (T_p ~ characters / 4 + BOS): the layer choice (2 full passes and 1
  partial per transcoder layer), scores with the MLP spliced / removed / a feature ablated, the
  features-vs-neurons curves ((n_components + 1) x 2 kinds x 2 protocols runs of the blocks after
  the studied layer on every prompt token) and the path search (per expanded node, a pullback
  W_dec v per earlier transcoder layer, 2 x d x d_sae each).
- case_study@<feature study>: the blind hypothesis's two token probes (when `blind`: every
  vocabulary token in [BOS, t] and in [BOS, t, best], the model up to the feature's layer), the
  path search and its check by ablation (one full pass per kept node, on the prompt).
- study_packet: the scanned tokens (study.n_tokens in whole contexts) go through the model up to
  the study's layer 3 times (the shared input pass, then one dashboard pass per arm); each arm's
  dictionary encodes them twice (firing counts, then the sampled features), 2 x d_in x d_sae.
- corpus, activations (stream mode), report, study_analysis: no matmul work; behaviour: a few
  hundred prompts.

Host copies (stream mode): `transcoder_lab.dictionaries.activations.ShuffleBuffer` collects harvested batches
(batch_contexts x T rows) until it is full, then concatenates them with the rows it kept (one copy
of the buffer) and permutes it (another), about four row copies per harvested row in all
(`formulas.buffer_copy_bytes` counts both, row by row). Those bytes are divided
by the rate at which the real ShuffleBuffer copies on this machine, measured in this run
(`measure.buffer_bandwidth`: `--buffer-rows` of capacity, fed 3 x its capacity). Training synchronises
the GPU every step, so this host work adds to the GPU's time rather than overlapping it.

Peak memory (float32 = 4 bytes; GB = 1e9 bytes), on the device that runs the model and trains
(the GPU under `device: auto` on a GPU machine) and on the host:
- model: TransformerLens's parameters x 4 on the device; loading a hub model holds about 3 copies
  on the host (the transformers model, the converted state dict, the HookedTransformer) until the
  model is on the device, so a stage's host peak is the larger of that and what it keeps there.
- a dictionary in training: 4 x params x 4 bytes (weights, gradients, Adam's two moments), one per
  L1 value; the step's activations, 4 x B x d_sae x 4 bytes (pre-activations, activations and
  their gradients; dictionaries step one after another, so one at a time); the batch,
  B x hooks x d x 4.
- the shuffle buffer (host): 2 x buffer_tokens x hooks x d x 4 bytes (the buffer and the copy
  made while it is extended or permuted), plus the held-out rows kept for the held-out metrics.
- evaluate: every dictionary of every spliced set loaded at once (params x 4 each), a batch's
  logits about 4 times (clean log-probabilities, their exponent, the spliced ones, the KL
  product: batch x T x V x 4 each) and a spliced dictionary's features with their firing
  statistics, ~24 bytes per batch x T x d_sae element (float32 z, a bool mask, float64 copies).
- study_packet: the scanned inputs on the host (tokens x d x 4), an encoded chunk
  (study.batch_size x T x d_sae) on the device and, with its firing mask, on the host.
- Disk: a cell's checkpoint, rewritten every `checkpoint_every` steps, holds every dictionary's
  weights and both Adam moments, 3 x params x 4 bytes each.

Seconds: FLOPs / throughput. This CPU's throughput is measured in this run: the best of
`--repeats` float32 products [`--matmul-rows`, d_in] x [d_in, d_sae] (the encoder's shape, torch's
default threads; by default 256 rows, or more up to the training batch so that a product is at
least 5 GFLOP); the model's smaller products may run at another rate. The GPU's is
`--gpu-tflops` x `--utilisation`: float32 on CUDA cores, because the pipeline keeps PyTorch's
default, which does not use TF32 tensor cores for float32 matmuls. The harvest pass runs at
`--bf16-tflops` instead when `harvest.autocast_dtype` is set. The "GPU tf32" column is what TF32
tensor cores (`--tf32-tflops`) would give if they were allowed (torch.backends.cuda.matmul.
allow_tf32, which the pipeline does not set). Defaults: dense (no sparsity) datasheet figures of
the H100 PCIe, the slowest H100/H200-class part: FP32 51 TFLOP/s, TF32 378, BF16 756 (H100 SXM
and H200: 67, 495, 989).

`--check` measures what the FLOP count leaves out. It builds dictionaries of the smoke budget's
first cell (`budget=smoke`: the profile's shapes, `--check-l1-values` of its L1 values) with the
real trainer (`transcoder_lab.dictionaries.training.DictionaryTrainer`, real initialisation) on the CPU and
times `--check-steps` real steps (after one untimed warm-up step) on random activations of the
profile's shapes: at the smoke batch, and for one dictionary at `--check-batch`. It prints the
measured seconds against the FLOP estimate at the measured throughput (the ratio is the factor by
which the matmul count underestimates the CPU's time: Adam, the decoder renormalisation and
gradient projection, the L1 term, ReLU, the firing counters) and, from the two batch sizes, a fit
time = a + b x batch per dictionary and step, extrapolated to the profile's batch.
"""
