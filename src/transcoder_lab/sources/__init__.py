"""Where models and text come from: the hub, the model loaders, tokenizers and a profile's text.

- `hub`: reaching the Hugging Face hub, and what to do when it cannot be reached;
- `models`: loading the organism or a pretrained model as a processed HookedTransformer;
- `tokens`: tokenizer files and the token ids the behavioural metrics read;
- `gpt2_tokenizer`: GPT-2's real tokenizer, built offline from its BPE ranks;
- `text_source`: a pretrained profile's text, and the held-out contexts every profile shares.
"""
